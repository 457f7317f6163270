"""``ParseIntent``: each completed tool call of the model stream → a validated, grounded plan step."""

from __future__ import annotations

import json
import math
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
from vla_bt.llm.events import ResponseDone, StreamError, StreamEvent, TextDelta, ToolCallDone
from vla_bt.perception.catalogue import Catalogue, Entry
from vla_bt.perception.source import PERCEPTION_SOURCE

from .skills import SCENE_KEYS, SceneAware

Status = py_trees.common.Status
MAX_STEPS = 20


class RefusedError(ValueError):
    """A tool call that must not become a step; the message is the reason."""


MAX_ARGUMENTS_CHARS = 20_000
MAX_MAGNITUDE = 1e9  # no argument of any skill is a number this large


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


class ParseIntent(SceneAware):
    """Turn each completed tool call (or JSON step in plain text) into a plan step as soon as it completes.

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
    WRITES = (keys.PLAN_STEPS, keys.PLAN_DONE, keys.PLAN_REJECTED, keys.DIALOGUE_CONTEXT, keys.LLM_TOOL_RESULTS)

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
        self.blackboard.set(keys.PLAN_STEPS, [])
        self.blackboard.set(keys.PLAN_DONE, False)
        self.blackboard.set(keys.PLAN_REJECTED, None)

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
        if isinstance(event, ToolCallDone):
            self._on_call(event.call_id, event.name, event.arguments)
        elif isinstance(event, TextDelta):
            self._text += event.text
            self._steps_in_text(final=False)
        elif isinstance(event, ResponseDone):
            self._steps_in_text(final=True)
            self.feedback_message = f"plan complete: {len(self._steps)} step(s)"
            return Status.SUCCESS
        elif isinstance(event, StreamError):
            self.feedback_message = f"the model stream failed: {event.code}"
            return Status.FAILURE
        return None

    # -- one call ---------------------------------------------------------------------

    def _on_call(self, call_id: str, name: str, raw: str) -> None:
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
                raise RefusedError(f"arguments {where + ': ' if where else ''}{problems[0].message}")
            step = self._step(name, self._ground(name, args))
            if self._unseen is not None:
                step["search"] = self._unseen[0]  # type: ignore[typeddict-unknown-key]
        except RefusedError as refusal:
            self._refuse(call_id, name, raw, str(refusal))
            return
        except AmbiguousError as ambiguity:
            step = self._step("ask", {"question": ambiguity.question})
            self._blocked = "waiting for the answer to a clarification question"
        except UnresolvedError as unresolved:
            self._refuse(call_id, name, raw, str(unresolved))
            return
        self._steps.append(step)
        self.blackboard.set(keys.PLAN_STEPS, list(self._steps))
        accepted = {"status": "accepted", "step": step["id"], "args": step["args"]}
        if step.get("search"):
            accepted["note"] = f"'{step.get('search')}' is not in view yet: the robot will look for it first"
        self._result(call_id, accepted)

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

    def _refuse(self, call_id: str, name: str, raw: str, reason: str) -> None:
        try:
            args: Any = parse_arguments(raw)
        except RefusedError:
            args = raw[:500] + (f"... [{len(raw)} characters]" if len(raw) > 500 else "")
        self.audit.write("rejected", skill=name, args=args, reason=reason, step=None)
        self._result(call_id, {"status": "rejected", "reason": reason})
        if self._blocked is None:
            self._blocked = f"an earlier step was refused ({reason})"
            self.blackboard.set(keys.PLAN_REJECTED, reason)

    def _result(self, call_id: str, output: dict[str, Any]) -> None:
        results = list(self.blackboard.get(keys.LLM_TOOL_RESULTS) or []) \
            if self.blackboard.exists(keys.LLM_TOOL_RESULTS) else []
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
