"""Positions in source files and the errors that point at them.

Every complaint about a tree names ``FILE:LINE:COL`` (1-based), says what was
expected and, where it can, suggests the nearest valid name.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from rapidfuzz import process
from rapidfuzz.distance import Levenshtein


@dataclass(frozen=True, order=True)
class Mark:
    """A position in a source file.

    Args:
        file: the path as the user gave it (or as derived from an include)
        line: 1-based line number (0: the file as a whole, no position in it)
        col: 1-based column number
    """

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}" if self.line else self.file


@dataclass(frozen=True, order=True)
class Diagnostic:
    """One error in a tree document: where, and what is wrong."""

    mark: Mark
    message: str

    def __str__(self) -> str:
        return f"{self.mark}: {self.message}" if str(self.mark) else self.message


class TreeError(Exception):
    """A tree document (or one it includes) is invalid.

    Args:
        diagnostics: every error found, in file order

    Example:
        >>> try:
        ...     load_tree("trees/broken.yaml")
        ... except TreeError as error:
        ...     print(error)   # one "FILE:LINE:COL: message" per line
    """

    def __init__(self, diagnostics: Iterable[Diagnostic]):
        self.diagnostics = sorted(set(diagnostics))
        super().__init__("\n".join(str(d) for d in self.diagnostics))


MAX_NESTING = 400
"""How deeply collections may nest in any file the project reads (a tree of 300 nested decorators fits)."""


def too_deep(mark: Mark) -> TreeError:
    """The error for a document nested deeper than ``MAX_NESTING``, at the collection that goes too deep."""
    return TreeError([Diagnostic(mark, f"nesting too deep (at most {MAX_NESTING} levels)")])


@contextmanager
def nesting_guard(file: str) -> Iterator[None]:
    """Turn a ``RecursionError`` while reading ``file`` into :func:`too_deep` at its start.

    The readers bound nesting before they recurse; this is the last line behind them.
    """
    try:
        yield
    except RecursionError:
        raise too_deep(Mark(file, 1, 1)) from None


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return ``" (did you mean 'X'?)"`` for the closest choice, or ``""``.

    Uses a normalised edit distance so that typos ("Navigat", "navigate")
    are caught while unrelated names are not suggested.
    """
    choices = list(choices)
    if not choices or not isinstance(word, str):
        return ""
    best = process.extractOne(
        word.lower(),
        {c: c.lower() for c in choices},
        scorer=Levenshtein.normalized_similarity,
        score_cutoff=0.5,
    )
    return f" (did you mean '{best[2]}'?)" if best else ""


def number_as_text_hint(value: object) -> str:
    """A hint when a value meant as a number was read as text: YAML 1.1 reads ``1e300`` as a string.

    Returns:
        ``" (YAML reads 1e300 as text: write 1.0e+300)"``, or ``""`` when ``value`` is no such text
    """
    if not isinstance(value, str):
        return ""
    try:
        number = float(value)
    except ValueError:
        return ""
    return f" (YAML reads {value} as text: write {number:.1e})" if "e" in value.lower() else ""
