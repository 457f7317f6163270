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

from .diagnostics import Diagnostic, Mark, TreeError


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


def _convert(node: yaml.Node, file: str, loader: yaml.SafeLoader, errors: list[Diagnostic]) -> Any:
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # resolves YAML merge keys (<<)
        result = LMap()
        result.mark, result.key_marks, result.value_marks = mark_of(node, file), {}, {}
        for key_node, value_node in node.value:
            key = _convert(key_node, file, loader, errors)
            if not isinstance(key, (str, int, float, bool)) or key is None:
                errors.append(Diagnostic(mark_of(key_node, file), "mapping keys must be plain scalars"))
                continue
            if key in result:
                errors.append(Diagnostic(
                    mark_of(key_node, file),
                    f"duplicate key '{key}' (first defined at line {result.key_marks[key].line})",
                ))
                continue
            result[key] = _convert(value_node, file, loader, errors)
            result.key_marks[key] = mark_of(key_node, file)
            result.value_marks[key] = mark_of(value_node, file)
        return result
    if isinstance(node, yaml.SequenceNode):
        items = LList(_convert(item, file, loader, errors) for item in node.value)
        items.mark, items.item_marks = mark_of(node, file), [mark_of(i, file) for i in node.value]
        return items
    return loader.construct_object(node, deep=True)


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
        data = _convert(node, file, loader, errors) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = Mark(file, mark.line + 1, mark.column + 1) if mark else Mark(file, 1, 1)
        problem = exc.problem or exc.context or "invalid YAML"
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
