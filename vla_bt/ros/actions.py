"""A goal sent to a ROS 2 action server, followed without blocking (the robot protocol's ``ActionHandle``).

Used by the ROS robot for navigation and the gripper, and by the generic
``RosActionClient`` behaviour. The goal is sent asynchronously; acceptance,
feedback and the result arrive in the executor's thread and only update
this object, which the tick thread polls. Accepted goals are registered
with the ``NodeHost`` until their result came, so that a shutdown can cancel
every goal still in flight.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from vla_bt.robot.protocol import ActionState

from .node import NodeHost

STATUS_SUCCEEDED, STATUS_CANCELED, STATUS_ABORTED = 4, 5, 6
"""Terminal goal states of ``action_msgs/msg/GoalStatus``."""


class RosAction:
    """A goal sent to a ROS 2 action server, as the robot protocol's ``ActionHandle``.

    Args:
        host: the node host (goals are registered there while in flight)
        skill: "navigate", "grasp", "place" or "hand_over"
        server: the action's name, for messages
        message: what it is doing while it runs
        interpret: turns (goal status, result message) into (state, message)
        on_end: called with the interpreted state and the result message (e.g. to update what is held)
    """

    def __init__(self, host: NodeHost, skill: str, server: str, message: str,
                 interpret: Callable[[int, Any], tuple[ActionState, str]] | None = None,
                 on_end: Callable[[ActionState, Any], None] | None = None):
        self.skill, self.server = skill, server
        self._host = host
        self._lock = threading.Lock()
        self._state = ActionState.RUNNING
        self._progress = 0.0
        self._message = message
        self._goal: Any = None
        self._cancel_wanted = False
        self._interpret = interpret or (lambda status, result: (generic_state(status), ""))
        self._on_end = on_end
        self.feedback: Any = None

    @property
    def state(self) -> ActionState:
        return self._state

    @property
    def progress(self) -> float:
        return 1.0 if self._state is ActionState.SUCCEEDED else self._progress

    @property
    def message(self) -> str:
        return self._message

    def cancel(self, reason: str = "cancelled") -> None:
        """Ask the server to cancel; the state is CANCELLED at once (idempotent)."""
        with self._lock:
            if self._state is not ActionState.RUNNING:
                return
            self._state, self._message, self._cancel_wanted = ActionState.CANCELLED, reason, True
            goal = self._goal
        if goal is not None:
            self._host.cancel_goal(goal)

    def fail(self, message: str) -> RosAction:
        self._end(ActionState.FAILED, message)
        return self

    def send(self, client: Any, goal: Any, on_feedback: Callable[[Any], tuple[float, str]] | None = None) -> RosAction:
        """Send ``goal`` through ``client`` without waiting for anything."""
        def feedback(message: Any) -> None:
            self.feedback = message.feedback
            if on_feedback is not None and self._state is ActionState.RUNNING:
                progress, text = on_feedback(message.feedback)
                with self._lock:
                    if self._state is ActionState.RUNNING:
                        self._progress, self._message = max(0.0, min(1.0, progress)), text
        future = client.send_goal_async(goal, feedback_callback=feedback)
        self._host.track_request(future)
        future.add_done_callback(self._responded)
        return self

    def _responded(self, future: Any) -> None:
        try:
            goal = future.result()
        except Exception as error:  # noqa: BLE001 - any transport failure ends the action
            self._end(ActionState.FAILED, f"goal to {self.server} not sent: {error}")
            return
        if goal is None or not goal.accepted:
            self._end(ActionState.FAILED, f"{self.server} rejected the goal")
            return
        self._host.track(goal)
        with self._lock:
            self._goal, cancel = goal, self._cancel_wanted
        if cancel:
            self._host.cancel_goal(goal)
        goal.get_result_async().add_done_callback(lambda f: self._finished(goal, f))

    def _finished(self, goal: Any, future: Any) -> None:
        self._host.untrack(goal)
        try:
            response = future.result()
            state, message = self._interpret(response.status, response.result)
            result = response.result
        except Exception as error:  # noqa: BLE001 - a lost result ends the action
            state, message, result = ActionState.FAILED, f"no result from {self.server}: {error}", None
        if self._on_end is not None:
            self._on_end(state, result)
        self._end(state, message)

    def _end(self, state: ActionState, message: str) -> None:
        with self._lock:
            if self._state is ActionState.RUNNING:
                self._state, self._message = state, message or self._message

    def __repr__(self) -> str:
        return f"<RosAction {self.skill} {self._state.value} {self.progress:.2f}: {self._message}>"


def generic_state(status: int) -> ActionState:
    """SUCCEEDED, CANCELLED or FAILED for a terminal goal status."""
    return {STATUS_SUCCEEDED: ActionState.SUCCEEDED, STATUS_CANCELED: ActionState.CANCELLED}.get(
        status, ActionState.FAILED)
