"""The embedded detector: colour segmentation and shape matching with numpy, small and honest.

Pipeline, per image:

1. saturated pixels are grouped into 8-connected blobs of gradually varying
   hue (label propagation with pointer jumping; HSV is indifferent to
   shading, so a lit and a shaded face of one object stay together, while
   touching objects of different colours part); each blob is named by its
   mean hue and saturation. Unsaturated pixels form ``black``/``grey``/
   ``silver``/``white`` blobs, named by their brightness. Pale, weakly
   saturated pixels (floors, walls, haze) are background; blobs smaller than
   ``min_area`` pixels are noise;
2. with a camera model and the robot's pose, each blob's lowest pixels are
   where it stands: on the floor, or on a supporting object seen right under
   it. That point gives its distance; the blob's width and its top row give
   its size in metres;
3. the blob is named after the known object kind (label and colour, from the
   ``Catalogue``) whose shape best explains it: each candidate of a fitting
   size is drawn where the blob stands (at a few headings, for boxes) and its
   silhouette compared with the blob's (intersection over union; pixels of
   other blobs, which may hide part of it, are left out). Without a camera
   model (a photograph) its aspect ratio and roundness decide. A blob no
   known kind explains is dropped (people, walls, unknown things).

Its limits, measured by ``vla-bt bench`` (``detection_quality``): objects of
one colour that touch in the image merge into one blob; objects further than
a few metres are only a few pixels; grey, black and white objects are found
only against a background that is not grey, black or white.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .camera import CameraModel, Pose
from .catalogue import Catalogue
from .render import INTERSECT, Solid
from .shapes import COLORS, SHAPES, Shape

# Hue centre (degrees) and half-width of each chromatic colour name; brown and orange share hues and
# differ in saturation (brown is a dark, less saturated orange).
HUES: dict[str, tuple[float, float]] = {
    "red": (0.0, 18.0), "orange": (30.0, 12.0), "brown": (27.0, 17.0), "yellow": (52.0, 13.0),
    "green": (125.0, 42.0), "cyan": (185.0, 16.0), "blue": (226.0, 32.0), "purple": (278.0, 24.0),
    "pink": (330.0, 16.0),
}
ACHROMATIC = ("black", "grey", "silver", "white")
CHROMATIC_S = 0.40  # saturation at or above which a pixel has a hue worth naming
ACHROMATIC_S = 0.16  # below which it is grey-ish
BROWN_S = 0.82  # brown's saturation is below this, orange's above
HUE_STEP = 12.0  # neighbouring pixels whose hues differ more belong to different blobs (degrees)
HUE_SLACK = 10.0  # a blob's hue may lie this far outside a colour's range and still take its name
COMPATIBLE = {frozenset({"grey", "silver"}): 0.6, frozenset({"silver", "white"}): 0.5,
              frozenset({"brown", "orange"}): 0.4}
SIZE_SIGMA = 0.35  # tolerance of size matching, in log units (about ×1.4)


@dataclass
class Detection:
    """One detected object.

    Args:
        label: what it is ("mug")
        color: its colour name ("green")
        confidence: 0…1
        bbox: pixel box (u0, v0, u1, v1), ends exclusive
        pose: estimated world pose (x, y, theta), None without a camera model
        size: estimated (width, height) in metres, None without a camera model
        area: pixels
        support: height (m) of the surface it stands on
    """

    label: str
    color: str
    confidence: float
    bbox: tuple[int, int, int, int]
    pose: tuple[float, float, float] | None = None
    size: tuple[float, float] | None = None
    area: int = 0
    support: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "color": self.color, "confidence": round(self.confidence, 3),
                "bbox": list(self.bbox), "pose": [round(v, 3) for v in self.pose] if self.pose else None,
                "size": [round(v, 3) for v in self.size] if self.size else None, "area": self.area}


# -- colour ------------------------------------------------------------------------------------


def hsv(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hue (degrees), saturation and value (0…1) of an ``(h, w, 3)`` uint8 image."""
    f = rgb.astype(np.float32) / 255.0
    r, g, b = f[..., 0], f[..., 1], f[..., 2]
    v = f.max(axis=2)
    c = v - f.min(axis=2)
    s = np.where(v > 1e-6, c / np.maximum(v, 1e-6), 0.0)
    safe = np.maximum(c, 1e-6)
    h = np.where(v == r, ((g - b) / safe) % 6, np.where(v == g, (b - r) / safe + 2, (r - g) / safe + 4)) * 60.0
    return np.where(c > 1e-6, h, 0.0), s, v


def hue_name(hue: float, saturation: float, names: Sequence[str]) -> str | None:
    """The chromatic colour name among ``names`` for a blob's typical hue and saturation (None: none is close)."""
    best: tuple[float, str] | None = None
    for name in names:
        if name not in HUES:
            continue
        if (name == "brown" and saturation >= BROWN_S) or (name == "orange" and saturation < BROWN_S):
            continue
        centre, width = HUES[name]
        distance = abs((hue - centre + 180.0) % 360.0 - 180.0)
        if distance <= width + HUE_SLACK and (best is None or distance - width < best[0]):
            best = (distance - width, name)
    return best[1] if best else None


def achromatic_name(values: np.ndarray) -> str:
    """``black``, ``grey``, ``silver`` or ``white`` from the brightness (0…1) of a blob's pixels (its lit part)."""
    lit = float(np.percentile(values, 90))
    return "black" if lit < 0.22 else "grey" if lit < 0.58 else "silver" if lit < 0.8 else "white"


def compatibility(seen: str, known: str) -> float:
    """How well a seen colour name fits a known one: 1 equal, partial for neighbours (grey ~ silver), else 0."""
    if seen == known:
        return 1.0
    return COMPATIBLE.get(frozenset({seen, known}), 0.0)


# -- blobs -------------------------------------------------------------------------------------

NEIGHBOURS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))


def components(mask: np.ndarray, hue: np.ndarray | None = None, max_step: float = HUE_STEP) -> np.ndarray:
    """8-connected component labels of a boolean mask (-1 outside), by propagation with pointer jumping.

    With ``hue``, neighbours join only when their hues differ by at most ``max_step`` degrees: a blob's
    hue may drift slowly across it (shading, a colour cast) but two touching objects of different
    colours stay apart.
    """
    height, width = mask.shape
    big = height * width
    labels = np.where(mask, np.arange(big, dtype=np.int64).reshape(height, width), big)
    links = []
    for dy, dx in NEIGHBOURS:
        ys, yd = slice(max(0, -dy), height - max(0, dy)), slice(max(0, dy), height - max(0, -dy))
        xs, xd = slice(max(0, -dx), width - max(0, dx)), slice(max(0, dx), width - max(0, -dx))
        joined = mask[ys, xs] & mask[yd, xd]
        if hue is not None:
            joined &= np.abs((hue[ys, xs] - hue[yd, xd] + 180.0) % 360.0 - 180.0) <= max_step
        links.append((ys, xs, yd, xd, joined))
    while True:
        smallest = labels.copy()
        for ys, xs, yd, xd, joined in links:
            view = smallest[ys, xs]
            np.minimum(view, np.where(joined, labels[yd, xd], big), out=view)
        flat = smallest.ravel()
        inside = flat < big
        flat[inside] = flat[flat[inside]]  # jump: take the label of the pixel the label points at
        if np.array_equal(smallest, labels):
            break
        labels = smallest
    return np.where(mask, labels, -1)


@dataclass
class Blob:
    """A connected region of one colour."""

    color: str
    rows: np.ndarray
    cols: np.ndarray
    bbox: tuple[int, int, int, int]
    truncated: tuple[bool, bool, bool, bool]  # left, top, right, bottom edge of the image

    @property
    def area(self) -> int:
        return int(self.rows.size)


def _regions(labels: np.ndarray, min_area: int) -> list[tuple[np.ndarray, np.ndarray]]:
    flat = labels.ravel()
    order = np.argsort(flat, kind="stable")
    values = flat[order]
    starts = np.flatnonzero(np.r_[True, values[1:] != values[:-1]])
    ends = np.r_[starts[1:], values.size]
    width = labels.shape[1]
    regions = []
    for start, end in zip(starts, ends, strict=True):
        if values[start] < 0 or end - start < min_area:
            continue
        pixels = order[start:end]
        regions.append((pixels // width, pixels % width))
    return regions


def blobs(rgb: np.ndarray, colours: Sequence[str], min_area: int) -> list[Blob]:
    """Blobs of the named colours in an image, largest first.

    Saturated pixels are grouped by hue similarity and each group is named by its circular-mean hue
    and median saturation; unsaturated pixels (when an achromatic colour is among ``colours``) by the
    brightness of their lit part. Groups that no name fits are dropped.
    """
    height, width = rgb.shape[:2]
    h, s, v = hsv(rgb)
    found = []
    chromatic = (s >= CHROMATIC_S) & (v >= 0.10)
    for rows, cols in _regions(components(chromatic, h), min_area):
        angles = np.radians(h[rows, cols])
        mean = math.degrees(math.atan2(float(np.sin(angles).mean()), float(np.cos(angles).mean()))) % 360.0
        name = hue_name(mean, float(np.median(s[rows, cols])), colours)
        if name is not None:
            found.append(_blob(name, rows, cols, width, height))
    if any(c in ACHROMATIC for c in colours):
        for rows, cols in _regions(components((s < ACHROMATIC_S) & ~chromatic), min_area):
            found.append(_blob(achromatic_name(v[rows, cols]), rows, cols, width, height))
    return sorted(found, key=lambda b: -b.area)


def _blob(name: str, rows: np.ndarray, cols: np.ndarray, width: int, height: int) -> Blob:
    u0, v0, u1, v1 = int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1
    return Blob(name, rows, cols, (u0, v0, u1, v1), (u0 == 0, v0 == 0, u1 == width, v1 == height))


# -- the detector ------------------------------------------------------------------------------


def _log_gap(observed: float, low: float, high: float) -> float:
    """How far ``observed`` lies outside [low, high], in log units (0 inside)."""
    if observed <= 0:
        return 3.0
    if observed < low:
        return math.log(low / observed)
    if observed > high:
        return math.log(observed / high)
    return 0.0


class ColorShapeDetector:
    """Colour segmentation and shape matching against known object kinds (the embedded detector).

    Args:
        catalogue: the known objects (labels, colours, shapes); without one, every listed shape in
            every listed colour is a candidate (and sizes alone tell labels apart)
        min_area: smallest blob in pixels
        min_score: smallest shape-match score (0…1) for a blob to count as a detection
        max_coverage: blobs covering more of the image than this are background (a wall, a table cloth)

    Example:
        >>> detector = ColorShapeDetector(Catalogue.from_world(world))
        >>> [d.label for d in detector.detect(frame.rgb, frame.camera, frame.pose)]
        ['mug']
    """

    name = "color"

    def __init__(self, catalogue: Catalogue | None = None, min_area: int = 6, min_score: float = 0.25,
                 max_coverage: float = 0.6):
        self.catalogue = catalogue
        self.min_area, self.min_score, self.max_coverage = int(min_area), float(min_score), float(max_coverage)
        if catalogue is not None and len(catalogue):
            self.kinds = catalogue.kinds()
        else:
            self.kinds = [(label, colour, shape) for label, shape in SHAPES.items()
                          for colour in COLORS if colour != "gray"]
        drawn = {colour for _, colour, _ in self.kinds}
        self.colours = sorted(c for c in drawn if c in HUES) + (["grey"] if drawn & set(ACHROMATIC) else [])

    def detect(self, image: np.ndarray, camera: CameraModel | None = None,
               pose: Sequence[float] | None = None) -> list[Detection]:
        """Objects in an RGB image; with ``camera`` and ``pose``, with world poses and sizes.

        Args:
            image: ``(h, w, 3)`` uint8 RGB
            camera: the camera model that took it (None: a photograph of unknown geometry)
            pose: the robot's pose when it was taken

        Returns:
            detections, most confident first
        """
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an (h, w, 3) RGB image, got shape {image.shape}")
        rgb = image if image.dtype == np.uint8 else np.clip(image, 0, 255).astype(np.uint8)
        height, width = rgb.shape[:2]
        found = blobs(rgb, self.colours, self.min_area)
        geometric = camera is not None and pose is not None
        pose_t = (float(pose[0]), float(pose[1]), float(pose[2])) if geometric else None  # type: ignore[index]
        owner = np.full((height, width), -1, dtype=np.int32)
        for index, blob in enumerate(found):
            owner[blob.rows, blob.cols] = index
        detections: list[Detection] = []
        named: dict[int, Detection] = {}
        self._rays = camera.rays(pose_t)[1] if geometric else None  # type: ignore[union-attr,arg-type]
        # Biggest first: supporting furniture is named before what stands on it.
        for index, blob in enumerate(found):
            if blob.area > self.max_coverage * height * width or sum(blob.truncated) >= 3:
                continue  # background: a wall, a cloth, the table filling the view
            if geometric:
                detection = self._measure(blob, index, camera, pose_t, owner, found, named)  # type: ignore[arg-type]
            else:
                detection = self._flat(blob)
            if detection is not None:
                named[index] = detection
                detections.append(detection)
        return sorted(detections, key=lambda d: -d.confidence)

    # -- with geometry -----------------------------------------------------------------------

    def _support(self, blob: Blob, contact: tuple[float, float], owner: np.ndarray, found: list[Blob],
                 named: dict[int, Detection]) -> float:
        """Height of what the blob stands on: a blob right under its lowest pixels that is a supporting kind."""
        u, v = round(contact[0]), int(contact[1])
        for dv in range(1, 4):
            row = v + dv
            if row >= owner.shape[0]:
                break
            below = int(owner[row, min(max(u, 0), owner.shape[1] - 1)])
            if below < 0 or found[below] is blob:
                continue
            detection = named.get(below)
            if detection is not None and self._is_support(detection.label):
                return detection.support + self._height_of(detection.label, detection.color)
            if detection is not None:
                return detection.support  # its foot is hidden behind that object: it stands where that one does
            supports = [s for _, c, s in self.kinds if s.support and compatibility(found[below].color, c) > 0]
            if supports:
                return min(s.height for s in supports)
        return 0.0

    def _is_support(self, label: str) -> bool:
        return any(lbl == label and shape.support for lbl, _, shape in self.kinds)

    def _height_of(self, label: str, colour: str) -> float:
        return next((shape.height for lbl, c, shape in self.kinds if lbl == label and c == colour),
                    next((shape.height for lbl, _, shape in self.kinds if lbl == label), 0.0))

    def _measure(self, blob: Blob, index: int, camera: CameraModel, pose: Pose, owner: np.ndarray,
                 found: list[Blob], named: dict[int, Detection]) -> Detection | None:
        if blob.truncated[3]:
            return None  # its foot is below the image: no distance
        u0, v0, u1, v1 = blob.bbox
        low = blob.rows >= v1 - 2
        contact = (float(np.median(blob.cols[low])), v1 - 0.5)
        support = self._support(blob, contact, owner, found, named)
        foot = camera.floor_point(pose, contact[0], contact[1], z=support)
        if foot is None:
            return None
        origin = camera.origin(pose)
        distance = math.hypot(foot[0] - origin[0], foot[1] - origin[1])
        if distance > camera.range or distance < camera.near:
            return None
        _, _, forward = camera.axes(pose)
        depth = float((np.array([foot[0], foot[1], support]) - origin) @ forward)
        width_m = (u1 - u0) * depth / camera.fx
        apparent = camera.height_above(pose, (foot[0], foot[1], support), v0 - 0.5)
        if apparent is None or apparent <= 0:
            return None
        bearing = math.atan2(foot[1] - origin[1], foot[0] - origin[0])
        window = (max(0, u0 - 3), max(0, v0 - 3), min(owner.shape[1], u1 + 3), min(owner.shape[0], v1 + 3))
        patch = owner[window[1]:window[3], window[0]:window[2]]
        observed, others = patch == index, (patch >= 0) & (patch != index)
        scored: list[tuple[float, str, tuple[float, float, float]]] = []
        for label, colour, shape in self.kinds:
            fit = compatibility(blob.color, colour)
            if fit == 0.0 or self._size_score(shape, width_m, apparent, blob, camera, pose, foot, support,
                                              bearing) < 0.02:
                continue
            overlap, where = self._silhouette(shape, camera, pose, foot, support, bearing, window, observed, others)
            scored.append((fit * min(1.0, overlap / 0.85), label, where))
        scored.sort(key=lambda s: -s[0])
        if not scored or scored[0][0] < self.min_score:
            return None
        partial = blob.truncated[1] or sum(blob.truncated) >= 2
        if partial and any(s[1] != scored[0][1] and s[0] >= 0.8 * scored[0][0] for s in scored[1:]):
            return None  # only part of it is in the image, and that part fits more than one kind
        score, label, (x, y, yaw) = scored[0]
        confidence = score * min(1.0, blob.area / 30.0)
        return Detection(label, blob.color, round(confidence, 4), blob.bbox, (round(x, 3), round(y, 3), round(yaw, 3)),
                         (round(width_m, 3), round(apparent, 3)), blob.area, support)

    def _silhouette(self, shape: Shape, camera: CameraModel, pose: Pose, foot: tuple[float, float], support: float,
                    bearing: float, window: tuple[int, int, int, int], observed: np.ndarray,
                    others: np.ndarray) -> tuple[float, tuple[float, float, float]]:
        """How well the shape, standing where the blob's foot is, covers the blob: best IoU and its x, y, yaw."""
        assert self._rays is not None
        origin = camera.origin(pose)
        rays = self._rays[window[1]:window[3], window[0]:window[2]].reshape(-1, 3)
        yaws = [bearing + k * math.pi / 6 for k in range(6)] if shape.kind == "box" else [0.0]
        best = (0.0, (foot[0], foot[1], 0.0))
        for yaw in yaws:
            # The lowest pixels are its front: its centre lies that far behind, along the line of sight.
            if shape.kind == "box":
                turn = yaw - bearing
                behind = abs(shape.size[0] / 2 * math.cos(turn)) + abs(shape.size[1] / 2 * math.sin(turn))
            else:
                behind = shape.size[0] / 2
            x, y = foot[0] + behind * math.cos(bearing), foot[1] + behind * math.sin(bearing)
            solid = Solid(shape.kind, (x, y), support, shape.size, yaw, (0.0, 0.0, 0.0))
            t, _ = INTERSECT[shape.kind](solid, origin, rays)
            drawn = np.isfinite(t).reshape(observed.shape)
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    moved = np.roll(drawn, (dy, dx), axis=(0, 1)) if dy or dx else drawn
                    union = int(((moved | observed) & ~others).sum())
                    overlap = int((moved & observed).sum()) / union if union else 0.0
                    if overlap > best[0]:
                        best = (overlap, (x, y, math.remainder(yaw, math.pi) if shape.kind == "box" else 0.0))
        return best

    def _size_score(self, shape: Shape, width_m: float, apparent: float, blob: Blob, camera: CameraModel,
                    pose: Pose, foot: tuple[float, float], support: float, bearing: float) -> float:
        low, high = shape.footprint
        left, top, right, _ = blob.truncated
        gap_w = _log_gap(width_m, 0.0 if (left or right) else low * 0.85, high * 1.15)
        # The top row shows the far edge of the top face: predict where this shape's would be.
        depth = shape.size[0] if shape.kind != "box" else (shape.footprint[0] + shape.footprint[1]) / 2
        far = (foot[0] + depth * math.cos(bearing), foot[1] + depth * math.sin(bearing), support + shape.height)
        _, v_top, d = camera.project(pose, np.array([far]))
        expected = camera.height_above(pose, (foot[0], foot[1], support), float(v_top[0])) if d[0] > 0 else None
        if expected is None or expected <= 0:
            expected = shape.height
        gap_h = _log_gap(apparent, 0.0 if top else expected / 1.1, expected * 1.1)
        # A few pixels cannot tell sizes apart finely: widen the tolerance for tiny blobs.
        sigma = SIZE_SIGMA * (1.0 + 4.0 / max(blob.bbox[3] - blob.bbox[1], 1))
        return math.exp(-(gap_w ** 2 + gap_h ** 2) / (2 * sigma ** 2))

    # -- without geometry --------------------------------------------------------------------

    def _flat(self, blob: Blob) -> Detection | None:
        u0, v0, u1, v1 = blob.bbox
        aspect = (v1 - v0) / max(u1 - u0, 1)
        extent = blob.area / max((u1 - u0) * (v1 - v0), 1)
        best: tuple[float, str] | None = None
        for label, colour, shape in self.kinds:
            fit = compatibility(blob.color, colour)
            if fit == 0.0:
                continue
            # Seen from the side and a little above: a cylinder or box shows its height plus a sliver of top.
            width = shape.footprint[0] if shape.kind != "box" else shape.size[0]
            expected = 1.0 if shape.kind == "sphere" else (shape.height + 0.25 * min(shape.size[:2])) / width
            roundness = 0.785 if shape.kind == "sphere" else 0.92
            gap = math.log(max(aspect, 1e-3) / expected)
            score = fit * math.exp(-(gap ** 2) / (2 * 0.3 ** 2)) \
                * math.exp(-((extent - roundness) ** 2) / (2 * 0.09 ** 2))
            if best is None or score > best[0]:
                best = (score, label)
        if best is None or best[0] < self.min_score:
            return None
        confidence = best[0] * min(1.0, blob.area / 30.0)
        return Detection(best[1], blob.color, round(confidence, 4), blob.bbox, area=blob.area)
