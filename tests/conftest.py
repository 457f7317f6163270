"""Shared pytest fixtures.

py_trees keeps one blackboard per process (class attributes of
``py_trees.blackboard.Blackboard``): values, key metadata, registered clients
and the activity stream would otherwise leak from one test into the next.
"""

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
