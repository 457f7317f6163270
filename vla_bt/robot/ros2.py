"""The ROS 2 robot backend (``--robot ros2``): the robot protocol over rclpy.

* ``navigate`` sends a Nav2 ``nav2_msgs/action/NavigateToPose`` goal in the fixed
  frame (``map``); its feedback (distance remaining, time remaining, recoveries)
  becomes the handle's progress and message and ``/robot/navigation`` on the
  blackboard; a speed is sent first as a Nav2 ``nav2_msgs/msg/SpeedLimit``.
* ``grasp`` closes the gripper, ``place`` and ``hand_over`` open it, through
  ``control_msgs/action/GripperCommand``. A grasp succeeds when the gripper
  stalled on something (closing all the way means it closed on nothing; see
  ``gripper.grasp_requires_stall``); the object held is the one the command
  named, unless perception shows another one in the gripper frame. Before
  each gripper goal, what it is for is announced as JSON on
  ``gripper.intent_topic`` (``{"skill": "grasp", "object": "cup_red"}``,
  ``{"skill": "place", "pose": [x, y, theta]}``, ``{"skill": "hand_over", "to": "alice"}``),
  for manipulation stacks (and the simulated robot node) that can use it.
* ``safe_stop`` cancels every goal in flight and publishes a zero
  ``geometry_msgs/msg/Twist`` on ``cmd_vel``.
* The pose comes from ``nav_msgs/msg/Odometry`` (``odom``) or, TF-free, from a
  ``geometry_msgs/msg/PoseStamped`` or ``PoseWithCovarianceStamped`` topic; the
  battery from ``sensor_msgs/msg/BatteryState``; perception from
  ``visualization_msgs/msg/MarkerArray`` (``vla_bt.ros.markers``).
* ``std_msgs/msg/Bool`` on the e-stop topic presses and releases the
  ``EStop`` input, which alone writes ``/safety/estop``.

As everywhere in the project, one action runs at a time: a new command
cancels the running one. Nothing here blocks a tick: goals are sent
asynchronously, results and feedback arrive in the executor's thread.

Example:
    >>> robot = Ros2Robot(load_ros2_config("config"), estop=estop)
    >>> robot.setup(timeout=10.0)          # creates the node; the executor spins in its own thread
    >>> handle = robot.navigate((4.0, 2.0, 0.0))
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

import py_trees

from vla_bt.guards.estop import EStop
from vla_bt.robot.protocol import ActionHandle, ActionState, Perception, Pose, RobotState
from vla_bt.ros.actions import STATUS_ABORTED, STATUS_CANCELED, STATUS_SUCCEEDED, RosAction
from vla_bt.ros.config import Ros2Config
from vla_bt.ros.markers import MarkerScene
from vla_bt.ros.messages import qos, quaternion, yaw_of
from vla_bt.ros.node import NodeHost, shared_host, wait_until

log = logging.getLogger(__name__)
HELD_GRACE_S = 0.3
"""Markers received this soon after a gripper result may predate it: they do not override what is held."""
ROBOT_NAVIGATION = "/robot/navigation"
"""Blackboard key: the latest navigation feedback ``{target, distance_remaining, eta_s, recoveries, progress}``."""


def _xy(pose: Pose) -> str:
    return f"({pose[0]:g}, {pose[1]:g})"


def _seconds(duration: Any) -> float:
    return float(duration.sec) + float(duration.nanosec) * 1e-9


class Ros2Robot:
    """The robot protocol over ROS 2 (implements ``vla_bt.robot.protocol.Robot``).

    Args:
        config: names and settings (``config/ros2.yaml``)
        host: the node host to use (``vla-bt ros`` passes its own); by default the process's
            shared host, started in ``setup()``
        estop: the e-stop input the e-stop topic presses; without one, a press stops the robot
            and refuses commands until released

    Attributes:
        node: the rclpy node (``None`` before ``setup()``)
    """

    stamps_wall_time = True  # perceive().stamp is the Unix time of the latest marker message

    def __init__(self, config: Ros2Config | None = None, *, host: NodeHost | None = None,
                 estop: EStop | None = None):
        self.config = config or Ros2Config()
        self.estop = estop
        self._host = host
        self._owns_host = False
        self.node: Any = None
        self._lock = threading.RLock()
        self._pose: Pose = (0.0, 0.0, 0.0)
        self._pose_seen = False
        self._pose_at = 0.0
        self._speed = 0.0
        self._battery = 1.0
        self._holding: str | None = None
        self._holding_at = 0.0
        self._perceived_at = 0.0
        self._perception_shows_held = False
        self._perception_stamp = 0.0
        self._stopped = False
        self._estop_pressed = False
        self._estop_heard = 0.0
        self._active: RosAction | None = None
        self._scene = MarkerScene(self.config.frame_id, self.config.base_frame, self.config.gripper_frame,
                                  self.config.perception.human_ns)
        self._nav_client: Any = None
        self._gripper_client: Any = None
        self._publishers: dict[str, Any] = {}
        self._subscriptions: list[Any] = []
        self._blackboard: py_trees.blackboard.Client | None = None
        self._navigation: dict[str, Any] | None = None
        self.on_perception: Callable[[], None] | None = None
        """Called (from the executor's thread) when people appear, leave or move (the runner's ``wake``)."""

    # -- connection -------------------------------------------------------------------

    @property
    def host(self) -> NodeHost | None:
        return self._host

    def setup(self, timeout: float = 10.0) -> None:
        """Create the node's clients, publishers and subscriptions; wait (at most ``timeout``) until they connect.

        It waits for the action servers, the first pose and the first perception, so that the first
        tick sees where the robot is and what is around it. What is still missing then is not an
        error here: a command sent to a missing server fails with the reason.
        """
        if self.node is not None:
            return
        from geometry_msgs.msg import Twist
        from rclpy.action import ActionClient
        from sensor_msgs.msg import BatteryState
        from std_msgs.msg import Bool, String
        from visualization_msgs.msg import MarkerArray

        from vla_bt.ros.messages import interface_type

        c = self.config
        if self._host is None:
            self._host, self._owns_host = shared_host(c.node_name, c.namespace), True
            self.node = self._host.acquire()
        else:
            self.node = self._host.start()
        node = self.node
        self._blackboard = py_trees.blackboard.Client(name="Ros2Robot")
        self._blackboard.register_key(ROBOT_NAVIGATION, access=py_trees.common.Access.WRITE)
        self._nav_client = ActionClient(node, interface_type("nav2_msgs/action/NavigateToPose", "action"),
                                        c.navigate.action)
        if c.gripper.action:
            self._gripper_client = ActionClient(node, interface_type("control_msgs/action/GripperCommand", "action"),
                                                c.gripper.action)
        self._publishers["cmd_vel"] = node.create_publisher(Twist, c.cmd_vel, qos())
        if c.navigate.speed_limit_topic:
            speed_limit = interface_type("nav2_msgs/msg/SpeedLimit", "msg")
            self._publishers["speed_limit"] = node.create_publisher(speed_limit, c.navigate.speed_limit_topic,
                                                                    qos(latched=True, depth=1))
        if c.gripper.intent_topic:
            self._publishers["intent"] = node.create_publisher(String, c.gripper.intent_topic,
                                                               qos(latched=True, depth=1))
        sensor = qos(reliable=False, depth=5)
        subscribe = self._subscriptions.append
        subscribe(node.create_subscription(interface_type(c.pose.type, "msg"), c.pose.topic, self._on_pose, sensor))
        if c.battery:
            subscribe(node.create_subscription(BatteryState, c.battery, self._on_battery, sensor))
        subscribe(node.create_subscription(Bool, c.estop.topic, self._on_estop, qos()))
        if c.perception.objects:
            subscribe(node.create_subscription(MarkerArray, c.perception.objects,
                                               lambda m: self._on_markers(m, "objects", False), sensor))
        if c.perception.humans and c.perception.humans != c.perception.objects:
            subscribe(node.create_subscription(MarkerArray, c.perception.humans,
                                               lambda m: self._on_markers(m, "humans", True), sensor))
        self._estop_heard = time.monotonic()
        clients = [x for x in (self._nav_client, self._gripper_client) if x is not None]
        perceiving = bool(c.perception.objects or c.perception.humans)
        wait_until(lambda: all(x.server_is_ready() for x in clients) and self._pose_seen
                   and (self._perceived_at > 0 or not perceiving), timeout)
        for client, name in ((self._nav_client, c.navigate.action), (self._gripper_client, c.gripper.action)):
            if client is not None and not client.server_is_ready():
                log.warning("action server '%s' not available yet", name)
        if not self._pose_seen:
            log.warning("no pose on '%s' yet", c.pose.topic)
        if perceiving and not self._perceived_at:
            log.warning("no perception on '%s' yet", c.perception.objects or c.perception.humans)

    def shutdown(self) -> None:
        """Cancel every goal still in flight (waiting for the servers' answers), then let go of the node."""
        if self.node is None:
            return
        with self._lock:
            active, self._active = self._active, None
        if active is not None:
            active.cancel("robot shut down")
        assert self._host is not None
        self._host.cancel_all_goals(timeout=2.0)
        node = self.node
        for subscription in self._subscriptions:
            node.destroy_subscription(subscription)
        for publisher in self._publishers.values():
            node.destroy_publisher(publisher)
        for client in (self._nav_client, self._gripper_client):
            if client is not None:
                client.destroy()
        self._subscriptions, self._publishers = [], {}
        self.node = None
        if self._owns_host:
            self._host.release()
            self._host = None

    # -- callbacks (executor thread) --------------------------------------------------

    def _on_pose(self, message: Any) -> None:
        pose = message.pose.pose if hasattr(message.pose, "pose") else message.pose
        now = time.monotonic()
        with self._lock:
            previous, self._pose = self._pose, (pose.position.x, pose.position.y, yaw_of(pose.orientation))
            if hasattr(message, "twist"):  # odometry says how fast
                linear = message.twist.twist.linear
                self._speed = math.hypot(linear.x, linear.y)
            elif self._pose_seen and now > self._pose_at:  # a bare pose: from the last two
                self._speed = math.dist(previous[:2], self._pose[:2]) / (now - self._pose_at)
            self._pose_seen, self._pose_at = True, now

    def _on_battery(self, message: Any) -> None:
        if math.isfinite(message.percentage):
            with self._lock:
                self._battery = max(0.0, min(1.0, float(message.percentage)))

    def _on_estop(self, message: Any) -> None:
        self._estop_heard = time.monotonic()
        self._set_estop(bool(message.data))

    def _set_estop(self, pressed: bool) -> None:
        changed, self._estop_pressed = pressed != self._estop_pressed, pressed
        if self.estop is not None:
            (self.estop.press if pressed else self.estop.release)()
        elif pressed and changed:
            self.safe_stop("e-stop pressed")

    def _on_markers(self, message: Any, source: str, all_human: bool) -> None:
        with self._lock:
            before = self._scene.humans()
            self._scene.apply(message, self._pose, source, all_human)
            self._perceived_at = time.monotonic()
            self._perception_stamp = time.time()
            self._perception_shows_held = self._perception_shows_held or self._scene.held() is not None
            people_moved = _moved(before, self._scene.humans())
        if people_moved and self.on_perception is not None:
            self.on_perception()  # a person appeared, left or moved: guards look at once

    # -- commands -------------------------------------------------------------------

    def _begin(self, skill: str, client: Any, server: str, message: str,
               interpret: Callable[[int, Any], tuple[ActionState, str]],
               on_end: Callable[[ActionState, Any], None] | None = None) -> tuple[RosAction, str]:
        """A new action, with why it cannot be sent ("" when it can: then the running one is cancelled)."""
        assert self._host is not None, "setup() first"
        action = RosAction(self._host, skill, server, message, interpret, on_end)
        if self.estop is None and self._estop_pressed:
            return action, "e-stop pressed"
        if client is None:
            return action, f"no {skill} action configured"
        if not client.server_is_ready():
            return action, f"action server '{server}' is not available"
        with self._lock:
            previous, self._active = self._active, action
            self._stopped = False
        if previous is not None:
            previous.cancel(f"preempted by a new {skill}")
        return action, ""

    def navigate(self, pose: Pose, speed: float | None = None) -> RosAction:
        """Send a ``NavigateToPose`` goal (a speed is sent first as a Nav2 speed limit).

        Args:
            pose: x, y, theta in the fixed frame (metres, radians)
            speed: m/s, or ``None`` for no limit

        Returns:
            the running action (FAILED at once when the server is missing)
        """
        from vla_bt.ros.messages import interface_type

        c = self.config
        goal_pose = (float(pose[0]), float(pose[1]), float(pose[2]))
        action, problem = self._begin("navigate", self._nav_client, c.navigate.action,
                                      f"navigating to {_xy(goal_pose)}", self._navigation_result)
        if problem:
            return action.fail(problem)
        if "speed_limit" in self._publishers:
            limit = interface_type("nav2_msgs/msg/SpeedLimit", "msg")(percentage=False, speed_limit=float(speed or 0.0))
            limit.header.frame_id = c.base_frame
            self._publishers["speed_limit"].publish(limit)
        goal = interface_type("nav2_msgs/action/NavigateToPose", "action").Goal(behavior_tree=c.navigate.behavior_tree)
        goal.pose.header.frame_id = c.frame_id
        goal.pose.pose.position.x, goal.pose.pose.position.y = goal_pose[0], goal_pose[1]
        o = goal.pose.pose.orientation
        o.x, o.y, o.z, o.w = quaternion(goal_pose[2])
        start = math.dist(self._pose[:2], goal_pose[:2])
        self._navigation = {"target": list(goal_pose), "distance_remaining": start, "eta_s": None, "recoveries": 0,
                            "progress": 0.0}

        def feedback(message: Any) -> tuple[float, str]:
            nonlocal start
            remaining = float(message.distance_remaining)
            start = max(start, remaining)
            eta = _seconds(message.estimated_time_remaining)
            progress = 1.0 - remaining / start if start > 0 else 0.0
            self._navigation = {"target": list(goal_pose), "distance_remaining": remaining, "eta_s": eta or None,
                                "recoveries": int(message.number_of_recoveries), "progress": progress}
            text = f"navigating to {_xy(goal_pose)}: {remaining:.2f} m to go"
            if eta > 0:
                text += f", about {eta:.1f} s"
            if message.number_of_recoveries:
                text += f", {message.number_of_recoveries} recoveries"
            return progress, text
        return action.send(self._nav_client, goal, feedback)

    @staticmethod
    def _navigation_result(status: int, result: Any) -> tuple[ActionState, str]:
        detail = getattr(result, "error_msg", "") or (f"error code {result.error_code}"
                                                     if getattr(result, "error_code", 0) else "")
        if status == STATUS_SUCCEEDED:
            return ActionState.SUCCEEDED, "reached the goal"
        if status == STATUS_CANCELED:
            return ActionState.CANCELLED, "navigation cancelled" + (f": {detail}" if detail else "")
        return ActionState.FAILED, "navigation failed" + (f": {detail}" if detail else "")

    def _gripper(self, skill: str, position: float, intent: dict[str, Any], message: str,
                 after: Callable[[bool], None]) -> RosAction:
        """Send a gripper goal; ``after(success)`` runs when it ended."""
        from vla_bt.ros.messages import interface_type

        c = self.config.gripper
        closing = skill == "grasp"

        def interpret(status: int, result: Any) -> tuple[ActionState, str]:
            if status == STATUS_CANCELED:
                return ActionState.CANCELLED, f"{skill} cancelled"
            if closing:
                if result.stalled and status in (STATUS_SUCCEEDED, STATUS_ABORTED):
                    return ActionState.SUCCEEDED, f"holding {intent['object']}"
                if status == STATUS_SUCCEEDED and not c.grasp_requires_stall:
                    return ActionState.SUCCEEDED, f"holding {intent['object']}"
                if status == STATUS_SUCCEEDED:
                    return ActionState.FAILED, f"the gripper closed on nothing ({intent['object']} not grasped)"
                return ActionState.FAILED, f"grasping {intent['object']} failed (gripper command aborted)"
            if status == STATUS_SUCCEEDED:
                return ActionState.SUCCEEDED, message.replace("placing", "placed").replace("handing", "handed")
            return ActionState.FAILED, f"{skill} failed (gripper command aborted)"

        def on_end(state: ActionState, _result: Any) -> None:
            if state is ActionState.SUCCEEDED:
                after(True)

        action, problem = self._begin(skill, self._gripper_client, c.action, message, interpret, on_end)
        if problem:
            return action.fail(problem)
        if "intent" in self._publishers:
            from std_msgs.msg import String

            self._publishers["intent"].publish(String(data=json.dumps(intent)))
        goal = interface_type("control_msgs/action/GripperCommand", "action").Goal()
        goal.command.position, goal.command.max_effort = float(position), float(c.max_effort)
        begin = c.open_position if closing else c.closed_position
        span = abs(position - begin) or 1.0

        def feedback(fb: Any) -> tuple[float, str]:
            return 1.0 - abs(fb.position - position) / span, f"{message}: gripper at {fb.position:.3f} m"
        return action.send(self._gripper_client, goal, feedback)

    def _set_holding(self, object_id: str | None) -> None:
        with self._lock:
            self._holding, self._holding_at = object_id, time.monotonic()

    def grasp(self, object_id: str) -> ActionHandle:
        """Close the gripper on ``object_id`` (which must be within reach)."""
        held = self.state().holding
        if held is not None:
            return _failed(f"already holding {held}")
        return self._gripper("grasp", self.config.gripper.closed_position, {"skill": "grasp", "object": object_id},
                             f"grasping {object_id}", lambda ok: self._set_holding(object_id))

    def place(self, pose: Pose) -> ActionHandle:
        """Open the gripper to put the held object down at ``pose``."""
        held = self.state().holding
        if held is None:
            return _failed("holding nothing")
        target = [round(float(v), 4) for v in pose]
        return self._gripper("place", self.config.gripper.open_position, {"skill": "place", "pose": target,
                                                                          "object": held},
                             f"placing {held} at {_xy(pose)}", lambda ok: self._set_holding(None))

    def hand_over(self, human_id: str) -> ActionHandle:
        """Open the gripper to hand the held object to ``human_id``."""
        held = self.state().holding
        if held is None:
            return _failed("holding nothing")
        return self._gripper("hand_over", self.config.gripper.open_position,
                             {"skill": "hand_over", "to": human_id, "object": held},
                             f"handing {held} to {human_id}", lambda ok: self._set_holding(None))

    def safe_stop(self, reason: str) -> None:
        """Cancel every goal in flight and publish a zero ``Twist``; never raises, never waits."""
        try:
            with self._lock:
                active, self._active, self._stopped = self._active, None, True
            if active is not None:
                active.cancel(f"safe stop: {reason}")
            if self._host is not None:
                self._host.cancel_all_goals(timeout=0.0)
            publisher = self._publishers.get("cmd_vel")
            if publisher is not None:
                from geometry_msgs.msg import Twist

                publisher.publish(Twist())
        except Exception:
            log.exception("safe stop: %s", reason)

    # -- state --------------------------------------------------------------------------

    def state(self) -> RobotState:
        """The latest pose, battery, held object; ``moving`` while an action runs."""
        with self._lock:
            holding = self._holding
            if self._perception_shows_held and self._perceived_at > self._holding_at + HELD_GRACE_S:
                holding = self._scene.held()
            active = self._active
            return RobotState(pose=self._pose, holding=holding, battery=self._battery,
                              moving=active is not None and active.state is ActionState.RUNNING,
                              stopped=self._stopped, speed=self._speed)

    def perceive(self) -> Perception:
        """Objects and people from the marker topics, stamped with the Unix time of the latest message."""
        with self._lock:
            return Perception(objects=self._scene.objects(self._pose), humans=self._scene.humans(),
                              stamp=self._perception_stamp)

    def step(self) -> None:
        """Before each tick: the e-stop heartbeat, and navigation feedback onto the blackboard."""
        timeout = self.config.estop.timeout_s
        if timeout is not None and self.node is not None and time.monotonic() - self._estop_heard > timeout:
            if not self._estop_pressed:
                log.warning("no e-stop message for %.1f s: pressing the e-stop", timeout)
            self._set_estop(True)
        if self._blackboard is not None:
            self._blackboard.set(ROBOT_NAVIGATION, self._navigation)


def _moved(before: list[dict[str, Any]], after: list[dict[str, Any]], tolerance: float = 0.01) -> bool:
    """Whether people appeared, left or moved more than ``tolerance`` metres."""
    old = {h["id"]: h["pose"] for h in before}
    new = {h["id"]: h["pose"] for h in after}
    return old.keys() != new.keys() or any(math.dist(old[k][:2], new[k][:2]) > tolerance for k in new)


def _failed(message: str) -> ActionHandle:
    """A FAILED handle for a command refused before anything was sent (the running action goes on)."""
    from vla_bt.robot.gate import RefusedHandle

    return RefusedHandle(message)
