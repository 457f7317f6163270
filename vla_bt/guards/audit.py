"""The audit log (DESIGN §8): one JSON object per line, flushed line by line.

Every command sent to a robot backend is written *before* it is sent; every
plan step refused is written as ``rejected``. ``t`` is Unix time in seconds.
The API key and raw audio never reach this log: values are passed through
``redact`` first.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
import time
from pathlib import Path
from typing import Any, TextIO

MEMORY_LIMIT = 10_000
"""Events kept in memory (the file keeps all): a long session must not grow without bound."""
SECRET = re.compile(r"sk-[A-Za-z0-9_\-]{8,}")


def redact(value: Any) -> Any:
    """Remove anything that looks like an API key, and bytes (raw audio, images)."""
    if isinstance(value, str):
        key = os.environ.get("OPENAI_API_KEY")
        value = value.replace(key, "[redacted]") if key and len(key) >= 8 else value
        return SECRET.sub("[redacted]", value)
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)  # JSON has no NaN or Infinity: keep the line strict JSON
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"[{len(value)} bytes]"
    if isinstance(value, dict):
        return {str(k): redact(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    return value


def trim(items: list[Any]) -> None:
    """Keep the newest ``MEMORY_LIMIT`` items (in batches, so appending stays cheap)."""
    if len(items) > MEMORY_LIMIT + MEMORY_LIMIT // 10:
        del items[: len(items) - MEMORY_LIMIT]


class AuditLog:
    """Appends audit events to a JSONL file (if given) and keeps them in memory.

    Args:
        path: file to append to; ``None`` keeps events in memory only

    Example:
        >>> audit = AuditLog("run.jsonl")
        >>> audit.write("command", skill="navigate", args={"target": "kitchen"}, step="s1")
    """

    def __init__(self, path: str | os.PathLike[str] | None = None):
        self.path = Path(path) if path else None
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._file: TextIO | None = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8")

    def write(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Record one event; the line is on disk when this returns."""
        event = {"t": time.time(), "kind": kind, **redact(fields)}
        with self._lock:
            self.events.append(event)
            trim(self.events)
            if self._file is not None:
                self._file.write(json.dumps(event, default=str, allow_nan=False) + "\n")
                self._file.flush()
        return event

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["kind"] == kind]

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
