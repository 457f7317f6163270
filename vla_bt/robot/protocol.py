"""The robot protocol: what skill leaves ask of any robot backend (simulator or ROS 2).

Every motion is asynchronous: a command returns an ``ActionHandle`` at once,
which the leaf polls in ``update()`` (progress, result) and cancels in
``terminate()``. Nothing here blocks a tick.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

Pose = tuple[float, float, float]


class ActionState(enum.Enum):
    """Where an action is: still going, or how it ended."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def done(self) -> bool:
        return self is not ActionState.RUNNING


@runtime_checkable
class ActionHandle(Protocol):
    """A running robot action.

    Attributes:
        state: RUNNING until it ends
        progress: 0.0 … 1.0
        message: what is happening, or why it failed
    """

    @property
    def state(self) -> ActionState: ...

    @property
    def progress(self) -> float: ...

    @property
    def message(self) -> str: ...

    def cancel(self) -> None:
        """Stop the action; the state becomes CANCELLED (idempotent)."""


@dataclass
class RobotState:
    """The robot's state as published to ``/robot/*``."""

    pose: Pose = (0.0, 0.0, 0.0)
    holding: str | None = None
    battery: float = 1.0
    moving: bool = False
    stopped: bool = False  # a safe stop is latched until the next command
    speed: float = 0.0  # m/s, linear


@dataclass
class Perception:
    """What the robot perceives, as ``/perception/objects`` and ``/perception/humans`` records."""

    objects: list[dict[str, Any]] = field(default_factory=list)
    humans: list[dict[str, Any]] = field(default_factory=list)
    stamp: float = 0.0


@runtime_checkable
class Robot(Protocol):
    """A robot backend. Commands return at once with a handle.

    ``setup()`` connects (ROS 2 node, simulator clock); ``shutdown()`` cancels
    everything still running and releases resources.
    """

    def setup(self, timeout: float) -> None: ...

    def shutdown(self) -> None: ...

    def navigate(self, pose: Pose, speed: float | None = None) -> ActionHandle:
        """Drive to ``pose`` (metres, radians) at most at ``speed`` m/s."""

    def grasp(self, object_id: str) -> ActionHandle:
        """Pick up an object within reach."""

    def place(self, pose: Pose) -> ActionHandle:
        """Put the held object down at ``pose`` (within reach)."""

    def hand_over(self, human_id: str) -> ActionHandle:
        """Hand the held object to a person within reach."""

    def safe_stop(self, reason: str) -> None:
        """Stop all motion now (cancel every running action); must never fail."""

    def state(self) -> RobotState: ...

    def perceive(self) -> Perception: ...

    def step(self) -> None:
        """Advance the backend's own time or process its callbacks (called before each tick)."""


@dataclass
class Command:
    """A command sent to a robot backend, as recorded in the audit log and ``--json``."""

    skill: str
    args: dict[str, Any]
    step: str | None = None
    t: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"skill": self.skill, "args": self.args, "step": self.step, "t": self.t}


def as_pose(value: Sequence[float]) -> Pose:
    return (float(value[0]), float(value[1]), float(value[2]))
