"""`vla-bt bench` reports every figure with how it was measured (no timing is asserted here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_bench_json_reports_each_figure_with_its_method() -> None:
    result = subprocess.run([sys.executable, "-m", "vla_bt", "bench", "--quick", "--json"], cwd=ROOT,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    for key in ("tick_overhead_ratio", "first_command_ratio", "guard_stop_ms", "memory_growth_mb"):
        assert isinstance(report[key], float), key
        detail = report[f"{key}_detail"]
        assert detail["goal"] and isinstance(detail["meets_goal"], bool)
    assert report["tick_overhead_ratio_detail"]["nodes"] == 100
    assert "tokens/s" in report["first_command_ratio_detail"]["pace"]
    # without early start, the first command cannot come before the response ends
    assert report["first_command_ratio_detail"]["without_early_start"] >= 1.0
    # what the model's pace alone allows, timed at the endpoint: a fraction of the response
    assert 0.0 < report["first_command_ratio_detail"]["pace_floor"] < 1.0
    assert report["guard_stop_ms_detail"]["tick_rate_hz"] == 10.0
    assert report["memory_growth_mb_detail"]["instructions"] >= 100
    voice = report["voice_to_command_ms_detail"]
    assert isinstance(report["voice_to_command_ms"], float) and voice["trials"] == 6
    assert voice["misheard"] == []  # every instruction was recognised and carried out
    assert voice["ended_by_grammar"] == "6/6"  # each whole command ended by its grammar, not the long silence
    assert isinstance(report["detection_f1"], float)
    ros = report["ros_round_trip_ms_detail"]
    assert isinstance(report["ros_round_trip_ms"], float), ros["note"]
    assert ros["trials"] >= 40 and ros["unanswered"] == 0


def test_bench_refuses_an_unknown_figure() -> None:
    result = subprocess.run([sys.executable, "-m", "vla_bt", "bench", "--only", "speed_of_light"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "unknown figure speed_of_light" in result.stderr
