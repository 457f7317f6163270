"""Grounding: references in words ("the red cup", "it", "there", "the table") → things in the scene.

References resolve against what the robot perceives (``/perception/objects``,
``/perception/humans``), the world's places, and the dialogue context (what
"it" and "there" were). A reference that matches several things raises
``AmbiguousError`` with a clarification question; one that matches nothing raises
``UnresolvedError``. Nothing unresolved is ever sent to a robot.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rapidfuzz import fuzz, process

Pose = tuple[float, float, float]

ARTICLES = {"the", "a", "an", "my", "that", "this", "some", "one", "please", "thing", "object"}
PREPOSITIONS = {"on", "onto", "in", "into", "at", "to", "near", "by", "next", "inside", "top", "of", "over"}
IT = {"it", "that", "this"}
THERE = {"there", "back there"}
ME = {"me", "user", "myself", "us"}
AT_PLACE_M = 1.0  # an object this close to a place's position counts as "in" that place


class UnresolvedError(LookupError):
    """Nothing in the scene matches the reference."""


class AmbiguousError(LookupError):
    """Several things match; ``question`` asks the user which one.

    Args:
        question: a clarification question ending in "?"
        candidates: the ids that match
    """

    def __init__(self, question: str, candidates: Sequence[str]):
        super().__init__(question)
        self.question = question
        self.candidates = list(candidates)


@dataclass(frozen=True)
class Grounded:
    """What a reference resolved to.

    Args:
        kind: ``object``, ``place``, ``human`` or ``pose``
        id: the object id, place name or human id (``None`` for a bare pose)
        pose: where it is [x, y, theta]
        label: how to speak of it ("red cup", "kitchen", "alice")
    """

    kind: str
    id: str | None
    pose: Pose
    label: str


@dataclass
class Context:
    """What earlier turns referred to: resolves "it", "there" and "the other one"."""

    last_object: str | None = None
    last_label: str | None = None
    last_place: str | None = None
    previous_place: str | None = None  # where the robot was sent before the last navigation

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Context:
        return cls(**{k: v for k, v in (data or {}).items() if k in cls.__dataclass_fields__})


@dataclass
class Scene:
    """What grounding resolves against.

    Args:
        objects: ``/perception/objects`` records
        humans: ``/perception/humans`` records
        places: the world's named poses
        holding: the id of the object in the gripper
        robot_pose: where the robot is
    """

    objects: Sequence[Mapping[str, Any]] = ()
    humans: Sequence[Mapping[str, Any]] = ()
    places: Mapping[str, Sequence[float]] = field(default_factory=dict)
    holding: str | None = None
    robot_pose: Pose = (0.0, 0.0, 0.0)

    def object(self, object_id: str) -> Mapping[str, Any] | None:
        return next((o for o in self.objects if o.get("id") == object_id), None)

    def colors(self) -> set[str]:
        return {str(o["color"]).lower() for o in self.objects if o.get("color")}

    def labels(self) -> set[str]:
        return {str(o["label"]).lower() for o in self.objects if o.get("label")}


def _pose(value: Sequence[float]) -> Pose:
    return (float(value[0]), float(value[1]), float(value[2]) if len(value) > 2 else 0.0)


def words(reference: str) -> list[str]:
    """Lower-case words of a reference, without punctuation."""
    return re.findall(r"[a-z0-9_]+", reference.lower())


def _singular(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def describe(obj: Mapping[str, Any]) -> str:
    """How to speak of an object: "red cup"."""
    return " ".join(str(w) for w in (obj.get("color"), obj.get("label")) if w) or str(obj.get("id"))


def _close_word(word: str, vocabulary: set[str]) -> str | None:
    """The vocabulary word meant by ``word``, tolerating small recognition typos."""
    if word in vocabulary:
        return word
    if len(word) < 4 or not vocabulary:
        return None
    best = process.extractOne(word, vocabulary, scorer=fuzz.ratio, score_cutoff=85)
    return best[0] if best else None


def _obj(scene: Scene, obj: Mapping[str, Any]) -> Grounded:
    return Grounded("object", str(obj["id"]), _pose(obj.get("pose", (0, 0, 0))), describe(obj))


def _place_name(reference: str, scene: Scene) -> str | None:
    text = "_".join(w for w in words(reference) if w not in ARTICLES and w not in PREPOSITIONS)
    if text in scene.places:
        return text
    match = process.extractOne(text, list(scene.places), scorer=fuzz.ratio, score_cutoff=88) if text else None
    return match[0] if match else None


def ground_object(reference: str, scene: Scene, context: Context | None = None) -> Grounded:
    """Resolve an object reference ("red cup", "cup_red", "it", "the other one", "the cup in the kitchen").

    Raises:
        AmbiguousError: several objects match (the question names them)
        UnresolvedError: nothing matches
    """
    context = context or Context()
    ref = reference.strip()
    exact = scene.object(ref) or scene.object(ref.replace(" ", "_"))
    if exact is not None:
        return _obj(scene, exact)
    tokens = words(ref)
    content = [w for w in tokens if w not in ARTICLES]
    if not content or set(content) <= IT:
        return _it(scene, context, ref)
    if "other" in content:
        return _other(scene, context, content)
    return _by_attributes(scene, context, ref, content)


def _it(scene: Scene, context: Context, ref: str) -> Grounded:
    for candidate in (scene.holding, context.last_object):
        obj = scene.object(candidate) if candidate else None
        if obj is not None:
            return _obj(scene, obj)
    raise UnresolvedError(f"I don't know what '{ref}' refers to; which object do you mean?")


def _other(scene: Scene, context: Context, content: list[str]) -> Grounded:
    labels = [lbl for w in content if (lbl := _close_word(_singular(w), scene.labels()))]
    label = labels[0] if labels else context.last_label
    if label is None:
        raise UnresolvedError("I don't know which 'other one' you mean")
    others = [o for o in scene.objects
              if str(o.get("label", "")).lower() == label and o.get("id") != context.last_object]
    return _one(others, label, "other")


def _by_attributes(scene: Scene, context: Context, ref: str, content: list[str]) -> Grounded:
    colors, labels = scene.colors(), scene.labels()
    color = label = place = None
    for word in content:
        if word in PREPOSITIONS:
            continue
        if color is None and (c := _close_word(word, colors)):
            color = c
        elif label is None and (lbl := _close_word(_singular(word), labels)):
            label = lbl
        elif place is None and (p := _place_name(word, scene)):
            place = p
    if label is None and color is not None and ("one" in words(ref) or len(content) == 1):
        label = context.last_label  # "the red one"
    if label is None and color is None:
        raise UnresolvedError(f"I can't see anything called '{ref}'"
                         + (f"; I can see: {', '.join(sorted({describe(o) for o in scene.objects}))}"
                            if scene.objects else ""))
    matches = [o for o in scene.objects
               if (color is None or str(o.get("color", "")).lower() == color)
               and (label is None or str(o.get("label", "")).lower() == label)
               and (place is None or _near(o, scene.places[place]))]
    noun = " ".join(w for w in (color, label) if w) or ref
    where = f" in the {place.replace('_', ' ')}" if place else ""
    if not matches:
        raise UnresolvedError(f"I can't see a {noun}{where}")
    return _one(matches, noun, "")


def _one(matches: Sequence[Mapping[str, Any]], noun: str, adjective: str) -> Grounded:
    if len(matches) == 1:
        obj = matches[0]
        return Grounded("object", str(obj["id"]), _pose(obj.get("pose", (0, 0, 0))), describe(obj))
    if not matches:
        raise UnresolvedError(f"I can't see {'another' if adjective else 'a'} {noun}")
    names = [describe(o) for o in matches]
    if len(set(names)) < len(names):  # same colour and label: tell them apart by id
        names = [f"{describe(o)} ({o['id']})" for o in matches]
    options = ", ".join(f"the {n}" for n in names[:-1]) + f" or the {names[-1]}"
    raise AmbiguousError(f"Which {noun} do you mean: {options}?", [str(o["id"]) for o in matches])


def _near(obj: Mapping[str, Any], place: Sequence[float]) -> bool:
    pose = obj.get("pose") or (math.inf, math.inf)
    return math.dist((float(pose[0]), float(pose[1])), (float(place[0]), float(place[1]))) <= AT_PLACE_M


def ground_human(reference: str, scene: Scene) -> Grounded:
    """Resolve a person ("alice", "user", "me"); "user" is the person nearest the ``user`` place.

    Raises:
        UnresolvedError: nobody matches
    """
    tokens = [w for w in words(reference) if w not in ARTICLES and w not in PREPOSITIONS]
    name = "_".join(tokens)
    for human in scene.humans:
        if str(human.get("id", "")).lower() == name:
            return Grounded("human", str(human["id"]), _pose(human["pose"]), str(human["id"]))
    if set(tokens) & ME or name == "":
        anchor = scene.places.get("user")
        if scene.humans and anchor is not None:
            human = min(scene.humans, key=lambda h: math.dist(h["pose"][:2], anchor[:2]))
            return Grounded("human", str(human["id"]), _pose(human["pose"]), "you")
        if len(scene.humans) == 1:
            human = scene.humans[0]
            return Grounded("human", str(human["id"]), _pose(human["pose"]), "you")
    known = ", ".join(str(h.get("id")) for h in scene.humans) or "nobody"
    raise UnresolvedError(f"I don't know who '{reference}' is (I can see: {known})")


def ground_target(target: Any, scene: Scene, context: Context | None = None) -> Grounded:
    """Resolve where to go or put something: a pose, a place, a person or an object.

    Raises:
        AmbiguousError: an object reference matches several objects
        UnresolvedError: nothing matches
    """
    context = context or Context()
    if isinstance(target, (list, tuple)):
        pose = _pose(target)
        return Grounded("pose", None, pose, f"({pose[0]:.1f}, {pose[1]:.1f})")
    reference = str(target)
    tokens = [w for w in words(reference) if w not in ARTICLES and w not in PREPOSITIONS]
    if " ".join(tokens) in THERE or tokens == ["there"]:
        if context.last_place and context.last_place in scene.places:
            name = context.last_place
            return Grounded("place", name, _pose(scene.places[name]), name.replace("_", " "))
        raise UnresolvedError("I don't know where 'there' is")
    place = _place_name(reference, scene)
    if place is not None:
        return Grounded("place", place, _pose(scene.places[place]), place.replace("_", " "))
    try:
        return ground_human(reference, scene)
    except UnresolvedError:
        pass
    try:
        return ground_object(reference, scene, context)
    except UnresolvedError:
        places = ", ".join(sorted(scene.places)) or "none"
        raise UnresolvedError(f"I don't know a place or thing called '{reference}' (places: {places})") from None


def approach_pose(robot: Sequence[float], target: Sequence[float], distance: float) -> Pose:
    """A pose ``distance`` metres short of ``target`` on the line from ``robot``, facing it."""
    dx, dy = float(target[0]) - float(robot[0]), float(target[1]) - float(robot[1])
    length = math.hypot(dx, dy)
    heading = math.atan2(dy, dx) if length > 1e-9 else float(robot[2]) if len(robot) > 2 else 0.0
    if length <= distance:
        return (float(robot[0]), float(robot[1]), heading)
    scale = (length - distance) / length
    return (float(robot[0]) + dx * scale, float(robot[1]) + dy * scale, heading)
