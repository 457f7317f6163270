"""``ExecutePlan``: a composite that grows as validated steps arrive and runs them in order."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import py_trees

from vla_bt import blackboard as keys
from vla_bt.blackboard import Step
from vla_bt.robot.gate import CommandGate
from vla_bt.tree.declared import Declared, Param
from vla_bt.tree.registry import NodeSpec, Registry

from .perceive import Search
from .skills import OBJECT_STANDOFF_M

Status = py_trees.common.Status


class ExecutePlan(Declared, py_trees.composites.Composite):
    """Run each plan step's skill leaf as soon as the step is validated, while the model still streams.

    A dynamic sequence: on every tick it adds a child for each new step on
    ``/plan/steps`` (the skill's leaf from the registry, by tool name; an
    ``ask`` step becomes a ``Say`` of the question) and ticks the current one.
    A high-risk step gets a ``Confirm`` before it; a step whose object has not
    been seen yet (its ``search`` field, set by ``ParseIntent`` under camera
    perception) gets a ``Search`` before that, which for ``grasp`` and
    ``place`` also brings the robot within reach of what it found.
    In YAML it is written as a leaf (``{type: ExecutePlan}``): its children
    come from the plan, and show in the live view as they are added.

    A refusal (set by ``ParseIntent``) ends the plan at the refused call; it
    is read at every tick, before any child is ticked:

    * A call refused before it became a step (``/plan/rejected``):
      the steps accepted before it run to their end, as if the plan ended
      there; once ``/plan/done`` is set, FAILURE ("I could not do all of it: …").
    * A step overturned after it was accepted (``/plan/overturned``: step id →
      refusal, e.g. a done event that contradicts the streamed arguments),
      whatever was refused before: the plan ends before sN. Steps before sN run as
      above; sN and later steps never start. If sN or a later step has already
      started, then in the tick that reads the refusal a safe stop naming it
      is commanded through the gate if the robot is moving, the running step
      is halted (its ``terminate()`` cancels its action), and FAILURE is
      returned at once ("I stopped <step>: <refusal>"; "I could not do all of
      it: <refusal>" if no step was running), without waiting for the
      response to end.
    * A refusal naming a step this plan does not have concerns the plan as a
      whole: as if it named the first step.

    Pre-conditions for the same-tick reaction: ``ParseIntent`` is ticked
    before ``ExecutePlan`` (as in the shipped trees' ``Parallel``), and the
    skill leaves cancel their action in ``terminate()``. Post-conditions of a
    halt: no child is RUNNING; no command was sent after the refusal was read
    but the safe stop (audited as ``safe_stop`` with the reason and the step
    id); the halted step's outcome on ``/llm/tool_results`` is "stopped: …".

    Blackboard:
        reads ``/plan/steps``, ``/plan/done``, ``/plan/rejected``, ``/plan/overturned``;
        writes ``/dialogue/history`` (why a plan stopped) and ``/llm/tool_results`` (each step's outcome)

    Returns:
        RUNNING while steps run or more may come; SUCCESS when the plan is done
        and every step succeeded; FAILURE at the first failing step, when the
        plan was cut short by a refused step, or at once when a refusal
        overturns a step already started (the user is told why)
    """

    YAML_KIND = "leaf"
    DESCRIPTION = "Run each plan step's skill leaf as soon as the step is validated."
    PARAMS = {
        "start": Param({"enum": ["early", "after_response"]},
                       "early: run each step as soon as it is validated; after_response: wait for the whole "
                       "response first (as a pipeline that waits for the full reply would)", default="early",
                       runtime=False),
    }
    READS = (keys.PLAN_STEPS, keys.PLAN_DONE, keys.PLAN_REJECTED, keys.PLAN_OVERTURNED)
    WRITES = (keys.DIALOGUE_HISTORY, keys.LLM_TOOL_RESULTS)

    def __init__(self, name: str | None = None, **params: Any):
        py_trees.composites.Composite.__init__(self, name or "ExecutePlan")
        self._declare(params)
        self.registry: Registry | None = None
        self._setup_kwargs: dict[str, Any] = {}
        self._steps: list[Step] = []
        self._next = 0  # the first child that has not finished
        self._reached = 0  # children ticked at least once (a halted one counts: it had started)

    def setup(self, **kwargs: Any) -> None:
        self._setup_kwargs = dict(kwargs)
        self.registry = kwargs.get("registry", self.registry)

    def _get(self, key: str, default: Any = None) -> Any:
        return self.blackboard.get(key) if self.blackboard.exists(key) else default

    def tick(self) -> Iterator[py_trees.behaviour.Behaviour]:
        if self.status != Status.RUNNING:
            self._drop_children()  # a new plan
            self._steps, self.current_child, self._next, self._reached = [], None, 0, 0
            self.initialise()
        problem = self._grow()
        if problem:
            yield from self._finish(Status.FAILURE, problem)
            return
        rejected, cut = self._cut()
        if rejected and cut < self._reached:  # the refusal overturns a step already under way
            yield from self._abort(rejected)
            return
        while self._next < min(cut, len(self.children)):  # finished steps are never ticked again
            child = self.current_child = self.children[self._next]
            self._reached = max(self._reached, self._next + 1)
            yield from child.tick()
            if child.status == Status.RUNNING:
                self.status = Status.RUNNING
                yield self
                return
            self._report(child)
            if child.status != Status.SUCCESS:
                yield from self._finish(Status.FAILURE, f"{child.name} failed: {child.feedback_message or 'no reason'}")
                return
            self._next += 1
        yield from self._after_last_step()

    def _cut(self) -> tuple[str | None, int]:
        """Where ``/plan/overturned`` and ``/plan/rejected`` end the plan.

        Returns:
            the refusal (or None), and the index of the first child that must not run: the first
            child of the earliest overturned step (0 if that step is not in this plan), else
            ``len(self.children)`` (every step accepted so far may run)
        """
        overturned = self._get(keys.PLAN_OVERTURNED) or {}
        if overturned:
            ids = [getattr(child, "step_id", None) for child in self.children]
            cut, reason = min((ids.index(step) if step in ids else 0, why) for step, why in overturned.items())
            return str(reason), cut
        rejected = self._get(keys.PLAN_REJECTED)  # a call that never became a step: the steps before it stand
        return (str(rejected), len(self.children)) if rejected else (None, len(self.children))

    def _abort(self, rejected: str) -> Iterator[py_trees.behaviour.Behaviour]:
        """Stop the step under way at once (a refusal overturned it or an earlier step), and fail."""
        child = self.children[self._next] if self._next < len(self.children) else None
        if child is None or child.status != Status.RUNNING:
            yield from self._finish(Status.FAILURE, f"I could not do all of it: {rejected}")
            return
        robot: CommandGate | None = self._setup_kwargs.get("robot")
        if robot is not None and robot.state().moving:
            # Stop first, naming the refusal; the leaf's own cancel in terminate() is then a no-op or a second stop.
            robot.safe_stop(f"plan refused: {rejected}", step=getattr(child, "step_id", None))
        child.stop(Status.INVALID)  # its terminate() cancels whatever action is still running
        self._report(child, f"stopped: {rejected}")
        yield from self._finish(Status.FAILURE, f"I stopped {child.name}: {rejected}")

    def _drop_children(self) -> None:
        """Remove the previous plan's leaves, and their blackboard clients (a long session must not grow)."""
        old = list(self.children)
        self.remove_all_children()
        for child in old:
            for node in child.iterate():
                for client in node.blackboards:
                    if client.unique_identifier in py_trees.blackboard.Blackboard.clients:
                        client.unregister(clear=False)

    def _after_last_step(self) -> Iterator[py_trees.behaviour.Behaviour]:
        if not self._get(keys.PLAN_DONE, False):
            self.feedback_message = f"{len(self.children)} step(s) done, waiting for more"
            self.status = Status.RUNNING
            yield self
            return
        rejected = self._get(keys.PLAN_REJECTED)
        if rejected:
            yield from self._finish(Status.FAILURE, f"I could not do all of it: {rejected}")
            return
        yield from self._finish(Status.SUCCESS, f"all {len(self.children)} step(s) done")

    def _finish(self, status: Status, message: str) -> Iterator[py_trees.behaviour.Behaviour]:
        self.feedback_message = message
        if status == Status.FAILURE:
            keys.append_turn(self.blackboard, "robot", message if message.startswith("I ") else f"I stopped: {message}")
        self.stop(status)
        yield self

    def _grow(self) -> str | None:
        """Add a child for each new step; the reason if a step has no leaf."""
        if self.params["start"] == "after_response" and not self._get(keys.PLAN_DONE, False):
            return None
        steps = self._get(keys.PLAN_STEPS, []) or []
        for step in steps[len(self._steps):]:
            self._steps.append(step)
            try:
                children = [*self._search(step), *self._confirmation(step), self._leaf(step)]
            except LookupError as exc:
                return str(exc)
            for child in children:
                self.add_child(child)
                child.setup(**self._setup_kwargs)
        return None

    def _confirmation(self, step: Step) -> list[py_trees.behaviour.Behaviour]:
        """A ``Confirm`` before a high-risk step: the gate sends nothing risky without a "yes"."""
        if step.get("risk") != "high":
            return []
        thing = step["args"].get("object") or step["args"].get("target") or step["skill"]
        question = f"{thing} is marked high-risk. Shall I {step['skill'].replace('_', ' ')} it?"
        confirm = self._spec_by_name("Confirm").build(f"{step['id']} confirm {thing}", {"question": question})
        confirm.step_id = step["id"]
        return [confirm]

    def _search(self, step: Step) -> list[py_trees.behaviour.Behaviour]:
        """A ``Search`` before a step whose object nobody has seen yet: nothing is grasped blind."""
        reference = step.get("search")
        if not reference:
            return []
        approach = OBJECT_STANDOFF_M if step["skill"] in ("grasp", "place") else None
        params = {"reference": str(reference), "approach": approach, "say": False}
        name = f"{step['id']} search {reference}"[:60].replace(":", " ")
        spec = self.registry.get("Search") if self.registry is not None else None
        search = spec.build(name, params) if spec is not None else Search(name=name, **params)
        search.step_id = step["id"]
        return [search]

    def _spec_by_name(self, name: str) -> NodeSpec:
        spec = self.registry.get(name) if self.registry is not None else None
        if spec is None:
            raise LookupError(f"no '{name}' node in the registry")
        return spec

    def _leaf(self, step: Step) -> py_trees.behaviour.Behaviour:
        if step["skill"] == "ask":
            spec, params = self._spec("say"), {"text": step["args"]["question"]}
        else:
            spec = self._spec(step["skill"])
            params = {k: v for k, v in step["args"].items() if k in spec.params}
        summary = " ".join(str(v) for v in step["args"].values() if isinstance(v, str))[:40]
        leaf = spec.build(f"{step['id']} {step['skill']} {summary}".strip().replace(":", " "), params)
        leaf.step_id = step["id"]
        return leaf

    def _spec(self, tool: str) -> NodeSpec:
        if self.registry is None:
            raise LookupError("no node registry (the runner passes registry= to setup)")
        spec = next((s for s in self.registry.skills() if s.tool == tool), None)
        if spec is None:
            raise LookupError(f"no skill leaf for the tool '{tool}'")
        return spec

    def _report(self, child: py_trees.behaviour.Behaviour, outcome: str | None = None) -> None:
        """Record a step's outcome for the model's next turn.

        Args:
            child: the step's leaf (or its Search/Confirm)
            outcome: what happened; by default "done" or "failed: …" from the child's status
        """
        step_id = getattr(child, "step_id", None)
        results = list(self._get(keys.LLM_TOOL_RESULTS, []) or [])
        if outcome is None:
            outcome = "done" if child.status == Status.SUCCESS else f"failed: {child.feedback_message}"
        results.append({"step": step_id, "output": json.dumps({"step": step_id, "outcome": outcome})})
        self.blackboard.set(keys.LLM_TOOL_RESULTS, results)
