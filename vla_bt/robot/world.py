"""The world file (DESIGN §7): places, objects, humans, the robot, workspace, no-go zones.

Read by the embedded simulator, by grounding of references and by the local
planner's vocabulary. Checked completely, with ``FILE:LINE:COL`` for every
problem; unknown keys are errors, as in trees.

Example:
    >>> world = load_world("config/world.yaml")
    >>> world.place("kitchen")
    (4.0, 2.0, 0.0)
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from vla_bt.tree.diagnostics import Diagnostic, Mark, TreeError, did_you_mean, number_as_text_hint
from vla_bt.tree.yamlsrc import LList, LMap, read_located, schema_diagnostics

Pose = tuple[float, float, float]
Point = tuple[float, float]

_NUMBER = {"type": "number"}
_POSE = {"type": "array", "items": _NUMBER, "minItems": 3, "maxItems": 3}
_POLYGON = {"type": "array", "minItems": 3, "items": {"type": "array", "items": _NUMBER, "minItems": 2, "maxItems": 2}}
_ID = {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_\-]*$"}
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "places": {"type": "object", "additionalProperties": _POSE},
        "objects": {"type": "array", "items": {
            "type": "object",
            "properties": {"id": _ID, "label": {"type": "string", "minLength": 1}, "color": {"type": "string"},
                           "at": {"type": "string"}, "pose": _POSE, "graspable": {"type": "boolean"},
                           "mass": {"type": "number", "minimum": 0}, "risk": {"enum": ["low", "high"]}},
            "required": ["id", "label"], "additionalProperties": False}},
        "humans": {"type": "array", "items": {
            "type": "object", "properties": {"id": _ID, "pose": _POSE},
            "required": ["id", "pose"], "additionalProperties": False}},
        "robot": {"type": "object", "properties": {
            "pose": _POSE, "max_speed": {"type": "number", "exclusiveMinimum": 0},
            "payload": {"type": "number", "minimum": 0}, "battery": {"type": "number", "minimum": 0, "maximum": 1}},
            "additionalProperties": False},
        "workspace": _POLYGON,
        "no_go": {"type": "array", "items": {
            "type": "object", "properties": {"name": {"type": "string"}, "polygon": _POLYGON},
            "required": ["name", "polygon"], "additionalProperties": False}},
    },
    "additionalProperties": False,
}


@dataclass(frozen=True)
class WorldObject:
    """An object in the world. ``at`` names the place it stands at, if it was placed by name."""

    id: str
    label: str
    pose: Pose
    color: str = ""
    at: str | None = None
    graspable: bool = True
    mass: float = 0.0
    risk: str = "low"

    def perception(self) -> dict[str, Any]:
        """As a ``/perception/objects`` record (DESIGN §4)."""
        return {"id": self.id, "label": self.label, "color": self.color, "pose": list(self.pose),
                "graspable": self.graspable}


@dataclass(frozen=True)
class Human:
    id: str
    pose: Pose


@dataclass(frozen=True)
class RobotSpec:
    pose: Pose = (0.0, 0.0, 0.0)
    max_speed: float = 0.5
    payload: float = 1.0
    battery: float = 1.0


@dataclass(frozen=True)
class Zone:
    name: str
    polygon: tuple[Point, ...]


@dataclass(frozen=True)
class World:
    """A checked world file."""

    places: dict[str, Pose] = field(default_factory=dict)
    objects: tuple[WorldObject, ...] = ()
    humans: tuple[Human, ...] = ()
    robot: RobotSpec = RobotSpec()
    workspace: tuple[Point, ...] = ()
    no_go: tuple[Zone, ...] = ()
    path: str = ""

    def place(self, name: str) -> Pose | None:
        return self.places.get(name)

    def object(self, object_id: str) -> WorldObject | None:
        return next((o for o in self.objects if o.id == object_id), None)

    def labels(self) -> list[str]:
        return sorted({o.label for o in self.objects})

    def colors(self) -> list[str]:
        return sorted({o.color for o in self.objects if o.color})


def inside(point: Sequence[float], polygon: Sequence[Sequence[float]]) -> bool:
    """Whether a point lies inside (or on the edge of) a polygon (even-odd rule)."""
    x, y = float(point[0]), float(point[1])
    result = False
    n = len(polygon)
    for i in range(n):
        (x1, y1), (x2, y2) = polygon[i], polygon[(i + 1) % n]
        if _on_segment(x, y, x1, y1, x2, y2):
            return True
        if (y1 > y) != (y2 > y) and x < (x2 - x1) * (y - y1) / (y2 - y1) + x1:
            result = not result
    return result


def _on_segment(x: float, y: float, x1: float, y1: float, x2: float, y2: float) -> bool:
    cross = (x2 - x1) * (y - y1) - (y2 - y1) * (x - x1)
    return abs(cross) < 1e-9 and min(x1, x2) - 1e-9 <= x <= max(x1, x2) + 1e-9 and \
        min(y1, y2) - 1e-9 <= y <= max(y1, y2) + 1e-9


def _pose(value: Sequence[float]) -> Pose:
    return (float(value[0]), float(value[1]), float(value[2]))


def load_world(path: str | os.PathLike[str]) -> World:
    """Read and check a world file.

    Raises:
        TreeError: every problem, each with ``FILE:LINE:COL``
    """
    data = read_located(path)
    start = Mark(str(path), 1, 1)
    if data is None:
        data = LMap()
        data.mark, data.key_marks, data.value_marks = start, {}, {}
    if not isinstance(data, LMap):
        raise TreeError([Diagnostic(start, "expected a mapping with places, objects, humans, robot, ...")])
    errors = schema_diagnostics(SCHEMA, data, data.mark, _schema_message)
    if errors:
        raise TreeError(errors)
    errors += _semantic_errors(data)
    if errors:
        raise TreeError(errors)
    places = {str(k): _pose(v) for k, v in data.get("places", {}).items()}
    objects = tuple(
        WorldObject(id=o["id"], label=o["label"], color=o.get("color", ""), at=o.get("at"),
                    pose=places[o["at"]] if "at" in o else _pose(o["pose"]), graspable=o.get("graspable", True),
                    mass=float(o.get("mass", 0.0)), risk=o.get("risk", "low"))
        for o in data.get("objects", []))
    robot = data.get("robot", {})
    return World(
        places=places, objects=objects,
        humans=tuple(Human(h["id"], _pose(h["pose"])) for h in data.get("humans", [])),
        robot=RobotSpec(pose=_pose(robot.get("pose", (0, 0, 0))), max_speed=float(robot.get("max_speed", 0.5)),
                        payload=float(robot.get("payload", 1.0)), battery=float(robot.get("battery", 1.0))),
        workspace=tuple((float(x), float(y)) for x, y in data.get("workspace", [])),
        no_go=tuple(Zone(z["name"], tuple((float(x), float(y)) for x, y in z["polygon"]))
                    for z in data.get("no_go", [])),
        path=str(path),
    )


def _schema_message(error: Any) -> str:
    if error.validator == "type":
        return f"expected {error.validator_value}, got {error.instance!r}{number_as_text_hint(error.instance)}"
    return str(error.message)


def _semantic_errors(data: LMap) -> list[Diagnostic]:
    errors: list[Diagnostic] = []
    places = data.get("places", LMap())
    ids: dict[str, Mark] = {}
    for section in ("objects", "humans"):
        items = data.get(section, LList())
        for index, item in enumerate(items):
            mark = items.at(index)
            if item["id"] in ids:
                errors.append(Diagnostic(item.at("id"),
                                         f"id '{item['id']}' is used twice (first at {ids[item['id']]})"))
            ids.setdefault(item["id"], item.at("id"))
            if section == "objects":
                errors += _placement_errors(item, mark, places)
            for key in ("pose",):
                if key in item and not all(math.isfinite(v) for v in item[key]):
                    errors.append(Diagnostic(item.at(key), f"{section}.{index}.{key}: numbers must be finite"))
    for name, pose in places.items():
        if not all(math.isfinite(v) for v in pose):
            errors.append(Diagnostic(places.at(name), f"place '{name}': numbers must be finite"))
    return errors + _geometry_errors(data)


def _finite(values: Sequence[float]) -> bool:
    return all(math.isfinite(v) for v in values)


def _polygon(owner: LMap, key: str, label: str, errors: list[Diagnostic]) -> tuple[Point, ...]:
    """The polygon under ``key``, or () after reporting why the paths cannot use it."""
    from vla_bt.robot.geometry import polygon_problem

    if key not in owner:
        return ()
    if not all(_finite(point) for point in owner[key]):
        errors.append(Diagnostic(owner.at(key), f"{label}: numbers must be finite"))
        return ()
    polygon = tuple((float(x), float(y)) for x, y in owner[key])
    problem = polygon_problem(polygon)
    if problem:
        errors.append(Diagnostic(owner.at(key), f"{label} {problem}"))
        return ()
    return polygon


def _geometry_errors(data: LMap) -> list[Diagnostic]:
    """Where the layout can never work: a polygon without area or crossing itself, a no-go zone's name used
    twice, a place, object or person outside the workspace, the robot starting outside it or in a no-go zone.

    A place, object or person inside a no-go zone is allowed (a toy lying on the stairs): the robot is
    refused only when it is sent there. A polygon that is reported is left out of the other checks.
    """
    from vla_bt.robot.geometry import point_problem  # the geometry module builds on this one

    errors: list[Diagnostic] = []
    workspace = _polygon(data, "workspace", "workspace", errors)
    zones: list[Zone] = []
    names: dict[str, Mark] = {}
    for zone in data.get("no_go", LList()):
        name = zone["name"]
        if name in names:
            errors.append(Diagnostic(zone.at("name"),
                                     f"no-go zone name '{name}' is used twice (first at {names[name]})"))
        names.setdefault(name, zone.at("name"))
        polygon = _polygon(zone, "polygon", f"no-go zone '{name}'", errors)
        if polygon:
            zones.append(Zone(name, polygon))

    bounds = World(workspace=workspace)
    located: list[tuple[Mark, str, Any]] = []
    places = data.get("places", LMap())
    located += [(places.key_at(name), f"place '{name}'", pose) for name, pose in places.items()]
    for section, label in (("objects", "object"), ("humans", "human")):
        items = data.get(section, LList())
        located += [(items.at(index), f"{label} '{item['id']}'", item["pose"])
                    for index, item in enumerate(items) if "pose" in item]
    for mark, label, pose in located:
        problem = point_problem(bounds, pose, label) if _finite(pose) else ""
        if problem:
            errors.append(Diagnostic(mark, problem))

    robot = data.get("robot", LMap())
    if "pose" in robot and not _finite(robot["pose"]):
        errors.append(Diagnostic(robot.at("pose"), "robot.pose: numbers must be finite"))
        return errors
    problem = point_problem(World(workspace=workspace, no_go=tuple(zones)), robot.get("pose", (0, 0, 0)), "robot pose")
    if problem and "pose" in robot:
        errors.append(Diagnostic(robot.key_at("pose"), problem))
    elif problem:
        where = data.key_at("robot") if "robot" in data else data.mark
        errors.append(Diagnostic(where, f"{problem} (the default: robot.pose is not given)"))
    return errors


def _placement_errors(item: LMap, mark: Mark, places: LMap) -> list[Diagnostic]:
    if ("at" in item) == ("pose" in item):
        return [Diagnostic(mark, f"object '{item['id']}' needs exactly one of 'at' (a place) or 'pose' [x, y, theta]")]
    if "at" in item and item["at"] not in places:
        return [Diagnostic(item.at("at"), f"object '{item['id']}' is at unknown place '{item['at']}'"
                           + (did_you_mean(item["at"], places) or f" (places: {', '.join(places) or 'none'})"))]
    return []
