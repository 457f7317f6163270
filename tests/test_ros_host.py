"""``NodeHost.in_thread``: an action server's goals followed in threads of their own, off a single executor thread.

A server and a client, each on a ``NodeHost`` of its own in this process: a goal
whose execute callback is still waiting does not hold the server's executor
(a second goal is accepted and runs meanwhile); a callback that raises ends its
goal as aborted, and the server goes on serving.
"""

from __future__ import annotations

import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from vla_bt.ros.actions import STATUS_ABORTED, STATUS_SUCCEEDED  # noqa: E402
from vla_bt.ros.node import NodeHost, wait_until  # noqa: E402

pytestmark = pytest.mark.ros
TIMEOUT_S = 10.0


def test_goals_run_in_threads_of_their_own_and_a_failing_one_is_aborted() -> None:
    pytest.importorskip("rclpy")
    test_msgs = pytest.importorskip("test_msgs.action")
    from rclpy.action import ActionClient, ActionServer

    fibonacci = test_msgs.Fibonacci
    action = f"/host_test_{uuid.uuid4().hex[:8]}/fibonacci"
    release = {1: threading.Event(), 2: threading.Event()}
    started: list[int] = []

    def execute(goal_handle: Any) -> Any:
        order = goal_handle.request.order
        started.append(order)
        if order < 0:
            raise ValueError("no such order")
        assert release[order].wait(TIMEOUT_S), "released by the test"
        goal_handle.succeed()
        return fibonacci.Result(sequence=[order])

    server, client_host = NodeHost("host_test_server"), NodeHost("host_test_client")
    try:
        node = server.start()
        ActionServer(node, fibonacci, action, server.in_thread(execute, "fibonacci"))
        client = ActionClient(client_host.start(), fibonacci, action)
        assert client.wait_for_server(timeout_sec=TIMEOUT_S)

        def accepted(order: int) -> Any:
            future = client.send_goal_async(fibonacci.Goal(order=order))
            assert wait_until(future.done, TIMEOUT_S), f"goal {order} answered"
            goal = future.result()
            assert goal.accepted
            return goal.get_result_async()

        first = accepted(1)
        second = accepted(2)  # answered while the first goal's callback still waits
        assert wait_until(lambda: sorted(started) == [1, 2], TIMEOUT_S), started
        assert not first.done() and not second.done()
        release[2].set()
        assert wait_until(second.done, TIMEOUT_S)
        assert not first.done(), "the second goal ended while the first one still runs"
        release[1].set()
        assert wait_until(first.done, TIMEOUT_S)
        failing = accepted(-1)
        assert wait_until(failing.done, TIMEOUT_S)
        results = [f.result() for f in (first, second, failing)]
        assert [r.status for r in results] == [STATUS_SUCCEEDED, STATUS_SUCCEEDED, STATUS_ABORTED]
        assert [list(r.result.sequence) for r in results[:2]] == [[1], [2]]
    finally:
        for event in release.values():
            event.set()
        server.join_goal_threads(timeout=2.0)
        client_host.stop()
        server.stop()
