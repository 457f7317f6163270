"""YAML that remembers where every value came from.

PyYAML composes a node graph with marks; this module turns it into plain
Python values (``LMap`` is a ``dict``, ``LList`` a ``list``) that also carry
the position of every key and item, so that later stages can point at the
exact line and column of a bad value. Duplicate keys, which PyYAML accepts
silently, are reported as errors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .diagnostics import Diagnostic, Mark, TreeError, did_you_mean


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
        items = LList(self.convert(item) for item in node.value)
        items.mark, items.item_marks = mark_of(node, self.file), [mark_of(i, self.file) for i in node.value]
        return items


def load_located(text: str, file: str) -> Any:
    """Parse one YAML document into located values.

    Args:
        text: the YAML source
        file: the name to report in positions

    Returns:
        the document as ``LMap``/``LList``/scalars, ``None`` for an empty file

    Raises:
        TreeError: on a syntax error, several documents or duplicate keys
    """
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        errors: list[Diagnostic] = []
        data = _Converter(file, loader, errors).convert(node) if node is not None else None
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


def read_located(path: str | Path, display: str | None = None) -> Any:
    """Read and parse a YAML file; an unreadable file is a ``TreeError`` too."""
    display = display or str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TreeError([Diagnostic(Mark(display, 1, 1), "file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise TreeError([Diagnostic(Mark(display, 1, 1), f"cannot read file: {reason}")]) from None
    return load_located(text, display)


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
