"""A ROS 2 participant driven over standard input and output, one JSON object per line.

The tests run it as a separate process, so the pytest process itself never
joins DDS. Requests (stdin)::

    {"op": "subscribe", "topic": "/speech/reply", "type": "std_msgs/msg/String", "latched": false, "reliable": true}
    {"op": "publish", "id": "p1", "topic": "/estop", "type": "std_msgs/msg/Bool", "value": true,
     "latched": false, "wait_match": 5.0, "min_match": 1}
    {"op": "quit"}

Replies (stdout)::

    {"kind": "ready"}
    {"kind": "subscribed", "topic": ...}
    {"kind": "message", "topic": ..., "t": <unix time received>, "data": <the message as plain data>}
    {"kind": "published", "id": "p1", "t": <unix time published>, "matched": <subscribers then>}
    {"kind": "error", "error": "..."}
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any

from vla_bt.ros.messages import from_plain, interface_type, qos, to_plain
from vla_bt.ros.node import NodeHost

_out = threading.Lock()


def emit(**record: Any) -> None:
    with _out:
        sys.stdout.write(json.dumps(record) + "\n")
        sys.stdout.flush()


def main() -> None:
    host = NodeHost("probe")
    node = host.start()
    publishers: dict[str, Any] = {}
    keep: list[Any] = []
    emit(kind="ready")
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        op = request["op"]
        try:
            if op == "quit":
                break
            cls = interface_type(request["type"], "msg")
            profile = qos(reliable=request.get("reliable", True), latched=request.get("latched", False),
                          depth=request.get("depth", 50))
            topic = request["topic"]
            if op == "subscribe":
                def heard(message: Any, topic: str = topic) -> None:
                    emit(kind="message", topic=topic, t=time.time(), data=to_plain(message))
                keep.append(node.create_subscription(cls, topic, heard, profile))
                emit(kind="subscribed", topic=topic)
            elif op == "publish":
                publisher = publishers.get(topic)
                if publisher is None:
                    publisher = publishers[topic] = node.create_publisher(cls, topic, profile)
                deadline = time.monotonic() + float(request.get("wait_match", 0.0))
                wanted = int(request.get("min_match", 1))
                while publisher.get_subscription_count() < wanted and time.monotonic() < deadline:
                    time.sleep(0.01)
                message = from_plain(cls, request["value"])
                t = time.time()
                publisher.publish(message)
                emit(kind="published", id=request.get("id"), t=t, matched=publisher.get_subscription_count())
        except Exception as error:  # noqa: BLE001 - report every problem to the test
            emit(kind="error", error=f"{type(error).__name__}: {error}", request=request)
    host.stop()


if __name__ == "__main__":
    main()
