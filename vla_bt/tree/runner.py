"""The tick loop: set a tree up, tick it until it finishes, shut it down cleanly.

Ticks come at a fixed rate, and earlier when something calls ``wake()``
(a stream event, a hazard), so that events are acted on within milliseconds
rather than at the next period. Interruption (Ctrl-C, SIGTERM, a time limit)
halts the tree with ``root.stop(INVALID)``, which calls ``terminate()`` on
every running behaviour, before the tree is shut down.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import py_trees

from vla_bt import blackboard as keys

from .loader import LoadedTree

Status = py_trees.common.Status
log = logging.getLogger(__name__)
DEFAULT_RATE_HZ = 10.0


@dataclass
class RunResult:
    """How a run ended (``vla-bt run --json`` prints this).

    Args:
        status: ``SUCCESS``, ``FAILURE`` or ``RUNNING`` (stopped before finishing)
        reason: why, in words (the failing node's message, the time limit, an interrupt)
        interrupted: stopped by a signal
    """

    status: str
    reason: str
    interrupted: bool = False
    ticks: int = 0
    seconds: float = 0.0
    steps: list[Any] = field(default_factory=list)
    commands: list[Any] = field(default_factory=list)
    trips: list[Any] = field(default_factory=list)
    dialogue: list[Any] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "reason": self.reason, "steps": self.steps,
                "commands": self.commands, "trips": self.trips, "dialogue": self.dialogue}

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 130
        return 0 if self.status == "SUCCESS" else 1


class Runner:
    """Ticks a loaded tree.

    Args:
        loaded: the tree and its document
        rate_hz: ticks per second when nothing wakes the tree earlier
        max_seconds: stop (status RUNNING) after this long; ``None`` for no limit
        setup_timeout: seconds allowed for ``setup()`` of every behaviour
        setup_kwargs: handed to every behaviour's ``setup(**kwargs)`` (e.g. ``utterances``, ``llm``);
            ``wake`` (this runner's ``wake``) is added so that leaves can ask for an early tick

    Example:
        >>> runner = Runner(load_tree("trees/hello.yaml"), setup_kwargs={"utterances": ScriptedUtterances(["hi"])})
        >>> runner.run().status
        'SUCCESS'
    """

    def __init__(self, loaded: LoadedTree, rate_hz: float = DEFAULT_RATE_HZ, max_seconds: float | None = None,
                 setup_timeout: float = 15.0, setup_kwargs: dict[str, Any] | None = None):
        if rate_hz <= 0:
            raise ValueError("rate_hz must be positive")
        self.loaded = loaded
        self.tree = loaded.tree
        self.period = 1.0 / rate_hz
        self.max_seconds = max_seconds
        self.setup_timeout = setup_timeout
        self._wake = threading.Event()
        self.setup_kwargs = {"wake": self.wake, **(setup_kwargs or {})}
        self._stop_reason: str | None = None
        self._interrupted = False
        self._crashed = False
        self.shutdown_hooks: list[Callable[[], None]] = []
        self.on_interrupt: list[Callable[[], None]] = []
        """Called before the tree is halted when a run is stopped early (e.g. the robot's safe stop)."""

    # -- control from other threads or signal handlers -----------------------------

    def wake(self) -> None:
        """Tick as soon as possible instead of waiting for the period (thread-safe)."""
        self._wake.set()

    def request_stop(self, reason: str, interrupted: bool = False) -> None:
        """Stop after the current tick (thread-safe, signal-safe)."""
        self._stop_reason = reason
        self._interrupted = self._interrupted or interrupted
        self._wake.set()

    # -- the loop ---------------------------------------------------------------

    def run(self) -> RunResult:
        """Set up, tick until the root finishes or a stop is requested, then shut down."""
        started = time.monotonic()
        self.loaded.apply_blackboard()
        self.tree.setup(timeout=self.setup_timeout, **self.setup_kwargs)
        try:
            while True:
                self._wake.clear()
                self.tree.tick()
                if self.tree.root.status in (Status.SUCCESS, Status.FAILURE) or self._stop_reason:
                    break
                if self.max_seconds is not None and time.monotonic() - started >= self.max_seconds:
                    self._stop_reason = f"time limit of {self.max_seconds:g} s reached"
                    break
                self._wake.wait(self.period)
        except KeyboardInterrupt:
            self._stop_reason, self._interrupted = "interrupted", True
        except OSError as exc:  # a file that cannot be written (the audit log): its message says it all
            log.error("error while ticking: %s", exc)
            self._stop_reason, self._crashed = f"error in the tree: {exc}", True
        except Exception as exc:  # a broken leaf must still end in a safe stop
            log.exception("error while ticking")
            self._stop_reason, self._crashed = f"error in the tree: {type(exc).__name__}: {exc}", True
        finally:
            status = self.tree.root.status
            reason = self._stop_reason or explain(self.tree.root)
            if self._stop_reason:
                _each(self.on_interrupt, "stopping")
            if status == Status.RUNNING or self._stop_reason:
                # Halt: stop() reaches every running behaviour's terminate() (py_trees'
                # BehaviourTree.interrupt() only ends tick_tock loops and would leave them running).
                self.tree.root.stop(Status.INVALID)
            _each(self.shutdown_hooks, "shutting down")  # every one: a failing one must not cost the session file
            self.tree.shutdown()
        final = status.name if status in (Status.SUCCESS, Status.FAILURE) and not self._stop_reason else "RUNNING"
        if self._crashed:
            final = "FAILURE"
        return RunResult(
            status=final, reason=reason, interrupted=self._interrupted, ticks=self.tree.count,
            seconds=time.monotonic() - started,
            steps=list(keys.read(keys.PLAN_STEPS, []) or []),
            dialogue=list(keys.read(keys.DIALOGUE_HISTORY, []) or []),
        )

    @contextmanager
    def signals(self) -> Iterator[None]:
        """Turn SIGINT and SIGTERM into a clean stop while the block runs (main thread only)."""
        def handler(signum: int, _frame: Any) -> None:
            self.request_stop(f"interrupted by {signal.Signals(signum).name}", interrupted=True)

        previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, h in previous.items():
                signal.signal(s, h)


def _each(hooks: list[Callable[[], None]], doing: str) -> None:
    """Call every hook, even after one failed (each failure is logged, in one line for a file error)."""
    for hook in hooks:
        try:
            hook()
        except OSError as exc:
            log.error("error while %s: %s", doing, exc)
        except Exception:  # the remaining hooks (saving the dialogue) must still run
            log.exception("error while %s", doing)


def explain(root: py_trees.behaviour.Behaviour) -> str:
    """Why the tree is in its state, from the nodes that decided it.

    Follows the path of the outcome down from the root (a sequence's failing
    child, a decorator's child …), so a failure that a fallback recovered
    from is not blamed, and names the deepest node on it with a message.
    """
    if root.status == Status.SUCCESS:
        return root.feedback_message or "completed"
    path = [root]
    while path[-1].children:
        node = path[-1]
        deciding = [c for c in node.children if c.status == node.status]
        current = getattr(node, "current_child", None)
        if not deciding:
            break
        path.append(current if current in deciding else deciding[-1])
    for node in reversed(path):
        if node.feedback_message:
            return f"{node.name}: {node.feedback_message}"
    return f"{path[-1].name} ended with {path[-1].status.name}"
