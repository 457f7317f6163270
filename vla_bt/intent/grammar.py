"""The command language of the embedded planner: phrase templates as data, a parser, and a JSGF export.

The grammar is generated from two sources:

- the registered skills (tool specs): each built-in phrasing family is offered
  only when the tools it calls are registered, and plugins' tools bring their
  own phrasings (``PHRASES`` on the leaf class, see :func:`phrases_from_registry`);
- the world's vocabulary: place names, object labels, colours, object ids and
  human ids (:class:`Vocabulary`).

Phrase templates are written in a small subset of JSGF, so the same data
drives the text parser and the speech recogniser's grammar (:func:`to_jsgf`);
one parser reads both (:mod:`vla_bt.intent.phrasing`)::

    (go | drive | move) [back | over] (to | towards) {target}

- ``word``: a literal word (lower case);
- ``( a | b c )``: one of the alternatives;
- ``[ a | b ]``: optional;
- ``{name}``: a slot, typed from the tool's JSON Schema (integer, number,
  string from an ``enum``, free text) or by name (``object``, ``place``,
  ``target``, ``to``/``person``/``human``); ``{name:kind}`` gives the kind
  explicitly (``place``, ``object``, ``target``, ``human``, ``text``,
  ``integer``, ``number``, ``enum``).

Parsing is case- and punctuation-insensitive. Filler words ("please", "could
you", "robot,", "now") are ignored; speed words ("slowly", "quickly") are
collected as modifiers; a sequence ("… and then …", "…, …", "after that")
gives one clause per part. Words that are neither in the grammar nor in the
world are corrected to a known word only when the typo is small (same first
letter, one edit in a word of five to seven letters, two from eight on), so
"kitchn" is the kitchen but "garage" never becomes anything else.

Example:
    >>> grammar = Grammar(load_world("config/world.yaml"), tool_specs(Registry.default()))
    >>> [c.family for c in grammar.parse("Robot, go to the kitchn and then pick up the red cup").clauses]
    ['navigate', 'pick']
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

from vla_bt.intent.phrasing import Alt, Node, Opt, PhrasingError, Seq, SlotRef, Syntax, Word, parse_phrasing, walk
from vla_bt.llm.backend import ToolSpec
from vla_bt.robot.world import World

if TYPE_CHECKING:
    from vla_bt.tree.registry import Registry

log = logging.getLogger(__name__)

PhraseDecl = str | tuple[str, Mapping[str, Any]]
"""One declared phrasing: a template, or ``(template, fixed arguments)`` such as ``("wave twice", {"times": 2})``."""

KINDS = ("place", "object", "target", "human", "text", "integer", "number", "enum")
"""Slot kinds. ``target`` is a place, a person or an object; ``human`` a human id or the user ("me")."""

# -- words with a fixed role ------------------------------------------------------------

FILLERS: tuple[str, ...] = (
    "could you please", "would you please", "can you please", "would you mind", "could you", "can you",
    "would you", "will you", "i want you to", "i need you to", "i'd like you to", "i would like you to",
    "go ahead", "please", "kindly", "robot", "hey", "hi", "ok", "okay", "now", "just", "also", "right away",
    "um", "uh", "er", "well", "so",
)
"""Words and phrases ignored wherever they stand (unless the world uses them as names)."""

LEADING: tuple[str, ...] = ("first", "next", "finally", "and", "then", "after that")
"""Words ignored at the start of a clause ("first go to the kitchen")."""

SEPARATORS: tuple[str, ...] = (
    "and after that", "and afterwards", "and then", "after that", "afterwards", "and finally", "and also",
    "then", "and",
)
"""Words that separate the clauses of a sequence (besides , ; . ! ?)."""

MODIFIERS: Mapping[str, str] = {
    "slowly": "slow", "slow": "slow", "quickly": "fast", "quick": "fast", "fast": "fast", "rapidly": "fast",
    "at full speed": "fast", "full speed": "fast",
}
"""Speed words, collected from a clause as ``slow`` or ``fast``."""

DETERMINERS = ("the", "a", "an", "my", "your", "our", "some", "any", "that", "this", "another")
INDEFINITE = ("a", "an", "some", "any", "another")
PRONOUNS = (("it",), ("that",), ("this",), ("them",), ("that", "one"), ("this", "one"))
ORDINALS: Mapping[str, int] = {"first": 0, "second": 1, "third": 2, "fourth": 3, "fifth": 4, "last": -1}
NEGATIONS = (("don't",), ("do", "not"), ("never",))
STOP_WORDS = frozenset({"stop", "halt", "freeze", "abort"})
ME = ("me", "us", "user", "myself")
NUMBER_WORDS: Mapping[str, int] = {
    w: i for i, w in enumerate(("zero one two three four five six seven eight nine ten eleven twelve thirteen "
                                "fourteen fifteen sixteen seventeen eighteen nineteen twenty").split())
} | {"once": 1, "twice": 2, "thrice": 3}
MARKS = frozenset(",;.!?")
COMMON_WORDS = (
    "hello hi goodbye bye good morning evening night welcome thank thanks you yes no dinner lunch breakfast "
    "is are am was ready coming here there time i we they he she it this that a an the to of for and or "
    "with in on at be my your our please sorry wait minute"
).split()
"""Everyday words the speech grammar accepts in free text (``say …``), besides the grammar's own."""


@dataclass(frozen=True)
class Family:
    """A built-in phrasing family: templates whose meaning the planner expands into tool calls.

    Args:
        name: the family (``navigate``, ``fetch`` …)
        tools: the tools its plans call; the family is offered only when all are registered
        summary: what it does, for the planner's "I can …" answers ("" to leave it out)
        templates: phrase templates; an entry ``(template, {slot: marker})`` fixes a slot
            the words leave implicit (``put it down`` → ``target: @current``)
    """

    name: str
    tools: tuple[str, ...]
    summary: str
    templates: tuple[PhraseDecl, ...]


_PUT = "(put | place | set | drop | leave | lay | store)"
_ON = "(on | onto | in | into | at | inside | on top of | next to | by | near)"

FAMILIES: tuple[Family, ...] = (
    Family("stop", ("stop",), "stop", (
        "(stop | halt | freeze | abort) [moving | everything | it | that | right there | right now | immediately"
        " | at once]",
        "emergency stop",
        "(stand | stay | hold | keep) still",
        "(don't | do not) move",
    )),
    Family("come", ("navigate",), "", (
        "come [over | back | along] [here | over here | back here | to me | back to me | with me]",
    )),
    Family("go_back", ("navigate",), "", (
        "(go | drive | move | head | get) back",
        "return",
        "(go | get | head) back to where you (were | came from)",
        "return to where you (were | came from)",
    )),
    Family("navigate", ("navigate",), "go to a place", (
        "(go | drive | move | head | navigate | walk | travel | roll | come | get) [back | over | on | down | up"
        " | along] (to | towards | toward | into | in | inside) {target}",
        "(go | head | navigate | drive | move) [back | over] {target}",
        "(return | get back) to {target}",
        "(visit | approach) {target}",
    )),
    Family("fetch", ("navigate", "grasp", "hand_over"), "bring you something", (
        "(bring | fetch | get | grab) (me | us) {object} [here | over here | over]",
        "(bring | fetch) {object} [here | over here | over | back | along]",
        "(bring | fetch | get | grab) {object} (for me | to me | back to me | for us | to us)",
        "go (get | fetch | grab | bring) [me | us] {object}",
    )),
    Family("deliver", ("navigate", "grasp", "place", "hand_over"), "", (
        "(bring | take | carry | move | get) {object} [over | back] (to | into | onto | towards | in | on) {target}",
    )),
    Family("pick", ("navigate", "grasp"), "pick something up", (
        "(pick up | grab | take | grasp | get | lift | pick | collect) {object} [up]",
    )),
    Family("put", ("navigate", "grasp", "place"), "put something down", (
        f"{_PUT} [down | back] {{object}} [down | back] {_ON} {{target}}",
        (f"{_PUT} {{object}} [down | back] there", {"target": "@there"}),
        (f"{_PUT} {{object}} [down | back] here", {"target": "@user"}),
        ("(put | set | lay | place) {object} down", {"target": "@current"}),
        ("(put | set | lay | place) down {object}", {"target": "@current"}),
        ("(drop | release | let go of) {object}", {"target": "@current"}),
    )),
    Family("give", ("navigate", "grasp", "hand_over"), "hand something over", (
        "(give | hand | pass) [over] {object} [over] to {recipient:human}",
        "(give | hand | pass) {recipient:human} {object}",
        ("(give | hand | pass) {object} over", {"recipient": "@user"}),
    )),
    Family("tell", ("say",), "", (
        "tell {person:human} [that] {text}",
    )),
    Family("say", ("say",), "say something", (
        "say {text}",
        "announce {text}",
    )),
)
"""The built-in phrasing families, in priority order (the first wins a tie)."""

BUILTIN_TOOLS = ("navigate", "grasp", "place", "hand_over", "say", "stop", "ask")
BUILTIN_KINDS: Mapping[tuple[str, str], str] = {
    ("navigate", "target"): "target", ("grasp", "object"): "object", ("place", "target"): "target",
    ("hand_over", "to"): "human", ("say", "text"): "text", ("ask", "question"): "text",
}
NAME_KINDS: Mapping[str, str] = {
    "object": "object", "place": "place", "target": "target", "to": "human", "person": "human", "human": "human",
    "text": "text",
}


class TemplateError(ValueError):
    """A phrase template is malformed or does not fit its tool."""


# -- templates ---------------------------------------------------------------------------

def parse_template(template: str) -> Alt:
    """Parse a phrase template into its syntax tree (words lower case, ``living_room`` split).

    Args:
        template: the template, such as ``(go | drive) to {target}``

    Returns:
        the alternatives of the whole template

    Raises:
        TemplateError: an empty template, unbalanced brackets, an empty alternative, a malformed slot
    """
    try:
        return parse_phrasing(template, _TEMPLATE_SYNTAX)
    except PhrasingError as exc:
        raise TemplateError(f"template '{template}': {exc}") from exc


def template_slots(node: Node) -> list[SlotRef]:
    """The slots of a template, in order."""
    return [n for n in walk(node) if isinstance(n, SlotRef)]


def template_words(node: Node) -> set[str]:
    """The literal words of a template."""
    return {n.text for n in walk(node) if isinstance(n, Word)}


_SINGLE_TOKEN = {"human": r"(?:the )?\S+ ", "integer": r"\S+ ", "number": r"\S+ "}
_WORDS = r"(?:\S+ )+?"


def _regex(node: Node, kinds: Mapping[str, str], groups: dict[str, str]) -> str:
    if isinstance(node, Word):
        return re.escape(node.text) + " "
    if isinstance(node, SlotRef):
        group = f"s{len(groups)}"
        groups[group] = node.name
        return f"(?P<{group}>{_SINGLE_TOKEN.get(kinds[node.name], _WORDS)})"
    if isinstance(node, Seq):
        return "".join(_regex(item, kinds, groups) for item in node.items)
    if isinstance(node, Alt):
        return "(?:" + "|".join(_regex(option, kinds, groups) for option in node.options) + ")"
    assert isinstance(node, Opt)
    return "(?:" + _regex(node.body, kinds, groups) + ")?"


def _jsgf(node: Node, rules: Mapping[str, str], top: bool = False) -> str:
    if isinstance(node, Word):
        return node.text
    if isinstance(node, SlotRef):
        return f"<{rules[node.name]}>"
    if isinstance(node, Seq):
        return " ".join(_jsgf(item, rules) for item in node.items)
    if isinstance(node, Alt):
        body = " | ".join(_jsgf(option, rules) for option in node.options)
        return body if top or len(node.options) == 1 else f"( {body} )"
    assert isinstance(node, Opt)
    return f"[ {_jsgf(node.body, rules, top=True)} ]"


# -- phrases and slots ------------------------------------------------------------------

@dataclass(frozen=True)
class Slot:
    """A typed slot of a phrase.

    Args:
        name: the slot (for a tool's phrase: the argument it fills)
        kind: one of :data:`KINDS`
        values: the allowed values of an ``enum`` slot
        minimum: the smallest allowed number (``integer``, ``number``)
        maximum: the largest allowed number
    """

    name: str
    kind: str
    values: tuple[Any, ...] = ()
    minimum: float | None = None
    maximum: float | None = None


@dataclass(frozen=True)
class Phrase:
    """One compiled phrase template.

    Args:
        family: a built-in family name, or the tool's name for a tool's own phrasing
        template: the template as written
        tool: the tool the phrase calls directly (``None`` for built-in families, which the planner expands)
        slots: the typed slots by name
        fixed: values the words leave implicit: markers such as ``@current`` for built-in
            families, argument values for a tool's phrasing
        node: the template's syntax tree
    """

    family: str
    template: str
    tool: str | None
    slots: Mapping[str, Slot]
    fixed: Mapping[str, Any]
    node: Alt
    pattern: re.Pattern[str] = field(compare=False, repr=False)
    groups: Mapping[str, str] = field(compare=False, repr=False)

    @classmethod
    def compile(cls, family: str, template: str, slots: Mapping[str, Slot], tool: str | None = None,
                fixed: Mapping[str, Any] | None = None) -> Phrase:
        node = parse_template(template)
        refs = template_slots(node)
        names = [r.name for r in refs]
        if len(set(names)) < len(names):
            raise TemplateError(f"template '{template}': a slot appears twice")
        kinds = {name: slots[name].kind for name in names}
        groups: dict[str, str] = {}
        pattern = re.compile(_regex(node, kinds, groups))
        return cls(family, template, tool, {n: slots[n] for n in names}, dict(fixed or {}), node, pattern, groups)


@dataclass(frozen=True)
class Token:
    """A word (or a punctuation mark) of an utterance.

    Args:
        word: normalised: lower case, straight apostrophe, small typos corrected
        raw: as written
        start: where it starts in the utterance
        end: where it ends
    """

    word: str
    raw: str
    start: int
    end: int

    @property
    def mark(self) -> bool:
        return self.word in MARKS


@dataclass(frozen=True)
class SlotValue:
    """What filled a slot.

    Args:
        words: the normalised words (markers such as ``@current`` for implicit values)
        text: the words as written (free text keeps its case and punctuation)
        start: where the text starts in the utterance
        end: where it ends
    """

    words: tuple[str, ...]
    text: str = ""
    start: int = 0
    end: int = 0

    @property
    def marker(self) -> str | None:
        return self.words[0] if len(self.words) == 1 and self.words[0].startswith("@") else None


@dataclass(frozen=True)
class Clause:
    """One matched command of an utterance.

    Args:
        phrase: the phrase it matched
        slots: the slot values, by slot name (implicit ones included)
        modifiers: ``slow`` and/or ``fast``
        negated: it was said with "don't" ("don't go to the kitchen")
        text: the clause as written
        start: where the clause starts in the utterance
        end: where it ends
    """

    phrase: Phrase
    slots: Mapping[str, SlotValue]
    modifiers: frozenset[str] = frozenset()
    negated: bool = False
    text: str = ""
    start: int = 0
    end: int = 0
    prefix: tuple[Token, ...] = field(default=(), compare=False, repr=False)
    open_text: str | None = field(default=None, compare=False, repr=False)

    @property
    def family(self) -> str:
        return self.phrase.family


@dataclass(frozen=True)
class Parse:
    """The clauses of an utterance, in order.

    Args:
        utterance: as heard
        clauses: the commands understood, in order
        failed: the first part that matched no phrase, as written (``None`` if all matched)
        stop_heard: a stop word was heard somewhere (the planner stops rather than asks)
    """

    utterance: str
    clauses: tuple[Clause, ...] = ()
    failed: str | None = None
    stop_heard: bool = False

    @property
    def ok(self) -> bool:
        return self.failed is None and bool(self.clauses)


# -- the world's vocabulary -------------------------------------------------------------

def _words(name: str) -> tuple[str, ...]:
    """The spoken words of a name: ``living_room`` → ``("living", "room")``."""
    return tuple(w for w in re.split(r"[\s_\-]+", name.strip().lower().replace("’", "'")) if w)


def spoken(name: str) -> str:
    """How a name is said: ``living_room`` → ``living room``."""
    return " ".join(_words(name))


_TEMPLATE_SYNTAX = Syntax(slot_kinds=KINDS, words=_words)
"""Phrase templates: words, brackets and slots; a word token is split and lower-cased as a name is."""


@dataclass(frozen=True)
class ObjectRef:
    """An object reference as said, read against the world's vocabulary (not yet resolved).

    Args:
        words: the words, as heard (normalised)
        pronoun: "it", "that", "this"
        other: "the other one", "the other cup", "another cup"
        one: "the red one": the label comes from the dialogue
        indefinite: "a cup", "any cup": any one of them will do
        object_id: an object id said or typed ("cup_red")
        color: a colour of the world
        label: a label of the world
        place: a place qualifier ("the cup in the kitchen")
        ordinal: "the first one" (0-based; -1 for "the last one")
        unknown: words that are not in the vocabulary
    """

    words: tuple[str, ...]
    pronoun: bool = False
    other: bool = False
    one: bool = False
    indefinite: bool = False
    object_id: str | None = None
    color: str | None = None
    label: str | None = None
    place: str | None = None
    ordinal: int | None = None
    unknown: tuple[str, ...] = ()

    @property
    def understood(self) -> bool:
        """Whether the words make a reference (no unknown word, something to go by)."""
        return not self.unknown and (self.pronoun or self.other or self.one or self.object_id is not None
                                     or self.label is not None or self.color is not None
                                     or self.ordinal is not None)

    @property
    def noun(self) -> str:
        """The description said, without determiners: "red cup"."""
        return " ".join(spoken(w) for w in (self.color, self.label) if w)


class Vocabulary:
    """The world's words: places, object labels, colours, object ids, human ids.

    Args:
        world: the world file
    """

    def __init__(self, world: World):
        self.world = world
        self.places: dict[str, tuple[str, ...]] = {name: _words(name) for name in world.places}
        self._places = {words: name for name, words in self.places.items()}
        self._places.update({(name.lower(),): name for name in world.places})
        self.labels: dict[str, tuple[str, ...]] = {label: _words(label) for label in world.labels()}
        self._labels = {words: label for label, words in self.labels.items()}
        self.colors: dict[str, tuple[str, ...]] = {color: _words(color) for color in world.colors()}
        self._colors = {words: color for color, words in self.colors.items()}
        for a, b in (("grey", "gray"), ("gray", "grey")):
            if a in self.colors and (b,) not in self._colors:
                self._colors[(b,)] = a
        self.ids: dict[str, str] = {o.id.lower(): o.id for o in world.objects}
        self.humans: dict[str, str] = {h.id.lower(): h.id for h in world.humans}

    def words(self) -> set[str]:
        """Every word of the vocabulary (for typo correction and the speech grammar)."""
        found = {w for group in (self.places, self.labels, self.colors) for words in group.values() for w in words}
        return found | set(self.humans) | set(self.ids) | {w for words in self._colors for w in words}

    def place(self, words: Sequence[str]) -> str | None:
        """The place named by the words ("the living room", "kitchen", "living_room"), if any."""
        words = tuple(words)
        while words and words[0] in ("the", "a", "an", "my", "our", "your"):
            words = words[1:]
        return self._places.get(words) or self._places.get(("_".join(words),))

    def human(self, words: Sequence[str]) -> str | None:
        """The human id named ("alice"), ``"user"`` for the speaker ("me"), or ``None``."""
        words = tuple(w for w in words if w != "the")
        if len(words) != 1:
            return None
        if words[0] in self.humans:
            return self.humans[words[0]]
        return "user" if words[0] in ME else None

    def _label(self, words: Sequence[str]) -> tuple[str | None, int]:
        """The longest label at the end of the words (plurals allowed) and how many words it takes."""
        for size in range(len(words), 0, -1):
            tail = tuple(words[-size:])
            for candidate in (tail, (*tail[:-1], _singular(tail[-1]))):
                if candidate in self._labels:
                    return self._labels[candidate], size
        return None, 0

    def _colors_of(self, words: Sequence[str]) -> tuple[str | None, tuple[str, ...]]:
        color, unknown, i = None, [], 0
        words = list(words)
        while i < len(words):
            pair, single = tuple(words[i:i + 2]), (words[i],)
            if len(pair) == 2 and pair in self._colors:
                color, i = self._colors[pair], i + 2
            elif single in self._colors:
                color, i = self._colors[single], i + 1
            else:
                unknown.append(words[i])
                i += 1
        return color, tuple(unknown)

    def object_ref(self, words: Sequence[str]) -> ObjectRef:
        """Read an object reference: "the red cup", "it", "the other one", "a cup in the kitchen", "cup_red"."""
        heard = tuple(words)
        rest = list(heard)
        if tuple(rest) in PRONOUNS:
            return ObjectRef(heard, pronoun=True)
        indefinite = other = False
        while len(rest) > 1 and rest[0] in DETERMINERS:
            indefinite |= rest[0] in INDEFINITE
            other |= rest[0] == "another"
            rest.pop(0)
        if rest and rest[0] in DETERMINERS and rest[0] not in ("that", "this"):
            rest.pop(0)
        if rest and rest[0] == "other":
            other = True
            rest.pop(0)
        if len(rest) == 1 and rest[0] in self.ids:
            return ObjectRef(heard, object_id=self.ids[rest[0]])
        if rest and "_".join(rest) in self.ids:
            return ObjectRef(heard, object_id=self.ids["_".join(rest)])
        place = None
        for i, word in enumerate(rest):
            if i and word in ("in", "at", "from", "on", "near", "by", "inside") and self.place(rest[i + 1:]):
                place = self.place(rest[i + 1:])
                rest = rest[:i]
                break
        ordinal = None
        if rest and rest[0] in ORDINALS:
            ordinal = ORDINALS[rest.pop(0)]
        one = bool(rest) and rest[-1] in ("one", "ones")
        label = None
        if one:
            rest.pop()
        else:
            label, size = self._label(rest)
            rest = rest[:len(rest) - size]
        color, unknown = self._colors_of(rest)
        if other and not (one or label or color):
            one = True  # "the other"
        return ObjectRef(heard, other=other, one=one, indefinite=indefinite, color=color, label=label,
                         place=place, ordinal=ordinal, unknown=unknown)


def _singular(word: str) -> str:
    if len(word) > 3 and word.endswith("es") and word[-3] in "sxz":
        return word[:-2]
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


# -- the grammar ------------------------------------------------------------------------

_TOKEN = re.compile(r"\d+(?:\.\d+)?|[^\W_][\w'’]*|_[\w'’]*|[,;.!?]")


def _normal(raw: str) -> str:
    word = raw.lower().replace("’", "'").strip("'")
    return "don't" if word == "dont" else word


def _phrases_of(tool: ToolSpec) -> Any:
    return getattr(tool, "phrases", None)


def _entries(declared: Any) -> list[PhraseDecl]:
    if isinstance(declared, str) or (isinstance(declared, tuple) and len(declared) == 2
                                     and isinstance(declared[0], str) and isinstance(declared[1], Mapping)):
        return [declared]
    return list(declared or ())


def phrases_from_registry(registry: Registry) -> dict[str, list[PhraseDecl]]:
    """The phrasings declared by the registered skills' classes, by tool name.

    A leaf class declares them as ``PHRASES``: either a mapping from tool name to
    phrasings (``{"wave": ["wave", "wave {times} times"]}``) or a plain list of
    phrasings of its own tool (``TOOL``)::

        class Wave(Leaf):
            TOOL = "wave"
            PHRASES = {"wave": ["wave [at me]", "wave {times} times", ("wave twice", {"times": 2})]}

    Args:
        registry: the node registry

    Returns:
        tool name → phrasings, ready for ``Grammar(..., phrases=...)``
    """
    found: dict[str, list[PhraseDecl]] = {}
    for spec in registry.skills():
        declared = getattr(spec.cls, "PHRASES", None)
        if not declared:
            continue
        if isinstance(declared, Mapping):
            for tool, entries in declared.items():
                found.setdefault(str(tool), []).extend(_entries(entries))
        else:
            found.setdefault(spec.tool or spec.name, []).extend(_entries(declared))
    return found


def _schema_types(schema: Mapping[str, Any]) -> set[str]:
    types = schema.get("type")
    found = set(types) if isinstance(types, list) else {types} if isinstance(types, str) else set()
    for option in schema.get("anyOf", ()) or schema.get("oneOf", ()):
        found |= _schema_types(option)
    if "enum" in schema:
        found.add("enum")
    return found - {"null"}


def tool_slot(tool: ToolSpec, name: str, kind: str | None = None) -> Slot:
    """A slot typed from the tool's JSON Schema (or from ``kind`` when the template gives one).

    Raises:
        TemplateError: the tool has no such parameter, or its type cannot be said
    """
    properties = tool.parameters.get("properties", {}) or {}
    schema = properties.get(name)
    if schema is None:
        known = ", ".join(properties) or "none"
        raise TemplateError(f"{{{name}}} is not a parameter of '{tool.name}' (its parameters: {known})")
    types = _schema_types(schema)
    kind = kind or BUILTIN_KINDS.get((tool.name, name))
    if kind is None and "string" in types and "enum" not in types:
        kind = NAME_KINDS.get(name, "text")
    if kind is None and "enum" in types:
        kind = "enum"
    if kind is None and "integer" in types:
        kind = "integer"
    if kind is None and "number" in types:
        kind = "number"
    if kind is None:
        raise TemplateError(f"parameter '{name}' of '{tool.name}' has a type a phrase cannot fill "
                            f"({', '.join(sorted(types)) or 'none'}); give its value as a fixed argument")
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    return Slot(name, kind, tuple(schema.get("enum", ())), low, high)


class Grammar:
    """The command grammar: phrases from the registered skills, words from the world.

    Args:
        world: the world (places, objects, humans); an empty world when ``None``
        tools: the tools on offer (``vla_bt.llm.tools.tool_specs``); a built-in family
            is offered only when the tools it calls are here
        phrases: extra phrasings by tool name (see :func:`phrases_from_registry`); a tool
            spec's own ``phrases`` attribute, if it has one, is read as well

    A tool with neither a built-in family nor declared phrasings is offered by its
    name when it needs no argument (a ``nod`` tool is said "nod"). Phrasings that
    do not fit their tool are left out and listed in ``problems`` (and logged).
    """

    def __init__(self, world: World | None = None, tools: Sequence[ToolSpec] = (),
                 phrases: Mapping[str, Iterable[PhraseDecl]] | None = None):
        self.world = world or World()
        self.tools: dict[str, ToolSpec] = {t.name: t for t in tools}
        self.vocabulary = Vocabulary(self.world)
        self.problems: list[str] = []
        self.families = [f for f in FAMILIES if all(t in self.tools for t in f.tools)]
        self.phrases: list[Phrase] = []
        for family in self.families:
            for entry in family.templates:
                template, fixed = (entry, {}) if isinstance(entry, str) else entry
                node = parse_template(template)
                slots = {r.name: Slot(r.name, r.kind or NAME_KINDS.get(r.name, "text")) for r in template_slots(node)}
                self.phrases.append(Phrase.compile(family.name, template, slots, None, fixed))
        declared: dict[str, list[PhraseDecl]] = {}
        for tool in tools:
            declared.setdefault(tool.name, []).extend(_entries(_phrases_of(tool)))
        for name, entries in (phrases or {}).items():
            declared.setdefault(name, []).extend(_entries(entries))
        for name, tool in self.tools.items():
            entries = declared.get(name, [])
            if not entries and name not in BUILTIN_TOOLS and not tool.parameters.get("required"):
                entries = [spoken(name)]
            for entry in entries:
                self._add_tool_phrase(tool, entry)
        for name in sorted(set(declared) - set(self.tools)):
            if declared[name]:
                self._problem(f"phrasings for '{name}', which is not a registered skill")
        self._fillers = self._without_vocabulary([_words(f) for f in FILLERS])
        speed_words = set(self._without_vocabulary([_words(w) for w in MODIFIERS]))
        self._modifiers = {_words(w): m for w, m in MODIFIERS.items() if _words(w) in speed_words}
        self._separators = [_words(s) for s in SEPARATORS]
        self._leading = [_words(s) for s in LEADING]
        self._lexicon = self._build_lexicon()

    # -- construction -------------------------------------------------------------------

    def _problem(self, message: str) -> None:
        self.problems.append(message)
        log.warning("local planner grammar: %s", message)

    def _add_tool_phrase(self, tool: ToolSpec, entry: PhraseDecl) -> None:
        template, fixed = (entry, {}) if isinstance(entry, str) else (entry[0], dict(entry[1]))
        try:
            node = parse_template(template)
            slots = {r.name: tool_slot(tool, r.name, r.kind) for r in template_slots(node)}
            properties = tool.parameters.get("properties", {}) or {}
            unknown = sorted(set(fixed) - set(properties))
            if unknown:
                raise TemplateError(f"fixed argument {', '.join(unknown)} is not a parameter of '{tool.name}'")
            missing = sorted(set(tool.parameters.get("required", ())) - set(slots) - set(fixed))
            if missing:
                raise TemplateError(f"it leaves the required argument {', '.join(missing)} unset")
            self.phrases.append(Phrase.compile(tool.name, template, slots, tool.name, fixed))
        except TemplateError as exc:
            self._problem(f"phrase '{template}' of tool '{tool.name}' left out: {exc}")

    def _without_vocabulary(self, phrases: Iterable[tuple[str, ...]]) -> list[tuple[str, ...]]:
        """Filler phrases the world does not use as names: "robot" is no filler in a world with a robot toy."""
        vocabulary = self.vocabulary
        names = {words for group in (vocabulary.places, vocabulary.labels, vocabulary.colors)
                 for words in group.values()}
        single = vocabulary.words()
        return [p for p in phrases if p not in names and not (len(p) == 1 and p[0] in single)]

    def _build_lexicon(self) -> set[str]:
        words = {w for p in self.phrases for w in template_words(p.node)}
        words |= self.vocabulary.words()
        words |= {w for p in (*self._fillers, *self._separators, *self._modifiers, *self._leading) for w in p}
        words |= set(DETERMINERS) | set(ORDINALS) | set(NUMBER_WORDS) | set(ME) | STOP_WORDS
        words |= {"it", "them", "one", "ones", "other", "here", "there", "never", "mind", "cancel", "nothing",
                  "yes", "no", "thanks", "thank", "you", "help", "what", "can", "do", "not", "don't", "in", "at",
                  "from", "on", "near", "by", "inside"}
        for phrase in self.phrases:
            for slot in phrase.slots.values():
                words |= {w for v in slot.values for w in _words(str(v))}
        self._initials: dict[str, list[str]] = {}
        for word in words:
            if word.isalpha():
                self._initials.setdefault(word[0], []).append(word)
        for bucket in self._initials.values():
            bucket.sort()
        self._joined = {"".join(ws): ws for group in (self.vocabulary.places, self.vocabulary.labels)
                        for ws in group.values() if len(ws) > 1}
        return words

    # -- words ----------------------------------------------------------------------------

    def correct(self, word: str) -> tuple[str, ...]:
        """The known word(s) meant by ``word``: itself if known or not close to exactly one known word.

        Tolerates small typos of speech recognition and typing ("kitchn" → kitchen,
        "livingroom" → living room); never guesses across clearly different words.
        """
        if word in self._lexicon or not word.isalpha():
            return (word,)
        if word in self._joined:
            return self._joined[word]
        if len(word) < 5:
            return (word,)
        limit = 1 if len(word) < 8 else 2
        found = process.extract(word, self._initials.get(word[0], ()), scorer=Levenshtein.distance,
                                score_cutoff=limit, limit=2)
        if found and (len(found) == 1 or found[0][1] < found[1][1]):
            return (found[0][0],)
        return (word,)

    def tokens(self, utterance: str) -> list[Token]:
        """The utterance's words and punctuation marks, normalised and corrected."""
        tokens = []
        for match in _TOKEN.finditer(utterance):
            raw = match.group(0)
            word = _normal(raw)
            if not word:
                continue
            for corrected in self.correct(word):
                tokens.append(Token(corrected, raw, match.start(), match.end()))
        return tokens

    def words(self, utterance: str) -> tuple[str, ...]:
        """The utterance's normalised words without fillers and punctuation ("Please, the red one!" → the red one)."""
        tokens = [t for t in self.tokens(utterance) if not t.mark]
        return tuple(t.word for t in self._strip(tokens, leading=False)[0])

    def _phrase_at(self, tokens: Sequence[Token], i: int, phrases: Iterable[tuple[str, ...]]) -> int:
        best = 0
        for phrase in phrases:
            n = len(phrase)
            if n > best and tuple(t.word for t in tokens[i:i + n]) == phrase:
                best = n
        return best

    def _strip(self, tokens: Sequence[Token], leading: bool = True) -> tuple[list[Token], frozenset[str]]:
        """Tokens without fillers and speed words (and leading words: "first …"), and the speed modifiers found."""
        kept: list[Token] = []
        modifiers: set[str] = set()
        i = 0
        while leading and i < len(tokens) and (n := self._phrase_at(tokens, i, self._leading)):
            i += n
        while i < len(tokens):
            n = self._phrase_at(tokens, i, self._modifiers)
            if n:
                modifiers.add(self._modifiers[tuple(t.word for t in tokens[i:i + n])])
                i += n
                continue
            n = self._phrase_at(tokens, i, self._fillers)
            if n:
                i += n
                continue
            kept.append(tokens[i])
            i += 1
        return kept, frozenset(modifiers)

    def _segments(self, tokens: Sequence[Token]) -> list[list[Token]]:
        segments: list[list[Token]] = [[]]
        i = 0
        while i < len(tokens):
            n = 1 if tokens[i].mark else self._phrase_at(tokens, i, self._separators)
            if n:
                if segments[-1]:
                    segments.append([])
                i += n
                continue
            segments[-1].append(tokens[i])
            i += 1
        return [s for s in segments if s]

    # -- matching -------------------------------------------------------------------------

    def parse(self, utterance: str) -> Parse:
        """Parse an utterance into clauses.

        Returns:
            the clauses understood, and the first part not understood (if any)
        """
        tokens = self.tokens(utterance)
        stop_heard = any(t.word in STOP_WORDS for t in tokens)
        clauses: list[Clause] = []
        segments = self._segments(tokens)
        carry: list[Token] = []
        for index, segment in enumerate(segments):
            segment, carry = [*carry, *segment], []
            clause = self._match_segment(segment, utterance)
            if clause is not None:
                clauses.append(clause)
                continue
            if clauses and clauses[-1].open_text:
                clauses[-1] = self._extend_text(clauses[-1], segment, utterance)
                continue
            core, _ = self._strip(segment)
            if not core:
                continue  # nothing but filler words ("robot,", "ok,")
            if index + 1 < len(segments) and [t.word for t in core] == ["go"]:
                carry = core  # "go and get the cup" is "go get the cup"
                continue
            if clauses and clauses[-1].prefix and self._looks_like_reference(core):
                elided = self._best([*clauses[-1].prefix, *core], utterance, segment)
                if elided is not None and elided.family == clauses[-1].family:
                    clauses.append(elided)
                    continue
            return Parse(utterance, tuple(clauses), failed=utterance[segment[0].start:segment[-1].end],
                         stop_heard=stop_heard)
        return Parse(utterance, tuple(clauses), stop_heard=stop_heard)

    def _looks_like_reference(self, tokens: Sequence[Token]) -> bool:
        """ "the blue cup", "kitchen", "alice": what may stand alone after "pick up the red cup and"."""
        words = [t.word for t in tokens]
        vocabulary = self.vocabulary
        return words[0] in DETERMINERS or vocabulary.place(words) is not None \
            or vocabulary.human(words) is not None or vocabulary.object_ref(words).understood

    def _match_segment(self, segment: list[Token], utterance: str) -> Clause | None:
        core, modifiers = self._strip(segment)
        if not core:
            return None
        clause = self._best(core, utterance, segment)
        if clause is not None:
            return replace(clause, modifiers=modifiers)
        n = self._phrase_at(core, 0, NEGATIONS)
        if n and len(core) > n:
            clause = self._best(core[n:], utterance, segment)
            if clause is not None:
                return replace(clause, modifiers=modifiers, negated=True)
        return self._best(segment, utterance, segment)

    def _best(self, tokens: Sequence[Token], utterance: str, segment: Sequence[Token]) -> Clause | None:
        """The phrase matching the most literal words of ``tokens`` (the earliest on a tie)."""
        text = "".join(t.word + " " for t in tokens)
        starts, position = {}, 0
        for i, token in enumerate(tokens):
            starts[position] = i
            position += len(token.word) + 1
        best: tuple[int, Phrase, re.Match[str]] | None = None
        for phrase in self.phrases:
            match = phrase.pattern.fullmatch(text)
            if match is None:
                continue
            slot_words = sum(match.group(g).count(" ") for g in phrase.groups if match.group(g) is not None)
            literals = len(tokens) - slot_words
            if best is None or literals > best[0]:
                best = (literals, phrase, match)
        if best is None:
            return None
        _, phrase, match = best
        slots: dict[str, SlotValue] = {}
        first_slot = len(tokens)
        open_text = None
        for group, name in phrase.groups.items():
            if match.group(group) is None:
                continue
            i0 = starts[match.start(group)]
            i1 = i0 + match.group(group).count(" ") - 1
            first_slot = min(first_slot, i0)
            words = tuple(t.word for t in tokens[i0:i1 + 1])
            if phrase.slots[name].kind == "text":
                at_end = match.end(group) == len(text)
                start, end = self._text_span(tokens[i0], tokens[i1], segment, at_end)
                slots[name] = SlotValue(words, utterance[start:end], start, end)
                if at_end:
                    open_text = name
            else:
                slots[name] = SlotValue(words, utterance[tokens[i0].start:tokens[i1].end], tokens[i0].start,
                                        tokens[i1].end)
        for name, value in phrase.fixed.items():
            if phrase.tool is None:
                slots.setdefault(name, SlotValue((str(value),)))
        start, end = segment[0].start, segment[-1].end
        return Clause(phrase, slots, text=utterance[start:end], start=start, end=end,
                      prefix=tuple(tokens[:first_slot]) if phrase.groups else (), open_text=open_text)

    def _text_span(self, first: Token, last: Token, segment: Sequence[Token], at_end: bool) -> tuple[int, int]:
        """Free text as written, with the words the matcher set aside inside it ("say please be quiet").

        Text at the end of a clause runs to the clause's end, speed words
        included ("say I am fast"), less trailing filler words ("say hello, please").
        """
        positions = {id(t): i for i, t in enumerate(segment)}
        lo, hi = positions.get(id(first)), positions.get(id(last))
        if lo is None or hi is None:
            return first.start, last.end
        fillers = {f[0] for f in self._fillers if len(f) == 1}
        while lo > 0 and segment[lo - 1].word == "please":
            lo -= 1
        if at_end:
            end = len(segment) - 1
            while end > hi and segment[end].word in fillers:
                end -= 1
            hi = end
        return segment[lo].start, segment[hi].end

    def _extend_text(self, clause: Clause, segment: Sequence[Token], utterance: str) -> Clause:
        """Free text that ran over a separator: "say salt and pepper", "say hello, how are you"."""
        name = clause.open_text or ""
        value = clause.slots[name]
        end = segment[-1].end
        words = value.words + tuple(t.word for t in segment if not t.mark)
        slots = {**clause.slots, name: SlotValue(words, utterance[value.start:end], value.start, end)}
        return replace(clause, slots=slots, text=utterance[clause.start:end], end=end)

    # -- data -------------------------------------------------------------------------------

    def capabilities(self) -> list[str]:
        """What the grammar lets a user ask for, in words ("go to a place", "bring you something", …)."""
        order = ("navigate", "fetch", "pick", "put", "give", "say", "stop")
        families = sorted(self.families, key=lambda f: order.index(f.name) if f.name in order else len(order))
        found = [f.summary for f in families if f.summary]
        found += [spoken(p.family) for p in self.phrases if p.tool and p.family not in BUILTIN_TOOLS]
        return list(dict.fromkeys(found))

    def families_of(self) -> dict[str, list[Phrase]]:
        """The phrases by family (built-in families first, then tools), in priority order."""
        groups: dict[str, list[Phrase]] = {}
        for phrase in self.phrases:
            groups.setdefault(phrase.family, []).append(phrase)
        return groups

    def data(self) -> dict[str, Any]:
        """The whole grammar as plain data: every phrase template with its typed slots, and the vocabularies.

        Returns:
            ``{"phrases": [{family, tool, template, slots: {name: {kind, values?, minimum?, maximum?}},
            fixed}], "vocabulary": {places, labels, colors, humans, object_ids}, "fillers", "separators",
            "modifiers"}``
        """
        phrases = []
        for phrase in self.phrases:
            slots = {}
            for name, slot in phrase.slots.items():
                entry: dict[str, Any] = {"kind": slot.kind}
                if slot.values:
                    entry["values"] = list(slot.values)
                if slot.minimum is not None:
                    entry["minimum"] = slot.minimum
                if slot.maximum is not None:
                    entry["maximum"] = slot.maximum
                slots[name] = entry
            phrases.append({"family": phrase.family, "tool": phrase.tool, "template": phrase.template,
                            "slots": slots, "fixed": dict(phrase.fixed)})
        vocabulary = self.vocabulary
        return {
            "phrases": phrases,
            "vocabulary": {
                "places": {name: spoken(name) for name in vocabulary.places},
                "labels": [spoken(label) for label in vocabulary.labels],
                "colors": [spoken(color) for color in vocabulary.colors],
                "humans": list(vocabulary.humans.values()),
                "object_ids": list(vocabulary.ids.values()),
            },
            "fillers": [" ".join(f) for f in self._fillers],
            "separators": [" ".join(s) for s in self._separators],
            "modifiers": {" ".join(w): m for w, m in self._modifiers.items()},
        }

    def lexicon(self) -> set[str]:
        """Every word the grammar knows (template words, vocabulary, fillers, numbers …)."""
        return set(self._lexicon)


# -- JSGF -------------------------------------------------------------------------------

def _rule_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name) or "rule"


def _spoken_alternatives(words: Iterable[str]) -> str:
    options = sorted({spoken(w) for w in words if spoken(w) and _speakable(spoken(w))})
    return " | ".join(options)


def _speakable(text: str) -> bool:
    return bool(re.fullmatch(r"[a-z][a-z']*(?: [a-z][a-z']*)*", text))


def jsgf_words(grammar: Grammar) -> set[str]:
    """Every word :func:`to_jsgf` may use: the speech recogniser's dictionary must know them all."""
    return {w for line in to_jsgf(grammar).splitlines()[3:]
            for w in re.findall(r"(?<![<\w'])[a-z][a-z']*(?![\w>])", line.split("=", 1)[-1])}


def to_jsgf(grammar: Grammar, name: str = "vla_bt") -> str:
    """The grammar in JSGF (JSpeech Grammar Format), for a speech recogniser such as pocketsphinx.

    The public rule ``<command>`` accepts a sequence of clauses with optional
    filler words, separators and speed words. Slots become rules: ``<place>``,
    ``<object>``, ``<target>``, ``<human>``, ``<text>`` (free text over the
    grammar's words and everyday words) and one rule per typed slot of a
    tool's phrasing (``<wave_times>`` = one | two | …). Names are written as
    they are said (``living_room`` → ``living room``); object ids are left out
    (they are typed, not said).

    Args:
        grammar: the grammar
        name: the JSGF grammar name

    Returns:
        the grammar text (``#JSGF V1.0;`` …)
    """
    vocabulary = grammar.vocabulary
    rules: dict[str, str] = {}
    slot_rules: dict[tuple[str, str], str] = {}
    used: set[str] = set()

    def slot_rule(phrase: Phrase, slot: Slot) -> str:
        if slot.kind in ("place", "object", "target", "human", "text"):
            used.add(slot.kind)
            return slot.kind
        rule = _rule_name(f"slot_{phrase.family}_{slot.name}")
        if slot.kind == "enum":
            body = _spoken_alternatives(str(v) for v in slot.values)
        elif slot.kind in ("integer", "number"):
            low = int(slot.minimum) if slot.minimum is not None else 0
            high = int(slot.maximum) if slot.maximum is not None else 20
            words = [w for w, n in NUMBER_WORDS.items() if low <= n <= min(high, 20) and w not in ("once", "twice",
                                                                                                   "thrice")]
            body = " | ".join(words)
        else:
            body = ""
        rules[rule] = body or "<VOID>"
        return rule

    family_rules = []
    for family, phrases in grammar.families_of().items():
        alternatives = []
        for phrase in phrases:
            names = {n: slot_rules.setdefault((phrase.family, n), slot_rule(phrase, s))
                     for n, s in phrase.slots.items()}
            alternatives.append(_jsgf(phrase.node, names, top=True))
        rule = _rule_name(f"cmd_{family}")
        family_rules.append(rule)
        rules[rule] = " | ".join(f"( {a} )" if " | " in a else a for a in alternatives)

    if {"target", "object"} & used:
        used |= {"object", "place"}
    if "target" in used:
        used |= {"human", "place"}
    places = _spoken_alternatives(vocabulary.places)
    colors = _spoken_alternatives(vocabulary.colors)
    labels = _spoken_alternatives(vocabulary.labels)
    persons = _spoken_alternatives(vocabulary.humans)
    shared: dict[str, str] = {}
    if "place" in used:
        shared["place"] = places or "<VOID>"
        shared["place_ref"] = "[ the ] <place>"
    if "object" in used:
        where = " [ ( in | at | from ) [ the ] <place> ]" if places else ""
        color = "[ <color> ] " if colors else ""
        noun = "( <label> | one )" if labels else "one"
        shared["object"] = (f"it | that | this | [ the | a | an | my | that | this ] [ other ] {color}{noun}{where}"
                            f" | another {color}{noun}")
        if colors:
            shared["color"] = colors
        if labels:
            shared["label"] = labels
    if "human" in used:
        shared["human"] = "me | us | [ the ] user" + (" | <person>" if persons else "")
        if persons:
            shared["person"] = persons
    if "target" in used:
        shared["target"] = "here | there | <place_ref> | <human> | <object>"
    if "text" in used:
        words = sorted(w for w in grammar.lexicon() | set(COMMON_WORDS) if _speakable(w))
        shared["text"] = "<word>+"
        shared["word"] = " | ".join(words)

    fillers = " | ".join(" ".join(f) for f in grammar._fillers if _speakable(" ".join(f)))
    separators = " | ".join(" ".join(s) for s in grammar._separators)
    modifiers = " | ".join(" ".join(m) for m in grammar._modifiers)
    clause = " | ".join(f"<{r}>" for r in family_rules) or "<VOID>"
    lines = ["#JSGF V1.0;", "", f"grammar {_rule_name(name)};", "",
             "public <command> = [ <filler> ] <clause> [ <modifier> ] "
             "( <separator> [ <filler> ] <clause> [ <modifier> ] )*;",
             f"<clause> = {clause};",
             f"<filler> = {fillers or '<NULL>'};",
             f"<separator> = {separators or '<NULL>'};",
             f"<modifier> = {modifiers or '<NULL>'};", ""]
    lines += [f"<{rule}> = {body};" for rule, body in rules.items()]
    lines.append("")
    lines += [f"<{rule}> = {body};" for rule, body in shared.items()]
    return "\n".join(lines) + "\n"


__all__ = ["BUILTIN_TOOLS", "FAMILIES", "KINDS", "Clause", "Family", "Grammar", "ObjectRef", "Parse", "Phrase",
           "PhraseDecl", "Slot", "SlotValue", "TemplateError", "Token", "Vocabulary", "jsgf_words",
           "parse_template", "phrases_from_registry", "spoken", "to_jsgf", "tool_slot"]
