"""A local OpenAI-compatible Chat Completions server that streams planned responses.

It speaks the wire format of ``POST /v1/chat/completions`` with
``stream: true`` the way OpenAI's service does: Server-Sent Events over a
chunked HTTP/1.1 body, one ``chat.completion.chunk`` object per ``data:``
frame, ending with ``data: [DONE]``::

    data: {"id": "chatcmpl-…", "object": "chat.completion.chunk", "choices": [{"index": 0,
           "delta": {"role": "assistant", "content": null, "tool_calls": [{"index": 0,
           "id": "call_…", "type": "function", "function": {"name": "navigate", "arguments": ""}}],
           "refusal": null}, "logprobs": null, "finish_reason": null}], …}
    data: {… "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{\\"target"}}]} …}
    …
    data: {… "delta": {}, "finish_reason": "tool_calls" …}
    data: {… "choices": [], "usage": {"prompt_tokens": …, "completion_tokens": …, …}}
    data: [DONE]

Each request takes the next ``PlannedResponse`` (text and tool calls, streamed
in token-sized pieces; a planned ``error`` is sent as an in-stream error
event). Every request body and its headers are recorded for inspection, and
faults can be injected per request (``Fault``): an HTTP error status with an
OpenAI-style error body, a connection dropped after N frames, a body that ends
cleanly but early, a stall, or a response cut off at the token limit.

Use::

    with ChatServer([PlannedResponse(text="Hello")], fault=Fault(drop_after=3)) as server:
        backend = ChatBackend("local-model", base_url=server.base_url)
        ...
        server.requests        # the request bodies, parsed
"""

from __future__ import annotations

import http.server
import json
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from vla_bt.llm.pacing import tokens
from vla_bt.llm.scripted import PlannedCall, PlannedResponse

__all__ = ["ChatServer", "Fault", "PlannedCall", "PlannedResponse", "chunk_frames"]

_ERROR_TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 403: "permission_error",
                404: "invalid_request_error", 429: "rate_limit_error"}
_ERROR_CODES = {401: "invalid_api_key", 403: "permission_denied", 404: "model_not_found",
                429: "rate_limit_exceeded", 500: "server_error"}


@dataclass(frozen=True)
class Fault:
    """Something going wrong with one response.

    Args:
        status: answer with this HTTP status and an OpenAI-style error body instead of a stream
            (401's message repeats the key the client sent, the worst a server could do)
        error_code: the error body's ``code`` (a sensible default per status)
        error_message: the error body's ``message``
        drop_after: send this many SSE frames, then close the socket mid-body (no chunked terminator)
        end_after: send this many SSE frames, then end the body cleanly (no finish_reason, no ``[DONE]``)
        stall_after: send this many SSE frames, then go silent for ``stall_s`` (or until ``release()``)
        stall_s: how long a stall lasts
        stall_headers: stall before even sending the response headers
        length_after: stop generating after this many content frames with ``finish_reason: length``
    """

    status: int | None = None
    error_code: str | None = None
    error_message: str | None = None
    drop_after: int | None = None
    end_after: int | None = None
    stall_after: int | None = None
    stall_s: float = 30.0
    stall_headers: bool = False
    length_after: int | None = None


def _chunk(completion_id: str, created: int, model: str, include_usage: bool,
           delta: Mapping[str, Any] | None, finish_reason: str | None = None) -> dict[str, Any]:
    chunk: dict[str, Any] = {
        "id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
        "service_tier": "default", "system_fingerprint": "fp_local",
        "choices": [{"index": 0, "delta": dict(delta or {}), "logprobs": None, "finish_reason": finish_reason}],
    }
    if include_usage:
        chunk["usage"] = None
    chunk["obfuscation"] = secrets.token_urlsafe(6)  # OpenAI pads chunks with a random field; clients ignore it
    return chunk


def chunk_frames(response: PlannedResponse, *, model: str = "local-model", include_usage: bool = True,
                 prompt_tokens: int = 0, length_after: int | None = None) -> list[dict[str, Any]]:
    """The ``chat.completion.chunk`` objects a response is streamed as, in order (without ``[DONE]``).

    Args:
        response: the planned text and tool calls
        model: the model name echoed in every chunk
        include_usage: add ``usage: null`` to every chunk and a final usage chunk (``stream_options``)
        prompt_tokens: reported in the usage chunk
        length_after: cut the response off after this many content frames with ``finish_reason: length``

    Returns:
        the chunks: the role frame, content frames, the finish frame and (with usage) the usage frame
    """
    completion_id = "chatcmpl-" + secrets.token_hex(12)
    created = int(time.time())

    def chunk(delta: Mapping[str, Any] | None, finish: str | None = None) -> dict[str, Any]:
        return _chunk(completion_id, created, model, include_usage, delta, finish)

    body: list[dict[str, Any]] = []
    pieces = list(tokens(response.text))
    if pieces or not response.tool_calls:
        body.append(chunk({"role": "assistant", "content": "", "refusal": None}))
        body.extend(chunk({"content": piece}) for piece in pieces)
    for index, call in enumerate(response.tool_calls):
        start = {"index": index, "id": "call_" + secrets.token_hex(12), "type": "function",
                 "function": {"name": call.name, "arguments": ""}}
        first = {"tool_calls": [start]}
        if not body:
            first = {"role": "assistant", "content": None, "tool_calls": [start], "refusal": None}
        body.append(chunk(first))
        body.extend(chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
                    for piece in tokens(call.arguments))
    finish = "tool_calls" if response.tool_calls else "stop"
    if length_after is not None and length_after + 1 < len(body):
        body, finish = body[:length_after + 1], "length"
    frames = [*body, chunk({}, finish)]
    if include_usage:
        completion_tokens = len(body) - 1
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                 "total_tokens": prompt_tokens + completion_tokens,
                 "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                 "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                               "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}
        frames.append({**chunk(None), "choices": [], "usage": usage})
    return frames


@dataclass
class _Exchange:
    """What one request asked and what happened to its answer."""

    body: dict[str, Any]
    headers: dict[str, str]
    frames_sent: int = 0
    aborted: bool = False  # the client closed the connection before the end


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep the test output clean

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/v1/models":
            model = {"id": self.server.chat.model, "object": "model", "created": 0, "owned_by": "local"}
            self._json(200, {"object": "list", "data": [model]})
        else:
            self._error(404, "not_found", f"no route for GET {self.path}")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._error(404, "not_found", f"no route for POST {self.path}")
            return
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            self._error(400, "invalid_json", "the request body is not JSON")
            return
        self.server.chat._serve(self, body)

    # -- writing ---------------------------------------------------------------------------------------------

    def _json(self, status: int, payload: Mapping[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-request-id", "req_" + secrets.token_hex(8))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, code: str | None, message: str) -> None:
        self._json(status, {"error": {"message": message, "type": _ERROR_TYPES.get(status, "server_error"),
                                      "param": None, "code": code}})

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("x-request-id", "req_" + secrets.token_hex(8))
        self.end_headers()
        self.wfile.flush()

    def _send_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _end_body(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _drop(self) -> None:
        """Close the connection abruptly, in the middle of the chunked body."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    chat: ChatServer


class ChatServer:
    """An OpenAI-compatible streaming Chat Completions endpoint on ``127.0.0.1`` (a free port).

    Args:
        responses: one per request, in order; a request beyond them gets HTTP 400 ``script_exhausted``
        model: the model name it serves (reported by ``GET /v1/models``)
        chunk_delay: seconds between SSE frames (0: as fast as possible)
        fault: a fault applied to every request (unless ``faults`` names one for it)
        faults: faults by request index (0 is the first request)

    Use it as a context manager or call ``start()`` and ``stop()``; ``base_url``
    ends in ``/v1``, as the ``openai`` SDK expects.
    """

    def __init__(self, responses: Sequence[PlannedResponse] = (), *, model: str = "local-model",
                 chunk_delay: float = 0.0, fault: Fault | None = None, faults: Mapping[int, Fault] | None = None):
        self.responses = list(responses)
        self.model = model
        self.chunk_delay = chunk_delay
        self.fault = fault
        self.faults = dict(faults or {})
        self.exchanges: list[_Exchange] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._released = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- life cycle ------------------------------------------------------------------------------------------

    def start(self) -> ChatServer:
        """Bind and serve in a daemon thread; returns itself."""
        self._httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.chat = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="chat-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; stalled responses end at once."""
        self._stopping.set()
        self._released.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> ChatServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "the server is not started"
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``."""
        return f"http://127.0.0.1:{self.port}/v1"

    def release(self) -> None:
        """End every stall now (and let later ones pass without stalling)."""
        self._released.set()

    # -- what was asked --------------------------------------------------------------------------------------

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Every request body received, in order (parsed JSON)."""
        with self._lock:
            return [exchange.body for exchange in self.exchanges]

    def wait_for(self, predicate: Callable[[ChatServer], Any], timeout: float = 5.0) -> bool:
        """Poll ``predicate(self)`` until it holds or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self):
                return True
            time.sleep(0.01)
        return bool(predicate(self))

    # -- serving ---------------------------------------------------------------------------------------------

    def _serve(self, handler: _Handler, body: dict[str, Any]) -> None:
        exchange = _Exchange(body=body, headers={k.lower(): v for k, v in handler.headers.items()})
        with self._lock:
            index = len(self.exchanges)
            self.exchanges.append(exchange)
        fault = self.faults.get(index, self.fault) or Fault()
        try:
            if fault.stall_headers:
                self._stall(fault.stall_s)
            if fault.status is not None:
                self._fail(handler, fault, body)
                return
            if not body.get("stream"):
                handler._error(400, "stream_required", "this server only answers streaming requests (stream: true)")
                return
            if index >= len(self.responses):
                handler._error(400, "script_exhausted", f"no planned response left ({len(self.responses)} planned)")
                return
            response = self.responses[index]
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            prompt_tokens = sum(1 for _ in tokens(json.dumps(body.get("messages", []))))
            handler._start_stream()
            for data in self._frames(response, body, include_usage, prompt_tokens, fault):
                if exchange.frames_sent == fault.drop_after:
                    handler._drop()
                    return
                if exchange.frames_sent == fault.end_after:
                    handler._end_body()
                    return
                if exchange.frames_sent == fault.stall_after:
                    self._stall(fault.stall_s)
                if exchange.frames_sent and self.chunk_delay:
                    self._stopping.wait(self.chunk_delay)
                handler._send_chunk(data)
                exchange.frames_sent += 1
            handler._end_body()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            exchange.aborted = True
            handler.close_connection = True

    def _frames(self, response: PlannedResponse, body: Mapping[str, Any], include_usage: bool,
                prompt_tokens: int, fault: Fault) -> Iterator[bytes]:
        model = str(body.get("model", self.model))
        if response.error:
            code, message = response.error
            first = chunk_frames(PlannedResponse(text=""), model=model, include_usage=include_usage)[0]
            yield b"data: " + json.dumps(first).encode() + b"\n\n"
            error = {"error": {"message": message, "type": "server_error", "param": None, "code": code}}
            yield b"data: " + json.dumps(error).encode() + b"\n\n"
            return
        for chunk in chunk_frames(response, model=model, include_usage=include_usage,
                                  prompt_tokens=prompt_tokens, length_after=fault.length_after):
            yield b"data: " + json.dumps(chunk).encode() + b"\n\n"
        yield b"data: [DONE]\n\n"

    def _stall(self, seconds: float) -> None:
        self._released.wait(seconds)

    def _fail(self, handler: _Handler, fault: Fault, body: Mapping[str, Any]) -> None:
        status = int(fault.status or 500)
        message = fault.error_message
        if message is None and status == 401:
            sent = handler.headers.get("Authorization", "").removeprefix("Bearer ").strip()
            message = (f"Incorrect API key provided: {sent}. You can find your API key at "
                       "https://platform.openai.com/account/api-keys.")
        elif message is None and status == 404:
            message = f"The model `{body.get('model')}` does not exist or you do not have access to it."
        handler._error(status, fault.error_code or _ERROR_CODES.get(status), message or f"HTTP {status}")
