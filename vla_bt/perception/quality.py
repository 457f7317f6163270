"""How well the embedded detector does on rendered frames: precision and recall over seeded scenes.

Each scene puts a handful of objects (random kinds, colours, distances and
bearings; some out of view, some hiding others) in front of a robot, renders
its camera frame with noise, and runs the detector. The simulator's instance
mask says what is really in view:

* an object showing at least ``min_pixels`` pixels must be found (recall);
* a detection counts as right when an object of its label and colour stands
  within ``match_m`` of its estimated position (precision);
* objects showing fewer pixels are "don't care": finding them is not
  required, and a detection of one is not counted as wrong.

The same is done from every place of a world file, turning on the spot.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .camera import CameraModel
from .catalogue import Catalogue
from .detect import ColorShapeDetector, Detection
from .render import Frame, noise_source, world_view
from .shapes import canonical_color, color_of

KINDS: tuple[tuple[str, str], ...] = (
    ("cup", "red"), ("cup", "blue"), ("mug", "green"), ("bottle", "green"), ("book", "yellow"), ("book", "red"),
    ("ball", "orange"), ("ball", "blue"), ("box", "purple"), ("can", "yellow"), ("bowl", "pink"), ("box", "yellow"),
    ("bottle", "cyan"), ("ball", "red"), ("book", "blue"),
)
"""Object kinds the seeded scenes draw from (with the world's own kinds added)."""


@dataclass
class Score:
    """Counts of one evaluation."""

    true_positives: int = 0
    false_positives: int = 0
    false_negatives: int = 0
    errors_m: list[float] = field(default_factory=list)
    frames: int = 0
    seconds: float = 0.0
    by_distance: dict[str, list[int]] = field(default_factory=dict)  # band → [found, visible]

    @property
    def precision(self) -> float:
        found = self.true_positives + self.false_positives
        return self.true_positives / found if found else 1.0

    @property
    def recall(self) -> float:
        visible = self.true_positives + self.false_negatives
        return self.true_positives / visible if visible else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"precision": round(self.precision, 3), "recall": round(self.recall, 3), "f1": round(self.f1, 3),
                "true_positives": self.true_positives, "false_positives": self.false_positives,
                "false_negatives": self.false_negatives, "frames": self.frames,
                "median_position_error_m": round(float(np.median(self.errors_m)), 3) if self.errors_m else None,
                "ms_per_frame": round(1000 * self.seconds / self.frames, 1) if self.frames else None,
                "recall_by_distance": {band: round(f / v, 3) if v else None
                                       for band, (f, v) in sorted(self.by_distance.items())}}


def _band(distance: float) -> str:
    return "0-2 m" if distance < 2 else "2-4 m" if distance < 4 else "4-6 m"


def score_frame(frame: Frame, detections: Sequence[Detection], objects: Sequence[dict[str, Any]], score: Score,
                min_pixels: int = 15, match_m: float = 0.35) -> None:
    """Add one frame's outcome to ``score``.

    Args:
        frame: the rendered frame, with its ground-truth instance mask
        detections: what the detector found in it
        objects: the drawn objects ``{id, label, color, pose}``
        score: where to add the counts
        min_pixels: an object must show at least this many pixels to be required
        match_m: a detection this close to an object of its kind is right
    """
    assert frame.ids is not None
    pixels = {tag: int((frame.ids == index).sum()) for index, tag in enumerate(frame.tags)}
    by_id = {str(o["id"]): o for o in objects}
    required = {tag for tag, count in pixels.items() if count >= min_pixels and tag in by_id}
    shown = {tag for tag, count in pixels.items() if count > 0 and tag in by_id}
    origin = frame.camera.origin(frame.pose)
    taken: set[str] = set()
    for detection in sorted(detections, key=lambda d: -d.confidence):
        if detection.pose is None:
            score.false_positives += 1
            continue
        candidates = [(math.dist(by_id[t]["pose"][:2], detection.pose[:2]), t) for t in shown - taken
                      if by_id[t]["label"] == detection.label
                      and color_of(str(by_id[t].get("color") or ""), by_id[t]["label"])
                      == canonical_color(detection.color)]
        near = [c for c in candidates if c[0] <= match_m]
        if not near:
            score.false_positives += 1
            continue
        error, tag = min(near)
        taken.add(tag)
        if tag in required:
            score.true_positives += 1
            score.errors_m.append(error)
    for tag in required:
        pose = by_id[tag]["pose"]
        band = score.by_distance.setdefault(_band(math.hypot(pose[0] - origin[0], pose[1] - origin[1])), [0, 0])
        band[1] += 1
        if tag in taken:
            band[0] += 1
        else:
            score.false_negatives += 1
    score.frames += 1


def seeded_scene(rng: np.random.Generator, kinds: Sequence[tuple[str, str]], count: int) -> list[dict[str, Any]]:
    """``count`` objects of random kinds in front of a robot at the origin facing +x (some out of view)."""
    objects: list[dict[str, Any]] = []
    while len(objects) < count:
        distance, bearing = rng.uniform(0.9, 5.5), rng.uniform(-0.75, 0.75)
        x, y = distance * math.cos(bearing), distance * math.sin(bearing)
        if any(math.dist((x, y), o["pose"][:2]) < 0.35 for o in objects):
            continue  # apart enough to be told apart (touching same-coloured objects merge into one blob)
        label, colour = kinds[int(rng.integers(len(kinds)))]
        objects.append({"id": f"o{len(objects)}", "label": label, "color": colour,
                        "pose": [round(x, 3), round(y, 3), round(float(rng.uniform(-math.pi, math.pi)), 3)]})
    return objects


def evaluate_scenes(scenes: int, seed: int = 0, world: Any = None, camera: CameraModel | None = None,
                    objects_per_scene: tuple[int, int] = (3, 7)) -> Score:
    """Precision and recall of the embedded detector over ``scenes`` seeded random scenes.

    Args:
        scenes: how many scenes (one frame each)
        seed: the seed of the scenes and of the sensor noise
        world: its object kinds join the seeded ones (optional)
        camera: the camera model (the default one when None)
        objects_per_scene: fewest and most objects per scene
    """
    camera = camera or CameraModel()
    kinds = list(KINDS)
    if world is not None:
        kinds += [(o.label, o.color) for o in world.objects if o.graspable and o.color]
    kinds = sorted(set(kinds))
    catalogue = Catalogue.from_records({"id": f"{label}_{colour}", "label": label, "color": colour}
                                       for label, colour in kinds)
    detector = ColorShapeDetector(catalogue)
    rng = np.random.default_rng(seed)
    score = Score()
    for index in range(scenes):
        objects = seeded_scene(rng, kinds, int(rng.integers(objects_per_scene[0], objects_per_scene[1] + 1)))
        frame = world_view(camera, (0.0, 0.0, 0.0), objects, rng=noise_source(seed, index))
        started = time.perf_counter()
        detections = detector.detect(frame.rgb, frame.camera, frame.pose)
        score.seconds += time.perf_counter() - started
        score_frame(frame, detections, objects, score)
    return score


def evaluate_world(world: Any, headings: int = 8, camera: CameraModel | None = None, seed: int = 0) -> Score:
    """Precision and recall from every place of a world, turning on the spot (``headings`` views each)."""
    camera = camera or CameraModel()
    detector = ColorShapeDetector(Catalogue.from_world(world))
    objects = [{"id": o.id, "label": o.label, "color": o.color, "pose": list(o.pose)} for o in world.objects]
    humans = [{"id": h.id, "pose": list(h.pose)} for h in world.humans]
    score = Score()
    for step, (x, y, _) in enumerate(_viewpoints(world)):
        for k in range(headings):
            pose = (x, y, -math.pi + 2 * math.pi * k / headings)
            frame = world_view(camera, pose, objects, humans, rng=noise_source(seed, step * headings + k))
            started = time.perf_counter()
            detections = detector.detect(frame.rgb, frame.camera, frame.pose)
            score.seconds += time.perf_counter() - started
            score_frame(frame, detections, _drawn(frame, objects), score)
    return score


def _viewpoints(world: Any) -> Iterable[tuple[float, float, float]]:
    """Each place, and a point 1.5 m before it (a place is often where its objects stand)."""
    for pose in world.places.values():
        yield (float(pose[0]), float(pose[1]), float(pose[2]))
        yield (float(pose[0]) - 1.5 * math.cos(pose[2]), float(pose[1]) - 1.5 * math.sin(pose[2]), float(pose[2]))


def _drawn(frame: Frame, objects: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The objects with the positions they were drawn at (objects sharing a spot are set side by side)."""
    from .render import layout

    where = {solid.tag: solid.center for solid in layout(objects)}
    return [{**o, "pose": [*where.get(str(o["id"]), o["pose"][:2]), 0.0]} for o in objects]
