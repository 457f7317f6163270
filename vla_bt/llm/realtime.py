"""``--llm realtime``: the OpenAI Realtime API (GA protocol) through the official ``openai`` SDK.

The key and the server come from ``OPENAI_API_KEY`` and ``OPENAI_BASE_URL``
unless given (as the SDK does), so ``OPENAI_BASE_URL=http://127.0.0.1:8765/v1``
points the backend at the project's local endpoint (``vla-bt serve-realtime``).

One WebSocket carries the whole dialogue: each response sends only what is
new since the last one (user turns, the perception summary and camera images
as parts of the user message, tool results as ``function_call_output`` items),
then ``response.create``. Server events become the normalised stream events
as they arrive, so the first tool call is complete (``ToolCallDone``) while
the model is still streaming the second.

Failure handling:

- every wait has a timeout (a ``StreamError`` with code ``timeout``);
- closing the stream early (the tree preempted ``Ask``) sends ``response.cancel``,
  and the next response first waits for the cancelled one to end;
- a close mid-response is a ``StreamError`` with code ``connection_closed`` naming the
  close code; a tool call whose ``.done`` had not arrived is never reported done;
- between responses, a recoverable close (1001, 1006, 1011 …) is repaired by
  reconnecting with backoff and replaying the conversation to the new session;
- frames that are not JSON, ``error`` events, close code 4000 (the beta protocol)
  and HTTP 401 (the key) become ``StreamError``/``BackendError`` naming the cause.

Audio input (``hear``): recorded or live speech is streamed as
``input_audio_buffer.append`` events (base64 PCM16, 24 kHz) to a session
configured with server VAD (``audio.input.turn_detection``) and input
transcription; the server commits the speech as a user item and its
transcript (``conversation.item.input_audio_transcription.completed``) is
returned, to become the user's turn in ``/dialogue/history``. That turn is
not sent again as text: the model answers the audio item itself when the
next ``respond`` creates a response. Turn detection does not create
responses (``create_response: false``) so that the tree decides which turn
the model answers (a spoken "yes" to ``Confirm`` is not a new instruction).

The API key never appears in a message, an exception or a ``repr``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import random
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .backend import Backend, BackendError, ToolSpec, TurnRequest
from .endpoint import BETA_CLOSE_CODE, redact_credentials_in_logs
from .events import ResponseDone, StreamError, StreamEvent, TextDelta, ToolCallDelta, ToolCallDone, ToolCallStarted

DEFAULT_MODEL = "gpt-realtime"
AUDIO_RATE = 24000
"""The sample rate of the ``audio/pcm`` format (PCM16, mono)."""
RECOVERABLE_CLOSE_CODES = frozenset({1001, 1005, 1006, 1011, 1012, 1013})
"""Close codes worth reconnecting after (RFC 6455 §7.4.1; the SDK's own policy)."""
REPLAY_LIMIT = 200
"""Conversation items given to a new session after a reconnection (the newest)."""

CLOSE_MEANINGS = {
    1000: "normal closure", 1001: "the server is going away", 1005: "no status code",
    1006: "connection lost without a close frame", 1008: "policy violation", 1009: "message too big",
    1011: "server error", 1012: "service restart", 1013: "try again later",
    BETA_CLOSE_CODE: "the server refused the beta Realtime protocol; this client speaks GA only "
                     "(remove any 'OpenAI-Beta: realtime=v1' header)",
}

redact_credentials_in_logs()


class RealtimeBackendError(BackendError):
    """A Realtime connection failed.

    Args:
        code: machine-readable cause (``invalid_api_key``, ``connection_closed``, ``timeout`` …)
        message: what happened, for people (never contains the key)
        retryable: whether trying again later may succeed
    """

    def __init__(self, code: str, message: str, retryable: bool = False):
        super().__init__(message)
        self.code = code
        self.retryable = retryable


def describe_close(code: int, reason: str = "") -> str:
    """``code 1006: connection lost without a close frame`` and the server's reason, if any."""
    meaning = CLOSE_MEANINGS.get(code, "application close code" if code >= 4000 else "unexpected close code")
    return f"code {code}: {meaning}" + (f" ({reason})" if reason else "")


def data_url(image: bytes) -> str:
    """A ``data:`` URL for encoded image bytes (PNG, JPEG, GIF or WebP, found by their signature)."""
    mime = ("image/png" if image.startswith(b"\x89PNG") else "image/jpeg" if image.startswith(b"\xff\xd8")
            else "image/gif" if image.startswith(b"GIF8") else "image/webp" if image[8:12] == b"WEBP" else "image/png")
    return f"data:{mime};base64,{base64.b64encode(image).decode('ascii')}"


@dataclass
class _Turn:
    """State of the response being streamed."""

    ids: set[str] = field(default_factory=set)
    create_id: str | None = None
    response_id: str | None = None
    in_flight: bool = False
    finished: bool = False
    text: list[str] = field(default_factory=list)
    calls: dict[str, str] = field(default_factory=dict)


class RealtimeBackend(Backend):
    """The OpenAI Realtime API (GA) as a streaming backend.

    Args:
        model: the Realtime model (``gpt-realtime``, ``gpt-4o-realtime-preview`` …)
        api_key: the key; default ``OPENAI_API_KEY``
        base_url: the server; default ``OPENAI_BASE_URL``, else OpenAI's
        tools: tools offered from the start (each request may replace them)
        instructions: instructions from the start (each request may replace them)
        timeout: seconds to wait for each server event during a response
        connect_timeout: seconds for the handshake and the ``session.updated`` answer
        max_retries: reconnection attempts after a recoverable close
        backoff: first reconnection delay in seconds (doubled for each attempt)
        extra_headers: additional handshake headers
    """

    name = "realtime"

    def __init__(self, model: str = DEFAULT_MODEL, *, api_key: str | None = None, base_url: str | None = None,
                 tools: Sequence[ToolSpec] = (), instructions: str = "", timeout: float = 15.0,
                 connect_timeout: float = 10.0, max_retries: int = 3, backoff: float = 0.2,
                 extra_headers: Mapping[str, str] | None = None):
        self.model = model
        self.base_url = base_url
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.extra_headers = dict(extra_headers or {})
        self._api_key = api_key
        self._audio_input: dict[str, Any] | None = None
        self._heard: deque[str] = deque(maxlen=64)
        self._session = self._session_config(instructions, tools)
        self._session_sent: dict[str, Any] | None = None
        self._client: Any = None
        self._conn: Any = None
        self._queue: asyncio.Queue[tuple[str, Any]] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._closed: tuple[int, str] | None = None
        self._lock: asyncio.Lock | None = None
        self._log: list[dict[str, Any]] = []
        self._seen: set[tuple[Any, ...]] = set()
        self._answers: deque[str] = deque(maxlen=64)
        self._cancel_ids: set[str] = set()
        self._unsettled = False

    def __repr__(self) -> str:
        return f"RealtimeBackend(model={self.model!r}, base_url={self._where()!r}, connected={self.connected})"

    @property
    def connected(self) -> bool:
        """A connection is open (as far as the last received frame tells)."""
        return self._conn is not None and self._closed is None

    # -- messages ---------------------------------------------------------------------------

    def _key(self) -> str:
        return self._api_key or (self._client.api_key if self._client is not None else "") or ""

    def _scrub(self, text: str) -> str:
        key = self._key()
        return text.replace(key, "[redacted]") if len(key) >= 4 else text

    def _error(self, code: str, message: str, retryable: bool = False) -> RealtimeBackendError:
        return RealtimeBackendError(code, self._scrub(message), retryable)

    def _where(self) -> str:
        if self._client is not None:
            return str(self._client.base_url).rstrip("/")
        return self.base_url or "OPENAI_BASE_URL or api.openai.com"

    def _session_config(self, instructions: str, tools: Sequence[ToolSpec]) -> dict[str, Any]:
        session: dict[str, Any] = {"type": "realtime", "output_modalities": ["text"],
                                   "tools": [tool.realtime() for tool in tools]}
        if instructions:
            session["instructions"] = instructions
        if tools:
            session["tool_choice"] = "auto"
        if getattr(self, "_audio_input", None):
            session["audio"] = {"input": self._audio_input}
        return session

    # -- connection -------------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect and configure the session (waits for ``session.updated``).

        Raises:
            RealtimeBackendError: no key, server unreachable, key refused (401), beta protocol refused (4000),
                ``session.update`` refused, or no answer within ``connect_timeout``
        """
        if not self.connected:
            await self._connect()

    async def close(self) -> None:
        """Close the connection (a later ``respond`` reconnects)."""
        await self._disconnect()
        self._closed = None

    def _make_client(self) -> Any:
        if self._client is None:
            try:
                import openai
            except ImportError as exc:
                raise RealtimeBackendError("missing_dependency", "the realtime backend needs the openai SDK: "
                                           "pip install 'vla-bt[realtime]'") from exc
            try:
                self._client = openai.AsyncOpenAI(api_key=self._api_key, base_url=self.base_url)
            except openai.OpenAIError:
                raise RealtimeBackendError("missing_api_key", "no API key for the Realtime API: set OPENAI_API_KEY "
                                           "(or pass api_key)") from None
        return self._client

    async def _disconnect(self) -> None:
        reader, conn = self._reader, self._conn
        self._reader, self._conn, self._queue = None, None, None
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
        if conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 2.0)

    async def _connect(self) -> None:
        from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

        client = self._make_client()
        await self._disconnect()
        self._closed, self._unsettled, self._cancel_ids = None, False, set()
        where = self._where()
        manager = client.realtime.connect(model=self.model, extra_headers=self.extra_headers)
        try:
            conn = await asyncio.wait_for(manager.enter(), self.connect_timeout)
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status == 401:
                raise self._error("invalid_api_key", f"the Realtime server at {where} refused the API key "
                                  "(HTTP 401 Unauthorized): check OPENAI_API_KEY") from None
            raise self._error(f"http_{status}", f"the Realtime server at {where} refused the connection "
                              f"(HTTP {status})", retryable=status == 429 or status >= 500) from None
        except asyncio.TimeoutError:
            raise self._error("timeout", f"no WebSocket handshake with {where} within {self.connect_timeout:g} s",
                              retryable=True) from None
        except (InvalidURI, InvalidHandshake) as exc:
            raise self._error("handshake_failed", f"WebSocket handshake with {where} failed: {exc}") from None
        except OSError as exc:
            raise self._error("connection_failed", f"cannot reach the Realtime server at {where}: "
                              f"{exc.strerror or exc}", retryable=True) from None
        except Exception as exc:  # noqa: BLE001 - anything else the handshake raises, named for the user
            raise self._error("connection_failed", f"cannot connect to the Realtime server at {where}: "
                              f"{type(exc).__name__}: {exc}") from None
        self._conn, self._queue = conn, asyncio.Queue()
        self._reader = asyncio.create_task(self._read(conn, self._queue))
        event_id = _event_id()
        try:
            await self._send(conn.session.update(session=self._session, event_id=event_id))
        except ConnectionClosed as exc:
            self._note_closed(conn, exc)
        await self._await_session_updated(event_id)
        self._session_sent = self._session
        try:
            replay = self._log[-REPLAY_LIMIT:]
            while replay and replay[0].get("type") == "function_call_output":
                replay = replay[1:]  # its call was cut off
            for item in replay:  # a new session: give it the conversation so far
                await self._send(conn.conversation.item.create(item=item, event_id=_event_id()))
        except ConnectionClosed as exc:
            self._note_closed(conn, exc)
            code, reason = self._closed or (1006, "")
            raise self._error("connection_closed", f"the Realtime connection closed while restoring the "
                              f"conversation ({describe_close(code, reason)})",
                              code in RECOVERABLE_CLOSE_CODES) from None

    async def _await_session_updated(self, event_id: str) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.connect_timeout
        while True:
            try:
                kind, value = await asyncio.wait_for(self._queue.get(), max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:
                await self._disconnect()
                raise self._error("timeout", f"no session.updated from {self._where()} within "
                                  f"{self.connect_timeout:g} s", retryable=True) from None
            if kind == "closed":
                code, reason = value
                raise self._error("connection_closed", f"the Realtime server closed the connection while the "
                                  f"session was set up ({describe_close(code, reason)})",
                                  code in RECOVERABLE_CLOSE_CODES)
            if kind == "garbage":
                await self._disconnect()
                raise self._error("invalid_event", f"the Realtime server sent a frame that is not a JSON event: "
                                  f"{value!r}")
            if value["type"] == "session.updated":
                return
            if value["type"] == "error":
                error = value.get("error") or {}
                await self._disconnect()
                raise self._error(str(error.get("code") or error.get("type") or "error"),
                                  f"the Realtime server refused session.update: {error.get('message', '')}")

    async def _reconnect(self) -> None:
        last: RealtimeBackendError | None = None
        for attempt in range(self.max_retries + 1):
            if attempt:
                await asyncio.sleep(min(self.backoff * 2 ** (attempt - 1), 5.0) * (0.75 + 0.25 * random.random()))
            try:
                await self._connect()
                return
            except RealtimeBackendError as exc:
                if not exc.retryable:
                    raise
                last = exc
        assert last is not None
        raise self._error(last.code, f"could not reconnect after {self.max_retries + 1} attempts: {last}")

    async def _read(self, conn: Any, queue: asyncio.Queue[tuple[str, Any]]) -> None:
        """Move every frame into the queue as it arrives, so closes are seen between responses too."""
        from websockets.exceptions import ConnectionClosed

        try:
            while True:
                queue.put_nowait(_parse(await conn.recv_bytes()))
        except ConnectionClosed as exc:
            self._note_closed(conn, exc)
            queue.put_nowait(("closed", _close_info(exc)))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure of the socket ends the connection
            if conn is self._conn:
                self._closed = (1006, type(exc).__name__)
            queue.put_nowait(("closed", (1006, type(exc).__name__)))

    def _note_closed(self, conn: Any, exc: Exception) -> None:
        if conn is self._conn and self._closed is None:
            self._closed = _close_info(exc)

    # -- one response -------------------------------------------------------------------------------

    async def respond(self, request: TurnRequest) -> AsyncIterator[StreamEvent]:
        """Stream one response: send what is new, ``response.create``, then the events as they arrive.

        Args:
            request: the dialogue, tools, instructions, perception, images and tool results

        Returns:
            an async iterator of events ending with ``ResponseDone`` or ``StreamError``; closing it
            early sends ``response.cancel``
        """
        if self._lock is None:
            self._lock = asyncio.Lock()
        await self._lock.acquire()
        turn = _Turn()
        try:
            try:
                await self._prepare()
                await self._send_turn(request, turn)
            except RealtimeBackendError as exc:
                yield StreamError(code=exc.code, message=str(exc))
                return
            while not turn.finished:
                assert self._queue is not None
                try:
                    kind, value = await asyncio.wait_for(self._queue.get(), self.timeout)
                except asyncio.TimeoutError:
                    waiting = "response.created" if turn.response_id is None else "the next event"
                    yield StreamError(code="timeout", message=f"no event from the Realtime server for "
                                      f"{self.timeout:g} s (waiting for {waiting})")
                    return
                for event in self._on_frame(kind, value, turn):
                    yield event
        finally:
            try:
                if turn.in_flight:
                    await self._cancel(turn)
            finally:
                self._lock.release()

    async def _prepare(self) -> None:
        """Make the connection ready: drop stale frames, end a cancelled response, reconnect if closed."""
        if self._queue is not None:
            while not self._queue.empty():
                self._note_stale(*self._queue.get_nowait())
        if self._unsettled and self.connected:
            await self._settle()
        if not self.connected:
            if self._closed is not None and self._closed[0] not in RECOVERABLE_CLOSE_CODES:
                code, reason = self._closed
                raise self._error("connection_closed", f"the Realtime connection is closed "
                                  f"({describe_close(code, reason)}); not reconnecting")
            await self._reconnect()

    async def _settle(self) -> None:
        """Wait for the cancelled response's ``response.done`` (or the error saying none was active)."""
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(self.timeout, 5.0)
        while self._unsettled and self.connected:
            try:
                self._note_stale(*await asyncio.wait_for(self._queue.get(), max(0.0, deadline - loop.time())))
            except asyncio.TimeoutError:
                await self._abandon("the cancelled response did not end")
                return

    def _note_stale(self, kind: str, value: Any) -> None:
        if kind == "event" and value["type"] == "response.done":
            self._unsettled = False
        elif kind == "event" and value["type"] == "error" and (value.get("error") or {}).get("event_id") \
                in self._cancel_ids:
            self._unsettled = False

    async def _send(self, sending: Awaitable[None]) -> None:
        """Send one client event, within ``timeout`` (a stuck connection is abandoned)."""
        try:
            await asyncio.wait_for(sending, self.timeout)
        except asyncio.TimeoutError:
            await self._abandon("a send did not complete")
            raise self._error("timeout", f"sending to the Realtime server took longer than {self.timeout:g} s",
                              retryable=True) from None

    async def _abandon(self, why: str) -> None:
        """Give up on a connection whose state is unknown; the next response reconnects."""
        await self._disconnect()
        self._closed = (1006, why)

    async def _send_turn(self, request: TurnRequest, turn: _Turn) -> None:
        from websockets.exceptions import ConnectionClosed

        items = self._new_items(request)
        self._log.extend(items)
        if request.tools or request.instructions:
            self._session = self._session_config(request.instructions or self._session.get("instructions", ""),
                                                 request.tools)
        for attempt in range(2):
            conn = self._conn
            try:
                if self._session != self._session_sent:
                    turn.ids.add(event_id := _event_id())
                    await self._send(conn.session.update(session=self._session, event_id=event_id))
                    self._session_sent = self._session
                for item in items:
                    turn.ids.add(event_id := _event_id())
                    await self._send(conn.conversation.item.create(item=item, event_id=event_id))
                turn.create_id = _event_id()
                turn.ids.add(turn.create_id)
                await self._send(conn.response.create(event_id=turn.create_id))
                turn.in_flight = True
                return
            except ConnectionClosed as exc:
                self._note_closed(conn, exc)
                code, reason = self._closed or _close_info(exc)
                if attempt or code not in RECOVERABLE_CLOSE_CODES:
                    raise self._error("connection_closed", f"the Realtime connection closed before the response "
                                      f"started ({describe_close(code, reason)})") from None
                await self._reconnect()  # replays the log, these items included
                items = []

    def _new_items(self, request: TurnRequest) -> list[dict[str, Any]]:
        """Conversation items for what the server has not seen yet."""
        items: list[dict[str, Any]] = []
        for result in request.tool_results:
            call_id = result.get("call_id") if isinstance(result, Mapping) else getattr(result, "call_id", None)
            output = result.get("output") if isinstance(result, Mapping) else getattr(result, "output", "")
            if call_id:
                items.append({"type": "function_call_output", "call_id": str(call_id), "output": str(output or "")})
        last_user: dict[str, Any] | None = None
        heard_last = False
        current = set()
        for turn in request.history:
            key = (turn.get("role"), turn.get("text"), turn.get("t"))
            current.add(key)
            if key in self._seen:
                continue
            text = str(turn.get("text", ""))
            if turn.get("role") == "user" and text in self._heard:  # said aloud: the server has the audio item
                self._heard.remove(text)
                last_user, heard_last = None, True
                continue
            if turn.get("role") == "user":
                last_user = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
                items.append(last_user)
                heard_last = False
            elif turn.get("role") == "robot":
                if text.strip() in self._answers:  # the model's own answer: the server has it already
                    self._answers.remove(text.strip())
                    continue
                items.append({"type": "message", "role": "assistant",
                              "content": [{"type": "output_text", "text": text}]})
        self._seen = current
        if last_user is None and heard_last and request.perception:
            items.append({"type": "message", "role": "system",
                          "content": [{"type": "input_text", "text": request.perception}]})
        if last_user is not None:
            if request.perception:
                last_user["content"].append({"type": "input_text", "text": request.perception})
            for image in request.images:
                last_user["content"].append({"type": "input_image", "image_url": data_url(bytes(image))})
        return items

    def _on_frame(self, kind: str, value: Any, turn: _Turn) -> list[StreamEvent]:
        """Normalised events for one frame of the response being streamed."""
        if kind == "closed":
            turn.in_flight, turn.finished = False, True
            return [StreamError(code="connection_closed", message=self._scrub(
                f"the Realtime connection closed mid-response ({describe_close(*value)})"))]
        if kind == "garbage":
            turn.in_flight, turn.finished = False, True
            self._closed = (1006, "a frame that is not JSON")
            return [StreamError(code="invalid_event", message=self._scrub(
                f"the Realtime server sent a frame that is not a JSON event: {value!r}"))]
        event, kind = value, value["type"]
        response_id = event.get("response_id") or (event.get("response") or {}).get("id")
        if turn.response_id is not None and response_id is not None and response_id != turn.response_id:
            return []  # another response's event
        if kind == "response.created":
            turn.response_id = response_id
        elif kind == "response.output_item.added" and (event.get("item") or {}).get("type") == "function_call":
            item = event["item"]
            turn.calls[item.get("call_id", "")] = item.get("name", "")
            return [ToolCallStarted(call_id=item.get("call_id", ""), name=item.get("name", ""))]
        elif kind == "response.output_text.delta":
            turn.text.append(event.get("delta", ""))
            return [TextDelta(text=event.get("delta", ""))]
        elif kind == "response.function_call_arguments.delta":
            return [ToolCallDelta(call_id=event.get("call_id", ""), delta=event.get("delta", ""))]
        elif kind == "response.function_call_arguments.done":
            call_id = event.get("call_id", "")
            return [ToolCallDone(call_id=call_id, name=event.get("name") or turn.calls.get(call_id, ""),
                                 arguments=event.get("arguments", ""))]
        elif kind == "response.output_item.done":
            item = dict(event.get("item") or {})
            if item.get("status") == "completed" and item.get("type") in ("message", "function_call"):
                self._log.append({k: v for k, v in item.items() if k not in ("id", "object", "status")})
        elif kind == "response.done":
            return self._done(event.get("response") or {}, turn)
        elif kind == "error":
            error = event.get("error") or {}
            source = error.get("event_id")
            if source in self._cancel_ids or (source is not None and source not in turn.ids):
                return []  # about an earlier response
            turn.finished = True
            if source == turn.create_id:
                turn.in_flight = False  # the response was never created
            code = str(error.get("code") or error.get("type") or "error")
            return [StreamError(code=code, message=self._scrub(
                f"the Realtime server reported an error ({code}): {error.get('message', '')}"))]
        return []

    def _done(self, response: Mapping[str, Any], turn: _Turn) -> list[StreamEvent]:
        turn.in_flight, turn.finished = False, True
        status = str(response.get("status") or "completed")
        if status == "failed":
            error = (response.get("status_details") or {}).get("error") or {}
            code = str(error.get("code") or "response_failed")
            return [StreamError(code=code, message=self._scrub(
                f"the response failed ({code}): {error.get('message') or 'no details'}"))]
        text = "".join(turn.text)
        if text.strip():
            self._answers.append(text.strip())
        usage = response.get("usage") or {}
        return [ResponseDone(status=status, text=text, usage={
            key: usage[key] for key in ("total_tokens", "input_tokens", "output_tokens") if key in usage})]

    # -- audio input ----------------------------------------------------------------------------

    def audio_input_config(self, *, silence_ms: int = 500, transcription_model: str = "gpt-4o-mini-transcribe",
                           create_response: bool = False) -> dict[str, Any]:
        """The ``session.audio.input`` sent before audio: PCM16 at 24 kHz, server VAD, input transcription."""
        return {"format": {"type": "audio/pcm", "rate": AUDIO_RATE},
                "transcription": {"model": transcription_model},
                "turn_detection": {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300,
                                   "silence_duration_ms": silence_ms, "create_response": create_response,
                                   "interrupt_response": False}}

    async def hear(self, pcm: bytes, *, chunk_ms: int = 100, paced: bool = False, silence_ms: int = 500,
                   quiet_s: float = 1.5, transcription_model: str = "gpt-4o-mini-transcribe") -> str:
        """Stream one recording (PCM16 mono at 24 kHz) and return what the server transcribed.

        Args:
            pcm: the audio
            chunk_ms: audio per ``input_audio_buffer.append``
            paced: send in real time (as a microphone would) instead of as fast as possible
            silence_ms: the server VAD's ``silence_duration_ms`` (silence that ends the turn)
            quiet_s: seconds to wait after the audio for speech to be detected; none means silence
            transcription_model: the server's input transcription model

        Returns:
            the transcript ("" when the recording held no speech); the turn it makes is
            already in the server's conversation, as audio

        Raises:
            RealtimeBackendError: the connection failed, the server refused the audio, or
                transcription failed or took longer than ``timeout``
        """
        from websockets.exceptions import ConnectionClosed

        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            await self._prepare()
            wanted = self.audio_input_config(silence_ms=silence_ms, transcription_model=transcription_model)
            if self._audio_input != wanted:
                self._audio_input = wanted
                self._session = {**self._session, "audio": {"input": wanted}}
            conn, ids = self._conn, set()
            step = max(2, AUDIO_RATE * 2 * chunk_ms // 1000)
            trailing = bytes(AUDIO_RATE * 2 * (silence_ms + 300) // 1000)
            try:
                if self._session != self._session_sent:
                    ids.add(event_id := _event_id())
                    await self._send(conn.session.update(session=self._session, event_id=event_id))
                    self._session_sent = self._session
                loop = asyncio.get_running_loop()
                started = loop.time()
                audio = pcm + trailing
                for offset in range(0, len(audio), step):
                    ids.add(event_id := _event_id())
                    chunk = base64.b64encode(audio[offset:offset + step]).decode("ascii")
                    await self._send(conn.input_audio_buffer.append(audio=chunk, event_id=event_id))
                    if paced:
                        await asyncio.sleep(max(0.0, started + (offset + step) / (2 * AUDIO_RATE) - loop.time()))
            except ConnectionClosed as exc:
                self._note_closed(conn, exc)
                code, reason = self._closed or _close_info(exc)
                raise self._error("connection_closed", f"the Realtime connection closed while sending audio "
                                  f"({describe_close(code, reason)})", code in RECOVERABLE_CLOSE_CODES) from None
            transcript = await self._await_transcript(conn, ids, quiet_s)
            if transcript:
                self._heard.append(transcript)
                self._seen_heard(transcript)
            return transcript

    def _seen_heard(self, transcript: str) -> None:
        """Remember the spoken turn for a replay after a reconnection (as text: audio is not kept)."""
        self._log.append({"type": "message", "role": "user", "content": [{"type": "input_text", "text": transcript}]})

    async def _await_transcript(self, conn: Any, ids: set[str], quiet_s: float) -> str:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        quiet_until = loop.time() + quiet_s
        speaking, item_id, committed_by_hand = False, None, False
        while True:
            now = loop.time()
            if now > deadline:
                raise self._error("timeout", f"no transcript from the Realtime server within {self.timeout:g} s")
            wait = min(deadline, quiet_until) - now if not speaking else deadline - now
            try:
                kind, value = await asyncio.wait_for(self._queue.get(), max(0.01, wait))
            except asyncio.TimeoutError:
                if not speaking and loop.time() >= quiet_until:
                    await self._send(conn.input_audio_buffer.clear(event_id=_event_id()))
                    return ""  # no speech in the recording
                if speaking and item_id is None and not committed_by_hand:
                    committed_by_hand = True  # the audio ended before the server heard the speech end
                    ids.add(event_id := _event_id())
                    await self._send(conn.input_audio_buffer.commit(event_id=event_id))
                    deadline = loop.time() + self.timeout
                continue
            if kind == "closed":
                code, reason = value
                raise self._error("connection_closed", f"the Realtime connection closed while transcribing "
                                  f"({describe_close(code, reason)})", code in RECOVERABLE_CLOSE_CODES)
            if kind == "garbage":
                raise self._error("invalid_event", f"the Realtime server sent a frame that is not a JSON event: "
                                  f"{value!r}")
            event, kind = value, value["type"]
            if kind == "input_audio_buffer.speech_started":
                speaking = True
                deadline = loop.time() + self.timeout
            elif kind == "input_audio_buffer.committed":
                speaking, item_id = True, event.get("item_id")
            elif kind == "conversation.item.input_audio_transcription.completed" and event.get("item_id") == item_id:
                return str(event.get("transcript") or "").strip()
            elif kind == "conversation.item.input_audio_transcription.failed" and event.get("item_id") == item_id:
                error = event.get("error") or {}
                raise self._error(str(error.get("code") or "transcription_failed"),
                                  f"the Realtime server could not transcribe the audio: {error.get('message', '')}")
            elif kind == "error" and (event.get("error") or {}).get("event_id") in ids:
                error = event.get("error") or {}
                raise self._error(str(error.get("code") or "error"),
                                  f"the Realtime server refused the audio: {error.get('message', '')}")
            else:
                self._note_stale(kind if kind in ("closed", "garbage") else "event", value)

    async def _cancel(self, turn: _Turn) -> None:
        """Ask the server to stop the response (the stream was closed early or failed)."""
        conn = self._conn
        if conn is None or not self.connected:
            return
        event_id = _event_id()
        self._cancel_ids.add(event_id)
        self._unsettled = True
        try:
            await asyncio.wait_for(conn.response.cancel(event_id=event_id), 2.0)
        except Exception:  # noqa: BLE001 - the connection is gone or stuck: start afresh next time
            await self._abandon("response.cancel could not be sent")


def _event_id() -> str:
    return f"event_{uuid.uuid4().hex[:20]}"


def _close_info(exc: Exception) -> tuple[int, str]:
    received = getattr(exc, "rcvd", None)
    if received is not None:
        return int(received.code), str(received.reason or "")
    return 1006, ""


def _parse(data: bytes | str) -> tuple[str, Any]:
    """``("event", dict)`` for a JSON event, ``("garbage", snippet)`` for anything else."""
    try:
        event = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        event = None
    if isinstance(event, dict) and isinstance(event.get("type"), str):
        return "event", event
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    return "garbage", text[:80]
