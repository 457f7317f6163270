"""One asyncio loop in a background thread for all network I/O, and handles for leaves.

Behaviours never block a tick. A leaf starts asynchronous work in
``initialise()`` (``bridge.stream(...)``), drains what arrived in ``update()``
(``handle.poll()``), and cancels it in ``terminate()`` (``handle.cancel()``) —
BehaviorTree.CPP's onStart / onRunning / onHalted. Each arriving item calls
``on_item`` (the runner's ``wake``), so the tree ticks within milliseconds of
a stream event instead of at the next period.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import threading
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class AsyncBridge:
    """Runs an asyncio event loop in a daemon thread.

    Example:
        >>> bridge = AsyncBridge.shared()
        >>> bridge.run(asyncio.sleep(0.01, result=1), timeout=1)
        1
    """

    _shared: AsyncBridge | None = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name="vla-bt-asyncio", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    @classmethod
    def shared(cls) -> AsyncBridge:
        """The process-wide bridge, started on first use."""
        with cls._lock:
            if cls._shared is None or cls._shared.loop.is_closed():
                cls._shared = cls()
            return cls._shared

    def submit(self, coroutine: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule a coroutine on the loop; returns a thread-safe future."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run a coroutine to completion from a non-loop thread (for ``setup()`` and ``shutdown()``).

        Raises:
            TimeoutError: it took longer than ``timeout`` seconds (it is cancelled)
        """
        future = self.submit(coroutine)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"gave up after {timeout:g} s") from None

    def stream(self, source: Callable[[], AsyncIterator[T]],
               on_item: Callable[[], None] | None = None) -> StreamHandle[T]:
        """Start consuming an async iterator on the loop; see ``StreamHandle``."""
        return StreamHandle(self, source, on_item)


class StreamHandle(Generic[T]):
    """A running async stream, read without blocking from the tick thread.

    Args:
        bridge: the loop to run on
        source: makes the async iterator (called on the loop)
        on_item: called from the loop thread after each item and at the end
    """

    def __init__(self, bridge: AsyncBridge, source: Callable[[], AsyncIterator[T]],
                 on_item: Callable[[], None] | None = None):
        self._items: collections.deque[T] = collections.deque()
        self._on_item = on_item or (lambda: None)
        self.error: BaseException | None = None
        self._finished = threading.Event()
        self._future = bridge.submit(self._consume(source))

    async def _consume(self, source: Callable[[], AsyncIterator[T]]) -> None:
        try:
            async for item in source():
                self._items.append(item)
                self._on_item()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - handed to the tick thread as data
            self.error = exc
        finally:
            self._finished.set()
            self._on_item()

    def poll(self) -> list[T]:
        """Everything that arrived since the last poll (never blocks)."""
        items = []
        while self._items:
            items.append(self._items.popleft())
        return items

    @property
    def finished(self) -> bool:
        """The stream ended (normally, with ``error`` set, or cancelled)."""
        return self._finished.is_set() or self._future.cancelled()

    def cancel(self) -> None:
        """Stop the stream; the iterator's ``finally`` blocks run on the loop."""
        self._future.cancel()

    def wait(self, timeout: float) -> bool:
        """Block until finished (for tests and shutdown only, never in a tick)."""
        return self._finished.wait(timeout)
