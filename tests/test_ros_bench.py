"""``ros_round_trip_ms`` (``vla_bt.ros.bench``): a ``Ros2Robot`` here, ``vla-bt sim-node`` in a child process.

The measured figure is checked for what it reports (no timing is asserted),
and a missing ROS 2 must give a ``None`` figure that says what is missing,
without starting anything.
"""

from __future__ import annotations

import math
import os
import socket
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from vla_bt.robot.world import World, load_world  # noqa: E402
from vla_bt.ros import bench  # noqa: E402

pytestmark = pytest.mark.ros


def child_processes() -> set[int]:
    """The ids of this process's children (zombies included: a child not waited for still counts)."""
    children = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid():
                children.add(int(entry.name))
    return children


@pytest.fixture
def no_process_started(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every attempt of ``vla_bt.ros.bench`` to start a process, instead of starting it."""
    attempts: list[Any] = []
    monkeypatch.setattr(bench.subprocess, "Popen", lambda *args, **kwargs: attempts.append(args))
    return attempts


def test_round_trip_is_measured_against_the_sim_node_in_another_process() -> None:
    import rclpy.utilities

    domain_before, children_before = os.environ.get("ROS_DOMAIN_ID"), child_processes()
    figure = bench.ros_round_trip(True, load_world(ROOT / "config" / "world.yaml"))
    assert figure.value is not None, figure.note
    assert (figure.key, figure.unit) == ("ros_round_trip_ms", "ms")
    assert isinstance(figure.value, float) and math.isfinite(figure.value) and figure.value > 0
    detail = figure.detail
    # every planned trial, unless a badly overloaded machine ran out of the time budget (which the note says)
    assert detail["trials"] == bench.QUICK_TRIALS or (detail["trials"] >= 10 and "stopped after" in figure.note)
    assert detail["p95_ms"] >= round(figure.value, 3)
    assert detail["unanswered"] == 0, "every goal response, feedback and stop event came back"
    for name in ("feedback", "stop_ack"):
        assert 0 < detail[f"{name}_median_ms"] <= detail[f"{name}_p95_ms"], name
    assert "NavigateToPose goal accepted" in detail["measured"] and "cmd_vel" in detail["measured"]
    rmw = rclpy.utilities.get_rmw_implementation_identifier()
    assert detail["transport"].startswith(f"{rmw}, 2 processes")
    # A domain of its own, and this process's environment as it was; the sim node was stopped and waited for.
    assert f"ROS_DOMAIN_ID {domain_before}," not in detail["transport"]
    assert os.environ.get("ROS_DOMAIN_ID") == domain_before
    assert child_processes() <= children_before


def test_without_rclpy_the_figure_is_none_and_says_so(monkeypatch: pytest.MonkeyPatch,
                                                       no_process_started: list[Any]) -> None:
    monkeypatch.setitem(sys.modules, "rclpy", None)  # import rclpy now raises ImportError
    figure = bench.ros_round_trip(False, None)
    assert figure.key == "ros_round_trip_ms" and figure.unit == "ms"
    assert figure.value is None
    assert "rclpy is not available" in figure.note
    assert figure.meets_goal is None
    assert not no_process_started


def test_without_the_navigation_interfaces_the_figure_is_none_and_names_them(
        monkeypatch: pytest.MonkeyPatch, no_process_started: list[Any]) -> None:
    monkeypatch.setitem(sys.modules, "nav2_msgs.action", None)
    figure = bench.ros_round_trip(True, None)
    assert figure.value is None
    assert "nav2_msgs" in figure.note and "NavigateToPose" in figure.note
    assert not no_process_started


def test_a_sim_node_that_cannot_start_gives_a_none_figure_with_its_error(tmp_path: Path) -> None:
    children_before = child_processes()
    figure = bench.ros_round_trip(True, World(path=str(tmp_path / "no_such_world.yaml")))
    assert figure.value is None
    assert "the sim node did not start (exit code 2)" in figure.note
    assert "no_such_world.yaml" in figure.note
    assert child_processes() <= children_before


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert bench.percentile(values, 0.95) == 95.0
    assert bench.percentile(values[:40], 0.95) == 38.0
    assert bench.percentile([3.0], 0.95) == 3.0


def test_the_domain_picked_has_nobody_in_it() -> None:
    free = [d for d in bench.DOMAINS if not bench.domain_in_use(d) and str(d) != os.environ.get("ROS_DOMAIN_ID")]
    assert free, "every domain of the range is in use"
    keep = free[len(free) // 2]
    held = []
    try:
        for domain in free:
            if domain != keep:  # a participant's discovery port, as DDS binds it
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sock.bind(("0.0.0.0", bench.DISCOVERY_PORT_BASE + bench.DISCOVERY_PORT_STEP * domain))
                held.append(sock)
        assert bench.domain_in_use(free[0] if free[0] != keep else free[-1])
        assert [bench.pick_domain() for _ in range(5)] == [keep] * 5
    finally:
        for sock in held:
            sock.close()
