"""ExecutePlan reacts at once when a refusal overturns a step that has already started.

``ParseIntent`` acts on a tool call at the delta that completes its arguments;
a done event that then disagrees is refused and files the refusal under the
step's id in ``/plan/overturned``. The step may already be moving the simulated robot: it must be
stopped in that same tick, no later step may start, and the plan fails naming
the refusal. A refused call that never became a step keeps its meaning: the
steps before it run to their end. The stream is written by hand, a batch per
tick, with the helpers of ``test_parse_intent_streaming``; the last tests write
``/plan/overturned`` by hand on the ExecutePlan rig of ``test_words_to_action``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import py_trees
import pytest

from vla_bt import blackboard as keys
from vla_bt.leaves.execute import ExecutePlan
from vla_bt.llm.events import ResponseDone

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # tests.test_parse_intent_streaming, as the other tests import tests.helpers
    sys.path.insert(0, str(ROOT))

from tests.test_parse_intent_streaming import (  # noqa: E402
    KITCHEN,
    RED_CUP,
    Feed,
    deltas,
    done,
    parse_and_execute,
    started,
)
from tests.test_words_to_action import Rig, execute_plan_tree, rig, step  # noqa: E402

pytestmark = pytest.mark.timeout(60)
Status = py_trees.common.Status
DOCK = '{"target": "dock"}'
ON_MY_WAY = '{"text": "On my way."}'


def execute_plan(feed: Feed) -> ExecutePlan:
    return next(node for node in feed.tree.root.iterate() if isinstance(node, ExecutePlan))


def drive(feed: Feed, seconds: int) -> None:
    """Let simulated time pass, one tick per second, with no new stream events."""
    for _ in range(seconds):
        feed.now[0] += 1.0
        feed()


def kinds(feed: Feed) -> list[tuple[str, Any]]:
    return [(e["kind"], e.get("step")) for e in feed.audit.events]


def robot_turns() -> list[str]:
    return [t["text"] for t in keys.read(keys.DIALOGUE_HISTORY, []) or [] if t["role"] == "robot"]


def assert_standing_still(feed: Feed) -> None:
    """Not moving now, and still in the same place after more simulated time."""
    assert feed.sim is not None
    assert not feed.sim.state().moving
    pose = feed.sim.pose
    feed.now[0] += 5.0
    feed.sim.step()
    assert feed.sim.pose == pose


def navigating_to_the_kitchen() -> Feed:
    """The first call completed (not yet done) and the robot two simulated seconds into the drive."""
    feed = parse_and_execute()
    feed(started("c1", "navigate"), *deltas("c1", KITCHEN))
    assert feed.commands() == [("navigate", "s1")]
    drive(feed, 2)
    assert feed.sim is not None and feed.sim.state().moving and feed.sim.pose[0] > 0.0
    return feed


# -- a running step overturned by its own done event -------------------------------------------

def test_running_navigation_is_safe_stopped_in_the_tick_its_call_is_overturned() -> None:
    feed = navigating_to_the_kitchen()
    assert feed(done("c1", "navigate", DOCK)) == Status.FAILURE  # the same tick, not at the end of the response
    assert kinds(feed) == [("command", "s1"), ("rejected", "s1"), ("safe_stop", "s1")]
    [stop] = feed.audit.of_kind("safe_stop")
    assert "protocol violation" in stop["reason"] and "s1" in stop["reason"]
    assert feed.commands() == [("navigate", "s1"), ("stop", "s1")]
    assert_standing_still(feed)
    assert feed.sim is not None and feed.sim.pose[:2] != (4.0, 2.0)  # it never got there


def test_overturned_step_fails_the_plan_with_the_refusal_as_reason() -> None:
    feed = navigating_to_the_kitchen()
    feed(done("c1", "navigate", DOCK))
    executor = execute_plan(feed)
    [rejected] = feed.rejected()
    assert executor.status == Status.FAILURE
    assert executor.feedback_message == f"I stopped s1 navigate kitchen: {rejected['reason']}"
    assert robot_turns() == [executor.feedback_message]
    assert all(child.status != Status.RUNNING for child in executor.children)
    outcomes = [json.loads(r["output"]) for r in keys.read(keys.LLM_TOOL_RESULTS) if r.get("step")]
    assert outcomes == [{"step": "s1", "outcome": f"stopped: {rejected['reason']}"}]


def test_no_later_step_is_commanded_once_a_running_step_is_overturned() -> None:
    feed = navigating_to_the_kitchen()
    feed(started("c2", "grasp"), *deltas("c2", RED_CUP))  # s2 accepted, waiting behind the drive
    assert [s["id"] for s in feed.steps()] == ["s1", "s2"]
    assert feed(done("c1", "navigate", DOCK)) == Status.FAILURE
    assert feed.commands() == [("navigate", "s1"), ("stop", "s1")]
    assert [child.status for child in execute_plan(feed).children] == [Status.INVALID, Status.INVALID]
    assert_standing_still(feed)


def test_running_step_after_an_overturned_finished_step_is_stopped() -> None:
    feed = parse_and_execute()
    feed(started("c1", "say"), *deltas("c1", ON_MY_WAY))  # s1 says it at once and is done
    feed(started("c2", "navigate"), *deltas("c2", KITCHEN))
    drive(feed, 2)
    assert feed.commands() == [("navigate", "s2")]
    assert feed(done("c1", "say", '{"text": "Not going anywhere."}')) == Status.FAILURE
    assert [e["step"] for e in feed.audit.of_kind("safe_stop")] == ["s2"]
    assert execute_plan(feed).feedback_message.startswith("I stopped s2 navigate kitchen: protocol violation")
    assert_standing_still(feed)


# -- a step overturned before it started never starts -----------------------------------------

def test_step_overturned_in_the_tick_it_was_accepted_is_never_commanded() -> None:
    feed = parse_and_execute()
    feed(started("c1", "navigate"), *deltas("c1", KITCHEN), done("c1", "navigate", DOCK))
    assert [s["id"] for s in feed.steps()] == ["s1"] and feed.rejected()[0]["step"] == "s1"
    assert feed.commands() == []
    drive(feed, 2)  # the response has not ended: ExecutePlan waits for it, and starts nothing
    assert feed.commands() == [] and feed.tree.root.status == Status.RUNNING
    feed(ResponseDone())
    assert feed.run_out() == Status.FAILURE
    assert feed.commands() == [] and feed.audit.of_kind("safe_stop") == []
    assert execute_plan(feed).feedback_message.startswith("I could not do all of it: protocol violation")


def test_step_before_the_overturned_one_runs_to_the_end_and_the_overturned_one_never_starts() -> None:
    feed = navigating_to_the_kitchen()
    feed(started("c2", "grasp"), *deltas("c2", RED_CUP))
    feed(done("c1", "navigate", KITCHEN), done("c2", "grasp", '{"object": "blue cup"}'))
    assert feed.rejected()[0]["step"] == "s2"
    assert feed.tree.root.status == Status.RUNNING  # s1 was not overturned: it goes on
    assert feed.sim is not None and feed.sim.state().moving
    feed(ResponseDone())
    assert feed.run_out() == Status.FAILURE
    assert feed.commands() == [("navigate", "s1")]
    assert feed.audit.of_kind("safe_stop") == []
    assert feed.sim is not None and feed.sim.pose == (4.0, 2.0, 0.0)
    assert execute_plan(feed).feedback_message.startswith("I could not do all of it: protocol violation")


# -- a refused call that never became a step keeps its meaning --------------------------------

def test_refused_later_call_lets_the_running_step_finish_then_fails() -> None:
    feed = navigating_to_the_kitchen()
    fly = '{"to": "the moon"}'
    feed(done("c1", "navigate", KITCHEN), started("c2", "fly"), *deltas("c2", fly), done("c2", "fly", fly))
    assert keys.read(keys.PLAN_REJECTED).startswith("unknown tool 'fly'")
    assert feed.tree.root.status == Status.RUNNING and feed.sim is not None and feed.sim.state().moving
    feed(ResponseDone())
    assert feed.run_out() == Status.FAILURE
    assert feed.commands() == [("navigate", "s1")]
    assert feed.audit.of_kind("safe_stop") == []
    assert feed.sim.pose == (4.0, 2.0, 0.0)
    assert robot_turns() == [f"I could not do all of it: {keys.read(keys.PLAN_REJECTED)}"]


def test_running_step_overturned_after_an_earlier_refusal_is_still_stopped() -> None:
    """Regression: only the first refusal used to reach /plan/rejected, so this drive went on to the kitchen."""
    feed = navigating_to_the_kitchen()
    fly = '{"to": "the moon"}'
    feed(started("c2", "fly"), *deltas("c2", fly), done("c2", "fly", fly))
    assert keys.read(keys.PLAN_REJECTED).startswith("unknown tool 'fly'")
    assert feed.sim is not None and feed.sim.state().moving  # a refused call that never became a step
    assert feed(done("c1", "navigate", DOCK)) == Status.FAILURE
    assert [e["step"] for e in feed.audit.of_kind("safe_stop")] == ["s1"]
    assert feed.commands() == [("navigate", "s1"), ("stop", "s1")]
    assert_standing_still(feed)
    assert feed.sim.pose[:2] != (4.0, 2.0)


# -- the refusal as ExecutePlan reads it (written by hand here) --------------------------------

def overturn(sid: str) -> dict[str, str]:
    """``/plan/overturned`` as ParseIntent writes it for a step it had already accepted."""
    return {sid: f"protocol violation in call c9: its final arguments differ from the streamed ones (step {sid} "
                 "was already accepted)"}


def driving_plan() -> tuple[Rig, py_trees.trees.BehaviourTree]:
    """ExecutePlan alone: s1 drives to the kitchen (two simulated seconds in), s2 grasps after it."""
    r = rig()
    tree = execute_plan_tree(r)
    r.board.set(keys.PLAN_STEPS, [step("s1", "navigate", target="kitchen"), step("s2", "grasp", object="cup_red")])
    tree.tick()
    r.advance(2.0)
    tree.tick()
    assert r.sim.state().moving and [c.step for c in r.gate.commands] == ["s1"]
    return r, tree


def test_refusal_naming_a_step_not_in_the_plan_stops_the_running_step() -> None:
    r, tree = driving_plan()
    r.board.set(keys.PLAN_OVERTURNED, overturn("s7"))  # not a step of this plan: the plan as a whole
    tree.tick()
    assert tree.root.status == Status.FAILURE
    assert [(c.skill, c.step) for c in r.gate.commands] == [("navigate", "s1"), ("stop", "s1")]
    assert not r.sim.state().moving


def test_step_stays_overturned_when_a_later_refusal_replaces_the_reason() -> None:
    r, tree = driving_plan()
    r.board.set(keys.PLAN_OVERTURNED, overturn("s2"))  # s2 has not started: s1 goes on
    tree.tick()
    assert tree.root.status == Status.RUNNING and r.sim.state().moving
    r.board.set(keys.PLAN_REJECTED, "unknown tool 'fly'")
    r.board.set(keys.PLAN_DONE, True)
    for _ in range(30):
        r.advance(1.0)
        tree.tick()
        if tree.root.status != Status.RUNNING:
            break
    assert tree.root.status == Status.FAILURE
    assert [(c.skill, c.step) for c in r.gate.commands] == [("navigate", "s1")]  # s2 never started
    assert r.sim.pose == (4.0, 2.0, 0.0) and r.sim.holding is None
