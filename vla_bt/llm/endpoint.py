"""A local endpoint that speaks the OpenAI Realtime API (GA protocol) over real WebSockets.

Any ``Backend`` (scripted, the local planner …) answers behind it, so the
``realtime`` backend, the official ``openai`` SDK and any other GA client can
be run and tested offline, with GPT-4o-like timing (``Pacing``) and injected
faults (``Faults``)::

    with RealtimeEndpoint(ScriptedBackend(responses), api_key="local") as endpoint:
        backend = RealtimeBackend(api_key="local", base_url=endpoint.url)

Protocol (``/v1/realtime?model=…``): the handshake needs ``Authorization:
Bearer KEY`` (HTTP 401 if missing or, when a key is configured, wrong); the
beta header ``OpenAI-Beta: realtime=v1`` is refused with close code 4000.
Server events: ``session.created`` first; ``session.updated`` for each valid
``session.update``; ``conversation.item.added``/``.done`` for each created
item; for ``response.create``: ``response.created``, then per output item
``response.output_item.added``, ``conversation.item.added``, the content
events (``response.content_part.added``, ``response.output_text.delta``…,
``response.output_text.done``, ``response.content_part.done`` for text;
``response.function_call_arguments.delta``…, ``.done`` for a call),
``response.output_item.done``, ``conversation.item.done``; then
``response.done`` (status, usage) and ``rate_limits.updated``. Errors are
``error`` events with the GA shape. Output is always text (no audio is
synthesised).

Audio input (``audio/pcm``, 24 kHz): ``input_audio_buffer.append`` fills the
buffer; with ``session.audio.input.turn_detection`` of type ``server_vad``
(the default) a voice activity detector sends
``input_audio_buffer.speech_started`` / ``.speech_stopped``, then commits the
speech (``input_audio_buffer.committed``, ``conversation.item.added``/``.done``
with an ``input_audio`` part), transcribes it offline (pocketsphinx with the
backend's command grammar, or the ``transcriber`` given) and, when
``session.audio.input.transcription`` is set, sends
``conversation.item.input_audio_transcription.delta``/``.completed``; then,
if ``create_response`` is true, the response. ``input_audio_buffer.commit``
and ``.clear`` work as in the GA API. The backend sees the transcript as the
user's turn. Raw audio is never kept.

How the conversation becomes a ``TurnRequest``: user messages give the
history (their first ``input_text`` part is the turn's text); further
``input_text`` parts of the newest user message are the perception summary;
``input_image`` parts and ``function_call_output`` items added since the last
response are the images and tool results; assistant messages are the robot's
turns; system messages are appended to the instructions.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import functools
import hmac
import json
import logging
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from vla_bt.net import url_host

from .backend import Backend, ToolResult, ToolSpec, TurnRequest
from .events import ResponseDone, StreamError, TextDelta, ToolCallDelta, ToolCallDone, ToolCallStarted
from .pacing import Pacing, tokens

DEFAULT_MODEL = "gpt-realtime"
DEFAULT_INSTRUCTIONS = "You are a helpful assistant."
BETA_CLOSE_CODE = 4000
MAX_MESSAGE_BYTES = 16 * 2**20
SESSION_KEYS = frozenset({"type", "audio", "include", "instructions", "max_output_tokens", "model",
                          "output_modalities", "parallel_tool_calls", "prompt", "reasoning", "tool_choice", "tools",
                          "tracing", "truncation"})
CLIENT_EVENTS = ("session.update", "conversation.item.create", "conversation.item.delete", "conversation.item.retrieve",
                 "response.create", "response.cancel", "input_audio_buffer.append", "input_audio_buffer.commit",
                 "input_audio_buffer.clear")
UNSUPPORTED_EVENTS = ("conversation.item.truncate", "output_audio_buffer.clear")
AUDIO_RATE = 24000
"""The sample rate of ``audio/pcm`` input (16-bit little-endian mono)."""
MIN_COMMIT_MS = 100
"""The shortest audio buffer ``input_audio_buffer.commit`` accepts."""

log = logging.getLogger(__name__)
Emit = Callable[[dict[str, Any]], Awaitable[None]]


class _RedactAuthorization(logging.Filter):
    """Keeps credentials out of the handshake lines ``websockets`` logs at DEBUG level."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 2 and str(args[0]).lower() == "authorization":
            record.args = (args[0], "[redacted]")
        return True


def redact_credentials_in_logs() -> None:
    """Install (once) the filter that hides ``Authorization`` headers in ``websockets``' debug logs."""
    for name in ("websockets.client", "websockets.server"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _RedactAuthorization) for f in logger.filters):
            logger.addFilter(_RedactAuthorization())


redact_credentials_in_logs()


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


def _count(text: str) -> int:
    return sum(1 for _ in tokens(text))


@dataclass
class Faults:
    """Misbehaviour to inject, for tests.

    Event counts are per response: event 0 is ``response.created``, the last is
    ``rate_limits.updated``. Each fault fires at most once per response.

    Args:
        close_after: after this many events, drop the connection without a close frame (the client sees 1006)
        close_code: with ``close_after``, close with this code (a close frame) instead of dropping
        non_json_after: after this many events, send a frame that is not JSON (the stream then goes on)
        unknown_after: after this many events, send an event of an unknown type (the stream then goes on)
        error_code: answer ``response.create`` with an ``error`` event with this code instead of a response
        stall_after: after this many events, send nothing more (0: never answer ``response.create``);
            a ``response.cancel`` still ends the response
        response: apply only to the response with this index (from 0, counted across connections); None: to all
    """

    close_after: int | None = None
    close_code: int | None = None
    non_json_after: int | None = None
    unknown_after: int | None = None
    error_code: str | None = None
    stall_after: int | None = None
    response: int | None = None


class _DroppedError(Exception):
    """The connection was closed on purpose (a fault); the response ends silently."""


@dataclass
class _Response:
    id: str
    index: int
    metadata: Any
    modalities: list[str]
    create_event_id: str | None
    status: str = "in_progress"
    output: list[dict[str, Any]] = field(default_factory=list)
    open_item: dict[str, Any] | None = None
    text: list[str] = field(default_factory=list)
    calls: dict[str, dict[str, Any]] = field(default_factory=dict)
    output_tokens: int = 0
    input_tokens: int = 0
    sent: int = 0
    fired: set[str] = field(default_factory=set)
    cancel_requested: bool = False
    task: asyncio.Task[None] | None = None

    def resource(self, conversation_id: str, usage: dict[str, Any] | None = None,
                 details: dict[str, Any] | None = None) -> dict[str, Any]:
        """The GA ``realtime.response`` object."""
        return {"object": "realtime.response", "id": self.id, "status": self.status, "status_details": details,
                "output": [dict(item) for item in self.output], "conversation_id": conversation_id,
                "output_modalities": self.modalities, "max_output_tokens": "inf",
                "audio": {"output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "alloy"}},
                "usage": usage, "metadata": self.metadata}


class _AudioInput:
    """The input audio buffer of one connection, with server voice activity detection.

    Audio arrives as 24 kHz PCM; the detector runs on a 16 kHz copy (30 ms
    frames). Times are milliseconds of audio since the connection began.
    """

    def __init__(self) -> None:
        self.pcm = bytearray()
        self.origin = 0  # samples (24 kHz) before the buffer's first one
        self.item_id: str | None = None
        self._vad: Any = None
        self._resampler: Any = None
        self._settings: tuple[Any, ...] | None = None
        self._speech_start = 0
        self._frame_origin = 0

    @property
    def buffered_ms(self) -> float:
        return len(self.pcm) / 2 / AUDIO_RATE * 1000

    def append(self, pcm: bytes, detection: Mapping[str, Any] | None) -> list[tuple[str, int, int]]:
        """Add audio; with turn detection, the speech starts and stops it completes ``(kind, start_ms, stop_ms)``."""
        import numpy as np

        self.pcm += pcm[:len(pcm) - len(pcm) % 2]
        if detection is None:
            self._vad = None
            return []
        settings = (detection.get("threshold", 0.5), detection.get("prefix_padding_ms", 300),
                    detection.get("silence_duration_ms", 500))
        if self._vad is None or settings != self._settings:
            import soxr

            from vla_bt.speech.vad import VadStream, VoiceActivity

            threshold = float(settings[0] if settings[0] is not None else 0.5)
            aggressiveness = 0 if threshold < 0.4 else 1 if threshold < 0.7 else 2 if threshold < 0.9 else 3
            silence = int(settings[2] if settings[2] is not None else 500)
            self._vad = VadStream(VoiceActivity(aggressiveness, silence_ms=silence))
            self._resampler = soxr.ResampleStream(AUDIO_RATE, 16000, 1, dtype="float32")
            self._settings = settings
            self._frame_origin = self.origin + len(self.pcm) // 2 - len(pcm) // 2
        samples = np.frombuffer(bytes(pcm[:len(pcm) - len(pcm) % 2]), dtype="<i2").astype(np.float32) / 32768.0
        events = []
        prefix = int(settings[1] if settings[1] is not None else 300)
        for kind, frame in self._vad.feed(self._resampler.resample_chunk(samples)):
            ms = int(self._frame_origin / AUDIO_RATE * 1000) + frame * 30
            if kind == "start":
                self._speech_start = max(int(self.origin / AUDIO_RATE * 1000), ms - prefix)
                events.append(("start", self._speech_start, 0))
            else:
                events.append(("stop", self._speech_start, ms))
        return events

    def take(self, start_ms: int, stop_ms: int) -> bytes:
        """The audio from ``start_ms`` to ``stop_ms``; the buffer keeps what follows."""
        lo = max(0, int(start_ms * AUDIO_RATE / 1000) - self.origin)
        hi = max(lo, int(stop_ms * AUDIO_RATE / 1000) - self.origin)
        segment = bytes(self.pcm[2 * lo:2 * hi])
        del self.pcm[:2 * hi]
        self.origin += hi
        return segment

    def take_all(self) -> bytes:
        """Everything buffered (commit, clear); the detector starts afresh."""
        segment = bytes(self.pcm)
        self.origin += len(self.pcm) // 2
        self.pcm = bytearray()
        self._vad, self.item_id = None, None
        return segment


class RealtimeConnection:
    """One client connection: its session, conversation and everything exchanged (for inspection).

    Attributes:
        session: the GA session object as last sent to the client
        items: the conversation items, in order
        images: decoded bytes of every ``input_image`` part received
        received: client events, as parsed (non-JSON frames as ``{"raw": text}``)
        sent: server events, in order
        received_at, sent_at: when each of those was received or sent (``time.monotonic()``)
        responses: the final ``realtime.response`` objects
    """

    def __init__(self, endpoint: RealtimeEndpoint, ws: ServerConnection, model: str):
        self.endpoint = endpoint
        self.ws = ws
        self.conversation_id = _id("conv")
        self.session: dict[str, Any] = _default_session(model)
        self.items: list[dict[str, Any]] = []
        self.images: list[bytes] = []
        self.received: list[dict[str, Any]] = []
        self.sent: list[dict[str, Any]] = []
        self.received_at: list[float] = []
        self.sent_at: list[float] = []
        self.responses: list[dict[str, Any]] = []
        self.active: _Response | None = None
        self.audio = _AudioInput()
        self._created: dict[str, float] = {}
        self._mark = 0
        self._lock = asyncio.Lock()

    # -- sending -----------------------------------------------------------------------

    async def send(self, event: dict[str, Any]) -> None:
        event = {"type": event["type"], "event_id": _id("event"), **{k: v for k, v in event.items() if k != "type"}}
        self.sent.append(event)
        self.sent_at.append(time.monotonic())
        async with self._lock:
            await self.ws.send(json.dumps(event))

    async def send_raw(self, text: str) -> None:
        async with self._lock:
            await self.ws.send(text)

    async def error(self, code: str, message: str, param: str | None = None, event_id: str | None = None,
                    kind: str = "invalid_request_error") -> None:
        await self.send({"type": "error", "error": {"type": kind, "code": code, "message": message, "param": param,
                                                    "event_id": event_id}})

    # -- client events -------------------------------------------------------------------

    async def handle(self, message: str | bytes) -> None:
        self.received_at.append(time.monotonic())
        try:
            event = json.loads(message)
        except (ValueError, UnicodeDecodeError):
            self.received.append({"raw": message if isinstance(message, str) else message.decode("utf-8", "replace")})
            await self.error("invalid_json", "The client event is not valid JSON.")
            return
        if not isinstance(event, dict):
            self.received.append({"raw": message if isinstance(message, str) else repr(message)})
            await self.error("invalid_value", "A client event must be a JSON object.")
            return
        kind, event_id = event.get("type"), event.get("event_id")
        if kind == "input_audio_buffer.append" and isinstance(event.get("audio"), str):
            # raw audio is never kept: only how much arrived
            self.received.append({**event, "audio": f"<{len(event['audio']) * 3 // 4} bytes>"})
        else:
            self.received.append(event)
        handler = {"session.update": self._session_update, "conversation.item.create": self._item_create,
                   "conversation.item.delete": self._item_delete, "conversation.item.retrieve": self._item_retrieve,
                   "response.create": self._response_create, "response.cancel": self._response_cancel,
                   "input_audio_buffer.append": self._audio_append, "input_audio_buffer.commit": self._audio_commit,
                   "input_audio_buffer.clear": self._audio_clear}.get(str(kind))
        if kind is None:
            await self.error("missing_required_parameter", "Missing required parameter: 'type'.", "type", event_id)
        elif kind in UNSUPPORTED_EVENTS:
            await self.error("unsupported_event", f"'{kind}' is not supported by this endpoint (text only).", "type",
                             event_id)
        elif handler is None:
            await self.error("invalid_value", f"Invalid value: '{kind}'. Supported values are: "
                             + ", ".join(f"'{name}'" for name in CLIENT_EVENTS) + ".", "type", event_id)
        else:
            await handler(event, event_id)

    async def _session_update(self, event: dict[str, Any], event_id: str | None) -> None:
        session = event.get("session")
        if not isinstance(session, dict):
            await self.error("missing_required_parameter", "Missing required parameter: 'session'.", "session",
                             event_id)
            return
        if "type" not in session:
            await self.error("missing_required_parameter", "Missing required parameter: 'session.type'.",
                             "session.type", event_id)
            return
        if session["type"] != "realtime":
            await self.error("invalid_value", f"Invalid value: '{session['type']}'. This endpoint only serves "
                             "'realtime' sessions.", "session.type", event_id)
            return
        unknown = sorted(set(session) - SESSION_KEYS)
        if unknown:
            await self.error("unknown_parameter", f"Unknown parameter: 'session.{unknown[0]}'.",
                             f"session.{unknown[0]}", event_id)
            return
        modalities = session.get("output_modalities", self.session["output_modalities"])
        if not isinstance(modalities, list) or len(modalities) != 1 or modalities[0] not in ("text", "audio"):
            await self.error("invalid_value", "Invalid value for 'session.output_modalities': use ['text'] or "
                             "['audio'].", "session.output_modalities", event_id)
            return
        for index, tool in enumerate(session.get("tools") or []):
            if not isinstance(tool, dict) or tool.get("type") != "function" or not tool.get("name"):
                await self.error("invalid_value", "Each tool needs type 'function' and a 'name'.",
                                 f"session.tools[{index}]", event_id)
                return
        for key, value in session.items():
            if key == "audio" and isinstance(value, dict):
                self.session["audio"] = _merge(self.session.get("audio") or {}, value)
            else:
                self.session[key] = value
        await self.send({"type": "session.updated", "session": self.session})

    async def _item_create(self, event: dict[str, Any], event_id: str | None) -> None:
        item = event.get("item")
        problem = _check_item(item)
        if problem:
            await self.error(problem[0], problem[1], problem[2], event_id)
            return
        assert isinstance(item, dict)
        item = {"id": item.get("id") or _id("item"), "object": "realtime.item", "status": "completed", **{
            k: v for k, v in item.items() if k not in ("id", "object", "status")}}
        for part in item.get("content") or []:
            if part.get("type") == "input_image":
                image = _decode_data_url(str(part.get("image_url", "")))
                if image is None:
                    await self.error("invalid_value", "input_image.image_url must be a base64 data URL "
                                     "(data:image/png;base64,…).", "item.content.image_url", event_id)
                    return
                self.images.append(image)
        previous = self.items[-1]["id"] if self.items else None
        after = event.get("previous_item_id")
        if after == "root":
            self.items.insert(0, item)
            previous = None
        elif after is not None:
            ids = [i["id"] for i in self.items]
            if after not in ids:
                await self.error("item_not_found", f"Item with id '{after}' not found.", "previous_item_id", event_id)
                return
            self.items.insert(ids.index(after) + 1, item)
            previous = after
        else:
            self.items.append(item)
        self._created[item["id"]] = time.time()
        await self.send({"type": "conversation.item.added", "previous_item_id": previous, "item": item})
        await self.send({"type": "conversation.item.done", "previous_item_id": previous, "item": item})

    async def _item_delete(self, event: dict[str, Any], event_id: str | None) -> None:
        item_id = event.get("item_id")
        for index, item in enumerate(self.items):
            if item["id"] == item_id:
                del self.items[index]
                self._mark = min(self._mark, len(self.items))
                await self.send({"type": "conversation.item.deleted", "item_id": item_id})
                return
        await self.error("item_not_found", f"Item with id '{item_id}' not found.", "item_id", event_id)

    async def _item_retrieve(self, event: dict[str, Any], event_id: str | None) -> None:
        item = next((i for i in self.items if i["id"] == event.get("item_id")), None)
        if item is None:
            await self.error("item_not_found", f"Item with id '{event.get('item_id')}' not found.", "item_id",
                             event_id)
        else:
            await self.send({"type": "conversation.item.retrieved", "item": item})

    async def _response_create(self, event: dict[str, Any], event_id: str | None) -> None:
        if self.active is not None:
            await self.error("conversation_already_has_active_response",
                             f"Conversation already has an active response in progress: {self.active.id}. Wait "
                             "until the response is finished before creating a new one.", None, event_id)
            return
        params = event.get("response") if isinstance(event.get("response"), dict) else {}
        index = self.endpoint._next_response_index()
        faults = self.endpoint.faults
        if faults is not None and faults.response not in (None, index):
            faults = None
        if faults is not None and faults.error_code:
            await self.error(faults.error_code, f"Injected error: {faults.error_code}.", None, event_id)
            return
        response = _Response(id=_id("resp"), index=index, metadata=params.get("metadata"),
                             modalities=list(params.get("output_modalities") or self.session["output_modalities"]),
                             create_event_id=event_id)
        self.active = response
        response.task = asyncio.create_task(self._stream(response, params, faults))

    async def _response_cancel(self, event: dict[str, Any], event_id: str | None) -> None:
        response = self.active
        wanted = event.get("response_id")
        if response is None or (wanted and wanted != response.id) or response.cancel_requested:
            await self.error("response_cancel_not_active", "Cancellation failed: no active response found.", None,
                             event_id)
            return
        response.cancel_requested = True
        if response.task is not None:
            response.task.cancel()

    # -- audio input ---------------------------------------------------------------------

    def _turn_detection(self) -> dict[str, Any] | None:
        detection = ((self.session.get("audio") or {}).get("input") or {}).get("turn_detection")
        return detection if isinstance(detection, dict) and detection.get("type") in ("server_vad", "semantic_vad") \
            else None

    async def _audio_append(self, event: dict[str, Any], event_id: str | None) -> None:
        data = event.get("audio")
        if not isinstance(data, str):
            await self.error("missing_required_parameter", "Missing required parameter: 'audio'.", "audio", event_id)
            return
        try:
            pcm = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            await self.error("invalid_value", "Invalid 'audio': expected base64-encoded audio bytes.", "audio",
                             event_id)
            return
        fmt = ((self.session.get("audio") or {}).get("input") or {}).get("format") or {}
        if fmt.get("type", "audio/pcm") != "audio/pcm":
            await self.error("invalid_value", f"This endpoint transcribes 'audio/pcm' input only, not "
                             f"'{fmt.get('type')}'.", "session.audio.input.format", event_id)
            return
        detection = self._turn_detection()
        for kind, start, stop in self.audio.append(pcm, detection):
            if kind == "start":
                self.audio.item_id = _id("item")
                await self.send({"type": "input_audio_buffer.speech_started", "audio_start_ms": start,
                                 "item_id": self.audio.item_id})
            else:
                item_id = self.audio.item_id or _id("item")
                await self.send({"type": "input_audio_buffer.speech_stopped", "audio_end_ms": stop,
                                 "item_id": item_id})
                segment = self.audio.take(start, stop)
                await self._audio_committed(item_id, segment, respond=bool(detection and detection.get(
                    "create_response", True)))

    async def _audio_commit(self, event: dict[str, Any], event_id: str | None) -> None:
        buffered = self.audio.buffered_ms
        if buffered < MIN_COMMIT_MS:
            await self.error("input_audio_buffer_commit_empty", f"Error committing input audio buffer: buffer too "
                             f"small. Expected at least {MIN_COMMIT_MS}ms of audio, but buffer only has "
                             f"{buffered:.2f}ms of audio.", None, event_id)
            return
        item_id = self.audio.item_id or _id("item")
        await self._audio_committed(item_id, self.audio.take_all(), respond=False)

    async def _audio_clear(self, event: dict[str, Any], event_id: str | None) -> None:
        self.audio.take_all()
        await self.send({"type": "input_audio_buffer.cleared"})

    async def _audio_committed(self, item_id: str, pcm: bytes, respond: bool) -> None:
        """The committed audio becomes a user message; transcribed; answered if turn detection says so."""
        self.audio.item_id = None
        previous = self.items[-1]["id"] if self.items else None
        item = {"id": item_id, "object": "realtime.item", "type": "message", "role": "user", "status": "completed",
                "content": [{"type": "input_audio", "transcript": None}]}
        self.items.append(item)
        self._created[item_id] = time.time()
        await self.send({"type": "input_audio_buffer.committed", "previous_item_id": previous, "item_id": item_id})
        await self.send({"type": "conversation.item.added", "previous_item_id": previous, "item": item})
        await self.send({"type": "conversation.item.done", "previous_item_id": previous, "item": item})
        seconds = len(pcm) / 2 / AUDIO_RATE
        try:
            transcript = await asyncio.to_thread(self.endpoint.transcribe, pcm, self.session)
        except Exception as exc:  # noqa: BLE001 - reported to the client as the GA failure event
            log.warning("transcription failed: %s", exc)
            if (self.session.get("audio") or {}).get("input", {}).get("transcription"):
                await self.send({"type": "conversation.item.input_audio_transcription.failed", "item_id": item_id,
                                 "content_index": 0, "error": {"type": "transcription_error",
                                                               "code": "transcription_failed", "message": str(exc),
                                                               "param": None}})
            transcript = ""
        else:
            item["content"][0]["transcript"] = transcript
            if (self.session.get("audio") or {}).get("input", {}).get("transcription"):
                if transcript:
                    await self.send({"type": "conversation.item.input_audio_transcription.delta",
                                     "item_id": item_id, "content_index": 0, "delta": transcript})
                await self.send({"type": "conversation.item.input_audio_transcription.completed",
                                 "item_id": item_id, "content_index": 0, "transcript": transcript,
                                 "usage": {"type": "duration", "seconds": round(seconds, 3)}})
        if respond and self.active is None:
            await self._response_create({"type": "response.create"}, None)

    # -- the response stream -------------------------------------------------------------

    def turn_request(self, params: Mapping[str, Any]) -> TurnRequest:
        """The backend's view of the conversation for the next response."""
        history, instructions_extra = [], []
        for item in self.items:
            if item.get("type") != "message":
                continue
            texts = [str(p.get("text") or p.get("transcript") or "") for p in item.get("content") or []
                     if p.get("type") in ("input_text", "output_text", "text", "input_audio")]
            if item.get("role") == "user":
                history.append({"role": "user", "text": texts[0] if texts else "", "t": self._created[item["id"]]})
            elif item.get("role") == "assistant":
                history.append({"role": "robot", "text": "".join(texts), "t": self._created[item["id"]]})
            elif item.get("role") == "system":
                instructions_extra.extend(texts)
        new = self.items[self._mark:]
        perception = ""
        users = [i for i in new if i.get("type") == "message" and i.get("role") == "user"]
        if users:
            extra = [p for p in users[-1].get("content") or [] if p.get("type") == "input_text"][1:]
            perception = "\n".join(str(p.get("text", "")) for p in extra)
        images = [image for item in users for part in item.get("content") or [] if part.get("type") == "input_image"
                  for image in [_decode_data_url(str(part.get("image_url", "")))] if image is not None]
        results = [ToolResult(call_id=str(i.get("call_id")), output=str(i.get("output", ""))) for i in new
                   if i.get("type") == "function_call_output"]
        instructions = str(params.get("instructions") or self.session.get("instructions") or "")
        if instructions_extra:
            instructions = "\n\n".join([instructions, *instructions_extra]).strip()
        tools = [ToolSpec(str(t["name"]), str(t.get("description", "")), dict(t.get("parameters") or {}))
                 for t in (params.get("tools") or self.session.get("tools") or [])
                 if isinstance(t, dict) and t.get("type") == "function" and t.get("name")]
        return TurnRequest(history=history, tools=tools, instructions=instructions, perception=perception,
                           images=images, tool_results=results)

    async def _emit(self, response: _Response, event: dict[str, Any], faults: Faults | None = None) -> None:
        """Send one event of a response, injecting the configured faults at their index."""
        if faults is not None:
            n = response.sent
            if faults.close_after == n and "close" not in response.fired:
                response.fired.add("close")
                if faults.close_code is None:
                    transport = self.ws.transport
                    if transport is not None:
                        transport.abort()
                else:
                    await self.ws.close(faults.close_code, "injected close")
                raise _DroppedError
            if faults.stall_after == n and "stall" not in response.fired:
                response.fired.add("stall")
                await asyncio.Event().wait()  # until response.cancel or the connection closes
            if faults.non_json_after == n and "non_json" not in response.fired:
                response.fired.add("non_json")
                await self.send_raw("<html><body>502 Bad Gateway</body></html>")
            if faults.unknown_after == n and "unknown" not in response.fired:
                response.fired.add("unknown")
                await self.send({"type": "response.vla_bt_unknown_event", "response_id": response.id})
        await self.send(event)
        response.sent += 1

    async def _stream(self, response: _Response, params: Mapping[str, Any], faults: Faults | None) -> None:
        clock = self.endpoint.pacing.clock()
        emit = functools.partial(self._emit, response, faults=faults)
        try:
            await emit({"type": "response.created", "response": response.resource(self.conversation_id)})
            request = self.turn_request(params)
            self._mark = len(self.items)
            self.endpoint.requests.append(request)
            response.input_tokens = _count(request.instructions) + sum(_count(str(t["text"])) for t in request.history)
            started, failure = False, None
            stream = self.endpoint.backend.respond(request)
            try:
                async for event in stream:
                    if not started and isinstance(event, (TextDelta, ToolCallStarted, ToolCallDelta, ToolCallDone)):
                        started = True
                        await clock.first()
                    if isinstance(event, TextDelta):
                        for piece in tokens(event.text):
                            await self._text(response, piece, emit)
                            await clock.next()
                    elif isinstance(event, ToolCallStarted):
                        await self._open_call(response, event.call_id, event.name, emit)
                    elif isinstance(event, ToolCallDelta):
                        call = await self._open_call(response, event.call_id, "", emit)
                        for piece in tokens(event.delta):
                            call["arguments"] += piece
                            response.output_tokens += 1
                            await emit({"type": "response.function_call_arguments.delta", "response_id": response.id,
                                        "item_id": call["id"], "output_index": call["index"],
                                        "call_id": call["call_id"], "delta": piece})
                            await clock.next()
                    elif isinstance(event, ToolCallDone):
                        call = await self._open_call(response, event.call_id, event.name, emit)
                        await self._close_item(response, emit, "completed", arguments=event.arguments)
                    elif isinstance(event, StreamError):
                        failure = {"type": "server_error", "code": event.code, "message": event.message}
                        break
                    elif isinstance(event, ResponseDone):
                        break
            finally:
                await stream.aclose()
            await self._close_item(response, emit, "completed" if failure is None else "incomplete")
            response.status = "completed" if failure is None else "failed"
            await self._finish(response, emit, {"type": "failed", "error": failure} if failure else None)
        except asyncio.CancelledError:
            if not response.cancel_requested:
                raise
            response.status = "cancelled"
            with contextlib.suppress(_DroppedError, ConnectionClosed):
                await self._close_item(response, emit, "incomplete")
                await self._finish(response, emit, {"type": "cancelled", "reason": "client_cancelled"})
        except (_DroppedError, ConnectionClosed):
            pass
        except Exception as exc:  # a backend failure is reported to the client as a failed response
            log.exception("backend failed during a response")
            response.status = "failed"
            with contextlib.suppress(_DroppedError, ConnectionClosed):
                await self._close_item(response, emit, "incomplete")
                await self._finish(response, emit, {"type": "failed", "error": {
                    "type": "server_error", "code": "server_error", "message": f"The backend failed: {exc}"}})
        finally:
            if self.active is response:
                self.active = None

    async def _finish(self, response: _Response, emit: Emit,
                      details: dict[str, Any] | None) -> None:
        usage = {"total_tokens": response.input_tokens + response.output_tokens,
                 "input_tokens": response.input_tokens, "output_tokens": response.output_tokens,
                 "input_token_details": {"text_tokens": response.input_tokens, "audio_tokens": 0, "image_tokens": 0,
                                         "cached_tokens": 0},
                 "output_token_details": {"text_tokens": response.output_tokens, "audio_tokens": 0}}
        final = response.resource(self.conversation_id, usage, details)
        self.responses.append(final)
        self.active = None  # a new response may be created as soon as response.done is out
        await emit({"type": "response.done", "response": final})
        remaining = max(0, 40_000 - response.input_tokens - response.output_tokens)
        await emit({"type": "rate_limits.updated", "rate_limits": [
            {"name": "requests", "limit": 5000, "remaining": 4999, "reset_seconds": 0.012},
            {"name": "tokens", "limit": 40_000, "remaining": remaining, "reset_seconds": 0.5}]})

    async def _open_item(self, response: _Response, item: dict[str, Any],
                         emit: Emit) -> dict[str, Any]:
        item = {"id": _id("item"), "object": "realtime.item", "status": "in_progress", **item}
        response.output.append(item)
        response.open_item = item
        index = len(response.output) - 1
        previous = self.items[-1]["id"] if self.items else None
        self.items.append(item)
        self._created[item["id"]] = time.time()
        await emit({"type": "response.output_item.added", "response_id": response.id, "output_index": index,
                    "item": dict(item, content=[]) if "content" in item else dict(item)})
        await emit({"type": "conversation.item.added", "previous_item_id": previous,
                    "item": dict(item, content=[]) if "content" in item else dict(item)})
        return item

    async def _text(self, response: _Response, piece: str, emit: Emit) -> None:
        item = response.open_item
        if item is None or item.get("type") != "message":
            await self._close_item(response, emit, "completed")
            item = await self._open_item(response, {"type": "message", "role": "assistant", "content": []}, emit)
            item["content"] = [{"type": "output_text", "text": ""}]
            await emit({"type": "response.content_part.added", "response_id": response.id, "item_id": item["id"],
                        "output_index": response.output.index(item), "content_index": 0,
                        "part": {"type": "text", "text": ""}})
        item["content"][0]["text"] += piece
        response.text.append(piece)
        response.output_tokens += 1
        await emit({"type": "response.output_text.delta", "response_id": response.id, "item_id": item["id"],
                    "output_index": response.output.index(item), "content_index": 0, "delta": piece})

    async def _open_call(self, response: _Response, backend_id: str, name: str,
                         emit: Emit) -> dict[str, Any]:
        call = response.calls.get(backend_id)
        if call is not None:
            return call
        await self._close_item(response, emit, "completed")
        item = await self._open_item(response, {"type": "function_call", "name": name, "call_id": _id("call"),
                                                "arguments": ""}, emit)
        call = response.calls[backend_id] = {"id": item["id"], "call_id": item["call_id"], "index":
                                             len(response.output) - 1, "item": item}
        call["arguments"] = ""
        return call

    async def _close_item(self, response: _Response, emit: Emit, status: str,
                          arguments: str | None = None) -> None:
        """Finish the open output item (text: ``.done`` events; call: ``arguments.done`` only when complete)."""
        item = response.open_item
        if item is None:
            return
        response.open_item = None
        index = response.output.index(item)
        common = {"response_id": response.id, "item_id": item["id"], "output_index": index}
        if item["type"] == "message":
            text = item["content"][0]["text"] if item["content"] else ""
            await emit({"type": "response.output_text.done", **common, "content_index": 0, "text": text})
            await emit({"type": "response.content_part.done", **common, "content_index": 0,
                        "part": {"type": "text", "text": text}})
        else:
            call = next(c for c in response.calls.values() if c["id"] == item["id"])
            item["arguments"] = call["arguments"] if arguments is None else arguments
            if status == "completed":
                await emit({"type": "response.function_call_arguments.done", **common, "call_id": item["call_id"],
                            "name": item["name"], "arguments": item["arguments"]})
        item["status"] = status
        await emit({"type": "response.output_item.done", **common, "item": dict(item)})
        await emit({"type": "conversation.item.done", "previous_item_id": _previous(self.items, item),
                    "item": dict(item)})

    async def close(self) -> None:
        """Stop the active response (the connection is gone)."""
        response = self.active
        if response is not None and response.task is not None:
            response.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await response.task


def _previous(items: list[dict[str, Any]], item: dict[str, Any]) -> str | None:
    index = next((i for i, other in enumerate(items) if other is item), 0)
    return items[index - 1]["id"] if index > 0 else None


def _merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        merged[key] = _merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key),
                                                                                        dict) else value
    return merged


def _default_session(model: str) -> dict[str, Any]:
    fmt = {"type": "audio/pcm", "rate": 24000}
    return {"type": "realtime", "object": "realtime.session", "id": _id("sess"), "model": model,
            "output_modalities": ["audio"], "instructions": DEFAULT_INSTRUCTIONS, "tools": [], "tool_choice": "auto",
            "max_output_tokens": "inf", "tracing": None, "truncation": "auto", "prompt": None, "include": None,
            "expires_at": int(time.time()) + 3600,
            "audio": {"input": {"format": fmt, "transcription": None, "noise_reduction": None,
                                "turn_detection": {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300,
                                                   "silence_duration_ms": 200, "idle_timeout_ms": None,
                                                   "create_response": True, "interrupt_response": True}},
                      "output": {"format": fmt, "voice": "alloy", "speed": 1.0}}}


PART_TYPES = {"user": ("input_text", "input_image", "input_audio"), "assistant": ("output_text", "output_audio"),
              "system": ("input_text",)}


def _check_item(item: Any) -> tuple[str, str, str] | None:
    """(code, message, param) of what is wrong with a created item, or None."""
    if not isinstance(item, dict):
        return "missing_required_parameter", "Missing required parameter: 'item'.", "item"
    kind = item.get("type")
    if kind == "message":
        role = item.get("role")
        if role not in PART_TYPES:
            return "invalid_value", f"Invalid value: '{role}'. Supported values are: 'user', 'assistant' and " \
                "'system'.", "item.role"
        content = item.get("content")
        if not isinstance(content, list):
            return "missing_required_parameter", "Missing required parameter: 'item.content'.", "item.content"
        for index, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") not in PART_TYPES[role]:
                return "invalid_value", f"Invalid content part type for a {role} message; expected one of " \
                    + ", ".join(PART_TYPES[role]) + ".", f"item.content[{index}].type"
        return None
    if kind == "function_call_output":
        for key in ("call_id", "output"):
            if not isinstance(item.get(key), str):
                return "missing_required_parameter", f"Missing required parameter: 'item.{key}'.", f"item.{key}"
        return None
    if kind == "function_call":
        for key in ("name", "arguments"):
            if not isinstance(item.get(key), str):
                return "missing_required_parameter", f"Missing required parameter: 'item.{key}'.", f"item.{key}"
        return None
    return "invalid_value", f"Invalid value: '{kind}'. Supported values are: 'message', 'function_call' and " \
        "'function_call_output'.", "item.type"


def _decode_data_url(url: str) -> bytes | None:
    head, _, data = url.partition(",")
    if not head.startswith("data:") or not head.endswith(";base64"):
        return None
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return None


def _http_error(connection: ServerConnection, status: HTTPStatus, code: str, message: str) -> Response:
    body = json.dumps({"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}})
    response = connection.respond(status, body + "\n")
    del response.headers["Content-Type"]
    response.headers["Content-Type"] = "application/json"
    return response


class RealtimeEndpoint:
    """A local Realtime API (GA) server backed by a ``Backend``.

    Args:
        backend: answers each ``response.create``
        host: interface to bind (loopback by default)
        port: TCP port; 0 picks a free one
        api_key: the key clients must present; None accepts any bearer token
        pacing: timing applied to every response (time to first token, tokens per second)
        faults: misbehaviour to inject (may be replaced while running)
        model: the model reported when the URL names none

    Use ``start()``/``stop()`` (or ``with``) to run it on its own thread, or
    ``await serve()`` on a running loop. ``url`` is the base URL for the SDK
    (``OPENAI_BASE_URL``).
    """

    def __init__(self, backend: Backend, host: str = "127.0.0.1", port: int = 0, api_key: str | None = None,
                 pacing: Pacing | None = None, faults: Faults | None = None, model: str = DEFAULT_MODEL,
                 transcriber: Any = None):
        self.backend = backend
        self.transcriber = transcriber
        self._transcriber_lock = threading.Lock()
        self.host = host
        self.port = port
        self.api_key = api_key
        self.pacing = pacing or Pacing()
        self.faults = faults
        self.model = model
        self.connections: list[RealtimeConnection] = []
        self.requests: list[TurnRequest] = []
        self._responses = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"RealtimeEndpoint(url={self.url!r}, backend={type(self.backend).__name__})"

    @property
    def url(self) -> str:
        """Base URL for clients, e.g. ``http://127.0.0.1:8765/v1`` (``http://[::1]:8765/v1`` for IPv6)."""
        return f"http://{url_host(self.host)}:{self.port}/v1"

    @property
    def last(self) -> RealtimeConnection:
        """The newest connection (raises ``IndexError`` if none yet)."""
        return self.connections[-1]

    def transcribe(self, pcm: bytes, session: Mapping[str, Any]) -> str:
        """Text of committed 24 kHz PCM audio, by the offline recogniser (called on a worker thread).

        Without a ``transcriber``, one is made on first use: pocketsphinx with the
        backend's command grammar (the local planner's), or with a grammar of the
        session's tools.
        """
        import numpy as np

        from vla_bt.speech.audio import SAMPLE_RATE, resample
        from vla_bt.speech.vad import VoiceActivity

        with self._transcriber_lock:
            if self.transcriber is None:
                from vla_bt.speech.recognizer import SphinxRecognizer

                grammar = getattr(self.backend, "grammar", None)
                if grammar is None:
                    from vla_bt.intent.grammar import Grammar

                    tools = [ToolSpec(str(t["name"]), str(t.get("description", "")), dict(t.get("parameters") or {}))
                             for t in session.get("tools") or [] if isinstance(t, dict) and t.get("name")]
                    grammar = Grammar(None, tools)
                self.transcriber = SphinxRecognizer(grammar)
            transcriber = self.transcriber
        samples = np.frombuffer(pcm[:len(pcm) - len(pcm) % 2], dtype="<i2").astype(np.float32) / 32768.0
        samples = resample(samples, AUDIO_RATE, SAMPLE_RATE)
        found = VoiceActivity().trim(samples)
        if found is None:
            return ""
        return str(transcriber.transcribe(found[0]))

    def _next_response_index(self) -> int:
        self._responses += 1
        return self._responses - 1

    # -- handshake and connection ------------------------------------------------------------

    def _check(self, connection: ServerConnection, request: Request) -> Response | None:
        path = urlsplit(request.path).path.rstrip("/")
        if not path.endswith("/realtime"):
            return _http_error(connection, HTTPStatus.NOT_FOUND, "not_found", f"Invalid URL (GET {path}).")
        auth = request.headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return _http_error(connection, HTTPStatus.UNAUTHORIZED, "missing_api_key",
                               "You didn't provide an API key (Authorization: Bearer KEY).")
        if self.api_key is not None and not hmac.compare_digest(token.strip().encode(), self.api_key.encode()):
            return _http_error(connection, HTTPStatus.UNAUTHORIZED, "invalid_api_key", "Incorrect API key provided.")
        return None

    async def _handler(self, ws: ServerConnection) -> None:
        request = ws.request
        assert request is not None
        beta = request.headers.get("OpenAI-Beta", "")
        if "realtime=v1" in beta.replace(" ", "").lower():
            await ws.close(BETA_CLOSE_CODE, "beta_api_shape_disabled: the beta Realtime protocol "
                                            "(OpenAI-Beta: realtime=v1) is not supported; use the GA protocol")
            return
        model = (parse_qs(urlsplit(request.path).query).get("model") or [self.model])[0]
        conn = RealtimeConnection(self, ws, model)
        self.connections.append(conn)
        try:
            await conn.send({"type": "session.created", "session": conn.session})
            async for message in ws:
                await conn.handle(message)
        except ConnectionClosed:
            pass
        finally:
            await conn.close()

    def drop_connections(self, code: int | None = None, timeout: float = 5.0) -> None:
        """Close every open client connection from another thread: abruptly (1006), or with ``code``."""
        if self._loop is None:
            raise RuntimeError("the endpoint is not running")

        async def drop() -> None:
            for conn in self.connections:
                if code is None:
                    if conn.ws.transport is not None:
                        conn.ws.transport.abort()
                else:
                    with contextlib.suppress(ConnectionClosed):
                        await conn.ws.close(code, "closed by the endpoint")

        asyncio.run_coroutine_threadsafe(drop(), self._loop).result(timeout)

    # -- running -----------------------------------------------------------------------------------

    async def serve(self, ready: Callable[[int], None] | None = None) -> None:
        """Serve until ``stop()`` (or until cancelled).

        Args:
            ready: called with the bound port once clients can connect
        """
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        await self.backend.open()
        try:
            async with serve(self._handler, self.host, self.port, process_request=self._check,
                             max_size=MAX_MESSAGE_BYTES, compression=None) as server:
                self.port = server.sockets[0].getsockname()[1]
                if ready is not None:
                    ready(self.port)
                await self._stopping.wait()
        finally:
            await self.backend.close()

    def start(self, timeout: float = 10.0) -> int:
        """Run on a thread with its own loop.

        Returns:
            the bound port
        """
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            try:
                asyncio.run(self.serve(lambda port: started.set()))
            except BaseException as exc:  # noqa: BLE001 - handed to start()
                failure.append(exc)
                started.set()

        self._thread = threading.Thread(target=run, name="vla-bt-realtime-endpoint", daemon=True)
        self._thread.start()
        if not started.wait(timeout):
            raise TimeoutError(f"the Realtime endpoint did not start within {timeout:g} s")
        if failure:
            raise RuntimeError(f"the Realtime endpoint could not start on {self.host}:{self.port}: {failure[0]}")
        return self.port

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving and join the thread (idempotent)."""
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stopping.set)
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> RealtimeEndpoint:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_forever(host: str, port: int, backend: Backend, pacing: Pacing | None = None,
                  api_key: str | None = None) -> None:
    """Serve the Realtime protocol until interrupted (``vla-bt serve-realtime``).

    Args:
        host: interface to bind
        port: TCP port (0 picks a free one; the line printed names it)
        backend: answers the responses
        pacing: timing of every response
        api_key: the key clients must present (None accepts any)
    """
    endpoint = RealtimeEndpoint(backend, host=host, port=port, api_key=api_key, pacing=pacing)

    def ready(bound: int) -> None:
        where = url_host(host)
        print(f"Realtime endpoint (GA protocol) on ws://{where}:{bound}/v1/realtime — "
              f"set OPENAI_BASE_URL=http://{where}:{bound}/v1", file=sys.stderr, flush=True)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(endpoint.serve(ready))
