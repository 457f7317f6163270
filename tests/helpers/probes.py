"""Probe behaviours: leaves that record their life cycle so tests can see it.

A tree file names them by dotted path (``type: tests.helpers.probes.Hold``)
when ``tests.helpers`` is on the import allowlist (``tests/config``), or a
test registers them with ``Registry.add_class``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import py_trees

Status = py_trees.common.Status


class Hold(py_trees.behaviour.Behaviour):
    """Stay RUNNING forever and log every life-cycle call to a file.

    Args:
        marker: path of a file that gets one line per call: ``setup``,
            ``initialise``, ``terminate STATUS`` and ``shutdown``
        name: node name

    Returns:
        always RUNNING (only an interrupt ends it)
    """

    def __init__(self, marker: str, name: str = "Hold"):
        super().__init__(name=name)
        self.marker = marker
        self.events: list[str] = []

    def _log(self, event: str) -> None:
        self.events.append(event)
        with Path(self.marker).open("a", encoding="utf-8") as stream:
            stream.write(event + "\n")

    def setup(self, **kwargs: Any) -> None:
        self._log("setup")

    def initialise(self) -> None:
        self._log("initialise")

    def update(self) -> py_trees.common.Status:
        self.feedback_message = "holding"
        return Status.RUNNING

    def terminate(self, new_status: py_trees.common.Status) -> None:
        self._log(f"terminate {new_status.name}")

    def shutdown(self) -> None:
        self._log("shutdown")


class Fail(py_trees.behaviour.Behaviour):
    """Fail at once with a given feedback message.

    Args:
        message: the feedback message set on failure (empty: none)
        name: node name

    Returns:
        always FAILURE
    """

    def __init__(self, message: str = "", name: str = "Fail"):
        super().__init__(name=name)
        self.message = message

    def update(self) -> py_trees.common.Status:
        self.feedback_message = self.message
        return Status.FAILURE


class LateUtterances:
    """An utterance source that stays silent for a few polls, then speaks once.

    Args:
        text: the utterance
        silent_polls: polls answered with ``None`` before ``text`` comes
    """

    def __init__(self, text: str, silent_polls: int = 2):
        self._text: str | None = text
        self._silent = silent_polls

    def poll(self) -> str | None:
        if self._silent > 0:
            self._silent -= 1
            return None
        text, self._text = self._text, None
        return text

    @property
    def exhausted(self) -> bool:
        return self._silent <= 0 and self._text is None
