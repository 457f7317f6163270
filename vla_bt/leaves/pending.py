"""Leaves declared with their parameters whose behaviour lands in later work.

They validate and render in trees today; ticked, they fail with a reason.
"""

from __future__ import annotations

from vla_bt import blackboard as keys
from vla_bt.tree.declared import NotYetImplemented, Param

TARGET = {
    "anyOf": [
        {"type": "string", "minLength": 1},
        {"type": "array", "items": {"type": "number"}, "minItems": 3, "maxItems": 3},
    ]
}


class ParseIntent(NotYetImplemented):
    """Turn each completed tool call of the model stream into a validated plan step."""

    READS = (keys.LLM_STREAM, keys.PERCEPTION_OBJECTS, keys.PERCEPTION_HUMANS)
    WRITES = (keys.PLAN_STEPS, keys.PLAN_DONE)


class ExecutePlan(NotYetImplemented):
    """Run each plan step's skill leaf as soon as the step is validated."""

    READS = (keys.PLAN_STEPS, keys.PLAN_DONE)


class Navigate(NotYetImplemented):
    """Drive to a place, an object or a pose [x, y, theta]."""

    PARAMS = {
        "target": Param(TARGET, "place name, object reference or [x, y, theta] (m, m, rad)"),
        "speed": Param({"type": ["number", "null"], "exclusiveMinimum": 0},
                       "m/s; null uses the robot's default", default=None),
    }
    READS = (keys.ROBOT_POSE, keys.PERCEPTION_OBJECTS)
    TOOL = "navigate"


class Grasp(NotYetImplemented):
    """Pick up an object by reference ("red cup", "cup_red", "it")."""

    PARAMS = {"object": Param({"type": "string", "minLength": 1}, "object reference")}
    READS = (keys.PERCEPTION_OBJECTS, keys.ROBOT_HOLDING)
    TOOL = "grasp"


class Place(NotYetImplemented):
    """Put the held object down at a place or on an object ("on the table")."""

    PARAMS = {"target": Param({"type": "string", "minLength": 1}, "place name or object reference")}
    READS = (keys.PERCEPTION_OBJECTS, keys.ROBOT_HOLDING)
    TOOL = "place"


class HandOver(NotYetImplemented):
    """Hand the held object to a person."""

    PARAMS = {"to": Param({"type": "string", "minLength": 1}, 'human id or "user"')}
    READS = (keys.PERCEPTION_HUMANS, keys.ROBOT_HOLDING)
    TOOL = "hand_over"


class Stop(NotYetImplemented):
    """Stop the robot safely, now."""

    TOOL = "stop"


class Confirm(NotYetImplemented):
    """Ask a yes/no question; the next utterance answers it; a timeout counts as no."""

    PARAMS = {
        "question": Param({"type": "string", "minLength": 1}, "the yes/no question"),
        "timeout": Param({"type": "number", "exclusiveMinimum": 0},
                         "seconds to wait for an answer before it counts as no", default=10.0),
    }
    WRITES = (keys.DIALOGUE_HISTORY,)
