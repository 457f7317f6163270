"""Timing and token chunking that make offline backends stream like a model."""

from __future__ import annotations

import asyncio
import re
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
    """

    first_token_s: float = 0.0
    tokens_per_s: float = 0.0

    async def first(self) -> None:
        if self.first_token_s > 0:
            await asyncio.sleep(self.first_token_s)

    async def next(self) -> None:
        if self.tokens_per_s > 0:
            await asyncio.sleep(1.0 / self.tokens_per_s)
        else:
            await asyncio.sleep(0)  # let other tasks (and cancellation) in

    @classmethod
    def gpt4o(cls) -> Pacing:
        """Published GPT-4o figures: ~320 ms to the first token; ~50 tokens/s afterwards."""
        return cls(first_token_s=0.32, tokens_per_s=50.0)
