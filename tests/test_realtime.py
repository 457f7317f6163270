"""The ``realtime`` backend end to end: the official ``openai`` SDK over real WebSockets.

The client path is not mocked anywhere: ``RealtimeBackend`` drives
``AsyncOpenAI().realtime.connect()`` against the project's local GA endpoint
(``vla_bt.llm.endpoint``), which answers from a ``ScriptedBackend`` and
injects the faults. The blackboard is cleared between tests by ``conftest.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import py_trees
import pytest

from vla_bt import blackboard as keys
from vla_bt.leaves.ask import Ask
from vla_bt.llm.backend import ToolResult, ToolSpec, TurnRequest
from vla_bt.llm.endpoint import Faults, RealtimeEndpoint
from vla_bt.llm.events import ResponseDone, StreamError, StreamEvent, TextDelta, ToolCallDelta, ToolCallDone
from vla_bt.llm.pacing import Pacing, tokens
from vla_bt.llm.realtime import RealtimeBackend, RealtimeBackendError
from vla_bt.llm.scripted import PlannedResponse, ScriptedBackend
from vla_bt.llm.session import ModelSession

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # tests.test_endpoint, as the other tests import tests.helpers
    sys.path.insert(0, str(ROOT))

from tests.test_endpoint import REPLY, ga_sequence  # noqa: E402

pytestmark = pytest.mark.timeout(20)
Status = py_trees.common.Status

KEY = "sk-local-test-0123456789"
TOOLS = [ToolSpec("navigate", "Drive to a place.", {"type": "object", "properties": {"target": {"type": "string"}},
                                                      "required": ["target"]}),
         ToolSpec("grasp", "Pick something up.", {"type": "object", "properties": {"object": {"type": "string"}},
                                                  "required": ["object"]})]
SEQUENCE = ga_sequence(REPLY)
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))


@pytest.fixture
def make_endpoint() -> Iterator[Callable[..., RealtimeEndpoint]]:
    """Start endpoints answering from a script; all are stopped afterwards."""
    running: list[RealtimeEndpoint] = []

    def make(responses: Sequence[PlannedResponse] = (REPLY,) * 4, **kwargs: Any) -> RealtimeEndpoint:
        endpoint = RealtimeEndpoint(ScriptedBackend(list(responses)), api_key=KEY, **kwargs)
        endpoint.start()
        running.append(endpoint)
        return endpoint

    yield make
    for endpoint in running:
        endpoint.stop()


def client(endpoint: RealtimeEndpoint, **kwargs: Any) -> RealtimeBackend:
    options: dict[str, Any] = {"api_key": KEY, "base_url": endpoint.url, "timeout": 5.0, "backoff": 0.05, **kwargs}
    return RealtimeBackend(**options)


def turn(text: str, t: float, role: str = "user") -> dict[str, Any]:
    return {"role": role, "text": text, "t": t}


def ask(*history: dict[str, Any], **kwargs: Any) -> TurnRequest:
    return TurnRequest(history=list(history), tools=TOOLS, instructions="Drive carefully.", **kwargs)


async def collect(backend: RealtimeBackend, request: TurnRequest) -> list[StreamEvent]:
    return [event async for event in backend.respond(request)]


def run(coroutine: Any, timeout: float = 15.0) -> Any:
    return asyncio.run(asyncio.wait_for(coroutine, timeout))


def kinds(events: Sequence[StreamEvent]) -> list[str]:
    return [event.kind for event in events]


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


async def async_wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.005)


# -- the normal path ---------------------------------------------------------------------------------

def test_a_response_streams_as_normalised_events(make_endpoint: Callable[..., RealtimeEndpoint]) -> None:
    endpoint = make_endpoint()

    async def main() -> list[StreamEvent]:
        backend = client(endpoint)
        await backend.open()
        try:
            return await collect(backend, ask(turn("bring me the red cup", 1.0)))
        finally:
            await backend.close()

    events = run(main())
    expected = ["text_delta"] * len(list(tokens(REPLY.text)))
    for call in REPLY.tool_calls:
        expected += ["tool_call_started", *["tool_call_delta"] * len(list(tokens(call.arguments))), "tool_call_done"]
    assert kinds(events) == [*expected, "response_done"]
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == REPLY.text
    done = [e for e in events if isinstance(e, ToolCallDone)]
    assert [(d.name, d.arguments) for d in done] == [(c.name, c.arguments) for c in REPLY.tool_calls]
    for call in done:
        assert "".join(e.delta for e in events if isinstance(e, ToolCallDelta) and e.call_id == call.call_id) \
            == call.arguments
    final = events[-1]
    assert isinstance(final, ResponseDone) and final.status == "completed" and final.text == REPLY.text
    assert final.usage["total_tokens"] == final.usage["input_tokens"] + final.usage["output_tokens"] > 0
    # what the endpoint received, and in which order
    received = endpoint.last.received
    assert [e["type"] for e in received] == ["session.update", "session.update", "conversation.item.create",
                                              "response.create"]
    assert received[0]["session"] == {"type": "realtime", "output_modalities": ["text"], "tools": []}
    assert received[1]["session"]["instructions"] == "Drive carefully."
    assert [tool["name"] for tool in received[1]["session"]["tools"]] == ["navigate", "grasp"]
    assert [e["type"] for e in endpoint.last.sent][:2] == ["session.created", "session.updated"]


def test_ga_order_on_the_wire_as_the_sdk_client_sees_it(make_endpoint: Callable[..., RealtimeEndpoint]) -> None:
    endpoint = make_endpoint()

    async def main() -> None:
        backend = client(endpoint, tools=TOOLS, instructions="Drive carefully.")
        await backend.open()
        await collect(backend, ask(turn("go", 1.0)))
        await async_wait_until(lambda: endpoint.last.sent[-1]["type"] == "rate_limits.updated")
        await backend.close()

    run(main())
    sent = [e["type"] for e in endpoint.last.sent]
    assert sent[:2] == ["session.created", "session.updated"]
    assert sent[2:4] == ["conversation.item.added", "conversation.item.done"]
    assert sent[4:] == SEQUENCE


def test_call_one_is_done_before_call_two_has_streamed(make_endpoint: Callable[..., RealtimeEndpoint]) -> None:
    endpoint = make_endpoint(pacing=Pacing(first_token_s=0.05, tokens_per_s=100))

    async def main() -> list[StreamEvent]:
        backend = client(endpoint)
        await backend.open()
        try:
            return await collect(backend, ask(turn("go to the kitchen and grab the cup", 1.0)))
        finally:
            await backend.close()

    events = run(main())
    first, second = [e for e in events if isinstance(e, ToolCallDone)]
    second_deltas = [e for e in events if isinstance(e, ToolCallDelta) and e.call_id == second.call_id]
    assert first.t < second_deltas[0].t < second_deltas[-1].t < second.t
    # six paced argument pieces at 100 tokens/s: the first call was usable well before the second finished
    assert second.t - first.t >= 0.04


def test_images_perception_and_tool_results_reach_the_endpoint(
        make_endpoint: Callable[..., RealtimeEndpoint]) -> None:
    endpoint = make_endpoint([REPLY, PlannedResponse(text="Done.")])
    perception = "The robot perceives:\n- object cup_red: red cup at (4.0, 2.0)"

    async def main() -> tuple[list[StreamEvent], list[StreamEvent]]:
        backend = client(endpoint)
        await backend.open()
        try:
            history = [turn("bring me the red cup", 1.0)]
            first = await collect(backend, ask(*history, perception=perception, images=[PNG]))
            calls = [e for e in first if isinstance(e, ToolCallDone)]
            history += [turn(REPLY.text, 2.0, "robot"), turn("thanks", 3.0)]
            results = [ToolResult(calls[0].call_id, "arrived in the kitchen"),
                       ToolResult(calls[1].call_id, "holding cup_red")]
            return first, await collect(backend, ask(*history, tool_results=results))
        finally:
            await backend.close()

    first, second = run(main())
    user = next(i for i in endpoint.last.items if i.get("role") == "user")
    assert [p["type"] for p in user["content"]] == ["input_text", "input_text", "input_image"]
    assert user["content"][0]["text"] == "bring me the red cup" and user["content"][1]["text"] == perception
    assert user["content"][2]["image_url"].startswith("data:image/png;base64,")
    assert endpoint.last.images == [PNG]
    request = endpoint.requests[0]
    assert request.perception == perception and list(request.images) == [PNG]
    calls = [e for e in first if isinstance(e, ToolCallDone)]
    outputs = [i for i in endpoint.last.items if i["type"] == "function_call_output"]
    assert [(o["call_id"], o["output"]) for o in outputs] == [(calls[0].call_id, "arrived in the kitchen"),
                                                              (calls[1].call_id, "holding cup_red")]
    follow_up = endpoint.requests[1]
    assert [(r.call_id, r.output) for r in follow_up.tool_results] == [(o["call_id"], o["output"]) for o in outputs]
    # the model's own answer is not sent back as a new item: the history has it once
    assert [(t["role"], t["text"]) for t in follow_up.history] == [
        ("user", "bring me the red cup"), ("robot", REPLY.text), ("user", "thanks")]
    assert not follow_up.images and follow_up.perception == ""
    assert isinstance(second[-1], ResponseDone) and second[-1].text == "Done."


def test_configuration_from_the_environment(make_endpoint: Callable[..., RealtimeEndpoint],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint = make_endpoint()
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", endpoint.url)

    async def main() -> list[StreamEvent]:
        backend = RealtimeBackend(timeout=5.0)
        try:
            return await collect(backend, ask(turn("go", 1.0)))  # connects on first use
        finally:
            await backend.close()

    assert isinstance(run(main())[-1], ResponseDone)


# -- cancellation ---------------------------------------------------------------------------------------

def test_closing_the_stream_early_cancels_the_response(make_endpoint: Callable[..., RealtimeEndpoint]) -> None:
    endpoint = make_endpoint(pacing=Pacing(tokens_per_s=40))

    async def main() -> list[StreamEvent]:
        backend = client(endpoint)
        await backend.open()
        try:
            stream = backend.respond(ask(turn("go", 1.0)))
            async with contextlib.aclosing(stream):
                async for event in stream:
                    if isinstance(event, TextDelta):
                        break  # the tree preempted Ask
            await async_wait_until(lambda: [r["status"] for r in endpoint.last.responses] == ["cancelled"])
            return await collect(backend, ask(turn("go", 1.0), turn("try again", 2.0)))
        finally:
            await backend.close()

    again = run(main())
    assert "response.cancel" in [e["type"] for e in endpoint.last.received]
    assert isinstance(again[-1], ResponseDone) and again[-1].status == "completed"
    assert [r["status"] for r in endpoint.last.responses] == ["cancelled", "completed"]


def test_cancelling_the_consuming_task_cancels_the_response(make_endpoint: Callable[..., RealtimeEndpoint]) -> None:
    endpoint = make_endpoint(pacing=Pacing(tokens_per_s=40))

    async def main() -> None:
        backend = client(endpoint)
        await backend.open()
        seen: list[StreamEvent] = []

        async def consume() -> None:
            async for event in backend.respond(ask(turn("go", 1.0))):
                seen.append(event)

        task = asyncio.create_task(consume())
        await async_wait_until(lambda: bool(seen))
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await async_wait_until(lambda: [r["status"] for r in endpoint.last.responses] == ["cancelled"])
        await backend.close()

    run(main())
    assert "response.cancel" in [e["type"] for e in endpoint.last.received]


# -- faults ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("after", range(len(SEQUENCE)))
def test_close_mid_response_at_every_point(make_endpoint: Callable[..., RealtimeEndpoint], after: int) -> None:
    endpoint = make_endpoint(faults=Faults(close_after=after))

    async def main() -> list[StreamEvent]:
        backend = client(endpoint)
        await backend.open()
        try:
            return await collect(backend, ask(turn("go", 1.0)))
        finally:
            await backend.close()

    events = run(main())
    finished = SEQUENCE[:after].count("response.function_call_arguments.done")
    done = [e for e in events if isinstance(e, ToolCallDone)]
    assert [(d.name, d.arguments) for d in done] == [(c.name, c.arguments) for c in REPLY.tool_calls[:finished]]
    if after <= SEQUENCE.index("response.done"):
        assert isinstance(events[-1], StreamError) and events[-1].code == "connection_closed"
        assert "1006" in events[-1].message and "mid-response" in events[-1].message
        assert len(events) == 1 + sum(1 for kind in SEQUENCE[:after] if kind in (
            "response.output_text.delta", "response.function_call_arguments.delta",
            "response.function_call_arguments.done")) + sum(
            1 for e in endpoint.last.sent if e.get("item", {}).get("type") == "function_call"
            and e["type"] == "response.output_item.added")
    else:
        assert isinstance(events[-1], ResponseDone) and events[-1].status == "completed"


def test_a_frame_that_is_not_json(make_endpoint: Callable[..., RealtimeEndpoint]) -> None:
    endpoint = make_endpoint(faults=Faults(non_json_after=3, response=0))

    async def main() -> tuple[list[StreamEvent], list[StreamEvent]]:
        backend = client(endpoint)
        await backend.open()
        try:
            broken = await collect(backend, ask(turn("go", 1.0)))
            return broken, await collect(backend, ask(turn("go", 1.0), turn("again", 2.0)))
        finally:
            await backend.close()

    broken, again = run(main())
    assert isinstance(broken[-1], StreamError) and broken[-1].code == "invalid_event"
    assert "not a JSON event" in broken[-1].message and "502 Bad Gateway" in broken[-1].message
    assert not any(isinstance(e, ToolCallDone) for e in broken)
    assert isinstance(again[-1], ResponseDone)  # on a new connection
    assert len(endpoint.connections) == 2


def test_unknown_event_types_are_ignored(make_endpoint: Callable[..., RealtimeEndpoint]) -> None:
    endpoint = make_endpoint(faults=Faults(unknown_after=5))

    async def main() -> list[StreamEvent]:
        backend = client(endpoint)
        await backend.open()
        try:
            return await collect(backend, ask(turn("go", 1.0)))
        finally:
            await backend.close()

    events = run(main())
    assert "response.vla_bt_unknown_event" in [e["type"] for e in endpoint.last.sent]
    assert isinstance(events[-1], ResponseDone) and events[-1].status == "completed"
    assert len([e for e in events if isinstance(e, ToolCallDone)]) == 2


def test_an_error_event_surfaces_its_code(make_endpoint: Callable[..., RealtimeEndpoint]) -> None:
    endpoint = make_endpoint(faults=Faults(error_code="conversation_already_has_active_response", response=0))

    async def main() -> tuple[list[StreamEvent], list[StreamEvent]]:
        backend = client(endpoint)
        await backend.open()
        try:
            failed = await collect(backend, ask(turn("go", 1.0)))
            return failed, await collect(backend, ask(turn("go", 1.0), turn("again", 2.0)))
        finally:
            await backend.close()

    failed, again = run(main())
    assert kinds(failed) == ["error"]
    assert failed[0].code == "conversation_already_has_active_response"
    assert "conversation_already_has_active_response" in failed[0].message
    assert isinstance(again[-1], ResponseDone)
    assert len(endpoint.connections) == 1


def test_a_failed_response_from_the_model(make_endpoint: Callable[..., RealtimeEndpoint]) -> None:
    endpoint = make_endpoint([PlannedResponse(error=("server_error", "The server had an error"))])

    async def main() -> list[StreamEvent]:
        backend = client(endpoint)
        try:
            return await collect(backend, ask(turn("go", 1.0)))
        finally:
            await backend.close()

    events = run(main())
    assert kinds(events) == ["error"] and events[0].code == "server_error"
    assert endpoint.last.responses[-1]["status"] == "failed"


def test_the_beta_header_is_refused_with_4000(make_endpoint: Callable[..., RealtimeEndpoint]) -> None:
    endpoint = make_endpoint()
    backend = client(endpoint, extra_headers={"OpenAI-Beta": "realtime=v1"})
    with pytest.raises(RealtimeBackendError) as caught:
        run(backend.open())
    assert caught.value.code == "connection_closed" and not caught.value.retryable
    assert "code 4000" in str(caught.value) and "beta" in str(caught.value)


def test_a_stalled_server_times_out(make_endpoint: Callable[..., RealtimeEndpoint]) -> None:
    endpoint = make_endpoint(faults=Faults(stall_after=0, response=0))

    async def main() -> tuple[list[StreamEvent], list[StreamEvent]]:
        backend = client(endpoint, timeout=0.3)
        await backend.open()
        try:
            stalled = await collect(backend, ask(turn("go", 1.0)))
            return stalled, await collect(backend, ask(turn("go", 1.0), turn("again", 2.0)))
        finally:
            await backend.close()

    stalled, again = run(main())
    assert kinds(stalled) == ["error"] and stalled[0].code == "timeout"
    assert "0.3 s" in stalled[0].message and "response.created" in stalled[0].message
    assert isinstance(again[-1], ResponseDone)  # the stalled response was cancelled first
    assert [r["status"] for r in endpoint.last.responses] == ["cancelled", "completed"]


def test_a_slow_first_token_times_out(make_endpoint: Callable[..., RealtimeEndpoint]) -> None:
    endpoint = make_endpoint(pacing=Pacing(first_token_s=1.0))

    async def main() -> list[StreamEvent]:
        backend = client(endpoint, timeout=0.3)
        try:
            return await collect(backend, ask(turn("go", 1.0)))
        finally:
            await backend.close()

    events = run(main())
    assert kinds(events) == ["error"] and events[0].code == "timeout" and "next event" in events[0].message


def _texts(exc: BaseException | None) -> Iterator[str]:
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield str(exc)
        yield repr(exc)
        yield from (str(arg) for arg in exc.args)
        exc = exc.__cause__ or exc.__context__


def test_a_wrong_key_is_named_and_never_shown(make_endpoint: Callable[..., RealtimeEndpoint],
                                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    endpoint = make_endpoint()
    wrong = "sk-wrong-secret-key-98765"
    backend = client(endpoint, api_key=wrong)
    with pytest.raises(RealtimeBackendError) as caught:
        run(backend.open())
    assert caught.value.code == "invalid_api_key"
    assert "401" in str(caught.value) and "API key" in str(caught.value)
    events = run(collect(backend, ask(turn("go", 1.0))))
    assert kinds(events) == ["error"] and events[0].code == "invalid_api_key"
    shown = [*_texts(caught.value), repr(backend), events[0].message, repr(events[0]), caplog.text]
    assert "Bearer" in caplog.text or "Authorization" in caplog.text  # the handshake was logged …
    assert not any(wrong in text for text in shown)  # … without the key
    assert not any(KEY in text for text in shown)


def test_no_key_at_all(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(RealtimeBackendError) as caught:
        run(RealtimeBackend(base_url="http://127.0.0.1:9/v1").open())
    assert caught.value.code == "missing_api_key" and "OPENAI_API_KEY" in str(caught.value)


def test_an_unreachable_server() -> None:
    backend = RealtimeBackend(api_key=KEY, base_url="http://127.0.0.1:9/v1", connect_timeout=2.0)
    with pytest.raises(RealtimeBackendError) as caught:
        run(backend.open())
    assert caught.value.code == "connection_failed" and "127.0.0.1:9" in str(caught.value)


# -- reconnection --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("code", [None, 1011, 1001])
def test_reconnect_after_a_recoverable_close_between_responses(make_endpoint: Callable[..., RealtimeEndpoint],
                                                               code: int | None) -> None:
    endpoint = make_endpoint([REPLY, PlannedResponse(text="Here you are.")])

    async def main() -> list[StreamEvent]:
        backend = client(endpoint)
        await backend.open()
        try:
            await collect(backend, ask(turn("bring me the red cup", 1.0)))
            await asyncio.to_thread(endpoint.drop_connections, code)
            await async_wait_until(lambda: not backend.connected)
            history = [turn("bring me the red cup", 1.0), turn(REPLY.text, 2.0, "robot"), turn("thanks", 3.0)]
            return await collect(backend, ask(*history))
        finally:
            await backend.close()

    events = run(main())
    assert isinstance(events[-1], ResponseDone) and events[-1].text == "Here you are."
    assert len(endpoint.connections) == 2
    replayed = endpoint.connections[1].items
    assert [(i["type"], i.get("role")) for i in replayed] == [
        ("message", "user"), ("message", "assistant"), ("function_call", None), ("function_call", None),
        ("message", "user"), ("message", "assistant")]
    assert [(t["role"], t["text"]) for t in endpoint.requests[1].history] == [
        ("user", "bring me the red cup"), ("robot", REPLY.text), ("user", "thanks")]


def test_no_reconnect_after_a_non_recoverable_close(make_endpoint: Callable[..., RealtimeEndpoint]) -> None:
    endpoint = make_endpoint()

    async def main() -> list[StreamEvent]:
        backend = client(endpoint)
        await backend.open()
        try:
            await collect(backend, ask(turn("go", 1.0)))
            await asyncio.to_thread(endpoint.drop_connections, 1008)
            await async_wait_until(lambda: not backend.connected)
            return await collect(backend, ask(turn("go", 1.0), turn("again", 2.0)))
        finally:
            await backend.close()

    events = run(main())
    assert kinds(events) == ["error"] and events[0].code == "connection_closed"
    assert "code 1008" in events[0].message and "not reconnecting" in events[0].message
    assert len(endpoint.connections) == 1


# -- through the Ask leaf ---------------------------------------------------------------------------------------

def _tick_until_done(tree: py_trees.trees.BehaviourTree, timeout: float = 10.0) -> Status:
    deadline = time.monotonic() + timeout
    while tree.root.status not in (Status.SUCCESS, Status.FAILURE):
        assert time.monotonic() < deadline, f"Ask still {tree.root.status} ({tree.root.feedback_message})"
        tree.tick()
        time.sleep(0.005)
    return tree.root.status


def _ask_tree(endpoint: RealtimeEndpoint) -> tuple[py_trees.trees.BehaviourTree, ModelSession,
                                                    py_trees.blackboard.Client]:
    session = ModelSession(client(endpoint), tools=TOOLS)
    tree = py_trees.trees.BehaviourTree(Ask(name="Ask", timeout=10.0))
    tree.setup(timeout=10.0, llm=session)
    writer = py_trees.blackboard.Client(name="test")
    writer.register_key(keys.DIALOGUE_HISTORY, access=py_trees.common.Access.WRITE)
    writer.register_key(keys.LLM_STREAM, access=py_trees.common.Access.READ)
    writer.set(keys.DIALOGUE_HISTORY, [{"role": "user", "text": "bring me the red cup", "t": time.time()}])
    return tree, session, writer


def test_ask_leaf_streams_a_realtime_response_into_the_blackboard(
        make_endpoint: Callable[..., RealtimeEndpoint]) -> None:
    endpoint = make_endpoint(pacing=Pacing(first_token_s=0.02, tokens_per_s=400))
    tree, session, board = _ask_tree(endpoint)
    try:
        assert _tick_until_done(tree) == Status.SUCCESS
        stream = board.get(keys.LLM_STREAM)
        assert kinds(stream)[0] == "text_delta" and kinds(stream)[-1] == "response_done"
        assert [e.name for e in stream if isinstance(e, ToolCallDone)] == ["navigate", "grasp"]
        history = board.get(keys.DIALOGUE_HISTORY)
        assert [(t["role"], t["text"]) for t in history] == [("user", "bring me the red cup"), ("robot", REPLY.text)]
        assert [t.name for t in endpoint.requests[0].tools] == ["navigate", "grasp"]
    finally:
        session.close()


def test_preempting_ask_cancels_the_realtime_response(make_endpoint: Callable[..., RealtimeEndpoint]) -> None:
    endpoint = make_endpoint(pacing=Pacing(tokens_per_s=40))
    tree, session, board = _ask_tree(endpoint)
    try:
        deadline = time.monotonic() + 10
        while not (board.exists(keys.LLM_STREAM) and board.get(keys.LLM_STREAM)):
            assert time.monotonic() < deadline
            tree.tick()
            time.sleep(0.005)
        tree.root.stop(Status.INVALID)  # a higher-priority branch took over
        wait_until(lambda: [r["status"] for r in endpoint.last.responses] == ["cancelled"])
        assert "response.cancel" in [e["type"] for e in endpoint.last.received]
    finally:
        session.close()
