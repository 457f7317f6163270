"""Dialogue leaves: ``Listen`` takes the user's next utterance, ``Say`` answers."""

from __future__ import annotations

import re
import time
from typing import Any

import py_trees

from vla_bt import blackboard as keys
from vla_bt.guards.audit import AuditLog
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
        wait: ``false`` fails at once when nothing was said (to let speech interrupt a task)

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
        "wait": Param({"type": "boolean"}, "false: fail at once when nobody has spoken (a condition, "
                      "e.g. to let speech interrupt a task)", default=True),
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
            self.feedback_message = getattr(self.source, "end_reason", "no more utterances (each --say gives one)")
            return Status.FAILURE
        if not self.param("wait"):
            self.feedback_message = "nobody spoke"
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


YES = {"yes", "yeah", "yep", "yup", "sure", "ok", "okay", "affirmative", "correct", "please", "go ahead", "do it",
       "go on", "of course", "fine", "right"}
NO = {"no", "nope", "stop", "cancel", "don't", "dont", "do not", "negative", "wait", "abort", "never", "halt",
      "not", "n't", "nah"}
UNSURE = {"maybe", "perhaps", "unsure", "not sure", "don't know", "dont know", "i guess"}


def classify_answer(text: str) -> str | None:
    """``yes``, ``no``, or ``None`` when the answer is neither.

    Consent must be plain: any negation wins ("of course not", "not okay"), and
    doubt ("I'm not sure", "maybe") is no answer, so the question is asked again.
    """
    spoken = " ".join(re.findall(r"[a-z']+", text.lower()))
    def has(phrases: set[str]) -> bool:
        return any(re.search(rf"\b{re.escape(p)}\b", spoken) for p in phrases)
    if has(UNSURE):
        return None  # asked again; never taken as consent
    if has(NO) or "n't" in spoken:
        return "no"
    return "yes" if has(YES) else None


class Confirm(Leaf):
    """Ask a yes/no question; the user's next utterance answers it; silence past the timeout counts as no.

    Args:
        name: node name
        question: the question (a robot turn)
        timeout: seconds to wait for an answer

    Blackboard:
        writes ``/dialogue/history`` (the question and the answer), ``/dialogue/utterance``,
        ``/dialogue/confirmations`` (question, answer yes|no|timeout, time)

    Returns:
        RUNNING while waiting; SUCCESS on yes; FAILURE on no, on silence past the
        timeout, or when no more utterances will come. An unclear answer is asked again once.
    """

    DESCRIPTION = "Ask a yes/no question; the next utterance answers it; a timeout counts as no."
    PARAMS = {
        "question": Param({"type": "string", "minLength": 1, "maxLength": 500}, "the yes/no question"),
        "timeout": Param({"type": "number", "exclusiveMinimum": 0},
                         "seconds to wait for an answer before it counts as no", default=10.0),
    }
    WRITES = (keys.DIALOGUE_HISTORY, keys.DIALOGUE_UTTERANCE, keys.DIALOGUE_CONFIRMATIONS)

    def __init__(self, name: str | None = None, **params: Any):
        super().__init__(name, **params)
        self.source: UtteranceSource | None = None
        self.audit = AuditLog()
        self._deadline = 0.0
        self._asked_again = False
        self._question = ""

    def setup(self, **kwargs: Any) -> None:
        self.source = kwargs.get("utterances", self.source)
        self.audit = kwargs.get("audit", self.audit)

    def initialise(self) -> None:
        self._asked_again = False
        try:
            self._question = str(self.param("question"))
            self._deadline = time.monotonic() + float(self.param("timeout"))
        except ParamUnavailableError as exc:
            self._question, self.feedback_message = "", str(exc)
            return
        keys.append_turn(self.blackboard, "robot", self._question)
        self.feedback_message = f"asked: {self._question}"

    def update(self) -> Status:
        if not self._question:
            return Status.FAILURE
        if self.source is None:
            self.feedback_message = "no utterance source to hear the answer"
            return self._answer("timeout")
        text = self.source.poll()
        if text is not None:
            self.blackboard.set(keys.DIALOGUE_UTTERANCE, text)
            keys.append_turn(self.blackboard, "user", text)
            answer = classify_answer(text)
            if answer is not None:
                return self._answer(answer)
            if not self._asked_again:
                self._asked_again = True
                keys.append_turn(self.blackboard, "robot", "Please answer yes or no.")
                return Status.RUNNING
            return self._answer("no")
        if self.source.exhausted or time.monotonic() > self._deadline:
            return self._answer("timeout")
        return Status.RUNNING

    def _answer(self, answer: str) -> Status:
        self.audit.write("confirm", question=self._question, answer=answer)
        record = {"question": self._question, "answer": answer, "t": time.time()}
        previous = self.blackboard.get(keys.DIALOGUE_CONFIRMATIONS) \
            if self.blackboard.exists(keys.DIALOGUE_CONFIRMATIONS) else []
        self.blackboard.set(keys.DIALOGUE_CONFIRMATIONS, [*previous, record][-keys.HISTORY_LIMIT:])
        self.feedback_message = {"yes": "confirmed", "no": "the user said no",
                                 "timeout": "no answer (counts as no)"}[answer]
        return Status.SUCCESS if answer == "yes" else Status.FAILURE
