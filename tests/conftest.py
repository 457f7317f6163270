"""Shared pytest fixtures.

py_trees keeps one blackboard per process (class attributes of
``py_trees.blackboard.Blackboard``): values, key metadata, registered clients
and the activity stream would otherwise leak from one test into the next.
"""

import os
import random
import tempfile

# ROS 2 (tests marked ``ros``): keep DDS discovery on this machine, in a domain of this run, with logs in a
# temporary folder. Set before anything imports rclpy; child processes inherit it.
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(1, 100)))
os.environ.setdefault("ROS_LOG_DIR", tempfile.mkdtemp(prefix="vla_bt_ros_logs_"))

import py_trees
import pytest


def _reset_blackboard() -> None:
    # Blackboard.clear() empties storage, metadata and clients and drops the
    # activity stream (py_trees 2.6); the explicit calls keep that true should
    # clear() ever do less.
    py_trees.blackboard.Blackboard.clear()
    py_trees.blackboard.Blackboard.storage.clear()
    py_trees.blackboard.Blackboard.metadata.clear()
    py_trees.blackboard.Blackboard.clients.clear()
    py_trees.blackboard.Blackboard.disable_activity_stream()


@pytest.fixture(autouse=True)
def clean_blackboard():
    """Every test starts, and leaves, with an empty py_trees blackboard."""
    _reset_blackboard()
    yield
    _reset_blackboard()


@pytest.fixture(autouse=True)
def ros_interfaces(request: pytest.FixtureRequest) -> None:
    """Tests marked ``ros`` find nav2_msgs and control_msgs built (once per run; setup.sh builds them)."""
    if request.node.get_closest_marker("ros") is not None:
        from tests.ros_helpers import ensure_interfaces

        ensure_interfaces()
