"""Timing and token chunking that make offline backends stream like a model."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass

# About four characters per token, as in GPT tokenisers for English and JSON.
TOKEN = re.compile(r"\s*[^\s]{1,4}|\s+")


def tokens(text: str) -> Iterator[str]:
    """Split text into model-sized pieces; joined again they give ``text`` exactly."""
    yield from (m.group(0) for m in TOKEN.finditer(text))


@dataclass(frozen=True)
class Pacing:
    """How fast a simulated model answers.

    Args:
        first_token_s: delay before the first token (GPT-4o: about 0.32 s on average)
        tokens_per_s: steady rate afterwards; 0 means as fast as possible

    Each response keeps its own schedule (:meth:`clock`)::

        clock = pacing.clock()
        await clock.first()          # the first token is due
        for piece in pieces:
            send(piece)
            await clock.next()       # the next token is due
    """

    first_token_s: float = 0.0
    tokens_per_s: float = 0.0

    def clock(self) -> PaceClock:
        """A schedule for one response."""
        return PaceClock(self)

    @classmethod
    def gpt4o(cls) -> Pacing:
        """Published GPT-4o figures: ~320 ms to the first token; ~50 tokens/s afterwards."""
        return cls(first_token_s=0.32, tokens_per_s=50.0)


class PaceClock:
    """One response's schedule: token *n* is due ``first_token_s + n / tokens_per_s`` after the start.

    Deadlines are absolute, so the time spent sending each token does not slow
    the stated rate down (sleeping a fixed interval after each send would).
    """

    def __init__(self, pacing: Pacing):
        self.pacing = pacing
        self._origin: float | None = None
        self._tokens = 0

    async def first(self) -> None:
        """Wait until the first token is due."""
        self._origin = time.monotonic() + max(0.0, self.pacing.first_token_s)
        await self._until(self._origin)

    async def next(self) -> None:
        """Wait until the next token is due (or just let other tasks in, with no rate)."""
        if self._origin is None:
            self._origin = time.monotonic()
        self._tokens += 1
        if self.pacing.tokens_per_s > 0:
            await self._until(self._origin + self._tokens / self.pacing.tokens_per_s)
        else:
            await asyncio.sleep(0)  # let other tasks (and cancellation) in

    @staticmethod
    async def _until(deadline: float) -> None:
        await asyncio.sleep(max(0.0, deadline - time.monotonic()))
