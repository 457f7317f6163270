"""The embedded simulator as a ROS 2 node (``vla-bt sim-node``): a robot behind Nav2's and a gripper's interfaces.

It offers what ``Ros2Robot`` expects of a real robot, with the names of
``config/ros2.yaml``:

=========================================  ==========================================================
``navigate_to_pose`` (action)              ``nav2_msgs/action/NavigateToPose``: the simulator's path
                                           planner and kinematics, feedback at 10 Hz, cancel
``gripper_controller/gripper_cmd`` (act.)  ``control_msgs/action/GripperCommand``: closing grasps the
                                           object named by the latest gripper intent (else the
                                           nearest graspable one within reach); opening places it
                                           (or hands it over) as the intent says, else drops it here
``odom`` (pub)                             the pose, as the configured type (``Odometry`` by default)
``battery_state`` (pub)                    ``sensor_msgs/msg/BatteryState``
``perception/objects`` (pub)               ``visualization_msgs/msg/MarkerArray`` (``vla_bt.ros.markers``)
``estop`` (sub)                            ``std_msgs/msg/Bool``: while true, the motors are off (the
                                           robot does not move; goals stay active, as on a real robot)
``cmd_vel`` (sub)                          ``geometry_msgs/msg/Twist``: zero twists are recorded as stops
``speed_limit`` (sub)                      ``nav2_msgs/msg/SpeedLimit``: the speed of navigation
``gripper/intent`` (sub)                   ``std_msgs/msg/String`` (JSON): what the next gripper goal is for
``~/events`` (pub)                         ``std_msgs/msg/String``: JSON of every goal, cancel request,
                                           result, e-stop change and stop (also ``--events FILE``)
=========================================  ==========================================================

Time: the simulator advances by the wall time between timer ticks times
``time_scale``, and not at all while the e-stop is pressed.
"""

from __future__ import annotations

import json
import math
import threading
import time
from pathlib import Path
from typing import Any

from vla_bt.robot.protocol import ActionState, Pose
from vla_bt.robot.sim import Navigation, SimRobot

from .config import Ros2Config
from .markers import scene_markers
from .messages import interface_type, qos, quaternion, yaw_of
from .node import NodeHost, wait_until

FEEDBACK_PERIOD_S = 0.1
POLL_S = 0.01
GRIPPED_WIDTH_M = 0.04
INTENT_WAIT_S = 0.2
INTENT_MAX_AGE_S = 5.0


def remaining_distance(path: list[tuple[float, float]], pose: Pose) -> float:
    """Metres left along a path from a point on it (the nearest segment is taken as the current one)."""
    if len(path) < 2:
        return 0.0
    best, at = math.inf, 0
    for i in range(len(path) - 1):
        (ax, ay), (bx, by) = path[i], path[i + 1]
        dx, dy = bx - ax, by - ay
        length2 = dx * dx + dy * dy
        t = 0.0 if length2 == 0 else max(0.0, min(1.0, ((pose[0] - ax) * dx + (pose[1] - ay) * dy) / length2))
        distance = math.dist((ax + t * dx, ay + t * dy), pose[:2])
        if distance < best - 1e-9:
            best, at = distance, i
    rest = sum(math.dist(path[j], path[j + 1]) for j in range(at + 1, len(path) - 1))
    return math.dist(pose[:2], path[at + 1]) + rest


class SimNode:
    """Serves a ``SimRobot`` over ROS 2.

    Args:
        robot: the simulator (its ``time_scale`` is used; its clock is not: the node advances it)
        config: names (``config/ros2.yaml``)
        events: a JSON-lines file that gets every event, flushed per line
        rate_hz: simulation and odometry rate
        perception_hz: marker publication rate

    Attributes:
        events: every event so far, as dicts ``{t, event, ...}``
    """

    def __init__(self, robot: SimRobot, config: Ros2Config | None = None, *, events: str | Path | None = None,
                 rate_hz: float = 50.0, perception_hz: float = 10.0):
        self.robot, self.config = robot, config or Ros2Config()
        # One executor thread; each goal is followed in a thread of its own (NodeHost.in_thread).
        self.host = NodeHost(self.config.sim_node_name, self.config.namespace)
        self.rate_hz, self.perception_hz = rate_hz, perception_hz
        self.events: list[dict[str, Any]] = []
        self._events_file = Path(events).open("a", encoding="utf-8") if events else None
        self._lock = threading.Lock()
        self._estop = False
        self._speed_limit = 0.0
        self._intent: tuple[float, dict[str, Any]] | None = None
        self._last_step = 0.0
        self._last_markers = 0.0
        self._actions: dict[bytes, Any] = {}
        self._cancelled: set[bytes] = set()
        self._pubs: dict[str, Any] = {}
        self._servers: list[Any] = []

    # -- life cycle -------------------------------------------------------------------

    def start(self) -> None:
        """Create the node, its servers, publishers, subscriptions and timer; spin in a background thread."""
        from geometry_msgs.msg import Twist
        from rclpy.action import ActionServer, CancelResponse, GoalResponse
        from sensor_msgs.msg import BatteryState
        from std_msgs.msg import Bool, String
        from visualization_msgs.msg import MarkerArray

        c = self.config
        node = self.host.start()

        def accept(_request: Any) -> Any:
            return GoalResponse.ACCEPT

        def cancel(goal_handle: Any) -> Any:
            ident = bytes(goal_handle.goal_id.uuid)
            self._event("cancel_request", goal=ident.hex()[:8])
            self._cancelled.add(ident)
            action = self._actions.get(ident)
            if action is not None:
                action.cancel()  # stop at once; the execute loop reports the goal as cancelled
            return CancelResponse.ACCEPT

        self._servers = [
            ActionServer(node, interface_type("nav2_msgs/action/NavigateToPose", "action"), c.navigate.action,
                         self.host.in_thread(self._navigate, "navigate"), goal_callback=accept,
                         cancel_callback=cancel),
        ]
        if c.gripper.action:  # "" = a robot without a gripper
            self._servers.append(ActionServer(
                node, interface_type("control_msgs/action/GripperCommand", "action"), c.gripper.action,
                self.host.in_thread(self._grip, "gripper"), goal_callback=accept, cancel_callback=cancel))
        self._pubs = {
            "pose": node.create_publisher(interface_type(c.pose.type, "msg"), c.pose.topic, qos()),
            "events": node.create_publisher(String, "~/events", qos(latched=True, depth=100)),
        }
        if c.perception.objects:
            self._pubs["objects"] = node.create_publisher(MarkerArray, c.perception.objects, qos())
        if c.battery:
            self._pubs["battery"] = node.create_publisher(BatteryState, c.battery, qos())
        if c.perception.humans and c.perception.humans != c.perception.objects:
            self._pubs["humans"] = node.create_publisher(MarkerArray, c.perception.humans, qos())
        node.create_subscription(Bool, c.estop.topic, self._on_estop, qos())
        node.create_subscription(Twist, c.cmd_vel, self._on_cmd_vel, qos())
        if c.navigate.speed_limit_topic:
            node.create_subscription(interface_type("nav2_msgs/msg/SpeedLimit", "msg"), c.navigate.speed_limit_topic,
                                     self._on_speed_limit, qos(latched=True, depth=1))
        if c.gripper.intent_topic:
            node.create_subscription(String, c.gripper.intent_topic, self._on_intent, qos(latched=True, depth=1))
        self._last_step = time.monotonic()
        node.create_timer(1.0 / self.rate_hz, self._tick)
        self._tick()

    def stop(self) -> None:
        """Stop the robot, let the goals it ended report their results, then stop the node."""
        self.robot.safe_stop("sim node shut down")
        self.host.join_goal_threads(timeout=2.0)
        self.host.stop()
        if self._events_file is not None:
            self._events_file.close()
            self._events_file = None

    # -- events -----------------------------------------------------------------------

    def _event(self, kind: str, **fields: Any) -> None:
        record = {"t": time.time(), "event": kind, **fields}
        from std_msgs.msg import String

        with self._lock:
            self.events.append(record)
            line = json.dumps(record)
            if self._events_file is not None:
                self._events_file.write(line + "\n")
                self._events_file.flush()
        publisher = self._pubs.get("events")
        if publisher is not None:
            publisher.publish(String(data=line))

    # -- subscriptions ----------------------------------------------------------------

    def _on_estop(self, message: Any) -> None:
        pressed = bool(message.data)
        if pressed != self._estop:
            self._estop = pressed
            self._event("estop", pressed=pressed)

    def _on_cmd_vel(self, message: Any) -> None:
        linear, angular = message.linear, message.angular
        if not any((linear.x, linear.y, linear.z, angular.x, angular.y, angular.z)):
            self._event("stop")

    def _on_speed_limit(self, message: Any) -> None:
        limit = float(message.speed_limit)
        if message.percentage and limit > 0:
            limit = self.robot.world.robot.max_speed * limit / 100.0
        self._speed_limit = limit if math.isfinite(limit) and limit > 0 else 0.0
        running = self.robot.action
        if isinstance(running, Navigation):  # applies to the drive in progress too, as on Nav2's controller
            running.speed = min(self._speed_limit or self.robot.world.robot.max_speed, self.robot.world.robot.max_speed)
        self._event("speed_limit", speed=self._speed_limit)

    def _on_intent(self, message: Any) -> None:
        try:
            intent = json.loads(message.data)
        except ValueError:
            return
        if isinstance(intent, dict):
            self._intent = (time.monotonic(), intent)

    def _take_intent(self, skill: tuple[str, ...]) -> dict[str, Any] | None:
        deadline = time.monotonic() + INTENT_WAIT_S
        while True:
            held = self._intent
            if held is not None and time.monotonic() - held[0] < INTENT_MAX_AGE_S and held[1].get("skill") in skill:
                self._intent = None
                return held[1]
            if time.monotonic() >= deadline:
                return None
            time.sleep(POLL_S)

    # -- the clock --------------------------------------------------------------------

    def _tick(self) -> None:
        now = time.monotonic()
        elapsed, self._last_step = now - self._last_step, now
        if not self._estop:
            self.robot.advance(elapsed * self.robot.time_scale)
        self._publish_state(now)

    def _publish_state(self, now: float) -> None:
        c, node = self.config, self.host.node
        if node is None:
            return
        stamp = node.get_clock().now().to_msg()
        state = self.robot.state()
        pose_msg = self._pubs["pose"].msg_type()
        pose_msg.header.stamp, pose_msg.header.frame_id = stamp, c.frame_id
        target = pose_msg.pose.pose if hasattr(pose_msg.pose, "pose") else pose_msg.pose
        if hasattr(pose_msg, "child_frame_id"):  # odometry: with the twist
            pose_msg.child_frame_id = c.base_frame
            pose_msg.twist.twist.linear.x = float(state.speed)
        target.position.x, target.position.y = state.pose[0], state.pose[1]
        o = target.orientation
        o.x, o.y, o.z, o.w = quaternion(state.pose[2])
        self._pubs["pose"].publish(pose_msg)
        if "battery" in self._pubs:
            battery = self._pubs["battery"].msg_type(percentage=float(state.battery), present=True)
            battery.header.stamp = stamp
            self._pubs["battery"].publish(battery)
        if now - self._last_markers >= 1.0 / self.perception_hz:
            self._last_markers = now
            seen = self.robot.perceive()
            humans_apart = "humans" in self._pubs
            markers = scene_markers(seen.objects, [] if humans_apart else seen.humans, stamp=stamp,
                                    frame_id=c.frame_id, gripper_frame=c.gripper_frame, held=state.holding,
                                    human_ns=c.perception.human_ns)
            if "objects" in self._pubs:
                self._pubs["objects"].publish(markers)
            if humans_apart:
                self._pubs["humans"].publish(scene_markers([], seen.humans, stamp=stamp, frame_id=c.frame_id,
                                                           human_ns=c.perception.human_ns))

    # -- actions ----------------------------------------------------------------------

    def _follow(self, goal_handle: Any, action: Any, feedback: Any) -> ActionState | None:
        """Wait for a simulator action to end, sending feedback; None when the client cancelled it."""
        ident = bytes(goal_handle.goal_id.uuid)
        self._actions[ident] = action
        last = 0.0
        try:
            while True:
                if ident in self._cancelled or goal_handle.is_cancel_requested:
                    action.cancel()
                    # The server marks the goal as cancelling once the cancel callback returned.
                    if not wait_until(lambda: goal_handle.is_cancel_requested, 1.0):
                        return ActionState.CANCELLED
                    return None
                if action.state.done:
                    return action.state
                now = time.monotonic()
                if now - last >= FEEDBACK_PERIOD_S:
                    last = now
                    goal_handle.publish_feedback(feedback())
                time.sleep(POLL_S)
        finally:
            self._actions.pop(ident, None)
            self._cancelled.discard(ident)

    def _navigate(self, goal_handle: Any) -> Any:
        action_type = interface_type("nav2_msgs/action/NavigateToPose", "action")
        result, request = action_type.Result(), goal_handle.request
        ident = bytes(goal_handle.goal_id.uuid).hex()[:8]
        p, frame = request.pose.pose, request.pose.header.frame_id.lstrip("/")
        pose = (p.position.x, p.position.y, yaw_of(p.orientation))
        self._event("goal", action="navigate", goal=ident, pose=[round(v, 4) for v in pose])
        if frame not in ("", self.config.frame_id):
            result.error_code = action_type.Result.TF_ERROR
            result.error_msg = f"unknown frame '{frame}' (the simulated robot knows '{self.config.frame_id}')"
            return self._end(goal_handle, "navigate", ident, "aborted", result)
        action = self.robot.navigate(pose, self._speed_limit or None)
        started = time.monotonic()

        def feedback() -> Any:
            fb = action_type.Feedback()
            state = self.robot.state()
            fb.current_pose.header.frame_id = self.config.frame_id
            fb.current_pose.pose.position.x, fb.current_pose.pose.position.y = state.pose[0], state.pose[1]
            o = fb.current_pose.pose.orientation
            o.x, o.y, o.z, o.w = quaternion(state.pose[2])
            remaining = remaining_distance(action.path, state.pose) if isinstance(action, Navigation) else 0.0
            fb.distance_remaining = remaining
            eta = remaining / max(action.speed, 1e-6) / self.robot.time_scale if isinstance(action, Navigation) else 0
            elapsed = time.monotonic() - started
            fb.navigation_time.sec, fb.navigation_time.nanosec = int(elapsed), int(elapsed % 1 * 1e9)
            fb.estimated_time_remaining.sec = int(eta)
            fb.estimated_time_remaining.nanosec = int(eta % 1 * 1e9)
            return fb

        state = self._follow(goal_handle, action, feedback)
        if state is None:
            result.error_msg = "cancelled"
            return self._end(goal_handle, "navigate", ident, "canceled", result)
        if state is ActionState.SUCCEEDED:
            return self._end(goal_handle, "navigate", ident, "succeeded", result)
        result.error_code, result.error_msg = action_type.Result.UNKNOWN, action.message
        return self._end(goal_handle, "navigate", ident, "aborted", result)

    def _grip(self, goal_handle: Any) -> Any:
        action_type = interface_type("control_msgs/action/GripperCommand", "action")
        g, result = self.config.gripper, action_type.Result()
        command = goal_handle.request.command
        ident = bytes(goal_handle.goal_id.uuid).hex()[:8]
        closing = command.position <= (g.open_position + g.closed_position) / 2
        intent = self._take_intent(("grasp",) if closing else ("place", "hand_over"))
        self._event("goal", action="gripper", goal=ident, position=command.position, intent=intent)
        target, held = command.position, self.robot.holding
        if closing:
            object_id = (intent or {}).get("object") or self._nearest_graspable()
            action = self.robot.grasp(str(object_id)) if object_id else None
            if action is None or action.state is ActionState.FAILED:  # nothing between the fingers
                self._event("gripper_empty", goal=ident, reason=action.message if action else "nothing within reach")
                action = None
        elif held is None:
            action = None  # just open
        elif (intent or {}).get("skill") == "hand_over":
            action = self.robot.hand_over(str(intent["to"]))
        else:
            pose = (intent or {}).get("pose") or list(self.robot.pose)
            action = self.robot.place((float(pose[0]), float(pose[1]), float(pose[2])))
        begin = g.open_position if closing else g.closed_position

        def feedback() -> Any:
            fb = action_type.Feedback()
            share = action.progress if action is not None else 1.0
            end = GRIPPED_WIDTH_M if closing and action is not None else target
            fb.position = begin + (end - begin) * share
            return fb

        if action is None:
            result.position, result.reached_goal = target, True
            return self._end(goal_handle, "gripper", ident, "succeeded", result)
        state = self._follow(goal_handle, action, feedback)
        if state is None:
            return self._end(goal_handle, "gripper", ident, "canceled", result)
        if state is ActionState.SUCCEEDED and closing:
            result.position, result.effort, result.stalled = GRIPPED_WIDTH_M, g.max_effort, True
            return self._end(goal_handle, "gripper", ident, "succeeded", result, message=action.message)
        if state is ActionState.SUCCEEDED:
            result.position, result.reached_goal = target, True
            return self._end(goal_handle, "gripper", ident, "succeeded", result, message=action.message)
        return self._end(goal_handle, "gripper", ident, "aborted", result, message=action.message)

    def _nearest_graspable(self) -> str | None:
        seen = [o for o in self.robot.perceive().objects if o.get("graspable", True)]
        here = self.robot.pose
        near = [(math.dist(here[:2], o["pose"][:2]), o["id"]) for o in seen
                if math.dist(here[:2], o["pose"][:2]) <= self.robot.REACH]
        return min(near)[1] if near else None

    def _end(self, goal_handle: Any, action: str, ident: str, outcome: str, result: Any, message: str = "") -> Any:
        {"succeeded": goal_handle.succeed, "canceled": goal_handle.canceled, "aborted": goal_handle.abort}[outcome]()
        self._event("result", action=action, goal=ident, status=outcome,
                    message=message or getattr(result, "error_msg", ""))
        return result
