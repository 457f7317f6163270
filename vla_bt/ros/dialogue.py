"""Speech over ROS 2: utterances in and the robot's replies out, as ``std_msgs/msg/String``.

Any ROS 2 speech stack can drive a tree: its recogniser publishes what the
user said on the utterance topic, its synthesiser speaks what arrives on the
reply topic. ``RosUtterances`` is an ``UtteranceSource`` (``vla_bt.speech``)
for ``Listen`` and ``Confirm``; ``RepliesPublisher`` is a post-tick handler
that publishes every new robot turn of ``/dialogue/history``.
"""

from __future__ import annotations

import queue
from typing import Any

import py_trees

from vla_bt import blackboard as keys

from .messages import qos


class RosUtterances:
    """Utterances from a ``std_msgs/msg/String`` topic (an ``UtteranceSource``).

    An empty string means no more utterances will come (like the end of standard input).

    Args:
        node: the rclpy node to subscribe with
        topic: the topic name
    """

    def __init__(self, node: Any, topic: str):
        from std_msgs.msg import String

        self._lines: queue.Queue[str] = queue.Queue()
        self._closed = False
        self.subscription = node.create_subscription(String, topic, self._heard, qos(depth=50))

    def _heard(self, message: Any) -> None:
        self._lines.put(message.data.strip())

    def poll(self) -> str | None:
        """The next utterance if one arrived, else ``None``; never blocks."""
        while not self._closed:
            try:
                text = self._lines.get_nowait()
            except queue.Empty:
                return None
            if text:
                return text
            self._closed = True
        return None

    @property
    def exhausted(self) -> bool:
        """True after an empty message (nothing more will be said)."""
        return self._closed


class RepliesPublisher:
    """Publishes each new robot turn of the dialogue on a ``std_msgs/msg/String`` topic.

    Turns already in the history when it is created (a continued session) are not repeated.

    Args:
        node: the rclpy node to publish with
        topic: the topic name
    """

    def __init__(self, node: Any, topic: str):
        from std_msgs.msg import String

        self._string = String
        self.publisher = node.create_publisher(String, topic, qos(depth=50))
        self._said: set[tuple[Any, ...]] = {self._key(t) for t in self._history()}
        self.published: list[str] = []

    @staticmethod
    def _key(turn: dict[str, Any]) -> tuple[Any, ...]:
        return turn.get("t"), turn.get("role"), turn.get("text")

    @staticmethod
    def _history() -> list[dict[str, Any]]:
        history = keys.read(keys.DIALOGUE_HISTORY, []) or []
        return [t for t in history if isinstance(t, dict)]  # type: ignore[union-attr]

    def publish_new(self) -> None:
        """Publish the robot turns not published yet, in order."""
        history = self._history()
        for turn in history:
            key = self._key(turn)
            if turn.get("role") == "robot" and key not in self._said:
                self.publisher.publish(self._string(data=str(turn.get("text", ""))))
                self.published.append(str(turn.get("text", "")))
            self._said.add(key)
        self._said &= {self._key(t) for t in history}

    def post_tick(self, _tree: py_trees.trees.BehaviourTree) -> None:
        self.publish_new()
