"""The backend protocol every model backend implements, and what a turn carries."""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .events import StreamEvent


@dataclass(frozen=True)
class ToolSpec:
    """A skill offered to the model as a function tool.

    Args:
        name: the tool name (``navigate``, ``grasp`` …)
        description: what it does, for the model
        parameters: JSON Schema of the arguments object
    """

    name: str
    description: str
    parameters: Mapping[str, Any]

    def realtime(self) -> dict[str, Any]:
        """The Realtime API (GA) ``session.tools`` entry."""
        return {"type": "function", "name": self.name, "description": self.description,
                "parameters": dict(self.parameters)}

    def chat(self) -> dict[str, Any]:
        """The Chat Completions ``tools`` entry."""
        return {"type": "function", "function": {"name": self.name, "description": self.description,
                                                 "parameters": dict(self.parameters)}}


@dataclass(frozen=True)
class ToolResult:
    """What happened to a tool call, returned to the model as the call's output."""

    call_id: str
    output: str


@dataclass
class TurnRequest:
    """Everything one response is asked for.

    Args:
        history: the dialogue, oldest first (``{role, text, t}``); the last user turn is the new one
        tools: the skills the model may call
        instructions: the system instructions
        perception: a short text summary of what the robot perceives
        images: camera frames to attach (encoded image bytes), if the tree supplies them
        tool_results: outputs of the previous response's tool calls
    """

    history: Sequence[Mapping[str, Any]]
    tools: Sequence[ToolSpec] = ()
    instructions: str = ""
    perception: str = ""
    images: Sequence[bytes] = ()
    tool_results: Sequence[ToolResult] = field(default_factory=list)

    @property
    def utterance(self) -> str:
        """The newest user turn's text ("" if there is none)."""
        for turn in reversed(self.history):
            if turn.get("role") == "user":
                return str(turn.get("text", ""))
        return ""


class BackendError(Exception):
    """A backend cannot be set up (bad configuration, unreachable server …)."""


class Backend(abc.ABC):
    """A streaming model.

    ``open()`` is called from ``setup()`` (connections are made there, never in
    ``__init__``); ``respond()`` streams one response as normalised events,
    ending with ``ResponseDone`` or ``StreamError``; closing the iterator
    early (the tree preempted ``Ask``) cancels the response on the server.
    """

    name: str = "backend"

    async def open(self) -> None:  # noqa: B027 - optional hook
        """Connect; the default needs nothing."""

    @abc.abstractmethod
    def respond(self, request: TurnRequest) -> AsyncIterator[StreamEvent]:
        """Stream one response to ``request``."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; the default holds none."""
