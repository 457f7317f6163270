"""What the model is told: the instructions and a summary of what the robot perceives."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

INSTRUCTIONS = """You control a mobile robot with an arm. Carry out the user's instruction by \
calling the tools, one call per step, in order. Refer to objects as the user does ("the red cup") \
or by id. If the instruction is ambiguous or you cannot do it, call `ask` with a short question \
instead of guessing. Keep spoken replies short. Safety checks outside your control may refuse a \
step; you will be told why."""


def _pose(pose: Any) -> str:
    try:
        return f"({float(pose[0]):.1f}, {float(pose[1]):.1f})"
    except (TypeError, ValueError, IndexError):
        return "(?)"


def summarise_perception(objects: Sequence[Mapping[str, Any]] | None,
                         humans: Sequence[Mapping[str, Any]] | None) -> str:
    """One line per object and person the robot perceives, for the model."""
    lines = []
    for obj in objects or ():
        words = " ".join(str(w) for w in (obj.get("color"), obj.get("label")) if w)
        grasp = "" if obj.get("graspable", True) else ", not graspable"
        lines.append(f"- object {obj.get('id')}: {words} at {_pose(obj.get('pose'))}{grasp}")
    for human in humans or ():
        lines.append(f"- person {human.get('id')} at {_pose(human.get('pose'))}")
    return "The robot perceives:\n" + "\n".join(lines) if lines else ""
