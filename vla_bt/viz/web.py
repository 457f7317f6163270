"""The live web viewer: a page that shows a running tree, its blackboard, the guards and the world.

``vla-bt run … --viewer [HOST:]PORT`` serves one page and its websocket on a
single port with the ``websockets`` library (plain HTTP requests are answered
in ``process_request``; ``/ws`` is the websocket). No Qt, no browser plugin,
no third-party code in the page.

* ``GET /`` — the page (``vla_bt/viz/static/``): the tree as Graphviz SVG
  (``py_trees.display.dot_tree``) recoloured by status with the running path
  highlighted, every node's status and feedback message, the dialogue, the
  plan steps and their state, the guard trips and other audit events,
  perception, and a top-down picture of the world with the robot, places,
  objects, people, no-go zones and the planned path. A timeline scrubs back
  through the run (and plays recordings: ``vla-bt replay FILE --viewer PORT``).
* ``GET /ws`` — the websocket: a ``hello`` with the header and the frames so
  far, then one ``frame`` per tick with changes (``vla_bt.viz.record``) and an
  ``svg`` whenever the tree's structure changed.
* ``GET /state.json`` — the current state as JSON (for scripts).
* ``GET /frame.png`` — with camera perception (``--perception camera``), the
  latest camera frame with its detections drawn; 404 without a camera or
  before its first frame. The page shows it in its Camera panel.

A post-tick handler takes the snapshot of each tick and hands it to the
asyncio loop of ``AsyncBridge.shared()`` without waiting: the tick never
blocks on a browser, and Graphviz runs in a worker thread.

Security: the viewer binds 127.0.0.1 by default and then accepts only
loopback ``Host`` headers (no DNS rebinding). Binding another address needs a
token (``--viewer-token`` or ``VLA_BT_VIEWER_TOKEN``); the page, the websocket,
``state.json`` and ``frame.png`` then require ``?token=…``. Websocket
``Origin`` must match the page's host. The page runs under a Content Security
Policy that allows only its own scripts.
"""

from __future__ import annotations

import asyncio
import collections
import email.utils
import hmac
import logging
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from vla_bt.llm.bridge import AsyncBridge
from vla_bt.net import is_loopback, url_host

from .record import (
    Snapshotter,
    apply_frame,
    default_keys,
    dumps,
    empty_state,
    header,
    planned_path_of,
)

log = logging.getLogger(__name__)
STATIC = Path(__file__).resolve().parent / "static"
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
TOKEN_ENV = "VLA_BT_VIEWER_TOKEN"
"""Environment variable read for the token when none is given."""
DEFAULT_PORT = 8765
HISTORY = 20_000
"""Frames the live viewer keeps for pages that connect late and for the timeline (older ones are folded)."""
CLIENT_QUEUE_LIMIT = 5_000
"""Messages waiting for one page before it is disconnected as too slow."""
_QUIET = logging.getLogger("vla_bt.viz.web.websockets")
_QUIET.setLevel(logging.CRITICAL)  # aborted browser handshakes are not the user's problem


CameraSource = Callable[[], bytes | None]
"""Returns the latest camera frame as PNG bytes (detections drawn), or None when there is none yet."""


class ViewerError(Exception):
    """The viewer cannot start: a bad address, a missing token, a port in use."""


def parse_address(text: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """``[HOST:]PORT`` → (host, port); IPv6 hosts in brackets (``[::1]:8765``).

    Args:
        text: e.g. ``8765``, ``0.0.0.0:8765``, ``localhost:0``
        default_host: the host when only a port is given

    Returns:
        (host, port)

    Raises:
        ViewerError: not a port, or a port outside 0–65535
    """
    text = text.strip()
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = default_host, text
    elif host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ViewerError(f"--viewer: put an IPv6 address in brackets, e.g. [::1]:8765 (got {text!r})")
    try:
        port = int(port_text)
    except ValueError:
        raise ViewerError(f"--viewer: expected [HOST:]PORT, got {text!r}") from None
    if not 0 <= port <= 65535:
        raise ViewerError(f"--viewer: {port} is not a TCP port (0-65535)")
    return host or default_host, port


def render_svg(dot: str | None, timeout: float = 30.0) -> str | None:
    """Lay a DOT graph out as SVG with Graphviz's ``dot`` (``None`` without Graphviz or on an error).

    Args:
        dot: DOT source
        timeout: seconds allowed for ``dot``

    Returns:
        the ``<svg>`` element's text, without XML prolog and doctype, or ``None``
    """
    program = shutil.which("dot")
    if not dot or program is None:
        return None
    try:
        done = subprocess.run([program, "-Tsvg"], input=dot.encode("utf-8"), capture_output=True,
                              timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("Graphviz failed: %s", exc)
        return None
    if done.returncode != 0:
        log.warning("Graphviz failed: %s", done.stderr.decode("utf-8", "replace").strip())
        return None
    text = done.stdout.decode("utf-8", "replace")
    start = text.find("<svg")
    return text[start:] if start >= 0 else None


def _response(status: int, reason: str, body: bytes, content_type: str,
              extra: dict[str, str] | None = None) -> Response:
    headers = Headers()
    headers["Date"] = email.utils.formatdate(usegmt=True)
    headers["Connection"] = "close"
    headers["Content-Length"] = str(len(body))
    headers["Content-Type"] = content_type
    headers["Cache-Control"] = "no-store"
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "no-referrer"
    for key, value in (extra or {}).items():
        headers[key] = value
    return Response(status, reason, headers, body)


def _text(status: int, reason: str, message: str) -> Response:
    return _response(status, reason, (message + "\n").encode("utf-8"), "text/plain; charset=utf-8")


class Viewer:
    """Serves the viewer page and pushes frames to every open page.

    Args:
        host: interface to bind (127.0.0.1 by default; any other address needs ``token``)
        port: TCP port (0 picks a free one; ``port`` tells which after ``start()``)
        token: required as ``?token=`` by the page, the websocket, ``state.json`` and ``frame.png`` when given
        history: frames kept for late pages and the timeline
        bridge: the asyncio loop to serve on (``AsyncBridge.shared()`` by default)
        camera: the latest camera frame as PNG bytes, served as ``/frame.png`` (``camera_source(robot)``)

    Raises:
        ViewerError: a non-loopback ``host`` without a token

    Example:
        >>> viewer = Viewer(port=0).start()
        >>> viewer.set_header(header(tree=loaded, world=world))
        >>> viewer.publish(snapshotter.capture(tree))     # from the tick thread, never blocks
        >>> viewer.close()
    """

    def __init__(self, host: str = "127.0.0.1", port: int = DEFAULT_PORT, token: str | None = None, *,
                 history: int = HISTORY, bridge: AsyncBridge | None = None, camera: CameraSource | None = None):
        if not is_loopback(host) and not token:
            raise ViewerError(f"the viewer would be reachable from other machines on {host!r}: give a token "
                              f"(--viewer-token TOKEN or {TOKEN_ENV}=TOKEN), or bind 127.0.0.1")
        self.host = host
        self.port = port
        self.token = token or None
        self.mode = "live"
        self.camera = camera
        self._bridge = bridge
        self._server: Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._header: dict[str, Any] | None = None
        self._base = empty_state()
        self._frames: collections.deque[dict[str, Any]] = collections.deque()
        self._history = max(1, int(history))
        self._svgs: dict[int, str | None] = {}
        self._clients: dict[ServerConnection, asyncio.Queue[str]] = {}
        self._assets = {p.name: p for p in STATIC.iterdir() if p.suffix in CONTENT_TYPES} if STATIC.is_dir() else {}
        self._closed = threading.Event()

    # -- life cycle ---------------------------------------------------------------

    def start(self) -> Viewer:
        """Bind and serve (returns at once; the server runs on the bridge's loop).

        Raises:
            ViewerError: the address cannot be bound (in use, not an address of this machine)
        """
        if "index.html" not in self._assets:
            raise ViewerError(f"the viewer page is missing ({STATIC / 'index.html'}): reinstall vla-bt")
        bridge = self._bridge = self._bridge or AsyncBridge.shared()
        self._loop = bridge.loop
        try:
            bridge.run(self._serve(), timeout=10.0)
        except OSError as exc:
            raise ViewerError(f"cannot serve the viewer on {self.host}:{self.port}: {exc.strerror or exc}") from None
        except TimeoutError:
            raise ViewerError(f"cannot serve the viewer on {self.host}:{self.port}: timed out") from None
        return self

    async def _serve(self) -> None:
        self._server = await serve(self._handler, self.host, self.port, process_request=self._http,
                                   logger=_QUIET, max_size=2 ** 16)
        self.port = self._server.sockets[0].getsockname()[1]

    def close(self, timeout: float = 5.0) -> None:
        """Stop serving and disconnect every page (idempotent)."""
        if self._server is None or self._bridge is None or self._closed.is_set():
            return
        self._closed.set()

        async def stop() -> None:
            assert self._server is not None
            self._server.close()
            await self._server.wait_closed()

        try:
            self._bridge.run(stop(), timeout=timeout)
        except (TimeoutError, RuntimeError) as exc:
            log.warning("viewer did not stop cleanly: %s", exc)

    def serve_forever(self) -> None:
        """Block until Ctrl-C or ``close()`` (``vla-bt replay --viewer``)."""
        try:
            while not self._closed.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            self.close()

    @property
    def url(self) -> str:
        """The page's address (with the token)."""
        return f"http://{url_host(self.host)}:{self.port}/" + (f"?token={self.token}" if self.token else "")

    @property
    def clients(self) -> int:
        """Pages connected now."""
        return len(self._clients)

    # -- feeding it (any thread) ------------------------------------------------------

    def _call(self, function: Any, *args: Any) -> None:
        if self._loop is None or self._closed.is_set() or self._loop.is_closed():
            return
        try:
            self._loop.call_soon_threadsafe(function, *args)
        except RuntimeError:  # the loop is shutting down with the process
            pass

    def set_header(self, record: dict[str, Any]) -> None:
        """Tree name, world and keys of the run (the recording's header); thread-safe."""
        self._call(self._on_header, record)

    def publish(self, frame: dict[str, Any] | None) -> None:
        """Send a frame to every page; thread-safe, never blocks (``None`` is ignored)."""
        if frame is not None:
            self._call(self._on_frame, frame)

    def finish(self, result: Any = None) -> None:
        """Tell the pages how the run ended (``RunResult``), thread-safe."""
        end: dict[str, Any] = {"kind": "end", "status": getattr(result, "status", "RUNNING"),
                               "reason": getattr(result, "reason", "")}
        if result is not None:
            end.update(ticks=result.ticks, seconds=round(float(result.seconds), 4))
        end["t"] = round(time.time(), 4)
        self.publish(end)

    def load_recording(self, record_header: dict[str, Any], frames: list[dict[str, Any]]) -> None:
        """Serve a recording for replay: every frame at once, the timeline starts at the beginning.

        Args:
            record_header: the recording's header
            frames: its ``tick`` (and ``end``) records, in order
        """
        if self._loop is None:
            raise ViewerError("start() the viewer before loading a recording")
        done = threading.Event()

        def load() -> None:
            self.mode = "replay"
            self._history = max(self._history, len(frames) + 1)
            self._header = record_header
            self._base, self._frames, self._svgs = empty_state(), collections.deque(), {}
            for frame in frames:
                self._add(frame, broadcast=False)
            done.set()

        self._call(load)
        done.wait(10.0)

    # -- on the loop ----------------------------------------------------------------

    def _on_header(self, record: dict[str, Any]) -> None:
        self._header = record
        self._broadcast({"type": "header", "header": record})

    def _on_frame(self, frame: dict[str, Any]) -> None:
        self._broadcast({"type": "frame", "frame": self._add(frame, broadcast=True)})

    def _add(self, frame: dict[str, Any], broadcast: bool) -> dict[str, Any]:
        tree = frame.get("tree")
        if tree is not None and "dot" in tree:
            tree = dict(tree)
            dot = tree.pop("dot")
            tree.pop("dot_error", None)
            frame = {**frame, "tree": tree}
            self._svgs.setdefault(tree["rev"], None)
            assert self._loop is not None
            self._loop.create_task(self._render(tree["rev"], dot))
        self._frames.append(frame)
        while len(self._frames) > self._history:
            apply_frame(self._base, self._frames.popleft())
            kept = {self._base["rev"], *(f["tree"]["rev"] for f in self._frames if f.get("tree"))}
            for rev in [r for r in self._svgs if r not in kept]:
                del self._svgs[rev]
        return frame

    async def _render(self, rev: int, dot: str | None) -> None:
        assert self._loop is not None
        svg = await self._loop.run_in_executor(None, render_svg, dot)
        self._svgs[rev] = svg
        self._broadcast({"type": "svg", "rev": rev, "svg": svg,
                         "error": None if svg else "no picture (Graphviz's 'dot' is missing or failed)"})

    def _broadcast(self, message: dict[str, Any]) -> None:
        if not self._clients:
            return
        text = dumps(message)
        for connection, queue in list(self._clients.items()):
            if queue.qsize() > CLIENT_QUEUE_LIMIT:
                self._clients.pop(connection, None)
                self._loop.create_task(connection.close(1008, "too slow"))  # type: ignore[union-attr]
                continue
            queue.put_nowait(text)

    def _hello(self) -> dict[str, Any]:
        revs = {self._base["rev"], *(f["tree"]["rev"] for f in self._frames if f.get("tree"))}
        return {"type": "hello", "mode": self.mode, "camera": self.camera is not None,
                "header": self._header, "base": self._base,
                "frames": list(self._frames), "svgs": {str(r): self._svgs[r] for r in revs if self._svgs.get(r)}}

    def state(self) -> dict[str, Any]:
        """The current state folded from every frame (on the loop; see ``state.json``)."""
        state = {**self._base, "status": dict(self._base["status"]), "bb": dict(self._base["bb"]),
                 "audit": list(self._base["audit"])}
        for frame in self._frames:
            apply_frame(state, frame)
        return state

    async def _handler(self, connection: ServerConnection) -> None:
        queue: asyncio.Queue[str] = asyncio.Queue()
        queue.put_nowait(dumps(self._hello()))  # no await before registering: no frame is missed or doubled
        self._clients[connection] = queue
        writer = asyncio.get_running_loop().create_task(self._write(connection, queue))
        try:
            async for _message in connection:
                pass  # the page only listens
        except ConnectionClosed:
            pass
        finally:
            self._clients.pop(connection, None)
            writer.cancel()

    @staticmethod
    async def _write(connection: ServerConnection, queue: asyncio.Queue[str]) -> None:
        try:
            while True:
                await connection.send(await queue.get())
        except ConnectionClosed:
            pass

    # -- HTTP ---------------------------------------------------------------------

    def _token_ok(self, query: dict[str, list[str]]) -> bool:
        if self.token is None:
            return True
        given = (query.get("token") or [""])[0]
        return hmac.compare_digest(given.encode("utf-8"), self.token.encode("utf-8"))

    def _host_ok(self, host_header: str) -> bool:
        """On a loopback bind, only loopback ``Host`` names (a page elsewhere cannot rebind its name to us)."""
        if not is_loopback(self.host):
            return True
        name = urlsplit(f"//{host_header}").hostname or ""
        return is_loopback(name)

    async def _http(self, connection: ServerConnection, request: Request) -> Response | None:
        parts = urlsplit(request.path)
        query = parse_qs(parts.query)
        host = request.headers.get("Host", "")
        if not self._host_ok(host):
            return _text(403, "Forbidden", f"unexpected Host {host!r}: open the viewer at {self.url}")
        if parts.path == "/ws":
            if not self._token_ok(query):
                return _text(403, "Forbidden", "a valid token is needed")
            origin = request.headers.get("Origin")
            if origin and urlsplit(origin).netloc != host:
                return _text(403, "Forbidden", f"cross-origin websocket from {origin!r} refused")
            return None  # go on with the websocket handshake
        if parts.path in ("/", "/index.html"):
            if not self._token_ok(query):
                return _text(403, "Forbidden", "a valid token is needed: open the address vla-bt printed "
                                               "(…/?token=…)")
            return self._asset("index.html", host)
        if parts.path == "/state.json":
            if not self._token_ok(query):
                return _text(403, "Forbidden", "a valid token is needed")
            body = dumps({"mode": self.mode, "header": self._header, "state": self.state()}).encode("utf-8")
            return _response(200, "OK", body, "application/json")
        if parts.path == "/frame.png":
            if not self._token_ok(query):
                return _text(403, "Forbidden", "a valid token is needed")
            return await self._frame()
        if parts.path.startswith("/static/") and parts.path[len("/static/"):] in self._assets:
            return self._asset(parts.path[len("/static/"):], host)
        return _text(404, "Not Found", f"no such page: {parts.path}")

    async def _frame(self) -> Response:
        """The latest camera frame (encoded in a worker thread: the loop also serves the websocket)."""
        camera = self.camera
        if camera is None:
            return _text(404, "Not Found", "no camera: run with --perception camera")
        try:
            png = await asyncio.get_running_loop().run_in_executor(None, camera)
        except Exception as exc:  # noqa: BLE001 - a failing camera is the run's problem, not the page's
            log.warning("camera frame failed: %s", exc)
            png = None
        if not isinstance(png, (bytes, bytearray)) or not png:
            return _text(404, "Not Found", "no camera frame yet")
        return _response(200, "OK", bytes(png), "image/png")

    def _asset(self, name: str, host: str) -> Response:
        path = self._assets[name]
        policy = (f"default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                  f"img-src 'self' data: blob:; "
                  f"connect-src 'self' ws://{host}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
        return _response(200, "OK", path.read_bytes(), CONTENT_TYPES[path.suffix],
                         {"Content-Security-Policy": policy, "X-Frame-Options": "DENY"})


class LiveFeed:
    """The post-tick handler that feeds a viewer: a snapshot of each tick's changes, pushed without waiting.

    Args:
        viewer: the viewer to feed
        snapshotter: takes the changes (one per viewer: each keeps its own previous state)
    """

    def __init__(self, viewer: Viewer, snapshotter: Snapshotter):
        self.viewer = viewer
        self.snapshotter = snapshotter

    def post_tick(self, tree: Any) -> None:
        self.viewer.publish(self.snapshotter.capture(tree))

    def flush_tail(self) -> None:
        """What happened after the last tick (the safe stop of a halt): a runner shutdown hook."""
        self.viewer.publish(self.snapshotter.tail())


def camera_source(robot: Any) -> CameraSource | None:
    """The latest annotated camera frame of a robot backend, found through its wrappers, if it has a camera.

    A backend with camera perception (``vla_bt.perception.CameraRobot``) has a ``perception`` pipeline with
    ``annotated_png()``; the command gate and other wrappers keep the backend in ``robot``. The PNG is
    encoded once per camera frame, however many pages ask for it.

    Args:
        robot: the run's robot (``run.robot``, the command gate) or a backend

    Returns:
        a function giving the PNG bytes (None before the first frame), or None without a camera
    """
    seen: set[int] = set()
    while robot is not None and id(robot) not in seen and len(seen) < 8:  # gate → camera wrapper → backend
        seen.add(id(robot))
        perception = _attribute(robot, "perception")
        if callable(getattr(perception, "annotated_png", None)):
            return _latest_png(perception)
        robot = _attribute(robot, "robot")
    return None


def _attribute(thing: Any, name: str) -> Any:
    try:
        return getattr(thing, name, None)
    except Exception:  # noqa: BLE001 - a backend's property may fail (a ROS node that is gone): no camera then
        return None


def _latest_png(perception: Any) -> CameraSource:
    lock = threading.Lock()
    cache: list[Any] = [None, None]  # the frame encoded last, its PNG

    def png() -> bytes | None:
        with lock:
            frame = getattr(perception, "latest", None)
            if frame is None or frame is not cache[0]:
                cache[:] = [frame, perception.annotated_png()]
            return cache[1]

    return png


def attach_viewer(run: Any, host: str = "127.0.0.1", port: int = DEFAULT_PORT, token: str | None = None) -> Viewer:
    """Serve the live viewer for a run (``vla-bt run … --viewer [HOST:]PORT``).

    Starts the server at once (so its address can be printed before the run),
    shows the tree before the first tick, and adds a post-tick handler and a
    shutdown hook to the run. With camera perception, ``/frame.png`` serves
    the camera's latest frame. After ``run.execute()``, call
    ``viewer.finish(result)`` and ``viewer.close()``.

    Args:
        run: the assembled ``vla_bt.app.Run``
        host: interface (127.0.0.1 by default; another needs a token)
        port: TCP port (0 picks a free one)
        token: the access token (``VLA_BT_VIEWER_TOKEN`` when not given)

    Returns:
        the running viewer (``viewer.url`` is the page's address)

    Raises:
        ViewerError: no token for a non-loopback address, or the port cannot be bound
    """
    token = token or os.environ.get(TOKEN_ENV) or None
    viewer = Viewer(host, port, token, camera=camera_source(run.robot)).start()
    runner = run.runner
    snapshotter = Snapshotter(default_keys(runner.loaded), audit=run.audit, path_source=planned_path_of(run.robot))
    viewer.set_header(header(tree=runner.loaded, world=runner.setup_kwargs.get("world"),
                             keys_recorded=snapshotter.keys, rate_hz=round(1.0 / runner.period, 3)))
    feed = LiveFeed(viewer, snapshotter)
    viewer.publish(snapshotter.capture(runner.tree, tick=0))  # the tree as it is before the first tick
    runner.tree.add_post_tick_handler(feed.post_tick)
    runner.shutdown_hooks.append(feed.flush_tail)
    return viewer
