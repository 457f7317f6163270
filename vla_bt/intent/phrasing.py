"""Phrasings: the bracket syntax shared by phrase templates and JSGF rule bodies, and its one parser.

A phrasing is words, alternatives and optional parts::

    (go | drive) [back] to {target}

- ``word``: a literal word;
- ``( a | b c )``: one of the alternatives;
- ``[ a | b ]``: optional.

A :class:`Syntax` switches on the features of its dialect: slots ``{name}`` /
``{name:kind}`` for the planner's phrase templates
(:func:`vla_bt.intent.grammar.parse_template`); rule references ``<name>``,
weights ``/w/`` (read and ignored) and repeats ``*`` / ``+`` for JSGF rule
bodies (:data:`JSGF`, read by :mod:`vla_bt.speech.fsg`). The characters of a
feature that is off are ordinary word characters, so a template may say
``<`` or ``*`` as a word.

Every group is an :class:`Alt` of :class:`Seq` (a single option included),
so a tree is read the same way whatever it came from.

Example:
    >>> tree = parse_phrasing("go to <place>", JSGF)
    >>> [type(node).__name__ for node in walk(tree)]
    ['Alt', 'Seq', 'Word', 'Word', 'RuleRef']
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property


class PhrasingError(ValueError):
    """A phrasing is malformed (the message says what, without saying which phrasing)."""


# -- the syntax tree ----------------------------------------------------------------------

@dataclass(frozen=True)
class Word:
    """A literal word."""

    text: str


@dataclass(frozen=True)
class SlotRef:
    """A slot ``{name}`` or ``{name:kind}`` of a phrase template."""

    name: str
    kind: str | None = None


@dataclass(frozen=True)
class RuleRef:
    """A reference ``<name>`` to a JSGF rule (``<NULL>`` and ``<VOID>`` included)."""

    name: str


@dataclass(frozen=True)
class Seq:
    """Items said one after the other."""

    items: tuple[Node, ...]


@dataclass(frozen=True)
class Alt:
    """One of the options (a group, or the whole phrasing)."""

    options: tuple[Seq, ...]


@dataclass(frozen=True)
class Opt:
    """An optional group ``[ … ]``."""

    body: Alt


@dataclass(frozen=True)
class Repeat:
    """An item said again and again: ``least`` is 0 for ``*``, 1 for ``+``."""

    body: Node
    least: int


Node = Word | SlotRef | RuleRef | Seq | Alt | Opt | Repeat


def walk(node: Node) -> Iterator[Node]:
    """Every node of a tree, depth first, in the order written.

    Args:
        node: the root

    Returns:
        an iterator over ``node`` and all the nodes below it
    """
    yield node
    children: tuple[Node, ...] = ()
    if isinstance(node, Seq):
        children = node.items
    elif isinstance(node, Alt):
        children = node.options
    elif isinstance(node, Opt | Repeat):
        children = (node.body,)
    for child in children:
        yield from walk(child)


# -- dialects -----------------------------------------------------------------------------

def _as_written(token: str) -> tuple[str, ...]:
    return (token,)


_SLOT = re.compile(r"\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?::\s*([a-z]+)\s*)?\}")
_REPEATS = ("*", "+")
_ENDS = ("|", ")", "]", None)


@dataclass(frozen=True)
class Syntax:
    """The features a phrasing may use besides words, ``( | )`` and ``[ ]``.

    Args:
        slot_kinds: allow slots ``{name}`` and ``{name:kind}`` with these kinds (``None``: no slots)
        rules: allow rule references ``<name>``
        weights: allow weights ``/w/``, which are ignored
        repeats: allow ``*`` (any number of times) and ``+`` (at least once) after an item
        words: the words a word token stands for (as written by default; a template
            lowers the case and splits ``living_room``)
    """

    slot_kinds: tuple[str, ...] | None = None
    rules: bool = False
    weights: bool = False
    repeats: bool = False
    words: Callable[[str], tuple[str, ...]] = _as_written

    @cached_property
    def _pattern(self) -> re.Pattern[str]:
        # A feature's characters leave the word characters only when the feature is on; a
        # lone reserved character (an unclosed "{" or "<") matches nothing and is skipped.
        marks = "()[]|" + ("".join(_REPEATS) if self.repeats else "")
        features = ((self.rules, r"<[^<>\s]+>", "<>"), (self.weights, r"/[^/]*/", "/"),
                    (self.slot_kinds is not None, r"\{[^{}]*\}", "{}"))
        special = [pattern for on, pattern, _ in features if on]
        reserved = marks + "".join(chars for on, _, chars in features if on)
        return re.compile("|".join([*special, f"[{re.escape(marks)}]", rf"[^\s{re.escape(reserved)}]+"]))

    def tokens(self, text: str) -> list[str]:
        """The tokens of a phrasing, weights left out.

        Args:
            text: the phrasing

        Returns:
            brackets, bars, repeat marks, slots, rule references and word tokens, in order
        """
        return [t for t in self._pattern.findall(text) if not (self.weights and t.startswith("/"))]


JSGF = Syntax(rules=True, weights=True, repeats=True)
"""The body of a JSGF rule as :mod:`vla_bt.speech.fsg` reads it (tags ``{…}`` are not read: braces are words)."""


# -- the parser ---------------------------------------------------------------------------

_PLAIN = Syntax()


def parse_phrasing(text: str, syntax: Syntax = _PLAIN) -> Alt:
    """Parse a phrasing into its syntax tree.

    Args:
        text: the phrasing
        syntax: the features it may use (words and brackets only by default)

    Returns:
        the alternatives of the whole phrasing

    Raises:
        PhrasingError: nothing to read, unbalanced brackets, an empty alternative, a malformed
            slot, a repeat mark that follows nothing
    """
    tokens = syntax.tokens(text)
    if not tokens:
        raise PhrasingError("it is empty")
    return _Parser(tokens, syntax).alternatives(None)


class _Parser:
    """Recursive descent over the tokens of one phrasing."""

    def __init__(self, tokens: list[str], syntax: Syntax) -> None:
        self.tokens = tokens
        self.syntax = syntax
        self.position = 0

    def peek(self) -> str | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self) -> str:
        self.position += 1
        return self.tokens[self.position - 1]

    def alternatives(self, closing: str | None) -> Alt:
        """Options separated by ``|`` up to ``closing`` (taken), or to the end when ``None``."""
        options = [self.sequence()]
        while self.peek() == "|":
            self.take()
            options.append(self.sequence())
        if self.peek() != closing:
            raise PhrasingError(f"expected '{closing or 'the end'}', found '{self.peek() or 'the end'}'")
        if closing:
            self.take()
        return Alt(tuple(options))

    def sequence(self) -> Seq:
        """Items up to the next ``|`` or closing bracket."""
        items: list[Node] = []
        while self.peek() not in _ENDS:
            items.extend(self.repeated(self.item(self.take())))
        if not items:
            raise PhrasingError("an empty alternative")
        return Seq(tuple(items))

    def item(self, token: str) -> list[Node]:
        """The nodes ``token`` begins (a word token may stand for several words, or none)."""
        syntax = self.syntax
        if token == "(":
            return [self.alternatives(")")]
        if token == "[":
            return [Opt(self.alternatives("]"))]
        if syntax.repeats and token in _REPEATS:
            raise PhrasingError(f"'{token}' follows nothing")
        if syntax.rules and token.startswith("<"):
            return [RuleRef(token[1:-1])]
        if syntax.slot_kinds is not None and token.startswith("{"):
            return [self.slot(token, syntax.slot_kinds)]
        return [Word(w) for w in syntax.words(token)]

    def repeated(self, nodes: list[Node]) -> list[Node]:
        """``nodes`` under the repeat marks that follow them (all of one word token together)."""
        while nodes and self.syntax.repeats and self.peek() in _REPEATS:
            body = nodes[0] if len(nodes) == 1 else Seq(tuple(nodes))
            nodes = [Repeat(body, 0 if self.take() == "*" else 1)]
        return nodes

    @staticmethod
    def slot(token: str, kinds: tuple[str, ...]) -> SlotRef:
        """The slot ``{name}`` or ``{name:kind}``, its kind one of ``kinds``."""
        match = _SLOT.fullmatch(token)
        if not match or (match.group(2) and match.group(2) not in kinds):
            raise PhrasingError(f"bad slot {token} (write {{name}} or {{name:kind}}, kind one of {', '.join(kinds)})")
        return SlotRef(match.group(1), match.group(2))


__all__ = ["JSGF", "Alt", "Node", "Opt", "PhrasingError", "Repeat", "RuleRef", "Seq", "SlotRef", "Syntax", "Word",
           "parse_phrasing", "walk"]
