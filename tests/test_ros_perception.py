"""Perception from ``visualization_msgs/MarkerArray`` (docs/ros2.md), and the ROS helpers that need no participant.

The mapping test publishes hand-made markers from a probe process to a
``Ros2Robot`` in another process: label from ``ns``, id and attributes from
``text``, colour name from RGBA, poses in the map, base and gripper frames,
people on a topic of their own, DELETE and DELETEALL.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.ros_helpers import Probe, ensure_interfaces, helper_proc, ros_env  # noqa: E402
from vla_bt.ros.config import load_ros2_config  # noqa: E402
from vla_bt.ros.markers import COLOURS, colour_name, parse_text  # noqa: E402
from vla_bt.ros.messages import InterfaceError, from_plain, interface_type, to_plain  # noqa: E402
from vla_bt.ros.sim_node import remaining_distance  # noqa: E402
from vla_bt.tree.diagnostics import TreeError  # noqa: E402

pytestmark = pytest.mark.ros
MARKERS = "visualization_msgs/msg/MarkerArray"


def marker(ns: str, ident: int, text: str, frame: str = "map", xy: tuple[float, float] = (0.0, 0.0),
           yaw: float = 0.0, rgb: tuple[float, float, float] = (0.5, 0.5, 0.5), action: int = 0) -> dict:
    return {"header": {"frame_id": frame}, "ns": ns, "id": ident, "type": 1, "action": action, "text": text,
            "pose": {"position": {"x": xy[0], "y": xy[1]},
                     "orientation": {"z": math.sin(yaw / 2), "w": math.cos(yaw / 2)}},
            "color": {"r": rgb[0], "g": rgb[1], "b": rgb[2], "a": 1.0}}


def test_marker_array_mapping(tmp_path: Path) -> None:
    config = tmp_path / "ros2.yaml"
    config.write_text("server_timeout_s: 0.2\ngripper: {action: ''}\n"
                      "perception: {objects: /test/markers, humans: /test/people}\n")
    env = ros_env(tmp_path)
    probe = Probe(env)
    robot = helper_proc("robot_script.py", "--ros-config", str(config), json.dumps([["watch", 25]]), env=env)
    try:
        robot.wait_line(lambda line: '"setup"' in line)

        def publish(topic: str, msg_type: str, value: dict, predicate: Callable[[dict], bool]) -> dict:
            """Publish (again every 0.3 s: the robot listens best effort) until its state satisfies ``predicate``."""
            since = len(robot.lines)
            for _ in range(30):
                probe.publish(topic, msg_type, value)
                try:
                    line = robot.wait_line(lambda text: "objects" in text and predicate(json.loads(text)), 0.3, since)
                    return json.loads(line)
                except AssertionError:
                    continue
            raise AssertionError(f"the robot never saw it: {robot.lines[-3:]}")

        publish("/odom", "nav_msgs/msg/Odometry", {
            "header": {"frame_id": "odom"},
            "pose": {"pose": {"position": {"x": 2.0, "y": 1.0},
                              "orientation": {"z": math.sin(math.pi / 4), "w": math.cos(math.pi / 4)}}}},
                lambda s: s["pose"] == [2.0, 1.0, round(math.pi / 2, 3)])
        first = publish("/test/markers", MARKERS, {"markers": [
            marker("cup", 1, "c1", xy=(1.0, 2.0), yaw=0.5, rgb=(0.85, 0.15, 0.1)),
            marker("box", 2, "b1;graspable=false;color=teal", frame="base_link", xy=(1.0, 0.0)),
            marker("mug", 7, "m7", frame="camera"),  # an unknown frame: dropped (no TF here)
            marker("bottle", 9, "", frame="", xy=(4.0, 4.0), rgb=(0.1, 0.3, 0.85)),
            marker("human", 3, "bob", xy=(3.0, 3.0))]}, lambda s: len(s["objects"]) == 3)
        second = publish("/test/markers", MARKERS, {"markers": [
            marker("cup", 1, "", action=2), marker("cup", 5, "c2", frame="gripper")]},
            lambda s: "c1" not in [o["id"] for o in s["objects"]])
        third = publish("/test/people", MARKERS, {"markers": [marker("visitor", 1, "carol", xy=(5.0, 5.0))]},
                        lambda s: len(s["humans"]) == 2)
        fourth = publish("/test/people", MARKERS, {"markers": [marker("", 0, "", action=3)]},
                         lambda s: len(s["humans"]) == 1)
    finally:
        probe.close()
        robot.stop()
    objects = {o["id"]: o for o in first["objects"]}
    assert sorted(objects) == ["b1", "bottle_9", "c1"]
    assert objects["c1"] == {"id": "c1", "label": "cup", "color": "red", "pose": pytest.approx([1.0, 2.0, 0.5]),
                             "graspable": True}
    assert objects["b1"]["color"] == "teal" and objects["b1"]["graspable"] is False
    assert objects["b1"]["pose"] == pytest.approx([2.0, 2.0, math.pi / 2]), "base_link moved by the robot's pose"
    assert (objects["bottle_9"]["label"], objects["bottle_9"]["color"]) == ("bottle", "blue")
    assert first["humans"] == [{"id": "bob", "pose": pytest.approx([3.0, 3.0, 0.0])}]
    held = {o["id"]: o for o in second["objects"]}["c2"]
    assert second["holding"] == "c2" and held["pose"] == pytest.approx([2.0, 1.0, math.pi / 2])
    assert [h["id"] for h in third["humans"]] == ["bob", "carol"]
    assert [h["id"] for h in fourth["humans"]] == ["bob"], "DELETEALL cleared only the people topic"


def test_colour_names_text_attributes_and_path_left() -> None:
    assert all(colour_name(*rgb) == name for name, rgb in COLOURS.items())
    assert colour_name(0.7, 0.05, 0.05) == "red" and colour_name(0.45, 0.47, 0.5) == "grey"
    assert parse_text("table_1; graspable = false ;color=") == ("table_1", {"graspable": "false", "color": ""})
    assert parse_text("cup_red") == ("cup_red", {})
    path = [(0.0, 0.0), (4.0, 0.0), (4.0, 3.0)]
    assert remaining_distance(path, (0.0, 0.0, 0.0)) == pytest.approx(7.0)
    assert remaining_distance(path, (4.0, 1.0, 0.0)) == pytest.approx(2.0)


def test_interface_types_and_plain_data() -> None:
    point = from_plain(interface_type("geometry_msgs/Point", "msg"), {"x": 1, "y": 2})
    assert to_plain(point) == {"x": 1.0, "y": 2.0, "z": 0.0}
    assert to_plain(from_plain(interface_type("std_msgs/msg/String", "msg"), "hi")) == {"data": "hi"}
    with pytest.raises(InterfaceError, match="did you mean 'String'"):
        interface_type("std_msgs/msg/Strin", "msg")
    with pytest.raises(InterfaceError, match="is a srv type"):
        interface_type("std_srvs/srv/SetBool", "msg")
    with pytest.raises(InterfaceError, match=r"pose\.position\.w: Point has no field 'w'"):
        from_plain(interface_type("geometry_msgs/msg/PoseStamped", "msg"), {"pose": {"position": {"w": 1}}})


def test_nav2_and_control_msgs_have_the_real_fields() -> None:
    build = ensure_interfaces()
    assert "usable, nothing to build" in build or "installed" in build
    navigate = interface_type("nav2_msgs/action/NavigateToPose", "action")
    assert list(navigate.Goal.get_fields_and_field_types()) == ["pose", "behavior_tree"]
    assert list(navigate.Result.get_fields_and_field_types()) == ["error_code", "error_msg"]
    assert list(navigate.Feedback.get_fields_and_field_types()) == [
        "current_pose", "navigation_time", "estimated_time_remaining", "number_of_recoveries", "distance_remaining"]
    assert (navigate.Result.NONE, navigate.Result.UNKNOWN, navigate.Result.TIMEOUT) == (0, 9000, 9003)
    gripper = interface_type("control_msgs/action/GripperCommand", "action")
    assert gripper.Goal.get_fields_and_field_types() == {"command": "control_msgs/GripperCommand"}
    assert list(gripper.Result.get_fields_and_field_types()) == ["position", "effort", "stalled", "reached_goal"]
    assert gripper.Feedback.get_fields_and_field_types() == gripper.Result.get_fields_and_field_types()
    assert list(interface_type("control_msgs/msg/GripperCommand", "msg").get_fields_and_field_types()) == [
        "position", "max_effort"]


def test_ros2_config_errors_name_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "ros2.yaml"
    path.write_text("navigate:\n  acton: nav\ngripper:\n  max_effort: strong\n")
    with pytest.raises(TreeError) as error:
        load_ros2_config(path)
    text = str(error.value)
    assert f"{path}:2:3: unknown key 'acton' (did you mean 'action'?)" in text
    assert f"{path}:4:15: gripper.max_effort" in text
    path.write_text("navigate: {action: /robot1/navigate_to_pose}\nestop: {timeout_s: 0.5}\n")
    config = load_ros2_config(path)
    assert (config.navigate.action, config.estop.timeout_s, config.gripper.max_effort) == (
        "/robot1/navigate_to_pose", 0.5, 20.0)


def test_numbers_the_schema_lets_through_are_named_with_their_place(tmp_path: Path) -> None:
    """Regression: a negative server timeout and `.nan` / `.inf` values were accepted."""
    config = tmp_path / "ros2.yaml"
    config.write_text("server_timeout_s: -1\nestop: {timeout_s: .nan}\ngripper: {max_effort: .inf}\n")
    with pytest.raises(TreeError) as error:
        load_ros2_config(config)
    assert str(error.value).splitlines() == [
        f"{config}:1:19: server_timeout_s: expected a positive number of seconds, got -1",
        f"{config}:2:20: estop.timeout_s: expected a finite number, got nan",
        f"{config}:3:23: gripper.max_effort: expected a finite number, got inf"]
