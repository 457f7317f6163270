"""``ChatBackend`` with the real ``openai`` SDK against a local streaming Chat Completions server.

Nothing in the client path is replaced: the SDK sends real HTTP requests to
``tests/chat_server.py``, which streams ``chat.completion.chunk`` frames over
Server-Sent Events the way OpenAI does, and records what it was asked. The
blackboard is cleared between tests by the autouse fixture of ``conftest.py``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import openai
import py_trees
import pytest

from vla_bt import blackboard as keys
from vla_bt.leaves.ask import Ask
from vla_bt.llm.backend import ToolResult, ToolSpec, TurnRequest
from vla_bt.llm.chat import ChatBackend, ChunkAssembler
from vla_bt.llm.events import (
    ResponseDone,
    StreamError,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    ToolCallDone,
    ToolCallStarted,
)
from vla_bt.llm.pacing import tokens
from vla_bt.llm.session import ModelSession

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # tests.chat_server, as the other tests import tests.helpers
    sys.path.insert(0, str(ROOT))

from tests.chat_server import ChatServer, Fault, PlannedCall, PlannedResponse, chunk_frames  # noqa: E402

Status = py_trees.common.Status
MODEL = "local-model"
KEY = "sk-test-SECRET-4f9a2c"
NAVIGATE = PlannedCall("navigate", '{"target": "kitchen", "speed": 0.4}')
GRASP = PlannedCall("grasp", '{"object": "red cup"}')
TOOLS = [
    ToolSpec("navigate", "Drive to a place or object.",
             {"type": "object", "properties": {"target": {"type": "string"}, "speed": {"type": "number"}},
              "required": ["target"], "additionalProperties": False}),
    ToolSpec("grasp", "Pick up an object.",
             {"type": "object", "properties": {"object": {"type": "string"}}, "required": ["object"],
              "additionalProperties": False}),
]
PERCEPTION = "The robot perceives:\n- object cup_red: red cup at (4.0, 2.0)"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16


@pytest.fixture(autouse=True)
def no_openai_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's own OPENAI_* settings must not leak into these tests."""
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ADMIN_KEY", "OPENAI_CUSTOM_HEADERS"):
        monkeypatch.delenv(name, raising=False)


def make_backend(server: ChatServer, **options: Any) -> ChatBackend:
    options.setdefault("api_key", KEY)
    options.setdefault("max_retries", 0)
    return ChatBackend(MODEL, base_url=server.base_url, **options)


def turn(role: str, text: str, t: float) -> dict[str, Any]:
    return {"role": role, "text": text, "t": t}


def request(*history: dict[str, Any], **fields: Any) -> TurnRequest:
    fields.setdefault("tools", TOOLS)
    fields.setdefault("instructions", "You control a robot.")
    fields.setdefault("perception", PERCEPTION)
    return TurnRequest(history=list(history) or [turn("user", "bring me the red cup", 1.0)], **fields)


async def _collect(backend: ChatBackend, requests: Sequence[TurnRequest]) -> list[list[StreamEvent]]:
    await backend.open()
    results: list[list[StreamEvent]] = []
    try:
        for r in requests:
            results.append([event async for event in backend.respond(r)])
        return results
    finally:
        await backend.close()


def run(backend: ChatBackend, *requests: TurnRequest) -> list[list[StreamEvent]]:
    """Every event of each response, the requests one after the other on one client."""
    return asyncio.run(_collect(backend, requests or [request()]))


def of(events: Sequence[StreamEvent], kind: type) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


# -- streaming -------------------------------------------------------------------------------------------------


def test_the_first_tool_call_completes_while_the_second_is_still_streaming() -> None:
    first_pieces = len(list(tokens(NAVIGATE.arguments)))
    # frame 0 starts navigate, then its pieces; the next frame starts grasp; hold after one grasp piece
    hold_at = first_pieces + 3
    with ChatServer([PlannedResponse(tool_calls=(NAVIGATE, GRASP))], fault=Fault(stall_after=hold_at)) as server:
        backend = make_backend(server)
        seen_when_first_done: dict[str, Any] = {}

        async def scenario() -> list[StreamEvent]:
            await backend.open()
            events: list[StreamEvent] = []
            try:
                async for event in backend.respond(request()):
                    events.append(event)
                    if isinstance(event, ToolCallDone) and not seen_when_first_done:
                        seen_when_first_done["frames_sent"] = server.exchanges[0].frames_sent
                        seen_when_first_done["dones"] = len(of(events, ToolCallDone))
                        server.release()  # only now may the server send the rest of grasp
            finally:
                await backend.close()
            return events

        events = asyncio.run(scenario())

    # navigate was complete while the server, held, had sent at most grasp's start and one piece of it
    assert seen_when_first_done["dones"] == 1 and seen_when_first_done["frames_sent"] <= hold_at
    started, done = of(events, ToolCallStarted), of(events, ToolCallDone)
    assert [s.name for s in started] == [d.name for d in done] == ["navigate", "grasp"]
    assert [d.call_id for d in done] == [s.call_id for s in started]
    assert [d.arguments for d in done] == [NAVIGATE.arguments, GRASP.arguments]
    grasp_deltas = [i for i, e in enumerate(events) if isinstance(e, ToolCallDelta) and e.call_id == done[1].call_id]
    assert events.index(done[0]) < grasp_deltas[-1]
    for call in done:
        pieces = [e.delta for e in of(events, ToolCallDelta) if e.call_id == call.call_id]
        assert len(pieces) > 1 and "".join(pieces) == call.arguments
        json.loads(call.arguments)
    final = events[-1]
    assert isinstance(final, ResponseDone) and final.status == "completed"
    assert final.usage["completion_tokens"] > 0 and final.usage["output_tokens"] == final.usage["completion_tokens"]
    assert [e.t for e in events] == sorted(e.t for e in events)


def test_a_text_answer_streams_as_text_deltas() -> None:
    text = "Which cup do you mean, the red one or the blue one?"
    with ChatServer([PlannedResponse(text=text)]) as server:
        (events,) = run(make_backend(server))
    deltas = of(events, TextDelta)
    assert len(deltas) > 3 and "".join(d.text for d in deltas) == text
    assert not of(events, ToolCallStarted) and not of(events, StreamError)
    final = events[-1]
    assert isinstance(final, ResponseDone)
    assert (final.status, final.text) == ("completed", text)
    assert final.usage["prompt_tokens"] > 0


def test_text_then_tool_calls_in_one_response() -> None:
    with ChatServer([PlannedResponse(text="On my way.", tool_calls=(NAVIGATE,))]) as server:
        (events,) = run(make_backend(server))
    kinds = [e.kind for e in events]
    assert kinds.index("tool_call_started") > max(i for i, k in enumerate(kinds) if k == "text_delta")
    assert [d.arguments for d in of(events, ToolCallDone)] == [NAVIGATE.arguments]
    assert isinstance(events[-1], ResponseDone) and events[-1].text == "On my way."


# -- what is sent -------------------------------------------------------------------------------------------


def test_the_request_carries_tools_system_message_history_and_images() -> None:
    history = [turn("user", "go to the kitchen", 1.0), turn("robot", "Done.", 2.0),
               turn("user", "now bring me that cup", 3.0)]
    with ChatServer([PlannedResponse(text="Sure.")]) as server:
        run(make_backend(server), request(*history, images=[PNG]))
        (body,) = server.requests
        headers = server.exchanges[0].headers

    assert body["model"] == MODEL and body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["tools"] == [tool.chat() for tool in TOOLS]
    assert body["tools"][0] == {"type": "function", "function": {
        "name": "navigate", "description": "Drive to a place or object.", "parameters": dict(TOOLS[0].parameters)}}
    messages = body["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[0]["content"].startswith("You control a robot.") and PERCEPTION in messages[0]["content"]
    assert [m["content"] for m in messages[1:3]] == ["go to the kitchen", "Done."]
    text_part, image_part = messages[3]["content"]
    assert text_part == {"type": "text", "text": "now bring me that cup"}
    assert image_part["type"] == "image_url"
    assert image_part["image_url"]["url"] == "data:image/png;base64," + base64.b64encode(PNG).decode()
    assert headers["authorization"] == f"Bearer {KEY}"


def test_key_and_server_come_from_the_environment_as_in_the_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    with ChatServer([PlannedResponse(text="a"), PlannedResponse(text="b")]) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        (events,) = run(ChatBackend(MODEL, max_retries=0))  # no key anywhere: a placeholder is sent
        monkeypatch.setenv("OPENAI_API_KEY", "env-key-123")
        run(ChatBackend(MODEL, max_retries=0))
        assert isinstance(events[-1], ResponseDone)
        assert [x.headers["authorization"] for x in server.exchanges] == ["Bearer not-needed", "Bearer env-key-123"]


def test_no_tools_and_no_usage_are_left_out_of_the_request() -> None:
    with ChatServer([PlannedResponse(text="Hello.")]) as server:
        (events,) = run(make_backend(server, include_usage=False, options={"temperature": 0.2}),
                        request(tools=[]))
        (body,) = server.requests
    assert "tools" not in body and "stream_options" not in body and body["temperature"] == 0.2
    assert isinstance(events[-1], ResponseDone) and events[-1].usage == {}


def assert_tool_messages_answer_tool_calls(messages: Sequence[dict[str, Any]]) -> None:
    """OpenAI's rule: each ``tool`` message answers a call of the assistant message just before."""
    open_ids: list[str] = []
    for message in messages:
        if message["role"] == "tool":
            assert message["tool_call_id"] in open_ids, message
            open_ids.remove(message["tool_call_id"])
        else:
            assert not open_ids, f"unanswered tool calls {open_ids}"
            open_ids = [c["id"] for c in message.get("tool_calls", [])]
    assert not open_ids


def test_the_next_turn_replays_the_tool_calls_and_their_results() -> None:
    planned = [PlannedResponse(text="On my way.", tool_calls=(NAVIGATE, GRASP)), PlannedResponse(text="Here it is.")]
    first = request(turn("user", "bring me the red cup", 1.0))
    with ChatServer(planned) as server:
        backend = make_backend(server)

        async def two_turns() -> tuple[list[StreamEvent], list[StreamEvent]]:
            await backend.open()
            try:
                one = [e async for e in backend.respond(first)]
                navigate, grasp = of(one, ToolCallDone)
                second = request(turn("user", "bring me the red cup", 1.0), turn("robot", "On my way.", 1.5),
                                 turn("user", "thanks", 9.0),
                                 tool_results=[ToolResult(navigate.call_id, "done: at kitchen"),
                                               {"call_id": grasp.call_id, "output": "refused: hands busy"},
                                               ToolResult("call_unknown", "done")])
                two = [e async for e in backend.respond(second)]
                return one, two
            finally:
                await backend.close()

        one, two = asyncio.run(two_turns())
        first_body, second_body = server.requests

    assert [m["role"] for m in first_body["messages"]] == ["system", "user"]
    navigate, grasp = of(one, ToolCallDone)
    messages = second_body["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool", "tool", "user"]
    assistant = messages[2]
    assert assistant["content"] == "On my way."  # the robot turn it spoke is not repeated
    assert assistant["tool_calls"] == [
        {"id": navigate.call_id, "type": "function", "function": {"name": "navigate", "arguments": NAVIGATE.arguments}},
        {"id": grasp.call_id, "type": "function", "function": {"name": "grasp", "arguments": GRASP.arguments}},
    ]
    assert messages[3] == {"role": "tool", "tool_call_id": navigate.call_id, "content": "done: at kitchen"}
    assert messages[4] == {"role": "tool", "tool_call_id": grasp.call_id, "content": "refused: hands busy"}
    assert messages[5] == {"role": "user", "content": "thanks"}
    assert "call_unknown: done" in messages[0]["content"]  # a result for no known call is not lost
    assert_tool_messages_answer_tool_calls(messages)
    assert isinstance(two[-1], ResponseDone) and two[-1].text == "Here it is."


def test_a_call_without_a_reported_result_is_still_answered() -> None:
    planned = [PlannedResponse(tool_calls=(NAVIGATE,)), PlannedResponse(text="ok")]
    with ChatServer(planned) as server:
        run(make_backend(server), request(turn("user", "go", 1.0)), request(turn("user", "go", 1.0),
                                                                             turn("user", "and?", 2.0)))
        messages = server.requests[1]["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool", "user"]
    assert messages[2]["content"] is None and messages[3]["content"] == "no result was reported"
    assert_tool_messages_answer_tool_calls(messages)


# -- failures -----------------------------------------------------------------------------------------------


def _delivered(frames: Sequence[dict[str, Any]]) -> tuple[int, bool]:
    """How many tool calls the delivered frames started, and whether they carried a finish_reason."""
    started, finished = set(), False
    for frame in frames:
        for choice in frame["choices"]:
            started.update(c["index"] for c in choice["delta"].get("tool_calls", []))
            finished = finished or choice["finish_reason"] is not None
    return len(started), finished


@pytest.mark.parametrize("mode", ["drop_after", "end_after"])
def test_a_stream_broken_at_every_frame_never_completes_an_unfinished_call(mode: str) -> None:
    planned = PlannedResponse(text="Okay.", tool_calls=(NAVIGATE, GRASP))
    frames = chunk_frames(planned)
    total = len(frames) + 1  # and data: [DONE]
    faults = {n: Fault(**{mode: n}) for n in range(total)}
    with ChatServer([planned] * total, faults=faults) as server:
        results = run(make_backend(server), *[request() for _ in range(total)])
        sent = [x.frames_sent for x in server.exchanges]

    arguments = {"navigate": NAVIGATE.arguments, "grasp": GRASP.arguments}
    assert sent == list(range(total))
    for n, events in enumerate(results):
        starts, finished = _delivered(frames[:n])
        expected_done = starts if finished else max(starts - 1, 0)
        done = of(events, ToolCallDone)
        assert len(done) == expected_done, f"broken after {n} frames"
        for call in done:
            assert call.arguments == arguments[call.name], f"broken after {n} frames"
        for started in of(events, ToolCallStarted):
            pieces = "".join(e.delta for e in of(events, ToolCallDelta) if e.call_id == started.call_id)
            assert arguments[started.name].startswith(pieces)
        final = events[-1]
        if mode == "end_after" and finished:  # the server said it was finished; only the usage is missing
            assert isinstance(final, ResponseDone) and final.status == "completed", f"ended after {n} frames"
            continue
        assert isinstance(final, StreamError), f"broken after {n} frames: {final}"
        assert final.code == ("connection_lost" if mode == "drop_after" else "stream_truncated")
        assert not of(events, ResponseDone)


def test_http_401_is_invalid_api_key_and_never_shows_the_key() -> None:
    with ChatServer([], fault=Fault(status=401)) as server:
        (events,) = run(make_backend(server))
        assert server.exchanges[0].headers["authorization"] == f"Bearer {KEY}"  # and it echoed it back
    (error,) = events
    assert isinstance(error, StreamError) and error.code == "invalid_api_key"
    assert "401" in error.message and "API key" in error.message
    assert "Incorrect API key provided: [redacted]" in error.message  # the server's echo of it was caught
    for shown in (error.message, repr(error), json.dumps(error.to_json())):
        assert KEY not in shown and "SECRET" not in shown and "4f9a2c" not in shown


def test_http_404_names_the_missing_model() -> None:
    with ChatServer([], fault=Fault(status=404)) as server:
        (events,) = run(make_backend(server))
    (error,) = events
    assert isinstance(error, StreamError) and error.code == "model_not_found"
    assert f"'{MODEL}'" in error.message and "chat.model" in error.message


def test_a_wrong_base_url_is_not_found_not_a_missing_model() -> None:
    with ChatServer([PlannedResponse(text="x")]) as server:
        backend = ChatBackend(MODEL, base_url=server.base_url.removesuffix("/v1"), max_retries=0)
        (events,) = run(backend)
    (error,) = events
    assert isinstance(error, StreamError) and error.code == "not_found" and "/v1" in error.message


def test_connection_refused() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (events,) = run(ChatBackend(MODEL, base_url=f"http://127.0.0.1:{port}/v1", max_retries=0))
    (error,) = events
    assert isinstance(error, StreamError) and error.code == "connection_refused"
    assert f"127.0.0.1:{port}" in error.message


@pytest.mark.parametrize("fault", [Fault(stall_after=3, stall_s=10), Fault(stall_headers=True, stall_s=10)],
                         ids=["mid-stream", "before-headers"])
def test_a_stalled_server_times_out(fault: Fault) -> None:
    with ChatServer([PlannedResponse(tool_calls=(NAVIGATE,))], fault=fault) as server:
        began = time.monotonic()
        (events,) = run(make_backend(server, timeout=0.3))
        elapsed = time.monotonic() - began
    error = events[-1]
    assert isinstance(error, StreamError) and error.code == "timeout" and "0.3 s" in error.message
    assert not of(events, ToolCallDone) and not of(events, ResponseDone)
    assert elapsed < 5  # it gave up on its own, long before the stall ended


def test_an_error_inside_the_stream_keeps_the_servers_code() -> None:
    with ChatServer([PlannedResponse(error=("server_overloaded", "The server is overloaded"))]) as server:
        (events,) = run(make_backend(server))
    error = events[-1]
    assert isinstance(error, StreamError) and error.code == "server_overloaded"
    assert "overloaded" in error.message


def test_an_answer_cut_off_at_the_token_limit_is_incomplete() -> None:
    cut = len(list(tokens(NAVIGATE.arguments))) + 2  # navigate, then grasp's start and one piece
    with ChatServer([PlannedResponse(tool_calls=(NAVIGATE, GRASP))], fault=Fault(length_after=cut)) as server:
        (events,) = run(make_backend(server))
    final = events[-1]
    assert isinstance(final, ResponseDone) and final.status == "incomplete"
    assert [d.name for d in of(events, ToolCallDone)] == ["navigate"]  # grasp was cut off: never complete
    assert [s.name for s in of(events, ToolCallStarted)] == ["navigate", "grasp"]


def test_closing_the_stream_early_closes_the_http_response() -> None:
    text = "I will now describe the kitchen at great length, " * 8
    with ChatServer([PlannedResponse(text=text)], chunk_delay=0.02) as server:
        backend = make_backend(server)

        async def read_three_then_stop() -> list[StreamEvent]:
            await backend.open()
            events: list[StreamEvent] = []
            stream = backend.respond(request())
            try:
                async for event in stream:
                    events.append(event)
                    if len(events) == 3:
                        break
            finally:
                await stream.aclose()
                await backend.close()
            return events

        events = asyncio.run(read_three_then_stop())
        assert len(events) == 3
        assert server.wait_for(lambda s: s.exchanges[0].aborted, timeout=5)
        assert server.exchanges[0].frames_sent < len(list(tokens(text)))


# -- servers that stream tool calls differently ----------------------------------------------------------


def _chunk(delta: dict[str, Any], finish: str | None = None) -> openai.types.chat.ChatCompletionChunk:
    return openai.types.chat.ChatCompletionChunk.model_validate({
        "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0, "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})


def test_whole_calls_in_one_chunk_each_numbered_zero_and_finished_with_stop() -> None:
    # Some servers send each call whole, all with index 0, and finish with "stop".
    assembler = ChunkAssembler()
    events: list[StreamEvent] = []
    for call_id, call in (("a", NAVIGATE), ("b", GRASP)):
        events += assembler.feed(_chunk({"role": "assistant", "tool_calls": [
            {"index": 0, "id": call_id, "type": "function",
             "function": {"name": call.name, "arguments": call.arguments}}]}))
    events += assembler.feed(_chunk({}, "stop"))
    assert [(e.call_id, e.name, e.arguments) for e in of(events, ToolCallDone)] == [
        ("a", "navigate", NAVIGATE.arguments), ("b", "grasp", GRASP.arguments)]
    assert assembler.done().status == "completed"


def test_a_call_whose_name_comes_after_its_first_chunk_starts_when_named() -> None:
    assembler = ChunkAssembler(call_prefix="call_7")
    events = assembler.feed(_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"obj'}}]}))
    assert events == []
    events += assembler.feed(_chunk({"tool_calls": [{"index": 0, "function": {"name": "grasp"}}]}))
    events += assembler.feed(_chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'ect": "cup"}'}}]}))
    events += assembler.feed(_chunk({}, "tool_calls"))
    assert [e.kind for e in events] == ["tool_call_started", "tool_call_delta", "tool_call_delta", "tool_call_done"]
    assert events[-1] == ToolCallDone(call_id="call_7_0", name="grasp", arguments='{"object": "cup"}')


# -- through the Ask leaf -----------------------------------------------------------------------------------


def _tick_until_done(tree: py_trees.trees.BehaviourTree, timeout: float = 10.0) -> Status:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tree.tick()
        if tree.root.status != Status.RUNNING:
            return tree.root.status
        time.sleep(0.005)
    return tree.root.status


def test_ask_streams_a_chat_response_into_the_blackboard() -> None:
    planned = PlannedResponse(text="Fetching the red cup.", tool_calls=(NAVIGATE, GRASP))
    with ChatServer([planned], chunk_delay=0.002) as server:
        writer = py_trees.blackboard.Client(name="test")
        writer.register_key(keys.DIALOGUE_HISTORY, access=py_trees.common.Access.WRITE)
        keys.append_turn(writer, "user", "bring me the red cup")
        session = ModelSession(make_backend(server), tools=TOOLS)
        tree = py_trees.trees.BehaviourTree(Ask())
        tree.setup(timeout=5, llm=session)
        try:
            assert _tick_until_done(tree) == Status.SUCCESS, tree.root.feedback_message
        finally:
            session.close()
        (body,) = server.requests

    stream = keys.read(keys.LLM_STREAM)
    assert [e.name for e in of(stream, ToolCallDone)] == ["navigate", "grasp"]
    assert [e.arguments for e in of(stream, ToolCallDone)] == [NAVIGATE.arguments, GRASP.arguments]
    assert isinstance(stream[-1], ResponseDone) and stream[-1].status == "completed"
    history = keys.read(keys.DIALOGUE_HISTORY)
    assert [(t["role"], t["text"]) for t in history] == [("user", "bring me the red cup"),
                                                         ("robot", "Fetching the red cup.")]
    assert body["messages"][-1] == {"role": "user", "content": "bring me the red cup"}
    assert [t["function"]["name"] for t in body["tools"]] == ["navigate", "grasp"]


def test_preempting_ask_closes_the_http_stream() -> None:
    text = "Let me think about that for quite a while before I answer you. " * 6
    with ChatServer([PlannedResponse(text=text)], chunk_delay=0.02) as server:
        writer = py_trees.blackboard.Client(name="test")
        writer.register_key(keys.DIALOGUE_HISTORY, access=py_trees.common.Access.WRITE)
        keys.append_turn(writer, "user", "tell me a story")
        session = ModelSession(make_backend(server))
        ask = Ask()
        tree = py_trees.trees.BehaviourTree(ask)
        tree.setup(timeout=5, llm=session)
        try:
            tree.tick()
            assert server.wait_for(lambda s: s.exchanges and s.exchanges[0].frames_sent >= 3)
            tree.tick()
            assert ask.status == Status.RUNNING
            ask.stop(Status.INVALID)  # what a parent does when it preempts Ask
            assert server.wait_for(lambda s: s.exchanges[0].aborted, timeout=5)
        finally:
            session.close()
    assert server.exchanges[0].frames_sent < len(list(tokens(text)))
    assert [t["role"] for t in keys.read(keys.DIALOGUE_HISTORY)] == ["user"]


def test_an_html_error_page_becomes_one_line_of_the_reason() -> None:
    """Regression: a server answering HTTP 501 with an HTML page put ~40 lines of markup in the failure reason."""
    import importlib.util

    # the HTTP client the SDK is built on: httpx2 in the SDK versions installed here, httpx before them
    httpx = importlib.import_module(next(n for n in ("httpx2", "httpx") if importlib.util.find_spec(n)))

    page = ("<html><head><title>501 Not Implemented</title></head><body><h1>Not Implemented</h1>"
            + "<p>The server does not support the action requested.</p>\n" * 20 + "</body></html>")
    response = httpx.Response(501, request=httpx.Request("POST", "http://127.0.0.1:9/v1/chat/completions"))
    error = openai.APIStatusError(f"Error code: 501 - {page}", response=response, body=page)
    code, reason = ChatBackend("m", base_url="http://127.0.0.1:9/v1")._describe(error, streaming=False)
    assert (code, reason) == ("server_error", "http://127.0.0.1:9/v1 answered HTTP 501: 501 Not Implemented")


def test_a_base_url_that_is_no_url_is_bad_input() -> None:
    from tests.helpers.cli import cli_env, run_cli

    result = run_cli("run", "trees/assistant.yaml", "--llm", "chat", "--say", "hi",
                     env=cli_env(OPENAI_BASE_URL="notaurl", OPENAI_API_KEY="k"))
    assert result.returncode == 2
    assert "OPENAI_BASE_URL: 'notaurl' is not an http(s) URL" in result.stderr and "Traceback" not in result.stderr
