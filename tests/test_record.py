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
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
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
    Recorder,
    Snapshotter,
    apply_frame,
    attach_recorder,
    empty_state,
    header,
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


# -- malformed recordings: skipped record by record, never a traceback ----------------------------------------

WRONG_VALUES: tuple[Any, ...] = (None, True, -1, 2.5, "x", [], {}, [None], {"a": 1})
"""Values of the wrong type (or shape) for the fields of a record."""


def _records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _write(path: Path, records: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records), encoding="utf-8")
    return path


def _set(record: Any, where: tuple[Any, ...], value: Any) -> Any:
    """A deep copy of ``record`` with the field at ``where`` (keys and list indexes) replaced by ``value``."""
    copy = json.loads(json.dumps(record))
    container = copy
    for step in where[:-1]:
        container = container[step]
    container[where[-1]] = value
    return copy


def _has(record: Any, where: tuple[Any, ...]) -> bool:
    """Whether the record has a field at ``where`` (keys and list indexes)."""
    for step in where:
        if not isinstance(record, (dict, list)) or (step not in record if isinstance(record, dict)
                                                    else not isinstance(step, int) or step >= len(record)):
            return False
        record = record[step]
    return True


def _fields(value: Any, where: tuple[Any, ...] = (), depth: int = 4) -> Iterator[tuple[Any, ...]]:
    """Where a record has fields: every key of its mappings and the first item of its lists, ``depth`` levels deep."""
    if depth == 0:
        return
    steps = list(value) if isinstance(value, dict) else [0] if isinstance(value, list) and value else []
    for step in steps:
        yield (*where, step)
        yield from _fields(value[step], (*where, step), depth - 1)


def _replay(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = replay_command(argparse.Namespace(file=str(path), viewer=None))
    out, err = capsys.readouterr()
    return code, out, err


def test_replay_skips_a_tick_record_whose_nodes_are_not_pairs(recorded: Recorded, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    records = _records(recorded.path)
    line = next(i for i, r in enumerate(records) if r.get("nodes") and "n1" in r["nodes"])
    records[line] = _set(records[line], ("nodes", "n1"), None)
    bad = _write(tmp_path / "bad.jsonl", records)
    recording = load_recording(bad)
    assert len(recording.frames) == len(records) - 3, "only the malformed tick is left out"
    assert len(recording.warnings) == 1 and recording.warnings[0].startswith(f"{bad}:{line + 1}: skipped")
    assert "nodes.n1" in recording.warnings[0]
    code, out, err = _replay(bad, capsys)
    assert code == 0 and "final status: SUCCESS - completed" in out
    assert f"warning: {bad}:{line + 1}: skipped" in err


@pytest.mark.parametrize(("kind", "where", "value", "named"), [
    ("tick", ("bb",), "x", "bb: expected object, got string"),
    ("tick", ("tree",), {"a": 1}, "tree.rev: missing"),
    ("tick", ("audit", 0, "args"), 5, "audit[0].args: expected object or null, got integer"),
    ("tick", ("bb", keys.DIALOGUE_HISTORY), 5, f"bb.{keys.DIALOGUE_HISTORY}: expected array, got integer"),
    ("tick", ("tree", "nodes", 1, 3), "n999", "tree.nodes[1]: its parent 'n999' is not listed before it"),
    ("tick", ("tree", "nodes", 0, 3), "n1", "tree.nodes[0]: its parent 'n1' is not listed before it"),
    ("tick", ("tree", "nodes", 2, 0), "n1", "tree.nodes[2]: the node id 'n1' is listed twice"),
    ("tick", ("nodes", "n1", 0), "DONE", 'nodes.n1[0]: expected "SUCCESS" or "FAILURE" or "RUNNING" or "INVALID", '
                                          'got "DONE"'),
    ("tick", ("tick",), -1, "tick: -1 is less than the minimum of 0"),
    ("end", ("ticks",), "many", "ticks: expected integer, got string"),
], ids=["bb-a-string", "tree-without-rev", "audit-args-a-number", "history-a-number", "parent-unknown",
        "parent-itself", "id-twice", "unknown-status", "tick-negative", "end-ticks-a-string"])
def test_replay_skips_a_record_with_a_field_of_the_wrong_type(
        recorded: Recorded, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        kind: str, where: tuple[Any, ...], value: Any, named: str) -> None:
    records = _records(recorded.path)
    line = next(i for i, r in enumerate(records) if r["kind"] == kind and _has(r, where))
    records[line] = _set(records[line], where, value)
    bad = _write(tmp_path / "bad.jsonl", records)
    code, out, err = _replay(bad, capsys)
    assert code == 0 and out.startswith(f"recording {bad}")
    warnings = [w for w in err.splitlines() if w.startswith("warning: ")]
    assert len(warnings) == 1 and warnings[0].startswith(f"warning: {bad}:{line + 1}: skipped a {kind} record: {named}")
    statuses_by_path(load_recording(bad).final_state())


def test_replay_skips_a_record_with_a_number_that_is_not_finite(recorded: Recorded, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    records: list[Any] = _records(recorded.path)
    records[2:2] = ['{"kind": "tick", "tick": NaN, "t": 1.0}', '{"kind": "tick", "tick": 1, "t": 1e400}',
                    '{"kind": "tick", "tick": 1, "t": -Infinity}',
                    '{"kind": "tick", "tick": 1, "t": ' + "9" * 5000 + "}"]
    bad = _write(tmp_path / "bad.jsonl", records)
    code, out, err = _replay(bad, capsys)
    assert code == 0 and "final status: SUCCESS" in out
    for line in (3, 4, 5, 6):
        assert f"warning: {bad}:{line}: skipped a line" in err


def test_replay_skips_a_line_nested_too_deeply(recorded: Recorded, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    records: list[Any] = _records(recorded.path)
    deep = 100_000
    records.insert(2, '{"kind": "tick", "tick": 1, "t": 1.0, "bb": {"/x": ' + "[" * deep + "]" * deep + "}}")
    records.insert(3, '{"kind": "tick", "tick": 1, "t": 1.0, "bb": {"/x": ' + "[" * 200 + "]" * 200 + "}}")
    bad = _write(tmp_path / "bad.jsonl", records)
    code, out, err = _replay(bad, capsys)
    assert code == 0 and "final status: SUCCESS" in out
    assert f"warning: {bad}:3: skipped a line nested too deeply" in err
    assert f"warning: {bad}:4: skipped a line nested too deeply" in err


def test_replay_skips_lines_too_long_or_not_utf8_and_bounds_the_warnings(
        recorded: Recorded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vla_bt.viz import replay

    lines = recorded.path.read_bytes().splitlines(keepends=True)
    longest = max(range(1, len(lines) - 1), key=lambda i: len(lines[i]))
    monkeypatch.setattr(replay, "LINE_LIMIT", len(lines[longest]) - 10)
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b"".join([*lines[:2], b'{"kind": "tick", "t\xff": 1}\n', *lines[2:]]))
    recording = load_recording(bad)
    assert recording.warnings == [f"{bad}:3: skipped a line that is not UTF-8 text",
                                  f"{bad}:{longest + 2}: skipped a line longer than {len(lines[longest]) - 10} bytes"]
    assert len(recording.frames) == len(lines) - 3 and recording.end is not None
    monkeypatch.setattr(replay, "LINE_LIMIT", 1 << 20)
    monkeypatch.setattr(replay, "WARNINGS_KEPT", 2)
    bad.write_bytes(b"".join([*lines[:-1], b"not json\n" * 5, lines[-1]]))
    recording = load_recording(bad)
    assert recording.warnings == [f"{bad}:{len(lines)}: skipped a line that is not JSON (Expecting value)",
                                  f"{bad}:{len(lines) + 1}: skipped a line that is not JSON (Expecting value)",
                                  f"{bad}: 3 more warning(s) left out"]
    assert recording.final_status() == ("SUCCESS", "completed")


def test_replay_refuses_a_path_that_is_not_a_regular_file(tmp_path: Path) -> None:
    # In a process of its own with little memory: reading /dev/zero to the end would use up all there is.
    script = ("import argparse, resource, sys; resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30)); "
              "from vla_bt.viz.replay import replay_command; "
              "sys.exit(replay_command(argparse.Namespace(file=sys.argv[1], viewer=None)))")
    for path in ("/dev/zero", str(tmp_path)):
        result = subprocess.run([sys.executable, "-c", script, path], cwd=ROOT, capture_output=True, text=True,
                                timeout=60, check=False)
        assert result.returncode == 2, result.stderr
        assert result.stderr == f"error: {path}: not a recording (not a regular file)\n"


def test_replay_of_records_with_fields_of_every_wrong_type(recorded: Recorded, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """Every field (four levels deep) of one record of each shape, replaced by values of the wrong types.

    Each variant is a short recording: the header, the record of that shape
    and the end, one of them changed.
    """
    records = _records(recorded.path)
    shapes: dict[Any, int] = {}
    for index, record in enumerate(records):
        shapes.setdefault((record["kind"], tuple(sorted(record))), index)
    bad = tmp_path / "bad.jsonl"
    variants = skipped = refused = 0
    for index in shapes.values():
        short = [records[i] for i in sorted({0, index, len(records) - 1})]
        at = short.index(records[index])
        for where in _fields(records[index]):
            for value in WRONG_VALUES:
                _write(bad, [*short[:at], _set(records[index], where, value), *short[at + 1:]])
                code, out, err = _replay(bad, capsys)
                variants += 1
                context = f"line {index + 1}, {where} = {value!r}: {err}"
                assert code in (0, 2), context
                if code == 2:
                    refused += 1
                    assert err.startswith(f"error: {bad}:") and out == "", context
                    continue
                assert out.startswith(f"recording {bad}"), context
                lines = err.splitlines()
                assert all(line.startswith(f"warning: {bad}:{at + 1}: ") for line in lines), context
                skipped += bool(lines)
    assert variants > 1000 and skipped > variants // 2 and refused > 0


def test_record_appends_on_a_new_line_after_a_file_without_one(recorded: Recorded, tmp_path: Path) -> None:
    text = recorded.path.read_text(encoding="utf-8")
    cut = text.index("\n", len(text) // 2) + 20  # a run killed 20 characters into a line
    path = tmp_path / "appended.jsonl"
    path.write_text(text[:cut], encoding="utf-8")
    cut_line = text[:cut].count("\n") + 1
    root = py_trees.composites.Sequence("Root", memory=True, children=[py_trees.behaviours.Success("Done")])
    tree = py_trees.trees.BehaviourTree(root)
    recorder = Recorder(path, Snapshotter(keys_recorded=[]), header())
    tree.add_post_tick_handler(recorder.post_tick)
    tree.tick()
    recorder.finish()
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[cut_line - 1] == text[:cut].splitlines()[-1] and lines[cut_line].startswith('{"kind":"header"')
    recording = load_recording(path)
    assert (recording.index, recording.runs) == (1, 2) and recording.final_status() == ("SUCCESS", "")
    assert len(recording.warnings) == 1
    assert recording.warnings[0].startswith(f"{path}:{cut_line}: skipped a line that is not JSON")
    for before in ("", text):  # an empty file, and one that ends with a newline, get no blank line
        path.write_text(before, encoding="utf-8")
        Recorder(path, Snapshotter(keys_recorded=[]), header()).finish()
        after = path.read_text(encoding="utf-8")
        assert after.startswith(before + '{"kind":"header"') and "\n\n" not in after


def test_replay_into_a_reader_that_went_away_ends_quietly(recorded: Recorded) -> None:
    """Regression: `vla-bt replay FILE | head` ended with a BrokenPipeError traceback."""
    replay = subprocess.Popen([sys.executable, "-m", "vla_bt", "replay", str(recorded.path)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert replay.stdout is not None and replay.stderr is not None
    replay.stdout.close()  # the reader is gone before anything is written
    error = replay.stderr.read().decode()
    assert replay.wait(60) == 0 and "Traceback" not in error and "BrokenPipe" not in error
