"""The web viewer: served over HTTP and a websocket, loaded in a real headless Chromium.

Chromium (Debian ``chromium``) is started by the tests with the flags that
keep it off the network, and driven over the DevTools protocol with the
``websockets`` client the project already depends on. The page is checked
while ``trees/assistant.yaml`` runs on the simulator with a scripted model:
node names and statuses appear and change, the running path is highlighted,
the robot moves in the world picture. A run with camera perception shows the
camera's frames with their detections. A recording is replayed in the same
page and scrubbed. Screenshots are saved in the test's temporary folder (and
in ``docs/images/`` when ``VLA_BT_DOCS_SCREENSHOTS=1``).
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from vla_bt.app import assemble
from vla_bt.guards.audit import AuditLog
from vla_bt.llm.scripted import PlannedCall, PlannedResponse, ScriptedBackend
from vla_bt.llm.session import ModelSession
from vla_bt.llm.tools import tool_specs
from vla_bt.net import is_loopback
from vla_bt.perception.imageio import annotate, decode_png
from vla_bt.robot.sim import SimRobot
from vla_bt.robot.world import load_world
from vla_bt.speech import ScriptedUtterances
from vla_bt.tree.loader import TreeLoader
from vla_bt.tree.registry import Registry
from vla_bt.viz.record import attach_recorder, statuses_by_path, tree_statuses
from vla_bt.viz.replay import load_recording, serve_replay
from vla_bt.viz.web import TOKEN_ENV, Viewer, ViewerError, attach_viewer, parse_address

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--hide-scrollbars", "--mute-audio"]
DOCS_IMAGES = ROOT / "docs" / "images"
WIDTH, HEIGHT = 1600, 1000


# -- a small DevTools protocol client ----------------------------------------------------------


class Chromium:
    """Headless Chromium with a fresh profile, driven over the DevTools protocol (one page)."""

    def __init__(self, folder: Path):
        self.profile = folder / "profile"
        self.profile.mkdir(parents=True)
        self.log = (folder / "chromium.log").open("wb")
        self.process = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={self.profile}", "--remote-debugging-port=0",
             f"--window-size={WIDTH},{HEIGHT}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=self.log)
        active = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (active.exists() and len(active.read_text().splitlines()) >= 2):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Chromium did not start (see {folder / 'chromium.log'})")
            time.sleep(0.05)
        port, path = active.read_text().splitlines()[:2]
        self.socket: ClientConnection = connect(f"ws://127.0.0.1:{port}{path}", max_size=None, open_timeout=10)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.page("Page.enable")
        self.page("Emulation.setDeviceMetricsOverride", width=WIDTH, height=HEIGHT, deviceScaleFactor=1, mobile=False)

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        with self._lock:
            number = next(self._ids)
            message: dict[str, Any] = {"id": number, "method": method, "params": params}
            if session:
                message["sessionId"] = session
            self.socket.send(json.dumps(message))
            while True:
                reply = json.loads(self.socket.recv(timeout=30))
                if reply.get("id") == number:
                    if "error" in reply:
                        raise RuntimeError(f"{method}: {reply['error']}")
                    return reply.get("result", {})

    def page(self, method: str, **params: Any) -> dict[str, Any]:
        return self.call(method, self.session, **params)

    def goto(self, url: str) -> None:
        self.page("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete' && location.href !== 'about:blank'")

    def eval(self, expression: str) -> Any:
        result = self.page("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 20.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = self.eval(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {expression}")
            time.sleep(0.05)

    def screenshot(self, path: Path) -> Path:
        data = self.page("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except Exception:  # noqa: BLE001 - it may already be gone
            pass
        try:
            self.socket.close()
        finally:
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.log.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chromium]:
    chromium = Chromium(tmp_path_factory.mktemp("chromium"))
    yield chromium
    chromium.close()


def docs_copy(screenshot: Path, name: str) -> None:
    """Keep a screenshot for the documentation when asked to (``VLA_BT_DOCS_SCREENSHOTS=1``)."""
    if os.environ.get("VLA_BT_DOCS_SCREENSHOTS") == "1":
        DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(screenshot, DOCS_IMAGES / name)


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000, f"{path} is not a real screenshot"


# -- runs -------------------------------------------------------------------------------------------

FETCH = PlannedResponse(tool_calls=(
    PlannedCall("navigate", '{"target": "kitchen"}'),
    PlannedCall("grasp", '{"object": "red cup"}'),
    PlannedCall("navigate", '{"target": "user"}'),
))


def assistant_run(time_scale: float, audit: AuditLog | None = None, hazard: bool = False) -> Any:
    """``trees/assistant.yaml`` on the simulator, asked to fetch the red cup by a scripted model.

    With ``hazard``, a person steps next to the robot during the first navigation and leaves again
    (the ``People`` guard trips and clears).
    """
    registry = Registry.default()
    loaded = TreeLoader(registry).load(os.path.relpath(ROOT / "trees" / "assistant.yaml"))
    world = load_world(os.path.relpath(ROOT / "config" / "world.yaml"))
    robot = SimRobot(world, time_scale=time_scale)
    audit = audit or AuditLog()
    run = assemble(loaded, registry, world=world, utterances=ScriptedUtterances(["bring me the red cup"]),
                   robot=robot, session=ModelSession(ScriptedBackend([FETCH]), tool_specs(registry)), audit=audit,
                   max_seconds=60)
    if hazard:
        def step_in() -> None:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not any(e["kind"] == "command" for e in list(audit.events)):
                time.sleep(0.01)
            time.sleep(0.5)
            x, y, _ = robot.pose
            robot.add_human("bob", (x + 0.4, y + 0.1, 0.0))
            time.sleep(0.6)
            robot.remove_human("bob")

        threading.Thread(target=step_in, daemon=True).start()
    return run


# -- the address, the token and the HTTP side ---------------------------------------------------------


def test_parse_address() -> None:
    assert parse_address("8765") == ("127.0.0.1", 8765)
    assert parse_address("0.0.0.0:9000") == ("0.0.0.0", 9000)
    assert parse_address("[::1]:0") == ("::1", 0)
    assert parse_address("localhost:8765") == ("localhost", 8765)
    for bad in ("http", "host:99999", "::1:80"):
        with pytest.raises(ViewerError):
            parse_address(bad)
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5") and not is_loopback("example.org")


def test_a_non_loopback_address_needs_a_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    with pytest.raises(ViewerError, match="token"):
        Viewer("0.0.0.0", 0)
    run = assistant_run(time_scale=10)
    with pytest.raises(ViewerError, match="token"):
        attach_viewer(run, "0.0.0.0", 0)
    assert not run.runner.tree.post_tick_handlers, "nothing was attached to the run"


LOOK = """version: 1
name: look
description: Drive to the kitchen and back to the user, looking with the camera.
root:
  type: Sequence
  name: Look around
  memory: true
  children:
    - {type: Navigate, name: Kitchen, target: kitchen}
    - {type: Navigate, name: Back to the user, target: user}
"""


def camera_run(folder: Path, time_scale: float) -> Any:
    """A small Navigate tree on the simulator with camera perception (``--perception camera``).

    It ends at the user's place facing the kitchen: its last frame shows the table and the two cups.
    """
    tree = folder / "look.yaml"
    tree.write_text(LOOK, encoding="utf-8")
    registry = Registry.default()
    loaded = TreeLoader(registry).load(str(tree))
    world = load_world(os.path.relpath(ROOT / "config" / "world.yaml"))
    return assemble(loaded, registry, world=world, utterances=ScriptedUtterances([]),
                    robot=SimRobot(world, time_scale=time_scale), perception="camera", max_seconds=60)


def get(url: str, host: str | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_page_websocket_and_state_check_the_token() -> None:
    viewer = Viewer("0.0.0.0", 0, token="s3cret-token").start()
    try:
        base = f"http://127.0.0.1:{viewer.port}"
        assert viewer.url == f"{base}/?token=s3cret-token"
        for path in ("/", "/?token=wrong", "/state.json", "/state.json?token=s3cret-tokenX"):
            status, _, body = get(base + path)
            assert status == 403, path
            assert b"token" in body
        status, headers, body = get(base + "/?token=s3cret-token")
        assert status == 200 and b"<title>vla-bt viewer</title>" in body
        assert "script-src 'self'" in headers["Content-Security-Policy"]
        assert headers["Referrer-Policy"] == "no-referrer"
        status, _, _ = get(base + "/static/app.js")
        assert status == 200, "the page's own code is public"
        assert get(base + "/static/../web.py")[0] == 404
        with pytest.raises(InvalidStatus) as refused:
            connect(f"ws://127.0.0.1:{viewer.port}/ws", open_timeout=5)
        assert refused.value.response.status_code == 403
        with connect(f"ws://127.0.0.1:{viewer.port}/ws?token=s3cret-token", open_timeout=5) as socket:
            hello = json.loads(socket.recv(timeout=5))
        assert hello["type"] == "hello" and hello["mode"] == "live"
    finally:
        viewer.close()


def test_loopback_viewer_refuses_foreign_hosts_and_origins() -> None:
    viewer = Viewer("127.0.0.1", 0).start()
    try:
        base = f"http://127.0.0.1:{viewer.port}"
        assert get(base + "/")[0] == 200
        assert get(base + "/", host=f"localhost:{viewer.port}")[0] == 200
        status, _, body = get(base + "/", host=f"attacker.example:{viewer.port}")
        assert status == 403 and b"Host" in body, "a DNS-rebound name is refused"
        with pytest.raises(InvalidStatus) as refused:
            connect(f"ws://127.0.0.1:{viewer.port}/ws", origin="http://attacker.example", open_timeout=5)
        assert refused.value.response.status_code == 403
        with connect(f"ws://127.0.0.1:{viewer.port}/ws", origin=f"http://127.0.0.1:{viewer.port}",
                     open_timeout=5) as socket:
            assert json.loads(socket.recv(timeout=5))["type"] == "hello"
        assert get(base + "/nowhere")[0] == 404
    finally:
        viewer.close()


def test_frame_png_serves_the_camera_frames_of_a_camera_run(tmp_path: Path) -> None:
    run = camera_run(tmp_path, time_scale=10)
    perception = run.robot.robot.perception
    viewer = attach_viewer(run, port=0, token="cam-token")
    base = f"http://127.0.0.1:{viewer.port}"
    served: list[tuple[int, str, bytes]] = []
    try:
        with connect(f"ws://127.0.0.1:{viewer.port}/ws?token=cam-token", open_timeout=5) as socket:
            assert json.loads(socket.recv(timeout=5))["camera"] is True, "the page is told there is a camera"
        status, _, body = get(base + "/frame.png?token=cam-token")
        assert (status, body) == (404, b"no camera frame yet\n"), "nothing to show before the first frame"
        done = threading.Event()

        def poll() -> None:
            while not done.is_set():
                status, headers, body = get(base + "/frame.png?token=cam-token")
                served.append((status, headers.get("Content-Type", ""), body))
                time.sleep(0.05)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        result = run.execute()
        done.set()
        poller.join(10)
        assert result.status == "SUCCESS", result.reason
        for path in ("/frame.png", "/frame.png?token=wrong"):
            status, _, body = get(base + path)
            assert status == 403 and b"token" in body, path
        assert get(base + "/frame.png?token=cam-token", host=f"attacker.example:{viewer.port}")[0] == 403
        status, headers, body = get(base + "/frame.png?token=cam-token&n=7")
    finally:
        viewer.close()
    assert status == 200
    assert headers["Content-Type"] == "image/png" and headers["Cache-Control"] == "no-store"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert body[:8] == b"\x89PNG\r\n\x1a\n"
    latest = perception.latest
    assert perception.detections, "the last frame, facing the kitchen, shows the table and the cups"
    image = decode_png(body)
    assert image.shape == latest.rgb.shape == (120, 160, 3)
    assert (image == annotate(latest.rgb, perception.detections)).all(), "the latest frame with its detections"
    assert (image != latest.rgb).any(), "the detections are drawn on it"
    frames = [body for status, kind, body in served if status == 200]
    assert len(frames) >= 5, f"frames were served while the robot drove ({len(served)} requests)"
    assert all(kind == "image/png" and body[:4] == b"\x89PNG" for status, kind, body in served if status == 200)
    assert len(set(frames)) >= 3, "the frame changes as the robot moves"


def test_frame_png_is_404_without_a_camera() -> None:
    run = assistant_run(time_scale=10)
    viewer = attach_viewer(run, port=0)
    try:
        with connect(f"ws://127.0.0.1:{viewer.port}/ws", open_timeout=5) as socket:
            assert json.loads(socket.recv(timeout=5))["camera"] is False
        status, headers, body = get(f"http://127.0.0.1:{viewer.port}/frame.png")
    finally:
        viewer.close()
    assert status == 404 and b"no camera" in body and headers["Cache-Control"] == "no-store"
    plain = Viewer(port=0).start()
    try:
        assert get(f"http://127.0.0.1:{plain.port}/frame.png")[0] == 404
    finally:
        plain.close()


def test_the_viewer_does_not_import_perception() -> None:
    code = "import sys, vla_bt.viz.web; print('vla_bt.perception' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "False", "camera support is found on the run's robot, not imported"


def test_a_busy_port_is_a_clear_error() -> None:
    first = Viewer(port=0).start()
    try:
        with pytest.raises(ViewerError, match="cannot serve the viewer"):
            Viewer(port=first.port).start()
    finally:
        first.close()


# -- in the browser -------------------------------------------------------------------------------------

def sample_while_running(browser: Chromium, expression: str, run: Any, interval: float,
                         on_sample: Callable[[dict[str, Any]], None] | None = None,
                         ) -> tuple[Any, list[dict[str, Any]]]:
    """Execute ``run`` while a thread samples the page, and return the run's result and the samples.

    Every ``interval`` seconds the page evaluates ``expression`` (a ``JSON.stringify`` of what
    the page shows); each parsed sample is kept in order and handed to ``on_sample`` when given.
    Sampling goes on for a moment after the run ends, so the page's last updates are seen.
    """
    samples: list[dict[str, Any]] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            sample = json.loads(browser.eval(expression))
            samples.append(sample)
            if on_sample is not None:
                on_sample(sample)
            time.sleep(interval)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        result = run.execute()
        time.sleep(0.3)
    finally:
        done.set()
        watcher.join(10)
    return result, samples


SAMPLE = """JSON.stringify({
  connected: vlaViewer.connected,
  rows: [...document.querySelectorAll('#nodes tbody tr')].map(r => [r.dataset.name, r.dataset.status]),
  svgRunning: document.querySelectorAll('#tree-svg g.bt-node.st-RUNNING').length,
  svgNodes: document.querySelectorAll('#tree-svg g.bt-node').length,
  activeEdges: document.querySelectorAll('#tree-svg g.bt-edge.active').length,
  robot: [+document.querySelector('#robot').dataset.x, +document.querySelector('#robot').dataset.y],
  path: !!document.querySelector('#planned-path'),
  plan: [...document.querySelectorAll('#plan tbody tr[data-step]')].map(r => [r.dataset.step, r.dataset.state]),
  dialogue: document.querySelector('#dialogue').innerText,
  root: document.querySelector('#root-status').textContent,
  camera: !document.querySelector('#camera-panel').hidden || vlaViewer.camera.requests > 0,
})"""


def test_live_page_shows_the_tree_and_the_robot_acting(browser: Chromium, tmp_path: Path) -> None:
    run = assistant_run(time_scale=3)
    viewer = attach_viewer(run, port=0)
    shot = tmp_path / "viewer-live.png"
    try:
        browser.goto(viewer.url)
        browser.wait_for("vlaViewer.connected && document.querySelectorAll('#tree-svg g.bt-node').length > 10")
        first = json.loads(browser.eval(SAMPLE))
        assert ["Assistant", "INVALID"] in first["rows"], "the tree is shown before the first tick"

        def shoot_mid_way(sample: dict[str, Any]) -> None:
            if not shot.exists() and sample["path"] and 1.8 < sample["robot"][0] < 3.2:
                browser.screenshot(shot)  # mid-way to the kitchen

        result, samples = sample_while_running(browser, SAMPLE, run, 0.08, on_sample=shoot_mid_way)
        viewer.finish(result)
        browser.wait_for("document.querySelector('#root-status').textContent === 'SUCCESS'")
        final = json.loads(browser.eval(SAMPLE))
        end_shot = browser.screenshot(tmp_path / "viewer-live-end.png")
    finally:
        viewer.close()
    assert result.status == "SUCCESS", result.reason
    assert len(samples) > 10
    names = {name for sample in samples for name, _ in sample["rows"]}
    assert {"Assistant", "Say", "Listen", "Safety", "People", "Plan and act", "Ask", "ParseIntent",
            "ExecutePlan"} <= names
    assert {"s1 navigate kitchen", "s2 grasp cup_red", "s3 navigate user"} <= names, "plan steps appear as nodes"
    seen: dict[str, set[str]] = {}
    for sample in samples:
        for name, status in sample["rows"]:
            seen.setdefault(name, set()).add(status)
    assert {"INVALID", "RUNNING", "SUCCESS"} <= seen["Plan and act"], "statuses change while the tree runs"
    assert {"SUCCESS", "FAILURE"} <= seen["Listen"], "the second Listen hears nothing more"
    assert {"RUNNING", "SUCCESS"} <= seen["s1 navigate kitchen"]
    assert any(s["svgRunning"] >= 5 and s["activeEdges"] >= 4 for s in samples), "the running path is highlighted"
    xs = [s["robot"][0] for s in samples]
    assert min(xs) < 0.5 and max(xs) > 3.5, f"the robot drove to the kitchen in the picture: {xs[:3]}…{xs[-3:]}"
    assert len({tuple(s["robot"]) for s in samples}) > 5, "the robot moved smoothly, not in one jump"
    assert any(s["path"] for s in samples), "the planned path was drawn"
    assert ["s1", "running"] in [p for s in samples for p in s["plan"]]
    assert final["plan"] == [["s1", "done"], ["s2", "done"], ["s3", "done"]]
    assert "bring me the red cup" in final["dialogue"]
    assert final["svgNodes"] >= 16 and final["root"] == "SUCCESS"
    assert not any(s["camera"] for s in samples), "no camera panel and no frame requests without a camera"
    assert shot.exists(), "a screenshot was taken during the navigation"
    assert_png(shot)
    assert_png(end_shot)
    docs_copy(shot, "viewer-live.png")
    print(f"screenshots: {shot} {end_shot}")


CAMERA = """JSON.stringify({
  visible: !document.querySelector('#camera-panel').hidden,
  width: document.querySelector('#camera').naturalWidth,
  height: document.querySelector('#camera').naturalHeight,
  src: document.querySelector('#camera').src,
  shown: vlaViewer.camera.shown,
  requests: vlaViewer.camera.requests,
  frames: vlaViewer.frames.length,
  info: document.querySelector('#camera-info').textContent,
})"""


def test_live_page_shows_the_camera_frames(browser: Chromium, tmp_path: Path) -> None:
    run = camera_run(tmp_path, time_scale=3)
    viewer = attach_viewer(run, port=0, token="cam-token")
    try:
        browser.goto(viewer.url)
        browser.wait_for("vlaViewer.connected && vlaViewer.camera.requests >= 1 && !vlaViewer.camera.busy")
        before = json.loads(browser.eval(CAMERA))
        assert not before["visible"], "no panel before the camera's first frame"
        result, samples = sample_while_running(browser, CAMERA, run, 0.1)
        assert result.status == "SUCCESS", result.reason
        browser.wait_for("!vlaViewer.camera.busy && !vlaViewer.camera.wanted")
        final = json.loads(browser.eval(CAMERA))
        shot = browser.screenshot(tmp_path / "viewer-camera.png")
    finally:
        viewer.close()
    assert final["visible"] and (final["width"], final["height"]) == (160, 120)
    assert final["src"].startswith("blob:"), "the image is the fetched frame"
    assert final["info"].startswith("160×120 · latest frame")
    assert final["shown"] >= 5, "the image is refreshed as the robot drives"
    assert final["requests"] <= final["frames"] + 1, "at most one request per frame message (and one at hello)"
    shown = [s for s in samples if s["visible"]]
    assert len(shown) > 10, "the panel appeared with the first frames of the run"
    assert all(s["width"] == 160 for s in shown), "a shown panel always has an image"
    assert samples[-1]["visible"], "once shown, the panel stays"
    assert len({s["shown"] for s in shown}) >= 5, "new frames keep replacing the image while the robot drives"
    assert_png(shot)
    print(f"screenshot: {shot}")


def test_the_page_asks_for_the_token_on_a_shared_address(browser: Chromium) -> None:
    viewer = Viewer("0.0.0.0", 0, token="tok-123").start()
    try:
        browser.goto(f"http://127.0.0.1:{viewer.port}/")
        assert "token is needed" in browser.eval("document.body.innerText")
        browser.goto(viewer.url)
        browser.wait_for("vlaViewer.connected")
        assert browser.eval("document.querySelector('#conn').textContent") == "connected"
    finally:
        viewer.close()


def test_replay_in_the_page_scrubs_to_the_recorded_statuses(browser: Chromium, tmp_path: Path) -> None:
    audit = AuditLog()
    run = assistant_run(time_scale=4, audit=audit, hazard=True)
    recorder = attach_recorder(run, tmp_path / "run.jsonl")
    live: dict[int, dict[str, tuple[str, str]]] = {}
    run.runner.tree.add_post_tick_handler(lambda tree: live.__setitem__(tree.count + 1, tree_statuses(tree.root)))
    result = run.execute()
    recorder.finish(result)
    assert result.status == "SUCCESS", result.reason
    assert audit.of_kind("guard_trip"), "the person stepping in tripped the People guard"
    recording = load_recording(tmp_path / "run.jsonl")
    records = recording.records()
    viewer = serve_replay(recording, port=0)
    try:
        browser.goto(viewer.url)
        browser.wait_for(f"vlaViewer.frames.length === {len(records)} && vlaViewer.mode === 'replay' && "
                         f"document.querySelector('#scrub').max === '{len(records) - 1}'")
        assert browser.eval("document.querySelector('#mode').textContent") == "replay"
        checked = 0
        for index in sorted({1, len(records) // 4, len(records) // 2, 3 * len(records) // 4, len(records) - 2}):
            tick = records[index]["tick"]
            browser.eval(f"(() => {{ const s = document.querySelector('#scrub'); s.value = '{index}'; "
                         f"s.dispatchEvent(new Event('input')); }})()")
            state = browser.eval("vlaViewer.shown")
            assert state["tick"] == tick
            assert statuses_by_path(state) == live[tick], f"frame {index} (tick {tick})"
            rows = browser.eval("[...document.querySelectorAll('#nodes tbody tr')]"
                                ".map(r => [r.dataset.name, r.dataset.status])")
            assert [[path.rsplit(":", 1)[-1] if "/" in path else path, status]
                    for path, (status, _) in live[tick].items()] == rows
            checked += 1
        trip = next(i for i, r in enumerate(records) if any(e["kind"] == "guard_trip" for e in r.get("audit", [])))
        browser.eval(f"vlaViewer.seek({trip})")
        assert "1 guard trip" in browser.eval("document.querySelector('#trip-count').textContent")
        events = browser.eval("document.querySelector('#events').textContent")
        assert "guard_trip" in events and "People" in events
        browser.eval(f"vlaViewer.seek({trip + 1})")
        shot = browser.screenshot(tmp_path / "viewer-replay.png")
        browser.eval("vlaViewer.seek(0)")
        early = browser.eval("+document.querySelector('#robot').dataset.x")
        browser.eval(f"vlaViewer.seek({len(records) - 1})")
        late = browser.eval("+document.querySelector('#robot').dataset.x")
        assert early == 0 and late > 0.3, "scrubbing moves the robot back and forth"
        assert browser.eval("document.querySelector('#root-status').textContent") == "SUCCESS"
    finally:
        viewer.close()
    assert checked == 5
    assert_png(shot)
    docs_copy(shot, "viewer-replay.png")
