"""The ROS 2 robot backend against the simulated robot node, each in a process of its own (real rclpy, DDS).

``tests/ros_helpers/run_ros2.py`` is ``vla-bt run --robot ros2 --json`` through
the Python API; ``robot_script.py`` drives a ``Ros2Robot`` step by step.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.ros_helpers import SimNodeProc, helper_proc, json_lines, ros_env  # noqa: E402
from vla_bt.robot.sim import SimRobot  # noqa: E402
from vla_bt.robot.world import load_world  # noqa: E402

pytestmark = pytest.mark.ros


def robot_script(env: dict[str, str], steps: list, *options: str) -> list[dict]:
    process = helper_proc("robot_script.py", *options, json.dumps(steps), env=env)
    assert process.wait(60) == 0, process.stderr
    return json_lines(process)


def test_clear_table_with_the_ros2_robot_against_the_sim_node(tmp_path: Path) -> None:
    env = ros_env(tmp_path)
    sim = SimNodeProc(tmp_path, env, "--time-scale", "10")
    try:
        run = helper_proc("run_ros2.py", "trees/clear_table.yaml", "--say", "yes", "--say", "yes please",
                          "--audit", str(tmp_path / "audit.jsonl"), env=env)
        code = run.wait(90)
        assert code == 0, run.stderr
        data = json.loads(run.lines[-1])
    finally:
        sim.stop()
    assert data["status"] == "SUCCESS"
    one = [("navigate", "kitchen"), ("grasp", "{}"), ("navigate", "living_room"), ("place", "shelf_1")]
    targets = [(c["skill"], c["args"].get("target") or c["args"].get("object")) for c in data["commands"]]
    assert targets == [(s, t.format("cup_red")) for s, t in one] + [(s, t.format("cup_blue")) for s, t in one]
    # Goals and results crossed DDS: the server ran each goal to success, the gripper with the intended object.
    goals, results = sim.events("goal"), sim.events("result")
    assert [g["action"] for g in goals] == ["navigate", "gripper", "navigate", "gripper"] * 2
    assert [r["status"] for r in results] == ["succeeded"] * 8
    assert [r["message"] for r in results if r["action"] == "gripper"] == [
        "holding cup_red", "placed cup_red at (1.5, 4)", "holding cup_blue", "placed cup_blue at (1.5, 4)"]
    assert [g["intent"]["skill"] for g in goals if g["action"] == "gripper"] == ["grasp", "place"] * 2
    assert not sim.events("cancel_request")
    # Feedback crossed too: the tree saw the distance remaining shrink during the drives.
    feedback = data["navigation_feedback"]
    assert len(feedback) >= 4 and min(feedback) < max(feedback)
    assert data["dialogue"][-1]["text"] == "The kitchen table is clear."


def test_perception_from_the_sim_node_matches_the_world(tmp_path: Path) -> None:
    env = ros_env(tmp_path)
    sim = SimNodeProc(tmp_path, env)
    try:
        lines = robot_script(env, [["perceive", 7], ["perceive_humans", 1]])
    finally:
        sim.stop()
    seen = lines[-1]
    truth = SimRobot(load_world(ROOT / "config" / "world.yaml")).perceive()
    assert [o["id"] for o in seen["objects"]] == sorted(o["id"] for o in truth.objects)
    for got, want in zip(seen["objects"], sorted(truth.objects, key=lambda o: o["id"]), strict=True):
        assert (got["label"], got["color"], got["graspable"]) == (want["label"], want["color"], want["graspable"])
        assert all(math.isclose(a, b, abs_tol=1e-6) for a, b in zip(got["pose"], want["pose"], strict=True))
    assert [h["id"] for h in seen["humans"]] == ["alice"]
    assert seen["pose"] == [0.0, 0.0, 0.0] and seen["holding"] is None and seen["battery"] == pytest.approx(1.0, 0.01)


def test_gripper_semantics_grasp_place_hand_over(tmp_path: Path) -> None:
    env = ros_env(tmp_path)
    sim = SimNodeProc(tmp_path, env, "--time-scale", "20")
    try:
        steps = [["perceive", 7], ["grasp", "cup_red"], ["navigate", [4.0, 2.0, 0.0]], ["grasp", "cup_red"],
                 ["grasp", "cup_blue"], ["navigate", [0.5, 0.8, 0.0]], ["hand_over", "alice"],
                 ["gone", "cup_red"]]
        lines = robot_script(env, steps)
    finally:
        sim.stop()
    far, _, grasp, again, _, hand_over, after = lines[2:]
    # Closing the gripper far from the cup closes it on nothing: a failed grasp, nothing held.
    assert (far["state"], far["holding"]) == ("failed", None)
    assert "closed on nothing" in far["message"]
    assert (grasp["state"], grasp["holding"]) == ("succeeded", "cup_red")
    # Holding one thing already: refused before anything is sent.
    assert (again["state"], again["message"]) == ("failed", "already holding cup_red")
    assert (hand_over["state"], hand_over["holding"]) == ("succeeded", None)
    assert "cup_red" not in [o["id"] for o in after["objects"]], "handed over: no longer in the scene"
    intents = [g["intent"] for g in sim.events("goal") if g["action"] == "gripper"]
    assert intents == [{"skill": "grasp", "object": "cup_red"}, {"skill": "grasp", "object": "cup_red"},
                       {"skill": "hand_over", "to": "alice", "object": "cup_red"}]
