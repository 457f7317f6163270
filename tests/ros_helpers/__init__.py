"""Helpers of the ROS 2 tests: every ROS participant runs in a process of its own.

``ros_env`` gives each test its own DDS domain (and log folder), on top of the
LOCALHOST discovery that ``conftest.py`` sets, so processes of different
tests never meet. ``Proc`` runs a command and collects its output lines;
``Probe`` is a ROS participant the test drives (``probe.py``); ``SimNodeProc``
starts ``vla-bt sim-node`` through the launcher ``vla-bt bench`` uses
(``vla_bt.ros.bench.SimNodeProcess``) and reads its event log. ``helper_proc`` starts
one of the scripts next to this file; ``json_lines`` reads what it printed.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from vla_bt.ros.bench import SimNodeProcess

ROOT = Path(__file__).resolve().parents[2]
HELPERS = Path(__file__).resolve().parent
STRING = "std_msgs/msg/String"
_used_domains: set[int] = set()
_interfaces: list[str] = []


def ensure_interfaces() -> str:
    """Build nav2_msgs and control_msgs into the venv if they are missing (once per test run; fast when present).

    Returns:
        what the build script printed
    """
    if not _interfaces:
        done = subprocess.run([sys.executable, "-m", "vla_bt.ros.interfaces.build"], cwd=ROOT, capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
        _interfaces.append(done.stdout)
    return _interfaces[0]


def ros_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a test's ROS processes: a domain of its own, logs in the test's folder."""
    domain = random.choice([d for d in range(1, 101) if d not in _used_domains and
                            str(d) != os.environ.get("ROS_DOMAIN_ID")])
    _used_domains.add(domain)
    log_dir = tmp_path / "ros_logs"
    log_dir.mkdir(exist_ok=True)
    return {**os.environ, "ROS_DOMAIN_ID": str(domain), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
            "ROS_LOG_DIR": str(log_dir), "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


class Proc:
    """A child process whose standard output is read line by line in the background.

    Args:
        args: the command
        env: its environment
        stdin: pipe standard input (for ``send``)
    """

    def __init__(self, args: Sequence[str], env: dict[str, str], stdin: bool = False):
        self.args = list(args)
        self.process = subprocess.Popen(self.args, cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL)
        self.lines: list[str] = []
        self._done = threading.Event()
        self.stderr = ""
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
        self._done.set()

    def _read_err(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr += line

    def wait_line(self, predicate: Callable[[str], bool], timeout: float = 20.0, since: int = 0) -> str:
        """The first output line from index ``since`` on (already read or coming) that satisfies ``predicate``."""
        deadline = time.monotonic() + timeout
        seen = since
        while True:
            lines = self.lines[seen:]
            for line in lines:
                if predicate(line):
                    return line
            seen += len(lines)
            if time.monotonic() > deadline or (self.process.poll() is not None and self._done.is_set()
                                                and seen == len(self.lines)):
                break
            time.sleep(0.01)
        raise AssertionError(f"no such line from {self.args[:5]} within {timeout} s; "
                             f"output: {self.lines[-20:]}\nstderr: {self.stderr[-3000:]}")

    def send(self, text: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(text + "\n")
        self.process.stdin.flush()

    def wait(self, timeout: float = 60.0) -> int:
        """Wait for the process to end; its exit code."""
        code = self.process.wait(timeout)
        time.sleep(0.05)  # let the readers take the last lines
        return code

    def interrupt(self) -> None:
        self.process.send_signal(signal.SIGINT)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def vla_ros(*args: str, env: dict[str, str], config: str | None = None) -> Proc:
    """``vla-bt [--config DIR] ros …`` (as ``python -m vla_bt.ros [--config DIR] ros …``)."""
    return Proc([sys.executable, "-m", "vla_bt.ros", *(["--config", config] if config else []), "ros", *args], env)


def helper_proc(script: str, *args: str, env: dict[str, str], stdin: bool = False) -> Proc:
    """Start a script of this folder (``peer.py``, ``robot_script.py``, ``run_ros2.py`` …).

    Args:
        script: its file name
        *args: its arguments
        env: the ROS environment
        stdin: pipe standard input (for ``send``)

    Returns:
        the running script
    """
    return Proc([sys.executable, str(HELPERS / script), *args], env, stdin=stdin)


def json_lines(process: Proc, kind: str | None = None) -> list[dict[str, Any]]:
    """A process's output lines read as JSON objects; with ``kind``, only the records of that kind."""
    records = [json.loads(line) for line in process.lines]
    return [r for r in records if kind is None or r["kind"] == kind]


class SimNodeProc(SimNodeProcess):
    """``vla-bt sim-node`` (``SimNodeProcess`` of ``vla_bt.ros.bench``) with an event log; ready when constructed.

    Its output goes to ``sim_node.out`` and ``sim_node.err`` in ``tmp_path``; when it does not start, it is
    stopped and the ``RuntimeError`` of ``wait_ready`` (with the end of that output) raised.

    Args:
        tmp_path: where the event log and its output go
        env: the ROS environment
        *args: more options (``--time-scale 10`` …)
    """

    def __init__(self, tmp_path: Path, env: dict[str, str], *args: str):
        self.events_path = tmp_path / "sim_events.jsonl"
        super().__init__(tmp_path, env, "--events", str(self.events_path), *args, cwd=ROOT)
        try:
            self.wait_ready(30)
        except BaseException:
            self.stop()
            raise

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        """The events logged so far.

        Args:
            kind: only the events of this kind (``goal``, ``result``, ``stop`` …); ``None`` for all

        Returns:
            the event records, oldest first
        """
        if not self.events_path.exists():
            return []
        records = [json.loads(line) for line in self.events_path.read_text().splitlines() if line.strip()]
        return [r for r in records if kind is None or r["event"] == kind]

    def wait_event(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 20.0) -> dict[str, Any]:
        """The first logged event that satisfies ``predicate``, waiting for it.

        Args:
            predicate: what the event must satisfy
            timeout: how many seconds at the most

        Returns:
            the event record

        Raises:
            AssertionError: none came within ``timeout``, with the last events and the node's output
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for record in self.events():
                if predicate(record):
                    return record
            time.sleep(0.02)
        raise AssertionError(f"no such sim event within {timeout} s; events: {self.events()[-15:]}; "
                             f"sim node output: {self.output()}")


class Probe(Proc):
    """A ROS participant the test drives (``probe.py``): subscribe, publish, read what arrived."""

    def __init__(self, env: dict[str, str]):
        super().__init__([sys.executable, str(HELPERS / "probe.py")], env, stdin=True)
        self.wait_line(lambda line: '"ready"' in line, timeout=30)
        self._count = 0

    def records(self, kind: str) -> list[dict[str, Any]]:
        found = []
        for line in list(self.lines):
            record = json.loads(line)
            if record["kind"] == "error":
                raise AssertionError(f"probe: {record}")
            if record["kind"] == kind:
                found.append(record)
        return found

    def subscribe(self, topic: str, msg_type: str, latched: bool = False, reliable: bool = True) -> None:
        self.send(json.dumps({"op": "subscribe", "topic": topic, "type": msg_type, "latched": latched,
                              "reliable": reliable}))
        self.wait_line(lambda line: '"subscribed"' in line and json.loads(line)["topic"] == topic)

    def publish(self, topic: str, msg_type: str, value: Any, wait_match: float = 10.0, latched: bool = False,
                min_match: int = 1) -> dict[str, Any]:
        """Publish once ``min_match`` subscribers matched (or after ``wait_match``); the ``published`` record."""
        self._count += 1
        ident = f"p{self._count}"
        self.send(json.dumps({"op": "publish", "id": ident, "topic": topic, "type": msg_type, "value": value,
                              "wait_match": wait_match, "latched": latched, "min_match": min_match}))
        line = self.wait_line(lambda text: (json.loads(text).get("id") == ident
                                            or json.loads(text)["kind"] == "error"), timeout=wait_match + 10)
        record = json.loads(line)
        assert record["kind"] == "published", record
        return record

    def messages(self, topic: str) -> list[dict[str, Any]]:
        return [r for r in self.records("message") if r["topic"] == topic]

    def wait_message(self, topic: str, predicate: Callable[[Any], bool] = lambda data: True,
                     timeout: float = 20.0) -> dict[str, Any]:
        line = self.wait_line(lambda text: (json.loads(text)["kind"] == "message" and json.loads(text)["topic"] == topic
                                            and predicate(json.loads(text)["data"])), timeout)
        return json.loads(line)

    def close(self) -> None:
        if self.process.poll() is None:
            self.send(json.dumps({"op": "quit"}))
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.stop()
