"""A speech grammar in JSGF compiled to a small word automaton for pocketsphinx.

pocketsphinx can read JSGF itself, but it expands every rule reference in
place and keeps the empty transitions of every optional part: the command
grammar of :func:`vla_bt.intent.grammar.to_jsgf` becomes an automaton of
about 5,000 states and 50,000 transitions, and decoding with it runs slower
than real time and prunes the right sentence away. The language is the same
whatever the automaton, so this module builds the smallest one:

1. the JSGF text is parsed (the subset the project writes: alternatives
   ``|``, groups ``( )``, optional parts ``[ ]``, ``*``, ``+``, rule
   references, ``<NULL>`` and ``<VOID>``; weights are ignored), rule bodies
   by the parser of phrase templates (:mod:`vla_bt.intent.phrasing`);
2. an automaton with empty transitions is built from the public rule
   (Thompson's construction, references expanded);
3. it is made deterministic (subset construction) and minimal (partition
   refinement), so every suffix that several phrasings share, such as an
   object reference after any verb, exists once.

For the shipped world the result has about a hundred states. Each state
shares its probability equally among its outgoing words (and ending the
sentence, where it may end).

Example:
    >>> automaton = WordAutomaton.from_jsgf(to_jsgf(grammar))
    >>> automaton.accepts("go to the kitchen".split())
    True
    >>> decoder.add_fsg("commands", automaton.to_pocketsphinx(decoder, "commands"))
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from vla_bt.intent.phrasing import JSGF, Alt, Node, Opt, PhrasingError, Repeat, RuleRef, Seq, Word, parse_phrasing


class GrammarError(ValueError):
    """A speech grammar cannot be read or compiled."""


# -- JSGF syntax --------------------------------------------------------------------------

_RULE = re.compile(r"^\s*(public\s+)?<([^<>\s]+)>\s*=\s*(.*?)\s*;\s*$", re.DOTALL)


def parse_jsgf(text: str) -> tuple[dict[str, Node], list[str]]:
    """Read the rules of a JSGF grammar.

    Args:
        text: the grammar (``#JSGF V1.0;``, ``grammar NAME;``, then rules)

    Returns:
        the rule bodies by name (syntax trees of :mod:`vla_bt.intent.phrasing`), and the
        names of the public rules in order

    Raises:
        GrammarError: a malformed rule
    """
    body = re.sub(r"/\*.*?\*/", " ", text, flags=re.DOTALL)
    body = "\n".join(line.split("//", 1)[0] for line in body.splitlines())
    rules: dict[str, Node] = {}
    public: list[str] = []
    for statement in body.split(";"):
        statement = statement.strip()
        if not statement or statement.startswith(("#JSGF", "grammar ", "import ")):
            continue
        match = _RULE.match(statement + ";")
        if match is None:
            raise GrammarError(f"cannot read the JSGF statement '{statement[:60]}'")
        name = match.group(2)
        try:
            rules[name] = parse_phrasing(match.group(3), JSGF)
        except PhrasingError as exc:
            raise GrammarError(f"rule <{name}>: {exc}") from exc
        if match.group(1):
            public.append(name)
    return rules, public


# -- automata -----------------------------------------------------------------------------

@dataclass
class _Nfa:
    """An automaton with empty transitions (label ``None``)."""

    arcs: list[list[tuple[str | None, int]]] = field(default_factory=list)

    def state(self) -> int:
        self.arcs.append([])
        return len(self.arcs) - 1

    def arc(self, source: int, label: str | None, target: int) -> None:
        self.arcs[source].append((label, target))


def _build(node: Node, rules: Mapping[str, Node], nfa: _Nfa, start: int, stack: tuple[str, ...]) -> int | None:
    """Add ``node`` from ``start``; returns the end state, or ``None`` when nothing can be said (``<VOID>``)."""
    if isinstance(node, Word):
        end = nfa.state()
        nfa.arc(start, node.text, end)
        return end
    if isinstance(node, RuleRef):
        return _build_reference(node.name, rules, nfa, start, stack)
    if isinstance(node, Seq):
        current: int | None = start
        for item in node.items:
            current = _build(item, rules, nfa, current, stack) if current is not None else None
        return current
    if isinstance(node, Alt):
        return _build_alternatives(node, rules, nfa, start, stack)
    if isinstance(node, Opt):
        end = nfa.state()
        nfa.arc(start, None, end)
        finish = _build(node.body, rules, nfa, start, stack)
        if finish is not None:
            nfa.arc(finish, None, end)
        return end
    if isinstance(node, Repeat):
        return _build_repeat(node, rules, nfa, start, stack)
    raise GrammarError(f"unexpected grammar element {node!r}")


def _build_reference(name: str, rules: Mapping[str, Node], nfa: _Nfa, start: int,
                     stack: tuple[str, ...]) -> int | None:
    """Expand the rule ``<name>`` in place (``<NULL>`` says nothing, ``<VOID>`` cannot be said)."""
    if name == "NULL":
        return start
    if name == "VOID":
        return None
    if name in stack:
        raise GrammarError(f"rule <{name}> refers to itself (through {' → '.join(stack)})")
    if name not in rules:
        raise GrammarError(f"rule <{stack[-1] if stack else '?'}> refers to <{name}>, which is not defined")
    return _build(rules[name], rules, nfa, start, (*stack, name))


def _build_alternatives(node: Alt, rules: Mapping[str, Node], nfa: _Nfa, start: int,
                        stack: tuple[str, ...]) -> int | None:
    """Branch to every option; the end is reachable when any option can be said."""
    if len(node.options) == 1:  # a group of one option ("( a b )", a whole rule) needs no states of its own
        return _build(node.options[0], rules, nfa, start, stack)
    end = nfa.state()
    reachable = False
    for option in node.options:
        branch = nfa.state()
        nfa.arc(start, None, branch)
        finish = _build(option, rules, nfa, branch, stack)
        if finish is not None:
            nfa.arc(finish, None, end)
            reachable = True
    return end if reachable else None


def _build_repeat(node: Repeat, rules: Mapping[str, Node], nfa: _Nfa, start: int,
                  stack: tuple[str, ...]) -> int | None:
    """Loop over the body (``*``: also skip it)."""
    loop = nfa.state()
    nfa.arc(start, None, loop)
    finish = _build(node.body, rules, nfa, loop, stack)
    if finish is None:
        return start if node.least == 0 else None
    nfa.arc(finish, None, loop)
    end = nfa.state()
    nfa.arc(finish, None, end)
    if node.least == 0:
        nfa.arc(loop, None, end)
    return end


def _closure(nfa: _Nfa, states: Iterable[int], cache: dict[int, frozenset[int]]) -> frozenset[int]:
    """The states reachable from ``states`` by empty transitions (each state's own closure cached)."""
    found: set[int] = set()
    for state in states:
        closed = cache.get(state)
        if closed is None:
            seen = {state}
            stack = [state]
            while stack:
                for label, target in nfa.arcs[stack.pop()]:
                    if label is None and target not in seen:
                        seen.add(target)
                        stack.append(target)
            closed = cache[state] = frozenset(seen)
        found |= closed
    return frozenset(found)


@dataclass
class WordAutomaton:
    """A deterministic automaton over words: the sentences a grammar accepts.

    Args:
        arcs: for each state, word → next state
        final: the states where a sentence may end
        start: the start state
    """

    arcs: list[dict[str, int]]
    final: set[int]
    start: int = 0

    @classmethod
    def from_jsgf(cls, text: str, rule: str | None = None) -> WordAutomaton:
        """Compile a JSGF grammar (its first public rule, or ``rule``) to the minimal automaton.

        Raises:
            GrammarError: the grammar is malformed, refers to missing rules, or accepts nothing
        """
        rules, public = parse_jsgf(text)
        name = rule or (public[0] if public else None)
        if name is None or name not in rules:
            raise GrammarError(f"the grammar has no rule <{name}>" if name else "the grammar has no public rule")
        nfa = _Nfa()
        start = nfa.state()
        end = _build(rules[name], rules, nfa, start, (name,))
        if end is None:
            raise GrammarError(f"rule <{name}> accepts no sentence")
        return cls._determinize(nfa, start, end).minimized()

    @classmethod
    def _determinize(cls, nfa: _Nfa, start: int, end: int) -> WordAutomaton:
        cache: dict[int, frozenset[int]] = {}
        first = _closure(nfa, [start], cache)
        index = {first: 0}
        order = [first]
        arcs: list[dict[str, int]] = []
        final: set[int] = set()
        while len(arcs) < len(order):
            current = order[len(arcs)]
            moves: dict[str, set[int]] = {}
            for state in current:
                for label, target in nfa.arcs[state]:
                    if label is not None:
                        moves.setdefault(label, set()).add(target)
            row: dict[str, int] = {}
            for label in sorted(moves):
                subset = _closure(nfa, moves[label], cache)
                if subset not in index:
                    index[subset] = len(order)
                    order.append(subset)
                row[label] = index[subset]
            if end in current:
                final.add(len(arcs))
            arcs.append(row)
        return cls(arcs, final)

    def minimized(self) -> WordAutomaton:
        """The equivalent automaton with the fewest states (partition refinement), dead states removed."""
        alive = self._coaccessible()
        if self.start not in alive:
            raise GrammarError("the grammar accepts no sentence")
        block = {s: (s in self.final) for s in alive}
        count = len(set(block.values()))
        while True:
            signature = {s: (block[s], tuple(sorted((w, block[t]) for w, t in self.arcs[s].items() if t in alive)))
                         for s in alive}
            numbers: dict[Any, int] = {}
            refined = {s: numbers.setdefault(signature[s], len(numbers)) for s in sorted(alive)}
            if len(numbers) == count:
                break
            block, count = refined, len(numbers)
        ids: dict[int, int] = {refined[self.start]: 0}
        queue = [self.start]
        representative = {refined[self.start]: self.start}
        while queue:  # number the blocks in breadth-first order from the start
            state = queue.pop(0)
            for _word, target in sorted(self.arcs[state].items()):
                if target in alive and refined[target] not in ids:
                    ids[refined[target]] = len(ids)
                    representative[refined[target]] = target
                    queue.append(target)
        arcs: list[dict[str, int]] = [{} for _ in ids]
        final = set()
        for number, new in ids.items():
            state = representative[number]
            arcs[new] = {w: ids[refined[t]] for w, t in self.arcs[state].items() if t in alive}
            if state in self.final:
                final.add(new)
        return WordAutomaton(arcs, final, 0)

    def _coaccessible(self) -> set[int]:
        reverse: dict[int, set[int]] = {}
        for source, row in enumerate(self.arcs):
            for target in row.values():
                reverse.setdefault(target, set()).add(source)
        alive = set(self.final)
        stack = list(alive)
        while stack:
            for source in reverse.get(stack.pop(), ()):
                if source not in alive:
                    alive.add(source)
                    stack.append(source)
        return alive

    def without(self, words: Iterable[str]) -> WordAutomaton:
        """The automaton without the sentences that use any of ``words`` (minimal again).

        Raises:
            GrammarError: no sentence is left
        """
        banned = set(words)
        arcs = [{w: t for w, t in row.items() if w not in banned} for row in self.arcs]
        return WordAutomaton(arcs, set(self.final), self.start).minimized()

    # -- use --------------------------------------------------------------------------------

    @property
    def words(self) -> set[str]:
        """Every word the automaton uses."""
        return {w for row in self.arcs for w in row}

    @property
    def n_arcs(self) -> int:
        return sum(len(row) for row in self.arcs)

    def accepts(self, words: Sequence[str]) -> bool:
        """Whether the words are a whole sentence of the grammar."""
        state: int | None = self.start
        for word in words:
            state = self.arcs[state].get(word) if state is not None else None
        return state is not None and state in self.final

    def can_continue(self, words: Sequence[str]) -> bool:
        """Whether more words may follow ``words`` in some sentence (``False`` also when they lead nowhere)."""
        state: int | None = self.start
        for word in words:
            state = self.arcs[state].get(word) if state is not None else None
        return state is not None and bool(self.arcs[state])

    def longest_sentence_prefix(self, words: Sequence[str]) -> int:
        """How many of the leading words form a whole sentence (0 if none does)."""
        best, state = (0 if self.start in self.final else -1), self.start
        for i, word in enumerate(words):
            following = self.arcs[state].get(word)
            if following is None:
                break
            state = following
            if state in self.final:
                best = i + 1
        return max(best, 0)

    def transitions(self) -> list[tuple[int, int, float, str] | tuple[int, int, float]]:
        """The automaton as FSG transitions ``(from, to, probability[, word])``; the last state is the final one.

        Each state shares its probability equally among its words and, where a
        sentence may end, the empty transition to the final state.
        """
        final_state = len(self.arcs)
        found: list[tuple[int, int, float, str] | tuple[int, int, float]] = []
        for state, row in enumerate(self.arcs):
            exits = len(row) + (1 if state in self.final else 0)
            for word, target in sorted(row.items()):
                found.append((state, target, 1.0 / exits, word))
            if state in self.final:
                found.append((state, final_state, 1.0 / exits))
        return found

    def to_pocketsphinx(self, decoder: Any, name: str) -> Any:
        """A ``pocketsphinx.FsgModel`` of this automaton, for ``decoder.add_fsg(name, fsg)``."""
        return decoder.create_fsg(name, start_state=self.start, final_state=len(self.arcs),
                                  transitions=self.transitions())


__all__ = ["GrammarError", "WordAutomaton", "parse_jsgf"]
