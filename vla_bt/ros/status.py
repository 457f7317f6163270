"""The tree's status and snapshots as JSON on ``std_msgs/msg/String`` topics, for viewers.

Both topics are reliable and latched (transient local, depth 1), so a viewer
that starts late still gets the latest message.

``~/status`` — after every tick, and once more at the end with ``"final": true``;
``tick`` counts the ticks done so far::

    {"t": 1764403212.03, "tree": "patrol", "tick": 42, "status": "RUNNING",
     "tip": {"name": "Kitchen", "type": "Navigate", "status": "RUNNING",
             "feedback": "navigating to (4, 2): 1.20 m to go"},
     "final": false}

  The final one adds ``"reason"`` and ``"exit_code"`` (as ``vla-bt run``).

``~/snapshot`` — whenever a node's status or feedback or the blackboard changed::

    {"t": ..., "tree": "patrol", "tick": 42,
     "root": {"name": "Patrol", "type": "Sequence", "status": "RUNNING", "feedback": "",
              "children": [{"name": ..., "children": [...]}, ...]},
     "blackboard": {"/robot/pose": [1.0, 0.5, 0.0], ...}}

  Blackboard values that are not JSON are given as their ``repr``.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

import py_trees

from .messages import qos

Status = py_trees.common.Status


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return repr(value)


def node_json(behaviour: py_trees.behaviour.Behaviour) -> dict[str, Any]:
    """A behaviour and its subtree as plain data."""
    data: dict[str, Any] = {"name": behaviour.name, "type": type(behaviour).__name__,
                            "status": behaviour.status.name, "feedback": behaviour.feedback_message}
    children = list(behaviour.children)
    if children:
        data["children"] = [node_json(child) for child in children]
    return data


def blackboard_json() -> dict[str, Any]:
    """Every blackboard key and its value, JSON-safe."""
    storage = py_trees.blackboard.Blackboard.storage
    return {key: _json_safe(storage[key]) for key in sorted(storage)}


class TreeStatusPublisher:
    """Publishes a tree's status every tick and its snapshot on change (a post-tick handler).

    Args:
        node: the rclpy node
        tree: the behaviour tree
        name: the tree's name (from its YAML document)
        status_topic: topic of status messages
        snapshot_topic: topic of snapshots
    """

    def __init__(self, node: Any, tree: py_trees.trees.BehaviourTree, name: str,
                 status_topic: str = "~/status", snapshot_topic: str = "~/snapshot"):
        from std_msgs.msg import String

        self._string, self.tree, self.name = String, tree, name
        self.status_pub = node.create_publisher(String, status_topic, qos(latched=True, depth=1))
        self.snapshot_pub = node.create_publisher(String, snapshot_topic, qos(latched=True, depth=1))
        self._last_snapshot = ""

    def _tip(self) -> dict[str, Any] | None:
        tip = self.tree.root.tip()
        if tip is None:
            return None
        return {"name": tip.name, "type": type(tip).__name__, "status": tip.status.name,
                "feedback": tip.feedback_message}

    def publish_status(self, ticks: int, **extra: Any) -> None:
        """Publish the status after ``ticks`` ticks (``extra`` adds or replaces fields)."""
        status = {"t": time.time(), "tree": self.name, "tick": ticks, "status": self.tree.root.status.name,
                  "tip": self._tip(), "final": False, **extra}
        self.status_pub.publish(self._string(data=json.dumps(status)))

    def publish_snapshot(self, ticks: int, force: bool = False) -> None:
        """Publish the snapshot after ``ticks`` ticks if anything changed (or ``force``)."""
        body = json.dumps({"root": node_json(self.tree.root), "blackboard": blackboard_json()})
        if body == self._last_snapshot and not force:
            return
        self._last_snapshot = body
        head = json.dumps({"t": time.time(), "tree": self.name, "tick": ticks})
        self.snapshot_pub.publish(self._string(data=head[:-1] + ", " + body[1:]))

    def post_tick(self, tree: py_trees.trees.BehaviourTree) -> None:
        ticks = tree.count + 1  # py_trees counts the tick after its post-tick handlers
        self.publish_status(ticks)
        self.publish_snapshot(ticks)

    def publish_final(self, status: str, reason: str, exit_code: int, wait: float = 1.0) -> None:
        """The last status (``final: true``) and snapshot; waits (at most ``wait``) until subscribers have them."""
        from rclpy.duration import Duration

        self.publish_snapshot(self.tree.count, force=True)
        self.publish_status(self.tree.count, status=status, reason=reason, exit_code=exit_code, final=True)
        for publisher in (self.snapshot_pub, self.status_pub):
            publisher.wait_for_all_acked(Duration(seconds=wait))
