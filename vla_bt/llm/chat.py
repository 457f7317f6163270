"""``--llm chat``: any OpenAI-compatible streaming Chat Completions server.

vLLM, the llama.cpp server, Ollama and OpenAI itself all speak
``POST /v1/chat/completions`` with ``stream: true``: Server-Sent Events, one
``chat.completion.chunk`` per frame, tool calls streamed as deltas keyed by
``index``. ``ChatBackend`` talks to them through the official ``openai`` SDK
and turns the chunks into the project's normalised events:

==========================================  ==========================================
chunk                                       event
==========================================  ==========================================
``delta.content`` (or ``delta.refusal``)    ``TextDelta``
a tool call ``index`` not seen before       ``ToolCallDone`` for the call before it, then
                                            ``ToolCallStarted`` (id and name come with it)
``function.arguments`` pieces               ``ToolCallDelta``
``finish_reason``                           ``ToolCallDone`` for the open call (not on
                                            ``length``: its arguments were cut off)
the stream's end                            ``ResponseDone`` (``completed``, or
                                            ``incomplete`` for ``length``) with usage
an HTTP error, a broken or stalled stream   ``StreamError`` (never a ``ToolCallDone`` for
                                            a call whose arguments did not finish)
==========================================  ==========================================

Chat Completions is stateless: every request carries the whole conversation.
The backend rebuilds it from the ``TurnRequest`` (system instructions with
the perception summary, the dialogue as user and assistant messages, camera
frames as ``image_url`` parts of the newest user message) and remembers the
tool calls of its previous response, which it replays as an assistant message
with ``tool_calls`` followed by one ``tool`` message per call carrying its
result from ``request.tool_results``.

Configuration follows the SDK: ``api_key`` and ``base_url`` arguments, else
``OPENAI_API_KEY`` and ``OPENAI_BASE_URL``; local servers that check no key
get a placeholder. The key never appears in an event, a message or a log.
"""

from __future__ import annotations

import base64
import html
import os
import re
import urllib.parse
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import openai

from .backend import Backend, BackendError, ToolResult, TurnRequest
from .events import ResponseDone, StreamError, StreamEvent, TextDelta, ToolCallDelta, ToolCallDone, ToolCallStarted

NO_KEY = "not-needed"
"""The API key sent when none is configured (local servers check none; the SDK insists on one)."""

DEFAULT_TIMEOUT = 60.0
"""Seconds to wait for the connection, and for each piece of the stream (a local server loading a model is slow)."""

INCOMPLETE_REASONS = frozenset({"length", "content_filter"})
"""``finish_reason`` values that mean the answer was cut off."""

_KEYLIKE = re.compile(r"\b(?:sk|pk|rk)-[A-Za-z0-9_*.\-]{3,}|(?i:bearer)\s+\S+")


@dataclass
class _Call:
    """A tool call being assembled from deltas."""

    call_id: str
    name: str = ""
    arguments: list[str] = field(default_factory=list)
    real_id: bool = False
    started: bool = False
    done: bool = False


class ChunkAssembler:
    """Turns the ``chat.completion.chunk`` objects of one response into normalised events.

    Args:
        call_prefix: prefix of the ids made up for tool calls a server streams without one

    Feed it every chunk in order (``feed``); it keeps the text, the finish
    reason and the usage for the final ``ResponseDone`` (``done``). Only the
    first choice is read (the backend never asks for ``n > 1``).
    """

    def __init__(self, call_prefix: str = "call"):
        self.call_prefix = call_prefix
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] = {}
        self.completed: list[ToolCallDone] = []
        self._text: list[str] = []
        self._calls: dict[int, _Call] = {}
        self._open: _Call | None = None
        self._next_index = 0

    @property
    def text(self) -> str:
        """The text answer so far."""
        return "".join(self._text)

    @property
    def status(self) -> str:
        """``completed``, or ``incomplete`` when the server cut the answer off."""
        return "incomplete" if self.finish_reason in INCOMPLETE_REASONS else "completed"

    def feed(self, chunk: Any) -> list[StreamEvent]:
        """The events one chunk gives (often none or one).

        Args:
            chunk: a ``ChatCompletionChunk`` (or anything with the same attributes)

        Returns:
            the events, in order
        """
        events: list[StreamEvent] = []
        usage = getattr(chunk, "usage", None)
        if usage is not None:
            self.usage = _usage(usage)
        choices = getattr(chunk, "choices", None) or []
        if not choices or self.finish_reason is not None:
            return events
        choice = choices[0]
        delta = getattr(choice, "delta", None)
        if delta is not None:
            for piece in (getattr(delta, "content", None), getattr(delta, "refusal", None)):
                if isinstance(piece, str) and piece:
                    self._text.append(piece)
                    events.append(TextDelta(text=piece))
            for tool_call in getattr(delta, "tool_calls", None) or []:
                events.extend(self._tool_call(tool_call))
        finish = getattr(choice, "finish_reason", None)
        if finish:
            self.finish_reason = str(finish)
            if self.finish_reason not in INCOMPLETE_REASONS:
                events.extend(self._close_open())
        return events

    def done(self) -> ResponseDone:
        """The ``ResponseDone`` for a stream that ended after its ``finish_reason``."""
        return ResponseDone(status=self.status, text=self.text, usage=dict(self.usage))

    def _tool_call(self, tool_call: Any) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        index = getattr(tool_call, "index", None)
        call_id = getattr(tool_call, "id", None) or None
        function = getattr(tool_call, "function", None)
        name = getattr(function, "name", None) or ""
        arguments = getattr(function, "arguments", None) or ""
        call = self._calls.get(index) if isinstance(index, int) else self._open
        if call is not None and call_id and call.real_id and call_id != call.call_id and call.started:
            call = None  # a server that numbers every call 0: a new id is a new call
        if call is None:
            events.extend(self._close_open())
            if not isinstance(index, int) or index in self._calls:
                index = max([self._next_index, *[i + 1 for i in self._calls]])
            self._next_index = index + 1
            call = _Call(call_id=call_id or f"{self.call_prefix}_{index}", real_id=bool(call_id))
            self._calls[index] = call
            self._open = call
        elif call_id and not call.real_id and not call.started:
            call.call_id, call.real_id = call_id, True
        if call.done:
            return events  # a late piece of a call already complete: ignore it
        if name and not call.started:
            call.name = name
        if arguments:
            call.arguments.append(arguments)
        if not call.started and call.name:
            call.started = True
            events.append(ToolCallStarted(call_id=call.call_id, name=call.name))
            buffered = "".join(call.arguments)
            if buffered:
                events.append(ToolCallDelta(call_id=call.call_id, delta=buffered))
        elif call.started and arguments:
            events.append(ToolCallDelta(call_id=call.call_id, delta=arguments))
        return events

    def _close_open(self) -> list[StreamEvent]:
        call, self._open = self._open, None
        if call is None or call.done:
            return []
        events: list[StreamEvent] = []
        if not call.started:  # a call without a name: passed on so validation can refuse it visibly
            call.started = True
            events.append(ToolCallStarted(call_id=call.call_id, name=call.name))
            if call.arguments:
                events.append(ToolCallDelta(call_id=call.call_id, delta="".join(call.arguments)))
        call.done = True
        done = ToolCallDone(call_id=call.call_id, name=call.name, arguments="".join(call.arguments))
        self.completed.append(done)
        events.append(done)
        return events


def _usage(usage: Any) -> dict[str, Any]:
    data = usage.model_dump(exclude_none=True) if hasattr(usage, "model_dump") else dict(usage)
    # The names the other backends report, next to the server's own.
    if "prompt_tokens" in data:
        data.setdefault("input_tokens", data["prompt_tokens"])
    if "completion_tokens" in data:
        data.setdefault("output_tokens", data["completion_tokens"])
    return data


@dataclass
class Exchange:
    """What one response did, kept for the next request (Chat Completions keeps no state).

    Args:
        anchor: the newest dialogue turn when the response was asked for (it answers that turn)
        text: the response's text answer
        calls: its completed tool calls, in order
    """

    anchor: Mapping[str, Any] | None = None
    text: str = ""
    calls: list[ToolCallDone] = field(default_factory=list)


def _image_part(image: bytes) -> dict[str, Any]:
    if image.startswith(b"\x89PNG\r\n\x1a\n"):
        mime = "image/png"
    elif image.startswith(b"\xff\xd8\xff"):
        mime = "image/jpeg"
    elif image[:6] in (b"GIF87a", b"GIF89a"):
        mime = "image/gif"
    elif image[:4] == b"RIFF" and image[8:12] == b"WEBP":
        mime = "image/webp"
    else:
        mime = "application/octet-stream"
    url = f"data:{mime};base64,{base64.b64encode(image).decode('ascii')}"
    return {"type": "image_url", "image_url": {"url": url}}


def _tool_result(item: Any) -> ToolResult:
    """A ``ToolResult``, also from a mapping ``{call_id, output}`` as a blackboard may hold it."""
    if isinstance(item, ToolResult):
        return item
    if isinstance(item, Mapping):
        return ToolResult(call_id=str(item.get("call_id", "")), output=str(item.get("output", "")))
    return ToolResult(call_id=str(getattr(item, "call_id", "")), output=str(getattr(item, "output", item)))


def _same_turn(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return all(a.get(k) == b.get(k) for k in ("role", "text", "t"))


def build_messages(request: TurnRequest, previous: Exchange | None = None) -> list[dict[str, Any]]:
    """The Chat Completions ``messages`` for a turn.

    Args:
        request: the turn
        previous: the previous response's tool calls, replayed with their results

    Returns:
        a system message (instructions and the perception summary); the
        dialogue (``user`` → user, ``robot`` → assistant); after the turn the
        previous response answered, an assistant message with its
        ``tool_calls`` and one ``tool`` message per call (its result, or a note
        that none was reported); camera frames as ``image_url`` parts of the
        newest user message. Results for calls the previous response did not
        make are summarised in the system message rather than dropped.
    """
    calls = list(previous.calls) if previous else []
    known = {call.call_id for call in calls}
    results: dict[str, list[str]] = {}
    stray: list[ToolResult] = []
    for item in request.tool_results:
        result = _tool_result(item)
        if result.call_id in known:
            results.setdefault(result.call_id, []).append(result.output)
        else:
            stray.append(result)

    system = "\n\n".join(part for part in (request.instructions.strip(), request.perception.strip()) if part)
    if stray:
        lines = "\n".join(f"- {result.call_id}: {result.output}" for result in stray)
        system = "\n\n".join(part for part in (system, f"Results of earlier tool calls:\n{lines}") if part)
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []

    history = [turn for turn in request.history if turn.get("role") in ("user", "robot")]
    replay: list[dict[str, Any]] = []
    if calls:
        replay.append({"role": "assistant", "content": (previous.text if previous else "") or None,
                       "tool_calls": [{"id": call.call_id, "type": "function",
                                       "function": {"name": call.name, "arguments": call.arguments}}
                                      for call in calls]})
        replay.extend({"role": "tool", "tool_call_id": call.call_id,
                       "content": "\n".join(results.get(call.call_id, [])) or "no result was reported"}
                      for call in calls)
    at = _replay_position(history, previous) if replay else len(history)
    skip = -1
    if replay and previous and previous.text.strip() and at < len(history):
        following = history[at]
        if following.get("role") == "robot" and str(following.get("text", "")).strip() == previous.text.strip():
            skip = at  # the response's own text: already the assistant message's content

    for position, turn in enumerate(history):
        if position == at:
            messages.extend(replay)
        if position == skip:
            continue
        role = "user" if turn.get("role") == "user" else "assistant"
        messages.append({"role": role, "content": str(turn.get("text", ""))})
    if at >= len(history):
        messages.extend(replay)

    if request.images:
        parts = [_image_part(bytes(image)) for image in request.images]
        newest = next((m for m in reversed(messages) if m["role"] == "user"), None)
        if newest is None:
            messages.append({"role": "user", "content": parts})
        else:
            newest["content"] = [{"type": "text", "text": newest["content"]}, *parts]
    return messages


def _replay_position(history: Sequence[Mapping[str, Any]], previous: Exchange | None) -> int:
    """Where the previous response's tool calls go: right after the turn it answered."""
    if previous is not None and previous.anchor is not None:
        for index in range(len(history) - 1, -1, -1):
            if _same_turn(history[index], previous.anchor):
                return index + 1
    # The turn fell out of the bounded history: just before the newest user turn.
    for index in range(len(history) - 1, -1, -1):
        if history[index].get("role") == "user":
            return index
    return len(history)


class ChatBackend(Backend):
    """A streaming OpenAI-compatible Chat Completions server (vLLM, llama.cpp server, Ollama, OpenAI).

    Args:
        model: the model name the server knows (``config/llm.yaml`` ``chat.model``)
        api_key: the key; ``OPENAI_API_KEY`` when not given, ``"not-needed"`` when neither is set
        base_url: the server, ending in ``/v1``; ``OPENAI_BASE_URL`` when not given, else OpenAI's
        timeout: seconds allowed to connect and between two pieces of the stream
        max_retries: the SDK's retries of a request that failed before streaming (connection errors,
            HTTP 408/409/429/5xx), with back-off; a broken stream is never retried
        include_usage: ask for token usage (``stream_options.include_usage``); turn it off for a server
            that rejects ``stream_options``
        options: more request fields sent as they are (``temperature``, ``max_tokens``, a server's own …)

    ``__init__`` touches no network: the SDK client is made in ``open()``
    (``setup()``), on the loop that runs the responses. The backend remembers
    its previous response's tool calls, so one ``ChatBackend`` serves one
    conversation.
    """

    name = "chat"

    def __init__(self, model: str, *, api_key: str | None = None, base_url: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT, max_retries: int = 2, include_usage: bool = True,
                 options: Mapping[str, Any] | None = None):
        self.model = model
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.include_usage = include_usage
        self.options = dict(options or {})
        self._api_key = api_key
        self._base_url = base_url
        self._client: openai.AsyncOpenAI | None = None
        self._previous: Exchange | None = None
        self._responses = 0

    def __repr__(self) -> str:
        return f"ChatBackend(model={self.model!r}, base_url={self.where!r})"

    @property
    def where(self) -> str:
        """The server's base URL, without any credentials or query it may carry."""
        url = str(self._client.base_url) if self._client is not None else (
            self._base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1")
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
        return urllib.parse.urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))

    async def open(self) -> None:
        """Make the SDK client (no request is sent).

        Raises:
            BackendError: no model name is configured
        """
        if not self.model or not str(self.model).strip():
            raise BackendError("the chat backend needs a model name: set chat.model in config/llm.yaml")
        self._connect()

    def _connect(self) -> openai.AsyncOpenAI:
        if self._client is None:
            key = self._api_key or os.environ.get("OPENAI_API_KEY") or NO_KEY
            self._client = openai.AsyncOpenAI(
                api_key=key, base_url=self._base_url, max_retries=self.max_retries,
                timeout=openai.Timeout(self.timeout, connect=min(self.timeout, 10.0)))
        return self._client

    async def close(self) -> None:
        """Close the SDK client's connections."""
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    def messages(self, request: TurnRequest) -> list[dict[str, Any]]:
        """The ``messages`` the next response to ``request`` would be asked with (see ``build_messages``)."""
        return build_messages(request, self._previous)

    async def respond(self, request: TurnRequest) -> AsyncIterator[StreamEvent]:
        """Stream one response: text and tool-call events, then ``ResponseDone`` or ``StreamError``.

        Args:
            request: the dialogue, tools, instructions, perception, images and tool results

        Returns:
            an async iterator of events; closing it early closes the HTTP stream
        """
        client = self._connect()
        self._responses += 1
        messages = self.messages(request)
        exchange = Exchange(anchor=dict(request.history[-1]) if request.history else None)
        self._previous = exchange  # from now on, this response is "the previous one"
        assembler = ChunkAssembler(call_prefix=f"call_{self._responses}")
        kwargs: dict[str, Any] = {"model": self.model, "messages": messages, "stream": True}
        if request.tools:
            kwargs["tools"] = [tool.chat() for tool in request.tools]
        if self.include_usage:
            kwargs["stream_options"] = {"include_usage": True}
        if self.options:
            kwargs["extra_body"] = dict(self.options)

        stream: Any = None
        failure: StreamError | None = None
        try:
            try:
                stream = await client.chat.completions.create(**kwargs)
            except openai.OpenAIError as exc:
                failure = self._stream_error(exc, streaming=False)
            if stream is not None:
                chunks = stream.__aiter__()
                while True:
                    try:
                        chunk = await chunks.__anext__()
                    except StopAsyncIteration:
                        break
                    except (openai.OpenAIError, ValueError) as exc:  # ValueError: a frame that is not JSON
                        failure = self._stream_error(exc, streaming=True)
                        break
                    for event in assembler.feed(chunk):
                        if isinstance(event, ToolCallDone):
                            exchange.calls.append(event)
                        yield event
            if failure is not None:
                yield failure
            elif assembler.finish_reason is None:
                yield StreamError(code="stream_truncated",
                                  message=f"{self.where} ended the stream before the response finished "
                                          "(no finish_reason)")
            else:
                exchange.text = assembler.text
                yield assembler.done()
        finally:
            if stream is not None:
                await stream.close()

    # -- errors ----------------------------------------------------------------------------------------------

    def _redact(self, text: str) -> str:
        key = self._client.api_key if self._client is not None else (self._api_key or "")
        if key and key != NO_KEY and len(key) >= 4:
            text = text.replace(key, "[redacted]")
        return _KEYLIKE.sub("[redacted]", text)

    def _stream_error(self, exc: BaseException, streaming: bool) -> StreamError:
        code, message = self._describe(exc, streaming)
        return StreamError(code=code, message=self._redact(message))

    def _describe(self, exc: BaseException, streaming: bool) -> tuple[str, str]:
        where = self.where
        if isinstance(exc, openai.APITimeoutError):
            phase = "the stream went silent" if streaming else "no answer"
            return "timeout", f"{phase}: nothing from {where} for {self.timeout:g} s"
        if isinstance(exc, openai.APIConnectionError):
            detail = _cause(exc)
            if streaming:
                return "connection_lost", f"the connection to {where} broke off mid-response ({detail})"
            if _caused_by(exc, ConnectionRefusedError):
                return "connection_refused", (f"could not connect to {where}: connection refused "
                                              "(is the server running?)")
            return "connection_failed", f"could not connect to {where}: {detail}"
        if isinstance(exc, openai.APIStatusError):
            status, said = exc.status_code, _server_message(exc)
            if status == 401:
                return "invalid_api_key", (f"{where} refused the API key (HTTP 401): {said}; set OPENAI_API_KEY, "
                                           "or leave it unset for a server that needs none")
            if status == 404:
                if (exc.code == "model_not_found" or "model" in said.lower()) and "/chat/completions" not in said:
                    return "model_not_found", (f"model '{self.model}' not found at {where} (HTTP 404): {said}; "
                                               "set chat.model in config/llm.yaml to a model the server serves")
                return "not_found", (f"{where}/chat/completions not found (HTTP 404): {said}; "
                                     "the base URL usually ends in /v1")
            code = exc.code if exc.code and not exc.code.isdigit() else {
                400: "invalid_request", 403: "permission_denied", 429: "rate_limit_exceeded"}.get(
                    status, "server_error" if status >= 500 else f"http_{status}")
            return code, f"{where} answered HTTP {status}: {said}"
        if isinstance(exc, openai.APIError):  # an error event inside the stream
            return exc.code or "server_error", f"{where} reported an error: {_server_message(exc)}"
        if isinstance(exc, ValueError):
            return "bad_response", f"{where} sent a frame that is not a JSON chunk ({exc})"
        return "error", f"{type(exc).__name__}: {exc}"


def _server_message(exc: openai.APIError) -> str:
    body = exc.body
    if isinstance(body, Mapping):
        message = body.get("message") or body.get("error") or body.get("detail")
        if isinstance(message, Mapping):
            message = message.get("message")
        if message:
            return _one_line(str(message))
    if isinstance(body, str) and body.strip():
        return _one_line(body)
    return _one_line(exc.message)


def _one_line(text: str, limit: int = 200) -> str:
    """A server's words fit for one line of a failure reason: an HTML error page becomes its title or text."""
    if re.search(r"<(html|body|head|title|h1)\b", text, re.IGNORECASE):
        title = re.search(r"<title[^>]*>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
        text = title.group(1) if title else re.sub(r"<[^>]*>", " ", text)
        text = html.unescape(text)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _cause(exc: BaseException) -> str:
    """The innermost cause's text (``Connection error.`` says little)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    last = str(exc)
    while current is not None and id(current) not in seen:
        if str(current):
            last = str(current)
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return last
