"""Gesture leaves: ``Wave`` waves the arm, ``Nod`` nods the head."""

from __future__ import annotations

from typing import Any

import py_trees

from vla_bt import blackboard as keys
from vla_bt.tree.declared import Leaf, Param, ParamUnavailableError

Status = py_trees.common.Status

ROBOT_GESTURE = "/robot/gesture"
"""The last gesture the robot made: ``{"gesture": NAME, ...}``."""


class Wave(Leaf):
    """Wave the robot's arm a number of times, then say so in the dialogue.

    Each wave takes ``ticks_per_wave`` ticks, so the gesture takes
    ``times * ticks_per_wave`` ticks in all and never blocks a tick.

    Args:
        name: node name (defaults to ``Wave``)
        times: how many waves, 1 to 10 (default 2); ``{key: /some/key}`` reads it from the blackboard
        ticks_per_wave: how many ticks each wave takes, at least 1 (default 1)

    Blackboard:
        writes ``/dialogue/history`` (a robot turn ``*waves*``) and ``/robot/gesture``
        (``{"gesture": "wave", "times": N}`` when done; ``{"gesture": "wave", "interrupted": true}``
        when stopped while waving)

    Returns:
        RUNNING while waving, with the progress as feedback (``wave 2/3``);
        SUCCESS on the tick the last wave ends; FAILURE when a parameter
        read from the blackboard is unset or out of range
    """

    DESCRIPTION = "Wave the robot's arm a number of times, then say so in the dialogue."
    PARAMS = {
        "times": Param({"type": "integer", "minimum": 1, "maximum": 10}, "how many waves (1 to 10)", default=2),
        "ticks_per_wave": Param({"type": "integer", "minimum": 1}, "how many ticks each wave takes", default=1),
    }
    WRITES = (keys.DIALOGUE_HISTORY, ROBOT_GESTURE)

    def __init__(self, name: str | None = None, **params: Any):
        super().__init__(name, **params)
        self._ticks = 0
        self._times = 0
        self._ticks_per_wave = 1
        self._problem: str | None = None

    def initialise(self) -> None:
        self._ticks, self._problem = 0, None
        try:
            self._times = self._checked("times")
            self._ticks_per_wave = self._checked("ticks_per_wave")
        except (ParamUnavailableError, ValueError) as exc:
            self._problem = str(exc)

    def _checked(self, name: str) -> int:
        """A parameter's value, checked again: a remapped one was not checked when the tree was loaded."""
        value = self.param(name)
        problems = self.PARAMS[name].errors(value)
        if problems:
            raise ValueError(f"parameter '{name}': {problems[0][1]}")
        return int(value)

    def update(self) -> Status:
        if self._problem is not None:
            self.feedback_message = self._problem
            return Status.FAILURE
        self._ticks += 1
        if self._ticks < self._times * self._ticks_per_wave:
            wave = (self._ticks - 1) // self._ticks_per_wave + 1
            self.feedback_message = f"wave {wave}/{self._times}"
            return Status.RUNNING
        keys.append_turn(self.blackboard, "robot", "*waves*")
        self.blackboard.set(ROBOT_GESTURE, {"gesture": "wave", "times": self._times})
        self.feedback_message = f"waved {self._times} time{'s' if self._times > 1 else ''}"
        return Status.SUCCESS

    def terminate(self, new_status: Status) -> None:
        # py_trees calls terminate() before it updates self.status: RUNNING → INVALID is an interruption
        # (a parent halted us, or the tree was stopped), not the end of the gesture.
        if new_status == Status.INVALID and self.status == Status.RUNNING:
            self.blackboard.set(ROBOT_GESTURE, {"gesture": "wave", "interrupted": True})
            self.feedback_message = f"interrupted after {self._ticks // max(self._ticks_per_wave, 1)} wave(s)"
        self._ticks = 0


class Nod(Leaf):
    """Nod the robot's head once.

    Args:
        name: node name (defaults to ``Nod``)

    Blackboard:
        writes ``/robot/gesture`` (``{"gesture": "nod"}``)

    Returns:
        SUCCESS on its first tick (a nod takes one tick)
    """

    DESCRIPTION = "Nod the robot's head once."
    WRITES = (ROBOT_GESTURE,)

    def update(self) -> Status:
        self.blackboard.set(ROBOT_GESTURE, {"gesture": "nod"})
        self.feedback_message = "nodded"
        return Status.SUCCESS
