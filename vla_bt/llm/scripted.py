"""``--llm scripted:FILE``: recorded model outputs, streamed like a model.

The file (DESIGN §6) lists one entry per response, in order::

    responses:
      - tool_calls:                # arguments are raw strings, as a model streams them
          - {name: navigate, arguments: '{"target": "kitchen"}'}
      - text: "Which cup do you mean?"
      - error: {code: server_error, message: "The server had an error"}   # a failed response

Each response goes through exactly the same parsing, validation and guard
path as a live model's: text and arguments are streamed in token-sized
pieces, at the pace given (``pace: {first_token_s: 0.32, tokens_per_s: 50}``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vla_bt.tree.diagnostics import Diagnostic, TreeError
from vla_bt.tree.yamlsrc import LList, LMap, read_located

from .backend import Backend, TurnRequest
from .events import ResponseDone, StreamError, StreamEvent, TextDelta, ToolCallDelta, ToolCallDone, ToolCallStarted
from .pacing import Pacing, tokens


@dataclass(frozen=True)
class PlannedCall:
    """One tool call of a planned response; ``arguments`` is the raw JSON text."""

    name: str
    arguments: str


@dataclass(frozen=True)
class PlannedResponse:
    """A whole response known in advance (scripted, or from the local planner)."""

    text: str = ""
    tool_calls: Sequence[PlannedCall] = field(default_factory=tuple)
    error: tuple[str, str] | None = None  # (code, message)
    closing: str = ""  # text spoken after the tool calls (the robot saying what it is doing)


async def stream_planned(response: PlannedResponse, pacing: Pacing, call_prefix: str) -> AsyncIterator[StreamEvent]:
    """Stream a planned response token by token, the way a model would."""
    clock = pacing.clock()
    await clock.first()
    if response.error:
        yield StreamError(code=response.error[0], message=response.error[1])
        return
    for piece in tokens(response.text):
        yield TextDelta(text=piece)
        await clock.next()
    for index, call in enumerate(response.tool_calls):
        call_id = f"{call_prefix}_{index}"
        yield ToolCallStarted(call_id=call_id, name=call.name)
        for piece in tokens(call.arguments):
            yield ToolCallDelta(call_id=call_id, delta=piece)
            await clock.next()
        yield ToolCallDone(call_id=call_id, name=call.name, arguments=call.arguments)
    for piece in tokens(response.closing):
        yield TextDelta(text=piece)
        await clock.next()
    text = " ".join(t for t in (response.text, response.closing) if t)
    yield ResponseDone(text=text, usage={"output_tokens": _count(response)})


def _count(response: PlannedResponse) -> int:
    return (sum(1 for _ in tokens(response.text)) + sum(1 for _ in tokens(response.closing))
            + sum(1 for c in response.tool_calls for _ in tokens(c.arguments)))


class ScriptedBackend(Backend):
    """Replays planned responses in order.

    Args:
        responses: one per model response
        pacing: how fast to stream

    Once every response is used, further requests get a ``script_exhausted`` error.
    """

    name = "scripted"

    def __init__(self, responses: Sequence[PlannedResponse], pacing: Pacing | None = None):
        self.responses = list(responses)
        self.pacing = pacing or Pacing()
        self.requests: list[TurnRequest] = []

    @classmethod
    def from_file(cls, path: str | Path, pacing: Pacing | None = None) -> ScriptedBackend:
        """Read a scripted file (pacing from the file unless given).

        Raises:
            TreeError: the file is missing or malformed (``FILE:LINE:COL`` for each problem)
        """
        responses, file_pacing = parse_script(path)
        return cls(responses, pacing or file_pacing)

    async def respond(self, request: TurnRequest) -> AsyncIterator[StreamEvent]:
        self.requests.append(request)
        index = len(self.requests) - 1
        if index >= len(self.responses):
            yield StreamError(code="script_exhausted",
                              message=f"the script has {len(self.responses)} response(s); no more to give")
            return
        async for event in stream_planned(self.responses[index], self.pacing, f"call_{index}"):
            yield event


def parse_script(path: str | Path) -> tuple[list[PlannedResponse], Pacing]:
    """Parse and check a scripted file, reporting every problem with its position."""
    data = read_located(path, str(path) or "--llm scripted:FILE")  # "scripted:" alone names no file
    errors: list[Diagnostic] = []

    def error(mark: Any, message: str) -> None:
        errors.append(Diagnostic(mark, message))

    if not isinstance(data, LMap) or not isinstance(data.get("responses"), LList):
        where = data.mark if isinstance(data, (LMap, LList)) else None
        raise TreeError([Diagnostic(where or _start(path), "expected a mapping with 'responses:' (a list)")])
    for key in data:
        if key not in ("responses", "pace"):
            error(data.key_at(key), f"unknown key '{key}' (expected responses, pace)")
    pacing = _pacing(data, error)
    responses = [_response(item, data["responses"].at(i), error) for i, item in enumerate(data["responses"])]
    if errors:
        raise TreeError(errors)
    return responses, pacing


def _start(path: str | Path) -> Any:
    from vla_bt.tree.diagnostics import Mark

    return Mark(str(path), 1, 1)


def _pacing(data: LMap, error: Any) -> Pacing:
    pace = data.get("pace")
    if pace is None:
        return Pacing()
    if not isinstance(pace, LMap) or set(pace) - {"first_token_s", "tokens_per_s"} or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in pace.values()):
        error(data.at("pace"), "'pace' takes first_token_s and tokens_per_s (numbers ≥ 0)")
        return Pacing()
    return Pacing(float(pace.get("first_token_s", 0)), float(pace.get("tokens_per_s", 0)))


def _response(item: Any, mark: Any, error: Any) -> PlannedResponse:
    if not isinstance(item, LMap) or not item:
        error(mark, "each response is a mapping with 'text', 'tool_calls' or 'error'")
        return PlannedResponse()
    for key in item:
        if key not in ("text", "tool_calls", "error"):
            error(item.key_at(key), f"unknown key '{key}' in a response (expected text, tool_calls, error)")
    text = item.get("text", "")
    if not isinstance(text, str):
        error(item.at("text"), "'text' must be a string")
        text = ""
    failure = None
    if "error" in item:
        spec = item["error"]
        if isinstance(spec, LMap) and isinstance(spec.get("code"), str) and isinstance(spec.get("message", ""), str):
            failure = (spec["code"], spec.get("message", spec["code"]))
        else:
            error(item.at("error"), "'error' takes {code: TEXT, message: TEXT}")
    calls = item.get("tool_calls", LList())
    if not isinstance(calls, LList):
        error(item.at("tool_calls"), "'tool_calls' must be a list of {name, arguments}")
        calls = LList()
    return PlannedResponse(text, tuple(_call(c, calls.at(i), error) for i, c in enumerate(calls)), failure)


def _call(call: Any, mark: Any, error: Any) -> PlannedCall:
    if not isinstance(call, LMap) or not isinstance(call.get("name"), str):
        error(mark, "a tool call needs 'name' (a tool name) and 'arguments' (raw JSON text)")
        return PlannedCall("", "")
    for key in call:
        if key not in ("name", "arguments"):
            error(call.key_at(key), f"unknown key '{key}' in a tool call (expected name, arguments)")
    arguments = call.get("arguments", "{}")
    if isinstance(arguments, dict):  # a convenience: a mapping is sent as its JSON text
        arguments = json.dumps(arguments)
    if not isinstance(arguments, str):
        error(call.at("arguments"), "'arguments' must be the raw JSON text the model streams (a string)")
        arguments = ""
    return PlannedCall(call["name"], arguments)
