"""Text utterance sources: ``--say`` lists and lines typed on standard input.

Sources are polled by ``Listen`` without blocking the tick.
"""

from __future__ import annotations

import queue
import sys
import threading
from collections import deque
from collections.abc import Iterable
from typing import Protocol, TextIO


class UtteranceSource(Protocol):
    """Anything ``Listen`` can take utterances from."""

    def poll(self) -> str | None:
        """The next utterance if one is ready, else ``None``; never blocks."""

    @property
    def exhausted(self) -> bool:
        """True when no utterance will ever come again."""


class ScriptedUtterances:
    """Utterances given up front (``--say A --say B``), handed out in order.

    Args:
        utterances: the texts, in order
    """

    def __init__(self, utterances: Iterable[str]):
        self._pending = deque(utterances)

    def poll(self) -> str | None:
        return self._pending.popleft() if self._pending else None

    @property
    def exhausted(self) -> bool:
        return not self._pending


class ConsoleUtterances:
    """Lines read from a text stream (the terminal or a pipe) by a daemon thread.

    Args:
        stream: where to read lines (standard input by default)
    """

    def __init__(self, stream: TextIO | None = None):
        self._stream = stream or sys.stdin
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._closed = False
        threading.Thread(target=self._read, name="utterances", daemon=True).start()

    def _read(self) -> None:
        for line in self._stream:
            if line.strip():
                self._lines.put(line.strip())
        self._lines.put(None)

    def poll(self) -> str | None:
        try:
            line = self._lines.get_nowait()
        except queue.Empty:
            return None
        if line is None:
            self._closed = True
        return line

    @property
    def exhausted(self) -> bool:
        return self._closed and self._lines.empty()
