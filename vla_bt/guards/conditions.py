"""Safety conditions: what a ``Guard`` checks before every tick of its child.

Each condition is a small object with ``check(view) -> reason | None``: a
reason (in words) when it does not hold. Conditions are registered by name
with the JSON Schema of their argument, so a tree's ``conditions:`` list is
checked when the tree loads; plugins add their own with ``register_condition``.

=====================  ==============================  =============================================
condition              argument                        holds when
=====================  ==============================  =============================================
``estop_released``     —                               ``/safety/estop`` is not set
``battery_above``      fraction 0…1                    ``/robot/battery`` is above it
``inside_workspace``   —                               the robot is inside the world's workspace
``outside_no_go``      —                               the robot is outside every no-go zone
``human_clearance``    ``{min_distance, when}``        nobody is closer than ``min_distance`` m
                                                       (``when: moving`` (default) or ``always``)
``heartbeat_fresh``    ``{key, max_age}``              the Unix time stored at ``key`` is recent
``speed_at_most``      m/s                             ``/robot/speed`` is at most this
``expr``               expression text                 a comparison over blackboard values holds,
                                                       e.g. ``"robot.battery > 0.3"`` (no ``eval``)
=====================  ==============================  =============================================
"""

from __future__ import annotations

import math
import time
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import simpleeval

from vla_bt import blackboard as keys
from vla_bt.robot.world import World, inside


class View(Protocol):
    """What a condition may look at: blackboard values and the world."""

    world: World | None

    def get(self, key: str, default: Any = None) -> Any: ...


class Condition(Protocol):
    name: str
    keys: tuple[str, ...]  # blackboard keys it reads

    def check(self, view: View) -> str | None: ...


@dataclass(frozen=True)
class ConditionType:
    """A registered condition: its argument schema and a factory."""

    name: str
    schema: Mapping[str, Any] | None  # None: takes no argument
    make: Callable[[Any], Condition]
    description: str


CONDITIONS: dict[str, ConditionType] = {}


def register_condition(name: str, schema: Mapping[str, Any] | None, description: str) -> Callable[[Any], Any]:
    """Class decorator registering a condition (plugins use it too)."""
    def wrap(factory: Any) -> Any:
        CONDITIONS[name] = ConditionType(name, schema, factory, description)
        return factory
    return wrap


@dataclass
class _Simple:
    name: str
    keys: tuple[str, ...]
    test: Callable[[View], str | None]

    def check(self, view: View) -> str | None:
        return self.test(view)


def _estop(view: View) -> str | None:
    return "the emergency stop is pressed" if view.get(keys.SAFETY_ESTOP, False) else None


def _pose(view: View) -> tuple[float, float] | None:
    pose = view.get(keys.ROBOT_POSE)
    return (float(pose[0]), float(pose[1])) if pose else None


def _workspace(view: View) -> str | None:
    pose, world = _pose(view), view.world
    if pose is None or world is None or not world.workspace:
        return None
    return None if inside(pose, world.workspace) else f"the robot at ({pose[0]:.2f}, {pose[1]:.2f}) left the workspace"


def _no_go(view: View) -> str | None:
    pose, world = _pose(view), view.world
    if pose is None or world is None:
        return None
    for zone in world.no_go:
        if inside(pose, zone.polygon):
            return f"the robot is inside no-go zone '{zone.name}'"
    return None


@register_condition("estop_released", None, "the emergency stop is not pressed")
def estop_released(_: Any = None) -> Condition:
    return _Simple("estop_released", (keys.SAFETY_ESTOP,), _estop)


@register_condition("inside_workspace", None, "the robot is inside the workspace polygon")
def inside_workspace(_: Any = None) -> Condition:
    return _Simple("inside_workspace", (keys.ROBOT_POSE,), _workspace)


@register_condition("outside_no_go", None, "the robot is outside every no-go zone")
def outside_no_go(_: Any = None) -> Condition:
    return _Simple("outside_no_go", (keys.ROBOT_POSE,), _no_go)


@register_condition("battery_above", {"type": "number", "minimum": 0, "maximum": 1},
                    "the battery charge (0..1) is above the given fraction")
def battery_above(limit: float) -> Condition:
    def test(view: View) -> str | None:
        level = view.get(keys.ROBOT_BATTERY)
        if level is None or float(level) > limit:
            return None
        return f"battery at {float(level):.0%}, needs more than {limit:.0%}"
    return _Simple("battery_above", (keys.ROBOT_BATTERY,), test)


@register_condition("human_clearance", {
    "type": "object", "properties": {"min_distance": {"type": "number", "exclusiveMinimum": 0},
                                     "when": {"enum": ["moving", "always"]}},
    "required": ["min_distance"], "additionalProperties": False,
}, "nobody is closer to the robot than min_distance metres (while moving, or always)")
def human_clearance(arg: Mapping[str, Any]) -> Condition:
    distance, when = float(arg["min_distance"]), arg.get("when", "moving")

    def test(view: View) -> str | None:
        pose = _pose(view)
        # While a guard holds the robot, "moving" also covers the motion it would resume.
        resting = not view.get(keys.ROBOT_MOVING, False) and not getattr(view, "holding", False)
        if pose is None or (when == "moving" and resting):
            return None
        for human in view.get(keys.PERCEPTION_HUMANS, []) or []:
            gap = math.dist(pose, (float(human["pose"][0]), float(human["pose"][1])))
            if gap < distance:
                return f"{human.get('id', 'a person')} is {gap:.2f} m away (clearance {distance:g} m)"
        return None
    return _Simple("human_clearance", (keys.ROBOT_POSE, keys.ROBOT_MOVING, keys.PERCEPTION_HUMANS), test)


@register_condition("heartbeat_fresh", {
    "type": "object", "properties": {"key": {"type": "string", "pattern": "^/"},
                                     "max_age": {"type": "number", "exclusiveMinimum": 0}},
    "required": ["key", "max_age"], "additionalProperties": False,
}, "the Unix time stored at key (e.g. /perception/stamp) is at most max_age seconds old")
def heartbeat_fresh(arg: Mapping[str, Any]) -> Condition:
    key, max_age = str(arg["key"]), float(arg["max_age"])

    def test(view: View) -> str | None:
        stamp = view.get(key)
        if not isinstance(stamp, (int, float)):
            return f"no heartbeat on {key}"
        age = time.time() - float(stamp)
        return f"{key} is {age:.2f} s old (max {max_age:g} s)" if age > max_age else None
    return _Simple("heartbeat_fresh", (key,), test)


@register_condition("speed_at_most", {"type": "number", "exclusiveMinimum": 0},
                    "the robot's speed (/robot/speed) is at most this many m/s")
def speed_at_most(limit: float) -> Condition:
    def test(view: View) -> str | None:
        speed = view.get(keys.ROBOT_SPEED)
        return f"speed {float(speed):.2f} m/s above {limit:g} m/s" if speed is not None and speed > limit else None
    return _Simple("speed_at_most", (keys.ROBOT_SPEED,), test)


EXPR_KEYS = (keys.ROBOT_POSE, keys.ROBOT_BATTERY, keys.ROBOT_HOLDING, keys.ROBOT_MOVING, keys.SAFETY_ESTOP,
             keys.PERCEPTION_HUMANS, keys.PERCEPTION_OBJECTS, "/robot/max_speed", keys.ROBOT_SPEED)


def _namespace(view: View) -> dict[str, Any]:
    """Blackboard values as nested names: ``/robot/battery`` → ``robot.battery``."""
    root: dict[str, Any] = {}
    for key in EXPR_KEYS:
        parts = key.strip("/").split("/")
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = view.get(key)
    def wrap(value: Any) -> Any:
        return types.SimpleNamespace(**{k: wrap(v) for k, v in value.items()}) if isinstance(value, dict) else value
    return {name: wrap(value) for name, value in root.items()}


@register_condition("expr", {"type": "string", "minLength": 1, "maxLength": 500},
                    "a simple comparison over blackboard values, e.g. 'robot.battery > 0.3' (evaluated safely)")
def expr(text: str) -> Condition:
    evaluator = simpleeval.SimpleEval(functions={"len": len, "abs": abs, "min": min, "max": max})

    def test(view: View) -> str | None:
        evaluator.names = _namespace(view)
        try:
            held = bool(evaluator.eval(text))
        except Exception as exc:  # noqa: BLE001 - an expression that cannot be evaluated does not hold
            return f"'{text}' cannot be evaluated: {exc}"
        return None if held else f"'{text}' is false"
    return _Simple("expr", EXPR_KEYS, test)


def conditions_schema() -> dict[str, Any]:
    """JSON Schema of one entry of a Guard's ``conditions`` list, from the registry."""
    bare = [c.name for c in CONDITIONS.values() if c.schema is None]
    with_arg = {c.name: dict(c.schema) for c in CONDITIONS.values() if c.schema is not None}
    return {"anyOf": [
        {"enum": bare},
        {"type": "object", "properties": with_arg, "minProperties": 1, "maxProperties": 1,
         "additionalProperties": False},
    ]}


def build(entry: Any) -> Condition:
    """A condition from one (already schema-checked) entry: ``"name"`` or ``{name: argument}``."""
    if isinstance(entry, str):
        return CONDITIONS[entry].make(None)
    (name, argument), = entry.items()
    return CONDITIONS[name].make(argument)
