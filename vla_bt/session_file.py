"""A conversation that survives restarts: ``/dialogue/history`` persisted to a session file.

``vla-bt run … --session FILE.json`` loads the dialogue (and what "it" and
"there" refer to) before the first tick, and writes it back after every tick
that changed it — atomically (write a new file, then rename), so a crash or a
signal never leaves a half-written session.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import py_trees

from vla_bt import blackboard as keys
from vla_bt.tree.diagnostics import Diagnostic, Mark, TreeError, nesting_guard
from vla_bt.tree.yamlsrc import check_json_nesting, read_source

PERSISTED = (keys.DIALOGUE_HISTORY, keys.DIALOGUE_CONTEXT)


class SessionFile:
    """Loads and saves the dialogue of a run.

    Args:
        path: the session file (created on the first save)
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self.blackboard = py_trees.blackboard.Client(name="SessionFile")
        for key in PERSISTED:
            self.blackboard.register_key(key, access=py_trees.common.Access.WRITE)
        self._saved: Any = None
        self._kept: dict[str, Any] = {}  # keys of the file this class does not own, written back as they were

    def load(self) -> None:
        """Put the saved dialogue on the blackboard (nothing if the file does not exist yet).

        Raises:
            TreeError: the file exists but is not a session file (not a regular file, too large, not JSON,
                nested too deeply, or not the expected shape)
        """
        if not self.path.exists():
            return
        text = read_source(self.path)  # a regular file of bounded size, or bad input naming it
        check_json_nesting(text, str(self.path))
        try:
            with nesting_guard(str(self.path)):
                data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TreeError([Diagnostic(Mark(str(self.path), exc.lineno, exc.colno),
                                        f"cannot read the session: {exc.msg}")]) from None
        history = data.get("history") if isinstance(data, dict) else None
        if not isinstance(history, list) or not all(
                isinstance(t, dict) and t.get("role") in ("user", "robot") and isinstance(t.get("text"), str)
                for t in history):
            raise TreeError([Diagnostic(Mark(str(self.path), 1, 1),
                                        "not a session file: expected {\"history\": [{role, text, t}, ...]}")])
        self.blackboard.set(keys.DIALOGUE_HISTORY, history[-keys.HISTORY_LIMIT:])
        if isinstance(data.get("context"), dict):
            self.blackboard.set(keys.DIALOGUE_CONTEXT, data["context"])
        self._kept = {k: v for k, v in data.items() if k not in ("history", "context")}
        self._saved = self._state()

    def _state(self) -> dict[str, Any]:
        def get(key: str) -> Any:
            return self.blackboard.get(key) if self.blackboard.exists(key) else None
        return {"history": get(keys.DIALOGUE_HISTORY) or [], "context": get(keys.DIALOGUE_CONTEXT) or {}}

    def save(self) -> None:
        """Write the dialogue if it changed since the last save (atomic)."""
        state = self._state()
        if state == self._saved:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".session-", suffix=".json")
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump({**self._kept, **state}, out, indent=1)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, self.path)
        self._saved = state

    def post_tick(self, _tree: py_trees.trees.BehaviourTree) -> None:
        self.save()
