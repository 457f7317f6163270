"""The normalised model stream: the same event types for every backend.

A backend turns its wire protocol (Realtime GA events, Chat Completions
chunks, a scripted file, the local planner) into these events, in order, for
one response. Each event carries ``t``, the ``time.monotonic()`` at which it
was received, so latencies can be measured along the whole path.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any


def _now() -> float:
    return time.monotonic()


@dataclass(frozen=True)
class StreamEvent:
    """Base of all stream events."""

    t: float = field(default_factory=_now, kw_only=True, compare=False)

    @property
    def kind(self) -> str:
        return KINDS[type(self)]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("t")
        return {"kind": self.kind, **data}


@dataclass(frozen=True)
class TextDelta(StreamEvent):
    """A piece of the model's text answer."""

    text: str


@dataclass(frozen=True)
class ToolCallStarted(StreamEvent):
    """The model began a tool (function) call."""

    call_id: str
    name: str


@dataclass(frozen=True)
class ToolCallDelta(StreamEvent):
    """More of a tool call's JSON arguments, as raw text."""

    call_id: str
    delta: str


@dataclass(frozen=True)
class ToolCallDone(StreamEvent):
    """A tool call is complete; ``arguments`` is the raw string the model produced."""

    call_id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class ResponseDone(StreamEvent):
    """The response ended.

    Args:
        status: ``completed``, ``cancelled``, ``incomplete`` or ``failed``
        text: the whole text answer
        usage: token counts as the server reported them
    """

    status: str = "completed"
    text: str = ""
    usage: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StreamError(StreamEvent):
    """The response failed; ``code`` is the server's error code where there is one."""

    code: str
    message: str


KINDS: dict[type, str] = {
    TextDelta: "text_delta", ToolCallStarted: "tool_call_started", ToolCallDelta: "tool_call_delta",
    ToolCallDone: "tool_call_done", ResponseDone: "response_done", StreamError: "error",
}
