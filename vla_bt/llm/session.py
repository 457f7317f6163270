"""The model as the tree sees it: one backend, the shared loop, the tools on offer."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .backend import Backend, ToolSpec, TurnRequest
from .bridge import AsyncBridge, StreamHandle
from .events import StreamEvent
from .prompt import INSTRUCTIONS


class ModelSession:
    """Hands ``Ask`` leaves a connected backend.

    Args:
        backend: the model backend
        tools: the skills offered as tools
        instructions: system instructions (the default describes the robot's task)
        bridge: the asyncio loop to use (the shared one by default)

    The runner passes it to ``setup(llm=session)``; ``open()`` connects once,
    however many ``Ask`` leaves the tree has.
    """

    def __init__(self, backend: Backend, tools: Sequence[ToolSpec] = (), instructions: str = INSTRUCTIONS,
                 bridge: AsyncBridge | None = None):
        self.backend = backend
        self.tools = list(tools)
        self.instructions = instructions
        self.bridge = bridge or AsyncBridge.shared()
        self._opened = False

    def open(self, timeout: float) -> None:
        """Connect the backend (idempotent; called from ``setup()``)."""
        if not self._opened:
            self.bridge.run(self.backend.open(), timeout)
            self._opened = True

    def request(self, history: Sequence[Any], perception: str = "", tool_results: Sequence[Any] = (),
                instructions: str = "", images: Sequence[bytes] = ()) -> TurnRequest:
        extra = f"\n\n{instructions}" if instructions else ""
        return TurnRequest(history=list(history), tools=self.tools, instructions=self.instructions + extra,
                           perception=perception, images=list(images), tool_results=list(tool_results))

    def start(self, request: TurnRequest, on_event: Callable[[], None] | None = None) -> StreamHandle[StreamEvent]:
        """Start one response; read it with ``handle.poll()``, stop it with ``handle.cancel()``."""
        return self.bridge.stream(lambda: self.backend.respond(request), on_event)

    def close(self, timeout: float = 5.0) -> None:
        if self._opened:
            self._opened = False
            try:
                self.bridge.run(self.backend.close(), timeout)
            except TimeoutError:
                pass
