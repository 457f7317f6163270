"""The example trees in trees/ do what their descriptions say, in the simulator."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # tests.helpers, as the other tests import it
    sys.path.insert(0, str(ROOT))

from tests.helpers.cli import one_json_object, popen_cli, read_audit, run_json  # noqa: E402


def targets(data: dict) -> list[tuple[str, str]]:
    return [(c["skill"], c["args"].get("target") or c["args"].get("object") or c["args"].get("to") or "")
            for c in data["commands"]]


ROUND = [("navigate", "kitchen"), ("navigate", "living_room"), ("navigate", "bedroom"), ("navigate", "dock")]


def test_patrol_without_speech_does_two_rounds() -> None:
    data = run_json("run", "trees/patrol.yaml", "--time-scale", "100", "--json", timeout=120)
    assert data["status"] == "SUCCESS"
    assert targets(data) == ROUND * 2


def test_speech_interrupts_the_patrol_and_is_carried_out(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    process = popen_cli("run", "trees/patrol.yaml", "--time-scale", "5", "--audit", str(audit), "--json",
                        stdin=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (audit.exists() and '"command"' in audit.read_text()):
        time.sleep(0.05)
    out, err = process.communicate("go to the bedroom\n", timeout=120)
    assert process.returncode == 0, err
    data = one_json_object(out)
    commands = targets(data)
    assert commands[0] == ("navigate", "kitchen"), "the patrol had started"
    assert commands[-1] == ("navigate", "bedroom"), "the spoken instruction was carried out last"
    assert ("navigate", "living_room") not in commands, "the patrol did not go on after the interruption"
    kinds = [event["kind"] for event in read_audit(audit)]
    assert kinds.index("safe_stop") < len(kinds) - 1, "the patrol's motion was stopped before the new command"
    assert "Interrupting my patrol." in [t["text"] for t in data["dialogue"]]


def test_clear_table_moves_both_cups_after_two_yeses() -> None:
    data = run_json("run", "trees/clear_table.yaml", "--say", "yes", "--say", "yes please", "--time-scale", "100",
                    "--json", timeout=120)
    assert data["status"] == "SUCCESS"
    one = [("navigate", "kitchen"), ("grasp", "{}"), ("navigate", "living_room"), ("place", "shelf_1")]
    assert targets(data) == [(s, t.format("cup_red")) for s, t in one] + [(s, t.format("cup_blue")) for s, t in one]
    assert data["dialogue"][-1]["text"] == "The kitchen table is clear."


def test_clear_table_does_nothing_after_a_no() -> None:
    data = run_json("run", "trees/clear_table.yaml", "--say", "no", "--time-scale", "100", "--json", timeout=120,
                    exit_code=1)
    assert data["status"] == "FAILURE"
    assert data["commands"] == []
    assert "said no" in data["reason"]
