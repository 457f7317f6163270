"""The terminal view of a running tree: a live tree display and the dialogue.

Attached to the tree as a post-tick handler (a cross-cutting concern stays
out of the behaviours). On a terminal it redraws the tree in place whenever a
node's status or message changes; in a pipe it prints one line per change.
"""

from __future__ import annotations

import unicodedata
from typing import Any

import py_trees
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.tree import Tree

from vla_bt import blackboard as keys

Status = py_trees.common.Status
STYLE = {
    Status.SUCCESS: ("✔", "green"),
    Status.FAILURE: ("✘", "red"),
    Status.RUNNING: ("▶", "yellow"),
    Status.INVALID: ("·", "dim"),
}


def shown(text: str) -> str:
    """``text`` safe to put in rich markup on a terminal: markup escaped, control characters as ``�``.

    What is shown comes from users and models; an escape sequence in it would
    otherwise reach the terminal (retitle it, move the cursor, hide lines).
    """
    return escape("".join("\ufffd" if unicodedata.category(ch) == "Cc" and ch not in "\n\t" else ch
                          for ch in str(text)))


def _label(node: py_trees.behaviour.Behaviour) -> str:
    icon, style = STYLE[node.status]
    kind = type(node).__name__
    text = f"[{style}]{icon} {shown(node.name)}[/]"
    if kind != node.name:
        text += f" [dim]{kind}[/]"
    if node.feedback_message:
        text += f" [italic]{shown(node.feedback_message)}[/]"
    return text


def tree_renderable(root: py_trees.behaviour.Behaviour) -> Tree:
    """The tree as a rich ``Tree`` with a status icon and message per node."""
    def add(parent: Tree, node: py_trees.behaviour.Behaviour) -> None:
        branch = parent.add(_label(node))
        for child in node.children:
            add(branch, child)

    top = Tree(_label(root))
    for child in root.children:
        add(top, child)
    return top


class ConsoleView:
    """Shows a running tree on the terminal.

    Args:
        root: the tree's root
        console: where to draw (standard output by default)

    Example:
        >>> with ConsoleView(tree.root) as view:
        ...     tree.add_post_tick_handler(view.post_tick)
        ...     runner.run()
    """

    def __init__(self, root: py_trees.behaviour.Behaviour, console: Console | None = None):
        self.root = root
        self.console = console or Console()
        self._live: Live | None = None
        self._states: dict[Any, tuple[Status, str]] = {}
        self._last_turn: Any = None

    def __enter__(self) -> ConsoleView:
        if self.console.is_terminal:
            self._live = Live(tree_renderable(self.root), console=self.console, auto_refresh=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.update(tree_renderable(self.root), refresh=True)
            self._live.__exit__(None, None, None)

    def post_tick(self, _tree: py_trees.trees.BehaviourTree) -> None:
        """Redraw (or print) what changed since the last tick."""
        self._show_dialogue()
        changed = []
        for node in self.root.iterate():
            state = (node.status, node.feedback_message)
            if self._states.get(node.id) != state:
                self._states[node.id] = state
                changed.append(node)
        if not changed:
            return
        if self._live is not None:
            self._live.update(tree_renderable(self.root), refresh=True)
            return
        for node in changed:
            if not node.children and node.status != Status.INVALID:
                self.console.print(_label(node), highlight=False)

    def _show_dialogue(self) -> None:
        history = keys.read(keys.DIALOGUE_HISTORY, []) or []
        # The history is bounded, so find where the last shown turn is now.
        start = next((i + 1 for i in range(len(history) - 1, -1, -1) if history[i] == self._last_turn), 0)
        for turn in history[start:]:
            who = "[bold cyan]you[/]" if turn["role"] == "user" else "[bold magenta]robot[/]"
            self.console.print(f"{who}: {shown(turn['text'])}", highlight=False)
        if history:
            self._last_turn = history[-1]
