"""The simulator's camera view, ray-cast with numpy: floor, objects and people, shaded, with sensor noise.

One ray per pixel meets every solid in range (upright cylinders, boxes turned
about z, spheres) and the floor; the nearest hit wins, so objects hide what
stands behind them. Things further than the camera's ``range`` or nearer
than its ``near`` distance are not drawn (the far floor fades into haze), and
a solid around the camera itself (the robot standing on a place an object is
at) is invisible to it, as it would be to a real camera.

Objects of the world file are points. ``layout`` turns them into solids:
each label's shape (``shapes.SHAPES``) at the object's pose; objects sharing
one spot are set side by side, within ``SPREAD_M`` of it, on a supporting
piece of furniture at that spot if there is one (cups on the kitchen table).

A ``Frame`` carries the image and, for evaluation only, the simulator's own
depth and instance masks (a real camera has neither; the detector never
reads them).
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .camera import CameraModel, Pose
from .shapes import Shape, rgb_of, shape_for

FLOOR_RGB = np.array([0.75, 0.66, 0.55])  # beige: neither a named colour nor grey
HAZE_RGB = np.array([0.86, 0.78, 0.66])
PERSON_RGB = (0.42, 0.33, 0.45)  # muted mauve clothes: no colour name matches them
PERSON_SHAPE = Shape("cylinder", (0.40, 0.40, 1.70))
LIGHT = np.array([0.35, 0.25, 0.90]) / np.linalg.norm([0.35, 0.25, 0.90])
AMBIENT = 0.45
SPREAD_M = 0.3
"""Objects sharing one spot are drawn at most this far from it."""
NOISE = 0.015
"""Standard deviation of the simulated sensor noise (0…1 intensity)."""


@dataclass(frozen=True)
class Solid:
    """One thing to draw.

    Args:
        kind: ``cylinder``, ``box`` or ``sphere``
        center: x, y of its centre (m)
        base: height of its bottom (m)
        size: length, width, height (m); a cylinder's or sphere's diameter is ``size[0]``
        yaw: rotation about z (rad)
        rgb: colour, 0…1
        tag: what it is (an object id, ``person:ID``), for evaluation
    """

    kind: str
    center: tuple[float, float]
    base: float
    size: tuple[float, float, float]
    yaw: float
    rgb: tuple[float, float, float]
    tag: str = ""

    @property
    def top(self) -> float:
        return self.base + self.size[2]

    @property
    def reach(self) -> float:
        """Radius of a vertical cylinder enclosing it (m)."""
        if self.kind == "box":
            return math.hypot(self.size[0], self.size[1]) / 2
        return self.size[0] / 2


@dataclass
class Frame:
    """A camera image and when and where it was taken.

    Args:
        rgb: ``(height, width, 3)`` uint8
        camera: the camera model that took it
        pose: the robot's pose at capture
        stamp: capture time on the robot's clock (simulated seconds in the simulator)
        wall: Unix time of capture
        depth: distance along each pixel's ray (m; inf where nothing was hit) — simulator only
        ids: index into ``tags`` of the solid seen at each pixel, -1 for floor and haze — simulator only
        tags: what each solid is (object ids, ``person:ID``) — simulator only
    """

    rgb: np.ndarray
    camera: CameraModel
    pose: Pose
    stamp: float = 0.0
    wall: float = field(default_factory=time.time)
    depth: np.ndarray | None = None
    ids: np.ndarray | None = None
    tags: list[str] = field(default_factory=list)


# -- scene layout -----------------------------------------------------------------------------


def layout(objects: Iterable[Mapping[str, Any]], humans: Iterable[Mapping[str, Any]] = ()) -> list[Solid]:
    """Solids for world objects (``{id, label, color, pose}``) and people (``{id, pose}``).

    Objects whose positions coincide (within 1 cm) are drawn side by side:
    furniture that supports others stays at the spot and the rest stand on
    it; without such furniture they stand in a row on the floor. No object is
    drawn further than ``SPREAD_M`` from its true position.
    """
    groups: dict[tuple[int, int], list[Mapping[str, Any]]] = {}
    for obj in objects:
        pose = obj["pose"]
        groups.setdefault((round(float(pose[0]) * 100), round(float(pose[1]) * 100)), []).append(obj)
    solids = []
    for group in groups.values():
        solids += _arrange(sorted(group, key=lambda o: str(o["id"])))
    for human in humans:
        x, y = float(human["pose"][0]), float(human["pose"][1])
        solids.append(Solid(PERSON_SHAPE.kind, (x, y), 0.0, PERSON_SHAPE.size, 0.0, PERSON_RGB,
                            f"person:{human['id']}"))
    return solids


def _solid(obj: Mapping[str, Any], shape: Shape, x: float, y: float, base: float, yaw: float) -> Solid:
    return Solid(shape.kind, (x, y), base, shape.size, yaw, rgb_of(str(obj.get("color") or ""), str(obj["label"])),
                 str(obj["id"]))


def _arrange(group: Sequence[Mapping[str, Any]]) -> list[Solid]:
    x, y, theta = (float(v) for v in group[0]["pose"][:3])
    shapes = {str(o["id"]): shape_for(str(o["label"])) for o in group}
    if len(group) == 1:
        return [_solid(group[0], shapes[str(group[0]["id"])], x, y, 0.0, theta)]
    support = next((o for o in group if shapes[str(o["id"])].support and not o.get("graspable", False)), None)
    furniture = [o for o in group if o is not support and not o.get("graspable", False)
                 and shapes[str(o["id"])].height >= 0.4]
    items = [o for o in group if o is not support and o not in furniture]
    solids, base = [], 0.0
    if support is not None:
        solids.append(_solid(support, shapes[str(support["id"])], x, y, 0.0, theta))
        base = shapes[str(support["id"])].height
    c, s = math.cos(theta), math.sin(theta)
    # The small things in a row along the spot's heading, centred on it, at most SPREAD_M from it.
    lengths = [shapes[str(o["id"])].size[0] + 0.05 for o in items]
    total = sum(lengths)
    scale = min(1.0, 2 * SPREAD_M / total) if total > 0 else 1.0
    offset = -total * scale / 2
    for obj, length in zip(items, lengths, strict=True):
        shift = offset + length * scale / 2
        offset += length * scale
        solids.append(_solid(obj, shapes[str(obj["id"])], x + shift * c, y + shift * s, base, theta))
    # Big things that hold nothing (a shelf) stand beyond the row's end.
    end = max(total * scale / 2, shapes[str(support["id"])].size[0] / 2 if support is not None else 0.0)
    for obj in furniture:
        length = shapes[str(obj["id"])].size[0]
        shift = end + 0.05 + length / 2
        end = shift + length / 2
        solids.append(_solid(obj, shapes[str(obj["id"])], x + shift * c, y + shift * s, 0.0, theta))
    return solids


# -- ray casting ------------------------------------------------------------------------------


def _cylinder(solid: Solid, origin: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    radius = solid.size[0] / 2
    ox, oy = origin[0] - solid.center[0], origin[1] - solid.center[1]
    a = d[:, 0] ** 2 + d[:, 1] ** 2
    b = 2 * (ox * d[:, 0] + oy * d[:, 1])
    c = ox * ox + oy * oy - radius * radius
    disc = b * b - 4 * a * c
    with np.errstate(invalid="ignore", divide="ignore"):
        t_side = (-b - np.sqrt(np.maximum(disc, 0.0))) / (2 * np.maximum(a, 1e-12))
    z = origin[2] + t_side * d[:, 2]
    side = (disc >= 0) & (t_side > 1e-6) & (z >= solid.base) & (z <= solid.top)
    t = np.where(side, t_side, np.inf)
    normals = np.zeros_like(d)
    px, py = ox + t_side * d[:, 0], oy + t_side * d[:, 1]
    normals[:, 0], normals[:, 1] = px / radius, py / radius
    with np.errstate(invalid="ignore", divide="ignore"):
        t_cap = (solid.top - origin[2]) / d[:, 2]
    cx, cy = ox + t_cap * d[:, 0], oy + t_cap * d[:, 1]
    cap = (d[:, 2] < -1e-9) & (t_cap > 1e-6) & (cx * cx + cy * cy <= radius * radius) & (t_cap < t)
    t = np.where(cap, t_cap, t)
    normals[cap] = (0.0, 0.0, 1.0)
    return t, normals


def _box(solid: Solid, origin: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    c, s = math.cos(-solid.yaw), math.sin(-solid.yaw)
    rx, ry = origin[0] - solid.center[0], origin[1] - solid.center[1]
    o = np.array([c * rx - s * ry, s * rx + c * ry, origin[2] - (solid.base + solid.top) / 2])
    db = np.stack([c * d[:, 0] - s * d[:, 1], s * d[:, 0] + c * d[:, 1], d[:, 2]], axis=1)
    half = np.array(solid.size) / 2
    safe = np.where(np.abs(db) < 1e-12, 1e-12, db)
    t1, t2 = (-half - o) / safe, (half - o) / safe
    near, far = np.minimum(t1, t2), np.maximum(t1, t2)
    t_near, axis = near.max(axis=1), near.argmax(axis=1)
    hit = (t_near <= far.min(axis=1)) & (t_near > 1e-6)
    t = np.where(hit, t_near, np.inf)
    local = np.zeros_like(d)
    rows = np.arange(len(d))
    local[rows, axis] = -np.sign(db[rows, axis])
    normals = np.stack([c * local[:, 0] + s * local[:, 1], -s * local[:, 0] + c * local[:, 1], local[:, 2]], axis=1)
    return t, normals


def _sphere(solid: Solid, origin: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    radius = solid.size[0] / 2
    center = np.array([solid.center[0], solid.center[1], solid.base + radius])
    oc = origin - center
    b = d @ oc
    disc = b * b - (oc @ oc - radius * radius)
    t_hit = -b - np.sqrt(np.maximum(disc, 0.0))
    t = np.where((disc >= 0) & (t_hit > 1e-6), t_hit, np.inf)
    normals = (origin + t_hit[:, None] * d - center) / radius
    return t, normals


INTERSECT = {"cylinder": _cylinder, "box": _box, "sphere": _sphere}
"""Ray intersection by solid kind: ``(solid, origin, directions (N, 3)) -> (t (N,), normals (N, 3))``."""


def _visible(solid: Solid, camera: CameraModel, origin: np.ndarray, forward: np.ndarray) -> bool:
    dx, dy = solid.center[0] - origin[0], solid.center[1] - origin[1]
    distance = math.hypot(dx, dy)
    if distance <= solid.reach + 0.05:
        return False  # the camera stands inside or right over it
    if distance - solid.reach > camera.range:
        return False
    heading = math.hypot(forward[0], forward[1])
    ahead = (dx * forward[0] + dy * forward[1]) / max(heading, 1e-9)
    return ahead > -solid.reach


def _window(camera: CameraModel, pose: Pose, solid: Solid) -> tuple[int, int, int, int] | None:
    """The image rectangle (u0, v0, u1, v1; exclusive ends) the solid can cover, None when it is off the image."""
    r = solid.reach
    cx, cy = solid.center
    corners = np.array([(cx + sx * r, cy + sy * r, z) for sx in (-1, 1) for sy in (-1, 1)
                        for z in (solid.base, solid.top)])
    u, v, depth = camera.project(pose, corners)
    if (depth <= 1e-3).any():
        return (0, 0, camera.width, camera.height)  # partly behind the camera: test every ray
    u0, u1 = max(0, math.floor(float(u.min())) - 1), min(camera.width, math.ceil(float(u.max())) + 2)
    v0, v1 = max(0, math.floor(float(v.min())) - 1), min(camera.height, math.ceil(float(v.max())) + 2)
    return (u0, v0, u1, v1) if u0 < u1 and v0 < v1 else None


def render(camera: CameraModel, pose: Sequence[float], solids: Iterable[Solid],
           rng: np.random.Generator | None = None, noise: float = NOISE) -> Frame:
    """Draw the view of a robot at ``pose``.

    Args:
        camera: the camera model
        pose: the robot's pose (x, y, theta)
        solids: what there is to see
        rng: source of sensor noise (None: a noiseless image)
        noise: its standard deviation

    Returns:
        the frame, with ground-truth depth and instance ids for evaluation
    """
    pose = (float(pose[0]), float(pose[1]), float(pose[2]))
    origin, rays = camera.rays(pose)
    d = rays.reshape(-1, 3)
    _, _, forward = camera.axes(pose)
    depth = np.full(len(d), np.inf)
    ids = np.full(len(d), -1, dtype=np.int32)
    shade = np.ones(len(d))
    rgb = np.zeros((len(d), 3))
    tags: list[str] = []
    horizontal = np.hypot(d[:, 0], d[:, 1])
    for solid in solids:
        if not _visible(solid, camera, origin, forward):
            continue
        window = _window(camera, pose, solid)
        if window is None:
            continue
        rows = (np.arange(window[1], window[3])[:, None] * camera.width
                + np.arange(window[0], window[2])[None, :]).ravel()
        t, normals = INTERSECT[solid.kind](solid, origin, d[rows])
        flat = t * horizontal[rows]  # distance in the floor plane
        closer = (t < depth[rows]) & (flat <= camera.range) & (flat >= camera.near)
        if not closer.any():
            continue
        hit = rows[closer]
        depth[hit] = t[closer]
        ids[hit] = len(tags)
        tags.append(solid.tag)
        lambert = np.clip(normals[closer] @ LIGHT, 0.0, 1.0)
        shade[hit] = AMBIENT + (1 - AMBIENT) * lambert
        rgb[hit] = solid.rgb
    _floor(camera, origin, d, depth, ids, rgb, shade)
    image = rgb * shade[:, None]
    if rng is not None and noise > 0:
        image = image + rng.normal(0.0, noise, image.shape)
    pixels = (np.clip(image, 0.0, 1.0) * 255 + 0.5).astype(np.uint8).reshape(camera.height, camera.width, 3)
    return Frame(pixels, camera, pose, depth=depth.reshape(camera.height, camera.width),
                 ids=ids.reshape(camera.height, camera.width), tags=tags)


def _floor(camera: CameraModel, origin: np.ndarray, d: np.ndarray, depth: np.ndarray, ids: np.ndarray,
           rgb: np.ndarray, shade: np.ndarray) -> None:
    """Floor (faint 0.5 m tiles) where no solid was hit, fading into haze towards the range; haze above it."""
    empty = ids < 0
    down = d[:, 2] < -1e-9
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(down, -origin[2] / d[:, 2], np.inf)
    x, y = origin[0] + t * d[:, 0], origin[1] + t * d[:, 1]
    flat = np.hypot(x - origin[0], y - origin[1])
    floor = empty & down & (flat <= camera.range)
    tiles = ((np.floor(np.nan_to_num(x) * 2) + np.floor(np.nan_to_num(y) * 2)) % 2) * 0.03 - 0.015
    fade = np.clip((flat - 0.7 * camera.range) / (0.3 * camera.range), 0.0, 1.0)[:, None]
    colour = (FLOOR_RGB + tiles[:, None]) * (1 - fade) + HAZE_RGB * fade
    rgb[floor] = colour[floor]
    depth[floor] = t[floor]
    haze = empty & ~floor
    rgb[haze] = HAZE_RGB
    shade[empty] = 1.0


def world_view(camera: CameraModel, pose: Sequence[float], objects: Iterable[Mapping[str, Any]],
               humans: Iterable[Mapping[str, Any]] = (), rng: np.random.Generator | None = None,
               stamp: float = 0.0) -> Frame:
    """The frame of a robot at ``pose`` among world objects and people (what ``SimRobot.camera_frame`` draws).

    Args:
        camera: the camera model
        pose: the robot's pose
        objects: ``{id, label, color, pose}`` records of the objects to draw (not held, not handed over)
        humans: ``{id, pose}`` records
        rng: sensor noise source (None: noiseless)
        stamp: capture time on the robot's clock
    """
    frame = render(camera, pose, layout(objects, humans), rng=rng)
    frame.stamp = stamp
    return frame


def noise_source(seed: Any, step: int) -> np.random.Generator:
    """A reproducible noise generator for one frame: the same seed and step give the same noise."""
    base = seed if isinstance(seed, int) else zlib.crc32(repr(seed).encode())
    return np.random.default_rng([abs(base) % 2**32, int(step)])
