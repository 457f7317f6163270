"""A conversation continues across runs through the session file."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from vla_bt import blackboard as keys
from vla_bt.session_file import SessionFile
from vla_bt.tree.diagnostics import TreeError

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # tests.helpers, as the other tests import it
    sys.path.insert(0, str(ROOT))

from tests.helpers.cli import one_json_object, run_cli  # noqa: E402


def test_a_second_run_continues_the_conversation_of_the_first(tmp_path: Path) -> None:
    session = tmp_path / "session.json"
    first = run_cli("run", "trees/assistant.yaml", "--say", "go to the kitchen", "--session", str(session),
                    "--time-scale", "50", "--json", timeout=120)
    assert first.returncode == 0, first.stderr
    saved = json.loads(session.read_text())
    assert [t["text"] for t in saved["history"]] == ["Hello! What can I do for you?", "go to the kitchen",
                                                     "I'll go to the kitchen."]
    assert saved["context"]["last_place"] == "kitchen"

    second = run_cli("run", "trees/assistant.yaml", "--say", "go to the bedroom", "--session", str(session),
                     "--time-scale", "50", "--json", timeout=120)
    assert second.returncode == 0, second.stderr
    dialogue = [t["text"] for t in one_json_object(second.stdout)["dialogue"]]
    assert dialogue[:2] == ["Hello! What can I do for you?", "go to the kitchen"]
    assert dialogue[-2:] == ["go to the bedroom", "I'll go to the bedroom."]
    assert json.loads(session.read_text())["context"]["last_place"] == "bedroom"


def test_a_broken_session_file_is_bad_input_and_left_untouched(tmp_path: Path) -> None:
    session = tmp_path / "session.json"
    session.write_text("{not json")
    result = run_cli("run", "trees/hello.yaml", "--say", "hi", "--session", str(session), timeout=120)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    # where the JSON breaks, not the file's start
    assert f"{session}:1:2: cannot read the session: Expecting property name enclosed in double quotes" \
        in result.stderr
    assert session.read_text() == "{not json"


def test_save_is_atomic_and_only_when_something_changed(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    store = SessionFile(path)
    store.save()
    first = path.stat().st_mtime_ns
    store.save()
    assert path.stat().st_mtime_ns == first, "unchanged dialogue is not rewritten"
    keys.append_turn(store.blackboard, "user", "hello")
    store.save()
    assert json.loads(path.read_text())["history"][0]["text"] == "hello"
    assert not list(tmp_path.glob(".session-*")), "no temporary file is left behind"


@pytest.mark.parametrize("content", ['{"history": "nope"}', '[1, 2]', '{"history": [{"role": "x", "text": "a"}]}'])
def test_a_file_that_is_not_a_session_is_refused(tmp_path: Path, content: str) -> None:
    path = tmp_path / "s.json"
    path.write_text(content)
    with pytest.raises(TreeError, match="not a session file"):
        SessionFile(path).load()


def test_keys_the_session_does_not_own_are_written_back(tmp_path: Path) -> None:
    """Regression: a key another tool keeps in the session file (a note, an operator's name) was dropped."""
    session = tmp_path / "session.json"
    session.write_text(json.dumps({"operator": "sam", "history": [{"role": "user", "text": "hi", "t": 1.0}]}))
    saved = SessionFile(session)
    saved.load()
    keys.append_turn(saved.blackboard, "robot", "Hello.")
    saved.save()
    data = json.loads(session.read_text())
    assert data["operator"] == "sam" and [t["text"] for t in data["history"]] == ["hi", "Hello."]
