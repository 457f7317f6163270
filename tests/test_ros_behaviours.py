"""The generic ROS behaviours in a tree run by ``vla-bt ros``, against a peer process (real rclpy, DDS).

Topic → blackboard, blackboard → topic, a service call (std_srvs) and an action
client (test_msgs' Fibonacci) with a constant and a blackboard goal; a halted
action client cancels its goal; a behaviour named by dotted path gets its node
from ``setup(node=...)``, as py_trees_ros behaviours expect.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.ros_helpers import (  # noqa: E402
    HELPERS,
    STRING,
    Probe,
    Proc,
    helper_proc,
    json_lines,
    ros_env,
    vla_ros,
)

pytestmark = pytest.mark.ros


def peer(env: dict[str, str], *args: str) -> Proc:
    process = helper_proc("peer.py", *args, env=env, stdin=True)
    process.wait_line(lambda line: '"ready"' in line, timeout=30)
    return process


def test_topics_service_and_action_client_from_yaml(tmp_path: Path) -> None:
    env = ros_env(tmp_path)
    other = peer(env)
    probe = Probe(env)
    try:
        probe.subscribe("/vla_bt/snapshot", STRING, latched=True)
        probe.subscribe("/test/started", STRING)
        tree = vla_ros(str(HELPERS / "trees" / "generic.yaml"), "--robot", "sim", "--json", "--max-seconds", "30",
                       env=env)
        assert tree.wait(40) == 0, tree.stderr + "\n".join(tree.lines)
        snapshot = json.loads(probe.wait_message(
            "/vla_bt/snapshot", lambda data: json.loads(data["data"])["root"]["status"] == "SUCCESS")["data"]["data"])
        other.wait_line(lambda line: json.loads(line)["kind"] == "out")
    finally:
        probe.close()
        other.process.stdin.close()  # type: ignore[union-attr]
        other.wait(10)
    board = snapshot["blackboard"]
    assert board["/test/greeting"] == "hello from the peer"
    assert board["/test/set_bool"] == {"success": True, "message": "set to True"}
    assert board["/test/fib"] == {"sequence": [0, 1, 1, 2, 3, 5]}
    assert board["/test/fib_feedback"]["sequence"][:2] == [0, 1]
    assert board["/test/fib3"] == {"sequence": [0, 1, 1, 2]}
    assert [r["data"] for r in json_lines(other, "out")] == ["hello from the peer"]
    assert [r["data"] for r in json_lines(other, "set_bool")] == [True, False]
    assert [r["order"] for r in json_lines(other, "fibonacci_goal")] == [5, 3]


def test_halted_action_client_cancels_its_goal(tmp_path: Path) -> None:
    env = ros_env(tmp_path)
    other = peer(env, "--step-s", "0.2")
    try:
        tree = vla_ros(str(HELPERS / "trees" / "halted_goal.yaml"), "--robot", "sim", "--json", env=env)
        assert tree.wait(30) == 1, tree.stderr
        other.wait_line(lambda line: json.loads(line)["kind"] == "fibonacci_cancelled", timeout=10)
    finally:
        other.process.stdin.close()  # type: ignore[union-attr]
        other.wait(10)
    assert json_lines(other, "fibonacci_cancel_request"), "the server saw the cancel"
    assert "timed out" in json.loads(tree.lines[-1])["reason"]


def test_behaviour_by_dotted_path_gets_the_node_from_setup(tmp_path: Path) -> None:
    env = ros_env(tmp_path)
    probe = Probe(env)
    try:
        probe.subscribe("/test/dotted", STRING, latched=True)
        tree = vla_ros(str(HELPERS / "trees" / "dotted.yaml"), "--robot", "sim", "--json", env=env,
                       config=str(HELPERS / "config"))
        message = probe.wait_message("/test/dotted")
        assert tree.wait(30) == 0, tree.stderr
    finally:
        probe.close()
    assert message["data"]["data"] == "hi from a dotted path"
