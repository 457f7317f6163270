"""A probe leaf that breaks while the robot is moving (the safety tests name it by dotted path).

``type: tests.helpers.raising.RaiseWhileMoving`` is allowed when ``tests.helpers``
is on the configuration's import allowlist. Placed next to ``ExecutePlan`` under
a ``Parallel``, it raises as soon as a robot action is under way, so a test can
check that an exception in any leaf still ends the run with a safe stop.
"""

from __future__ import annotations

import py_trees

Status = py_trees.common.Status
ROBOT_MOVING = "/robot/moving"


class ProbeFailureError(RuntimeError):
    """The deliberate failure of ``RaiseWhileMoving``."""


class RaiseWhileMoving(py_trees.behaviour.Behaviour):
    """RUNNING while the robot stands still; raises in ``update()`` once it moves.

    Args:
        name: node name

    Blackboard:
        reads ``/robot/moving``

    Returns:
        RUNNING until the robot moves; then ``update()`` raises ``ProbeFailureError``
    """

    def __init__(self, name: str = "RaiseWhileMoving"):
        super().__init__(name=name)
        self.blackboard = self.attach_blackboard_client(name=name)
        self.blackboard.register_key(ROBOT_MOVING, access=py_trees.common.Access.READ)

    def update(self) -> py_trees.common.Status:
        if self.blackboard.exists(ROBOT_MOVING) and self.blackboard.get(ROBOT_MOVING):
            raise ProbeFailureError("probe failure while the robot is moving")
        self.feedback_message = "waiting for the robot to move"
        return Status.RUNNING
