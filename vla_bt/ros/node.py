"""One rclpy node whose executor spins in a background thread, and the goals sent through it.

Everything ROS in a vla-bt process shares one ``NodeHost``: the ROS robot, the
generic ROS behaviours, the tree's status publishers. The host has its own
rclpy context, initialised without rclpy's signal handlers, so Ctrl-C reaches
the tree runner first and every goal can still be cancelled over a live
connection before the node goes away (``cancel_all_goals``).

Example:
    >>> host = NodeHost("vla_bt")
    >>> node = host.start()
    >>> ...
    >>> host.stop()          # cancels every goal still in flight first
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)


class NodeHost:
    """A node with its executor thread and a register of goals in flight.

    Args:
        name: node name
        namespace: ROS namespace ("" = root)
        threads: executor threads (1: a single-threaded executor; more: rclpy's multi-threaded one,
            for servers whose callbacks wait). Prefer 1 and ``in_thread`` for callbacks that wait:
            rclpy's multi-threaded executor (9.x) submits a callback still queued in its pool again
            at every wake-up (ros2/rclpy#1452), so that one goal in progress keeps its thread
            spinning and the pool's queue growing, and every other callback waits behind them.
    """

    def __init__(self, name: str, namespace: str = "", threads: int = 1):
        self.name, self.namespace, self.threads = name, namespace, threads
        self.node: Any = None
        self.executor: Any = None
        self.context: Any = None
        self._thread: threading.Thread | None = None
        self._goals: dict[int, Any] = {}
        self._cancelling: dict[int, tuple[Any, Any]] = {}
        self._requests: set[Any] = set()
        self._goal_threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._users = 0

    @property
    def running(self) -> bool:
        return self.node is not None

    def start(self) -> Any:
        """Create the context, the node and the executor thread (idempotent).

        Returns:
            the ``rclpy.node.Node``

        Raises:
            rclpy.exceptions.InvalidNodeNameException: the name is not a valid node name
            rclpy.exceptions.InvalidNamespaceException: the namespace is not valid (a relative one is put under ``/``)
        """
        if self.node is not None:
            return self.node
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor
        from rclpy.signals import SignalHandlerOptions
        from rclpy.validate_namespace import validate_namespace
        from rclpy.validate_node_name import validate_node_name

        validate_node_name(self.name)  # before the context exists: nothing to take down on a bad name
        if self.namespace:
            validate_namespace(self.namespace if self.namespace.startswith("/") else "/" + self.namespace)
        context = Context()
        rclpy.init(context=context, signal_handler_options=SignalHandlerOptions.NO)
        try:
            self.node = rclpy.create_node(self.name, namespace=self.namespace or None, context=context)
        except BaseException:
            context.try_shutdown()
            raise
        self.context = context
        if self.threads > 1:
            self.executor = MultiThreadedExecutor(num_threads=self.threads, context=self.context)
        else:
            self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, name=f"ros-{self.name}", daemon=True)
        self._thread.start()
        return self.node

    def _spin(self) -> None:
        from rclpy.executors import ExternalShutdownException

        try:
            self.executor.spin()
        except ExternalShutdownException:
            pass
        except Exception:
            log.exception("ROS executor of %s stopped", self.name)

    def in_thread(self, callback: Callable[[Any], Any], name: str = "goal") -> Callable[[Any], Awaitable[Any]]:
        """An action server's execute callback that runs ``callback`` in a thread of its own.

        A goal followed until it ends (feedback, waiting for the simulator) then never holds the
        executor: with a single-threaded executor, goal requests, cancel requests, subscriptions
        and timers are served while goals run.

        Args:
            callback: the blocking execute callback (takes the goal handle, returns the result)
            name: the threads' name prefix

        Returns:
            a coroutine function to pass as ``execute_callback``
        """
        async def execute(goal_handle: Any) -> Any:
            executor = self.executor
            done = executor.create_future()

            def run() -> None:
                try:
                    done.set_result(callback(goal_handle))
                except Exception as error:  # noqa: BLE001 - handed to the action server, which aborts the goal
                    done.set_exception(error)
                with contextlib.suppress(Exception):  # an executor shut down meanwhile has nothing to wake
                    executor.wake()  # the awaiting task resumes now, not at the next unrelated wake-up

            thread = threading.Thread(target=run, name=f"{name}-{self.name}", daemon=True)
            with self._lock:
                self._goal_threads = [t for t in self._goal_threads if t.is_alive()] + [thread]
            thread.start()
            return await done
        return execute

    def join_goal_threads(self, timeout: float = 2.0) -> None:
        """Wait (at most ``timeout`` in all) for the threads of ``in_thread`` to end."""
        deadline = time.monotonic() + timeout
        with self._lock:
            threads = list(self._goal_threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    # -- goals in flight ---------------------------------------------------------

    def track(self, goal_handle: Any) -> None:
        """Remember an accepted goal (a ``ClientGoalHandle``) until its result came (``untrack``)."""
        with self._lock:
            self._goals[id(goal_handle)] = goal_handle

    def untrack(self, goal_handle: Any) -> None:
        """Forget a goal that ended (its result came)."""
        with self._lock:
            self._goals.pop(id(goal_handle), None)
            self._cancelling.pop(id(goal_handle), None)

    def goals_in_flight(self) -> list[Any]:
        with self._lock:
            return list(self._goals.values())

    def cancel_goal(self, goal_handle: Any) -> None:
        """Ask the server to cancel a goal (once); the answer is awaited by ``cancel_all_goals``."""
        with self._lock:
            if id(goal_handle) in self._cancelling:
                return
            self._cancelling[id(goal_handle)] = (goal_handle, None)
        try:
            future = goal_handle.cancel_goal_async()
        except Exception as error:  # noqa: BLE001 - cancelling must go on for the other goals
            log.warning("cannot cancel a goal: %s", error)
            return
        with self._lock:
            if id(goal_handle) in self._cancelling:
                self._cancelling[id(goal_handle)] = (goal_handle, future)

    def track_request(self, future: Any) -> None:
        """Remember a goal request not answered yet (a goal accepted during shutdown is cancelled too)."""
        with self._lock:
            self._requests.add(future)
        future.add_done_callback(lambda f: self._forget_request(f))

    def _forget_request(self, future: Any) -> None:
        with self._lock:
            self._requests.discard(future)

    def cancel_all_goals(self, timeout: float = 2.0) -> int:
        """Cancel every goal in flight; wait (at most ``timeout``) until the servers answered every cancel.

        Goal requests still unanswered are waited for too, and their goals cancelled once accepted.

        Args:
            timeout: seconds to wait for the answers (0: send the cancel requests and return at once)

        Returns:
            how many goals were cancelled
        """
        deadline = time.monotonic() + timeout
        cancelled: set[int] = set()
        while True:
            for goal in self.goals_in_flight():
                cancelled.add(id(goal))
                self.cancel_goal(goal)
            with self._lock:
                pending = [f for _, f in self._cancelling.values() if f is not None and not f.done()]
                pending += [f for f in self._requests if not f.done()]
            if not pending or time.monotonic() >= deadline:
                return len(cancelled)
            time.sleep(0.005)

    # -- shared use ----------------------------------------------------------------

    def acquire(self) -> Any:
        """Start (if needed) and count one more user; pair with ``release``.

        Returns:
            the node
        """
        with self._lock:
            self._users += 1
        return self.start()

    def release(self) -> None:
        """One user fewer; the last one stops the host."""
        with self._lock:
            self._users -= 1
            last = self._users <= 0
        if last:
            self.stop()

    def stop(self, timeout: float = 2.0) -> None:
        """Cancel the goals in flight, then stop the executor and destroy the node and its context."""
        if self.node is None:
            return
        self.cancel_all_goals(timeout)
        executor, node, context, thread = self.executor, self.node, self.context, self._thread
        self.node = self.executor = self._thread = None
        try:
            executor.shutdown(timeout_sec=timeout)
            if thread is not None:
                thread.join(timeout)
            node.destroy_node()
        finally:
            context.try_shutdown()
        global _shared
        if _shared is self:
            _shared = None


_shared: NodeHost | None = None
_shared_lock = threading.Lock()


def shared_host(name: str = "vla_bt", namespace: str = "") -> NodeHost:
    """The process's shared host (created on first use; ``acquire``/``release`` it).

    Args:
        name: node name, if it has to be created
        namespace: namespace, if it has to be created
    """
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = NodeHost(name, namespace)
        return _shared


def use_host(host: NodeHost) -> NodeHost:
    """Make ``host`` the process's shared host (``vla-bt ros`` does, so every part uses its node)."""
    global _shared
    with _shared_lock:
        _shared = host
    return host


def wait_until(condition: Any, timeout: float, period: float = 0.01) -> bool:
    """Poll ``condition()`` until it is true or ``timeout`` seconds passed (for setup and shutdown only)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(period)
    return True
