"""A behaviour written the way py_trees_ros writes them: the node comes from ``setup(node=...)``."""

from __future__ import annotations

from typing import Any

import py_trees
from rclpy.duration import Duration
from std_msgs.msg import String

from vla_bt.ros.messages import qos


class PublishOnce(py_trees.behaviour.Behaviour):
    """Publish a text once, then succeed.

    Args:
        name: node name
        topic: where to publish
        text: what to publish
    """

    def __init__(self, name: str, topic: str, text: str):
        super().__init__(name=name)
        self.topic, self.text = topic, text
        self.publisher: Any = None

    def setup(self, **kwargs: Any) -> None:
        try:
            node = kwargs["node"]
        except KeyError as error:  # the message py_trees_ros gives
            raise KeyError(f"didn't find 'node' in setup's kwargs [{self.qualified_name}]") from error
        self.publisher = node.create_publisher(String, self.topic, qos(latched=True, depth=1))

    def update(self) -> py_trees.common.Status:
        if self.publisher.get_subscription_count() == 0:  # the test listens: wait for it
            return py_trees.common.Status.RUNNING
        self.publisher.publish(String(data=self.text))
        return py_trees.common.Status.SUCCESS

    def shutdown(self) -> None:
        if self.publisher is not None:
            self.publisher.wait_for_all_acked(Duration(seconds=2))
