"""Node names, namespaces and topic names that ROS 2 refuses: exit 2 with a message naming what and where.

They are checked with rclpy's own validation before any node exists:
``--node-name`` and ``--namespace`` by option, the names in ``ros2.yaml`` at
``FILE:LINE:COL`` as the file is read. The CLI tests run ``vla-bt`` in a
process of its own in a ROS domain of the test's (``ros_env``), as a bad name
used to get as far as creating a node.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.helpers.cli import cli_env, run_cli  # noqa: E402
from tests.ros_helpers import ros_env  # noqa: E402
from vla_bt.ros.config import load_ros2_config  # noqa: E402
from vla_bt.tree.diagnostics import Mark, TreeError  # noqa: E402

NODE_NAME_CHARS = "node name must not contain characters other than alphanumerics or '_'"


def refused(tmp_path: Path, text: str) -> tuple[Path, list[tuple[Mark, str]]]:
    path = tmp_path / "ros2.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(TreeError) as caught:
        load_ros2_config(path)
    return path, [(d.mark, d.message) for d in caught.value.diagnostics]


# -- names in ros2.yaml, checked as the file is read (no ROS node) ----------------------------


def test_bad_node_name_in_ros2_yaml_is_reported_at_its_line(tmp_path: Path) -> None:
    path, diagnostics = refused(tmp_path, 'frame_id: map\nnode_name: "bad name!"\n')
    assert diagnostics == [(Mark(str(path), 2, 12),
                            f"node_name: 'bad name!' is not a valid ROS 2 node name ({NODE_NAME_CHARS})")]


def test_bad_topic_name_in_ros2_yaml_is_reported_at_its_line(tmp_path: Path) -> None:
    path, diagnostics = refused(tmp_path, 'cmd_vel: "bad topic name//x"\n')
    assert diagnostics == [(Mark(str(path), 1, 10),
                            "cmd_vel: 'bad topic name//x' is not a valid ROS 2 topic name (topic name must not "
                            "contain characters other than alphanumerics, '_', '~', '{', or '}')")]


def test_names_in_ros2_yaml_are_checked_as_the_node_resolves_them(tmp_path: Path) -> None:
    # 'a//b' passes rclpy's check of a relative name and fails once it is put in the namespace.
    path, diagnostics = refused(tmp_path, "namespace: robot1\nnavigate:\n  action: a//b\n"
                                          "dialogue:\n  replies: '{nope}/reply'\n")
    assert diagnostics == [
        (Mark(str(path), 3, 11), "navigate.action: 'a//b' is not a valid ROS 2 action name as node 'vla_bt' in "
                                 "namespace '/robot1' resolves it (topic name must not contain repeated '/')"),
        (Mark(str(path), 5, 12), "dialogue.replies: '{nope}/reply' is not a valid ROS 2 topic name as node "
                                 "'vla_bt' in namespace '/robot1' resolves it (unknown substitution: {nope})"),
    ]


@pytest.mark.parametrize("namespace, why", [
    ("bad ns", "namespace must not contain characters other than alphanumerics, '_', or '/'"),
    ("//x", "namespace must not contain repeated '/'"),
    ("/ok/", "namespace must not end with a '/', unless only a '/'"),
])
def test_bad_namespace_in_ros2_yaml_is_reported_at_its_line(tmp_path: Path, namespace: str, why: str) -> None:
    path, diagnostics = refused(tmp_path, f"namespace: '{namespace}'\n")
    assert diagnostics == [(Mark(str(path), 1, 12),
                            f"namespace: {namespace!r} is not a valid ROS 2 namespace ({why})")]


def test_empty_required_topic_in_ros2_yaml_is_refused(tmp_path: Path) -> None:
    path, diagnostics = refused(tmp_path, "estop: {topic: ''}\n")
    assert diagnostics == [(Mark(str(path), 1, 16), "estop.topic: '' is not a valid ROS 2 topic name "
                                                    "(topic name must not be empty string)")]


def test_valid_names_and_empty_optional_ones_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "ros2.yaml"
    path.write_text("namespace: robot1\nnode_name: tree_1\nbattery: ''\ngripper: {action: '', intent_topic: ''}\n"
                    "perception: {objects: '', humans: /people}\ntree: {status: '~/status', snapshot: "
                    "'{node}/snapshot'}\n", encoding="utf-8")
    config = load_ros2_config(path)
    assert (config.namespace, config.node_name, config.gripper.action) == ("robot1", "tree_1", "")
    assert load_ros2_config(ROOT / "config").name_problems() == []


def test_ros_name_problem_uses_rclpy_validation() -> None:
    from vla_bt.ros.config import ros_name_problem

    assert ros_name_problem("node", "vla_bt") is None
    assert ros_name_problem("namespace", "") is None and ros_name_problem("namespace", "robot1") is None
    assert ros_name_problem("node", "1abc") == \
        "'1abc' is not a valid ROS 2 node name (node name must not start with a number)"


# -- the commands (each in a process of its own, in a ROS domain of the test's) ------------------


def vla_bt(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    ros = ros_env(tmp_path)
    env = cli_env(**{k: ros[k] for k in ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_LOG_DIR")})
    return run_cli(*args, env=env, timeout=120)


def assert_bad_input(done: subprocess.CompletedProcess[str], message: str) -> None:
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert "Failed to fini" not in done.stderr  # no node was begun


@pytest.mark.ros
@pytest.mark.parametrize("name, why", [
    ("bad name", NODE_NAME_CHARS), ("1abc", "node name must not start with a number"), ("a/b", NODE_NAME_CHARS)])
def test_ros_command_refuses_a_bad_node_name_option(tmp_path: Path, name: str, why: str) -> None:
    done = vla_bt(tmp_path, "ros", "trees/fetch_object.yaml", "--robot", "sim", "--say", "hello", "--node-name", name)
    assert_bad_input(done, f"error: --node-name: {name!r} is not a valid ROS 2 node name ({why})")


@pytest.mark.ros
@pytest.mark.parametrize("command", ["ros", "sim-node"])
@pytest.mark.parametrize("namespace, why", [
    ("bad ns", "namespace must not contain characters other than alphanumerics, '_', or '/'"),
    ("//x", "namespace must not contain repeated '/'"),
    ("/ok/", "namespace must not end with a '/', unless only a '/'"),
])
def test_ros_commands_refuse_a_bad_namespace_option(tmp_path: Path, command: str, namespace: str, why: str) -> None:
    args = ["trees/fetch_object.yaml", "--robot", "sim", "--say", "hello"] if command == "ros" else \
        ["--max-seconds", "5"]
    done = vla_bt(tmp_path, command, *args, "--namespace", namespace)
    assert_bad_input(done, f"error: --namespace: {namespace!r} is not a valid ROS 2 namespace ({why})")


@pytest.mark.ros
@pytest.mark.parametrize("command", [
    ["ros", "trees/fetch_object.yaml", "--say", "hello"],
    ["run", "trees/fetch_object.yaml", "--robot", "ros2", "--say", "hello"],
])
def test_bad_node_name_in_ros2_yaml_is_refused_by_the_commands(tmp_path: Path, command: list[str]) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (config / "ros2.yaml").write_text('node_name: "bad name!"\n', encoding="utf-8")
    done = vla_bt(tmp_path, "--config", str(config), *command, "--max-seconds", "5")
    assert_bad_input(done, f"{config / 'ros2.yaml'}:1:12: node_name: 'bad name!' is not a valid ROS 2 node name "
                           f"({NODE_NAME_CHARS})")


@pytest.mark.ros
def test_sim_node_refuses_a_bad_topic_name_in_its_ros_config(tmp_path: Path) -> None:
    topics = tmp_path / "topic.yaml"
    topics.write_text('cmd_vel: "bad topic name//x"\n', encoding="utf-8")
    done = vla_bt(tmp_path, "sim-node", "--ros-config", str(topics), "--max-seconds", "5")
    assert_bad_input(done, f"{topics}:1:10: cmd_vel: 'bad topic name//x' is not a valid ROS 2 topic name")


@pytest.mark.ros
def test_sim_node_refuses_an_events_path_that_is_a_directory(tmp_path: Path) -> None:
    done = vla_bt(tmp_path, "sim-node", "--events", str(tmp_path), "--max-seconds", "5")
    assert_bad_input(done, f"error: --events {tmp_path}: cannot write: Is a directory")


@pytest.mark.ros
def test_sim_node_serves_a_robot_without_gripper_or_object_markers(tmp_path: Path) -> None:
    # "" turns these off (as the ROS robot reads them); the sim node used to hand "" to rclpy as a name.
    topics = tmp_path / "ros2.yaml"
    topics.write_text("gripper: {action: ''}\nperception: {objects: '', humans: people}\n", encoding="utf-8")
    done = vla_bt(tmp_path, "sim-node", "--ros-config", str(topics), "--max-seconds", "1")
    assert done.returncode == 0, done.stderr
    assert "sim-node ready" in done.stdout and "Traceback" not in done.stderr


@pytest.mark.ros
def test_node_host_refuses_a_bad_node_name_before_any_context_exists() -> None:
    from rclpy.exceptions import InvalidNodeNameException

    from vla_bt.ros.node import NodeHost

    host = NodeHost("bad name")
    with pytest.raises(InvalidNodeNameException):
        host.start()
    assert host.context is None and not host.running
