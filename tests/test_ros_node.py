"""``vla-bt ros``: a tree from trees/ as a ROS 2 node against the simulated robot node, all in separate processes.

Speech comes in and goes out on topics; the status and snapshot topics show the
run; an e-stop on its topic stops the robot within one tick; SIGINT cancels the
goal in flight (the simulated robot's server logs the cancel) before the node exits.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.helpers.cli import read_audit  # noqa: E402
from tests.ros_helpers import STRING, Probe, SimNodeProc, ros_env, vla_ros  # noqa: E402

pytestmark = pytest.mark.ros


def test_spoken_instruction_carried_out_with_replies_and_status_topics(tmp_path: Path) -> None:
    env = ros_env(tmp_path)
    sim = SimNodeProc(tmp_path, env, "--time-scale", "10")
    probe = Probe(env)
    try:
        probe.subscribe("/speech/reply", STRING)
        probe.subscribe("/vla_bt/status", STRING, latched=True)
        probe.subscribe("/vla_bt/snapshot", STRING, latched=True)
        tree = vla_ros("trees/fetch_object.yaml", "--json", "--max-seconds", "60", env=env)
        probe.publish("/speech/utterance", STRING, "pick up the red cup")
        assert tree.wait(60) == 0, tree.stderr + "\n".join(tree.lines)
        result = json.loads(tree.lines[-1])
        reply = probe.wait_message("/speech/reply")
        final = probe.wait_message("/vla_bt/status", lambda data: json.loads(data["data"])["final"])
    finally:
        probe.close()
        sim.stop()
    assert result["status"] == "SUCCESS"
    assert [(c["skill"], c["args"].get("target") or c["args"].get("object")) for c in result["commands"]] == [
        ("navigate", "kitchen"), ("grasp", "cup_red")]
    assert result["dialogue"][0] == {"role": "user", "text": "pick up the red cup", "t": result["dialogue"][0]["t"]}
    assert reply["data"]["data"] == "I'll go to the kitchen and then pick up the red cup."
    status = json.loads(final["data"]["data"])
    assert (status["status"], status["exit_code"], status["tree"]) == ("SUCCESS", 0, "fetch_object")
    statuses = [json.loads(m["data"]["data"]) for m in probe.messages("/vla_bt/status")]
    feedback = [s["tip"]["feedback"] for s in statuses if s["tip"] and s["tip"]["type"] == "Navigate"]
    assert any("m to go" in text for text in feedback), "Nav2 feedback reached the tree's status"
    snapshot = json.loads(probe.messages("/vla_bt/snapshot")[-1]["data"]["data"])
    assert (snapshot["root"]["name"], snapshot["root"]["status"]) == ("Fetch", "SUCCESS")
    assert snapshot["blackboard"]["/robot/holding"] == "cup_red"
    assert [g["action"] for g in sim.events("goal")] == ["navigate", "gripper"]


def test_estop_topic_cancels_navigation_and_stops_within_one_tick(tmp_path: Path) -> None:
    env = ros_env(tmp_path)
    sim = SimNodeProc(tmp_path, env)
    probe = Probe(env)
    audit = tmp_path / "audit.jsonl"
    try:
        probe.subscribe("/vla_bt/status", STRING, latched=True)
        tree = vla_ros("trees/patrol.yaml", "--json", "--audit", str(audit), "--max-seconds", "60", env=env)
        goal = sim.wait_event(lambda e: e["event"] == "goal" and e["action"] == "navigate")
        probe.wait_message("/vla_bt/status", lambda data: json.loads(data["data"])["tick"] > 5)
        # Both the tree's node and the sim node listen to the e-stop topic.
        pressed = probe.publish("/estop", "std_msgs/msg/Bool", True, min_match=2)
        assert tree.wait(30) == 1, tree.stderr
        cancel = sim.wait_event(lambda e: e["event"] == "cancel_request")
        stop = sim.wait_event(lambda e: e["event"] == "stop")
        result = sim.wait_event(lambda e: e["event"] == "result" and e["goal"] == goal["goal"])
    finally:
        probe.close()
        sim.stop()
    assert cancel["goal"] == goal["goal"] and result["status"] == "canceled"
    assert cancel["t"] >= pressed["t"] and stop["t"] >= pressed["t"]  # how soon: in ticks, below
    records = read_audit(audit)
    trip = next(r for r in records if r["kind"] == "guard_trip")
    assert trip["condition"] == "estop_released"
    assert any(r["kind"] == "safe_stop" for r in records)
    # Within one tick: the first tick that began after the e-stop arrived ended the run (the first tick that
    # finished after it, or the one after that when the e-stop came while a tick was running).
    statuses = [json.loads(m["data"]["data"]) for m in probe.messages("/vla_bt/status")]
    after = min(s["tick"] for s in statuses if s["t"] > pressed["t"])
    final = next(s for s in statuses if s["final"])
    assert final["status"] == "FAILURE" and final["tick"] <= after + 1
    assert json.loads(tree.lines[-1])["status"] == "FAILURE"


def test_sigint_cancels_the_goal_in_flight_before_the_node_exits(tmp_path: Path) -> None:
    env = ros_env(tmp_path)
    sim = SimNodeProc(tmp_path, env)
    try:
        tree = vla_ros("trees/patrol.yaml", "--max-seconds", "60", env=env)
        goal = sim.wait_event(lambda e: e["event"] == "goal" and e["action"] == "navigate")
        sim.wait_event(lambda e: e["event"] == "speed_limit")
        tree.interrupt()
        assert tree.wait(30) == 130, tree.stderr
        cancels = sim.events("cancel_request")
        result = sim.wait_event(lambda e: e["event"] == "result" and e["goal"] == goal["goal"], timeout=5)
    finally:
        sim.stop()
    assert [c["goal"] for c in cancels] == [goal["goal"]], "the server saw the cancel before the tree's node exited"
    assert result["status"] == "canceled"
    assert "interrupted by SIGINT" in tree.lines[-1]
