"""Recording a run and replaying it: the replayed statuses are the recorded run's, tick by tick.

A run of ``trees/assistant.yaml`` (scripted model, the simulator, a person
stepping next to the robot so that a guard trips) is recorded with
``attach_recorder`` while a second post-tick handler notes the live statuses
of every node at every tick. The recording is folded back and compared; the
text summary of ``vla-bt replay`` is checked; bad files are refused clearly.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import py_trees
import pytest

from vla_bt import blackboard as keys
from vla_bt.app import assemble
from vla_bt.guards.audit import AuditLog
from vla_bt.llm.scripted import PlannedCall, PlannedResponse, ScriptedBackend
from vla_bt.llm.session import ModelSession
from vla_bt.llm.tools import tool_specs
from vla_bt.robot.sim import SimRobot
from vla_bt.robot.world import load_world
from vla_bt.speech import ScriptedUtterances
from vla_bt.tree.loader import TreeLoader
from vla_bt.tree.registry import Registry
from vla_bt.tree.runner import RunResult
from vla_bt.viz.record import (
    PROJECT_KEYS,
    Snapshotter,
    apply_frame,
    attach_recorder,
    empty_state,
    jsonable,
    statuses_by_path,
    tree_statuses,
)
from vla_bt.viz.replay import RecordingError, load_recording, replay_command, summary

ROOT = Path(__file__).resolve().parent.parent
FETCH = PlannedResponse(tool_calls=(
    PlannedCall("navigate", '{"target": "kitchen"}'),
    PlannedCall("grasp", '{"object": "red cup"}'),
    PlannedCall("navigate", '{"target": "user"}'),
))


@dataclass
class Recorded:
    path: Path
    result: RunResult
    live: dict[int, dict[str, tuple[str, str]]]
    audit: AuditLog
    history: list[dict[str, Any]]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    """One recorded run, shared by the tests of this module."""
    py_trees.blackboard.Blackboard.clear()
    path = tmp_path_factory.mktemp("record") / "run.jsonl"
    registry = Registry.default()
    loaded = TreeLoader(registry).load(os.path.relpath(ROOT / "trees" / "assistant.yaml"))
    world = load_world(ROOT / "config" / "world.yaml")
    robot = SimRobot(world, time_scale=8)
    audit = AuditLog()
    run = assemble(loaded, registry, world=world, utterances=ScriptedUtterances(["bring me the red cup"]),
                   robot=robot, session=ModelSession(ScriptedBackend([FETCH]), tool_specs(registry)), audit=audit,
                   max_seconds=60)
    recorder = attach_recorder(run, path)
    live: dict[int, dict[str, tuple[str, str]]] = {}
    run.runner.tree.add_post_tick_handler(lambda tree: live.__setitem__(tree.count + 1, tree_statuses(tree.root)))

    def step_in() -> None:  # a person steps next to the robot during the first navigation, then leaves
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not audit.of_kind("command"):
            time.sleep(0.01)
        time.sleep(0.3)
        x, y, _ = robot.pose
        robot.add_human("bob", (x + 0.3, y, 0.0))
        time.sleep(0.4)
        robot.remove_human("bob")

    threading.Thread(target=step_in, daemon=True).start()
    result = run.execute()
    recorder.finish(result)
    history = list(keys.read(keys.DIALOGUE_HISTORY, []) or [])
    py_trees.blackboard.Blackboard.clear()
    return Recorded(path, result, live, audit, history)


def test_every_line_is_json_and_flushed_with_a_header_and_an_end(recorded: Recorded) -> None:
    lines = recorded.path.read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    assert records[0]["kind"] == "header" and records[0]["format"] == "vla-bt-recording"
    assert records[0]["tree"]["name"] == "assistant"
    assert records[0]["world"]["places"]["kitchen"] == [4.0, 2.0, 0.0]
    assert records[-1]["kind"] == "end" and records[-1]["status"] == "SUCCESS"
    assert {r["kind"] for r in records[1:-1]} == {"tick"}
    assert records[1]["tick"] == 0 and "tree" in records[1], "the tree as it was before the first tick"
    ticks = [r["tick"] for r in records[1:-1]]
    assert ticks == sorted(ticks)
    assert "dot" in records[1]["tree"] and "digraph" in records[1]["tree"]["dot"]
    revisions = [r["tree"]["rev"] for r in records[1:] if r.get("tree")]
    assert len(revisions) >= 2, "ExecutePlan's new children are structure changes"
    keys_seen = {key for r in records for key in r.get("bb", {})}
    assert {keys.ROBOT_POSE, keys.PLAN_STEPS, keys.DIALOGUE_HISTORY, keys.PERCEPTION_HUMANS} <= keys_seen
    assert keys.ROBOT_STAMP not in keys_seen and keys.LLM_STREAM not in keys_seen
    assert all(not key.startswith("/robot/stamp") for key in PROJECT_KEYS)


def test_replayed_statuses_equal_the_recorded_run_at_every_tick(recorded: Recorded) -> None:
    recording = load_recording(recorded.path)
    assert recording.ticks == recorded.result.ticks
    assert set(recorded.live) == set(range(1, recorded.result.ticks + 1))
    frames = iter(recording.frames)
    state = empty_state()
    pending = next(frames, None)
    for tick in sorted(recorded.live):
        while pending is not None and pending["tick"] <= tick:
            apply_frame(state, pending)
            pending = next(frames, None)
        assert statuses_by_path(state) == recorded.live[tick], f"tick {tick}"
    final = recording.final_state()
    assert final["bb"][keys.DIALOGUE_HISTORY] == jsonable(recorded.history)
    assert [e["kind"] for e in recording.events()] == [e["kind"] for e in recorded.audit.events]


def test_the_text_summary(recorded: Recorded) -> None:
    text = summary(load_recording(recorded.path))
    lines = text.splitlines()
    assert lines[1] == "tree: assistant (trees/assistant.yaml)"
    assert lines[2].startswith(f"ticks: {recorded.result.ticks} (")
    assert f"duration: {recorded.result.seconds:.2f} s" in lines[2]
    assert "final status: SUCCESS - completed" in text
    commands = [c for c in recorded.result.commands if c["skill"] != "stop"]
    assert f"commands: {len(commands)}" in text
    assert 'navigate {"target": "kitchen"' in text and 'grasp {"object": "cup_red"}' in text
    assert "guard trips: 1" in text and "People: human_clearance - bob is" in text
    assert "safe stops:" in text
    assert "user: bring me the red cup" in text and "robot: Hello! What can I do for you?" in text


def test_replay_command_prints_the_summary(recorded: Recorded, capsys: pytest.CaptureFixture[str]) -> None:
    assert replay_command(argparse.Namespace(file=str(recorded.path), viewer=None)) == 0
    out = capsys.readouterr().out
    assert out.strip() == summary(load_recording(recorded.path))


def test_a_file_with_several_runs_and_a_cut_off_last_line(recorded: Recorded, tmp_path: Path) -> None:
    both = tmp_path / "both.jsonl"
    text = recorded.path.read_text(encoding="utf-8")
    lines = text.splitlines()
    cut = "\n".join(lines[:-1]) + "\n" + lines[-2][: len(lines[-2]) // 2]  # a second run killed mid-line
    both.write_text(text + cut, encoding="utf-8")
    last = load_recording(both)
    assert (last.index, last.runs) == (1, 2) and last.end is None
    assert last.warnings and last.warnings[0].startswith(f"{both}:{len(lines) * 2}: skipped a line that is not JSON")
    status, reason = last.final_status()
    assert status == "SUCCESS" and "cut off" in reason
    assert "(run 2 of 2)" in summary(last).splitlines()[0]
    first = load_recording(both, run=0)
    assert first.end is not None and len(first.frames) == len(last.frames)


def test_files_that_are_not_recordings_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    audit_like = tmp_path / "audit.jsonl"
    audit_like.write_text('{"t": 1.0, "kind": "command", "skill": "navigate"}\n', encoding="utf-8")
    with pytest.raises(RecordingError, match=r"audit\.jsonl:1: expected the recording's header first"):
        load_recording(audit_like)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(RecordingError, match="empty recording"):
        load_recording(empty)
    other = tmp_path / "other.jsonl"
    other.write_text('{"kind": "header", "format": "vla-bt-recording", "version": 99}\n', encoding="utf-8")
    with pytest.raises(RecordingError, match="version 99 is not supported"):
        load_recording(other)
    assert replay_command(argparse.Namespace(file=str(tmp_path / "missing.jsonl"), viewer=None)) == 2
    assert "missing.jsonl: cannot read" in capsys.readouterr().err


def test_snapshot_values_are_strict_json_and_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0123456789abcdef")
    value = jsonable({"pose": (1.0, float("nan")), "say": "key sk-test-0123456789abcdef", "raw": b"\x00\x01",
                      "tags": {"b", "a"}})
    assert value == {"pose": [1.0, "nan"], "say": "key [redacted]", "raw": "[2 bytes]", "tags": ["a", "b"]}
    root = py_trees.composites.Sequence("Root", memory=True, children=[py_trees.behaviours.Success("Done")])
    tree = py_trees.trees.BehaviourTree(root)
    snapshotter = Snapshotter(keys_recorded=["/x"])
    frames: list[Any] = []
    tree.add_post_tick_handler(lambda t: frames.append(snapshotter.capture(t)))
    py_trees.blackboard.Blackboard.set("/x", [1, 2])
    tree.tick()
    first = frames[0]
    assert first is not None and first["tick"] == 1 and first["bb"] == {"/x": [1, 2]}
    assert first["nodes"] == {"n1": ["SUCCESS", ""], "n2": ["SUCCESS", "success"]}
    assert [n[1] for n in first["tree"]["nodes"]] == ["Root", "Done"]
    tree.tick()
    assert frames[1] is None, "nothing changed"
    py_trees.blackboard.Blackboard.unset("/x")
    tree.tick()
    assert frames[2]["tick"] == 3 and frames[2]["bb_del"] == ["/x"]
