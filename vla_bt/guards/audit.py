"""The audit log (DESIGN §8): one JSON object per line, flushed line by line.

Every command sent to a robot backend is written *before* it is sent; every
plan step refused is written as ``rejected``. ``t`` is Unix time in seconds.
The API key and raw audio never reach this log: values are passed through
``redact`` first.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import stat
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


class AuditWriteError(OSError):
    """The audit log's file cannot be written (the event is still kept in memory)."""


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
            self._file = open_for_append(self.path)

    def write(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Record one event; the line is on disk when this returns."""
        event = {"t": time.time(), "kind": kind, **redact(fields)}
        with self._lock:
            self.events.append(event)
            trim(self.events)
            if self._file is not None:
                try:
                    self._file.write(json.dumps(event, default=str, allow_nan=False) + "\n")
                    self._file.flush()
                except OSError as error:
                    raise AuditWriteError(f"audit log {self.path}: cannot write: {error.strerror or error}") from None
        return event

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["kind"] == kind]

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                with contextlib.suppress(OSError):  # what could not be written was reported when it failed
                    self._file.close()
                self._file = None


def open_for_append(path: Path) -> TextIO:
    """A JSON Lines file opened to append to (created with its folders), its next record on a line of its own.

    A run killed while writing leaves a last line cut short; the first new
    record starts on a new line instead of being glued to it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    file = path.open("a", encoding="utf-8")
    if _ends_inside_a_line(path, file):
        file.write("\n")
    return file


def _ends_inside_a_line(path: Path, file: TextIO) -> bool:
    """Whether the regular file being appended to is not empty and its last byte is not a newline."""
    try:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_size == 0:
            return False
        with path.open("rb") as existing:
            existing.seek(info.st_size - 1)
            return existing.read(1) != b"\n"
    except OSError:  # unreadable (write-only) files are appended to as they are
        return False
