"""The embedded offline planner (``--llm local``): command grammar, dialogue references, clarification, streaming.

Every phrasing family is checked with several variants on the shipped world
(``config/world.yaml``) and on a second world written here (a workshop with a
wrench and a garage), asserting the exact tool calls: names and parsed JSON
arguments, in order.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import py_trees
import pytest

from vla_bt.intent.grammar import Grammar, parse_template, phrases_from_registry, to_jsgf
from vla_bt.llm.backend import ToolSpec, TurnRequest
from vla_bt.llm.events import ResponseDone, TextDelta, ToolCallDelta, ToolCallDone, ToolCallStarted
from vla_bt.llm.local import LocalPlanner
from vla_bt.llm.pacing import Pacing
from vla_bt.llm.tools import tool_specs
from vla_bt.robot.world import World, load_world
from vla_bt.tree.declared import Leaf, Param
from vla_bt.tree.registry import Registry

ROOT = Path(__file__).resolve().parents[1]
HOME_PLACES = "I know: dock, kitchen, living room, bedroom and user."
WHICH_CUP = "Which cup do you mean: the red cup or the blue cup?"

WORKSHOP = """\
places:
  dock: [0.0, 0.0, 0.0]
  workshop: [3.0, 1.0, 0.0]
  garage: [6.0, 2.0, 1.57]
  store_room: [2.0, 5.0, 3.14]
objects:
  - {id: wrench_1, label: wrench, color: silver, at: workshop, mass: 0.5}
  - {id: driver_red, label: screwdriver, color: red, at: workshop}
  - {id: driver_yellow, label: screwdriver, color: yellow, at: garage}
  - {id: bench_1, label: workbench, at: workshop, graspable: false}
  - {id: crate_1, label: crate, color: brown, at: store_room, graspable: false}
  - {id: can_1, label: oil can, color: black, pose: [6.5, 2.5, 0.0]}
humans:
  - {id: bob, pose: [1.0, 1.0, 0.0]}
  - {id: carol, pose: [5.0, 5.0, 0.0]}
robot: {pose: [0.0, 0.0, 0.0], max_speed: 0.8}
"""

Call = tuple[str, dict[str, Any]]


# -- fixtures and helpers ---------------------------------------------------------------

@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.default(plugins=False)


@pytest.fixture(scope="module")
def tools(registry: Registry) -> list[ToolSpec]:
    return tool_specs(registry)


@pytest.fixture(scope="module")
def home(tools: list[ToolSpec]) -> LocalPlanner:
    return LocalPlanner(load_world(ROOT / "config" / "world.yaml"), tools)


@pytest.fixture(scope="module")
def workshop_world(tmp_path_factory: pytest.TempPathFactory) -> World:
    path = tmp_path_factory.mktemp("worlds") / "workshop.yaml"
    path.write_text(WORKSHOP)
    return load_world(path)


@pytest.fixture(scope="module")
def workshop(workshop_world: World, tools: list[ToolSpec]) -> LocalPlanner:
    return LocalPlanner(workshop_world, tools)


def history(*turns: str, robot: Sequence[str] = ()) -> list[dict[str, Any]]:
    """User turns (with optional robot turns after each), as ``/dialogue/history`` holds them."""
    found: list[dict[str, Any]] = []
    for i, text in enumerate(turns):
        found.append({"role": "user", "text": text, "t": float(2 * i)})
        if i < len(robot) and robot[i]:
            found.append({"role": "robot", "text": robot[i], "t": float(2 * i + 1)})
    return found


def plan(planner: LocalPlanner, *turns: str) -> list[Call]:
    """The tool calls answering the last turn, given the turns before it."""
    response = planner.plan(TurnRequest(history=history(*turns)))
    return [(c.name, json.loads(c.arguments)) for c in response.tool_calls]


def question(planner: LocalPlanner, *turns: str) -> str:
    """The single ``ask`` call answering the last turn (and nothing else), as its question."""
    calls = plan(planner, *turns)
    assert [name for name, _ in calls] == ["ask"], calls
    return calls[0][1]["question"]


def stream(planner: LocalPlanner, request: TurnRequest) -> list[Any]:
    async def collect() -> list[Any]:
        return [event async for event in planner.respond(request)]

    return asyncio.run(collect())


def nav(target: str, **extra: Any) -> Call:
    return ("navigate", {"target": target, **extra})


def grasp(reference: str) -> Call:
    return ("grasp", {"object": reference})


def place(target: str) -> Call:
    return ("place", {"target": target})


def hand(to: str) -> Call:
    return ("hand_over", {"to": to})


STOP: Call = ("stop", {})


# -- navigate ---------------------------------------------------------------------------

@pytest.mark.parametrize(("utterance", "expected"), [
    ("go to the kitchen", [nav("kitchen")]),
    ("drive to the dock", [nav("dock")]),
    ("move to the living room", [nav("living_room")]),
    ("GO TO THE BEDROOM!", [nav("bedroom")]),
    ("Robot, head to the kitchen now.", [nav("kitchen")]),
    ("could you please navigate to the living room?", [nav("living_room")]),
    ("go to the kitchn", [nav("kitchen")]),
    ("walk over to the livingroom", [nav("living_room")]),
    ("come here", [nav("user")]),
    ("come to me", [nav("user")]),
    ("please come over here", [nav("user")]),
    ("go to alice", [nav("alice")]),
    ("go to the table", [nav("table")]),
])
def test_navigate_home(home: LocalPlanner, utterance: str, expected: list[Call]) -> None:
    assert plan(home, utterance) == expected


@pytest.mark.parametrize(("utterance", "expected"), [
    ("go to the garage", [nav("garage")]),
    ("drive to the store room", [nav("store_room")]),
    ("move to the workshop", [nav("workshop")]),
    ("go to the storeroom", [nav("store_room")]),
    ("go to the workshp", [nav("workshop")]),
    ("come here", [nav("user")]),
    ("head over to carol", [nav("carol")]),
])
def test_navigate_workshop(workshop: LocalPlanner, utterance: str, expected: list[Call]) -> None:
    assert plan(workshop, utterance) == expected


@pytest.mark.parametrize(("utterance", "expected"), [
    ("slowly drive to the dock", [nav("dock", speed=0.2)]),
    ("go to the kitchen slowly", [nav("kitchen", speed=0.2)]),
    ("go to the kitchen quickly", [nav("kitchen", speed=0.5)]),
    ("come here fast", [nav("user", speed=0.5)]),
    ("slowly bring me the book", [nav("living_room", speed=0.2), grasp("book"), nav("user", speed=0.2),
                                  hand("user")]),
])
def test_speed_words(home: LocalPlanner, utterance: str, expected: list[Call]) -> None:
    assert plan(home, utterance) == expected


def test_fast_is_the_robots_top_speed_of_the_world(workshop: LocalPlanner) -> None:
    assert plan(workshop, "drive quickly to the garage") == [nav("garage", speed=0.8)]


@pytest.mark.parametrize(("turns", "expected"), [
    (["go back"], [nav("dock")]),
    (["go to the kitchen", "go back"], [nav("dock")]),
    (["go to the kitchen", "go to the bedroom", "go back"], [nav("kitchen")]),
    (["go to the kitchen", "go to the bedroom", "return"], [nav("kitchen")]),
    (["go to the kitchen", "go back", "go back"], [nav("kitchen")]),
    (["bring me the book", "go back"], [nav("living_room")]),
])
def test_go_back(home: LocalPlanner, turns: list[str], expected: list[Call]) -> None:
    assert plan(home, *turns) == expected


def test_go_back_in_another_world(workshop: LocalPlanner) -> None:
    assert plan(workshop, "go to the garage", "go to the workshop", "go back") == [nav("garage")]


# -- fetch, pick up, put, hand over -----------------------------------------------------

@pytest.mark.parametrize(("utterance", "expected"), [
    ("bring me the red cup", [nav("kitchen"), grasp("red cup"), nav("user"), hand("user")]),
    ("fetch the book", [nav("living_room"), grasp("book"), nav("user"), hand("user")]),
    ("get me a cup", [nav("kitchen"), grasp("red cup"), nav("user"), hand("user")]),
    ("could you bring me the yellow book, please?", [nav("living_room"), grasp("yellow book"), nav("user"),
                                                     hand("user")]),
    ("bring the mug here", [nav("bedroom"), grasp("mug"), nav("user"), hand("user")]),
    ("go and get me the blue cup", [nav("kitchen"), grasp("blue cup"), nav("user"), hand("user")]),
    ("get the knife for me", [nav("kitchen"), grasp("knife"), nav("user"), hand("user")]),
    ("bring me cup_blue", [nav("kitchen"), grasp("cup_blue"), nav("user"), hand("user")]),
])
def test_fetch_home(home: LocalPlanner, utterance: str, expected: list[Call]) -> None:
    assert plan(home, utterance) == expected


@pytest.mark.parametrize(("utterance", "expected"), [
    ("bring me the wrench", [nav("workshop"), grasp("wrench"), nav("user"), hand("user")]),
    ("fetch the yellow screwdriver", [nav("garage"), grasp("yellow screwdriver"), nav("user"), hand("user")]),
    # an object placed by pose has no place: drive to the object itself
    ("can you bring me the oil can", [nav("oil can"), grasp("oil can"), nav("user"), hand("user")]),
    ("bring the wrench to bob", [nav("workshop"), grasp("wrench"), nav("bob"), hand("bob")]),
])
def test_fetch_workshop(workshop: LocalPlanner, utterance: str, expected: list[Call]) -> None:
    assert plan(workshop, utterance) == expected


@pytest.mark.parametrize(("utterance", "expected"), [
    ("pick up the red cup", [nav("kitchen"), grasp("red cup")]),
    ("grab the knife", [nav("kitchen"), grasp("knife")]),
    ("take the blue cup", [nav("kitchen"), grasp("blue cup")]),
    ("pick the book up", [nav("living_room"), grasp("book")]),
    ("please get the green mug", [nav("bedroom"), grasp("green mug")]),
    ("pick up the yelow book", [nav("living_room"), grasp("yellow book")]),
    ("grasp cup_red", [nav("kitchen"), grasp("cup_red")]),
])
def test_pick_up_home(home: LocalPlanner, utterance: str, expected: list[Call]) -> None:
    assert plan(home, utterance) == expected


@pytest.mark.parametrize(("utterance", "expected"), [
    ("grab the wrench", [nav("workshop"), grasp("wrench")]),
    ("pick up the yellow screwdriver", [nav("garage"), grasp("yellow screwdriver")]),
    ("take the red screwdriver", [nav("workshop"), grasp("red screwdriver")]),
])
def test_pick_up_workshop(workshop: LocalPlanner, utterance: str, expected: list[Call]) -> None:
    assert plan(workshop, utterance) == expected


@pytest.mark.parametrize(("turns", "expected"), [
    (["pick up the red cup", "put it on the table"], [place("table")]),
    (["pick up the red cup", "put it on the shelf"], [nav("living_room"), place("shelf")]),
    # holding a cup, "the cup" is the one in the gripper
    (["pick up the blue cup", "place the cup on the shelf"], [nav("living_room"), place("shelf")]),
    (["put the book in the kitchen"], [nav("living_room"), grasp("book"), nav("kitchen"), place("kitchen")]),
    (["pick up the book", "put it down"], [place("living_room")]),
    (["pick up the book", "drop it"], [place("living_room")]),
    (["pick up the mug", "set it down on the table"], [nav("kitchen"), place("table")]),
    (["take the book to the bedroom"], [nav("living_room"), grasp("book"), nav("bedroom"), place("bedroom")]),
])
def test_put_home(home: LocalPlanner, turns: list[str], expected: list[Call]) -> None:
    assert plan(home, *turns) == expected


@pytest.mark.parametrize(("turns", "expected"), [
    (["put the wrench on the workbench"], [nav("workshop"), grasp("wrench"), place("workbench")]),
    (["pick up the yellow screwdriver", "put it in the store room"], [nav("store_room"), place("store_room")]),
    (["take the wrench to the garage"], [nav("workshop"), grasp("wrench"), nav("garage"), place("garage")]),
])
def test_put_workshop(workshop: LocalPlanner, turns: list[str], expected: list[Call]) -> None:
    assert plan(workshop, *turns) == expected


@pytest.mark.parametrize(("turns", "expected"), [
    (["pick up the book", "give it to alice"], [nav("alice"), hand("alice")]),
    (["pick up the blue cup", "hand me the cup"], [nav("user"), hand("user")]),
    (["pick up the book", "hand it over"], [nav("user"), hand("user")]),
    (["give alice the book"], [nav("living_room"), grasp("book"), nav("alice"), hand("alice")]),
    (["hand the knife to alice"], [nav("kitchen"), grasp("knife"), nav("alice"), hand("alice")]),
    (["pass me the mug"], [nav("bedroom"), grasp("mug"), nav("user"), hand("user")]),
])
def test_hand_over_home(home: LocalPlanner, turns: list[str], expected: list[Call]) -> None:
    assert plan(home, *turns) == expected


def test_hand_over_workshop(workshop: LocalPlanner) -> None:
    assert plan(workshop, "give carol the wrench") == [nav("workshop"), grasp("wrench"), nav("carol"), hand("carol")]
    assert plan(workshop, "pick up the wrench", "hand it to bob") == [nav("bob"), hand("bob")]


# -- stop, say --------------------------------------------------------------------------

@pytest.mark.parametrize("utterance", ["stop", "halt", "freeze", "Stop!", "please stop now", "emergency stop",
                                       "stop moving", "STOP STOP STOP", "freeze, robot!", "don't move"])
def test_stop(home: LocalPlanner, utterance: str) -> None:
    assert plan(home, utterance) == [STOP]


def test_stop_in_the_other_world(workshop: LocalPlanner) -> None:
    assert plan(workshop, "halt!") == [STOP]


def test_a_stop_word_stops_even_when_the_rest_is_not_understood(home: LocalPlanner) -> None:
    assert plan(home, "whoa whoa stop") == [STOP]
    assert plan(home, "no") == [STOP]


@pytest.mark.parametrize(("utterance", "text"), [
    ("say hello", "hello"),
    ("Say Hello, World!", "Hello, World"),
    ("please say good morning", "good morning"),
    ("say salt and pepper", "salt and pepper"),
    ("say stop", "stop"),
    ("tell alice dinner is ready", "Alice, dinner is ready"),
    ("tell alice that the tea is hot", "Alice, the tea is hot"),
])
def test_say(home: LocalPlanner, utterance: str, text: str) -> None:
    assert plan(home, utterance) == [("say", {"text": text})]


def test_tell_in_the_other_world(workshop: LocalPlanner) -> None:
    assert plan(workshop, "tell bob lunch is ready") == [("say", {"text": "Bob, lunch is ready"})]


# -- sequences ----------------------------------------------------------------------------

@pytest.mark.parametrize("utterance", [
    "go to the kitchen and then pick up the red cup",
    "go to the kitchen then pick up the red cup",
    "go to the kitchen, then pick up the red cup",
    "go to the kitchen, and pick up the red cup",
    "Go to the kitchen. After that, pick up the red cup!",
    "first go to the kitchen and after that pick up the red cup",
])
def test_sequence_does_not_drive_twice(home: LocalPlanner, utterance: str) -> None:
    assert plan(home, utterance) == [nav("kitchen"), grasp("red cup")]


@pytest.mark.parametrize(("utterance", "expected"), [
    ("pick up the red cup and put it on the shelf", [nav("kitchen"), grasp("red cup"), nav("living_room"),
                                                     place("shelf")]),
    ("say hello and then go to the dock", [("say", {"text": "hello"}), nav("dock")]),
    ("go to the bedroom slowly, then come back quickly", [nav("bedroom", speed=0.2), nav("user", speed=0.5)]),
    ("pick up the red cup and the blue cup", [nav("kitchen"), grasp("red cup"), grasp("blue cup")]),
    ("go to the kitchen and stop", [nav("kitchen"), STOP]),
    ("don't go to the kitchen, go to the bedroom", [nav("bedroom")]),
])
def test_sequences(home: LocalPlanner, utterance: str, expected: list[Call]) -> None:
    assert plan(home, utterance) == expected


def test_sequence_in_the_other_world(workshop: LocalPlanner) -> None:
    assert plan(workshop, "go to the garage and then grab the yellow screwdriver, after that come here") == [
        nav("garage"), grasp("yellow screwdriver"), nav("user")]


def test_a_negated_instruction_is_acknowledged_not_done(home: LocalPlanner) -> None:
    response = home.plan(history("don't go to the kitchen"))
    assert response.tool_calls == ()
    assert response.text == "OK, I won't go to the kitchen."


# -- references to earlier turns ----------------------------------------------------------

@pytest.mark.parametrize(("turns", "expected"), [
    # "it": the last object mentioned or grasped
    (["pick up the red cup", "bring it to me"], [nav("user"), hand("user")]),
    (["go to the red cup", "pick it up"], [grasp("red cup")]),
    (["pick up the book and put it on the table"], [nav("living_room"), grasp("book"), nav("kitchen"),
                                                   place("table")]),
    # a surface to put on does not become "it"
    (["pick up the book", "put it on the table", "pick it up"], [grasp("book")]),
    # "there": the last place mentioned
    (["go to the bedroom", "pick up the red cup", "go there"], [nav("bedroom")]),
    (["go to the kitchen, pick up the red cup and put it there"], [nav("kitchen"), grasp("red cup"),
                                                                  place("kitchen")]),
    # "the other one": the other object of the same label as the last one mentioned
    (["pick up the red cup", "bring me the other one"], [grasp("blue cup"), nav("user"), hand("user")]),
    (["bring me the blue cup", "now bring me the other one, please"],
     [nav("kitchen"), grasp("red cup"), nav("user"), hand("user")]),
    (["pick up the red cup", "put it down", "grab the other cup"], [grasp("blue cup")]),
])
def test_references_across_turns(home: LocalPlanner, turns: list[str], expected: list[Call]) -> None:
    assert plan(home, *turns) == expected


def test_the_other_one_in_the_other_world(workshop: LocalPlanner) -> None:
    assert plan(workshop, "pick up the red screwdriver", "bring me the other one") == [
        nav("garage"), grasp("yellow screwdriver"), nav("user"), hand("user")]


@pytest.mark.parametrize(("turns", "start"), [
    (["put it on the table"], "What do you mean by 'it'?"),
    (["go there"], "Where do you mean by 'there'?"),
    (["bring me the other one"], "Which object do you mean by 'the other one'?"),
    (["pick up the book", "pick up the other one"], "I don't see another book."),
])
def test_references_without_antecedent_ask(home: LocalPlanner, turns: list[str], start: str) -> None:
    assert question(home, *turns).startswith(start)


# -- clarification over two turns ---------------------------------------------------------

def test_an_ambiguous_reference_asks_and_does_nothing_else(home: LocalPlanner) -> None:
    assert question(home, "bring me the cup") == WHICH_CUP
    assert question(home, "go to the kitchen and then pick up the cup") == WHICH_CUP


@pytest.mark.parametrize(("answer", "reference"), [
    ("the red one", "red cup"),
    ("red", "red cup"),
    ("the red cup", "red cup"),
    ("Red, please.", "red cup"),
    ("cup_red", "red cup"),
    ("the first one", "red cup"),
    ("the blue cup", "blue cup"),
    ("I mean the blue one", "blue cup"),
    ("no, the second one", "blue cup"),
    ("take the blue one", "blue cup"),
    ("either", "red cup"),
])
def test_the_answer_completes_the_pending_plan(home: LocalPlanner, answer: str, reference: str) -> None:
    assert plan(home, "bring me the cup", answer) == [nav("kitchen"), grasp(reference), nav("user"), hand("user")]


def test_the_answer_completes_a_whole_pending_sequence(home: LocalPlanner) -> None:
    assert plan(home, "go to the kitchen and then put the cup on the shelf", "blue") == [
        nav("kitchen"), grasp("blue cup"), nav("living_room"), place("shelf")]


def test_robot_turns_in_the_history_do_not_matter(home: LocalPlanner) -> None:
    with_robot = history("bring me the cup", "the red one", robot=[WHICH_CUP])
    assert home.plan(TurnRequest(history=with_robot)) == home.plan(history("bring me the cup", "the red one"))


def test_a_wrong_answer_asks_again_and_a_later_answer_still_completes(home: LocalPlanner) -> None:
    again = question(home, "bring me the cup", "the green one")
    assert again == f"I don't see a green cup. {WHICH_CUP}"
    assert question(home, "bring me the cup", "dance") == f"Sorry, I didn't understand 'dance'. {WHICH_CUP}"
    assert plan(home, "bring me the cup", "the green one", "blue") == [
        nav("kitchen"), grasp("blue cup"), nav("user"), hand("user")]


def test_never_mind_drops_the_pending_plan(home: LocalPlanner) -> None:
    response = home.plan(history("bring me the cup", "never mind"))
    assert (response.text, response.tool_calls) == ("OK, never mind.", ())
    assert question(home, "bring me the cup", "never mind", "red").startswith("Sorry, I didn't understand 'red'.")


def test_a_new_instruction_replaces_the_pending_one(home: LocalPlanner) -> None:
    assert plan(home, "bring me the cup", "go to the dock") == [nav("dock")]
    assert plan(home, "bring me the cup", "go to the dock", "red").__len__() == 1  # "red" answers nothing now


def test_clarification_in_the_other_world(workshop: LocalPlanner) -> None:
    assert question(workshop, "bring me the screwdriver") == \
        "Which screwdriver do you mean: the red screwdriver or the yellow screwdriver?"
    assert plan(workshop, "bring me the screwdriver", "the yellow one") == [
        nav("garage"), grasp("yellow screwdriver"), nav("user"), hand("user")]


def test_the_pending_plan_is_rebuilt_from_the_history_alone(tools: list[ToolSpec]) -> None:
    world = load_world(ROOT / "config" / "world.yaml")
    first, second = LocalPlanner(world, tools), LocalPlanner(world, tools)
    first.plan(history("bring me the cup"))  # a planner that saw the question ...
    # ... and one that did not give the same answer: no hidden state
    assert first.plan(history("bring me the cup", "red")) == second.plan(history("bring me the cup", "red"))
    assert second.replay(history("bring me the cup")).pending is not None


# -- unknown words ----------------------------------------------------------------------

@pytest.mark.parametrize(("utterance", "expected"), [
    ("go to the garage", f"I don't know a place called 'garage'. {HOME_PLACES}"),
    ("drive to the Garden", f"I don't know a place called 'Garden'. {HOME_PLACES}"),
    ("fetch the hammer", "I don't know an object called 'hammer'. I know: red cup, blue cup, green mug, yellow book, "
                         "grey knife, table and shelf."),
    ("bring me the green cup", "I don't see a green cup. I know: red cup and blue cup."),
    ("pick up the table", "I can't pick up the table. I can pick up: red cup, blue cup, green mug, yellow book and "
                          "grey knife."),
    ("give the book to bob", "I don't know anyone called 'bob'. I know: alice and you."),
    ("put the book on the moon", "I don't know a place or object called 'moon'. Places I know: dock, kitchen, "
                                 "living room, bedroom and user; objects: red cup, blue cup, green mug, yellow book, "
                                 "grey knife, table and shelf."),
])
def test_unknown_words_ask(home: LocalPlanner, utterance: str, expected: str) -> None:
    assert question(home, utterance) == expected


@pytest.mark.parametrize("utterance", ["dance for me", "what's the weather", "go to the kitchen and juggle"])
def test_unknown_instructions_ask_naming_what_the_robot_can_do(home: LocalPlanner, utterance: str) -> None:
    asked = question(home, utterance)
    assert asked.startswith("Sorry, I didn't understand '")
    assert "I can go to a place, bring you something, pick something up" in asked


@pytest.mark.parametrize(("utterance", "expected"), [
    ("go to the kitchen", "I don't know a place called 'kitchen'. I know: dock, workshop, garage and store room."),
    ("go to the garden", "I don't know a place called 'garden'. I know: dock, workshop, garage and store room."),
    ("bring me the cup", "I don't know an object called 'cup'. I know: silver wrench, red screwdriver, yellow "
                         "screwdriver, workbench, brown crate and black oil can."),
    ("pick up the crate", "I can't pick up the crate. I can pick up: silver wrench, red screwdriver, yellow "
                          "screwdriver and black oil can."),
])
def test_unknown_words_ask_in_the_other_world(workshop: LocalPlanner, utterance: str, expected: str) -> None:
    assert question(workshop, utterance) == expected


def test_an_answer_to_an_unknown_place_completes_the_plan(home: LocalPlanner) -> None:
    assert plan(home, "go to the garage", "the kitchen") == [nav("kitchen")]
    assert plan(home, "fetch the hammer", "the book") == [nav("living_room"), grasp("book"), nav("user"), hand("user")]


def test_an_unknown_word_in_a_sequence_does_nothing(home: LocalPlanner) -> None:
    assert question(home, "go to the kitchen and then go to the garage").startswith("I don't know a place called")


def test_stop_is_kept_when_the_rest_needs_a_question(home: LocalPlanner) -> None:
    calls = plan(home, "stop and go to the garage")
    assert [name for name, _ in calls] == ["stop", "ask"]


def test_small_talk_is_acknowledged(home: LocalPlanner) -> None:
    assert home.plan(history("thank you")).text == "You're welcome."
    assert home.plan(history("ok")).text == "OK."
    assert question(home, "what can you do").startswith("I can go to a place")


# -- plugins' phrasings ---------------------------------------------------------------------

class Beep(Leaf):
    """Beep a number of times, in a tone."""

    TOOL = "beep"
    PARAMS = {
        "times": Param({"type": "integer", "minimum": 1, "maximum": 5}, "how many beeps", default=1),
        "tone": Param({"enum": ["low", "high"]}, "the tone", default="low"),
    }
    PHRASES = {"beep": ["beep", "beep {times} times", "make a {tone} beep",
                        "beep {times} times [in | with] [a] {tone} [tone]", ("beep twice", {"times": 2})]}

    def update(self) -> py_trees.common.Status:
        return py_trees.common.Status.SUCCESS


class PointAt(Leaf):
    """Point at an object."""

    TOOL = "point_at"
    PARAMS = {"object": Param({"type": "string", "minLength": 1}, "what to point at")}
    PHRASES = ["point at {object}", "show me {object}", "point {where}", "point somewhere"]

    def update(self) -> py_trees.common.Status:
        return py_trees.common.Status.SUCCESS


class Nod(Leaf):
    """Nod (no declared phrasings: said by its tool name)."""

    TOOL = "nod"

    def update(self) -> py_trees.common.Status:
        return py_trees.common.Status.SUCCESS


@pytest.fixture(scope="module")
def plugged() -> LocalPlanner:
    registry = Registry.default(plugins=False)
    for cls in (Beep, PointAt, Nod):
        registry.add_class(cls, origin="plugin:test")
    return LocalPlanner.from_registry(load_world(ROOT / "config" / "world.yaml"), registry)


@pytest.mark.parametrize(("utterance", "expected"), [
    ("beep", [("beep", {})]),
    ("beep 3 times", [("beep", {"times": 3})]),
    ("please beep three times in a high tone", [("beep", {"times": 3, "tone": "high"})]),
    ("make a high beep", [("beep", {"tone": "high"})]),
    ("beep twice", [("beep", {"times": 2})]),
    ("nod", [("nod", {})]),
    ("point at the red cup", [("point_at", {"object": "red cup"})]),
    ("show me the book", [("point_at", {"object": "book"})]),
    ("go to the kitchen and then beep twice", [nav("kitchen"), ("beep", {"times": 2})]),
    ("pick up the red cup, point at the other one", [nav("kitchen"), grasp("red cup"),
                                                    ("point_at", {"object": "blue cup"})]),
])
def test_plugin_phrasings(plugged: LocalPlanner, utterance: str, expected: list[Call]) -> None:
    assert plan(plugged, utterance) == expected


@pytest.mark.parametrize(("utterance", "expected"), [
    ("beep 9 times", "'9' is not a times I can use for beep: it takes a whole number from 1 to 5. How many?"),
    ("make a loud beep", "'loud' is not a tone I know for beep. I know: low or high."),
    ("point at the cup", WHICH_CUP),
])
def test_plugin_slots_are_checked_against_the_schema(plugged: LocalPlanner, utterance: str, expected: str) -> None:
    assert question(plugged, utterance) == expected


def test_plugin_phrasings_that_do_not_fit_are_reported(plugged: LocalPlanner) -> None:
    problems = plugged.grammar.problems
    assert any("'point {where}'" in p and "{where} is not a parameter of 'point_at'" in p for p in problems)
    assert any("'point somewhere'" in p and "required argument object" in p for p in problems)
    assert len(problems) == 2
    assert "beep" in question(plugged, "what can you do")


def test_phrases_from_registry_reads_the_leaf_classes() -> None:
    registry = Registry.default(plugins=False)
    registry.add_class(Beep, origin="plugin:test")
    registry.add_class(PointAt, origin="plugin:test")
    found = phrases_from_registry(registry)
    assert found["beep"][:2] == ["beep", "beep {times} times"]
    assert found["point_at"][0] == "point at {object}"  # a plain list names the class's own tool
    assert set(found) == {"beep", "point_at"}


def test_phrasings_can_be_given_directly(tools: list[ToolSpec]) -> None:
    wave = ToolSpec("wave", "Wave.", {"type": "object", "properties": {
        "times": {"type": "integer", "minimum": 1, "maximum": 10}}, "required": [], "additionalProperties": False})
    planner = LocalPlanner(load_world(ROOT / "config" / "world.yaml"), [*tools, wave],
                           phrases={"wave": ["wave [at me]", "wave {times} times"]})
    assert plan(planner, "wave at me") == [("wave", {})]
    assert plan(planner, "wave 4 times") == [("wave", {"times": 4})]


def test_families_follow_the_registered_tools(home: LocalPlanner) -> None:
    without_hand_over = [t for t in home.grammar.tools.values() if t.name != "hand_over"]
    planner = LocalPlanner(home.world, without_hand_over)
    assert question(planner, "bring me the book").startswith("Sorry, I didn't understand 'bring me the book'.")
    assert plan(planner, "pick up the book") == [nav("living_room"), grasp("book")]
    no_ask = LocalPlanner(home.world, [t for t in home.grammar.tools.values() if t.name != "ask"])
    response = no_ask.plan(history("bring me the cup"))
    assert (response.text, response.tool_calls) == (WHICH_CUP, ())


# -- the stream ---------------------------------------------------------------------------

def test_stream_shape(home: LocalPlanner) -> None:
    events = stream(home, TurnRequest(history=history("bring me the red cup")))
    assert isinstance(events[-1], ResponseDone) and events[-1].status == "completed"
    assert not any(isinstance(e, ResponseDone) for e in events[:-1])
    closing = [e for e in events if isinstance(e, TextDelta)]
    first_text = events.index(closing[0])
    assert not any(isinstance(e, (ToolCallStarted, ToolCallDelta, ToolCallDone)) for e in events[first_text:]), \
        "the robot's closing words come after every call, so they never delay an action"
    assert "".join(e.text for e in closing) == events[-1].text
    assert events[-1].text == "I'll go to the kitchen, pick up the red cup, come to you and then hand it to you."
    calls: list[tuple[str, str]] = []
    current: ToolCallStarted | None = None
    deltas: list[str] = []
    for event in events[:first_text]:
        if isinstance(event, ToolCallStarted):
            assert current is None, "a call started before the previous one was done"
            current, deltas = event, []
        elif isinstance(event, ToolCallDelta):
            assert current is not None and event.call_id == current.call_id
            deltas.append(event.delta)
        else:
            assert isinstance(event, ToolCallDone)
            assert current is not None and (event.call_id, event.name) == (current.call_id, current.name)
            assert "".join(deltas) == event.arguments
            assert len(deltas) > 1  # streamed in pieces, like a model
            json.loads(event.arguments)
            calls.append((event.name, event.arguments))
            current = None
    assert current is None
    assert [(n, json.loads(a)) for n, a in calls] == [nav("kitchen"), grasp("red cup"), nav("user"), hand("user")]
    assert len({e.call_id for e in events if isinstance(e, ToolCallStarted)}) == 4


def test_stream_text_comes_before_the_calls(home: LocalPlanner) -> None:
    events = stream(home, TurnRequest(history=history("don't go to the kitchen, go to the bedroom")))
    kinds = [e.kind for e in events]
    assert kinds[0] == "text_delta" and kinds[-1] == "response_done"
    started, done = kinds.index("tool_call_started"), len(kinds) - 1 - kinds[::-1].index("tool_call_done")
    before = "".join(e.text for e in events[:started] if isinstance(e, TextDelta))
    after = "".join(e.text for e in events[done:] if isinstance(e, TextDelta))
    assert before == "OK, I won't go to the kitchen."  # the notes come first ...
    assert after == "I'll go to the bedroom."  # ... the plan's summary after every call
    assert events[-1].text == f"{before} {after}"


def test_stream_of_a_question(home: LocalPlanner) -> None:
    events = stream(home, TurnRequest(history=history("bring me the cup")))
    done = [e for e in events if isinstance(e, ToolCallDone)]
    assert [(d.name, json.loads(d.arguments)) for d in done] == [("ask", {"question": WHICH_CUP})]


def test_paced_stream_gives_the_same_events(home: LocalPlanner) -> None:
    paced = LocalPlanner(home.world, list(home.grammar.tools.values()), pacing=Pacing(0.0, 10_000.0))
    request = TurnRequest(history=history("fetch the book"))
    assert [e.to_json() for e in stream(paced, request)] == [e.to_json() for e in stream(home, request)]


def test_determinism(tools: list[ToolSpec], workshop_world: World) -> None:
    turns = ["go to the kitchn", "bring me the cup", "the blue one", "put the book on the table", "go back",
             "tell alice dinner is ready", "stop"]
    world = load_world(ROOT / "config" / "world.yaml")
    for planet in (world, workshop_world):
        a, b = LocalPlanner(planet, tools), LocalPlanner(planet, list(reversed(tools)))
        for n in range(1, len(turns) + 1):
            request = TurnRequest(history=history(*turns[:n]))
            assert a.plan(request) == b.plan(request) == a.plan(request)
            assert [e.to_json() for e in stream(a, request)] == [e.to_json() for e in stream(b, request)]


def test_empty_world_and_empty_history(tools: list[ToolSpec]) -> None:
    planner = LocalPlanner(None, tools)
    assert question(planner, "go to the kitchen") == "I don't know a place called 'kitchen'. I know: no places."
    assert planner.plan(TurnRequest(history=[])).tool_calls[0].name == "ask"


# -- the grammar as data, and as JSGF ---------------------------------------------------------

def test_grammar_data(home: LocalPlanner) -> None:
    data = home.grammar.data()
    families = {p["family"] for p in data["phrases"]}
    assert {"navigate", "fetch", "pick", "put", "give", "say", "tell", "stop", "come", "go_back"} <= families
    navigate = next(p for p in data["phrases"] if p["family"] == "navigate")
    assert navigate["slots"] == {"target": {"kind": "target"}}
    assert data["vocabulary"]["places"]["living_room"] == "living room"
    assert data["vocabulary"]["colors"] == ["blue", "green", "grey", "red", "yellow"]
    assert data["vocabulary"]["humans"] == ["alice"]
    assert "please" in data["fillers"] and "and then" in data["separators"]
    json.dumps(data)


def test_templates_reject_malformed_text() -> None:
    from vla_bt.intent.grammar import TemplateError

    for bad in ["go to (the kitchen", "go to [the] kitchen]", "go to {bad slot}", "go to {x:colour}", "a | | b", ""]:
        with pytest.raises(TemplateError):
            parse_template(bad)


RULE = re.compile(r"^(public )?<([A-Za-z0-9_]+)> = (.+);$")


def _check_jsgf(text: str) -> dict[str, str]:
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines[0] == "#JSGF V1.0;"
    assert re.fullmatch(r"grammar [A-Za-z_][A-Za-z0-9_]*;", lines[1])
    rules: dict[str, str] = {}
    for line in lines[2:]:
        match = RULE.match(line)
        assert match, f"not a JSGF rule: {line}"
        assert match.group(2) not in rules, f"rule <{match.group(2)}> defined twice"
        rules[match.group(2)] = match.group(3)
    for name, body in rules.items():
        depth = {"(": 0, "[": 0}
        for char in body:
            if char in "([":
                depth[char] += 1
            elif char in ")]":
                depth["(" if char == ")" else "["] -= 1
                assert min(depth.values()) >= 0, f"<{name}>: unbalanced"
        assert depth == {"(": 0, "[": 0}, f"<{name}>: unbalanced"
        for reference in re.findall(r"<([A-Za-z0-9_]+)>", body):
            assert reference in rules or reference in ("NULL", "VOID"), f"<{name}> uses undefined <{reference}>"
        words = re.sub(r"<[A-Za-z0-9_]+>|[()\[\]|*+]", " ", body).split()
        assert all(re.fullmatch(r"[a-z][a-z']*", w) for w in words), f"<{name}>: {words}"
    return rules


def test_jsgf(plugged: LocalPlanner) -> None:
    text = to_jsgf(plugged.grammar)
    rules = _check_jsgf(text)
    assert "public <command> = " in text
    assert {"cmd_navigate", "cmd_fetch", "cmd_pick", "cmd_put", "cmd_give", "cmd_say", "cmd_stop", "cmd_beep",
            "cmd_nod", "cmd_point_at"} <= set(rules)
    places = set(rules["place"].split(" | "))
    assert places == {"dock", "kitchen", "living room", "bedroom", "user"}
    assert rules["slot_beep_times"] == "one | two | three | four | five"
    assert rules["slot_beep_tone"] == "high | low"
    assert "cup_red" not in text  # ids are typed, not said
    assert to_jsgf(plugged.grammar) == text


def test_jsgf_of_the_other_world(workshop: LocalPlanner) -> None:
    rules = _check_jsgf(to_jsgf(workshop.grammar, name="workshop"))
    assert set(rules["place"].split(" | ")) == {"dock", "workshop", "garage", "store room"}
    assert "wrench" in rules["label"] and "oil can" in rules["label"]
    assert set(rules["person"].split(" | ")) == {"bob", "carol"}


def test_jsgf_loads_in_pocketsphinx(plugged: LocalPlanner) -> None:
    pocketsphinx = pytest.importorskip("pocketsphinx")
    from vla_bt.intent.grammar import jsgf_words

    decoder = pocketsphinx.Decoder(loglevel="FATAL")
    assert [w for w in sorted(jsgf_words(plugged.grammar)) if decoder.lookup_word(w) is None] == []
    decoder.add_jsgf_string("commands", to_jsgf(plugged.grammar))  # raises ValueError on a bad grammar
    decoder.activate_search("commands")


def test_grammar_without_world_or_tools_is_empty_but_valid() -> None:
    grammar = Grammar()
    assert grammar.parse("go to the kitchen").failed == "go to the kitchen"
    _check_jsgf(to_jsgf(grammar))
