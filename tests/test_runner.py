"""The tick loop (``vla_bt.tree.runner``) and the console view, in process.

The blackboard is cleared between tests by the autouse fixture of ``conftest.py``.
"""

from __future__ import annotations

import io
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import py_trees
import pytest
from rich.console import Console

from vla_bt import blackboard as keys
from vla_bt.speech import ScriptedUtterances
from vla_bt.tree.loader import LoadedTree, TreeLoader, load_tree
from vla_bt.tree.registry import Registry
from vla_bt.tree.runner import Runner, RunResult, explain
from vla_bt.viz.console import ConsoleView

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # tests.helpers, as the CLI tests import it with PYTHONPATH
    sys.path.insert(0, str(ROOT))

from tests.helpers.probes import Fail, Hold, LateUtterances  # noqa: E402

Status = py_trees.common.Status
HELLO = ROOT / "trees" / "hello.yaml"


def registry() -> Registry:
    reg = Registry.default(plugins=False)
    reg.add_class(Hold, origin="test")
    reg.add_class(Fail, origin="test")
    return reg


def hold_tree(tmp_path: Path) -> LoadedTree:
    path = tmp_path / "hold.yaml"
    path.write_text(f"""\
version: 1
root:
  type: Sequence
  name: Root
  memory: true
  children:
    - {{type: Success}}
    - {{type: Hold, name: Probe, marker: "{tmp_path / 'probe.log'}"}}
""", encoding="utf-8")
    return TreeLoader(registry()).load(path)


def probe(loaded: LoadedTree) -> Hold:
    return next(node for node in loaded.root.iterate() if isinstance(node, Hold))


def in_thread(action: Callable[[], None]) -> threading.Thread:
    thread = threading.Thread(target=action, daemon=True)
    thread.start()
    return thread


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.005)


# -- running trees -------------------------------------------------------------------

def test_run_hello_with_scripted_utterances() -> None:
    runner = Runner(load_tree(HELLO), setup_kwargs={"utterances": ScriptedUtterances(["bring the cup"])})
    result = runner.run()
    assert result.status == "SUCCESS"
    assert result.exit_code == 0
    assert not result.interrupted
    assert result.ticks >= 1
    assert [(t["role"], t["text"]) for t in result.dialogue] == [
        ("robot", "Hello! What shall I do?"),
        ("user", "bring the cup"),
        ("robot", "You said it. I will be able to act on it soon."),
    ]
    assert set(result.to_json()) == {"status", "reason", "steps", "commands", "trips", "dialogue"}


def test_run_fails_when_utterances_run_out() -> None:
    runner = Runner(load_tree(HELLO), setup_kwargs={"utterances": ScriptedUtterances([])})
    result = runner.run()
    assert result.status == "FAILURE"
    assert result.exit_code == 1
    assert result.reason.startswith("Listen:")
    assert [t["role"] for t in result.dialogue] == ["robot"], "what was said before the failure is kept"


def test_run_applies_the_documents_blackboard() -> None:
    loaded = load_tree(ROOT / "trees" / "fetch_object.yaml")
    result = Runner(loaded, setup_kwargs={"utterances": ScriptedUtterances(["hi"])}).run()
    assert result.status == "FAILURE"
    assert keys.read("/robot/max_speed") == 0.5


def test_rate_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="rate_hz"):
        Runner(hold_tree(tmp_path), rate_hz=0)


def test_wake_from_another_thread_ticks_at_once(tmp_path: Path) -> None:
    loaded = hold_tree(tmp_path)
    runner = Runner(loaded, rate_hz=1.0)  # one tick a second unless woken
    seen: dict[str, float] = {}

    def drive() -> None:
        wait_for(lambda: loaded.tree.count >= 1)
        runner.wake()
        time.sleep(0.3)
        seen["after_wake"] = loaded.tree.count
        seen["stop_requested"] = time.monotonic()
        runner.request_stop("test over")

    thread = in_thread(drive)
    result = runner.run()
    returned = time.monotonic()
    thread.join(5)
    assert seen["after_wake"] >= 2, "wake() did not cause a tick before the 1 s period"
    assert result.reason == "test over"
    assert returned - seen["stop_requested"] < 0.8, "request_stop() did not wake the loop either"


def test_without_wake_the_rate_holds(tmp_path: Path) -> None:
    """The control for the test above: at 1 Hz, nothing ticks again within 0.3 s."""
    loaded = hold_tree(tmp_path)
    runner = Runner(loaded, rate_hz=1.0)
    seen: dict[str, int] = {}

    def drive() -> None:
        wait_for(lambda: loaded.tree.count >= 1)
        time.sleep(0.3)
        seen["count"] = loaded.tree.count
        runner.request_stop("test over")

    thread = in_thread(drive)
    runner.run()
    thread.join(5)
    assert seen["count"] == 1


def test_request_stop_from_a_thread(tmp_path: Path) -> None:
    loaded = hold_tree(tmp_path)
    runner = Runner(loaded, rate_hz=20.0)
    thread = in_thread(lambda: (wait_for(lambda: loaded.tree.count >= 3),
                                runner.request_stop("operator said stop")))
    result = runner.run()
    thread.join(5)
    assert result.status == "RUNNING"
    assert result.reason == "operator said stop"
    assert not result.interrupted
    assert result.exit_code == 1
    assert result.ticks >= 3
    assert probe(loaded).events[-1] == "shutdown"


def test_request_stop_as_interrupt_exits_130(tmp_path: Path) -> None:
    loaded = hold_tree(tmp_path)
    runner = Runner(loaded, rate_hz=20.0)
    runner.request_stop("interrupted by test", interrupted=True)
    result = runner.run()
    assert result.status == "RUNNING"
    assert result.interrupted
    assert result.exit_code == 130
    assert result.reason == "interrupted by test"


def test_stop_terminates_running_behaviours_before_shutdown(tmp_path: Path) -> None:
    loaded = hold_tree(tmp_path)
    runner = Runner(loaded, rate_hz=20.0)
    thread = in_thread(lambda: (wait_for(lambda: loaded.tree.count >= 2), runner.request_stop("stop")))
    runner.run()
    thread.join(5)
    events = probe(loaded).events
    assert "terminate INVALID" in events, f"terminate() never ran: {events}"
    assert events.index("terminate INVALID") < events.index("shutdown")
    assert loaded.root.status != Status.RUNNING


def test_time_limit_stops_with_running(tmp_path: Path) -> None:
    loaded = hold_tree(tmp_path)
    result = Runner(loaded, rate_hz=50.0, max_seconds=0.2).run()
    assert result.status == "RUNNING"
    assert "time limit" in result.reason
    assert result.exit_code == 1
    assert 0.2 <= result.seconds < 5


def test_signals_turn_sigterm_into_a_clean_stop(tmp_path: Path) -> None:
    runner = Runner(hold_tree(tmp_path), rate_hz=20.0)
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with runner.signals():
        signal.raise_signal(signal.SIGTERM)
        result = runner.run()
    assert result.interrupted
    assert result.exit_code == 130
    assert result.status == "RUNNING"
    assert "SIGTERM" in result.reason
    assert {s: signal.getsignal(s) for s in before} == before, "previous handlers not restored"


# -- explain and RunResult -------------------------------------------------------------------

def tick(root: py_trees.behaviour.Behaviour) -> py_trees.behaviour.Behaviour:
    root.tick_once()
    return root


def test_explain_names_the_failing_leaf() -> None:
    root = py_trees.composites.Sequence("Root", memory=True, children=[
        py_trees.behaviours.Success("Ok"),
        py_trees.composites.Sequence("Inner", memory=True, children=[Fail("boom", name="Deep")]),
    ])
    assert tick(root).status == Status.FAILURE
    assert explain(root) == "Deep: boom"


def test_explain_success_and_running() -> None:
    done = tick(py_trees.composites.Sequence("Root", memory=True, children=[py_trees.behaviours.Success("Ok")]))
    assert explain(done) == "completed"
    running = tick(py_trees.composites.Sequence("Root", memory=True, children=[Hold(marker=str(Path("/dev/null")))]))
    assert running.status == Status.RUNNING
    assert explain(running) == "Hold: holding"


def test_explain_ignores_a_failure_that_was_recovered() -> None:
    """A fallback that handled an earlier failure did not decide the outcome."""
    root = py_trees.composites.Sequence("Root", memory=True, children=[
        py_trees.composites.Selector("Fallback", memory=False, children=[
            Fail("handled", name="Recovered"), py_trees.behaviours.Success("Backup")]),
        Fail("", name="Decider"),
    ])
    assert tick(root).status == Status.FAILURE
    assert not explain(root).startswith("Recovered"), explain(root)


@pytest.mark.parametrize(("status", "interrupted", "code"), [
    ("SUCCESS", False, 0), ("FAILURE", False, 1), ("RUNNING", False, 1), ("RUNNING", True, 130),
])
def test_run_result_exit_code(status: str, interrupted: bool, code: int) -> None:
    assert RunResult(status=status, reason="r", interrupted=interrupted).exit_code == code


# -- dialogue history and the console view -------------------------------------------------------

def writer() -> py_trees.blackboard.Client:
    client = py_trees.blackboard.Client(name="test")
    client.register_key(keys.DIALOGUE_HISTORY, access=py_trees.common.Access.WRITE)
    return client


def test_append_turn_keeps_the_newest_turns() -> None:
    client = writer()
    before = time.time()
    for i in range(7):
        keys.append_turn(client, "user" if i % 2 else "robot", f"turn {i}", limit=3)
    history = client.get(keys.DIALOGUE_HISTORY)
    assert [t["text"] for t in history] == ["turn 4", "turn 5", "turn 6"]
    assert all(before - 1 <= t["t"] <= time.time() + 1 for t in history)


def test_append_turn_stores_a_new_list() -> None:
    client = writer()
    keys.append_turn(client, "robot", "one")
    first = client.get(keys.DIALOGUE_HISTORY)
    keys.append_turn(client, "user", "two")
    assert [t["text"] for t in first] == ["one"]
    assert len(client.get(keys.DIALOGUE_HISTORY)) == 2


def test_append_turn_default_limit() -> None:
    client = writer()
    for i in range(keys.HISTORY_LIMIT + 5):
        keys.append_turn(client, "robot", str(i))
    history = client.get(keys.DIALOGUE_HISTORY)
    assert len(history) == keys.HISTORY_LIMIT
    assert history[-1]["text"] == str(keys.HISTORY_LIMIT + 4)


def plain_console() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, force_terminal=False, width=200, color_system=None), buffer


def test_console_view_shows_each_turn_once_across_a_bounded_history() -> None:
    console, buffer = plain_console()
    root = py_trees.behaviours.Success("Root")
    client = writer()
    with ConsoleView(root, console) as view:
        for text in ("a", "b"):
            keys.append_turn(client, "robot", text, limit=3)
        view.post_tick(None)
        view.post_tick(None)  # nothing new
        for text in ("c", "d", "e"):  # 'a' and 'b' drop out of the history
            keys.append_turn(client, "user", text, limit=3)
        view.post_tick(None)
        for text in ("f", "g"):
            keys.append_turn(client, "robot", text, limit=3)
        view.post_tick(None)
    lines = buffer.getvalue().splitlines()
    turns = [line for line in lines if line.startswith(("robot:", "you:"))]
    assert turns == ["robot: a", "robot: b", "you: c", "you: d", "you: e", "robot: f", "robot: g"]


def test_console_view_in_a_pipe_prints_dialogue_and_status_changes() -> None:
    console, buffer = plain_console()
    loaded = load_tree(HELLO)
    runner = Runner(loaded, rate_hz=100.0, setup_kwargs={"utterances": LateUtterances("hi robot", silent_polls=3)})
    with ConsoleView(loaded.root, console) as view:
        loaded.tree.add_post_tick_handler(view.post_tick)
        result = runner.run()
    assert result.status == "SUCCESS"
    out = buffer.getvalue()
    assert "\x1b[" not in out, "no terminal control codes in a pipe"
    lines = out.splitlines()
    assert lines.count("robot: Hello! What shall I do?") == 1
    assert lines.count("you: hi robot") == 1
    assert lines.count("robot: You said it. I will be able to act on it soon.") == 1
    assert lines.count("▶ Listen listening") == 1, "an unchanged status is printed once"
    assert "✔ Listen heard: hi robot" in lines
    assert lines.index("▶ Listen listening") < lines.index("✔ Listen heard: hi robot")
    assert not any(line.startswith(("▶ Hello", "✔ Hello")) for line in lines), "composites are not printed"
