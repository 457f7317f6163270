"""From words to robot action: utterances → model stream → plan steps → commands, end to end.

The same scenarios run through the real command line (``vla-bt run --json
--audit``, in subprocesses) and in-process through ``vla_bt.app.assemble``,
on ``config/world.yaml`` and on a second world written here. Each checks the
commands sent to the simulated robot (skill, grounded arguments, order), the
plan steps, the dialogue and the audit log.

Further sections: the embedded local planner (``--llm local``), streaming
early start through the Realtime backend, refusals of malformed or unknown
tool calls, and the leaves one by one (ParseIntent, ExecutePlan, a skill
leaf's halt, Confirm and high-risk objects).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import py_trees
import pytest
import yaml

from vla_bt import blackboard as keys
from vla_bt.app import assemble
from vla_bt.guards.audit import AuditLog
from vla_bt.guards.validation import load_safety_policy
from vla_bt.leaves.dialogue import Confirm
from vla_bt.leaves.execute import ExecutePlan
from vla_bt.leaves.parse_intent import ParseIntent
from vla_bt.leaves.skills import Navigate
from vla_bt.llm.backend import Backend
from vla_bt.llm.endpoint import RealtimeEndpoint
from vla_bt.llm.events import (
    ResponseDone,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    ToolCallDone,
    ToolCallStarted,
)
from vla_bt.llm.pacing import Pacing, tokens
from vla_bt.llm.realtime import RealtimeBackend
from vla_bt.llm.scripted import PlannedCall, PlannedResponse, ScriptedBackend
from vla_bt.llm.session import ModelSession
from vla_bt.llm.tools import tool_specs
from vla_bt.robot.gate import CommandGate
from vla_bt.robot.protocol import ActionState
from vla_bt.robot.publisher import RobotPublisher
from vla_bt.robot.sim import SimRobot
from vla_bt.robot.world import World, load_world
from vla_bt.speech import ScriptedUtterances
from vla_bt.tree.loader import load_tree
from vla_bt.tree.registry import Registry
from vla_bt.tree.runner import RunResult

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # tests.helpers, as the other tests import it
    sys.path.insert(0, str(ROOT))

from tests.helpers.cli import one_json_object, read_audit, run_cli, say_args  # noqa: E402

pytestmark = pytest.mark.timeout(90)
Status = py_trees.common.Status

TREE = ROOT / "trees" / "assistant.yaml"
CONFIG_WORLD = ROOT / "config" / "world.yaml"
HELLO = ("robot", "Hello! What can I do for you?")
TIME_SCALE = 50.0
KEY = "sk-local-words-to-action-0123456789"

# A second world in the contract format of DESIGN §7: other places, objects and people.
OTHER_WORLD_TEXT = """\
# A workshop, not a flat: other places, objects and people than config/world.yaml.
places:
  garage: [1.0, 1.0, 0.0]
  workshop: [6.0, 3.0, 1.57]
  porch: [2.0, 7.0, 3.14]
  user: [2.5, 1.0, 0.0]
objects:
  - {id: wrench_1, label: wrench, color: silver, at: workshop, graspable: true, mass: 0.5}
  - {id: hammer_red, label: hammer, color: red, at: workshop, mass: 0.8}
  - {id: hammer_black, label: hammer, color: black, at: workshop, mass: 0.8}
  - {id: bench_1, label: bench, at: porch, graspable: false}
  - {id: anvil_1, label: anvil, color: black, pose: [7.0, 1.0, 0.0], graspable: true, mass: 40.0}
humans:
  - {id: bob, pose: [2.5, 1.8, 0.0]}
  - {id: carol, pose: [8.0, 8.0, 0.0]}
robot: {pose: [1.0, 1.0, 0.0], max_speed: 0.8, payload: 1.5, battery: 1.0}
workspace: [[0, 0], [9, 0], [9, 9], [0, 9]]
no_go:
  - {name: pit, polygon: [[6.5, 5.5], [7.5, 5.5], [7.5, 6.5], [6.5, 6.5]]}
"""

# Places of both worlds, as the commands must carry them.
KITCHEN, LIVING_ROOM, BEDROOM, DOCK, USER = (4.0, 2.0, 0.0), (1.5, 4.0, 1.57), (7.5, 6.0, 3.14), (0.0, 0.0, 0.0), \
    (0.5, 0.5, 0.0)
GARAGE, WORKSHOP, PORCH, OTHER_USER = (1.0, 1.0, 0.0), (6.0, 3.0, 1.57), (2.0, 7.0, 3.14), (2.5, 1.0, 0.0)


# -- expectations -------------------------------------------------------------------------------------

def approach(start: Sequence[float], target: Sequence[float], standoff: float) -> tuple[float, float, float]:
    """Where the robot stops short of an object or person: ``standoff`` metres before it, facing it."""
    dx, dy = target[0] - start[0], target[1] - start[1]
    length = math.hypot(dx, dy)
    scale = (length - standoff) / length
    return (start[0] + dx * scale, start[1] + dy * scale, math.atan2(dy, dx))


def nav(target: str, pose: Sequence[float], step: str, speed: float | None = None) -> tuple[str, dict, str]:
    return ("navigate", {"target": target, "pose": list(pose), "speed": speed}, step)


def grasp(object_id: str, step: str) -> tuple[str, dict, str]:
    return ("grasp", {"object": object_id}, step)


def place(target: str, pose: Sequence[float], step: str) -> tuple[str, dict, str]:
    return ("place", {"target": target, "pose": list(pose)}, step)


def hand(person: str, step: str) -> tuple[str, dict, str]:
    return ("hand_over", {"to": person}, step)


def step(sid: str, skill: str, risk: str = "low", **args: Any) -> dict[str, Any]:
    return {"id": sid, "skill": skill, "args": args, "risk": risk}


def call(name: str, **arguments: Any) -> dict[str, str]:
    """A scripted tool call; the arguments are the raw JSON text a model would stream."""
    return {"name": name, "arguments": json.dumps(arguments)}


def same_args(actual: dict[str, Any], expected: dict[str, Any]) -> bool:
    if set(actual) != set(expected):
        return False
    for key, value in expected.items():
        if key == "pose":
            if len(actual[key]) != 3 or any(abs(a - b) > 1e-3 for a, b in zip(actual[key], value, strict=True)):
                return False
        elif actual[key] != value:
            return False
    return True


def assert_commands(actual: Sequence[dict[str, Any]], expected: Sequence[tuple[str, dict, str]]) -> None:
    """The commands sent, exactly: skill, grounded arguments (poses to 1 mm) and step, in this order."""
    got = [(c["skill"], c["args"], c["step"]) for c in actual]
    assert len(got) == len(expected), f"commands {got}\nexpected {list(expected)}"
    for index, ((skill, args, sid), (e_skill, e_args, e_sid)) in enumerate(zip(got, expected, strict=True)):
        assert (skill, sid) == (e_skill, e_sid), f"command {index}: {got[index]} != {expected[index]}"
        assert same_args(args, e_args), f"command {index}: {got[index]} != {expected[index]}"


def robot_turns(dialogue: Sequence[dict[str, Any]]) -> list[str]:
    return [t["text"] for t in dialogue if t["role"] == "robot"]


def assert_audit_matches(audit: Sequence[dict[str, Any]], commands: Sequence[dict[str, Any]]) -> None:
    """Every command sent appears in the audit log as ``command``, with the same arguments and step, in order."""
    logged = [(e["skill"], e["args"], e["step"]) for e in audit if e["kind"] == "command"]
    assert logged == [(c["skill"], c["args"], c["step"]) for c in commands]
    times = [e["t"] for e in audit]
    assert times == sorted(times), "audit lines are appended in time order"


# -- scenarios ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Scenario:
    """One conversation with a scripted model, and everything it must lead to.

    Args:
        id: test id
        world: ``config`` (the default world) or ``other`` (``OTHER_WORLD_TEXT``)
        says: the user's utterances (``--say``), in order
        responses: the scripted model responses (DESIGN §6 format), in order
        commands: every command sent to the robot, in order
        steps: the plan steps of the last response
        dialogue: the whole dialogue as (role, text); a text ending in "…?" is a question checked by ``question``
        question: words a clarification question must name
        rejected: (skill, reason fragment) of every ``rejected`` audit line, in order
    """

    id: str
    world: str
    says: tuple[str, ...]
    responses: tuple[dict[str, Any], ...]
    commands: tuple[tuple[str, dict, str], ...]
    steps: tuple[dict[str, Any], ...]
    dialogue: tuple[tuple[str, str], ...]
    question: tuple[str, ...] = ()
    rejected: tuple[tuple[str, str], ...] = ()


BLUE_CUP_APPROACH = approach(DOCK, KITCHEN, 0.5)
ALICE_FROM_LIVING_ROOM = approach(LIVING_ROOM, (0.5, 1.2), 0.8)
BLACK_HAMMER_APPROACH = approach(GARAGE, WORKSHOP, 0.5)
CUPS_QUESTION = ("red cup", "blue cup")

SCENARIOS = [
    # -- config/world.yaml --------------------------------------------------------------------------------
    Scenario(
        "go-to-a-place", "config", ("go to the living room",),
        ({"tool_calls": [call("navigate", target="the living room")]},),
        (nav("living_room", LIVING_ROOM, "s1"),),
        (step("s1", "navigate", target="living_room"),),
        (HELLO, ("user", "go to the living room"))),
    Scenario(
        "fetch-the-red-cup", "config", ("bring me the red cup",),
        ({"tool_calls": [call("navigate", target="kitchen"), call("grasp", object="the red cup"),
                         call("navigate", target="user"), call("hand_over", to="user")]},),
        (nav("kitchen", KITCHEN, "s1"), grasp("cup_red", "s2"), nav("user", USER, "s3"), hand("alice", "s4")),
        (step("s1", "navigate", target="kitchen"), step("s2", "grasp", object="cup_red"),
         step("s3", "navigate", target="user"), step("s4", "hand_over", to="alice")),
        (HELLO, ("user", "bring me the red cup"))),
    Scenario(
        "pick-up-and-put-on-the-table", "config", ("pick up the blue cup and put it on the table",),
        ({"tool_calls": [call("navigate", target="kitchen"), call("grasp", object="blue cup"),
                         call("place", target="on the table")]},),
        (nav("kitchen", KITCHEN, "s1"), grasp("cup_blue", "s2"), place("table_1", KITCHEN, "s3")),
        (step("s1", "navigate", target="kitchen"), step("s2", "grasp", object="cup_blue"),
         step("s3", "place", target="table_1")),
        (HELLO, ("user", "pick up the blue cup and put it on the table"))),
    Scenario(
        "hand-the-book-to-alice", "config", ("give the book to alice",),
        ({"tool_calls": [call("navigate", target="living room"), call("grasp", object="book"),
                         call("navigate", target="alice"), call("hand_over", to="alice")]},),
        (nav("living_room", LIVING_ROOM, "s1"), grasp("book_1", "s2"), nav("alice", ALICE_FROM_LIVING_ROOM, "s3"),
         hand("alice", "s4")),
        (step("s1", "navigate", target="living_room"), step("s2", "grasp", object="book_1"),
         step("s3", "navigate", target="alice"), step("s4", "hand_over", to="alice")),
        (HELLO, ("user", "give the book to alice"))),
    Scenario(
        "go-back-to-an-earlier-place", "config", ("go to the living room", "now the kitchen", "go back"),
        ({"tool_calls": [call("navigate", target="living_room")]},
         {"tool_calls": [call("navigate", target="kitchen")]},
         {"tool_calls": [call("navigate", target="living room")]}),
        (nav("living_room", LIVING_ROOM, "s1"), nav("kitchen", KITCHEN, "s2"), nav("living_room", LIVING_ROOM, "s3")),
        (step("s3", "navigate", target="living_room"),),
        (HELLO, ("user", "go to the living room"), ("user", "now the kitchen"), ("user", "go back"))),
    Scenario(
        "a-sequence-of-places", "config", ("go to the kitchen, then the bedroom, then back to the dock",),
        ({"tool_calls": [call("navigate", target="kitchen"), call("navigate", target="bedroom"),
                         call("navigate", target="dock")]},),
        (nav("kitchen", KITCHEN, "s1"), nav("bedroom", BEDROOM, "s2"), nav("dock", DOCK, "s3")),
        (step("s1", "navigate", target="kitchen"), step("s2", "navigate", target="bedroom"),
         step("s3", "navigate", target="dock")),
        (HELLO, ("user", "go to the kitchen, then the bedroom, then back to the dock"))),
    Scenario(
        "it-in-a-follow-up", "config", ("go to the blue cup", "pick it up and put it on the table"),
        ({"tool_calls": [call("navigate", target="the blue cup")]},
         {"tool_calls": [call("grasp", object="it"), call("place", target="the table")]}),
        (nav("cup_blue", BLUE_CUP_APPROACH, "s1"), grasp("cup_blue", "s2"), place("table_1", KITCHEN, "s3")),
        (step("s2", "grasp", object="cup_blue"), step("s3", "place", target="table_1")),
        (HELLO, ("user", "go to the blue cup"), ("user", "pick it up and put it on the table"))),
    Scenario(
        "there-in-a-follow-up", "config", ("take the red cup to the living room", "put it down there"),
        ({"tool_calls": [call("navigate", target="kitchen"), call("grasp", object="red cup"),
                         call("navigate", target="living_room")]},
         {"tool_calls": [call("place", target="there")]}),
        (nav("kitchen", KITCHEN, "s1"), grasp("cup_red", "s2"), nav("living_room", LIVING_ROOM, "s3"),
         place("living_room", LIVING_ROOM, "s4")),
        (step("s4", "place", target="living_room"),),
        (HELLO, ("user", "take the red cup to the living room"), ("user", "put it down there"))),
    Scenario(
        "ambiguous-cup-then-the-red-one", "config", ("bring me a cup", "the red one"),
        ({"tool_calls": [call("navigate", target="kitchen"), call("grasp", object="cup"),
                         call("navigate", target="user"), call("hand_over", to="user")]},
         {"tool_calls": [call("grasp", object="red cup"), call("navigate", target="user"),
                         call("hand_over", to="user")]}),
        (nav("kitchen", KITCHEN, "s1"), grasp("cup_red", "s3"), nav("user", USER, "s4"), hand("alice", "s5")),
        (step("s3", "grasp", object="cup_red"), step("s4", "navigate", target="user"),
         step("s5", "hand_over", to="alice")),
        (HELLO, ("user", "bring me a cup"), ("robot", "…?"), ("user", "the red one")),
        question=CUPS_QUESTION,
        rejected=(("navigate", "clarification"), ("hand_over", "clarification"))),
    # -- the workshop world -----------------------------------------------------------------------------
    Scenario(
        "other-world-fetch", "other", ("bring me the silver wrench",),
        ({"tool_calls": [call("navigate", target="workshop"), call("grasp", object="silver wrench"),
                         call("navigate", target="user"), call("hand_over", to="me")]},),
        (nav("workshop", WORKSHOP, "s1"), grasp("wrench_1", "s2"), nav("user", OTHER_USER, "s3"), hand("bob", "s4")),
        (step("s1", "navigate", target="workshop"), step("s2", "grasp", object="wrench_1"),
         step("s3", "navigate", target="user"), step("s4", "hand_over", to="bob")),
        (HELLO, ("user", "bring me the silver wrench"))),
    Scenario(
        "other-world-put-on-the-bench", "other", ("take the red hammer to the porch and put it on the bench",),
        ({"tool_calls": [call("navigate", target="workshop"), call("grasp", object="the red hammer"),
                         call("navigate", target="porch"), call("place", target="on the bench")]},),
        (nav("workshop", WORKSHOP, "s1"), grasp("hammer_red", "s2"), nav("porch", PORCH, "s3"),
         place("bench_1", PORCH, "s4")),
        (step("s1", "navigate", target="workshop"), step("s2", "grasp", object="hammer_red"),
         step("s3", "navigate", target="porch"), step("s4", "place", target="bench_1")),
        (HELLO, ("user", "take the red hammer to the porch and put it on the bench"))),
    Scenario(
        "other-world-it", "other", ("go to the black hammer", "pick it up and bring it to me"),
        ({"tool_calls": [call("navigate", target="black hammer")]},
         {"tool_calls": [call("grasp", object="it"), call("navigate", target="user"), call("hand_over", to="user")]}),
        (nav("hammer_black", BLACK_HAMMER_APPROACH, "s1"), grasp("hammer_black", "s2"), nav("user", OTHER_USER, "s3"),
         hand("bob", "s4")),
        (step("s2", "grasp", object="hammer_black"), step("s3", "navigate", target="user"),
         step("s4", "hand_over", to="bob")),
        (HELLO, ("user", "go to the black hammer"), ("user", "pick it up and bring it to me"))),
    Scenario(
        "other-world-there", "other", ("fetch the wrench and take it to the porch", "leave it there, then go back"),
        ({"tool_calls": [call("navigate", target="workshop"), call("grasp", object="wrench"),
                         call("navigate", target="porch")]},
         {"tool_calls": [call("place", target="there"), call("navigate", target="workshop")]}),
        (nav("workshop", WORKSHOP, "s1"), grasp("wrench_1", "s2"), nav("porch", PORCH, "s3"),
         place("porch", PORCH, "s4"), nav("workshop", WORKSHOP, "s5")),
        (step("s4", "place", target="porch"), step("s5", "navigate", target="workshop")),
        (HELLO, ("user", "fetch the wrench and take it to the porch"), ("user", "leave it there, then go back"))),
    Scenario(
        "other-world-ambiguous-hammer", "other", ("pick up the hammer", "the black one"),
        ({"tool_calls": [call("navigate", target="workshop"), call("grasp", object="hammer")]},
         {"tool_calls": [call("grasp", object="black hammer")]}),
        (nav("workshop", WORKSHOP, "s1"), grasp("hammer_black", "s3")),
        (step("s3", "grasp", object="hammer_black"),),
        (HELLO, ("user", "pick up the hammer"), ("robot", "…?"), ("user", "the black one")),
        question=("red hammer", "black hammer")),
    Scenario(
        "other-world-sequence", "other", ("go to the porch and then the workshop", "go back"),
        ({"tool_calls": [call("navigate", target="porch"), call("navigate", target="the workshop")]},
         {"tool_calls": [call("navigate", target="porch")]}),
        (nav("porch", PORCH, "s1"), nav("workshop", WORKSHOP, "s2"), nav("porch", PORCH, "s3")),
        (step("s3", "navigate", target="porch"),),
        (HELLO, ("user", "go to the porch and then the workshop"), ("user", "go back"))),
]


def check_scenario(s: Scenario, result: dict[str, Any], audit: list[dict[str, Any]]) -> None:
    assert result["status"] == "SUCCESS", result["reason"]
    assert_commands(result["commands"], s.commands)
    assert result["steps"] == list(s.steps)
    dialogue = [(t["role"], t["text"]) for t in result["dialogue"]]
    assert len(dialogue) == len(s.dialogue), dialogue
    for (role, text), (e_role, e_text) in zip(dialogue, s.dialogue, strict=True):
        assert role == e_role, dialogue
        if e_text == "…?":  # a clarification question, as a robot turn
            assert text.endswith("?") and all(w in text for w in s.question), text
        else:
            assert text == e_text, dialogue
    assert_audit_matches(audit, result["commands"])
    rejected = [e for e in audit if e["kind"] == "rejected"]
    assert [e["skill"] for e in rejected] == [skill for skill, _ in s.rejected], rejected
    for event, (_, fragment) in zip(rejected, s.rejected, strict=True):
        assert fragment in event["reason"], event
    assert not [e for e in audit if e["kind"] in ("guard_trip", "safe_stop")], audit
    assert result["trips"] == []


# -- running through the command line and in-process --------------------------------------------------------

@dataclass
class CliRun:
    """A finished ``vla-bt run --json --audit``."""

    process: subprocess.CompletedProcess[str]
    audit_path: Path

    @property
    def result(self) -> dict[str, Any]:
        assert self.process.stderr.strip() == "", self.process.stderr
        return one_json_object(self.process.stdout)

    @property
    def audit(self) -> list[dict[str, Any]]:
        return read_audit(self.audit_path) if self.audit_path.exists() else []


def vla_bt_run(directory: Path, says: Sequence[str], llm: str | None, world: Path | None,
               extra: Sequence[str] = ()) -> CliRun:
    directory.mkdir(parents=True, exist_ok=True)
    audit = directory / "audit.jsonl"
    args = ["run", str(TREE), "--json", "--time-scale", str(int(TIME_SCALE)), "--audit", str(audit),
            "--max-seconds", "40"]
    if llm is not None:
        args += ["--llm", llm]
    if world is not None:
        args += ["--world", str(world)]
    return CliRun(run_cli(*args, *say_args(says), *extra, timeout=60), audit)


def write_script(path: Path, responses: Sequence[dict[str, Any]]) -> Path:
    path.write_text(yaml.safe_dump({"responses": list(responses)}, sort_keys=False), encoding="utf-8")
    return path


@dataclass(frozen=True)
class LocalCase:
    """A conversation with the embedded local planner (the default ``--llm``)."""

    id: str
    says: tuple[str, ...]
    commands: tuple[tuple[str, dict, str], ...]
    steps: tuple[dict[str, Any], ...]
    dialogue: tuple[tuple[str, str], ...]
    question: tuple[str, ...] = ()
    world: str = "config"


LOCAL_CASES = [
    LocalCase("bring-me-the-red-cup", ("bring me the red cup",),
              (nav("kitchen", KITCHEN, "s1"), grasp("cup_red", "s2"), nav("user", USER, "s3"), hand("alice", "s4")),
              (step("s1", "navigate", target="kitchen"), step("s2", "grasp", object="cup_red"),
               step("s3", "navigate", target="user"), step("s4", "hand_over", to="alice")),
              (HELLO, ("user", "bring me the red cup"))),
    LocalCase("kitchen-then-the-blue-cup", ("go to the kitchen and then pick up the blue cup",),
              (nav("kitchen", KITCHEN, "s1"), grasp("cup_blue", "s2")),
              (step("s1", "navigate", target="kitchen"), step("s2", "grasp", object="cup_blue")),
              (HELLO, ("user", "go to the kitchen and then pick up the blue cup"))),
    LocalCase("the-cup-then-the-red-one", ("bring me the cup", "the red one"),
              (nav("kitchen", KITCHEN, "s2"), grasp("cup_red", "s3"), nav("user", USER, "s4"), hand("alice", "s5")),
              (step("s2", "navigate", target="kitchen"), step("s3", "grasp", object="cup_red"),
               step("s4", "navigate", target="user"), step("s5", "hand_over", to="alice")),
              (HELLO, ("user", "bring me the cup"), ("robot", "…?"), ("user", "the red one")),
              question=CUPS_QUESTION),
    LocalCase("put-it-on-the-table", ("go to the kitchen and pick up the blue cup", "put it on the table"),
              (nav("kitchen", KITCHEN, "s1"), grasp("cup_blue", "s2"), place("table_1", KITCHEN, "s3")),
              (step("s3", "place", target="table_1"),),
              (HELLO, ("user", "go to the kitchen and pick up the blue cup"), ("user", "put it on the table"))),
    LocalCase("go-back", ("go to the living room", "go to the kitchen", "go back"),
              (nav("living_room", LIVING_ROOM, "s1"), nav("kitchen", KITCHEN, "s2"),
               nav("living_room", LIVING_ROOM, "s3")),
              (step("s3", "navigate", target="living_room"),),
              (HELLO, ("user", "go to the living room"), ("user", "go to the kitchen"), ("user", "go back"))),
    LocalCase("other-world-bring-me-the-wrench", ("bring me the silver wrench",),
              (nav("workshop", WORKSHOP, "s1"), grasp("wrench_1", "s2"), nav("user", OTHER_USER, "s3"),
               hand("bob", "s4")),
              (step("s1", "navigate", target="workshop"), step("s2", "grasp", object="wrench_1"),
               step("s3", "navigate", target="user"), step("s4", "hand_over", to="bob")),
              (HELLO, ("user", "bring me the silver wrench")), world="other"),
]


@pytest.fixture(scope="module")
def other_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("worlds") / "workshop.yaml"
    path.write_text(OTHER_WORLD_TEXT, encoding="utf-8")
    return path


def world_path(name: str, other: Path) -> Path:
    return CONFIG_WORLD if name == "config" else other


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory: pytest.TempPathFactory, other_world: Path) -> dict[str, CliRun]:
    """Every command-line conversation of this module, run a few at a time (each takes about a second)."""
    base = tmp_path_factory.mktemp("cli")
    jobs: dict[str, Callable[[], CliRun]] = {}
    for s in SCENARIOS:
        directory = base / s.id
        directory.mkdir()
        script = write_script(directory / "script.yaml", s.responses)
        # the default world is given by omitting --world, as a user would
        world = None if s.world == "config" else other_world
        jobs[f"scripted/{s.id}"] = lambda d=directory, s=s, f=script, w=world: vla_bt_run(
            d, s.says, f"scripted:{f}", w)
    for case in LOCAL_CASES:
        world = None if case.world == "config" else other_world
        # --llm omitted: the local planner is the default
        jobs[f"local/{case.id}"] = lambda d=base / f"local-{case.id}", c=case, w=world: vla_bt_run(d, c.says, None, w)
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {name: pool.submit(job) for name, job in jobs.items()}
        return {name: future.result() for name, future in futures.items()}


def in_process(world: World | Path, says: Sequence[str], backend: Backend, audit_path: Path | None = None,
               time_scale: float = TIME_SCALE, max_seconds: float = 40.0) -> tuple[RunResult, AuditLog]:
    """``assemble`` the main tree on the simulator with ``backend`` as the model, and run it."""
    registry = Registry.default()
    loaded = load_tree(TREE, registry)
    world = world if isinstance(world, World) else load_world(world)
    audit = AuditLog(audit_path)
    session = ModelSession(backend, tool_specs(registry))
    run = assemble(loaded, registry, world=world, utterances=ScriptedUtterances(list(says)),
                   robot=SimRobot(world, time_scale=time_scale), session=session, audit=audit,
                   max_seconds=max_seconds, policy=load_safety_policy(ROOT / "config"))
    return run.execute(), audit


def scripted(*responses: PlannedResponse | Sequence[tuple[str, str]], pacing: Pacing | None = None) -> ScriptedBackend:
    """A scripted backend; a response may be given as (tool name, raw arguments) pairs."""
    planned = [r if isinstance(r, PlannedResponse)
               else PlannedResponse(tool_calls=tuple(PlannedCall(n, a) for n, a in r)) for r in responses]
    return ScriptedBackend(planned, pacing)


# =============================================================================================================
# 1. A scripted model, through the command line and in-process, on two worlds
# =============================================================================================================

@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.id for s in SCENARIOS])
def test_scripted_conversation_through_the_command_line(scenario: Scenario, cli_runs: dict[str, CliRun]) -> None:
    run = cli_runs[f"scripted/{scenario.id}"]
    assert run.process.returncode == 0, (run.process.stdout, run.process.stderr)
    check_scenario(scenario, run.result, run.audit)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.id for s in SCENARIOS])
def test_scripted_conversation_in_process(scenario: Scenario, tmp_path: Path, other_world: Path) -> None:
    script = write_script(tmp_path / "script.yaml", scenario.responses)
    backend = ScriptedBackend.from_file(script)
    result, audit = in_process(world_path(scenario.world, other_world), scenario.says, backend,
                               audit_path=tmp_path / "audit.jsonl")
    data = result.to_json()
    check_scenario(scenario, data, read_audit(tmp_path / "audit.jsonl"))
    assert audit.events == read_audit(tmp_path / "audit.jsonl")  # the file holds what was recorded, nothing less
    assert len(backend.requests) == len(scenario.responses)  # one model response per instruction


def test_the_next_response_is_asked_with_the_grounded_tool_results(tmp_path: Path) -> None:
    """The second response is asked with the first response's tool results (accepted, with grounded ids)."""
    backend = scripted([("navigate", '{"target": "kitchen"}'), ("grasp", '{"object": "red cup"}')],
                       [("navigate", '{"target": "there"}')])
    result, _ = in_process(CONFIG_WORLD, ["get the red cup", "stay there"], backend)
    assert result.status == "SUCCESS", result.reason
    first, second = backend.requests
    assert [(t["role"], t["text"]) for t in first.history][-1] == ("user", "get the red cup")
    outputs = {r.call_id: json.loads(r.output) for r in second.tool_results}
    assert outputs == {
        "call_0_0": {"status": "accepted", "step": "s1", "args": {"target": "kitchen"}},
        "call_0_1": {"status": "accepted", "step": "s2", "args": {"object": "cup_red"}},
    }
    assert "s1" in second.perception and "done" in second.perception  # step outcomes reach the model too
    assert_commands(result.commands, [nav("kitchen", KITCHEN, "s1"), grasp("cup_red", "s2"),
                                      nav("kitchen", KITCHEN, "s3")])
    assert keys.read(keys.DIALOGUE_CONTEXT) == {"last_object": "cup_red", "last_label": "cup",
                                                "last_place": "kitchen", "previous_place": "kitchen"}


def test_the_clarification_question_blocks_the_rest_of_the_plan_and_reaches_the_model() -> None:
    backend = scripted([("navigate", '{"target": "kitchen"}'), ("grasp", '{"object": "cup"}'),
                        ("navigate", '{"target": "user"}')],
                       [("grasp", '{"object": "the red cup"}')])
    result, audit = in_process(CONFIG_WORLD, ["bring me a cup", "the red one"], backend)
    assert result.status == "SUCCESS", result.reason
    assert_commands(result.commands, [nav("kitchen", KITCHEN, "s1"), grasp("cup_red", "s3")])
    question = robot_turns(result.dialogue)[1]
    assert question.endswith("?") and "red cup" in question and "blue cup" in question
    outputs = [json.loads(r.output) for r in backend.requests[1].tool_results]
    assert [o["status"] for o in outputs] == ["accepted", "accepted", "rejected"]
    assert outputs[1]["args"] == {"question": question}  # the model learns which question was asked
    # the grasp of "cup" never reached the robot: no grasp was sent before the user's answer
    answer_t = next(t["t"] for t in result.dialogue if t["text"] == "the red one")
    assert all(e["t"] > answer_t for e in audit.of_kind("command") if e["skill"] == "grasp")


# =============================================================================================================
# 2. The embedded local planner (--llm local, the default)
# =============================================================================================================

@pytest.mark.parametrize("case", LOCAL_CASES, ids=[c.id for c in LOCAL_CASES])
def test_local_planner_through_the_command_line(case: LocalCase, cli_runs: dict[str, CliRun]) -> None:
    run = cli_runs[f"local/{case.id}"]
    assert run.process.returncode == 0, (run.process.stdout, run.process.stderr)
    result = run.result
    assert result["status"] == "SUCCESS", result["reason"]
    assert_commands(result["commands"], case.commands)
    assert result["steps"] == list(case.steps)
    spoken = [(t["role"], t["text"]) for t in result["dialogue"]]
    summaries = [text for role, text in spoken if role == "robot" and text.startswith("I'll ")]
    assert summaries, "the robot says what it is about to do"
    dialogue = [(role, text) for role, text in spoken if (role, text) not in [("robot", s) for s in summaries]]
    assert len(dialogue) == len(case.dialogue), dialogue
    for (role, text), (e_role, e_text) in zip(dialogue, case.dialogue, strict=True):
        assert role == e_role, dialogue
        if e_text == "…?":
            assert text.endswith("?") and all(w in text for w in case.question), text
        else:
            assert text == e_text, dialogue
    assert_audit_matches(run.audit, result["commands"])
    assert [e for e in run.audit if e["kind"] == "rejected"] == []


def test_local_planner_in_process_follow_up_with_it() -> None:
    from vla_bt.llm.local import LocalPlanner  # being finished elsewhere: fails here if it cannot be imported

    world = load_world(CONFIG_WORLD)
    planner = LocalPlanner.from_registry(world, Registry.default())
    result, audit = in_process(world, ["go to the kitchen and pick up the blue cup", "put it on the table"], planner)
    assert result.status == "SUCCESS", result.reason
    assert_commands(result.commands, [nav("kitchen", KITCHEN, "s1"), grasp("cup_blue", "s2"),
                                      place("table_1", KITCHEN, "s3")])
    assert audit.of_kind("rejected") == []


# =============================================================================================================
# 3. Streaming early start through the Realtime backend
# =============================================================================================================

class ClockedAudit(AuditLog):
    """An audit log that also notes, for each line, ``time.monotonic()`` and what the tree had seen of the stream."""

    def __init__(self) -> None:
        super().__init__()
        self.clocked: list[tuple[float, dict[str, Any], list[StreamEvent]]] = []

    def write(self, kind: str, **fields: Any) -> dict[str, Any]:
        event = super().write(kind, **fields)
        seen = list(keys.read(keys.LLM_STREAM, []) or [])
        self.clocked.append((time.monotonic(), event, seen))
        return event


@pytest.mark.parametrize("pacing", [Pacing.gpt4o(), Pacing(first_token_s=0.1, tokens_per_s=80.0)],
                         ids=["gpt4o", "faster"])
def test_first_command_is_issued_before_the_realtime_response_ends(pacing: Pacing) -> None:
    response = PlannedResponse(text="", tool_calls=(
        PlannedCall("navigate", '{"target": "kitchen"}'), PlannedCall("grasp", '{"object": "red cup"}'),
        PlannedCall("navigate", '{"target": "user"}')))
    endpoint = RealtimeEndpoint(ScriptedBackend([response]), api_key=KEY, pacing=pacing)
    endpoint.start()
    try:
        registry = Registry.default()
        world = load_world(CONFIG_WORLD)
        audit = ClockedAudit()
        session = ModelSession(RealtimeBackend(base_url=endpoint.url, api_key=KEY, timeout=10.0), tool_specs(registry))
        run = assemble(load_tree(TREE, registry), registry, world=world,
                       utterances=ScriptedUtterances(["bring me the red cup"]),
                       # the robot at a tenth of the usual speed-up, so that step 1 is still running when step 2
                       # arrives (a finished step 1 meanwhile is another test's concern)
                       robot=SimRobot(world, time_scale=10), session=session, audit=audit, max_seconds=30)
        result = run.execute()
    finally:
        endpoint.stop()
    assert result.status == "SUCCESS", result.reason
    assert_commands(result.commands, [nav("kitchen", KITCHEN, "s1"), grasp("cup_red", "s2"), nav("user", USER, "s3")])
    stream = keys.read(keys.LLM_STREAM)
    done = [e for e in stream if isinstance(e, ResponseDone)]
    calls = [e for e in stream if isinstance(e, ToolCallDone)]
    assert len(done) == 1 and [c.name for c in calls] == ["navigate", "grasp", "navigate"]
    first_t, first, seen = next(c for c in audit.clocked if c[1]["kind"] == "command")
    assert first["skill"] == "navigate" and first["step"] == "s1"
    # the same clock (time.monotonic) on both sides: the robot moved before the model had finished
    assert first_t < done[0].t, f"first command at {first_t}, response done at {done[0].t}"
    assert first_t < calls[1].t, "step 1 started while step 2 was still streaming"
    # and the tree had not seen the end of the response when it sent the command
    assert not any(isinstance(e, ResponseDone) for e in seen)
    # acted on at the delta that closed the first call's arguments, at the latest at its done event
    assert [e.name for e in seen if isinstance(e, ToolCallDone)] in ([], ["navigate"])
    assert endpoint.requests and endpoint.requests[0].utterance == "bring me the red cup"


# =============================================================================================================
# 4. Malformed or unknown tool calls never reach the robot; every refusal is audited and told to the model
# =============================================================================================================

REFUSALS = [
    ("unknown-tool", "fly", '{"to": "the moon"}', "unknown tool 'fly'"),
    ("invalid-json", "navigate", '{"target": "kitchen"', "not valid JSON"),
    ("truncated-json", "grasp", '{"object": "red', "not valid JSON"),
    ("arguments-an-array", "navigate", '["kitchen"]', "must be a JSON object"),
    ("arguments-a-string", "grasp", '"red cup"', "must be a JSON object"),
    ("unknown-field", "navigate", '{"target": "bedroom", "via": "the roof"}', "'via' was unexpected"),
    ("wrong-type", "grasp", '{"object": 42}', "42 is not of type 'string'"),
    ("wrong-type-speed", "navigate", '{"target": "bedroom", "speed": "fast"}', "'fast' is not of type"),
    ("nan", "navigate", '{"target": [NaN, 1.0, 0.0]}', "NaN"),
    ("infinity", "navigate", '{"target": "bedroom", "speed": Infinity}', "Infinity"),
    ("overflowing-number", "navigate", '{"target": [1e999, 1.0, 0.0]}', "not finite"),
    ("oversize-string", "grasp", json.dumps({"object": "red cup " * 30}), "is too long"),
    ("missing-required", "grasp", "{}", "'object' is a required property"),
    ("unresolvable-reference", "navigate", '{"target": "the spaceship"}', "the spaceship"),
    ("unknown-object", "grasp", '{"object": "the purple unicorn"}', "purple unicorn"),
    ("unknown-person", "hand_over", '{"to": "zed"}', "zed"),
]


@pytest.mark.parametrize(("name", "raw", "reason"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS])
def test_a_refused_call_never_reaches_the_robot(name: str, raw: str, reason: str, tmp_path: Path) -> None:
    backend = scripted([("navigate", '{"target": "kitchen"}'), (name, raw), ("grasp", '{"object": "red cup"}')],
                       PlannedResponse(text="Sorry, I could not do all of that."))
    result, _ = in_process(CONFIG_WORLD, ["do as I say", "what happened?"], backend,
                           audit_path=tmp_path / "audit.jsonl")
    # only the call before the refusal was carried out; the refused one and the later grasp never were
    assert_commands(result.commands, [nav("kitchen", KITCHEN, "s1")])
    logged = read_audit(tmp_path / "audit.jsonl")
    rejected = [e for e in logged if e["kind"] == "rejected"]
    assert [e["skill"] for e in rejected] == [name, "grasp"], rejected
    assert reason in rejected[0]["reason"], rejected[0]
    assert rejected[1]["reason"].startswith("not carried out") and reason in rejected[1]["reason"]
    assert [e for e in logged if e["kind"] == "command"] == [e for e in logged if e["kind"] == "command"
                                                            and e["skill"] == "navigate"]
    # the user is told why, as a robot turn
    turns = robot_turns(result.dialogue)
    assert any(reason in t and t.startswith("I ") for t in turns), turns
    # the model is told too: the next request carries the refusal as the call's output
    outputs = {r.call_id: json.loads(r.output) for r in backend.requests[1].tool_results}
    assert outputs["call_0_0"]["status"] == "accepted"
    assert outputs["call_0_1"]["status"] == "rejected" and reason in outputs["call_0_1"]["reason"]
    assert outputs["call_0_2"]["status"] == "rejected"
    assert result.steps == []  # the second response planned nothing


def test_refusals_are_left_on_llm_tool_results_for_the_model() -> None:
    backend = scripted([("navigate", '{"target": "the spaceship"}'), ("navigate", '{"target": "kitchen"}')])
    result, audit = in_process(CONFIG_WORLD, ["go to the spaceship"], backend)
    assert result.commands == []
    results = keys.read(keys.LLM_TOOL_RESULTS)
    outputs = [(r["call_id"], json.loads(r["output"])["status"]) for r in results if r.get("call_id")]
    assert outputs == [("call_0_0", "rejected"), ("call_0_1", "rejected")]
    assert "the spaceship" in json.loads(results[0]["output"])["reason"]
    assert keys.read(keys.PLAN_REJECTED) == audit.of_kind("rejected")[0]["reason"]


@pytest.mark.parametrize("raw", ['{"target": [NaN, 1.0, 0.0]}', '{"target": "kitchen", "speed": Infinity}',
                                 '{"target": [-Infinity, 0, 0]}', '{"target": [1e999, 1.0, 0.0]}'],
                         ids=["nan", "infinity", "minus-infinity", "overflow"])
def test_audit_lines_stay_strict_json_when_a_refused_call_holds_non_finite_numbers(raw: str, tmp_path: Path) -> None:
    """DESIGN §8: one JSON object per line. NaN and Infinity are not JSON (RFC 8259); other tools reject them."""
    backend = scripted([("navigate", raw)])
    in_process(CONFIG_WORLD, ["go"], backend, audit_path=tmp_path / "audit.jsonl")
    lines = (tmp_path / "audit.jsonl").read_text(encoding="utf-8").splitlines()
    assert lines, "the refusal is audited"

    def not_json(constant: str) -> Any:
        raise ValueError(f"{constant} is not JSON")

    for line in lines:
        json.loads(line, parse_constant=not_json)


def test_a_target_in_a_no_go_zone_is_refused_at_the_gate(tmp_path: Path) -> None:
    backend = scripted([("navigate", '{"target": [6.5, 0.5, 0.0]}'), ("navigate", '{"target": "kitchen"}')])
    result, _ = in_process(CONFIG_WORLD, ["go onto the stairs"], backend, audit_path=tmp_path / "audit.jsonl")
    assert result.commands == []
    logged = read_audit(tmp_path / "audit.jsonl")
    rejected = [e for e in logged if e["kind"] == "rejected"]
    assert len(rejected) == 1 and rejected[0]["skill"] == "navigate" and "stairs" in rejected[0]["reason"]
    assert rejected[0]["step"] == "s1"
    assert not [e for e in logged if e["kind"] == "command"]
    assert any("stairs" in t for t in robot_turns(result.dialogue))


# =============================================================================================================
# 5. The leaves, one at a time
# =============================================================================================================

def writer(*names: str) -> py_trees.blackboard.Client:
    client = py_trees.blackboard.Client(name="test")
    for name in names:
        client.register_key(name, access=py_trees.common.Access.WRITE)
    return client


def publish_scene(world: World, sim: SimRobot | None = None) -> SimRobot:
    sim = sim or SimRobot(world)
    RobotPublisher(CommandGate(sim)).publish()
    return sim


def call_events(call_id: str, name: str, arguments: str) -> list[StreamEvent]:
    return [ToolCallStarted(call_id=call_id, name=name),
            *(ToolCallDelta(call_id=call_id, delta=piece) for piece in tokens(arguments)),
            ToolCallDone(call_id=call_id, name=name, arguments=arguments)]


def parse_intent_tree(world: World, audit: AuditLog | None = None) -> py_trees.trees.BehaviourTree:
    registry = Registry.default()
    tree = py_trees.trees.BehaviourTree(ParseIntent())
    session = ModelSession(ScriptedBackend([]), tool_specs(registry))
    tree.setup(timeout=5, llm=session, world=world, audit=audit or AuditLog())
    return tree


def test_parse_intent_adds_each_step_as_its_call_completes() -> None:
    world = load_world(CONFIG_WORLD)
    publish_scene(world)
    board = writer(keys.LLM_STREAM)
    tree = parse_intent_tree(world)
    stream: list[StreamEvent] = []

    def feed(*events: StreamEvent) -> tuple[Status, list[Any], bool]:
        stream.extend(events)
        board.set(keys.LLM_STREAM, list(stream))
        tree.tick()
        return tree.root.status, keys.read(keys.PLAN_STEPS), keys.read(keys.PLAN_DONE)

    first = call_events("c1", "navigate", '{"target": "kitchen"}')
    assert feed(TextDelta(text="On my way. "), *first[:-2]) == (Status.RUNNING, [], False)  # not complete yet
    assert feed(first[-2]) == (Status.RUNNING, [step("s1", "navigate", target="kitchen")], False)  # closing delta
    assert feed(first[-1]) == (Status.RUNNING, [step("s1", "navigate", target="kitchen")], False)  # done: no more
    second = call_events("c2", "grasp", '{"object": "red cup"}')
    assert feed(*second[:3]) == (Status.RUNNING, [step("s1", "navigate", target="kitchen")], False)
    assert feed(*second[3:]) == (Status.RUNNING, [step("s1", "navigate", target="kitchen"),
                                                  step("s2", "grasp", object="cup_red")], False)
    final = feed(ResponseDone(text="On my way. "))
    assert final == (Status.SUCCESS, [step("s1", "navigate", target="kitchen"),
                                      step("s2", "grasp", object="cup_red")], True)
    assert keys.read(keys.DIALOGUE_CONTEXT)["last_object"] == "cup_red"
    assert keys.read(keys.DIALOGUE_CONTEXT)["last_place"] == "kitchen"


def test_parse_intent_follows_a_slowly_streaming_model_tick_by_tick() -> None:
    """Ask and ParseIntent in a Parallel, ticked in-process: the plan grows while the response still streams."""
    from vla_bt.leaves.ask import Ask

    world = load_world(CONFIG_WORLD)
    publish_scene(world)
    registry = Registry.default()
    backend = scripted([("navigate", '{"target": "kitchen"}'), ("grasp", '{"object": "blue cup"}'),
                        ("navigate", '{"target": "user"}')], pacing=Pacing(first_token_s=0.0, tokens_per_s=150.0))
    session = ModelSession(backend, tool_specs(registry))
    root = py_trees.composites.Parallel("Plan", policy=py_trees.common.ParallelPolicy.SuccessOnAll(),
                                        children=[Ask(timeout=10.0), ParseIntent()])
    tree = py_trees.trees.BehaviourTree(root)
    writer(keys.DIALOGUE_HISTORY).set(keys.DIALOGUE_HISTORY, [{"role": "user", "text": "bring me the blue cup",
                                                               "t": time.time()}])
    tree.setup(timeout=5, llm=session, world=world, audit=AuditLog())
    seen: list[tuple[int, bool, bool]] = []  # (steps, /plan/done, response done on /llm/stream)
    deadline = time.monotonic() + 10
    try:
        while root.status != Status.SUCCESS:
            assert time.monotonic() < deadline and root.status != Status.FAILURE, root.status
            tree.tick()
            stream = keys.read(keys.LLM_STREAM, []) or []
            seen.append((len(keys.read(keys.PLAN_STEPS, []) or []), bool(keys.read(keys.PLAN_DONE)),
                         any(isinstance(e, ResponseDone) for e in stream)))
            time.sleep(0.002)
    finally:
        session.close()
    counts = [n for n, _, _ in seen]
    assert counts == sorted(counts) and counts[-1] == 3
    for n in (1, 2):  # each step was on the blackboard while the response was still streaming
        assert any(count == n and not streamed for count, _, streamed in seen), seen
    assert all(not plan_done for _, plan_done, streamed in seen if not streamed)
    assert seen[-1] == (3, True, True)
    assert keys.read(keys.PLAN_STEPS) == [step("s1", "navigate", target="kitchen"),
                                          step("s2", "grasp", object="cup_blue"),
                                          step("s3", "navigate", target="user")]


def test_parse_intent_reads_json_steps_in_plain_text() -> None:
    world = load_world(CONFIG_WORLD)
    publish_scene(world)
    board = writer(keys.LLM_STREAM)
    tree = parse_intent_tree(world)
    text = ('Sure. {"tool": "navigate", "arguments": {"target": "kitchen"}} and then '
            '{"name": "grasp", "args": {"object": "red cup"}} done.')
    cut = text.index("and then")
    board.set(keys.LLM_STREAM, [TextDelta(text=text[:20])])
    tree.tick()
    assert keys.read(keys.PLAN_STEPS) == []  # the object is still streaming
    board.set(keys.LLM_STREAM, [TextDelta(text=text[:20]), TextDelta(text=text[20:cut])])
    tree.tick()
    assert keys.read(keys.PLAN_STEPS) == [step("s1", "navigate", target="kitchen")]
    assert tree.root.status == Status.RUNNING
    board.set(keys.LLM_STREAM, [TextDelta(text=text[:20]), TextDelta(text=text[20:cut]), TextDelta(text=text[cut:]),
                                ResponseDone(text=text)])
    tree.tick()
    assert tree.root.status == Status.SUCCESS
    assert keys.read(keys.PLAN_STEPS) == [step("s1", "navigate", target="kitchen"),
                                          step("s2", "grasp", object="cup_red")]


def test_json_steps_in_plain_text_drive_the_robot_end_to_end() -> None:
    text = ('I will fetch it: {"tool": "navigate", "arguments": {"target": "kitchen"}} '
            '{"tool": "grasp", "arguments": {"object": "blue cup"}}')
    result, _ = in_process(CONFIG_WORLD, ["get the blue cup"], scripted(PlannedResponse(text=text)))
    assert result.status == "SUCCESS", result.reason
    assert_commands(result.commands, [nav("kitchen", KITCHEN, "s1"), grasp("cup_blue", "s2")])
    assert robot_turns(result.dialogue)[-1] == text


@dataclass
class Rig:
    """ExecutePlan (or a leaf) on the simulator with a clock the test moves."""

    world: World
    sim: SimRobot
    gate: CommandGate
    audit: AuditLog
    board: py_trees.blackboard.Client
    now: list[float] = field(default_factory=lambda: [0.0])

    def advance(self, seconds: float) -> None:
        self.now[0] += seconds


def rig(world_file: Path = CONFIG_WORLD) -> Rig:
    world = load_world(world_file)
    now = [0.0]
    sim = SimRobot(world, clock=lambda: now[0])
    sim.setup()
    audit = AuditLog()
    gate = CommandGate(sim, audit)
    board = writer(keys.PLAN_STEPS, keys.PLAN_DONE, keys.PLAN_REJECTED, keys.PLAN_OVERTURNED)
    return Rig(world, sim, gate, audit, board, now)


def execute_plan_tree(r: Rig) -> py_trees.trees.BehaviourTree:
    tree = py_trees.trees.BehaviourTree(ExecutePlan())
    publisher = RobotPublisher(r.gate)
    tree.add_pre_tick_handler(publisher.pre_tick)
    tree.setup(timeout=5, registry=Registry.default(), robot=r.gate, world=r.world, audit=r.audit,
               utterances=ScriptedUtterances([]))
    r.board.set(keys.PLAN_STEPS, [])
    r.board.set(keys.PLAN_DONE, False)
    r.board.set(keys.PLAN_REJECTED, None)
    r.board.set(keys.PLAN_OVERTURNED, {})
    return tree


def test_execute_plan_grows_as_steps_arrive_and_starts_each_at_once() -> None:
    r = rig()
    tree = execute_plan_tree(r)
    tree.tick()
    assert tree.root.status == Status.RUNNING and tree.root.children == []  # waiting for the plan
    s1 = step("s1", "navigate", target="kitchen")
    r.board.set(keys.PLAN_STEPS, [s1])
    tree.tick()
    assert [c.name for c in tree.root.children] == ["s1 navigate kitchen"]
    assert [c.skill for c in r.gate.commands] == ["navigate"]  # sent before step 2 exists
    s2 = step("s2", "grasp", object="cup_red")
    r.board.set(keys.PLAN_STEPS, [s1, s2])
    tree.tick()
    assert len(tree.root.children) == 2 and tree.root.children[0].status == Status.RUNNING
    assert [c.skill for c in r.gate.commands] == ["navigate"]  # the grasp waits for the navigation
    for _ in range(200):
        r.advance(0.1)
        tree.tick()
        if [c.skill for c in r.gate.commands] == ["navigate", "grasp"]:
            break
    assert [(c.skill, c.step) for c in r.gate.commands] == [("navigate", "s1"), ("grasp", "s2")]
    assert r.sim.pose == (4.0, 2.0, 0.0)
    r.advance(1.5)  # the grasp takes one simulated second
    tree.tick()
    assert r.sim.holding == "cup_red" and tree.root.status == Status.RUNNING
    for _ in range(3):  # every step so far is done; the model has not finished: wait, repeat nothing
        r.advance(0.1)
        tree.tick()
        assert tree.root.status == Status.RUNNING, tree.root.feedback_message
    assert [(c.skill, c.step) for c in r.gate.commands] == [("navigate", "s1"), ("grasp", "s2")]
    r.board.set(keys.PLAN_DONE, True)
    tree.tick()
    assert tree.root.status == Status.SUCCESS
    assert [(c.skill, c.step) for c in r.gate.commands] == [("navigate", "s1"), ("grasp", "s2")]
    outcomes = [json.loads(e["output"]) for e in keys.read(keys.LLM_TOOL_RESULTS)]
    assert outcomes == [{"step": "s1", "outcome": "done"}, {"step": "s2", "outcome": "done"}]


@pytest.mark.parametrize(("calls", "commands", "said"), [
    ([("say", '{"text": "On my way."}'), ("navigate", '{"target": "kitchen"}')],
     [nav("kitchen", KITCHEN, "s2")], ["On my way."]),
    ([("navigate", '{"target": "kitchen"}'), ("grasp", '{"object": "the red cup"}')],
     [nav("kitchen", KITCHEN, "s1"), grasp("cup_red", "s2")], []),
], ids=["say-then-navigate", "navigate-then-grasp"])
def test_a_finished_step_is_not_carried_out_again_while_the_model_still_streams(
        calls: list[tuple[str, str]], commands: list[tuple[str, dict, str]], said: list[str]) -> None:
    """Step 1 ends before step 2 has finished streaming (a slow model): step 1 must not run again meanwhile."""
    backend = scripted(calls, pacing=Pacing(first_token_s=0.0, tokens_per_s=12.0))
    result, _ = in_process(CONFIG_WORLD, ["go"], backend)
    assert result.status == "SUCCESS", result.reason
    assert_commands(result.commands, commands)
    assert robot_turns(result.dialogue)[1:] == said


def test_execute_plan_fails_at_the_first_failing_step_and_says_why() -> None:
    r = rig()
    tree = execute_plan_tree(r)
    r.board.set(keys.PLAN_STEPS, [step("s1", "navigate", target="dock"), step("s2", "hand_over", to="alice"),
                                  step("s3", "navigate", target="kitchen")])
    r.board.set(keys.PLAN_DONE, True)
    for _ in range(20):
        tree.tick()
        r.advance(0.1)
        if tree.root.status != Status.RUNNING:
            break
    assert tree.root.status == Status.FAILURE
    assert [(c.skill, c.step) for c in r.gate.commands] == [("navigate", "s1"), ("hand_over", "s2")]
    assert tree.root.children[2].status == Status.INVALID  # s3 never started
    said = robot_turns(keys.read(keys.DIALOGUE_HISTORY))
    assert len(said) == 1 and said[0].startswith("I stopped") and "s2" in said[0] and "holding nothing" in said[0]
    outcomes = [json.loads(e["output"]) for e in keys.read(keys.LLM_TOOL_RESULTS)]
    assert outcomes[0] == {"step": "s1", "outcome": "done"}
    assert outcomes[1]["step"] == "s2" and "holding nothing" in outcomes[1]["outcome"]
    assert len(outcomes) == 2


def test_execute_plan_fails_when_the_plan_was_cut_short_by_a_refusal() -> None:
    r = rig()
    tree = execute_plan_tree(r)
    r.board.set(keys.PLAN_STEPS, [step("s1", "navigate", target="dock")])
    r.board.set(keys.PLAN_REJECTED, "unknown tool 'fly'")
    r.board.set(keys.PLAN_DONE, True)
    for _ in range(5):
        tree.tick()
        r.advance(0.1)
        if tree.root.status != Status.RUNNING:
            break
    assert tree.root.status == Status.FAILURE
    assert [c.skill for c in r.gate.commands] == ["navigate"]
    assert robot_turns(keys.read(keys.DIALOGUE_HISTORY)) == ["I could not do all of it: unknown tool 'fly'"]


def test_halting_a_skill_leaf_cancels_the_robot_action_and_stops_safely() -> None:
    r = rig()
    publish_scene(r.world, r.sim)
    leaf = Navigate(name="s7 navigate kitchen", target="kitchen")
    leaf.step_id = "s7"
    leaf.setup(robot=r.gate, world=r.world)
    assert leaf.tick_once() is None and leaf.status == Status.RUNNING
    handle = r.sim.action
    assert handle is not None and handle.state is ActionState.RUNNING
    r.advance(1.0)
    r.sim.step()
    moved = r.sim.pose
    assert moved != (0.0, 0.0, 0.0)
    leaf.stop(Status.INVALID)  # halted: a guard, a failed sibling, an interrupt
    assert handle.state is ActionState.CANCELLED
    assert r.sim.action is None and r.sim.state().stopped
    r.advance(5.0)
    r.sim.step()
    assert r.sim.pose == moved  # it does not go on
    kinds = [(e["kind"], e.get("step")) for e in r.audit.events]
    assert kinds == [("command", "s7"), ("safe_stop", "s7")]
    assert "halted" in r.audit.events[-1]["reason"]
    assert [c.skill for c in r.gate.commands] == ["navigate", "stop"]


def test_a_finished_skill_leaf_is_not_stopped_again() -> None:
    r = rig()
    publish_scene(r.world, r.sim)
    leaf = Navigate(name="s1 navigate dock", target="dock")
    leaf.setup(robot=r.gate, world=r.world)
    leaf.tick_once()
    r.advance(0.1)
    r.sim.step()
    leaf.tick_once()
    assert leaf.status == Status.SUCCESS
    leaf.stop(Status.INVALID)
    assert [e["kind"] for e in r.audit.events] == ["command"]


class Silent:
    """A user who never answers (and might still)."""

    def poll(self) -> str | None:
        return None

    @property
    def exhausted(self) -> bool:
        return False


def run_confirm(source: Any, timeout: float = 10.0) -> tuple[Status, AuditLog, list[tuple[str, str]]]:
    audit = AuditLog()
    confirm = Confirm(question="Shall I pick up knife_1?", timeout=timeout)
    tree = py_trees.trees.BehaviourTree(confirm)
    tree.setup(timeout=5, utterances=source, audit=audit)
    tree.tick()
    deadline = time.monotonic() + timeout + 5
    while confirm.status == Status.RUNNING and time.monotonic() < deadline:
        time.sleep(0.01)
        tree.tick()
    history = [(t["role"], t["text"]) for t in keys.read(keys.DIALOGUE_HISTORY)]
    return confirm.status, audit, history


@pytest.mark.parametrize(("answer", "status", "logged"), [
    ("yes", Status.SUCCESS, "yes"), ("yes please", Status.SUCCESS, "yes"), ("no", Status.FAILURE, "no"),
    ("no, stop", Status.FAILURE, "no")])
def test_confirm_answers(answer: str, status: Status, logged: str) -> None:
    result, audit, history = run_confirm(ScriptedUtterances([answer]))
    assert result == status
    assert [(e["kind"], e["question"], e["answer"]) for e in audit.events] == [
        ("confirm", "Shall I pick up knife_1?", logged)]
    assert history == [("robot", "Shall I pick up knife_1?"), ("user", answer)]
    confirmations = keys.read(keys.DIALOGUE_CONFIRMATIONS)
    assert [(c["question"], c["answer"]) for c in confirmations] == [("Shall I pick up knife_1?", logged)]


def test_confirm_silence_past_the_timeout_is_a_no() -> None:
    audit = AuditLog()
    confirm = Confirm(question="Shall I pick up knife_1?", timeout=0.3)
    tree = py_trees.trees.BehaviourTree(confirm)
    tree.setup(timeout=5, utterances=Silent(), audit=audit)
    tree.tick()
    assert confirm.status == Status.RUNNING and audit.events == []  # still waiting
    deadline = time.monotonic() + 5
    while confirm.status == Status.RUNNING and time.monotonic() < deadline:
        time.sleep(0.02)
        tree.tick()
    assert confirm.status == Status.FAILURE
    assert [(e["kind"], e["answer"]) for e in audit.events] == [("confirm", "timeout")]
    assert keys.read(keys.DIALOGUE_CONFIRMATIONS)[-1]["answer"] == "timeout"


@pytest.mark.parametrize("answer", ["yes", "no"])
def test_a_high_risk_object_is_grasped_only_after_yes(answer: str, tmp_path: Path) -> None:
    backend = scripted([("navigate", '{"target": "kitchen"}'), ("grasp", '{"object": "the knife"}')])
    result, _ = in_process(CONFIG_WORLD, ["pick up the knife", answer], backend, audit_path=tmp_path / "audit.jsonl")
    logged = read_audit(tmp_path / "audit.jsonl")
    assert result.steps == [step("s1", "navigate", target="kitchen"),
                            step("s2", "grasp", risk="high", object="knife_1")]
    confirms = [e for e in logged if e["kind"] == "confirm"]
    assert len(confirms) == 1 and "knife_1" in confirms[0]["question"] and confirms[0]["answer"] == answer
    question = confirms[0]["question"]
    dialogue = [(t["role"], t["text"]) for t in result.dialogue]
    assert dialogue[:4] == [HELLO, ("user", "pick up the knife"), ("robot", question), ("user", answer)]
    order = [(e["kind"], e.get("skill")) for e in logged if e["kind"] in ("command", "confirm", "rejected")]
    if answer == "yes":
        assert_commands(result.commands, [nav("kitchen", KITCHEN, "s1"), grasp("knife_1", "s2")])
        assert order == [("command", "navigate"), ("confirm", None), ("command", "grasp")]
        assert len(dialogue) == 4
    else:
        assert_commands(result.commands, [nav("kitchen", KITCHEN, "s1")])
        assert order == [("command", "navigate"), ("confirm", None)]  # no grasp was ever sent, or even tried
        assert dialogue[4][0] == "robot" and dialogue[4][1].startswith("I stopped")
