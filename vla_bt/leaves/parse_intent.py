"""``ParseIntent``: each tool call of the model stream, arguments complete → a validated, grounded plan step."""

from __future__ import annotations

import json
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import jsonschema
import py_trees

from vla_bt import blackboard as keys
from vla_bt.blackboard import Step
from vla_bt.guards.audit import AuditLog
from vla_bt.intent.grounding import (
    IT,
    AmbiguousError,
    Context,
    Grounded,
    Scene,
    UnresolvedError,
    ground_human,
    ground_object,
    ground_target,
    words,
)
from vla_bt.llm.backend import ToolSpec
from vla_bt.llm.events import (
    ResponseDone,
    StreamError,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    ToolCallDone,
    ToolCallStarted,
)
from vla_bt.perception.catalogue import Catalogue, Entry
from vla_bt.perception.source import PERCEPTION_SOURCE

from .skills import SCENE_KEYS, SceneAware

Status = py_trees.common.Status
MAX_STEPS = 20


class RefusedError(ValueError):
    """A tool call that must not become a step; the message is the reason."""


MAX_ARGUMENTS_CHARS = 20_000
MAX_MAGNITUDE = 1e9  # no argument of any skill is a number this large
MAX_EARLY_PARSES = 16
"""Attempts per call to read its streamed arguments as complete; after that it waits for its done event."""
JSON_SPACE = " \t\n\r"


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > 15:
        raise RefusedError(f"arguments contain an integer of {len(text)} digits")
    return int(text)


def parse_arguments(raw: str) -> dict[str, Any]:
    """Strict JSON arguments: an object, finite numbers only.

    Raises:
        RefusedError: not JSON, not an object, or NaN/Infinity inside
    """
    def no_constants(name: str) -> Any:
        raise RefusedError(f"arguments contain {name}, which is not a finite number")

    if len(raw) > MAX_ARGUMENTS_CHARS:
        raise RefusedError(f"arguments are {len(raw)} characters long (at most {MAX_ARGUMENTS_CHARS})")
    try:
        value = json.loads(raw, parse_constant=no_constants, parse_int=_bounded_int)
    except json.JSONDecodeError as exc:
        raise RefusedError(f"arguments are not valid JSON ({exc.msg} at character {exc.pos})") from None
    except RecursionError:
        raise RefusedError("arguments are nested too deeply") from None
    except ValueError as exc:  # e.g. integers too long to convert
        raise RefusedError(f"arguments are not acceptable JSON: {exc}") from None
    if not isinstance(value, dict):
        raise RefusedError("arguments must be a JSON object")
    if _has_non_finite(value):
        raise RefusedError(f"arguments contain a number that is not finite or above {MAX_MAGNITUDE:g}")
    return value


def _has_non_finite(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return not math.isfinite(value) or abs(value) > MAX_MAGNITUDE
    if isinstance(value, dict):
        return any(_has_non_finite(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_non_finite(v) for v in value)
    return False


def complete_object(text: str) -> bool:
    """Whether streamed arguments already form one whole JSON object.

    Only completeness is judged here (NaN or duplicate keys still count as
    complete); whether the arguments are acceptable is decided afterwards by
    the same checks as for any call (``parse_arguments``, the schema, grounding).

    Args:
        text: the arguments streamed so far

    Returns:
        True if ``text`` parses as a JSON object
    """
    try:
        return isinstance(json.loads(text), dict)
    except (ValueError, RecursionError):
        return False


@dataclass
class _Call:
    """One tool call of the stream, from its first event until its done event.

    Args:
        call_id: the call's id
        name: the tool name (from ``ToolCallStarted``, or from ``ToolCallDone`` for a call without deltas)
        pieces: the argument deltas so far (not kept once they exceed ``MAX_ARGUMENTS_CHARS``)
        size: characters streamed so far
        parses: attempts to read the deltas as a complete object
        raw: the complete arguments, once known (from the deltas or the done event)
        streamed: ``raw`` came from the deltas, so the done event must repeat them
        done: the done event arrived
        acted: the call became a step or was refused
        step: the id of the step it became
        problem: the protocol violation it was refused for
    """

    call_id: str
    name: str = ""
    pieces: list[str] = field(default_factory=list)
    size: int = 0
    parses: int = 0
    raw: str | None = None
    streamed: bool = False
    done: bool = False
    acted: bool = False
    step: str | None = None
    problem: str | None = None

    def text(self) -> str:
        """The arguments as streamed (the done event's for a call without deltas)."""
        return "".join(self.pieces) if self.streamed or self.raw is None else self.raw


class ParseIntent(SceneAware):
    """Turn each tool call (or JSON step in plain text) into a plan step as soon as its arguments are complete.

    A call's arguments are complete at the delta that closes them into one
    JSON object, at least a token ahead of the call's done event; a call
    without deltas completes at its done event. Steps follow the order in which the
    calls began. A done event that does not repeat the arguments already
    acted on (or arguments streamed past the closed object) is a protocol
    violation: it is refused like any call, and no second step is made.

    Each call is checked before it becomes a step: the tool must be offered,
    the arguments strict JSON matching the tool's schema (unknown fields,
    wrong types, non-finite numbers and oversize strings are refused), and
    every reference grounded in the scene. A refused call is audited as
    ``rejected``, returned to the model as the call's output, and ends the
    plan there (later calls may depend on it). A reference that matches
    several things becomes an ``ask`` step with a clarification question.

    With camera perception (``/perception/source`` is ``camera``, or
    ``setup(perception="camera")``) the robot only knows what it has seen: a
    reference to an object nobody has seen yet, but that the world's
    catalogue makes plausible ("the green mug": a green mug exists), is
    accepted with the user's words left in the step's arguments and the
    reference in the step's ``search`` field; ``ExecutePlan`` then looks for
    it before the step, and the skill leaf grounds it before anything is sent.

    Blackboard:
        reads ``/llm/stream``, ``/perception/source`` and the scene (``/perception/*``, ``/robot/*``,
        ``/dialogue/context``);
        writes ``/plan/steps``, ``/plan/done``, ``/plan/rejected``, ``/dialogue/context``, ``/llm/tool_results``

    Returns:
        RUNNING until the response is complete; SUCCESS then; FAILURE if the stream failed
    """

    DESCRIPTION = "Turn each completed tool call of the model stream into a validated, grounded plan step."
    PARAMS: dict = {}
    READS = (*SCENE_KEYS, keys.LLM_STREAM, PERCEPTION_SOURCE)
    WRITES = (keys.PLAN_STEPS, keys.PLAN_DONE, keys.PLAN_REJECTED, keys.PLAN_OVERTURNED, keys.DIALOGUE_CONTEXT,
              keys.LLM_TOOL_RESULTS)

    def __init__(self, name: str | None = None, **params: Any):
        super().__init__(name, **params)
        self.tools: dict[str, ToolSpec] = {}
        self.audit = AuditLog()
        self.world: Any = None
        self.catalogue = Catalogue()
        self.perception: str | None = None  # "camera": only what was seen is known (see the class docs)
        self._unseen: tuple[str, list[Entry]] | None = None
        self._count = 0  # step ids stay unique across responses

    def setup(self, **kwargs: Any) -> None:
        super().setup(**kwargs)
        session = kwargs.get("llm")
        if session is not None:
            self.tools = {tool.name: tool for tool in session.tools}
        self.audit = kwargs.get("audit", self.audit)
        self.world = kwargs.get("world", self.world)
        self.perception = kwargs.get("perception", self.perception)
        if self.world is not None:
            self.catalogue = Catalogue.from_world(self.world)

    def initialise(self) -> None:
        self._cursor, self._text, self._text_cursor = 0, "", 0
        self._steps: list[Step] = []
        self._blocked: str | None = None
        self._stream: Any = None
        self._calls: dict[str, _Call] = {}
        self._pending: deque[_Call] = deque()  # calls not acted on yet, in the order they began
        self.blackboard.set(keys.PLAN_STEPS, [])
        self.blackboard.set(keys.PLAN_DONE, False)
        self.blackboard.set(keys.PLAN_REJECTED, None)
        self.blackboard.set(keys.PLAN_OVERTURNED, {})

    def update(self) -> Status:
        stream = self.blackboard.get(keys.LLM_STREAM) if self.blackboard.exists(keys.LLM_STREAM) else []
        for event in list(stream)[self._cursor:]:
            self._cursor += 1
            status = self._on_event(event)
            if status is not None:
                self.blackboard.set(keys.PLAN_DONE, True)
                return status
        self.feedback_message = f"{len(self._steps)} step(s) so far"
        return Status.RUNNING

    def _on_event(self, event: StreamEvent) -> Status | None:
        if isinstance(event, ToolCallStarted):
            self._on_started(event.call_id, event.name)
        elif isinstance(event, ToolCallDelta):
            self._on_delta(event.call_id, event.delta)
        elif isinstance(event, ToolCallDone):
            self._on_done(event.call_id, event.name, event.arguments)
        elif isinstance(event, TextDelta):
            self._text += event.text
            self._steps_in_text(final=False)
        elif isinstance(event, ResponseDone):
            self._flush(final=True)
            self._steps_in_text(final=True)
            self.feedback_message = f"plan complete: {len(self._steps)} step(s)"
            return Status.SUCCESS
        elif isinstance(event, StreamError):
            self.feedback_message = f"the model stream failed: {event.code}"
            return Status.FAILURE
        return None

    # -- tool call events ----------------------------------------------------------------

    def _call(self, call_id: str, name: str = "") -> _Call:
        """The call with this id, registered (and queued) at its first event."""
        call = self._calls.get(call_id)
        if call is None:
            call = self._calls[call_id] = _Call(call_id, name)
            self._pending.append(call)
        return call

    def _on_started(self, call_id: str, name: str) -> None:
        if call_id in self._calls and self._calls[call_id].done:
            del self._calls[call_id]  # an id used again after its call ended: a new call
        self._call(call_id, name)

    def _on_delta(self, call_id: str, delta: str) -> None:
        call = self._call(call_id)
        if call.done:
            return  # a piece after the done event: the done event's arguments count
        call.size += len(delta)
        if call.size <= MAX_ARGUMENTS_CHARS:
            call.pieces.append(delta)
        elif call.raw is None:  # too long to be accepted: refused now, not once the model has streamed it all
            call.pieces.clear()
            call.raw = f"<{call.size} characters so far>"
            call.problem = f"arguments are over {MAX_ARGUMENTS_CHARS} characters long (at most {MAX_ARGUMENTS_CHARS})"
            self._flush()
            return
        if call.raw is not None:  # the object was closed already: only whitespace may follow
            if delta.strip(JSON_SPACE) or call.size > MAX_ARGUMENTS_CHARS:
                self._violation(call, "".join(call.pieces) or delta, "arguments streamed past the closed object")
            return
        if self._may_complete(call, delta):
            call.parses += 1
            text = "".join(call.pieces)
            if complete_object(text):
                call.raw, call.streamed = text, True
                self._flush()

    @staticmethod
    def _may_complete(call: _Call, delta: str) -> bool:
        """Whether this delta could close the object, and the call is worth a parse (bounded work)."""
        return (bool(call.name) and call.size <= MAX_ARGUMENTS_CHARS and call.parses < MAX_EARLY_PARSES
                and delta.rstrip(JSON_SPACE).endswith("}"))

    def _on_done(self, call_id: str, name: str, arguments: str) -> None:
        call = self._call(call_id, name)
        already = call.raw is not None
        call.done = True
        if not already:  # no complete object in the deltas (or no deltas): the done event's arguments, as ever
            call.name, call.raw = name, arguments
            self._flush()
        elif name != call.name:
            self._violation(call, arguments, f"the call was streamed as '{call.name}' but completed as '{name}'")
        elif arguments != call.text():
            self._violation(call, arguments, "its final arguments differ from the streamed ones")

    def _violation(self, call: _Call, raw: str, detail: str) -> None:
        """Refuse a call the stream contradicted (once), whether or not it was acted on yet."""
        if call.problem is not None:
            return
        acted = f" (step {call.step} was already accepted)" if call.step else ""
        call.problem = f"protocol violation in call {call.call_id}: {detail}{acted}"
        if call.acted:
            self._refuse(call.call_id, call.name, raw, call.problem, step=call.step)
        else:
            call.raw = raw  # refused instead of acted on when its turn comes

    def _flush(self, final: bool = False) -> None:
        """Act on complete calls in the order they began; at the end, drop those that never completed."""
        while self._pending:
            call = self._pending[0]
            if call.raw is None and not final:
                return  # a later call waits: steps keep the order of the calls
            self._pending.popleft()
            if call.raw is None:
                continue  # never completed: nothing is done for it
            call.acted = True
            if call.problem is not None:
                self._refuse(call.call_id, call.name, call.raw, call.problem)
            else:
                call.step = self._on_call(call.call_id, call.name, call.raw)

    # -- one call ---------------------------------------------------------------------

    def _on_call(self, call_id: str, name: str, raw: str) -> str | None:
        """Validate and ground one call; append it as a step, or refuse it.

        Returns:
            the id of the step it became, or None if it was refused
        """
        self._unseen = None
        try:
            if self._blocked:
                raise RefusedError(f"not carried out: {self._blocked}")
            if len(self._steps) >= MAX_STEPS:
                raise RefusedError(f"a plan may have at most {MAX_STEPS} steps")
            tool = self.tools.get(name)
            if tool is None:
                raise RefusedError(f"unknown tool '{name}' (offered: {', '.join(sorted(self.tools)) or 'none'})")
            args = parse_arguments(raw)
            problems = sorted(jsonschema.Draft202012Validator(dict(tool.parameters)).iter_errors(args), key=str)
            if problems:
                where = "/".join(str(p) for p in problems[0].absolute_path)
                raise RefusedError(f"arguments{' at ' + where if where else ''}: {problems[0].message}")
            step = self._step(name, self._ground(name, args))
            if self._unseen is not None:
                step["search"] = self._unseen[0]  # type: ignore[typeddict-unknown-key]
        except RefusedError as refusal:
            self._refuse(call_id, name, raw, str(refusal))
            return None
        except AmbiguousError as ambiguity:
            step = self._step("ask", {"question": ambiguity.question})
            self._blocked = "waiting for the answer to a clarification question"
        except UnresolvedError as unresolved:
            self._refuse(call_id, name, raw, str(unresolved))
            return None
        self._steps.append(step)
        self.blackboard.set(keys.PLAN_STEPS, list(self._steps))
        accepted = {"status": "accepted", "step": step["id"], "args": step["args"]}
        if step.get("search"):
            accepted["note"] = f"'{step.get('search')}' is not in view yet: the robot will look for it first"
        self._result(call_id, accepted)
        return step["id"]

    def _step(self, skill: str, args: dict[str, Any]) -> Step:
        self._count += 1
        risk = "low"
        if self.world is not None:
            for value in (args.get("object"), args.get("target")):
                obj = self.world.object(value) if isinstance(value, str) else None
                if obj is not None and obj.risk == "high":
                    risk = "high"
        if self._unseen is not None and any(entry.risk == "high" for entry in self._unseen[1]):
            risk = "high"  # not seen yet, but it may be the high-risk one: confirm first all the same
        return Step(id=f"s{self._count}", skill=skill, args=args, risk=risk)

    def _refuse(self, call_id: str, name: str, raw: str, reason: str, step: str | None = None) -> None:
        """Audit a refused call, tell the model, and end the plan here.

        Args:
            call_id: the call refused
            name: its tool name
            raw: its arguments as the model sent them
            reason: why it was refused
            step: the step it had already become, if any
        """
        try:
            args: Any = parse_arguments(raw)
        except RefusedError:
            args = raw[:500] + (f"... [{len(raw)} characters]" if len(raw) > 500 else "")
        self.audit.write("rejected", skill=name, args=args, reason=reason, step=step)
        self._result(call_id, {"status": "rejected", "reason": reason})
        if step is not None:  # a step already accepted (maybe running) is overturned, whatever was refused before
            overturned = dict(self.blackboard.get(keys.PLAN_OVERTURNED) or {})
            overturned.setdefault(step, reason)
            self.blackboard.set(keys.PLAN_OVERTURNED, overturned)
        if self._blocked is None:
            self._blocked = f"an earlier step was refused ({reason})"
            self.blackboard.set(keys.PLAN_REJECTED, reason)

    def _result(self, call_id: str, output: dict[str, Any]) -> None:
        """Record the output the model gets for a call; a later verdict on the same call replaces the earlier."""
        results = list(self.blackboard.get(keys.LLM_TOOL_RESULTS) or []) \
            if self.blackboard.exists(keys.LLM_TOOL_RESULTS) else []
        if call_id:
            results = [r for r in results if r.get("call_id") != call_id]
        results.append({"call_id": call_id, "output": json.dumps(output)})
        self.blackboard.set(keys.LLM_TOOL_RESULTS, results)

    # -- grounding ----------------------------------------------------------------------

    def _ground(self, skill: str, args: dict[str, Any]) -> dict[str, Any]:
        """Resolve references to ids, and remember them for "it" and "there"."""
        scene, context = self.scene(), self.context()
        grounded = dict(args)
        self._unseen = None
        if skill == "navigate":
            target = self._or_unseen(lambda: ground_target(args["target"], scene, context), args["target"], context)
            if target is not None:
                grounded["target"] = target.id if target.id else list(target.pose)
                self._remember(context, target, scene, navigating=True)
        elif skill == "grasp":
            target = self._or_unseen(lambda: ground_object(args["object"], scene, context), args["object"], context)
            if target is not None:
                grounded["object"] = target.id
                self._remember(context, target, scene)
        elif skill == "place":
            target = self._or_unseen(lambda: ground_target(args["target"], scene, context), args["target"], context)
            if target is not None:
                grounded["target"] = target.id if target.id else list(target.pose)
        elif skill == "hand_over":
            grounded["to"] = ground_human(args["to"], scene).id
        self.blackboard.set(keys.DIALOGUE_CONTEXT, context.to_json())
        return grounded

    def camera_mode(self) -> bool:
        """Whether perception shows only what the camera has seen (so unseen objects may still exist)."""
        return self.perception == "camera" or self._get(PERCEPTION_SOURCE) == "camera"

    def _or_unseen(self, resolve: Any, reference: Any, context: Context) -> Grounded | None:
        """``resolve()``; with camera perception, None for a plausible object nobody has seen yet (see the class).

        Raises:
            UnresolvedError: nothing matches, and nothing known could (or perception is not the camera's)
        """
        try:
            return resolve()
        except UnresolvedError:
            if not (self.camera_mode() and isinstance(reference, str)):
                raise
            said = reference
            if set(words(said)) <= IT and context.last_object and self.catalogue.get(context.last_object):
                said = context.last_object  # "it": the object last spoken of, out of view now
            entries = self.catalogue.plausible(said)
            if not entries:
                raise
        self._unseen = (said, entries)
        labels = {entry.label for entry in entries}
        if len(labels) == 1:
            context.last_label = labels.pop()
        if len(entries) == 1:
            context.last_object = entries[0].id
        self.blackboard.set(keys.DIALOGUE_CONTEXT, context.to_json())
        return None

    def _remember(self, context: Context, target: Grounded, scene: Scene, navigating: bool = False) -> None:
        if target.kind == "object":
            context.last_object = target.id
            obj = scene.object(target.id) if target.id else None  # the scene this call was grounded in
            context.last_label = str(obj.get("label")) if obj else context.last_label
        elif target.kind == "place" and navigating:
            context.previous_place, context.last_place = context.last_place, target.id

    # -- JSON steps in plain text (models without tool calling) ----------------------------

    def _steps_in_text(self, final: bool) -> None:
        decoder = json.JSONDecoder()
        while (start := self._text.find("{", self._text_cursor)) != -1:
            try:
                value, end = decoder.raw_decode(self._text, start)
            except json.JSONDecodeError:
                if not final:
                    return  # the object may still be streaming
                self._text_cursor = start + 1
                continue
            self._text_cursor = end
            if isinstance(value, dict):
                name = value.get("tool") or value.get("name") or value.get("skill")
                arguments = value.get("arguments", value.get("args", {}))
                if isinstance(name, str):
                    raw = arguments if isinstance(arguments, str) else json.dumps(arguments)
                    self._on_call(f"text_{start}", name, raw)
