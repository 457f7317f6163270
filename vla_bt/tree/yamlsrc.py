"""YAML that remembers where every value came from.

PyYAML composes a node graph with marks; this module turns it into plain
Python values (``LMap`` is a ``dict``, ``LList`` a ``list``) that also carry
the position of every key and item, so that later stages can point at the
exact line and column of a bad value. Duplicate keys, which PyYAML accepts
silently, are reported as errors.

Every input file (trees, worlds, scripts, configuration, sessions) is read
through :func:`read_source`: only a regular file of bounded size, and its
collections nested at most ``MAX_NESTING`` deep, so a device, a directory or
a pathologically deep document is a located error rather than a hang or a crash.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Any

import yaml

from .diagnostics import MAX_NESTING, Diagnostic, Mark, TreeError, did_you_mean, nesting_guard, too_deep

MAX_FILE_BYTES = 8 * 1024 * 1024
"""The largest file the project reads as a tree, world, script, configuration or session."""
_TOO_LARGE = f"file too large (more than {MAX_FILE_BYTES // (1024 * 1024)} MiB)"


class LMap(dict):
    """A mapping that knows the position of itself, each key and each value."""

    mark: Mark
    key_marks: dict[Any, Mark]
    value_marks: dict[Any, Mark]

    def at(self, key: Any) -> Mark:
        """Position of the value under ``key`` (or of the mapping if absent)."""
        return self.value_marks.get(key, self.mark)

    def key_at(self, key: Any) -> Mark:
        """Position of ``key`` itself (or of the mapping if absent)."""
        return self.key_marks.get(key, self.mark)


class LList(list):
    """A list that knows the position of itself and of each item."""

    mark: Mark
    item_marks: list[Mark]

    def at(self, index: int) -> Mark:
        return self.item_marks[index] if 0 <= index < len(self.item_marks) else self.mark


def mark_of(node: yaml.Node, file: str) -> Mark:
    return Mark(file, node.start_mark.line + 1, node.start_mark.column + 1)


class _Converter:
    """Turns a composed node graph into located values.

    Aliases of one anchor share the converted value (no exponential growth),
    and an alias inside its own anchor is refused (it would never end).
    """

    def __init__(self, file: str, loader: yaml.SafeLoader, errors: list[Diagnostic]):
        self.file, self.loader, self.errors = file, loader, errors
        self.done: dict[int, Any] = {}
        self.active: set[int] = set()
        self.depths: dict[int, int] = {}  # how deeply each converted collection nests, aliases followed

    def convert(self, node: yaml.Node) -> Any:
        if id(node) in self.done:
            return self.done[id(node)]
        if id(node) in self.active:
            self.errors.append(Diagnostic(mark_of(node, self.file), "an alias refers to its own anchor (a loop)"))
            return None
        self.active.add(id(node))
        try:
            value = self._mapping(node) if isinstance(node, yaml.MappingNode) else (
                self._sequence(node) if isinstance(node, yaml.SequenceNode)
                else self.loader.construct_object(node, deep=True))
        finally:
            self.active.discard(id(node))
        if isinstance(node, yaml.CollectionNode):
            # The composer bounds how deeply the text nests; aliases can stack anchored
            # collections inside each other beyond that, so the values are measured too.
            depth = 1 + max((self.depths.get(id(item), 0) for item in _children(node)), default=0)
            if depth > MAX_NESTING:
                raise too_deep(mark_of(node, self.file))
            self.depths[id(node)] = depth
        self.done[id(node)] = value
        return value

    def _mapping(self, node: yaml.MappingNode) -> LMap:
        self.loader.flatten_mapping(node)  # resolves YAML merge keys (<<)
        result = LMap()
        result.mark, result.key_marks, result.value_marks = mark_of(node, self.file), {}, {}
        for key_node, value_node in node.value:
            key = self.convert(key_node)
            if not isinstance(key, (str, int, float, bool)):
                self.errors.append(Diagnostic(mark_of(key_node, self.file), "mapping keys must be plain scalars"))
                continue
            if key in result:
                self.errors.append(Diagnostic(
                    mark_of(key_node, self.file),
                    f"duplicate key '{key}' (first defined at line {result.key_marks[key].line})",
                ))
                continue
            result[key] = self.convert(value_node)
            result.key_marks[key] = mark_of(key_node, self.file)
            result.value_marks[key] = mark_of(value_node, self.file)
        return result

    def _sequence(self, node: yaml.SequenceNode) -> LList:
        items = LList()
        for item in node.value:  # a loop, not a generator: one frame less for each level of nesting
            items.append(self.convert(item))
        items.mark, items.item_marks = mark_of(node, self.file), [mark_of(i, self.file) for i in node.value]
        return items


def _children(node: yaml.CollectionNode) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return list(node.value)


class _NestingError(yaml.YAMLError):
    """A collection opened deeper than ``MAX_NESTING`` (``mark`` is where)."""

    def __init__(self, mark: yaml.Mark):
        super().__init__("nesting too deep")
        self.mark = mark


class _BoundedLoader(yaml.SafeLoader):
    """The safe loader, refusing a collection nested deeper than ``MAX_NESTING``.

    PyYAML composes nested collections recursively; counting the events as they
    are taken stops a deep document before the recursion runs out of stack.
    """

    def __init__(self, stream: str):
        super().__init__(stream)
        self.depth = 0

    def get_event(self) -> yaml.Event:
        event = super().get_event()
        if isinstance(event, yaml.CollectionStartEvent):
            self.depth += 1
            if self.depth > MAX_NESTING:
                raise _NestingError(event.start_mark)
        elif isinstance(event, yaml.CollectionEndEvent):
            self.depth -= 1
        return event


def load_located(text: str, file: str) -> Any:
    """Parse one YAML document into located values.

    Args:
        text: the YAML source
        file: the name to report in positions

    Returns:
        the document as ``LMap``/``LList``/scalars, ``None`` for an empty file

    Raises:
        TreeError: on a syntax error, several documents, duplicate keys or nesting deeper than ``MAX_NESTING``
    """
    loader = _BoundedLoader(text)
    try:
        with nesting_guard(file):
            node = loader.get_single_node()
            errors: list[Diagnostic] = []
            data = _Converter(file, loader, errors).convert(node) if node is not None else None
    except _NestingError as exc:
        raise too_deep(Mark(file, exc.mark.line + 1, exc.mark.column + 1)) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = Mark(file, mark.line + 1, mark.column + 1) if mark else Mark(file, 1, 1)
        problem = exc.problem or "invalid YAML"
        if exc.context:
            opened = exc.context_mark
            started = f" started at line {opened.line + 1}" if opened and opened is not mark else ""
            problem = f"{exc.context}{started}, {problem}"
        raise TreeError([Diagnostic(where, f"YAML syntax error: {problem}")]) from None
    except yaml.YAMLError as exc:
        raise TreeError([Diagnostic(Mark(file, 1, 1), f"YAML error: {exc}")]) from None
    finally:
        loader.dispose()
    if errors:
        raise TreeError(errors)
    return data


def file_problem(path: str | os.PathLike[str]) -> str | None:
    """Why ``path`` cannot be read as an input file, or ``None`` when it can.

    Only a regular file of at most ``MAX_FILE_BYTES`` is read: a directory, a
    device (``/dev/zero`` never ends), a pipe or a socket is refused by name.

    Returns:
        "no file name given", "file not found", "is a directory", "not a regular file",
        "file too large (…)", "cannot read file: …", or ``None``
    """
    if not os.fspath(path):
        return "no file name given"
    try:
        return _kind_problem(os.stat(path))
    except (FileNotFoundError, NotADirectoryError):
        return "file not found"
    except OSError as exc:
        return f"cannot read file: {exc.strerror or exc}"


def _kind_problem(info: os.stat_result) -> str | None:
    if stat.S_ISDIR(info.st_mode):
        return "is a directory"
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file"
    if info.st_size > MAX_FILE_BYTES:
        return _TOO_LARGE
    return None


def read_source(path: str | os.PathLike[str], display: str | None = None) -> str:
    """The text of an input file (UTF-8): a regular file of at most ``MAX_FILE_BYTES``.

    Args:
        path: the file
        display: the name to report (default: ``path`` as given)

    Raises:
        TreeError: at ``FILE:1:1``, the reason from :func:`file_problem`, or why it cannot be read or decoded
    """
    display = os.fspath(path) if display is None else display

    def refuse(problem: str) -> TreeError:
        # Without a name there is no position to give, only the problem.
        return TreeError([Diagnostic(Mark(display, 1, 1) if os.fspath(path) else Mark(display, 0, 0), problem)])

    problem = file_problem(path)
    if problem:
        raise refuse(problem)
    try:
        # Non-blocking: a pipe put in the file's place after the check does not hang the open.
        handle = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise refuse(f"cannot read file: {exc.strerror or exc}") from None
    with os.fdopen(handle, "rb") as stream:
        problem = _kind_problem(os.fstat(stream.fileno()))  # what was opened, not what was checked
        if problem:
            raise refuse(problem)
        try:
            data = stream.read(MAX_FILE_BYTES + 1)
        except OSError as exc:
            raise refuse(f"cannot read file: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise refuse(_TOO_LARGE)  # it grew since it was looked at
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise refuse(f"cannot read file: {exc}") from None


def read_located(path: str | Path, display: str | None = None) -> Any:
    """Read and parse a YAML file; an unreadable file is a ``TreeError`` too (see :func:`read_source`)."""
    display = os.fspath(path) if display is None else display
    return load_located(read_source(path, display), display)


_JSON_TOKENS = re.compile(r'[\[\]{}"\\]')


def check_json_nesting(text: str, file: str) -> None:
    """Refuse JSON text whose arrays and objects nest deeper than ``MAX_NESTING``, before it is parsed.

    Raises:
        TreeError: ``FILE:LINE:COL`` of the bracket that opens one level too many
    """
    if text.count("[") + text.count("{") <= MAX_NESTING:
        return  # too few brackets to nest too deeply, whatever the strings hold
    depth, in_string, skip = 0, False, -1
    for match in _JSON_TOKENS.finditer(text):
        char, at = match.group(), match.start()
        if at == skip:  # the character after a backslash in a string
            continue
        if in_string:
            if char == "\\":
                skip = at + 1
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > MAX_NESTING:
                line = text.count("\n", 0, at) + 1
                raise too_deep(Mark(file, line, at - text.rfind("\n", 0, at)))
        elif char in "]}":
            depth -= 1


def mark_at(value: Any, path: list[Any], default: Mark) -> Mark:
    """Position of the item at ``path`` (keys and indices) inside a located value."""
    mark = default
    for step in path:
        if isinstance(value, LMap) and step in value:
            mark, value = value.at(step), value[step]
        elif isinstance(value, LList) and isinstance(step, int) and step < len(value):
            mark, value = value.at(step), value[step]
        else:
            break
    return mark


def schema_diagnostics(schema: dict[str, Any], data: Any, default: Mark,
                       describe: Any = None) -> list[Diagnostic]:
    """Every JSON Schema error of a located document, each at its position, an unknown key with "did you mean".

    Args:
        schema: the JSON Schema (draft 2020-12)
        data: the document as read by :func:`read_located`
        default: the position of errors that have no narrower one (the document itself)
        describe: turns a ``jsonschema`` error into the message after the field's name (default: its own)

    Returns:
        the diagnostics, in the validator's order (empty when the document is valid)
    """
    import jsonschema

    errors = []
    for error in jsonschema.Draft202012Validator(schema).iter_errors(data):
        where = list(error.absolute_path)
        if error.validator == "additionalProperties":
            container = data
            for step in where:
                container = container[step]
            allowed = list(error.schema.get("properties", {}))
            for key in (k for k in container if k not in allowed):
                mark = container.key_at(key) if isinstance(container, LMap) else default
                errors.append(Diagnostic(mark, f"unknown key '{key}'" + (did_you_mean(str(key), allowed)
                                                                        or f" (expected {', '.join(allowed)})")))
            continue
        name = ".".join(str(p) for p in where) or "the file"
        message = describe(error) if describe is not None else error.message
        errors.append(Diagnostic(mark_at(data, where, default), f"{name}: {message}"))
    return errors
