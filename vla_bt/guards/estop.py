"""The emergency-stop input: the only writer of ``/safety/estop``.

Sources: the API (``press()``/``release()``, used by the simulator and by
programs embedding vla-bt), a file for the command line (``--estop-file
PATH``: pressed while the file exists and does not contain ``0``), and a ROS 2
topic in the ROS backend. Model output has no path to it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import py_trees

from vla_bt import blackboard as keys


class EStop:
    """An emergency-stop input, published to ``/safety/estop`` before every tick.

    Args:
        file: optional file whose presence means "pressed"
        on_change: called (from any thread) when the state changes, e.g. the runner's ``wake``
    """

    def __init__(self, file: str | Path | None = None, on_change: Callable[[], None] | None = None):
        self.file = Path(file) if file else None
        self.on_change = on_change
        self._pressed = False
        self._lock = threading.Lock()
        self.blackboard = py_trees.blackboard.Client(name="EStop")
        self.blackboard.register_key(keys.SAFETY_ESTOP, access=py_trees.common.Access.WRITE)

    def _set(self, pressed: bool) -> None:
        with self._lock:
            changed, self._pressed = self._pressed != pressed, pressed
        if changed and self.on_change is not None:
            self.on_change()

    def press(self) -> None:
        self._set(True)

    def release(self) -> None:
        self._set(False)

    @property
    def pressed(self) -> bool:
        if self.file is not None:
            if not self.file.exists():
                return self._pressed
            try:
                return self._pressed or self.file.read_text().strip() != "0"
            except (OSError, UnicodeDecodeError):
                return True  # there but unreadable: fail safe
        return self._pressed

    def publish(self) -> None:
        self.blackboard.set(keys.SAFETY_ESTOP, self.pressed)

    def pre_tick(self, _tree: py_trees.trees.BehaviourTree) -> None:
        self.publish()
