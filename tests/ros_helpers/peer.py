"""The other side of the generic behaviours' tests: a service, an action server and topics.

* ``/test/set_bool`` (``std_srvs/srv/SetBool``): answers ``success = data``;
* ``/test/fibonacci`` (``test_msgs/action/Fibonacci``): the sequence up to ``order``, one
  feedback per number, ``--step-s`` apart; cancellable;
* ``/test/in`` (``std_msgs/msg/String``, latched): "hello from the peer";
* ``/test/out`` (``std_msgs/msg/String``): whatever arrives is logged.

Every request, goal, cancel and message is printed as a JSON line; "ready" first.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from typing import Any

from rclpy.action import ActionServer, CancelResponse
from rclpy.callback_groups import ReentrantCallbackGroup
from std_msgs.msg import String
from std_srvs.srv import SetBool
from test_msgs.action import Fibonacci

from vla_bt.ros.messages import qos
from vla_bt.ros.node import NodeHost

_out = threading.Lock()


def emit(**record: Any) -> None:
    with _out:
        sys.stdout.write(json.dumps({"t": time.time(), **record}) + "\n")
        sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--step-s", type=float, default=0.01)
    args = parser.parse_args()
    host = NodeHost("peer")  # single-threaded: goals run in threads of their own (NodeHost.in_thread)
    node = host.start()

    def set_bool(request: Any, response: Any) -> Any:
        emit(kind="set_bool", data=request.data)
        response.success, response.message = request.data, f"set to {request.data}"
        return response

    def fibonacci(goal_handle: Any) -> Any:
        order = goal_handle.request.order
        sequence = [0, 1]
        feedback = Fibonacci.Feedback()
        for _ in range(1, order):
            if goal_handle.is_cancel_requested:
                goal_handle.canceled()
                emit(kind="fibonacci_cancelled", order=order)
                return Fibonacci.Result(sequence=sequence)
            sequence.append(sequence[-1] + sequence[-2])
            feedback.sequence = sequence
            goal_handle.publish_feedback(feedback)
            time.sleep(args.step_s)
        goal_handle.succeed()
        return Fibonacci.Result(sequence=sequence)

    def goal(request: Any) -> Any:
        from rclpy.action import GoalResponse

        emit(kind="fibonacci_goal", order=request.order)
        return GoalResponse.ACCEPT

    def cancel(_goal_handle: Any) -> Any:
        emit(kind="fibonacci_cancel_request")
        return CancelResponse.ACCEPT

    group = ReentrantCallbackGroup()
    node.create_service(SetBool, "/test/set_bool", set_bool, callback_group=group)
    ActionServer(node, Fibonacci, "/test/fibonacci", host.in_thread(fibonacci, "fibonacci"), goal_callback=goal,
                 cancel_callback=cancel, callback_group=group)
    node.create_subscription(String, "/test/out", lambda m: emit(kind="out", data=m.data), qos(), callback_group=group)
    node.create_publisher(String, "/test/in", qos(latched=True, depth=1)).publish(String(data="hello from the peer"))
    emit(kind="ready")
    try:
        sys.stdin.read()  # until the test closes standard input
    finally:
        host.stop()


if __name__ == "__main__":
    main()
