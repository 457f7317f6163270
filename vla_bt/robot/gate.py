"""The command gate: the only way from a leaf to a robot backend.

Every command is checked by the gate's checks (plan validation, rate limits —
the safety layer adds them), written to the audit log as ``command`` *before*
it is sent, and recorded for ``--json``. A refused command is audited as
``rejected`` and never reaches the robot.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from vla_bt.guards.audit import AuditLog, trim

from .protocol import ActionHandle, ActionState, Command, Perception, Pose, Robot, RobotState

Check = Callable[[Command], "str | None"]


class CommandRefusedError(Exception):
    """A check refused a command; the message says why."""


class RefusedHandle:
    """The handle of a command that was never sent."""

    def __init__(self, reason: str):
        self._reason = reason

    state = ActionState.FAILED
    progress = 0.0

    @property
    def message(self) -> str:
        return self._reason

    def cancel(self) -> None:
        pass


class CommandGate:
    """Wraps a robot backend; leaves receive this as ``setup(robot=...)``.

    Args:
        robot: the backend (simulator or ROS 2)
        audit: the audit log
        checks: functions returning a refusal reason, or ``None`` to allow
    """

    def __init__(self, robot: Robot, audit: AuditLog | None = None, checks: list[Check] | None = None):
        self.robot = robot
        self.audit = audit or AuditLog()
        self.checks = list(checks or [])
        self.commands: list[Command] = []  # the newest MEMORY_LIMIT; the audit file has all

    def _send(self, skill: str, args: dict[str, Any], step: str | None,
              send: Callable[[dict[str, Any]], ActionHandle]) -> ActionHandle:
        command = Command(skill, args, step, time.time())
        for check in self.checks:
            reason = check(command)
            if reason:
                self.audit.write("rejected", skill=skill, args=args, reason=reason, step=step)
                raise CommandRefusedError(reason)
        self.audit.write("command", skill=skill, args=args, step=step)
        self.commands.append(command)
        trim(self.commands)
        return send(command.args)  # as checked (a check may have clamped a value)

    def navigate(self, pose: Pose, speed: float | None = None, step: str | None = None,
                 target: str | None = None) -> ActionHandle:
        args = {"target": target, "pose": [round(v, 4) for v in pose], "speed": speed}
        return self._send("navigate", args, step, lambda a: self.robot.navigate(pose, a["speed"]))

    def grasp(self, object_id: str, step: str | None = None) -> ActionHandle:
        return self._send("grasp", {"object": object_id}, step, lambda a: self.robot.grasp(a["object"]))

    def place(self, pose: Pose, step: str | None = None, target: str | None = None) -> ActionHandle:
        args = {"target": target, "pose": [round(v, 4) for v in pose]}
        return self._send("place", args, step, lambda a: self.robot.place(pose))

    def hand_over(self, human_id: str, step: str | None = None) -> ActionHandle:
        return self._send("hand_over", {"to": human_id}, step, lambda a: self.robot.hand_over(a["to"]))

    def safe_stop(self, reason: str, step: str | None = None) -> None:
        """Stop now. Never refused: stopping is always allowed.

        The robot is stopped before the stop is recorded, so an audit log that
        cannot be written (a full disk) never keeps the robot moving; the write's
        error is raised afterwards.
        """
        self.commands.append(Command("stop", {"reason": reason}, step, time.time()))
        trim(self.commands)
        try:
            self.robot.safe_stop(reason)
        finally:
            self.audit.write("safe_stop", reason=reason, step=step)

    def state(self) -> RobotState:
        return self.robot.state()

    def perceive(self) -> Perception:
        return self.robot.perceive()

    def setup(self, timeout: float) -> None:
        self.robot.setup(timeout)

    def shutdown(self) -> None:
        self.robot.shutdown()

    def step(self) -> None:
        self.robot.step()
