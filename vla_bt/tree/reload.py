"""Hot reload: swap the changed parts of a running tree when its YAML file changes (``vla-bt run … --watch``).

A watcher thread polls the modification time and size of the tree file and
of every file it includes. When they change (and have stopped changing for
one poll, so a half-written file is not read), it loads the file with the
tree loader. An invalid file is refused: its errors are printed as
``FILE:LINE:COL: message``, audited as ``tree_reload_refused``, and the
running tree goes on unchanged.

A valid file is compared with the running tree node by node. Every built
behaviour remembers the YAML it came from (its own settings, its subtree
parameters, and a digest of everything below it), so the comparison finds the
smallest changed parts: a node whose own settings or number of children
changed is a *swap point* — the behaviours built from it (a named subtree's
instance, a single node, or the root) are replaced by the new ones.

Swaps happen at a safe point, between ticks (a pre-tick handler), all swap
points of one edit at once, with the new behaviours ``setup()`` first with the
run's setup arguments. No robot action is left dangling:

* ``stop`` (default): a running swap point is halted first — ``stop()`` calls
  ``terminate()`` on its running behaviours, and a skill leaf's terminate
  cancels its robot action and commands a safe stop — then it is replaced.
* ``wait``: the swap waits until no swap point is running (e.g. the
  navigation has finished), then replaces them.

Each swap is written to the audit log (``tree_swap``) and printed. With
``granularity="subtree"`` swap points are widened to the enclosing named
subtree instance (or the root).

Example:
    >>> watcher = attach_watcher(run, TreeLoader(registry), "trees/patrol.yaml", policy="wait")
    >>> result = run.execute()
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import py_trees
from rich.console import Console
from rich.markup import escape

from .diagnostics import TreeError
from .loader import PLACEHOLDER, LoadedTree, TreeDocument, TreeLoader

Status = py_trees.common.Status
POLICIES = ("stop", "wait")
GRANULARITIES = ("node", "subtree")


# -- where each behaviour came from --------------------------------------------------------


@dataclass(frozen=True)
class Origin:
    """The YAML a behaviour was built from.

    Args:
        own: the node's own settings (everything but its children) and subtree parameters, as JSON
        deep: a digest of ``own`` and of everything below it
        children: how many YAML children were matched with behaviour children (0: none or dynamic ones)
        subtree: the named subtree the node belongs to (``None`` in the root document)
        instance: the node is the root of a ``Subtree`` instance
    """

    own: str
    deep: str
    children: int
    subtree: str | None
    instance: bool


def _substitute(value: Any, env: dict[str, Any]) -> Any:
    """``${param}`` replaced as the loader does (whole values keep their type)."""
    if isinstance(value, list):
        return [_substitute(v, env) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, env) for k, v in value.items()}
    if not isinstance(value, str) or "${" not in value:
        return value
    whole = PLACEHOLDER.fullmatch(value)
    if whole and whole.group(1) in env:
        return env[whole.group(1)]
    return PLACEHOLDER.sub(lambda m: str(env.get(m.group(1), m.group(0))), value)


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)


def annotate(document: TreeDocument, root: py_trees.behaviour.Behaviour) -> dict[Any, Origin]:
    """Map every behaviour built from a document to its ``Origin`` (keyed by behaviour id).

    Args:
        document: the parsed document
        root: the root built from it (by ``TreeLoader.load``)

    Returns:
        behaviour id → origin
    """
    origins: dict[Any, Origin] = {}

    def walk(data: Any, node: py_trees.behaviour.Behaviour, env: dict[str, Any], subtree: str | None,
             prefix: Any = None, instance: bool = False, depth: int = 0) -> str:
        if isinstance(data, dict) and data.get("type") == "Subtree" and depth < 100:
            ref = data.get("ref")
            definition = document.subtrees.get(ref) if isinstance(ref, str) else None
            if definition is not None:
                bound = {k: _substitute(v, env) for k, v in (data.get("with") or {}).items()}
                here = ["Subtree", ref, data.get("name"), bound]
                return walk(definition.root, node, bound, ref, [prefix, here] if prefix else here, True, depth + 1)
        settings = {k: v for k, v in data.items() if k not in ("child", "children")} if isinstance(data, dict) \
            else data
        own = _json([prefix, settings, env])
        kids: list[Any] = []
        if isinstance(data, dict):
            if isinstance(data.get("children"), list):
                kids = list(data["children"])
            elif "child" in data:
                kids = [data["child"]]
        matched = 0
        digests: list[str] = []
        if kids and len(kids) == len(node.children):
            digests = [walk(k, c, env, subtree, None, False, depth + 1)
                       for k, c in zip(kids, node.children, strict=True)]
            matched = len(kids)
        elif kids:  # built differently from its YAML: any change inside replaces the whole node
            digests = [_json(_substitute(kids, env))]
        deep = hashlib.sha1((own + "|" + ",".join(digests)).encode("utf-8")).hexdigest()
        origins[node.id] = Origin(own, deep, matched, subtree, instance)
        return deep

    walk(document.root, root, {}, None)
    return origins


# -- finding what to swap ---------------------------------------------------------------------


@dataclass
class Swap:
    """One swap point: the running behaviour and its replacement."""

    old: py_trees.behaviour.Behaviour
    new: py_trees.behaviour.Behaviour
    what: str
    subtree: str | None

    def to_json(self) -> dict[str, Any]:
        return {"what": self.what, "subtree": self.subtree, "node": self.new.name, "was": self.old.status.name}


def _describe(node: py_trees.behaviour.Behaviour, origin: Origin | None, is_root: bool) -> str:
    if is_root:
        return f"the root '{node.name}'"
    if origin is not None and origin.instance:
        return f"subtree '{origin.subtree}'" + ("" if node.name == origin.subtree else f" ('{node.name}')")
    where = f" in subtree '{origin.subtree}'" if origin is not None and origin.subtree else ""
    parent = node.parent
    if parent is not None and len(parent.children) > 1:
        index = next((i for i, child in enumerate(parent.children) if child is node), 0)
        where = f" (child {index + 1} of '{parent.name}'){where}"
    return f"'{node.name}'{where}"


def changes(old_root: py_trees.behaviour.Behaviour, old: dict[Any, Origin],
            new_root: py_trees.behaviour.Behaviour, new: dict[Any, Origin], granularity: str = "node",
            through: list[tuple[py_trees.behaviour.Behaviour, py_trees.behaviour.Behaviour]] | None = None,
            ) -> list[Swap]:
    """The swap points between a running tree and a newly built one (empty: nothing changed).

    Args:
        old_root: the running tree's root
        old: its origins
        new_root: the new tree's root
        new: its origins
        granularity: ``node`` (smallest changed parts) or ``subtree`` (their enclosing subtree instance or the root)
        through: collects the (running, new) pairs of unchanged nodes above swap points

    Returns:
        the swaps, none inside another
    """
    found: list[tuple[py_trees.behaviour.Behaviour, py_trees.behaviour.Behaviour]] = []
    passed = through if through is not None else []

    def diff(a: py_trees.behaviour.Behaviour, b: py_trees.behaviour.Behaviour) -> None:
        oa, ob = old.get(a.id), new.get(b.id)
        if oa is not None and ob is not None and oa.deep == ob.deep:
            return
        if oa is None or ob is None or oa.own != ob.own or oa.children != ob.children or not oa.children:
            found.append((a, b))
            return
        passed.append((a, b))
        for ca, cb in zip(a.children[: oa.children], b.children[: ob.children], strict=False):
            diff(ca, cb)

    diff(old_root, new_root)
    if granularity == "subtree":
        widened = []
        for a, b in found:
            while a.parent is not None and b.parent is not None and not (old.get(a.id) and old[a.id].instance):
                a, b = a.parent, b.parent
            widened.append((a, b))
        found = widened
    swaps: list[Swap] = []
    chosen = {a.id for a, _ in found}
    for a, b in found:
        ancestor = a.parent
        while ancestor is not None and ancestor.id not in chosen:
            ancestor = ancestor.parent
        if ancestor is None and all(s.old.id != a.id for s in swaps):  # not inside another swap point
            origin = new.get(b.id)
            swaps.append(Swap(a, b, _describe(b, origin, b.parent is None), origin.subtree if origin else None))
    return swaps


# -- replacing behaviours -----------------------------------------------------------------------


def _running_leaves(node: py_trees.behaviour.Behaviour) -> list[str]:
    return [n.name for n in node.iterate() if n.status == Status.RUNNING and not n.children]


def replace(tree: py_trees.trees.BehaviourTree, old: py_trees.behaviour.Behaviour,
            new: py_trees.behaviour.Behaviour) -> None:
    """Put ``new`` where ``old`` is (halting ``old`` first if it runs); works for composites, decorators and the root.

    A composite that was running ``old`` goes on with ``new`` at the same
    place (its ``current_child`` follows), so a sequence with memory does not
    start over.

    Args:
        tree: the running tree
        old: a behaviour of the tree
        new: its replacement (detached from any other tree)
    """
    if old.status == Status.RUNNING:
        old.stop(Status.INVALID)
    parent = old.parent
    new.parent = None
    if parent is None:
        tree.root = new
    elif isinstance(parent, py_trees.decorators.Decorator):
        parent.children[0] = new
        parent.decorated = new
        new.parent = parent
    else:
        index = next(i for i, child in enumerate(parent.children) if child is old)
        parent.children[index] = new
        new.parent = parent
        if getattr(parent, "current_child", None) is old:
            parent.current_child = new
    old.parent = None
    if tree.tree_update_handler is not None:
        tree.tree_update_handler()


def _retire(node: py_trees.behaviour.Behaviour) -> None:
    """Shut down a replaced subtree and drop its blackboard clients (a long session must not grow)."""
    for behaviour in node.iterate():
        try:
            behaviour.shutdown()
        except Exception:  # noqa: BLE001 - an old behaviour's shutdown must not stop the run
            pass
        for client in behaviour.blackboards:
            if client.unique_identifier in py_trees.blackboard.Blackboard.clients:
                client.unregister(clear=False)


# -- the watcher -----------------------------------------------------------------------------------


@dataclass
class SwapRecord:
    """What one applied reload did (``TreeWatcher.swaps``)."""

    swaps: list[dict[str, Any]]
    halted: list[str]
    policy: str
    tick: int


@dataclass
class _Pending:
    loaded: LoadedTree
    origins: dict[Any, Origin]
    swaps: list[Swap] = field(default_factory=list)
    through: list[tuple[Any, Any]] = field(default_factory=list)
    announced: bool = False


class TreeWatcher:
    """Watches a tree file and swaps the changed parts of the running tree.

    Args:
        tree: the running tree (``runner.tree``)
        loaded: what it was loaded from (``runner.loaded``; its document is updated after each swap)
        loader: loads the changed file (a copy is used in the watcher thread)
        path: the tree file
        setup_kwargs: handed to ``setup()`` of new behaviours (``runner.setup_kwargs``)
        policy: ``stop`` (halt a running part, then swap) or ``wait`` (swap once it is idle)
        audit: the audit log (``tree_swap``, ``tree_reload_refused``)
        console: where swaps and errors are printed (standard error by default)
        wake: asks for an early tick once a new version is ready (``runner.wake``)
        interval: seconds between polls of the files
        granularity: ``node`` or ``subtree`` (see the module docstring)

    Raises:
        ValueError: an unknown policy or granularity
    """

    def __init__(self, tree: py_trees.trees.BehaviourTree, loaded: LoadedTree, loader: TreeLoader,
                 path: str | os.PathLike[str], setup_kwargs: dict[str, Any] | None = None, policy: str = "stop",
                 audit: Any = None, console: Console | None = None, wake: Callable[[], None] | None = None,
                 interval: float = 0.25, granularity: str = "node"):
        if policy not in POLICIES:
            raise ValueError(f"unknown swap policy {policy!r} (expected {' or '.join(POLICIES)})")
        if granularity not in GRANULARITIES:
            raise ValueError(f"unknown granularity {granularity!r} (expected {' or '.join(GRANULARITIES)})")
        self.tree = tree
        self.loaded = loaded
        self.loader = TreeLoader(loader.registry)
        self.path = Path(path)
        self.setup_kwargs = dict(setup_kwargs or {})
        self.policy = policy
        self.audit = audit
        self.console = console or Console(stderr=True, highlight=False, soft_wrap=True)
        self.wake = wake or (lambda: None)
        self.interval = interval
        self.granularity = granularity
        self.origins = annotate(loaded.document, tree.root)
        self.swaps: list[SwapRecord] = []
        """Every reload applied, in order."""
        self.refusals: list[list[str]] = []
        """The errors of every refused reload, in order."""
        self._pending: _Pending | None = None
        self._incoming: _Pending | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._stamps = self._stat()

    # -- the watcher thread ---------------------------------------------------------------

    def files(self) -> list[Path]:
        """The tree file and the files its subtrees come from."""
        files = [self.path]
        for definition in self.loaded.document.subtrees.values():
            included = Path(definition.mark.file)
            if included not in files:
                files.append(included)
        return files

    def _stat(self) -> dict[Path, tuple[int, int] | None]:
        stamps: dict[Path, tuple[int, int] | None] = {}
        for file in self.files():
            try:
                info = file.stat()
                stamps[file] = (info.st_mtime_ns, info.st_size)
            except OSError:
                stamps[file] = None
        return stamps

    def start(self) -> TreeWatcher:
        """Start polling in a daemon thread."""
        self._thread = threading.Thread(target=self._watch, name="vla-bt-tree-watcher", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop polling (a runner shutdown hook)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)

    def _watch(self) -> None:
        seen = self._stamps
        while not self._stop.wait(self.interval):
            now = self._stat()
            if now == seen:
                continue
            # Wait until the files stop changing (an editor may write in several steps).
            while not self._stop.wait(max(self.interval, 0.05)):
                again = self._stat()
                if again == now:
                    break
                now = again
            if self._stop.is_set():
                return
            seen = now
            if self.path in now and now[self.path] is None:
                continue  # the file is being replaced; its new version comes with the next change
            self.check_now()

    def check_now(self) -> bool:
        """Load the file now (in the calling thread) and queue the new version for a swap.

        Returns:
            True when the file is valid (queued), False when it was refused
        """
        try:
            loaded = self.loader.load(self.path)
        except TreeError as error:
            self._refuse([str(d) for d in error.diagnostics])
            return False
        except Exception as exc:  # noqa: BLE001 - a broken node constructor must not end the run
            self._refuse([f"{self.path}:1:1: cannot build the tree: {type(exc).__name__}: {exc}"])
            return False
        pending = _Pending(loaded, annotate(loaded.document, loaded.root))
        with self._lock:
            self._incoming = pending
        self.wake()
        return True

    def _refuse(self, errors: list[str]) -> None:
        self.refusals.append(errors)
        self.console.print(f"[red]{escape(str(self.path))} changed but is invalid; the running tree is kept:[/]")
        for line in errors:
            self.console.print(escape(line), style="red")
        if self.audit is not None:
            self.audit.write("tree_reload_refused", file=str(self.path), errors=errors)

    # -- the tick thread ------------------------------------------------------------------

    def pre_tick(self, tree: py_trees.trees.BehaviourTree) -> None:
        """Apply a pending reload at this safe point, if its policy allows (a pre-tick handler)."""
        with self._lock:
            incoming, self._incoming = self._incoming, None
        if incoming is not None:
            incoming.swaps = changes(self.tree.root, self.origins, incoming.loaded.root, incoming.origins,
                                     self.granularity, incoming.through)
            if not incoming.swaps:
                self.loaded.document = incoming.loaded.document
                self._pending = None
                self.console.print(f"[dim]{escape(str(self.path))} changed; the tree is the same[/]")
                return
            self._pending = incoming
        pending = self._pending
        if pending is None:
            return
        busy = [s for s in pending.swaps if s.old.status == Status.RUNNING]
        if busy and self.policy == "wait":
            if not pending.announced:
                pending.announced = True
                names = ", ".join(s.what for s in busy)
                self.console.print(f"[yellow]{escape(str(self.path))} changed: waiting for {escape(names)} "
                                   f"to finish before swapping (policy wait)[/]")
            return
        self._apply(pending)

    def _apply(self, pending: _Pending) -> None:
        kwargs = self.setup_kwargs
        try:
            for swap in pending.swaps:
                for behaviour in swap.new.iterate():
                    behaviour.setup(**kwargs)
        except Exception as exc:  # noqa: BLE001 - a new behaviour that cannot be set up is refused, not run
            self._pending = None
            for swap in pending.swaps:
                _retire(swap.new)
            self._refuse([f"{self.path}:1:1: setup of the new behaviours failed: {type(exc).__name__}: {exc}"])
            return
        halted = [name for swap in pending.swaps for name in _running_leaves(swap.old)]
        described = [swap.to_json() for swap in pending.swaps]
        old_root = self.tree.root
        for swap in pending.swaps:
            for behaviour in swap.old.iterate():
                self.origins.pop(behaviour.id, None)
            replace(self.tree, swap.old, swap.new)
            for behaviour in swap.new.iterate():
                if behaviour.id in pending.origins:
                    self.origins[behaviour.id] = pending.origins[behaviour.id]
            _retire(swap.old)
        self._refresh_ancestors(pending)
        self.loaded.document = pending.loaded.document
        if self.tree.root is not old_root:
            self._rebind_root(old_root, self.tree.root)
        self._pending = None
        record = SwapRecord(described, halted, self.policy, self.tree.count)
        self.swaps.append(record)
        if self.audit is not None:
            self.audit.write("tree_swap", file=str(self.path), policy=self.policy, swapped=record.swaps,
                             halted=halted)
        what = ", ".join(s.what for s in pending.swaps)
        stopped = f"; halted {', '.join(repr(n) for n in halted)}" if halted else ""
        self.console.print(f"[green]{escape(str(self.path))} reloaded: swapped {escape(what)} "
                           f"(policy {self.policy}{escape(stopped)})[/]")

    def _refresh_ancestors(self, pending: _Pending) -> None:
        """The unchanged nodes above the swap points now stand for the new document: take over its origins."""
        for old, new in pending.through:
            if old.id in self.origins and new.id in pending.origins:
                self.origins[old.id] = pending.origins[new.id]

    def _rebind_root(self, old: py_trees.behaviour.Behaviour, new: py_trees.behaviour.Behaviour) -> None:
        """Views that keep the root (the terminal view's ``root``) follow a swapped root."""
        for handler in [*self.tree.pre_tick_handlers, *self.tree.post_tick_handlers]:
            owner = getattr(handler, "__self__", None)
            if owner is not None and getattr(owner, "root", None) is old:
                owner.root = new


def attach_watcher(run: Any, loader: TreeLoader, path: str | os.PathLike[str], policy: str = "stop", *,
                   console: Console | None = None, interval: float = 0.25, granularity: str = "node") -> TreeWatcher:
    """Hot-reload a run's tree file (``vla-bt run … --watch [--swap stop|wait]``).

    Adds the watcher's pre-tick handler (the safe point) and a shutdown hook,
    and starts polling.

    Args:
        run: the assembled ``vla_bt.app.Run``
        loader: the loader the tree was loaded with (its registry builds the new version)
        path: the tree file
        policy: ``stop`` or ``wait``
        console: where to print (standard error by default)
        interval: seconds between polls
        granularity: ``node`` or ``subtree``

    Returns:
        the running watcher

    Raises:
        ValueError: an unknown policy or granularity
    """
    runner = run.runner
    watcher = TreeWatcher(runner.tree, runner.loaded, loader, path, setup_kwargs=runner.setup_kwargs, policy=policy,
                          audit=run.audit, console=console, wake=runner.wake, interval=interval,
                          granularity=granularity)
    runner.tree.add_pre_tick_handler(watcher.pre_tick)
    runner.shutdown_hooks.append(watcher.stop)
    return watcher.start()

