"""Replaying a recording (``vla-bt replay FILE.jsonl [--viewer [HOST:]PORT]``).

Without ``--viewer`` it prints what happened: ticks, duration, the final
status, the commands sent, the guard trips, hot-reload swaps and the
dialogue. With ``--viewer`` it serves the recording in the live viewer's page,
whose timeline scrubs back and forth through the run and plays it at the
recorded pace.

Example:
    >>> recording = load_recording("run.jsonl")
    >>> print(summary(recording))
    >>> final = recording.final_state()
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from .record import (
    RECORD_FORMAT,
    RECORD_VERSION,
    MalformedRecordError,
    apply_frame,
    empty_state,
    parse_record,
    record_problems,
)

EXIT_OK, EXIT_BAD_INPUT = 0, 2


class RecordingError(Exception):
    """A file that is not a readable recording (the message names FILE:LINE)."""


@dataclass
class Recording:
    """One recorded run.

    Args:
        path: the file
        header: its header record
        frames: ``tick`` records, in order
        end: the closing record (``None`` when the run did not finish writing it)
        index: which run of the file (0-based)
        runs: how many runs the file holds
        warnings: lines skipped and header fields left out (``FILE:LINE: why``)
    """

    path: str
    header: dict[str, Any]
    frames: list[dict[str, Any]]
    end: dict[str, Any] | None = None
    index: int = 0
    runs: int = 1
    warnings: list[str] = field(default_factory=list)

    def records(self) -> list[dict[str, Any]]:
        """The frames and the closing record, as the viewer's timeline plays them."""
        return [*self.frames, *([self.end] if self.end else [])]

    def states(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """``(tick, state)`` after each frame (the state object is reused: copy what you keep)."""
        state = empty_state()
        for frame in self.frames:
            apply_frame(state, frame)
            yield state["tick"], state

    def final_state(self) -> dict[str, Any]:
        """The state after every frame (and the closing record)."""
        state = empty_state()
        for frame in self.records():
            apply_frame(state, frame)
        return state

    @property
    def ticks(self) -> int:
        if self.end and isinstance(self.end.get("ticks"), int):
            return int(self.end["ticks"])
        return max((int(f.get("tick", 0)) for f in self.frames), default=0)

    @property
    def seconds(self) -> float:
        if self.end and isinstance(self.end.get("seconds"), (int, float)):
            return float(self.end["seconds"])
        times = [f["t"] for f in self.records() if isinstance(f.get("t"), (int, float))]
        start = self.header.get("t") if isinstance(self.header.get("t"), (int, float)) else None
        return (max(times) - (start if start is not None else min(times))) if times else 0.0

    def final_status(self) -> tuple[str, str]:
        """(status, reason): from the closing record, else the root's last status."""
        if self.end:
            return str(self.end.get("status", "RUNNING")), str(self.end.get("reason", ""))
        state = self.final_state()
        root = next((n for n in state["tree"] if n[3] is None), None)
        status = state["status"].get(root[0], ["INVALID", ""]) if root else ["INVALID", ""]
        final = status[0] if status[0] in ("SUCCESS", "FAILURE") else "RUNNING"
        return final, "the recording ends without a closing record (the run was cut off)"

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Every audit event recorded (of one kind)."""
        return [e for f in self.records() for e in f.get("audit") or () if kind is None or e.get("kind") == kind]


LINE_LIMIT = 64 << 20
"""Lines longer than this many bytes are skipped unread."""
WARNINGS_KEPT = 100
"""Warnings kept for a recording; further skipped lines are only counted."""


def _lines(file: BinaryIO) -> Iterator[bytes | None]:
    """The lines of a file, each at most ``LINE_LIMIT`` bytes read; ``None`` for a longer line (skipped)."""
    while line := file.readline(LINE_LIMIT + 1):
        if len(line) <= LINE_LIMIT or line.endswith(b"\n"):
            yield line
            continue
        while (rest := file.readline(LINE_LIMIT)) and not rest.endswith(b"\n"):
            pass
        yield None


def _open_regular(path: str | os.PathLike[str], name: str) -> BinaryIO:
    """The file opened for reading, if it is a regular file (a device or a FIFO could be read without end)."""
    try:  # without blocking on a FIFO
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise RecordingError(f"{name}: cannot read: {exc.strerror or exc}") from None
    if stat.S_ISREG(os.fstat(fd).st_mode):
        return os.fdopen(fd, "rb")
    os.close(fd)
    raise RecordingError(f"{name}: not a recording (not a regular file)")


def load_recording(path: str | os.PathLike[str], run: int = -1) -> Recording:
    """Read a recording; a file with several runs gives the last one unless ``run`` says otherwise.

    Lines that are not records are skipped with a warning (a run that was
    killed mid-line leaves a partial last line), and so are ``tick`` and
    ``end`` records that do not fit the format (``record_problems``); a header's
    malformed fields are left out with a warning, the header still starts its run.

    Args:
        path: the JSONL file written by ``--record``
        run: which run (0-based; negative counts from the end)

    Returns:
        the run

    Raises:
        RecordingError: unreadable file, not a regular file, no header, an unknown format or version, no such run
    """
    name = str(path)
    file = _open_regular(path, name)
    runs: list[Recording] = []
    warnings: list[str] = []
    dropped = 0

    def warn(number: int, text: str) -> None:
        nonlocal dropped
        if len(warnings) < WARNINGS_KEPT:
            warnings.append(f"{name}:{number}: {text}")
        else:
            dropped += 1

    with file:
        try:
            for number, data in enumerate(_lines(file), start=1):
                if data is None:
                    warn(number, f"skipped a line longer than {LINE_LIMIT} bytes")
                    continue
                try:
                    line = data.decode("utf-8")
                except UnicodeDecodeError:
                    if not runs:
                        raise RecordingError(f"{name}: not a recording (not UTF-8 text)") from None
                    warn(number, "skipped a line that is not UTF-8 text")
                    continue
                if not line.strip():
                    continue
                try:
                    record = parse_record(line)
                except MalformedRecordError as exc:
                    warn(number, f"skipped {exc}")
                    continue
                _add_record(runs, record, name, number, warn)
        except OSError as exc:
            raise RecordingError(f"{name}: cannot read: {exc.strerror or exc}") from None
    if not runs:
        raise RecordingError(f"{name}:1: empty recording (no header)")
    if not -len(runs) <= run < len(runs):
        raise RecordingError(f"{name}: there is no run {run} (the file holds {len(runs)})")
    if dropped:
        warnings.append(f"{name}: {dropped} more warning(s) left out")
    chosen = runs[run]
    chosen.index, chosen.runs, chosen.warnings = runs.index(chosen), len(runs), warnings
    return chosen


def _add_record(runs: list[Recording], record: dict[str, Any], name: str, number: int,
                warn: Callable[[int, str], None]) -> None:
    """File the record of line ``number``: a header starts a run, ticks and the end go to the current one."""
    where, kind = f"{name}:{number}", record.get("kind")
    problems = record_problems(record)
    if kind == "header":
        if record.get("format") != RECORD_FORMAT:
            raise RecordingError(f"{where}: not a vla-bt recording (format {record.get('format')!r})")
        if record.get("version") != RECORD_VERSION:
            raise RecordingError(f"{where}: recording version {record.get('version')!r} is not "
                                 f"supported (expected {RECORD_VERSION})")
        first: dict[str, str] = {}
        for field, problem in problems:
            first.setdefault(field, problem)
            record.pop(field, None)
        if first:
            warn(number, "left out malformed fields of the header: " + "; ".join(first.values()))
        runs.append(Recording(name, record, []))
    elif not runs:
        raise RecordingError(f"{where}: expected the recording's header first "
                             f"(is this a file written by 'vla-bt run --record'?)")
    elif kind not in ("tick", "end"):
        warn(number, f"skipped a record of unknown kind {kind!r}")
    elif problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        warn(number, f"skipped a {kind} record: {problems[0][1]}{more}")
    elif kind == "tick":
        runs[-1].frames.append(record)
    else:
        runs[-1].end = record


def _short(value: Any, limit: int = 100) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 1] + "…"


def summary(recording: Recording) -> str:
    """What happened in a recorded run, as text.

    Args:
        recording: from ``load_recording``

    Returns:
        lines: the run, ticks and duration, final status, commands, trips, swaps, dialogue
    """
    head = recording.header
    start = head.get("t") if isinstance(head.get("t"), (int, float)) else None

    def at(event: dict[str, Any]) -> str:
        t = event.get("t")
        return f"{t - start:+8.2f} s" if isinstance(t, (int, float)) and start is not None else "          "

    tree = head.get("tree") or {}
    lines = [f"recording {recording.path}" + (f" (run {recording.index + 1} of {recording.runs})"
                                              if recording.runs > 1 else "")]
    lines.append(f"tree: {tree.get('name') or '?'}" + (f" ({tree['path']})" if tree.get("path") else ""))
    lines.append(f"ticks: {recording.ticks} ({len(recording.frames)} frames with changes), "
                 f"duration: {recording.seconds:.2f} s")
    status, reason = recording.final_status()
    lines.append(f"final status: {status}" + (f" - {reason}" if reason else ""))
    commands = recording.events("command")
    lines.append(f"commands: {len(commands)}")
    for event in commands:
        args = {k: v for k, v in (event.get("args") or {}).items() if v is not None}
        lines.append(f"  {at(event)}  {event.get('skill')} {_short(args)}"
                     + (f" (step {event['step']})" if event.get("step") else ""))
    trips = recording.events("guard_trip")
    lines.append(f"guard trips: {len(trips)}")
    for event in trips:
        lines.append(f"  {at(event)}  {event.get('guard')}: {event.get('condition')} - {_short(event.get('reason'))}")
    for kind, title in (("safe_stop", "safe stops"), ("rejected", "refused steps"), ("tree_swap", "tree swaps"),
                        ("tree_reload_refused", "refused reloads")):
        events = recording.events(kind)
        if events:
            lines.append(f"{title}: {len(events)}")
            for event in events:
                detail = {k: v for k, v in event.items() if k not in ("t", "kind")}
                lines.append(f"  {at(event)}  {_short(detail, 160)}")
    history = recording.final_state()["bb"].get("/dialogue/history") or []
    lines.append(f"dialogue: {len(history)} turn(s)")
    for turn in history:
        who = "user" if turn.get("role") == "user" else "robot"
        lines.append(f"  {at(turn)}  {who}: {turn.get('text', '')}")
    return "\n".join(lines)


def serve_replay(recording: Recording, host: str = "127.0.0.1", port: int = 8765, token: str | None = None) -> Any:
    """Serve a recording in the viewer page (returns the started ``Viewer``).

    Raises:
        ViewerError: no token for a non-loopback address, or the port cannot be bound
    """
    from .web import TOKEN_ENV, Viewer

    viewer = Viewer(host, port, token or os.environ.get(TOKEN_ENV) or None).start()
    viewer.load_recording(recording.header, recording.records())
    return viewer


def replay_command(args: argparse.Namespace) -> int:
    """``vla-bt replay FILE.jsonl [--viewer [HOST:]PORT] [--viewer-token T] [--run N]``.

    Prints the summary; with ``--viewer`` also serves the page until Ctrl-C.

    Args:
        args: ``file``, and optionally ``viewer`` (``[HOST:]PORT``), ``viewer_token``, ``run`` (0-based)

    Returns:
        0, or 2 for a file that is not a recording or a viewer that cannot start
    """
    from .web import ViewerError, parse_address

    try:
        recording = load_recording(args.file, getattr(args, "run", None) if getattr(args, "run", None) is not None
                                   else -1)
    except RecordingError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    for warning in recording.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(summary(recording), flush=True)
    address = getattr(args, "viewer", None)
    if not address:
        return EXIT_OK
    try:
        host, port = parse_address(str(address))
        viewer = serve_replay(recording, host, port, getattr(args, "viewer_token", None))
    except ViewerError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"replay viewer: {viewer.url}  (Ctrl-C to stop)", file=sys.stderr, flush=True)
    viewer.serve_forever()
    return EXIT_OK
