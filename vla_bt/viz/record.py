"""Recording a run: what changed at every tick, one JSON object per line (``vla-bt run --record FILE.jsonl``).

A ``Snapshotter`` looks at the tree after each tick (a post-tick handler, like
the terminal view) and returns only what changed since the previous tick: the
statuses and feedback messages of the nodes, the project's blackboard keys,
new audit events, the simulator's planned path, and the tree's structure when
it changed (``ExecutePlan`` grows children; hot reload swaps subtrees). The
live web viewer sends the same frames over its websocket; the ``Recorder``
appends them to a file, one line per tick with changes, flushed line by line,
so that nothing already recorded is lost when a run ends badly.

The file (format ``vla-bt-recording``, version 1)::

    {"kind": "header", "format": "vla-bt-recording", "version": 1, "t": 1764403212.0,
     "tree": {"name": "assistant", "path": "trees/assistant.yaml", ...}, "world": {...}, "keys": [...]}
    {"kind": "tick", "tick": 1, "t": 1764403212.1,
     "tree": {"rev": 1, "nodes": [["n1", "Assistant", "Sequence", null, null], ...], "dot": "digraph ..."},
     "nodes": {"n1": ["RUNNING", ""], "n2": ["SUCCESS", ""]},
     "bb": {"/dialogue/history": [...]}, "bb_del": [], "audit": [{"t": ..., "kind": "command", ...}],
     "sim": {"path": [[0.0, 0.0], [4.0, 2.0]]}}
    {"kind": "end", "t": ..., "status": "SUCCESS", "reason": "completed", "ticks": 153, "seconds": 15.3}

Every field of a tick but ``kind``, ``tick`` and ``t`` is optional. Node ids
(``n1`` …) are stable for the life of a behaviour. A file may hold several
runs (the recorder appends); each starts with its header. Timestamps are Unix
time in seconds, like the audit log's.

``parse_record`` and ``record_problems`` check a line read back against this
format (``RECORD_SCHEMAS``), so that replay can skip what does not fit.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import json
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TextIO

import py_trees

from vla_bt import blackboard as keys
from vla_bt.guards.audit import AuditLog, open_for_append, redact

RECORD_FORMAT = "vla-bt-recording"
RECORD_VERSION = 1
MESSAGE_LIMIT = 500
"""Feedback messages are cut to this many characters."""
UNRECORDED = frozenset({keys.LLM_STREAM, keys.ROBOT_STAMP, keys.PERCEPTION_STAMP})
"""Project keys left out: the raw model events (their outcome is on ``/plan/*`` and
``/dialogue/*``) and the heartbeat stamps, which change at every tick."""
PROJECT_KEYS: tuple[str, ...] = tuple(
    value for name, value in vars(keys).items()
    if name.isupper() and isinstance(value, str) and value.startswith("/") and value not in UNRECORDED)
"""The blackboard keys of ``vla_bt.blackboard`` that are recorded and shown."""

Status = py_trees.common.Status


# -- values -----------------------------------------------------------------------


def jsonable(value: Any, depth: int = 0) -> Any:
    """A blackboard value as plain JSON data (records with ``to_json``, dataclasses, tuples, enums …).

    Non-finite numbers become strings (the lines stay strict JSON), anything
    unknown becomes its ``str``, and API keys are redacted as in the audit log.

    Args:
        value: any value
        depth: recursion depth (values nested deeper than 20 levels become their ``str``)

    Returns:
        JSON-compatible data
    """
    if value is None or isinstance(value, (bool, int, str)):
        return redact(value) if isinstance(value, str) else value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if depth > 20:
        return str(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v, depth + 1) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((jsonable(v, depth + 1) for v in value), key=str)
    if isinstance(value, enum.Enum):
        return jsonable(value.value, depth + 1)
    to_json = getattr(value, "to_json", None)
    if callable(to_json):
        try:
            return jsonable(to_json(), depth + 1)
        except Exception:  # noqa: BLE001 - a broken to_json must not stop a recording
            return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value), depth + 1)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"[{len(value)} bytes]"
    return redact(str(value))


def dumps(data: Any) -> str:
    """One compact, strict JSON line (no NaN, no Infinity)."""
    try:
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except ValueError:  # a non-finite number slipped through: keep the line valid JSON
        return json.dumps(jsonable(data), separators=(",", ":"), ensure_ascii=False, default=str)


def world_json(world: Any) -> dict[str, Any] | None:
    """What the world picture needs from a world file: places, objects, humans, robot, workspace, no-go zones.

    Args:
        world: a ``vla_bt.robot.world.World`` (or ``None``)

    Returns:
        plain data, or ``None`` without a world
    """
    if world is None:
        return None
    return {
        "path": getattr(world, "path", ""),
        "places": {name: list(pose) for name, pose in world.places.items()},
        "objects": [{"id": o.id, "label": o.label, "color": o.color, "pose": list(o.pose), "at": o.at,
                     "graspable": o.graspable, "risk": o.risk} for o in world.objects],
        "humans": [{"id": h.id, "pose": list(h.pose)} for h in world.humans],
        "robot": {"pose": list(world.robot.pose), "max_speed": world.robot.max_speed,
                  "payload": world.robot.payload, "battery": world.robot.battery},
        "workspace": [list(p) for p in world.workspace],
        "no_go": [{"name": z.name, "polygon": [list(p) for p in z.polygon]} for z in world.no_go],
    }


def header(*, tree: Any = None, world: Any = None, keys_recorded: Iterable[str] = PROJECT_KEYS,
           **extra: Any) -> dict[str, Any]:
    """The first line of a recording (and the viewer's page title and world).

    Args:
        tree: the ``LoadedTree`` (its document gives name, path and description)
        world: the world file of the run
        keys_recorded: the blackboard keys that frames carry
        **extra: further fields (e.g. ``time_scale``)

    Returns:
        the header record
    """
    document = getattr(tree, "document", None)
    return {
        "kind": "header", "format": RECORD_FORMAT, "version": RECORD_VERSION, "t": time.time(),
        "tree": {"name": getattr(document, "name", ""), "path": getattr(document, "path", ""),
                 "description": getattr(document, "description", "")},
        "world": world_json(world), "keys": list(keys_recorded), **jsonable(extra),
    }


# -- the tree as a picture ------------------------------------------------------------


def dot_source(root: py_trees.behaviour.Behaviour, ids: Callable[[py_trees.behaviour.Behaviour], str]) -> str:
    """The tree as Graphviz DOT text by ``py_trees.display.dot_tree``, with node and edge ids for the viewer.

    Each node gets ``id=<node id>`` and each edge ``id=e-<child id>``, so that
    the SVG Graphviz makes from it can be recoloured by status in the page.

    Args:
        root: the tree's root
        ids: the viewer's id of a behaviour

    Returns:
        DOT source
    """
    graph = py_trees.display.dot_tree(root)
    for default in [*graph.get_node("graph"), *graph.get_node("node"), *graph.get_node("edge")]:
        default.set("fontname", "DejaVu Sans")
    graph.set("ranksep", "0.3")  # compact, so that deep trees fit a browser window
    graph.set("nodesep", "0.2")
    # dot_tree names nodes after their behaviours, adding '*' until the name is unique (preorder).
    names = {root.id: root.name}
    dot_name = {root.name: root}

    def walk(node: py_trees.behaviour.Behaviour) -> None:
        if py_trees.common.VisibilityLevel.DETAIL < node.blackbox_level:
            for child in node.children:
                name = child.name
                while name in dot_name:
                    name += "*"
                names[child.id] = name
                dot_name[name] = child
                if child.children:
                    walk(child)

    walk(root)
    for name, behaviour in dot_name.items():
        for node in graph.get_node(name):
            node.set("id", ids(behaviour))
            node.set("fontsize", "10")
            node.set("height", "0.3")
            node.set("margin", "0.1,0.03")
            node.set("class", "bt-node")
    for edge in graph.get_edges():
        child = dot_name.get(str(edge.get_destination()).strip('"'))
        if child is not None:
            edge.set("id", "e-" + ids(child))
            edge.set("class", "bt-edge")
    return str(graph.to_string())


# -- snapshots ------------------------------------------------------------------------


def preorder(root: py_trees.behaviour.Behaviour) -> Iterable[py_trees.behaviour.Behaviour]:
    """Every behaviour of a tree, parents before their children, children in order."""
    stack = [root]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(node.children))


class Snapshotter:
    """Takes the changes of one tick: node statuses, blackboard keys, audit events, structure.

    Args:
        keys_recorded: blackboard keys to follow (``PROJECT_KEYS`` and the tree's own initial keys by default)
        audit: the run's audit log, whose new events each frame carries
        path_source: returns the robot's planned path ``[(x, y), ...]`` (the simulator's ``planned_path``)
        with_dot: put the tree's Graphviz DOT text into structure changes (for the viewer's picture)

    Example:
        >>> snap = Snapshotter(audit=run.audit)
        >>> run.runner.tree.add_post_tick_handler(lambda tree: print(snap.capture(tree)))
    """

    def __init__(self, keys_recorded: Iterable[str] = PROJECT_KEYS, audit: AuditLog | None = None,
                 path_source: Callable[[], Any] | None = None, with_dot: bool = True):
        self.keys = list(dict.fromkeys(keys_recorded))
        self.audit = audit
        self.path_source = path_source
        self.with_dot = with_dot
        self.rev = 0
        self._ids: dict[Any, str] = {}
        self._counter = 0
        self._structure: tuple[Any, ...] = ()
        self._states: dict[str, tuple[str, str]] = {}
        self._values: dict[str, str] = {}
        self._path: Any = None
        self._last_event: dict[str, Any] | None = None
        self._lock = threading.Lock()
        self.root_status = Status.INVALID
        self.ticks = 0

    def node_id(self, node: py_trees.behaviour.Behaviour) -> str:
        """The short id of a behaviour (``n1``, ``n2`` … in the order first seen)."""
        nid = self._ids.get(node.id)
        if nid is None:
            self._counter += 1
            nid = self._ids[node.id] = f"n{self._counter}"
        return nid

    def capture(self, tree: py_trees.trees.BehaviourTree | py_trees.behaviour.Behaviour,
                tick: int | None = None) -> dict[str, Any] | None:
        """What changed since the previous call, as a ``tick`` frame; ``None`` when nothing did.

        Args:
            tree: the tree (or its root)
            tick: the number of the tick just run, from 1 (by default from the tree's ``count``, which
                py_trees raises after the post-tick handlers); 0 before the first tick

        Returns:
            the frame, or ``None``
        """
        with self._lock:
            root = tree.root if isinstance(tree, py_trees.trees.BehaviourTree) else tree
            if tick is None and isinstance(tree, py_trees.trees.BehaviourTree):
                tick = tree.count + 1  # py_trees counts the tick after its post-tick handlers
            self.ticks = int(tick) if tick is not None else self.ticks + 1
            self.root_status = root.status
            frame: dict[str, Any] = {"kind": "tick", "tick": self.ticks, "t": round(time.time(), 4)}
            nodes = list(preorder(root))
            structure = tuple((n.id, n.parent.id if n.parent is not None else None, n.name) for n in nodes)
            if structure != self._structure:
                self._structure = structure
                frame["tree"] = self._tree(root, nodes)
            changed = {}
            for node in nodes:
                nid = self.node_id(node)
                state = (node.status.name, str(node.feedback_message or "")[:MESSAGE_LIMIT])
                if self._states.get(nid) != state:
                    self._states[nid] = state
                    changed[nid] = list(state)
            if "tree" in frame:
                live = {self.node_id(n) for n in nodes}
                for gone in [nid for nid in self._states if nid not in live]:
                    del self._states[gone]
            if changed:
                frame["nodes"] = changed
            self._blackboard(frame)
            events = self._events()
            if events:
                frame["audit"] = events
            self._sim(frame)
            return frame if len(frame) > 3 else None

    def tail(self) -> dict[str, Any] | None:
        """Audit events and blackboard changes since the last tick (after a halt), as a frame; ``None`` if none.

        Node statuses are left out: after a run the tree is halted and every
        node is INVALID, which would hide how the run ended.
        """
        with self._lock:
            frame: dict[str, Any] = {"kind": "tick", "tick": self.ticks, "t": round(time.time(), 4)}
            self._blackboard(frame)
            events = self._events()
            if events:
                frame["audit"] = events
            return frame if len(frame) > 3 else None

    def _tree(self, root: py_trees.behaviour.Behaviour, nodes: Sequence[py_trees.behaviour.Behaviour]) -> dict:
        self.rev += 1
        listed = []
        for node in nodes:
            parent = self.node_id(node.parent) if node.parent is not None else None
            listed.append([self.node_id(node), node.name, type(node).__name__, parent,
                           getattr(node, "step_id", None)])
        tree: dict[str, Any] = {"rev": self.rev, "nodes": listed}
        if self.with_dot:
            try:
                tree["dot"] = dot_source(root, self.node_id)
            except Exception as exc:  # noqa: BLE001 - the picture is optional; the statuses still go out
                tree["dot"] = None
                tree["dot_error"] = f"{type(exc).__name__}: {exc}"
        return tree

    def _blackboard(self, frame: dict[str, Any]) -> None:
        storage = py_trees.blackboard.Blackboard.storage
        changed, deleted = {}, []
        for key in self.keys:
            if key in storage:
                value = jsonable(storage[key])
                text = dumps(value)
                if self._values.get(key) != text:
                    self._values[key] = text
                    changed[key] = value
            elif key in self._values:
                del self._values[key]
                deleted.append(key)
        if changed:
            frame["bb"] = changed
        if deleted:
            frame["bb_del"] = deleted

    def _events(self) -> list[dict[str, Any]]:
        if self.audit is None:
            return []
        events = self.audit.events
        new: list[dict[str, Any]] = []
        try:
            for index in range(len(events) - 1, -1, -1):  # newest first, until the last one already sent
                event = events[index]
                if event is self._last_event:
                    break
                new.append(event)
        except IndexError:  # the bounded log dropped old events meanwhile; what was read is still new
            pass
        if new:
            self._last_event = new[0]
        return [jsonable(e) for e in reversed(new)]

    def _sim(self, frame: dict[str, Any]) -> None:
        if self.path_source is None:
            return
        try:
            path = [[round(float(p[0]), 4), round(float(p[1]), 4)] for p in (self.path_source() or [])]
        except Exception:  # noqa: BLE001 - a backend without a path shows none
            path = []
        if path != self._path:
            self._path = path
            frame["sim"] = {"path": path}


def default_keys(loaded: Any = None) -> list[str]:
    """``PROJECT_KEYS`` and the keys the tree file sets in ``blackboard:``.

    Args:
        loaded: the ``LoadedTree`` (optional)
    """
    document = getattr(loaded, "document", None)
    return [*PROJECT_KEYS, *(k for k in getattr(document, "blackboard", {}) or {} if k not in PROJECT_KEYS)]


def planned_path_of(robot: Any) -> Callable[[], Any] | None:
    """A function returning the planned path of a robot backend (through a command gate), if it has one."""
    backend = getattr(robot, "robot", robot)
    if not hasattr(type(backend), "planned_path"):
        return None
    return lambda: backend.planned_path


# -- the recorder ---------------------------------------------------------------------


class Recorder:
    """Appends a run's frames to a JSONL file, one line per tick with changes, flushed line by line.

    Args:
        path: the file (appended to: a file may hold several runs, each from its header on)
        snapshotter: takes the changes of each tick
        first: the header record (``header(...)``)

    Raises:
        OSError: the file cannot be opened

    Example:
        >>> recorder = attach_recorder(run, "run.jsonl")
        >>> result = run.execute()
        >>> recorder.finish(result)
    """

    def __init__(self, path: str | os.PathLike[str], snapshotter: Snapshotter, first: dict[str, Any]):
        self.path = Path(path)
        self.snapshotter = snapshotter
        self.lines = 0
        self._lock = threading.Lock()
        self._file: TextIO | None = open_for_append(self.path)
        self.write(first)

    def write(self, record: dict[str, Any]) -> None:
        """Append one record and flush it."""
        with self._lock:
            if self._file is None:
                return
            self._file.write(dumps(record) + "\n")
            self._file.flush()
            self.lines += 1

    def post_tick(self, tree: py_trees.trees.BehaviourTree) -> None:
        """Append what changed in this tick (a post-tick handler)."""
        frame = self.snapshotter.capture(tree)
        if frame is not None:
            self.write(frame)

    def flush_tail(self) -> None:
        """Append what happened after the last tick (the safe stop of a halt); a runner shutdown hook."""
        frame = self.snapshotter.tail()
        if frame is not None:
            self.write(frame)

    def finish(self, result: Any = None) -> None:
        """Write the closing record (from a ``RunResult`` when given) and close the file; idempotent.

        Args:
            result: the run's ``RunResult``; without it the status is the root's at the last tick
        """
        if self._file is None:
            return
        self.flush_tail()
        snap = self.snapshotter
        last = snap.root_status.name if snap.root_status in (Status.SUCCESS, Status.FAILURE) else "RUNNING"
        end = {"kind": "end", "t": round(time.time(), 4), "status": getattr(result, "status", last),
               "reason": getattr(result, "reason", ""), "ticks": getattr(result, "ticks", snap.ticks)}
        if result is not None:
            end["seconds"] = round(float(result.seconds), 4)
            end["interrupted"] = bool(result.interrupted)
        self.write(end)
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def attach_recorder(run: Any, path: str | os.PathLike[str]) -> Recorder:
    """Record a run (``vla-bt run --record FILE.jsonl``).

    Adds a post-tick handler that appends every tick's changes and a shutdown
    hook that appends what happened after the last tick. Call ``finish(result)``
    after ``run.execute()`` to write the closing record.

    Args:
        run: the assembled ``vla_bt.app.Run``
        path: the JSONL file (appended to)

    Returns:
        the recorder

    Raises:
        OSError: the file cannot be opened
    """
    runner = run.runner
    snapshotter = Snapshotter(default_keys(runner.loaded), audit=run.audit, path_source=planned_path_of(run.robot))
    first = header(tree=runner.loaded, world=runner.setup_kwargs.get("world"), keys_recorded=snapshotter.keys,
                   rate_hz=round(1.0 / runner.period, 3), time_scale=getattr(getattr(run.robot, "robot", None),
                                                                              "time_scale", None))
    recorder = Recorder(path, snapshotter, first)
    start = snapshotter.capture(runner.tree, tick=0)  # the tree as it is before the first tick
    if start is not None:
        recorder.write(start)
    runner.tree.add_post_tick_handler(recorder.post_tick)
    runner.shutdown_hooks.append(recorder.flush_tail)
    return recorder


# -- reading records back -------------------------------------------------------------

MAX_DEPTH = 64
"""Lines nested deeper are refused (the recorder writes values at most about 25 levels deep)."""

_STRING: dict[str, Any] = {"type": "string"}
_NUMBER: dict[str, Any] = {"type": "number"}
_COUNT: dict[str, Any] = {"type": "integer", "minimum": 0}
_POINT: dict[str, Any] = {"type": "array", "minItems": 2, "items": _NUMBER}
_PLACED: dict[str, Any] = {"type": "object", "properties": {"pose": _POINT}}
_FRAME_FIELDS: dict[str, Any] = {
    "tick": _COUNT,
    "t": _NUMBER,
    "tree": {"type": "object", "required": ["rev", "nodes"], "properties": {
        "rev": {"type": "integer"},
        # [id, name, type, parent id, plan step id]
        "nodes": {"type": "array", "items": {"type": "array", "minItems": 4, "prefixItems": [
            _STRING, _STRING, _STRING, {"type": ["string", "null"]}, {"type": ["string", "integer", "null"]}]}},
        "dot": {"type": ["string", "null"]},
        "dot_error": _STRING}},
    "nodes": {"type": "object", "additionalProperties": {  # id: [status, feedback message]
        "type": "array", "minItems": 2, "prefixItems": [{"enum": [s.name for s in Status]}, _STRING]}},
    "bb": {"type": "object", "properties": {
        keys.DIALOGUE_HISTORY: {"type": "array", "items": {"type": "object", "properties": {
            "role": _STRING, "text": _STRING, "t": _NUMBER}}},
        keys.PLAN_STEPS: {"type": "array", "items": {"type": "object"}}}},
    "bb_del": {"type": "array", "items": _STRING},
    "audit": {"type": "array", "items": {"type": "object", "properties": {
        "t": _NUMBER, "kind": _STRING, "args": {"type": ["object", "null"]}}}},
    "sim": {"type": "object", "properties": {"path": {"type": "array", "items": _POINT}}},
}
RECORD_SCHEMAS: dict[str, dict[str, Any]] = {
    "header": {"type": "object", "required": ["kind", "format", "version"], "properties": {
        "kind": {"const": "header"},
        "format": {"const": RECORD_FORMAT},
        "version": {"const": RECORD_VERSION},
        "t": _NUMBER,
        "tree": {"type": "object", "properties": {"name": _STRING, "path": _STRING, "description": _STRING}},
        "world": {"type": ["object", "null"], "properties": {
            "path": _STRING,
            "places": {"type": "object", "additionalProperties": _POINT},
            "objects": {"type": "array", "items": _PLACED},
            "humans": {"type": "array", "items": _PLACED},
            "robot": _PLACED,
            "workspace": {"type": "array", "items": _POINT},
            "no_go": {"type": "array", "items": {"type": "object", "required": ["polygon"], "properties": {
                "name": _STRING, "polygon": {"type": "array", "items": _POINT}}}}}},
        "keys": {"type": "array", "items": _STRING},
        "rate_hz": {"type": ["number", "null"]},
        "time_scale": {"type": ["number", "null"]}}},
    "tick": {"type": "object", "required": ["kind", "tick", "t"],
             "properties": {"kind": {"const": "tick"}, **_FRAME_FIELDS}},
    "end": {"type": "object", "required": ["kind"], "properties": {
        "kind": {"const": "end"}, **_FRAME_FIELDS,
        "status": _STRING, "reason": _STRING, "ticks": _COUNT, "seconds": _NUMBER, "interrupted": {"type": "boolean"}}},
}
"""JSON Schemas (draft 2020-12) of the records by kind: what readers rely on; further fields are free."""


class MalformedRecordError(ValueError):
    """A line of a recording that is not a record (the message says why: ``a line that is not JSON (…)``)."""


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise MalformedRecordError(f"a line with a number out of range ({text[:20]})")
    return value


def _bounded(text: str) -> int:
    if len(text.lstrip("-")) > 300:  # near what a float holds: differences of two times must still fit
        raise MalformedRecordError(f"a line with a number out of range ({text[:20]}…)")
    return int(text)


def _not_strict(text: str) -> Any:
    raise MalformedRecordError(f"a line with a number that is not finite ({text})")


def _deeper_than(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        inner = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if inner:
            if depth >= limit:
                return True
            stack.extend((child, depth + 1) for child in inner)
    return False


def parse_record(line: str) -> dict[str, Any]:
    """One line of a recording as a record: a strict JSON object (finite numbers) at most ``MAX_DEPTH`` deep.

    The record's fields are not checked here: see ``record_problems``.

    Args:
        line: the line's text

    Returns:
        the record

    Raises:
        MalformedRecordError: not JSON, not an object, a number that is not finite, nested too deeply
    """
    try:
        record = json.loads(line, parse_float=_finite, parse_int=_bounded, parse_constant=_not_strict)
    except MalformedRecordError:
        raise
    except json.JSONDecodeError as exc:
        raise MalformedRecordError(f"a line that is not JSON ({exc.msg})") from None
    except RecursionError:
        raise MalformedRecordError(f"a line nested too deeply (more than {MAX_DEPTH} levels)") from None
    if not isinstance(record, dict):
        raise MalformedRecordError("a line that is not a JSON object")
    if _deeper_than(record, MAX_DEPTH):
        raise MalformedRecordError(f"a line nested too deeply (more than {MAX_DEPTH} levels)")
    return record


def _json_kind(value: Any) -> str:
    kinds = ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"), (list, "array"),
             (dict, "object"))
    return next((name for kind, name in kinds if isinstance(value, kind)), "null")


def _problem(error: Any) -> tuple[str, str]:
    path = list(error.absolute_path)
    where = "".join(f"[{step}]" if isinstance(step, int) else f".{step}" for step in path).lstrip(".")
    if error.validator == "type":
        expected = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        what = f"expected {' or '.join(expected)}, got {_json_kind(error.instance)}"
    elif error.validator == "required":
        missing = next((k for k in error.validator_value if k not in error.instance), "?")
        where, what = f"{where}.{missing}".lstrip("."), "missing"
    elif error.validator == "minItems":
        what = f"expected at least {error.validator_value} items, got {len(error.instance)}"
    elif error.validator in ("enum", "const"):
        allowed = error.validator_value if error.validator == "enum" else [error.validator_value]
        what = f"expected {' or '.join(json.dumps(v) for v in allowed)}, got {dumps(error.instance)[:40]}"
    else:
        what = error.message[:120]
    return (str(path[0]) if path else where.split(".")[0]), f"{where or 'the record'}: {what}"


def _tree_problems(nodes: list[list[Any]]) -> list[tuple[str, str]]:
    seen: set[str] = set()
    for index, node in enumerate(nodes):
        if node[0] in seen:
            return [("tree", f"tree.nodes[{index}]: the node id {node[0]!r} is listed twice")]
        if node[3] is not None and node[3] not in seen:
            return [("tree", f"tree.nodes[{index}]: its parent {node[3]!r} is not listed before it")]
        seen.add(node[0])
    return []


def record_problems(record: dict[str, Any]) -> list[tuple[str, str]]:
    """How a record breaks the recording format (``RECORD_SCHEMAS``); empty when it is well-formed.

    Beyond the schema, the nodes of a tree must have distinct ids and list
    each parent before its children (the recorder writes them in preorder).
    Records of other kinds are not checked.

    Args:
        record: from ``parse_record``

    Returns:
        ``(top-level field, "where: what is wrong")`` for each problem, in the order of the fields
        (e.g. ``("nodes", "nodes.n1: expected array, got null")``)
    """
    kind = record.get("kind")
    if not isinstance(kind, str) or kind not in RECORD_SCHEMAS:
        return []
    order = {name: index for index, name in enumerate(record)}
    problems = sorted((_problem(e) for e in _validator(kind).iter_errors(record)), key=lambda p: order.get(p[0], -1))
    if not problems and kind != "header" and "tree" in record:
        problems = _tree_problems(record["tree"]["nodes"])
    return problems


@functools.cache
def _validator(kind: str) -> Any:
    import jsonschema

    return jsonschema.Draft202012Validator(RECORD_SCHEMAS[kind])


# -- folding frames into a state ------------------------------------------------------

AUDIT_KEEP = 2000
"""Audit events kept in a folded state (the recording keeps all)."""


def empty_state() -> dict[str, Any]:
    """The state before the first frame (the page's ``applyFrame`` folds the same way)."""
    return {"tick": 0, "t": None, "rev": 0, "tree": [], "status": {}, "bb": {}, "audit": [], "path": [],
            "steps": {}, "end": None}


def apply_frame(state: dict[str, Any], frame: dict[str, Any]) -> dict[str, Any]:
    """Fold one frame into a state (in place) and return it.

    Args:
        state: from ``empty_state()`` or an earlier fold
        frame: a ``tick`` or ``end`` record

    Returns:
        the same state
    """
    if frame.get("kind") == "end":
        state["end"] = {k: v for k, v in frame.items() if k != "audit"}
    else:
        state["tick"] = frame.get("tick", state["tick"])
    state["t"] = frame.get("t", state["t"])
    tree = frame.get("tree")
    if tree is not None:
        state["rev"], state["tree"] = tree["rev"], tree["nodes"]
        live = {node[0] for node in tree["nodes"]}
        state["status"] = {nid: value for nid, value in state["status"].items() if nid in live}
    state["status"].update(frame.get("nodes") or {})
    bb = frame.get("bb") or {}
    if bb.get("/plan/steps") == []:  # a new response: its steps start afresh
        state["steps"] = {}
    if frame.get("nodes"):
        # A step's last outcome outlives its leaf's reset to INVALID (when the turn starts over).
        step_of = {node[0]: node[4] for node in state["tree"] if len(node) > 4 and node[4]}
        for nid, (status, _message) in frame["nodes"].items():
            if status != "INVALID" and nid in step_of:
                state["steps"] = {**state["steps"], step_of[nid]: status}
    state["bb"].update(bb)
    for key in frame.get("bb_del") or ():
        state["bb"].pop(key, None)
    if frame.get("audit"):
        state["audit"] = (state["audit"] + list(frame["audit"]))[-AUDIT_KEEP:]
    if frame.get("sim") is not None and "path" in frame["sim"]:
        state["path"] = frame["sim"]["path"]
    return state


def statuses_by_path(state: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Node statuses keyed by their place in the tree (``Root/0:Child/1:Grandchild``), for comparisons.

    Args:
        state: a folded state

    Returns:
        path → (status, feedback message)
    """
    children: dict[Any, list[Any]] = {}
    for node in state["tree"]:
        children.setdefault(node[3], []).append(node)
    result: dict[str, tuple[str, str]] = {}

    def walk(node: list[Any], path: str) -> None:
        status = state["status"].get(node[0], ["INVALID", ""])
        result[path] = (status[0], status[1])
        for index, child in enumerate(children.get(node[0], [])):
            walk(child, f"{path}/{index}:{child[1]}")

    for root in children.get(None, []):
        walk(root, root[1])
    return result


def tree_statuses(root: py_trees.behaviour.Behaviour) -> dict[str, tuple[str, str]]:
    """``statuses_by_path`` of a live tree (what a replay is compared with)."""
    result: dict[str, tuple[str, str]] = {}

    def walk(node: py_trees.behaviour.Behaviour, path: str) -> None:
        result[path] = (node.status.name, str(node.feedback_message or "")[:MESSAGE_LIMIT])
        for index, child in enumerate(node.children):
            walk(child, f"{path}/{index}:{child.name}")

    walk(root, root.name)
    return result
