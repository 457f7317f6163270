"""Dialogue leaves: ``Listen`` takes the user's next utterance, ``Say`` answers."""

from __future__ import annotations

import time
from typing import Any

import py_trees

from vla_bt import blackboard as keys
from vla_bt.speech import UtteranceSource
from vla_bt.tree.declared import Leaf, Param, ParamUnavailableError

Status = py_trees.common.Status


class Listen(Leaf):
    """Wait for the user's next utterance.

    The utterance source is handed to ``setup(utterances=...)`` by the runner
    (``--say`` texts, or lines typed on the terminal).

    Args:
        name: node name
        timeout: seconds to wait before failing; ``null`` waits as long as the source may still speak

    Blackboard:
        writes ``/dialogue/utterance`` (the text) and ``/dialogue/history`` (a user turn)

    Returns:
        RUNNING while waiting; SUCCESS with an utterance; FAILURE when the
        source is exhausted, absent, or the timeout passes
    """

    DESCRIPTION = "Wait for the user's next utterance and record it in the dialogue."
    PARAMS = {
        "timeout": Param({"type": ["number", "null"], "exclusiveMinimum": 0},
                         "seconds to wait before failing (null: no limit)", default=None),
    }
    WRITES = (keys.DIALOGUE_UTTERANCE, keys.DIALOGUE_HISTORY)

    def __init__(self, name: str | None = None, **params: Any):
        super().__init__(name, **params)
        self.source: UtteranceSource | None = None
        self._deadline: float | None = None

    def setup(self, **kwargs: Any) -> None:
        self.source = kwargs.get("utterances", self.source)

    def initialise(self) -> None:
        timeout = self.param("timeout")
        self._deadline = None if timeout is None else time.monotonic() + float(timeout)

    def update(self) -> Status:
        if self.source is None:
            self.feedback_message = "no utterance source (give --say TEXT, or type on the terminal)"
            return Status.FAILURE
        text = self.source.poll()
        if text is not None:
            self.blackboard.set(keys.DIALOGUE_UTTERANCE, text)
            keys.append_turn(self.blackboard, "user", text)
            self.feedback_message = f"heard: {text}"
            return Status.SUCCESS
        if self.source.exhausted:
            self.feedback_message = "no more utterances (each --say gives one)"
            return Status.FAILURE
        if self._deadline is not None and time.monotonic() > self._deadline:
            self.feedback_message = f"nothing heard within {self.param('timeout')} s"
            return Status.FAILURE
        self.feedback_message = "listening"
        return Status.RUNNING


class Say(Leaf):
    """Say something to the user: append a robot turn to the dialogue.

    Args:
        name: node name
        text: what to say; ``{key: /some/key}`` says the value of a blackboard key

    Blackboard:
        writes ``/dialogue/history`` (a robot turn)

    Returns:
        SUCCESS once said; FAILURE if ``text`` is remapped to a key that is not set
    """

    DESCRIPTION = "Say something to the user (a robot turn in the dialogue)."
    PARAMS = {"text": Param({"type": "string", "minLength": 1, "maxLength": 2000}, "what to say")}
    WRITES = (keys.DIALOGUE_HISTORY,)
    TOOL = "say"

    def update(self) -> Status:
        try:
            text = str(self.param("text"))
        except ParamUnavailableError as exc:
            self.feedback_message = str(exc)
            return Status.FAILURE
        keys.append_turn(self.blackboard, "robot", text)
        self.feedback_message = f"said: {text}"
        return Status.SUCCESS
