"""Text utterance sources: ``--say`` lists and lines typed on standard input.

Sources are polled by ``Listen`` without blocking the tick.
"""

from __future__ import annotations

import queue
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable
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


class MergedUtterances:
    """Utterances from several sources at once, each handed out as soon as its source has it.

    For a robot that can be both spoken to and typed to (an audio topic beside a
    text topic). Sources are polled in the order given; the merge is exhausted
    when all of them are.

    Args:
        sources: the sources to hear

    Example::

        utterances = MergedUtterances(RosUtterances(node, "speech/utterance"), RosAudioUtterances(...))
    """

    def __init__(self, *sources: UtteranceSource):
        self.sources = sources
        self._wake: Callable[[], None] | None = None

    @property
    def wake(self) -> Callable[[], None] | None:
        """Called when an utterance is ready; given to every source that can call it."""
        return self._wake

    @wake.setter
    def wake(self, callback: Callable[[], None] | None) -> None:
        self._wake = callback
        for source in self.sources:
            if hasattr(source, "wake"):
                source.wake = callback  # type: ignore[attr-defined]

    def poll(self) -> str | None:
        for source in self.sources:
            text = source.poll()
            if text is not None:
                return text
        return None

    @property
    def exhausted(self) -> bool:
        return all(source.exhausted for source in self.sources)
