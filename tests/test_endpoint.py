"""The local Realtime endpoint (``vla_bt.llm.endpoint``) seen by a raw ``websockets`` client.

No SDK here: the frames on the wire are checked against the GA protocol's
event names, shapes and order, so the SDK tests (``test_realtime.py``) run
against a server that behaves like the real one.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from vla_bt.llm.endpoint import RealtimeEndpoint
from vla_bt.llm.pacing import Pacing, tokens
from vla_bt.llm.scripted import PlannedCall, PlannedResponse, ScriptedBackend

pytestmark = pytest.mark.timeout(20)

KEY = "endpoint-test-key"
REPLY = PlannedResponse(text="On my way.", tool_calls=(PlannedCall("navigate", '{"target": "kitchen"}'),
                                                       PlannedCall("grasp", '{"object": "red cup"}')))
NAVIGATE = {"type": "function", "name": "navigate", "description": "Drive somewhere.",
            "parameters": {"type": "object", "properties": {"target": {"type": "string"}}}}


def ga_sequence(response: PlannedResponse) -> list[str]:
    """The GA server events of one text-then-tool-calls response, in order."""
    events = ["response.created"]
    if response.text:
        events += ["response.output_item.added", "conversation.item.added", "response.content_part.added"]
        events += ["response.output_text.delta"] * len(list(tokens(response.text)))
        events += ["response.output_text.done", "response.content_part.done", "response.output_item.done",
                   "conversation.item.done"]
    for call in response.tool_calls:
        events += ["response.output_item.added", "conversation.item.added"]
        events += ["response.function_call_arguments.delta"] * len(list(tokens(call.arguments)))
        events += ["response.function_call_arguments.done", "response.output_item.done", "conversation.item.done"]
    return [*events, "response.done", "rate_limits.updated"]


@pytest.fixture
def endpoint() -> Iterator[RealtimeEndpoint]:
    with RealtimeEndpoint(ScriptedBackend([REPLY] * 4), api_key=KEY) as running:
        yield running


def ws_url(endpoint: RealtimeEndpoint) -> str:
    return f"ws://127.0.0.1:{endpoint.port}/v1/realtime?model=gpt-realtime"


async def recv(ws: ClientConnection) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), 5))


async def recv_until(ws: ClientConnection, last: str) -> list[dict[str, Any]]:
    events = []
    while not events or events[-1]["type"] != last:
        events.append(await recv(ws))
    return events


async def session(endpoint: RealtimeEndpoint, key: str = KEY) -> ClientConnection:
    ws = await connect(ws_url(endpoint), additional_headers={"Authorization": f"Bearer {key}"})
    assert (await recv(ws))["type"] == "session.created"
    return ws


async def say(ws: ClientConnection, text: str) -> None:
    await ws.send(json.dumps({"type": "conversation.item.create", "item": {
        "type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}}))
    assert [(await recv(ws))["type"] for _ in range(2)] == ["conversation.item.added", "conversation.item.done"]


def types(events: Sequence[dict[str, Any]]) -> list[str]:
    return [event["type"] for event in events]


def test_session_created_first_with_a_ga_session(endpoint: RealtimeEndpoint) -> None:
    async def main() -> dict[str, Any]:
        async with connect(ws_url(endpoint), additional_headers={"Authorization": f"Bearer {KEY}"}) as ws:
            return await recv(ws)

    first = asyncio.run(main())
    assert first["type"] == "session.created" and first["event_id"]
    session_object = first["session"]
    assert session_object["type"] == "realtime" and session_object["object"] == "realtime.session"
    assert session_object["id"].startswith("sess_") and session_object["model"] == "gpt-realtime"
    for key in ("output_modalities", "tools", "instructions", "tool_choice", "max_output_tokens", "audio"):
        assert key in session_object


def test_session_update_needs_type_and_merges(endpoint: RealtimeEndpoint) -> None:
    async def main() -> tuple[dict[str, Any], dict[str, Any]]:
        async with await session(endpoint) as ws:
            await ws.send(json.dumps({"type": "session.update", "event_id": "client_1",
                                      "session": {"instructions": "Be brief."}}))
            error = await recv(ws)
            await ws.send(json.dumps({"type": "session.update", "session": {
                "type": "realtime", "output_modalities": ["text"], "instructions": "Be brief.", "tools": [NAVIGATE]}}))
            return error, await recv(ws)

    error, updated = asyncio.run(main())
    assert error["type"] == "error" and error["event_id"] != "client_1"
    assert error["error"] == {"type": "invalid_request_error", "code": "missing_required_parameter",
                              "message": "Missing required parameter: 'session.type'.", "param": "session.type",
                              "event_id": "client_1"}
    assert updated["type"] == "session.updated"
    assert updated["session"]["output_modalities"] == ["text"] and updated["session"]["instructions"] == "Be brief."
    assert updated["session"]["tools"] == [NAVIGATE] and updated["session"]["model"] == "gpt-realtime"


def test_response_events_in_ga_order(endpoint: RealtimeEndpoint) -> None:
    async def main() -> list[dict[str, Any]]:
        async with await session(endpoint) as ws:
            await say(ws, "bring me the red cup")
            await ws.send(json.dumps({"type": "response.create"}))
            return await recv_until(ws, "rate_limits.updated")

    events = asyncio.run(main())
    assert types(events) == ga_sequence(REPLY)
    response_id = events[0]["response"]["id"]
    assert events[0]["response"]["status"] == "in_progress" and events[0]["response"]["object"] == "realtime.response"
    added = [e for e in events if e["type"] == "response.output_item.added"]
    assert [e["item"]["type"] for e in added] == ["message", "function_call", "function_call"]
    assert [e["output_index"] for e in added] == [0, 1, 2]
    calls = [e for e in events if e["type"] == "response.function_call_arguments.done"]
    assert [(c["name"], c["arguments"]) for c in calls] == [(c.name, c.arguments) for c in REPLY.tool_calls]
    for call, item in zip(calls, added[1:], strict=True):
        assert call["call_id"] == item["item"]["call_id"] and call["item_id"] == item["item"]["id"]
        assert call["output_index"] == item["output_index"] and call["response_id"] == response_id
    deltas = [e for e in events if e["type"] == "response.function_call_arguments.delta"]
    assert all({"call_id", "item_id", "output_index", "delta", "response_id"} <= set(d) for d in deltas)
    text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert text == REPLY.text
    done = events[-2]["response"]
    assert done["status"] == "completed" and done["id"] == response_id
    assert done["usage"]["total_tokens"] == done["usage"]["input_tokens"] + done["usage"]["output_tokens"] > 0
    assert [item["status"] for item in done["output"]] == ["completed"] * 3
    assert {r["name"] for r in events[-1]["rate_limits"]} == {"requests", "tokens"}
    assert all(e["event_id"] for e in events) and len({e["event_id"] for e in events}) == len(events)
    connection = endpoint.last  # each event sent is timed, in order (the bench reads these times)
    assert len(connection.sent_at) == len(connection.sent) and connection.sent_at == sorted(connection.sent_at)


def test_second_response_create_while_active_is_an_error() -> None:
    slow = RealtimeEndpoint(ScriptedBackend([REPLY]), api_key=KEY, pacing=Pacing(tokens_per_s=50))

    async def main() -> list[dict[str, Any]]:
        async with await session(slow) as ws:
            await say(ws, "go")
            await ws.send(json.dumps({"type": "response.create"}))
            await ws.send(json.dumps({"type": "response.create", "event_id": "second"}))
            return await recv_until(ws, "rate_limits.updated")

    with slow:
        events = asyncio.run(main())
    errors = [e for e in events if e["type"] == "error"]
    assert len(errors) == 1 and errors[0]["error"]["code"] == "conversation_already_has_active_response"
    assert errors[0]["error"]["event_id"] == "second"
    assert events[-2]["response"]["status"] == "completed"


def test_cancel_ends_the_response_with_status_cancelled() -> None:
    slow = RealtimeEndpoint(ScriptedBackend([REPLY, REPLY]), api_key=KEY, pacing=Pacing(tokens_per_s=40))

    async def main() -> tuple[list[dict[str, Any]], dict[str, Any], list[dict[str, Any]]]:
        async with await session(slow) as ws:
            await say(ws, "go")
            await ws.send(json.dumps({"type": "response.create"}))
            while (await recv(ws))["type"] != "response.output_text.delta":
                pass
            await ws.send(json.dumps({"type": "response.cancel"}))
            cancelled = await recv_until(ws, "rate_limits.updated")
            await ws.send(json.dumps({"type": "response.cancel", "event_id": "late"}))
            late = await recv(ws)
            await ws.send(json.dumps({"type": "response.create"}))
            return cancelled, late, await recv_until(ws, "rate_limits.updated")

    with slow:
        cancelled, late, again = asyncio.run(main())
    assert cancelled[-2]["type"] == "response.done"
    assert cancelled[-2]["response"]["status"] == "cancelled"
    assert cancelled[-2]["response"]["status_details"] == {"type": "cancelled", "reason": "client_cancelled"}
    assert "response.function_call_arguments.done" not in types(cancelled)
    assert late["error"]["code"] == "response_cancel_not_active" and late["error"]["event_id"] == "late"
    assert again[-2]["response"]["status"] == "completed"
    assert [r["status"] for r in slow.last.responses] == ["cancelled", "completed"]


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"}])
def test_handshake_without_the_right_key_is_refused_with_401(endpoint: RealtimeEndpoint,
                                                             headers: dict[str, str]) -> None:
    async def main() -> None:
        async with connect(ws_url(endpoint), additional_headers=headers):
            pass

    with pytest.raises(InvalidStatus) as caught:
        asyncio.run(main())
    assert caught.value.response.status_code == 401
    body = json.loads(caught.value.response.body)
    assert body["error"]["code"] in ("invalid_api_key", "missing_api_key")
    assert "wrong" not in caught.value.response.body.decode()


def test_beta_header_is_closed_with_4000(endpoint: RealtimeEndpoint) -> None:
    async def main() -> None:
        async with connect(ws_url(endpoint), additional_headers={"Authorization": f"Bearer {KEY}",
                                                                 "OpenAI-Beta": "realtime=v1"}) as ws:
            await ws.recv()

    with pytest.raises(ConnectionClosed) as caught:
        asyncio.run(main())
    assert caught.value.rcvd is not None and caught.value.rcvd.code == 4000
    assert "beta" in caught.value.rcvd.reason


def test_bad_client_events_get_error_events(endpoint: RealtimeEndpoint) -> None:
    async def main() -> list[dict[str, Any]]:
        async with await session(endpoint) as ws:
            await ws.send("this is not json")
            await ws.send(json.dumps({"type": "response.teleport", "event_id": "e2"}))
            await ws.send(json.dumps({"type": "conversation.item.create", "event_id": "e3",
                                      "item": {"type": "message", "role": "user",
                                               "content": [{"type": "output_text", "text": "x"}]}}))
            await ws.send(json.dumps({"type": "response.cancel", "event_id": "e4"}))
            return [await recv(ws) for _ in range(4)]

    errors = asyncio.run(main())
    assert types(errors) == ["error"] * 4
    assert [e["error"]["code"] for e in errors] == ["invalid_json", "invalid_value", "invalid_value",
                                                    "response_cancel_not_active"]
    assert [e["error"]["event_id"] for e in errors] == [None, "e2", "e3", "e4"]
    assert errors[1]["error"]["param"] == "type"
    received = endpoint.last  # frames that are not events are timed too
    assert len(received.received_at) == len(received.received) == 4


def test_conversation_becomes_the_backends_turn_request(endpoint: RealtimeEndpoint) -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(32))

    async def main() -> None:
        async with await session(endpoint) as ws:
            await ws.send(json.dumps({"type": "session.update", "session": {
                "type": "realtime", "instructions": "Drive carefully.", "tools": [NAVIGATE]}}))
            await recv(ws)
            await ws.send(json.dumps({"type": "conversation.item.create", "item": {
                "type": "message", "role": "system", "content": [{"type": "input_text", "text": "Stay inside."}]}}))
            await ws.send(json.dumps({"type": "conversation.item.create", "item": {
                "type": "message", "role": "user", "content": [
                    {"type": "input_text", "text": "fetch the cup"},
                    {"type": "input_text", "text": "The robot perceives:\n- object cup_red"},
                    {"type": "input_image", "image_url": "data:image/png;base64,"
                     + base64.b64encode(png).decode()}]}}))
            await ws.send(json.dumps({"type": "conversation.item.create", "item": {
                "type": "function_call_output", "call_id": "call_1", "output": "arrived"}}))
            await ws.send(json.dumps({"type": "response.create"}))
            await recv_until(ws, "rate_limits.updated")

    asyncio.run(main())
    request = endpoint.requests[0]
    assert [(t["role"], t["text"]) for t in request.history] == [("user", "fetch the cup")]
    assert request.perception == "The robot perceives:\n- object cup_red"
    assert list(request.images) == [png] and endpoint.last.images == [png]
    assert [(r.call_id, r.output) for r in request.tool_results] == [("call_1", "arrived")]
    assert request.instructions == "Drive carefully.\n\nStay inside."
    assert [tool.name for tool in request.tools] == ["navigate"]


def test_slow_sends_do_not_slow_the_stated_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: the pace slept 1/rate after each send, so a 50 tokens/s stream ran at ~48."""
    now = [100.0]
    due: list[float] = []

    async def sleep(seconds: float) -> None:
        now[0] += seconds
        due.append(round(now[0] - 100.0, 6))

    monkeypatch.setattr("vla_bt.llm.pacing.time.monotonic", lambda: now[0])
    monkeypatch.setattr("vla_bt.llm.pacing.asyncio.sleep", sleep)

    async def stream() -> None:
        clock = Pacing(first_token_s=0.32, tokens_per_s=50).clock()
        await clock.first()
        for _ in range(3):
            now[0] += 0.005  # sending a token takes 5 ms
            await clock.next()

    asyncio.run(stream())
    assert due == [0.32, 0.34, 0.36, 0.38]  # token n is due at 320 ms + n × 20 ms, whatever sending cost
