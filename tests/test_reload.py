"""Hot reload: the tree file is edited while the tree runs.

A valid edit swaps only the changed parts, at a safe point, without
restarting the run; an invalid edit is refused with ``FILE:LINE:COL`` and the
old tree keeps running; a running navigation in a changed part is stopped
(policy ``stop``: its action cancelled, a safe stop commanded) or waited for
(policy ``wait``). The runs are real: ``assemble`` on the simulator, the
watcher polling the file from its thread, edits written from another thread.
"""

from __future__ import annotations

import io
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import py_trees
import pytest
from rich.console import Console

from vla_bt import blackboard as keys
from vla_bt.app import assemble
from vla_bt.guards.audit import AuditLog
from vla_bt.robot.sim import SimRobot
from vla_bt.robot.world import load_world
from vla_bt.speech import ScriptedUtterances
from vla_bt.tree.loader import TreeLoader
from vla_bt.tree.registry import Registry
from vla_bt.tree.reload import TreeWatcher, annotate, attach_watcher, changes
from vla_bt.tree.runner import RunResult

ROOT = Path(__file__).resolve().parent.parent
LEGS = """\
version: 1
name: legs
subtrees:
  leg:
    root: {type: Navigate, name: Leg, target: kitchen}
root:
  type: Sequence
  name: Main
  memory: true
  children:
    - {type: Say, text: "starting"}
    - type: Repeat
      name: Twice
      num_success: 2
      child: {type: Subtree, ref: leg}
    - {type: Say, text: "done"}
"""


@dataclass
class Watched:
    path: Path
    result: RunResult
    audit: AuditLog
    watcher: TreeWatcher
    console: str
    robot: SimRobot
    dialogue: list[str]


def run_watched(tmp_path: Path, text: str, policy: str, edit: Callable[[Path, AuditLog, SimRobot], None],
                time_scale: float = 5.0, files: dict[str, str] | None = None) -> Watched:
    """Run a tree file under a watcher while ``edit`` (in another thread) changes it."""
    path = tmp_path / "tree.yaml"
    path.write_text(text, encoding="utf-8")
    for name, content in (files or {}).items():
        (tmp_path / name).write_text(content, encoding="utf-8")
    registry = Registry.default()
    loader = TreeLoader(registry)
    world = load_world(ROOT / "config" / "world.yaml")
    robot = SimRobot(world, time_scale=time_scale)
    audit = AuditLog()
    run = assemble(loader.load(path), registry, world=world, utterances=ScriptedUtterances([]), robot=robot,
                   audit=audit, max_seconds=30)
    buffer = io.StringIO()
    watcher = attach_watcher(run, loader, path, policy, console=Console(file=buffer, width=200), interval=0.05)
    editor = threading.Thread(target=edit, args=(path, audit, robot), daemon=True)
    editor.start()
    result = run.execute()
    editor.join(10)
    dialogue = [turn["text"] for turn in keys.read(keys.DIALOGUE_HISTORY, []) or []]
    return Watched(path, result, audit, watcher, buffer.getvalue(), robot, dialogue)


def wait_for(check: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError("timed out")


def navigating(audit: AuditLog, robot: SimRobot) -> None:
    """Until the first navigation has started and the robot is on its way."""
    wait_for(lambda: audit.of_kind("command") and robot.pose[0] > 0.3)


def rewrite(path: Path, *replacements: tuple[str, str]) -> None:
    text = path.read_text(encoding="utf-8")
    for old, new in replacements:
        assert old in text
        text = text.replace(old, new)
    path.write_text(text, encoding="utf-8")


def kinds(audit: AuditLog) -> list[str]:
    return [e["kind"] if e["kind"] != "command" else f"command {e['args']['target']}" for e in audit.events]


LIVING_ROOM = (1.5, 4.0)
KITCHEN = (4.0, 2.0)


# -- swaps while running ---------------------------------------------------------------------------------


def test_policy_stop_halts_the_running_navigation_then_swaps(tmp_path: Path) -> None:
    def edit(path: Path, audit: AuditLog, robot: SimRobot) -> None:
        navigating(audit, robot)
        rewrite(path, ("target: kitchen", "target: living_room"))

    done = run_watched(tmp_path, LEGS, "stop", edit)
    assert done.result.status == "SUCCESS", done.result.reason
    assert kinds(done.audit) == ["command kitchen", "safe_stop", "tree_swap", "command living_room",
                                 "command living_room"]
    assert done.audit.of_kind("safe_stop")[0]["reason"] == "Leg halted"
    (swap,) = done.watcher.swaps
    assert swap.halted == ["Leg"] and swap.policy == "stop"
    assert [s["what"] for s in swap.swaps] == ["subtree 'leg' ('Leg')"]
    assert math.dist(done.robot.pose[:2], LIVING_ROOM) < 1e-6, "the new target was driven to"
    assert done.robot.stops and done.robot.stops[0][1] == "Leg halted", "the robot was stopped, not left driving"
    assert "reloaded: swapped subtree 'leg' ('Leg') (policy stop; halted 'Leg')" in done.console
    assert done.dialogue == ["starting", "done"], "the run was not restarted"


def test_policy_wait_lets_the_running_navigation_finish_then_swaps(tmp_path: Path) -> None:
    at_swap: list[tuple[float, float]] = []

    def edit(path: Path, audit: AuditLog, robot: SimRobot) -> None:
        navigating(audit, robot)
        rewrite(path, ("target: kitchen", "target: living_room"))
        wait_for(lambda: audit.of_kind("tree_swap"))
        at_swap.append(robot.pose[:2])

    done = run_watched(tmp_path, LEGS, "wait", edit)
    assert done.result.status == "SUCCESS", done.result.reason
    assert kinds(done.audit) == ["command kitchen", "tree_swap", "command living_room"]
    assert not done.robot.stops, "nothing was stopped"
    assert math.dist(at_swap[0], KITCHEN) < 1e-6, "the first navigation had reached the kitchen before the swap"
    (swap,) = done.watcher.swaps
    assert swap.halted == [] and swap.swaps[0]["was"] == "SUCCESS"
    assert "waiting for subtree 'leg' ('Leg') to finish before swapping (policy wait)" in done.console
    assert math.dist(done.robot.pose[:2], LIVING_ROOM) < 1e-6


def test_a_valid_edit_elsewhere_swaps_without_disturbing_the_navigation(tmp_path: Path) -> None:
    def edit(path: Path, audit: AuditLog, robot: SimRobot) -> None:
        navigating(audit, robot)
        rewrite(path, ('text: "done"', 'text: "all done, edited while driving"'))

    done = run_watched(tmp_path, LEGS, "stop", edit)
    assert done.result.status == "SUCCESS", done.result.reason
    assert kinds(done.audit) == ["command kitchen", "tree_swap", "command kitchen"]
    (swap,) = done.watcher.swaps
    assert [s["what"] for s in swap.swaps] == ["'Say' (child 3 of 'Main')"] and swap.halted == []
    assert done.dialogue == ["starting", "all done, edited while driving"]


def test_an_invalid_edit_is_refused_and_the_old_tree_keeps_running(tmp_path: Path) -> None:
    def edit(path: Path, audit: AuditLog, robot: SimRobot) -> None:
        navigating(audit, robot)
        rewrite(path, ("{type: Navigate, name: Leg, target: kitchen}", "{type: Navigat, name: Leg, target: kitchen}"),
                ("num_success: 2", "num_success: two"))
        wait_for(lambda: audit.of_kind("tree_reload_refused"))
        rewrite(path, ("type: Navigat,", "type: Navigate,"), ("num_success: two", "num_success: 2"),
                ('text: "done"', 'text: "fixed"'))

    done = run_watched(tmp_path, LEGS, "stop", edit)
    assert done.result.status == "SUCCESS", done.result.reason
    (refused,) = done.audit.of_kind("tree_reload_refused")
    assert refused["errors"][0] == f"{done.path}:5:18: unknown node type 'Navigat' (did you mean 'Navigate'?)"
    assert refused["errors"][1].startswith(f"{done.path}:14:20: parameter 'num_success' of Repeat: expected integer")
    assert "changed but is invalid; the running tree is kept" in done.console
    assert f"{done.path}:5:18: unknown node type 'Navigat'" in done.console
    assert kinds(done.audit)[:3] == ["command kitchen", "tree_reload_refused", "tree_swap"]
    assert not done.robot.stops, "the refused edit did not touch the running navigation"
    assert done.dialogue == ["starting", "fixed"], "the fixed file was swapped in afterwards"


def test_an_edit_in_an_included_file_swaps_its_subtree(tmp_path: Path) -> None:
    library = "version: 1\nsubtrees:\n  leg:\n    root: {type: Navigate, name: Leg, target: kitchen}\n" \
              "  goodbye:\n    root: {type: Say, name: Bye, text: bye}\n"
    tree = LEGS.replace("""  leg:
    root: {type: Navigate, name: Leg, target: kitchen}
""", "  include: lib.yaml\n").replace('{type: Say, text: "done"}', "{type: Subtree, ref: goodbye}")

    def edit(path: Path, audit: AuditLog, robot: SimRobot) -> None:
        navigating(audit, robot)
        rewrite(path.parent / "lib.yaml", ("text: bye", "text: see you"))

    done = run_watched(tmp_path, tree, "wait", edit, files={"lib.yaml": library})
    assert done.result.status == "SUCCESS", done.result.reason
    (swap,) = done.watcher.swaps
    assert [s["what"] for s in swap.swaps] == ["subtree 'goodbye' ('Bye')"]
    assert done.dialogue == ["starting", "see you"]


# -- what is swapped (no run) -------------------------------------------------------------------------------

CLEAR_TABLE = (ROOT / "trees" / "clear_table.yaml").read_text(encoding="utf-8")


def diff(tmp_path: Path, edited: str, granularity: str = "node") -> list[str]:
    loader = TreeLoader(Registry.default())
    before, after = tmp_path / "before.yaml", tmp_path / "after.yaml"
    before.write_text(CLEAR_TABLE, encoding="utf-8")
    after.write_text(edited, encoding="utf-8")
    old, new = loader.load(before), loader.load(after)
    swaps = changes(old.root, annotate(old.document, old.root), new.root, annotate(new.document, new.root),
                    granularity)
    return [s.what for s in swaps]


def test_only_the_changed_parts_are_swap_points(tmp_path: Path) -> None:
    assert diff(tmp_path, CLEAR_TABLE) == []
    assert diff(tmp_path, CLEAR_TABLE.replace("# ", "#  ").replace("memory: true\n", "memory: true  # same\n")) == []
    navigate = CLEAR_TABLE.replace("{type: Navigate, target: living_room}", "{type: Navigate, target: bedroom}")
    assert diff(tmp_path, navigate) == [
        "'Navigate' (child 4 of 'Move red cup') in subtree 'move_to_shelf'",
        "'Navigate' (child 4 of 'Move blue cup') in subtree 'move_to_shelf'"]
    assert diff(tmp_path, navigate, "subtree") == ["subtree 'move_to_shelf' ('Move red cup')",
                                                   "subtree 'move_to_shelf' ('Move blue cup')"]
    assert diff(tmp_path, CLEAR_TABLE.replace("with: {object: blue cup}", "with: {object: green mug}")) == [
        "subtree 'move_to_shelf' ('Move green mug')"]
    assert diff(tmp_path, CLEAR_TABLE.replace("{human_clearance: {min_distance: 0.5}}",
                                              "{human_clearance: {min_distance: 0.8}}")) == ["'Safety' (child 1 of "
                                                                                             "'Clear the table')"]
    added = CLEAR_TABLE.replace("          - {type: Subtree, ref: move_to_shelf, with: {object: blue cup}}\n",
                                "          - {type: Subtree, ref: move_to_shelf, with: {object: blue cup}}\n"
                                "          - {type: Subtree, ref: move_to_shelf, with: {object: green mug}}\n")
    assert diff(tmp_path, added) == ["'Cups'"], "a new child: its parent is swapped"
    assert diff(tmp_path, CLEAR_TABLE.replace("name: Clear the table\n  memory: true",
                                              "name: Clear the table\n  memory: false")) == [
        "the root 'Clear the table'"]


class View:
    """Stands for a view that keeps the root (like the terminal view)."""

    def __init__(self, root: py_trees.behaviour.Behaviour):
        self.root = root

    def post_tick(self, _tree: py_trees.trees.BehaviourTree) -> None:
        pass


def test_a_changed_root_is_swapped_and_views_follow(tmp_path: Path) -> None:
    path = tmp_path / "spin.yaml"
    path.write_text("version: 1\nroot:\n  type: Sequence\n  name: Main\n  memory: true\n  children:\n"
                    "    - {type: Running, name: Spin}\n", encoding="utf-8")
    loader = TreeLoader(Registry.default())
    loaded = loader.load(path)
    tree = loaded.tree
    view = View(tree.root)
    tree.add_post_tick_handler(view.post_tick)
    audit, buffer = AuditLog(), io.StringIO()
    waiting = TreeWatcher(tree, loaded, loader, path, policy="wait", audit=audit,
                          console=Console(file=buffer, width=200))
    tree.add_pre_tick_handler(waiting.pre_tick)
    tree.tick()
    old_root = tree.root
    rewrite(path, ("memory: true", "memory: false"))
    assert waiting.check_now()
    for _ in range(3):
        tree.tick()
    assert tree.root is old_root and not waiting.swaps, "policy wait: the running root is not swapped"
    assert "waiting for the root 'Main' to finish" in buffer.getvalue()
    tree.pre_tick_handlers.remove(waiting.pre_tick)
    stopping = TreeWatcher(tree, loaded, loader, path, policy="stop", audit=audit,
                           console=Console(file=buffer, width=200))
    tree.add_pre_tick_handler(stopping.pre_tick)
    assert stopping.check_now()
    tree.tick()
    assert tree.root is not old_root and tree.root.memory is False
    assert old_root.status == py_trees.common.Status.INVALID, "the old root was halted"
    assert view.root is tree.root, "the view shows the new root"
    assert tree.root.status == py_trees.common.Status.RUNNING
    assert [e["swapped"][0]["what"] for e in audit.of_kind("tree_swap")] == ["the root 'Main'"]


def test_unknown_policy_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("version: 1\nroot: {type: Success}\n", encoding="utf-8")
    loader = TreeLoader(Registry.default())
    loaded = loader.load(path)
    with pytest.raises(ValueError, match="unknown swap policy 'later'"):
        TreeWatcher(loaded.tree, loaded, loader, path, policy="later")
