"""Robot state and perception onto the blackboard, before every tick.

A tree pre-tick handler (a cross-cutting concern, outside the behaviours):
it advances the backend (simulator time, ROS callbacks) and publishes
``/robot/pose``, ``/robot/holding``, ``/robot/battery``, ``/perception/objects``
and ``/perception/humans``.
"""

from __future__ import annotations

import time

import py_trees

from vla_bt import blackboard as keys

from .gate import CommandGate

WRITES = (keys.ROBOT_POSE, keys.ROBOT_HOLDING, keys.ROBOT_BATTERY, keys.ROBOT_MOVING, keys.ROBOT_SPEED,
          keys.ROBOT_STAMP, keys.PERCEPTION_OBJECTS, keys.PERCEPTION_HUMANS, keys.PERCEPTION_STAMP)


class RobotPublisher:
    """Publishes a robot's state each tick.

    Args:
        robot: the gate around the backend
    """

    def __init__(self, robot: CommandGate):
        self.robot = robot
        self.blackboard = py_trees.blackboard.Client(name="RobotPublisher")
        for key in WRITES:
            self.blackboard.register_key(key, access=py_trees.common.Access.WRITE)

    def publish(self) -> None:
        state = self.robot.state()
        seen = self.robot.perceive()
        self.blackboard.set(keys.ROBOT_POSE, list(state.pose))
        self.blackboard.set(keys.ROBOT_HOLDING, state.holding)
        self.blackboard.set(keys.ROBOT_BATTERY, state.battery)
        self.blackboard.set(keys.ROBOT_MOVING, state.moving)
        self.blackboard.set(keys.ROBOT_SPEED, state.speed)
        self.blackboard.set(keys.ROBOT_STAMP, time.time())
        # A backend whose perception carries its own Unix time (ROS 2 messages) feeds heartbeat_fresh with it,
        # so stale sensors trip the guard; the simulator perceives on every step.
        fresh = getattr(self.robot.robot, "stamps_wall_time", False)
        self.blackboard.set(keys.PERCEPTION_STAMP, float(seen.stamp) if fresh else time.time())
        self.blackboard.set(keys.PERCEPTION_OBJECTS, seen.objects)
        self.blackboard.set(keys.PERCEPTION_HUMANS, seen.humans)

    def pre_tick(self, _tree: py_trees.trees.BehaviourTree) -> None:
        self.robot.step()
        self.publish()
