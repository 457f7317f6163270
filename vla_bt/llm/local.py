"""``--llm local``: the embedded offline planner — a deterministic command grammar, streamed like a model.

No network, no key, no model weights. The planner parses the newest user turn
with the command grammar (:mod:`vla_bt.intent.grammar`), generated from the
registered skills and the world's vocabulary, and answers with the tool calls
a model would make, token by token (``stream_planned``)::

    "bring me the red cup"  →  navigate {"target": "kitchen"}
                               grasp {"object": "red cup"}
                               navigate {"target": "user"}
                               hand_over {"to": "user"}

It never guesses: an ambiguous reference ("the cup" with two cups in the
world) or an unknown word ("the garage") gives one ``ask`` call with a
question naming what it knows, and nothing else; the next user turn answers
it and completes the plan.

The dialogue history of the request is the source of truth: the planner
replays every earlier user turn of it (deterministically, without side
effects) to know what "it", "there", "the other one" and "go back" refer to,
what the robot holds, and which question is waiting for an answer. The same
history always gives the same response.
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from vla_bt.intent.grammar import NUMBER_WORDS, Clause, Grammar, ObjectRef, PhraseDecl, Slot, SlotValue, spoken
from vla_bt.robot.world import World, WorldObject

from .backend import Backend, ToolSpec, TurnRequest
from .events import StreamError, StreamEvent
from .pacing import Pacing
from .scripted import PlannedCall, PlannedResponse, stream_planned

if TYPE_CHECKING:
    from vla_bt.tree.registry import Registry

SLOW_SPEED = 0.2
"""m/s for "slowly" (never above the robot's maximum)."""

START_PLACE_M = 0.3
"""The robot starts "at" a place when its pose is this close to the place's."""

CANCEL = {("never", "mind"), ("nevermind",), ("forget", "it"), ("cancel",), ("cancel", "that"), ("no",),
          ("nope",), ("nothing",), ("no", "thanks"), ("no", "thank", "you")}
"""Answers that drop a waiting question; said with no question waiting, they stop the robot."""

ACKNOWLEDGED = {"thanks", "thank", "you", "ok", "okay", "yes", "yeah", "yep", "sure", "great", "good", "fine",
                "cool", "alright", "perfect", "nice", "robot", "please"}
HELP = {("help",), ("what", "can", "you", "do"), ("what", "do", "you", "know")}
LEAD_INS = (("i", "mean"), ("i", "meant"), ("i", "said"), ("no",), ("i", "want"), ("use",))
ANY = {"any", "either", "whichever", "any one", "either one", "anyone", "any of them", "doesn't matter",
       "it doesn't matter", "you choose"}
QUANTIFIERS = {"both", "all", "every", "each", "two", "three", "four", "five", "several", "many", "few"}
HERE = {("here",), ("over", "here")}
THERE = {("there",), ("over", "there"), ("back", "there")}
_DETERMINER = re.compile(r"^\s*(the|a|an|my|your|our|some)\s+", re.IGNORECASE)
_NEGATION = re.compile(r"^\s*(don'?t|do not|never)\s+", re.IGNORECASE)


@dataclass(frozen=True)
class Resolved:
    """A slot resolved against the world and the dialogue.

    Args:
        kind: ``place``, ``object``, ``human`` or ``value``
        value: the place name, object id, human id (``"user"`` for the speaker) or plain value
        reference: what a tool argument says ("kitchen", "red cup", "alice", "user")
    """

    kind: str
    value: Any
    reference: str


@dataclass
class Pending:
    """An instruction waiting for the answer to a clarification question.

    Args:
        clauses: the parsed instruction
        overrides: slots already settled by earlier answers, by ``(clause index, slot name)``
        slot: the slot the question is about (``None``: the answer is a new instruction)
        kind: what the answer names: ``object``, ``place``, ``target`` or ``human``
        candidates: object ids to choose from ("which cup?"); empty: any
        label: the label of the candidates ("the red one")
        question: the question asked
    """

    clauses: tuple[Clause, ...]
    overrides: dict[tuple[int, str], Resolved] = field(default_factory=dict)
    slot: tuple[int, str] | None = None
    kind: str = "object"
    candidates: tuple[str, ...] = ()
    label: str | None = None
    question: str = ""


@dataclass
class DialogueState:
    """What the dialogue so far implies (rebuilt from the history for every response).

    Args:
        location: where the robot was last sent (a navigate target; ``None`` if unknown)
        trail: every place it was sent, in order, starting where it started
        holding: the id of the object in the gripper
        object_at: where each object is (a navigate target; ``None``: in the gripper or unknown)
        last_object: the object last mentioned or grasped ("it")
        last_place: the place last named ("there")
        pending: an instruction waiting for an answer
    """

    location: str | None = None
    trail: list[str] = field(default_factory=list)
    holding: str | None = None
    object_at: dict[str, str | None] = field(default_factory=dict)
    last_object: str | None = None
    last_place: str | None = None
    pending: Pending | None = None


class Clarify(Exception):  # noqa: N818 - a question, not an error
    """Planning stops to ask the user something.

    Args:
        question: the question
        slot: the slot it is about, ``(clause index, slot name)``
        kind: what the answer names (``object``, ``place``, ``target``, ``human``)
        candidates: object ids to choose from
        label: their label
    """

    def __init__(self, question: str, slot: tuple[int, str] | None = None, kind: str = "object",
                 candidates: Sequence[str] = (), label: str | None = None):
        super().__init__(question)
        self.question, self.slot, self.kind = question, slot, kind
        self.candidates, self.label = tuple(candidates), label


def _listing(items: Iterable[str], conjunction: str = "and") -> str:
    items = list(dict.fromkeys(items))
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + f" {conjunction} {items[-1]}"


def _as_said(value: SlotValue) -> str:
    text = value.text or " ".join(value.words)
    while (stripped := _DETERMINER.sub("", text, count=1)) != text:
        text = stripped
    return text.strip()


class _Plan:
    """The tool calls of one response, built clause by clause on a copy of the dialogue state."""

    def __init__(self, planner: LocalPlanner, state: DialogueState, clauses: Sequence[Clause],
                 overrides: Mapping[tuple[int, str], Resolved]):
        self.planner = planner
        self.world = planner.world
        self.vocabulary = planner.grammar.vocabulary
        self.state = copy.deepcopy(state)
        self.state.pending = None
        self.clauses = clauses
        self.overrides = dict(overrides)
        self.calls: list[PlannedCall] = []
        self.notes: list[str] = []
        self.index = 0
        self.speed: float | None = None

    # -- output ---------------------------------------------------------------------------

    def call(self, name: str, **arguments: Any) -> None:
        self.calls.append(PlannedCall(name, json.dumps(arguments, ensure_ascii=False)))

    def navigate(self, target: str, location: str | None = None, explicit: bool = False) -> None:
        """Drive to ``target``; an implicit step is left out when the robot is already there."""
        location = location or target
        if not explicit and self.state.location == location:
            return
        arguments: dict[str, Any] = {"target": target}
        if self.speed is not None:
            arguments["speed"] = self.speed
        self.call("navigate", **arguments)
        self.state.location = location
        self.state.trail.append(location)

    # -- the world ------------------------------------------------------------------------

    def obj(self, object_id: str) -> WorldObject:
        found = self.world.object(object_id)
        assert found is not None
        return found

    def where(self, obj: WorldObject) -> str:
        """Where to drive to reach an object: its place, the person holding it, or the object itself."""
        if self.state.holding == obj.id:
            return self.state.location or self.planner.describe(obj)
        at = self.state.object_at.get(obj.id)
        return at if at is not None else self.planner.describe(obj)

    # -- resolution -----------------------------------------------------------------------

    def _override(self, name: str) -> Resolved | None:
        return self.overrides.get((self.index, name))

    def ask(self, question: str, name: str, kind: str, candidates: Sequence[str] = (),
            label: str | None = None) -> Clarify:
        return Clarify(question, (self.index, name), kind, candidates, label)

    def object(self, value: SlotValue, name: str = "object") -> WorldObject:
        """The object a slot refers to (mentioning it: it becomes "it").

        Raises:
            Clarify: ambiguous, unknown or unclear
        """
        override = self._override(name)
        if override is not None:
            obj = self.obj(override.value)
        else:
            obj = self._object(self.vocabulary.object_ref(value.words), value, name)
        self.state.last_object = obj.id
        return obj

    def reference(self, value: SlotValue, obj: WorldObject, name: str = "object") -> str:
        """How a tool argument names the object: the user's words when they pick it out, else a description."""
        override = self._override(name)
        if override is not None:
            return override.reference
        ref = self.vocabulary.object_ref(value.words)
        if ref.object_id:
            return ref.object_id
        if ref.label and not (ref.pronoun or ref.other or ref.one or ref.place or ref.indefinite):
            same = [o for o in self.world.objects if o.label == ref.label and (not ref.color or o.color == ref.color)]
            if same == [obj]:
                return ref.noun
        return self.planner.describe(obj)

    def _object(self, ref: ObjectRef, value: SlotValue, name: str) -> WorldObject:
        planner = self.planner
        said, heard = _as_said(value), value.text or " ".join(value.words)
        if ref.pronoun:
            known = self.state.last_object or self.state.holding
            if known is None:
                raise self.ask(f"What do you mean by '{heard}'? I know: {planner.known_objects()}.", name, "object")
            return self.obj(known)
        if ref.object_id:
            return self.obj(ref.object_id)
        if not ref.understood:
            if ref.label:
                same = [o for o in self.world.objects if o.label == ref.label]
                known = _listing(planner.describe_all(same))
                if len(ref.unknown) == 1 and ref.unknown[0] not in QUANTIFIERS:  # "the purple cup"
                    lead = f"I don't see a {ref.unknown[0]} {spoken(ref.label)}"
                else:  # "both cups", "the cup next to the knife"
                    lead = f"I don't know what you mean by '{said}'"
                raise self.ask(f"{lead}. I know: {known}.", name, "object", [o.id for o in same], ref.label)
            raise self.ask(f"I don't know an object called '{said}'. I know: {planner.known_objects()}.",
                           name, "object")
        label = ref.label
        last = self.world.object(self.state.last_object) if self.state.last_object else None
        if label is None and (ref.one or ref.other):
            label = last.label if last is not None else None
            if label is None and not ref.color:
                raise self.ask(f"Which object do you mean by '{heard}'? I know: {planner.known_objects()}.",
                               name, "object")
        matches = [o for o in self.world.objects
                   if (label is None or o.label == label) and (ref.color is None or o.color == ref.color)
                   and (ref.place is None or self.where(o) == ref.place)]
        if ref.other:
            matches = [o for o in matches if last is None or o.id != last.id]
        noun = " ".join(w for w in (spoken(ref.color) if ref.color else "", spoken(label) if label else "") if w)
        if not matches:
            same = [o for o in self.world.objects if label is None or o.label == label]
            where = f" in the {spoken(ref.place)}" if ref.place else ""
            lead = f"I don't see another {noun}{where}" if ref.other else f"I don't see a {noun or said}{where}"
            raise self.ask(f"{lead}. I know: {_listing(planner.describe_all(same))}.", name, "object",
                           [o.id for o in same], label)
        if len(matches) == 1:
            return matches[0]
        held = next((o for o in matches if o.id == self.state.holding), None)
        if held is not None:
            return held
        if ref.indefinite:
            return next((o for o in matches if self.where(o) == self.state.location), matches[0])
        raise self.ask(planner.which(matches, noun or "one"), name, "object", [o.id for o in matches],
                       label or (matches[0].label if len({o.label for o in matches}) == 1 else None))

    def human(self, value: SlotValue, name: str) -> str:
        """A human id, or ``"user"`` for the speaker.

        Raises:
            Clarify: nobody of that name
        """
        override = self._override(name)
        if override is not None:
            return str(override.value)
        if value.marker == "@user":
            return "user"
        found = self.vocabulary.human(value.words)
        if found is None:
            raise self.ask(f"I don't know anyone called '{_as_said(value)}'. I know: "
                           f"{_listing([*self.vocabulary.humans.values(), 'you'])}.", name, "human")
        return found

    def target(self, value: SlotValue, name: str, purpose: str) -> Resolved:
        """A place, a person or an object: where to go (``purpose="navigate"``) or put something (``"place"``).

        Raises:
            Clarify: ambiguous, unknown or unclear
        """
        override = self._override(name)
        if override is not None:
            if override.kind == "object" and purpose != "place":
                self.state.last_object = override.value
            return override
        planner, state = self.planner, self.state
        marker = value.marker
        words = tuple(w for w in value.words if w not in ("the",))
        if marker == "@user" or words in HERE or words in {("me",), ("us",)}:
            return Resolved("human", "user", "user")
        if marker == "@current":
            if state.location is None:
                raise self.ask(f"Where should I put it? I know: {planner.known_places()}.", name, "target")
            return Resolved("place" if state.location in self.world.places else "target", state.location,
                            state.location)
        if marker == "@there" or words in THERE:
            if state.last_place is None:
                raise self.ask(f"Where do you mean by 'there'? I know: {planner.known_places()}.", name, "place")
            return Resolved("place", state.last_place, state.last_place)
        place = self.vocabulary.place(value.words)
        if place is not None:
            state.last_place = place
            return Resolved("place", place, place)
        human = self.vocabulary.human(value.words)
        if human is not None:
            return Resolved("human", human, human)
        ref = self.vocabulary.object_ref(value.words)
        if ref.understood or (ref.label and ref.unknown):
            if purpose == "place":  # a surface to put on is not what "it" refers to next
                last = state.last_object
                obj = self._object(ref, value, name)
                state.last_object = last
            else:
                obj = self.object(value, name)
            return Resolved("object", obj.id, self.reference(value, obj, name))
        said = _as_said(value)
        if purpose == "navigate":
            raise self.ask(f"I don't know a place called '{said}'. I know: {planner.known_places()}.", name,
                           "target")
        raise self.ask(f"I don't know a place or object called '{said}'. Places I know: {planner.known_places()}; "
                       f"objects: {planner.known_objects()}.", name, "target")

    def location_of(self, target: Resolved) -> str:
        if target.kind == "object":
            return self.where(self.obj(target.value))
        return str(target.value)

    # -- the families ---------------------------------------------------------------------

    def run(self) -> None:
        for index, clause in enumerate(self.clauses):
            self.index = index
            if clause.negated:
                self.notes.append(f"OK, I won't {_NEGATION.sub('', clause.text, count=1).rstrip('.!?')}.")
                continue
            self.speed = self.planner.speed(clause.modifiers)
            if clause.phrase.tool is not None:
                self.tool_phrase(clause)
            else:
                getattr(self, f"do_{clause.family}")(clause)

    def do_stop(self, clause: Clause) -> None:
        self.call("stop")

    def do_come(self, clause: Clause) -> None:
        self.navigate("user", explicit=True)

    def do_go_back(self, clause: Clause) -> None:
        trail = self.state.trail
        override = self._override("target")
        if override is not None:
            self.navigate(override.reference, self.location_of(override), explicit=True)
        elif len(trail) >= 2:
            self.navigate(trail[-2], explicit=True)
        elif "dock" in self.world.places:
            self.navigate("dock", explicit=True)
        else:
            raise self.ask(f"Where should I go back to? I know: {self.planner.known_places()}.", "target", "target")

    def do_navigate(self, clause: Clause) -> None:
        target = self.target(clause.slots["target"], "target", "navigate")
        self.navigate(target.reference, self.location_of(target), explicit=True)

    def pick(self, obj: WorldObject, reference: str) -> None:
        if not obj.graspable:
            graspable = [o for o in self.world.objects if o.graspable]
            raise self.ask(f"I can't pick up the {spoken(obj.label)}. I can pick up: "
                           f"{_listing(self.planner.describe_all(graspable))}.", "object", "object",
                           [o.id for o in graspable])
        if self.state.holding == obj.id:
            return
        self.navigate(self.where(obj))
        self.call("grasp", object=reference)
        self.state.holding = obj.id
        self.state.object_at[obj.id] = None

    def hand_to(self, obj: WorldObject, reference: str, recipient: str) -> None:
        self.pick(obj, reference)
        self.navigate(recipient)
        self.call("hand_over", to=recipient)
        self.state.holding = None
        self.state.object_at[obj.id] = recipient

    def put(self, obj: WorldObject, reference: str, target: Resolved) -> None:
        if target.kind == "human":
            self.hand_to(obj, reference, str(target.value))
            return
        self.pick(obj, reference)
        location = self.location_of(target)
        self.navigate(location)
        self.call("place", target=target.reference)
        self.state.holding = None
        self.state.object_at[obj.id] = location

    def do_pick(self, clause: Clause) -> None:
        value = clause.slots["object"]
        obj = self.object(value)
        if self.state.holding == obj.id:
            self.notes.append(f"I'm already holding the {self.planner.describe(obj)}.")
            return
        self.pick(obj, self.reference(value, obj))

    def do_fetch(self, clause: Clause) -> None:
        value = clause.slots["object"]
        obj = self.object(value)
        self.hand_to(obj, self.reference(value, obj), "user")

    def do_give(self, clause: Clause) -> None:
        value = clause.slots["object"]
        obj = self.object(value)
        reference = self.reference(value, obj)
        self.hand_to(obj, reference, self.human(clause.slots["recipient"], "recipient"))

    def do_deliver(self, clause: Clause) -> None:
        value = clause.slots["object"]
        obj = self.object(value)
        reference = self.reference(value, obj)
        self.put(obj, reference, self.target(clause.slots["target"], "target", "place"))

    def do_put(self, clause: Clause) -> None:
        value = clause.slots["object"]
        obj = self.object(value)
        reference = self.reference(value, obj)
        if clause.slots["target"].marker == "@current":
            self.pick(obj, reference)  # "put it down": where the robot is once it holds it
        self.put(obj, reference, self.target(clause.slots["target"], "target", "place"))

    def do_tell(self, clause: Clause) -> None:
        person = self.human(clause.slots["person"], "person")
        if person == "user":  # "tell me a joke" asks for more than saying words
            raise Clarify(f"Sorry, I didn't understand '{clause.text}'. {self.planner.offer()} What should I do?")
        self.call("say", text=f"{person[:1].upper()}{person[1:]}, {clause.slots['text'].text}")

    def do_say(self, clause: Clause) -> None:
        self.call("say", text=clause.slots["text"].text)

    def tool_phrase(self, clause: Clause) -> None:
        """A tool's own phrasing: its slots become the arguments, in the schema's order."""
        phrase = clause.phrase
        tool = self.planner.grammar.tools[phrase.tool or ""]
        arguments: dict[str, Any] = dict(phrase.fixed)
        for name, slot in phrase.slots.items():
            value = clause.slots[name]
            if slot.kind == "text":
                arguments[name] = value.text
            elif slot.kind == "object":
                obj = self.object(value, name)
                arguments[name] = self.reference(value, obj, name)
            elif slot.kind in ("target", "place"):
                target = self.target(value, name, "navigate")
                if slot.kind == "place" and target.kind != "place":
                    raise self.ask(f"'{_as_said(value)}' is not a place I know. I know: "
                                   f"{self.planner.known_places()}.", name, "place")
                arguments[name] = target.reference
            elif slot.kind == "human":
                arguments[name] = self.human(value, name)
            else:
                arguments[name] = self.value(tool, slot, value)
        order = list((tool.parameters.get("properties") or {}).keys())
        self.call(tool.name, **dict(sorted(arguments.items(), key=lambda kv: order.index(kv[0])
                                           if kv[0] in order else len(order))))

    def value(self, tool: ToolSpec, slot: Slot, value: SlotValue) -> Any:
        """An enum, integer or number argument, checked against the tool's schema.

        Raises:
            Clarify: not one of the values, or out of range
        """
        name, kind = slot.name, slot.kind
        override = self._override(name)
        if override is not None:
            return override.value
        said = " ".join(value.words)
        if kind == "enum":
            for option in slot.values:
                if spoken(str(option)) == said:
                    return option
            raise self.ask(f"'{_as_said(value)}' is not a {spoken(name)} I know for {spoken(tool.name)}. "
                           f"I know: {_listing([spoken(str(v)) for v in slot.values], 'or')}.", name, "value")
        number = _number(said, integer=kind == "integer")
        low, high = slot.minimum, slot.maximum
        if number is None or (low is not None and number < low) or (high is not None and number > high):
            bounds = f" from {_plain(low)} to {_plain(high)}" if low is not None and high is not None else ""
            raise self.ask(f"'{_as_said(value)}' is not a {spoken(name)} I can use for {spoken(tool.name)}: "
                           f"it takes a {'whole ' if kind == 'integer' else ''}number{bounds}. How many?",
                           name, "value")
        return number


def _plain(number: float | None) -> str:
    return str(int(number)) if number is not None and float(number).is_integer() else str(number)


def _number(said: str, integer: bool) -> int | float | None:
    if said in NUMBER_WORDS:
        return NUMBER_WORDS[said]
    try:
        number = float(said)
    except ValueError:
        return None
    if integer:
        return int(number) if number.is_integer() else None
    return number


class LocalPlanner(Backend):
    """The embedded offline planner: a command grammar over the skills and the world, streamed like a model.

    Args:
        world: the world (places, objects, humans; the robot's maximum speed); an empty world when ``None``
        tools: the tools on offer (``tool_specs(registry)``); families whose tools are missing are not offered
        pacing: how fast to stream (as fast as possible by default)
        phrases: extra phrasings by tool name (``phrases_from_registry(registry)``)

    Example:
        >>> planner = LocalPlanner(load_world("config/world.yaml"), tool_specs(Registry.default()))
        >>> [c.name for c in planner.plan([{"role": "user", "text": "bring me the book"}]).tool_calls]
        ['navigate', 'grasp', 'navigate', 'hand_over']
    """

    name = "local"

    def __init__(self, world: World | None, tools: Sequence[ToolSpec], pacing: Pacing | None = None,
                 phrases: Mapping[str, Iterable[PhraseDecl]] | None = None):
        self.world = world or World()
        self.grammar = Grammar(self.world, tools, phrases)
        self.pacing = pacing or Pacing()

    @classmethod
    def from_registry(cls, world: World | None, registry: Registry, pacing: Pacing | None = None) -> LocalPlanner:
        """A planner offering the registry's skills, with the phrasings their classes declare (``PHRASES``)."""
        from vla_bt.intent.grammar import phrases_from_registry

        from .tools import tool_specs

        return cls(world, tool_specs(registry), pacing, phrases_from_registry(registry))

    # -- the backend ----------------------------------------------------------------------

    async def respond(self, request: TurnRequest) -> AsyncIterator[StreamEvent]:
        """Plan the response to the newest user turn and stream it (``ToolCallStarted/Delta/Done`` …)."""
        try:
            response = self.plan(request)
        except Exception as exc:  # noqa: BLE001 - a planner bug must end the response, not the loop
            yield StreamError(code="planner_error", message=f"{type(exc).__name__}: {exc}")
            return
        turn = sum(1 for t in request.history if t.get("role") == "user")
        async for event in stream_planned(response, self.pacing, f"local_{turn}"):
            yield event

    # -- planning ---------------------------------------------------------------------------

    def plan(self, request: TurnRequest | Sequence[Mapping[str, Any]]) -> PlannedResponse:
        """The response to the newest user turn, given the dialogue before it.

        Args:
            request: a turn request, or just the dialogue history (``{role, text}`` turns, oldest first)
        """
        history = request.history if isinstance(request, TurnRequest) else request
        texts = [str(t.get("text", "")) for t in history if t.get("role") == "user"]
        if not texts:
            return self._ask("What should I do? " + self.offer())
        state = self.start_state()
        for text in texts[:-1]:
            _, state = self.turn(text, state)
        response, _ = self.turn(texts[-1], state)
        return response

    def replay(self, history: Sequence[Mapping[str, Any]]) -> DialogueState:
        """The dialogue state after every user turn of ``history``."""
        state = self.start_state()
        for turn in history:
            if turn.get("role") == "user":
                _, state = self.turn(str(turn.get("text", "")), state)
        return state

    def start_state(self) -> DialogueState:
        """Where the robot starts (the place at its pose, if any) and where the objects are."""
        pose = self.world.robot.pose
        start = None
        near = sorted((math.dist(p[:2], pose[:2]), name) for name, p in self.world.places.items())
        if near and near[0][0] <= START_PLACE_M:
            start = near[0][1]
        return DialogueState(location=start, trail=[start] if start else [],
                             object_at={o.id: o.at for o in self.world.objects})

    def turn(self, text: str, state: DialogueState) -> tuple[PlannedResponse, DialogueState]:
        """Plan one user turn: the response, and the dialogue state after it."""
        grammar = self.grammar
        every = tuple(t.word for t in grammar.tokens(text) if not t.mark)
        words = grammar.words(text)
        pending = state.pending
        if pending is None and every and set(every) <= ACKNOWLEDGED:
            return PlannedResponse(text="You're welcome." if {"thanks", "thank"} & set(every) else "OK."), state
        if words in CANCEL or every in CANCEL:
            if pending is not None:
                return PlannedResponse(text="OK, never mind."), _without_pending(state)
            if "stop" in grammar.tools:
                return PlannedResponse(tool_calls=(PlannedCall("stop", "{}"),)), state
            return PlannedResponse(text="OK."), state
        if every in HELP or words in HELP:
            return self._ask(f"{self.offer()} What should I do?"), _without_pending(state)
        parse = grammar.parse(text)
        if parse.ok and not self._answers_with_verb(parse, pending):
            return self._execute(parse.clauses, {}, state, parse.stop_heard)
        if pending is not None and pending.slot is not None:
            if parse.ok:  # "take the red one": the object is the answer
                words = parse.clauses[0].slots["object"].words
            answer = self._answer(words, pending, state)
            if isinstance(answer, Resolved):
                overrides = {**pending.overrides, pending.slot: answer}
                return self._execute(pending.clauses, overrides, state, False)
            if answer is not None:
                return self._ask(f"{answer} {pending.question}"), state
        if parse.stop_heard and "stop" in grammar.tools:
            return PlannedResponse(tool_calls=(PlannedCall("stop", "{}"),)), _without_pending(state)
        failed = parse.failed or text.strip()
        if pending is not None and pending.question:
            return self._ask(f"Sorry, I didn't understand '{failed}'. {pending.question}"), state
        if not failed:
            return self._ask(f"What should I do? {self.offer()}"), state
        return self._ask(f"Sorry, I didn't understand '{failed}'. {self.offer()} What should I do?"), \
            _without_pending(state)

    def _execute(self, clauses: Sequence[Clause], overrides: Mapping[tuple[int, str], Resolved],
                 state: DialogueState, stop_heard: bool) -> tuple[PlannedResponse, DialogueState]:
        plan = _Plan(self, state, clauses, overrides)
        try:
            plan.run()
        except Clarify as question:
            asked = copy.deepcopy(state)
            asked.pending = None if question.slot is None else Pending(
                tuple(clauses), dict(overrides), question.slot, question.kind, question.candidates, question.label,
                question.question)
            calls = (PlannedCall("stop", "{}"),) if stop_heard and "stop" in self.grammar.tools else ()
            return self._ask(question.question, calls), asked
        text = " ".join(plan.notes)
        return PlannedResponse(text=text, tool_calls=tuple(plan.calls), closing=summarise(plan.calls)), plan.state

    def _ask(self, question: str, before: Sequence[PlannedCall] = ()) -> PlannedResponse:
        if "ask" not in self.grammar.tools:
            return PlannedResponse(text=question, tool_calls=tuple(before))
        call = PlannedCall("ask", json.dumps({"question": question}, ensure_ascii=False))
        return PlannedResponse(tool_calls=(*before, call))

    def _answers_with_verb(self, parse: Any, pending: Pending | None) -> bool:
        """ "Take the red one" answers "which cup?": one picking clause whose "one" needs the question's label."""
        if pending is None or pending.slot is None or pending.kind != "object" or len(parse.clauses) != 1:
            return False
        clause = parse.clauses[0]
        if clause.family != "pick" or "object" not in clause.slots:
            return False
        ref = self.grammar.vocabulary.object_ref(clause.slots["object"].words)
        return ref.one and not ref.other and ref.label is None

    def _answer(self, words: Sequence[str], pending: Pending, state: DialogueState) -> Resolved | str | None:
        """The answer to a waiting question: resolved, a reason it does not fit (``str``), or ``None`` (no answer)."""
        words = tuple(words)
        changed = True
        while changed and words:
            changed = False
            for lead in LEAD_INS:
                if words[:len(lead)] == lead and len(words) > len(lead):
                    words, changed = words[len(lead):], True
        if not words:
            return None
        vocabulary = self.grammar.vocabulary
        if pending.kind in ("place", "target"):
            place = vocabulary.place(words)
            if place is not None:
                return Resolved("place", place, place)
            if pending.kind == "target":
                human = vocabulary.human(words)
                if human is not None:
                    return Resolved("human", human, human)
        if pending.kind == "human":
            human = vocabulary.human(words)
            return Resolved("human", human, human) if human else None
        if pending.kind not in ("object", "target"):
            return None
        candidates = [o for o in self.world.objects if o.id in pending.candidates] if pending.candidates else []
        if " ".join(words) in ANY and candidates:
            obj = candidates[0]
            return Resolved("object", obj.id, self.describe(obj))
        ref = vocabulary.object_ref(words)
        if not ref.understood:
            return "I don't see that." if ref.label else None
        pool = candidates or list(self.world.objects)
        if ref.ordinal is not None and candidates:
            index = ref.ordinal if ref.ordinal < len(candidates) else None
            if index is not None:
                obj = candidates[index]
                return Resolved("object", obj.id, self.describe(obj))
        if ref.object_id:
            matches = [o for o in pool if o.id == ref.object_id]
        else:
            label = ref.label or (pending.label if ref.one or ref.color or ref.other else None)
            matches = [o for o in pool if (label is None or o.label == label)
                       and (ref.color is None or o.color == ref.color)
                       and (ref.place is None or o.at == ref.place)]
        if len(matches) == 1:
            obj = matches[0]
            return Resolved("object", obj.id, self.describe(obj))
        noun = " ".join(spoken(w) for w in (ref.color, ref.label or pending.label) if w)
        if not matches:
            return f"I don't see a {noun or ' '.join(words)}."
        return None

    # -- words ------------------------------------------------------------------------------

    def speed(self, modifiers: frozenset[str]) -> float | None:
        """The navigate speed said ("slowly" → 0.2 m/s, "quickly" → the robot's maximum), or ``None``."""
        top = self.world.robot.max_speed
        if "slow" in modifiers:
            return min(SLOW_SPEED, top)
        if "fast" in modifiers:
            return top
        return None

    def describe(self, obj: WorldObject) -> str:
        """The shortest description that picks the object out: "book", "red cup", or its id."""
        label = spoken(obj.label)
        if sum(1 for o in self.world.objects if o.label == obj.label) == 1:
            return label
        if obj.color and sum(1 for o in self.world.objects if o.label == obj.label and o.color == obj.color) == 1:
            return f"{spoken(obj.color)} {label}"
        return obj.id

    def describe_all(self, objects: Iterable[WorldObject]) -> list[str]:
        """How to speak of each object in a list: "red cup", "table"."""
        return [" ".join(w for w in (spoken(o.color), spoken(o.label)) if w) for o in objects]

    def which(self, matches: Sequence[WorldObject], noun: str) -> str:
        """ "Which cup do you mean: the red cup or the blue cup?" (told apart by colour, place or id)."""
        colors = [o.color for o in matches]
        places = [o.at for o in matches]
        if all(colors) and len(set(colors)) == len(colors):
            names = [f"the {spoken(o.color)} {spoken(o.label)}" for o in matches]
        elif all(places) and len(set(places)) == len(places):
            names = [f"the {spoken(o.label)} in the {spoken(o.at or '')}" for o in matches]
        else:
            names = [o.id for o in matches]
        return f"Which {noun} do you mean: {_listing(names, 'or')}?"

    def known_places(self) -> str:
        return _listing([spoken(p) for p in self.world.places]) or "no places"

    def known_objects(self) -> str:
        return _listing(self.describe_all(self.world.objects)) or "no objects"

    def offer(self) -> str:
        """ "I can go to a place, bring you something, … or stop." """
        return f"I can {_listing(self.grammar.capabilities(), 'or')}." if self.grammar.capabilities() else ""


def _without_pending(state: DialogueState) -> DialogueState:
    if state.pending is None:
        return state
    state = copy.deepcopy(state)
    state.pending = None
    return state


__all__ = ["Clarify", "DialogueState", "LocalPlanner", "Pending", "Resolved"]


SAYINGS = {
    "navigate": lambda a: "come to you" if a.get("target") in ("user", "me") else f"go to {_spoken(a.get('target'))}",
    "grasp": lambda a: f"pick up {_spoken(a.get('object'))}",
    "place": lambda a: f"put it on {_spoken(a.get('target'))}",
    "hand_over": lambda a: "hand it to you" if a.get("to") in (None, "user") else f"hand it to {a.get('to')}",
    "stop": lambda a: "stop",
}


def _spoken(reference: Any) -> str:
    if isinstance(reference, list):
        return "that point"
    text = str(reference or "there").replace("_", " ")
    return text if text in ("user", "me", "there") or text.startswith("the ") else f"the {text}"


def summarise(calls: Sequence[PlannedCall]) -> str:
    """What the robot says after planning, as an assistant model would: "I'll go to the kitchen and ...".

    Spoken after the tool calls, so it never delays the first action.
    """
    parts = []
    for call in calls:
        saying = SAYINGS.get(call.name)
        if saying is None:
            continue
        try:
            parts.append(saying(json.loads(call.arguments)))
        except (ValueError, AttributeError):
            continue
    if not parts:
        return ""
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and then " + parts[-1]
    return f"I'll {listed}."
