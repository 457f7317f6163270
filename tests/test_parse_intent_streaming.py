"""ParseIntent acts on a tool call at the delta that completes its arguments, one token before the done event.

The stream events are written to ``/llm/stream`` by hand, a batch per tick,
so each test pins exactly which event made a step. The checks are the same as
for any call (strict JSON, the tool's schema, grounding; a refusal is audited
and returned to the model); the done event must then repeat the arguments
that were acted on, or the call is refused as a protocol violation and no
second step is made.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import py_trees
import pytest

from vla_bt import blackboard as keys
from vla_bt.guards.audit import AuditLog
from vla_bt.leaves import parse_intent
from vla_bt.leaves.execute import ExecutePlan
from vla_bt.leaves.parse_intent import MAX_ARGUMENTS_CHARS, MAX_EARLY_PARSES, ParseIntent
from vla_bt.llm.events import (
    ResponseDone,
    StreamError,
    StreamEvent,
    ToolCallDelta,
    ToolCallDone,
    ToolCallStarted,
)
from vla_bt.llm.pacing import tokens
from vla_bt.llm.scripted import ScriptedBackend
from vla_bt.llm.session import ModelSession
from vla_bt.llm.tools import tool_specs
from vla_bt.robot.gate import CommandGate
from vla_bt.robot.publisher import RobotPublisher
from vla_bt.robot.sim import SimRobot
from vla_bt.robot.world import World, load_world
from vla_bt.speech import ScriptedUtterances
from vla_bt.tree.registry import Registry

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # tests.test_words_to_action, as the other tests import it
    sys.path.insert(0, str(ROOT))

from tests.test_words_to_action import rig  # noqa: E402

pytestmark = pytest.mark.timeout(60)
Status = py_trees.common.Status

CONFIG_WORLD = ROOT / "config" / "world.yaml"
KITCHEN = '{"target": "kitchen"}'
RED_CUP = '{"object": "red cup"}'


def step(sid: str, skill: str, **args: Any) -> dict[str, Any]:
    """A low-risk plan step as ParseIntent writes it."""
    return {"id": sid, "skill": skill, "args": args, "risk": "low"}


def started(call_id: str, name: str) -> ToolCallStarted:
    return ToolCallStarted(call_id=call_id, name=name)


def deltas(call_id: str, arguments: str) -> list[StreamEvent]:
    """The argument deltas of one call, split the way the paced backends split them."""
    return [ToolCallDelta(call_id=call_id, delta=piece) for piece in tokens(arguments)]


def done(call_id: str, name: str, arguments: str) -> ToolCallDone:
    return ToolCallDone(call_id=call_id, name=name, arguments=arguments)


@dataclass
class Feed:
    """A ParseIntent tree (optionally with ExecutePlan on the simulator) and the stream a test writes for it."""

    tree: py_trees.trees.BehaviourTree
    audit: AuditLog
    board: py_trees.blackboard.Client
    sim: SimRobot | None = None
    gate: CommandGate | None = None
    now: list[float] = field(default_factory=lambda: [0.0])
    stream: list[StreamEvent] = field(default_factory=list)

    def __call__(self, *events: StreamEvent) -> Status:
        """Append ``events`` to ``/llm/stream`` and tick once.

        Returns:
            the status of the tree's root after the tick
        """
        self.stream.extend(events)
        self.board.set(keys.LLM_STREAM, list(self.stream))
        self.tree.tick()
        return self.tree.root.status

    def steps(self) -> list[dict[str, Any]]:
        return keys.read(keys.PLAN_STEPS)

    def rejected(self) -> list[dict[str, Any]]:
        return self.audit.of_kind("rejected")

    def outputs(self) -> dict[str, dict[str, Any]]:
        """The output each call gets back, by call id (one per call)."""
        results = [r for r in keys.read(keys.LLM_TOOL_RESULTS, []) or [] if r.get("call_id")]
        ids = [r["call_id"] for r in results]
        assert len(ids) == len(set(ids)), f"more than one output for a call: {ids}"
        return {r["call_id"]: json.loads(r["output"]) for r in results}

    def commands(self) -> list[tuple[str, str | None]]:
        assert self.gate is not None
        return [(c.skill, c.step) for c in self.gate.commands]

    def run_out(self, ticks: int = 60) -> Status:
        """Tick with the simulated clock moving until the tree finishes."""
        for _ in range(ticks):
            if self.tree.root.status not in (Status.RUNNING, Status.INVALID):
                break
            self.now[0] += 1.0
            self.tree.tick()
        return self.tree.root.status


def publish_scene(world: World, sim: SimRobot | None = None) -> None:
    RobotPublisher(CommandGate(sim or SimRobot(world))).publish()


def writer() -> py_trees.blackboard.Client:
    client = py_trees.blackboard.Client(name="test stream")
    client.register_key(keys.LLM_STREAM, access=py_trees.common.Access.WRITE)
    return client


def session(registry: Registry) -> ModelSession:
    return ModelSession(ScriptedBackend([]), tool_specs(registry))


def parse_only() -> Feed:
    """ParseIntent alone, on ``config/world.yaml``."""
    world = load_world(CONFIG_WORLD)
    publish_scene(world)
    audit = AuditLog()
    tree = py_trees.trees.BehaviourTree(ParseIntent())
    tree.setup(timeout=5, llm=session(Registry.default()), world=world, audit=audit)
    return Feed(tree, audit, writer())


def parse_and_execute() -> Feed:
    """ParseIntent and ExecutePlan under a Parallel, as in the shipped trees, on the simulator."""
    bench = rig(CONFIG_WORLD)  # the simulator with a clock the test moves
    registry = Registry.default()
    root = py_trees.composites.Parallel("Plan", policy=py_trees.common.ParallelPolicy.SuccessOnAll(),
                                        children=[ParseIntent(), ExecutePlan()])
    tree = py_trees.trees.BehaviourTree(root)
    tree.add_pre_tick_handler(RobotPublisher(bench.gate).pre_tick)
    tree.setup(timeout=5, llm=session(registry), registry=registry, robot=bench.gate, world=bench.world,
               audit=bench.audit, utterances=ScriptedUtterances([]))
    return Feed(tree, bench.audit, writer(), bench.sim, bench.gate, bench.now)


# -- acting at the completing delta ---------------------------------------------------------------

def test_step_is_created_at_the_delta_that_completes_the_arguments() -> None:
    feed = parse_only()
    pieces = deltas("c1", KITCHEN)
    assert feed(started("c1", "navigate"), *pieces[:-1]) == Status.RUNNING
    assert feed.steps() == []  # '{"target": "kitchen' is not an object yet
    feed(pieces[-1])
    assert feed.steps() == [step("s1", "navigate", target="kitchen")]  # before the done event
    assert feed.outputs()["c1"]["status"] == "accepted"
    assert not keys.read(keys.PLAN_DONE)


def test_first_command_is_sent_before_the_done_event_arrives() -> None:
    feed = parse_and_execute()
    feed(started("c1", "navigate"), *deltas("c1", KITCHEN))
    assert feed.commands() == [("navigate", "s1")]
    feed(done("c1", "navigate", KITCHEN), started("c2", "grasp"), *deltas("c2", RED_CUP),
         done("c2", "grasp", RED_CUP), ResponseDone())
    assert feed.run_out() == Status.SUCCESS
    assert feed.commands() == [("navigate", "s1"), ("grasp", "s2")]
    assert feed.rejected() == []


def test_done_repeating_the_streamed_arguments_adds_nothing() -> None:
    feed = parse_only()
    feed(started("c1", "navigate"), *deltas("c1", KITCHEN))
    feed(done("c1", "navigate", KITCHEN))
    assert feed.steps() == [step("s1", "navigate", target="kitchen")]
    assert feed(ResponseDone()) == Status.SUCCESS
    assert feed.steps() == [step("s1", "navigate", target="kitchen")]
    assert feed.rejected() == [] and keys.read(keys.PLAN_REJECTED) is None
    assert feed.outputs() == {"c1": {"status": "accepted", "step": "s1", "args": {"target": "kitchen"}}}


def test_whitespace_streamed_after_the_closing_brace_is_not_a_violation() -> None:
    feed = parse_only()
    feed(started("c1", "navigate"), *deltas("c1", KITCHEN), ToolCallDelta(call_id="c1", delta="\n"),
         done("c1", "navigate", KITCHEN + "\n"), ResponseDone())
    assert feed.steps() == [step("s1", "navigate", target="kitchen")]
    assert feed.rejected() == []


# -- a done event that contradicts what was acted on ----------------------------------------------

def test_done_with_different_arguments_is_refused_and_not_executed_twice() -> None:
    feed = parse_and_execute()
    feed(started("c1", "navigate"), *deltas("c1", KITCHEN))
    assert feed.commands() == [("navigate", "s1")]
    # the running step is stopped and the plan fails in this same tick (tests/test_execute_rejection.py)
    assert feed(done("c1", "navigate", '{"target": "dock"}')) == Status.FAILURE
    assert feed.steps() == [step("s1", "navigate", target="kitchen")]  # no second step
    [rejected] = feed.rejected()
    assert rejected["skill"] == "navigate" and rejected["args"] == {"target": "dock"}
    assert "protocol violation" in rejected["reason"] and "differ" in rejected["reason"]
    assert rejected["step"] == "s1" and "s1" in rejected["reason"]
    assert keys.read(keys.PLAN_REJECTED) == rejected["reason"]
    assert feed.outputs()["c1"]["status"] == "rejected"  # the earlier "accepted" is replaced
    assert feed.commands() == [("navigate", "s1"), ("stop", "s1")]
    said = [t["text"] for t in keys.read(keys.DIALOGUE_HISTORY) if t["role"] == "robot"]
    assert any("protocol violation" in text for text in said), said


def test_calls_after_a_contradicted_one_are_refused() -> None:
    feed = parse_only()
    feed(started("c1", "navigate"), *deltas("c1", KITCHEN), done("c1", "navigate", '{"target": "dock"}'))
    feed(started("c2", "grasp"), *deltas("c2", RED_CUP), done("c2", "grasp", RED_CUP), ResponseDone())
    assert feed.steps() == [step("s1", "navigate", target="kitchen")]
    assert [r["skill"] for r in feed.rejected()] == ["navigate", "grasp"]
    assert feed.rejected()[1]["reason"].startswith("not carried out")


def test_done_with_a_different_tool_name_is_refused() -> None:
    feed = parse_only()
    feed(started("c1", "navigate"), *deltas("c1", KITCHEN), done("c1", "place", KITCHEN), ResponseDone())
    assert feed.steps() == [step("s1", "navigate", target="kitchen")]
    [rejected] = feed.rejected()
    assert "'navigate'" in rejected["reason"] and "'place'" in rejected["reason"]


def test_arguments_streamed_past_the_closed_object_are_refused_at_once() -> None:
    feed = parse_only()
    feed(started("c1", "navigate"), *deltas("c1", KITCHEN))
    feed(ToolCallDelta(call_id="c1", delta=', "speed": 9}'))
    [rejected] = feed.rejected()
    assert "past the closed object" in rejected["reason"] and rejected["step"] == "s1"
    feed(done("c1", "navigate", KITCHEN + ', "speed": 9}'), ResponseDone())
    assert len(feed.rejected()) == 1  # flagged once
    assert feed.steps() == [step("s1", "navigate", target="kitchen")]


def test_a_contradicted_call_waiting_behind_an_open_one_is_refused_not_run() -> None:
    feed = parse_only()
    feed(started("c1", "navigate"), *deltas("c1", KITCHEN)[:-1],  # c1 still open
         started("c2", "grasp"), *deltas("c2", RED_CUP), done("c2", "grasp", '{"object": "blue cup"}'))
    assert feed.steps() == []
    feed(deltas("c1", KITCHEN)[-1], done("c1", "navigate", KITCHEN), ResponseDone())
    assert feed.steps() == [step("s1", "navigate", target="kitchen")]
    [rejected] = feed.rejected()
    assert rejected["skill"] == "grasp" and "differ" in rejected["reason"]


# -- as before: calls without deltas, calls that never complete -----------------------------------

def test_done_only_call_becomes_a_step_at_its_done_event() -> None:
    feed = parse_only()
    feed(done("c1", "navigate", KITCHEN))
    assert feed.steps() == [step("s1", "navigate", target="kitchen")]
    feed(started("c2", "grasp"), done("c2", "grasp", RED_CUP))  # started, but no deltas
    assert feed(ResponseDone()) == Status.SUCCESS
    assert feed.steps() == [step("s1", "navigate", target="kitchen"), step("s2", "grasp", object="cup_red")]
    assert feed.rejected() == []


def test_incomplete_call_followed_by_a_stream_error_executes_nothing() -> None:
    feed = parse_and_execute()
    feed(started("c1", "navigate"), *deltas("c1", KITCHEN)[:-1])
    assert feed(StreamError(code="server_error", message="the connection dropped")) == Status.FAILURE
    assert feed.steps() == [] and feed.commands() == []
    assert feed.rejected() == []


def test_call_still_open_when_the_response_ends_makes_no_step() -> None:
    feed = parse_only()
    assert feed(started("c1", "navigate"), *deltas("c1", KITCHEN)[:-1], ResponseDone()) == Status.SUCCESS
    assert feed.steps() == [] and feed.rejected() == []


def test_name_given_only_by_the_done_event_waits_for_it() -> None:
    feed = parse_only()
    feed(started("c1", ""), *deltas("c1", KITCHEN))
    assert feed.steps() == []  # no tool name yet: nothing to check the arguments against
    feed(done("c1", "navigate", KITCHEN))
    assert feed.steps() == [step("s1", "navigate", target="kitchen")]
    assert feed.rejected() == []


# -- order --------------------------------------------------------------------------------------

def test_steps_keep_the_order_of_the_calls_when_a_later_call_completes_first() -> None:
    feed = parse_only()
    feed(started("c1", "navigate"), *deltas("c1", KITCHEN)[:3], started("c2", "grasp"), *deltas("c2", RED_CUP))
    assert feed.steps() == []  # c2 is complete, but c1 began first
    feed(*deltas("c1", KITCHEN)[3:])
    assert feed.steps() == [step("s1", "navigate", target="kitchen"), step("s2", "grasp", object="cup_red")]


# -- the checks are the same as at the done event ------------------------------------------------

STRICT_JSON_VIOLATIONS = [
    ("nan", "navigate", '{"target": [NaN, 1.0, 0.0]}', "not a finite number"),
    ("infinity", "navigate", '{"target": "kitchen", "speed": Infinity}', "not a finite number"),
    ("overflow", "navigate", '{"target": [1e999, 1.0, 0.0]}', "not finite"),
    ("unknown-field", "grasp", '{"object": "red cup", "force": 500}', "force"),
    ("nested-too-deeply", "navigate", '{"target": ' + "[" * 2000 + "]" * 2000 + "}", "nested too deeply"),
]


@pytest.mark.parametrize(("name", "raw", "reason"), [v[1:] for v in STRICT_JSON_VIOLATIONS],
                         ids=[v[0] for v in STRICT_JSON_VIOLATIONS])
def test_strict_json_violation_in_streamed_arguments_is_still_refused(name: str, raw: str, reason: str) -> None:
    feed = parse_and_execute()
    feed(started("c1", name), *deltas("c1", raw), done("c1", name, raw), ResponseDone())
    assert feed.run_out() == Status.FAILURE
    assert feed.steps() == [] and feed.commands() == []
    [rejected] = feed.rejected()
    assert reason in rejected["reason"], rejected
    assert feed.outputs()["c1"]["status"] == "rejected"


def test_nan_in_streamed_arguments_is_refused_at_the_completing_delta() -> None:
    raw = '{"target": [NaN, 1.0, 0.0]}'
    feed = parse_only()
    feed(started("c1", "navigate"), *deltas("c1", raw))
    [rejected] = feed.rejected()  # refused as soon as complete, like any call; the done event adds nothing
    assert "NaN" in rejected["reason"] and feed.steps() == []
    feed(done("c1", "navigate", raw), ResponseDone())
    assert len(feed.rejected()) == 1 and feed.steps() == []


SAME_VERDICT = [
    ("valid", "navigate", KITCHEN),
    ("duplicate-key", "navigate", '{"target": "kitchen", "target": [6.5, 0.5, 0.0]}'),
    *((v[0], v[1], v[2]) for v in STRICT_JSON_VIOLATIONS),
]


def verdict(events: list[StreamEvent]) -> tuple[list[dict[str, Any]], list[str], Any]:
    """Steps, refusal reasons and tool outputs of one response, on a fresh blackboard."""
    for reset in (py_trees.blackboard.Blackboard.storage, py_trees.blackboard.Blackboard.metadata,
                  py_trees.blackboard.Blackboard.clients):
        reset.clear()
    feed = parse_only()
    feed(*events, ResponseDone())
    return feed.steps(), [r["reason"] for r in feed.rejected()], feed.outputs()


@pytest.mark.parametrize(("name", "raw"), [v[1:] for v in SAME_VERDICT], ids=[v[0] for v in SAME_VERDICT])
def test_streamed_arguments_get_the_same_verdict_as_the_done_event_alone(name: str, raw: str) -> None:
    """Duplicate keys included: the last one wins either way (the gate's no-go check then refuses the stairs)."""
    streamed = verdict([started("c1", name), *deltas("c1", raw), done("c1", name, raw)])
    done_only = verdict([done("c1", name, raw)])
    assert streamed == done_only
    if name == "navigate" and "6.5" in raw:
        assert streamed[0] == [step("s1", "navigate", target=[6.5, 0.5, 0.0])]


def test_oversize_streamed_arguments_are_never_parsed_early_and_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    parses: list[int] = []
    real = parse_intent.complete_object
    monkeypatch.setattr(parse_intent, "complete_object", lambda text: parses.append(len(text)) or real(text))
    raw = json.dumps({"text": "a" * MAX_ARGUMENTS_CHARS})
    feed = parse_only()
    feed(started("c1", "say"), ToolCallDelta(call_id="c1", delta=raw), done("c1", "say", raw), ResponseDone())
    assert parses == [] and feed.steps() == []
    assert "characters long" in feed.rejected()[0]["reason"]


def test_oversize_arguments_are_refused_while_still_streaming() -> None:
    """Regression: a call of megabytes was refused only at its done event, after the model had streamed it all."""
    feed = parse_only()
    piece = '{"text": "' + "a" * 4000
    feed(started("c1", "say"), *[ToolCallDelta(call_id="c1", delta=piece) for _ in range(6)])
    assert feed.steps() == [] and "over 20000 characters long" in feed.rejected()[0]["reason"]
    feed(*[ToolCallDelta(call_id="c1", delta="a" * 4000) for _ in range(3)], done("c1", "say", piece * 9 + '"}'),
         ResponseDone())
    assert len(feed.rejected()) == 1  # refused once, whatever streamed after


def test_early_parse_attempts_per_call_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    parses: list[int] = []
    real = parse_intent.complete_object
    monkeypatch.setattr(parse_intent, "complete_object", lambda text: parses.append(len(text)) or real(text))
    feed = parse_only()
    braces = [ToolCallDelta(call_id="c1", delta="}") for _ in range(5 * MAX_EARLY_PARSES)]
    feed(started("c1", "say"), ToolCallDelta(call_id="c1", delta='{"text": "'), *braces)
    assert len(parses) == MAX_EARLY_PARSES and feed.steps() == []
    raw = '{"text": "' + "}" * len(braces) + '"}'
    feed(ToolCallDelta(call_id="c1", delta='"}'), done("c1", "say", raw), ResponseDone())
    assert feed.steps() == [step("s1", "say", text="}" * len(braces))]  # completed by its done event, as before
    assert feed.rejected() == []
