"""Blackboard namespaces (DESIGN §4) and the records stored under them.

Keys are absolute. Leaves register each key they touch (py_trees' per-key
access control); these constants keep the spelling in one place.
"""

from __future__ import annotations

import time
from typing import Literal, TypedDict

import py_trees

DIALOGUE_UTTERANCE = "/dialogue/utterance"
DIALOGUE_HISTORY = "/dialogue/history"
LLM_STREAM = "/llm/stream"
PLAN_STEPS = "/plan/steps"
PLAN_DONE = "/plan/done"
PERCEPTION_OBJECTS = "/perception/objects"
PERCEPTION_HUMANS = "/perception/humans"
ROBOT_POSE = "/robot/pose"
ROBOT_HOLDING = "/robot/holding"
ROBOT_BATTERY = "/robot/battery"
SAFETY_ESTOP = "/safety/estop"
SAFETY_LAST_TRIP = "/safety/last_trip"

HISTORY_LIMIT = 50
"""Turns kept in ``/dialogue/history``; the oldest are dropped first."""


class Turn(TypedDict):
    """One turn of the dialogue: who spoke, what, and when (Unix time, s)."""

    role: Literal["user", "robot"]
    text: str
    t: float


class Step(TypedDict):
    """One validated plan step."""

    id: str
    skill: str
    args: dict
    risk: str


def append_turn(client: py_trees.blackboard.Client, role: Literal["user", "robot"], text: str,
                limit: int = HISTORY_LIMIT) -> Turn:
    """Append a turn to ``/dialogue/history`` (client needs write access), bounded to ``limit``.

    A new list is stored rather than the old one mutated, so the blackboard's
    activity stream and snapshots see the change.
    """
    turn = Turn(role=role, text=text, t=time.time())
    history = list(client.get(DIALOGUE_HISTORY)) if client.exists(DIALOGUE_HISTORY) else []
    history.append(turn)
    client.set(DIALOGUE_HISTORY, history[-limit:])
    return turn


def read(key: str, default: object = None) -> object:
    """Read any key without a client (for the runner and reports, not for behaviours)."""
    return py_trees.blackboard.Blackboard.get(key) if py_trees.blackboard.Blackboard.exists(key) else default

LLM_TOOL_RESULTS = "/llm/tool_results"
"""Outputs of tool calls (validated, refused, done) to return to the model with the next turn."""
DIALOGUE_CONTEXT = "/dialogue/context"
"""What "it", "there" and "the other one" refer to (``intent.grounding.Context`` as a dict)."""
PLAN_REJECTED = "/plan/rejected"
"""Why the current plan was cut short (a refused or unclear step), or ``None``."""
PLAN_OVERTURNED = "/plan/overturned"
"""Steps refused after they were accepted (the stream contradicted their call): step id → the refusal."""
DIALOGUE_CONFIRMATIONS = "/dialogue/confirmations"
"""Answers to Confirm questions in this dialogue: ``{question, answer, t}`` with answer yes|no|timeout."""
ROBOT_MOVING = "/robot/moving"
"""True while a robot action runs."""
PERCEPTION_STAMP = "/perception/stamp"
"""Unix time of the latest perception update (for ``heartbeat_fresh``)."""
ROBOT_STAMP = "/robot/stamp"
"""Unix time of the latest robot state update (odometry heartbeat)."""
ROBOT_SPEED = "/robot/speed"
"""Linear speed in m/s (for ``speed_at_most``)."""
