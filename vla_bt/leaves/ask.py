"""``Ask``: one model response, streamed into the blackboard while the tree keeps ticking."""

from __future__ import annotations

import time
from typing import Any

import py_trees

from vla_bt import blackboard as keys
from vla_bt.llm.backend import BackendError, ToolResult
from vla_bt.llm.bridge import StreamHandle
from vla_bt.llm.events import ResponseDone, StreamError, StreamEvent, TextDelta
from vla_bt.llm.prompt import summarise_perception
from vla_bt.llm.session import ModelSession
from vla_bt.perception.frames import asks_to_see, frame_source
from vla_bt.perception.imageio import ImageError, encode_within
from vla_bt.tree.declared import Leaf, Param, ParamUnavailableError

Status = py_trees.common.Status


class Ask(Leaf):
    """Send the dialogue to the language model and stream its answer into ``/llm/stream``.

    Args:
        name: node name
        instructions: extra instructions for this question, added to the session's
        timeout: seconds allowed for the whole response
        images: attach the camera's current frame to the user turn: ``never``, ``on_request`` (when the
            user's newest turn asks about what the robot sees: "what do you see?", "look at …") or
            ``every_turn``; backends that take images (``realtime``) send it as an ``input_image``
        max_image_bytes: the frame is sent as PNG, halved in size until it fits this many bytes

    Blackboard:
        reads ``/dialogue/history``, ``/perception/objects``, ``/perception/humans``,
        ``/llm/tool_results`` (outputs of the previous response's tool calls, then cleared);
        writes ``/llm/stream`` (this response's events, growing as they arrive) and
        ``/dialogue/history`` (the robot's text answer, if any)

    Returns:
        RUNNING while the response streams; SUCCESS when it is complete; FAILURE
        on a model error (with the server's code), a broken connection or the
        timeout. Preempted (``terminate`` with INVALID), it cancels the response.
    """

    DESCRIPTION = "Send the dialogue to the language model and stream its answer into /llm/stream."
    PARAMS = {
        "instructions": Param({"type": "string"}, "extra instructions for the model", default=""),
        "timeout": Param({"type": "number", "exclusiveMinimum": 0},
                         "seconds to wait for the complete response", default=30.0),
        "images": Param({"enum": ["never", "on_request", "every_turn"]},
                        "attach the camera's frame to the user turn: never, on_request (the user asks about "
                        "what the robot sees) or every_turn", default="never", runtime=False),
        "max_image_bytes": Param({"type": "integer", "minimum": 1000, "maximum": 20_000_000},
                                 "size limit of the attached frame (PNG, downscaled to fit)", default=250_000,
                                 runtime=False),
    }
    READS = (keys.PERCEPTION_OBJECTS, keys.PERCEPTION_HUMANS)
    WRITES = (keys.LLM_STREAM, keys.DIALOGUE_HISTORY, keys.LLM_TOOL_RESULTS)

    def __init__(self, name: str | None = None, **params: Any):
        super().__init__(name, **params)
        self.session: ModelSession | None = None
        self.wake: Any = None
        self._handle: StreamHandle[StreamEvent] | None = None
        self._deadline = 0.0
        self._text: list[str] = []
        self._setup_problem: str | None = None
        self.frames: Any = None  # gives the camera's current RGB frame (None: no camera)

    def setup(self, **kwargs: Any) -> None:
        """Take the model session (``llm=``) and the runner's wake-up (``wake=``); connect."""
        self.session = kwargs.get("llm", self.session)
        self.wake = kwargs.get("wake", self.wake)
        self.frames = frame_source(kwargs) if self.params["images"] != "never" else None
        self._setup_problem = None
        if self.session is not None:
            try:
                self.session.open(float(kwargs.get("timeout", 10.0) or 10.0))
            except (BackendError, TimeoutError, OSError) as exc:
                # Not a crash: the tree runs, and this leaf fails with the reason when it is ticked.
                self._setup_problem = f"cannot reach the model: {exc or type(exc).__name__}"

    def initialise(self) -> None:
        self._handle, self._text = None, []
        self.blackboard.set(keys.LLM_STREAM, [])
        if self.session is None or self._setup_problem:
            return
        try:
            timeout, extra = float(self.param("timeout")), str(self.param("instructions"))
        except ParamUnavailableError as exc:
            self.feedback_message = str(exc)
            return
        results, outcomes = self._tool_results()
        perception = summarise_perception(self._get(keys.PERCEPTION_OBJECTS), self._get(keys.PERCEPTION_HUMANS))
        history = self._get(keys.DIALOGUE_HISTORY, [])
        request = self.session.request(
            history=history,
            perception="\n".join(p for p in (perception, outcomes) if p),
            tool_results=results, instructions=extra, images=self._images(history),
        )
        self.blackboard.set(keys.LLM_TOOL_RESULTS, [])
        self._deadline = time.monotonic() + timeout
        self._handle = self.session.start(request, self.wake)
        self.feedback_message = "asking the model"

    def _images(self, history: list[dict[str, Any]]) -> list[bytes]:
        """The current frame, encoded within the size limit, when the ``images`` setting asks for it."""
        mode = self.params["images"]
        if mode == "never":
            return []
        if mode == "on_request":
            said = next((str(t.get("text", "")) for t in reversed(history or []) if t.get("role") == "user"), "")
            if not asks_to_see(said):
                return []
        frame = self.frames() if self.frames is not None else None
        if frame is None:
            self.feedback_message = "no camera frame to attach"
            return []
        try:
            return [encode_within(frame, int(self.params["max_image_bytes"]))]
        except ImageError as exc:
            self.feedback_message = f"frame not attached: {exc}"
            return []

    def _tool_results(self) -> tuple[list[ToolResult], str]:
        """Outputs of the previous response's calls; step outcomes without a call as text."""
        results, outcomes = [], []
        for entry in self._get(keys.LLM_TOOL_RESULTS, []) or []:
            if entry.get("call_id"):
                results.append(ToolResult(str(entry["call_id"]), str(entry["output"])))
            else:
                outcomes.append(str(entry["output"]))
        return results, ("Outcome of the previous plan's steps:\n" + "\n".join(outcomes)) if outcomes else ""

    def _get(self, key: str, default: Any = None) -> Any:
        return self.blackboard.get(key) if self.blackboard.exists(key) else default

    def update(self) -> Status:
        if self.session is None:
            self.feedback_message = "no language model (choose one with --llm)"
            return Status.FAILURE
        if self._setup_problem:
            return self._fail(self._setup_problem)
        if self._handle is None:
            return Status.FAILURE  # the parameters could not be read; the message says why
        finished = self._handle.finished  # read before polling: nothing arrives after it is set
        events = self._handle.poll()
        if events:
            self.blackboard.set(keys.LLM_STREAM, [*self.blackboard.get(keys.LLM_STREAM), *events])
        for event in events:
            status = self._on_event(event)
            if status is not None:
                return status
        if finished:
            cause = self._handle.error
            reason = f"{type(cause).__name__}: {cause}" if cause else "the stream ended without a response"
            return self._fail(f"model connection failed: {reason}")
        if time.monotonic() > self._deadline:
            return self._fail(f"no complete response within {self.param('timeout')} s")
        return Status.RUNNING

    def _on_event(self, event: StreamEvent) -> Status | None:
        if isinstance(event, TextDelta):
            self._text.append(event.text)
            self.feedback_message = "streaming: " + "".join(self._text)[-60:]
        elif isinstance(event, StreamError):
            return self._fail(f"model error {event.code}: {event.message}")
        elif isinstance(event, ResponseDone):
            text = (event.text or "".join(self._text)).strip()
            if text:
                keys.append_turn(self.blackboard, "robot", text)
            if event.status != "completed":
                self.feedback_message = f"response {event.status}"
                return Status.FAILURE
            self.feedback_message = "response complete"
            return Status.SUCCESS
        return None

    def _fail(self, reason: str) -> Status:
        """FAILURE, and the user hears why (the dialogue is the user's view of the run)."""
        self.feedback_message = reason
        keys.append_turn(self.blackboard, "robot", f"Sorry, I could not get an answer: {reason}.")
        return Status.FAILURE

    def terminate(self, new_status: Status) -> None:
        if self._handle is not None and not self._handle.finished:
            self._handle.cancel()  # preempted: the backend cancels the response on the server
        self._handle = None
