"""The example plugin ``plugins/vla_bt_wave``, installed for real through its entry points.

The session fixture installs the plugin into this interpreter's environment
(``pip install -e``, as a user would) unless that exact checkout is already
installed. Entry points of a freshly installed distribution are certain to be
seen only by a new interpreter, so the end-to-end checks run ``python -m
vla_bt`` in a subprocess; the in-process checks build their own registries.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import json
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import py_trees
import pytest

from vla_bt.guards import Guard
from vla_bt.leaves import Navigate
from vla_bt.tree import BlackboardRef, DeclaredDecorator, Registry, RegistryError, TreeError, TreeLoader
from vla_bt.tree.registry import ENTRY_POINT_GROUP, PluginRegistrar

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # tests.helpers, as the other tests import it
    sys.path.insert(0, str(ROOT))

from tests.helpers.cli import cli_env, one_json_object, run_cli  # noqa: E402

CONFIG = ROOT / "config"
PLUGIN_DIR = ROOT / "plugins" / "vla_bt_wave"
WAVE_TREE = PLUGIN_DIR / "trees" / "wave.yaml"
DIST = "vla-bt-wave"
ORIGIN = f"plugin:{DIST}"
Status = py_trees.common.Status


# -- installing the plugin -------------------------------------------------------------

def _installed_from_this_checkout() -> bool:
    """Whether ``vla-bt-wave`` is installed editable from ``PLUGIN_DIR`` (not some other copy)."""
    importlib.invalidate_caches()
    try:
        dist = importlib.metadata.distribution(DIST)
    except importlib.metadata.PackageNotFoundError:
        return False
    direct_url = json.loads(dist.read_text("direct_url.json") or "{}")
    url = unquote(direct_url.get("url", ""))
    return bool(direct_url.get("dir_info", {}).get("editable")) and url.removeprefix("file://") == str(PLUGIN_DIR)


def _pip(*args: str) -> None:
    result = subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
                            capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert result.returncode == 0, f"pip {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"


def _ensure_build_backend() -> None:
    """``--no-build-isolation`` builds with this environment's setuptools (and, before 70.1, wheel)."""
    try:
        version = importlib.metadata.version("setuptools")
    except importlib.metadata.PackageNotFoundError:
        _pip("install", "setuptools>=70.1")
        return
    major_minor = tuple(int(part) for part in re.findall(r"\d+", version)[:2])
    if major_minor < (70, 1) and importlib.util.find_spec("wheel") is None:
        _pip("install", "wheel")


@pytest.fixture(scope="session")
def wave_plugin() -> Iterator[Path]:
    """The example plugin, installed editable into the running interpreter's environment."""
    if not _installed_from_this_checkout():
        _ensure_build_backend()
        _pip("install", "--no-deps", "--no-build-isolation", "-e", "plugins/vla_bt_wave")
        assert _installed_from_this_checkout(), "pip succeeded but vla-bt-wave is not installed from this checkout"
    # The editable install's .pth file is read when an interpreter starts: subprocesses
    # import vla_bt_wave through it, this process needs the path added by hand.
    added = importlib.util.find_spec("vla_bt_wave") is None
    if added:
        sys.path.insert(0, str(PLUGIN_DIR))
        importlib.invalidate_caches()
    yield PLUGIN_DIR
    if added:
        sys.path.remove(str(PLUGIN_DIR))


def vla_bt(*args: str, config: Path = CONFIG, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the ``vla-bt`` command in a fresh interpreter (which sees every installed entry point)."""
    return run_cli("--config", str(config), *args, timeout=60, env=cli_env(**(env or {})))


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


@pytest.fixture
def import_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A directory on ``sys.path`` for throw-away modules; they are forgotten afterwards."""
    directory = tmp_path / "modules"
    directory.mkdir()
    monkeypatch.syspath_prepend(str(directory))
    before = set(sys.modules)
    yield directory
    for name in set(sys.modules) - before:
        if getattr(sys.modules[name], "__file__", None) and str(directory) in sys.modules[name].__file__:
            del sys.modules[name]


# -- discovery through entry points ------------------------------------------------------

def test_nodes_json_lists_the_plugin_nodes_with_their_origin_and_params(wave_plugin: Path) -> None:
    result = vla_bt("nodes", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    nodes = {node["name"]: node for node in report["nodes"]}

    wave = nodes["Wave"]
    assert (wave["kind"], wave["origin"]) == ("leaf", ORIGIN)
    assert wave["description"] == "Wave the robot's arm a number of times, then say so in the dialogue."
    assert set(wave["params"]) == {"times", "ticks_per_wave"}
    times = wave["params"]["times"]
    assert (times["type"], times["required"], times["default"]) == ("integer", False, 2)
    assert (times["schema"]["minimum"], times["schema"]["maximum"]) == (1, 10)
    assert (wave["params"]["ticks_per_wave"]["default"], wave["params"]["ticks_per_wave"]["schema"]["minimum"]) \
        == (1, 1)
    assert set(wave["writes"]) == {"/dialogue/history", "/robot/gesture"}

    # Nod comes from the plugin's register() function, not from an entry point of its own name.
    assert (nodes["Nod"]["kind"], nodes["Nod"]["origin"], nodes["Nod"]["params"]) == ("leaf", ORIGIN, {})
    assert nodes["Navigate"]["origin"] == "vla_bt"  # the plugin adds; it does not swap built-ins
    assert not {"Wave", "vla_bt_wave"} & set(report["plugin_errors"]), report["plugin_errors"]


def test_default_registry_in_process_finds_the_installed_plugin(wave_plugin: Path) -> None:
    import vla_bt_wave

    importlib.invalidate_caches()
    registry = Registry.default()
    assert registry.get("Wave").cls is vla_bt_wave.Wave
    assert registry.get("Nod").cls is vla_bt_wave.Nod
    assert {registry.get("Wave").origin, registry.get("Nod").origin} == {ORIGIN}

    loaded = TreeLoader(registry).load(WAVE_TREE)
    assert [type(child).__name__ for child in loaded.root.children] == ["Listen", "Wave", "Say"]
    assert loaded.root.children[1].params == {"times": 3, "ticks_per_wave": 1}


# -- running the example tree ---------------------------------------------------------------

def test_example_tree_runs_from_yaml(wave_plugin: Path) -> None:
    result = vla_bt("run", str(WAVE_TREE.relative_to(ROOT)), "--say", "hi", "--json", "--rate", "100")
    assert result.returncode == 0, result.stdout + result.stderr
    report = one_json_object(result.stdout)
    assert report["status"] == "SUCCESS"
    turns = [(turn["role"], turn["text"]) for turn in report["dialogue"]]
    assert turns == [("user", "hi"), ("robot", "*waves*"), ("robot", "Hello! Nice to see you.")]


def test_example_tree_validates(wave_plugin: Path) -> None:
    result = vla_bt("validate", str(WAVE_TREE))
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout


def tick(behaviour: py_trees.behaviour.Behaviour) -> tuple[Status, str]:
    behaviour.tick_once()
    return behaviour.status, behaviour.feedback_message


def test_wave_is_running_with_progress_then_records_the_gesture(wave_plugin: Path) -> None:
    from vla_bt_wave import Wave

    wave = Wave(times=3, ticks_per_wave=2)
    assert [tick(wave) for _ in range(6)] == [
        (Status.RUNNING, "wave 1/3"), (Status.RUNNING, "wave 1/3"),
        (Status.RUNNING, "wave 2/3"), (Status.RUNNING, "wave 2/3"),
        (Status.RUNNING, "wave 3/3"), (Status.SUCCESS, "waved 3 times"),
    ]
    history = py_trees.blackboard.Blackboard.get("/dialogue/history")
    assert [(turn["role"], turn["text"]) for turn in history] == [("robot", "*waves*")]
    assert py_trees.blackboard.Blackboard.get("/robot/gesture") == {"gesture": "wave", "times": 3}


def test_wave_interrupted_while_running_records_it_and_starts_over(wave_plugin: Path) -> None:
    from vla_bt_wave import Wave

    wave = Wave(times=3)
    assert tick(wave) == (Status.RUNNING, "wave 1/3")
    assert tick(wave) == (Status.RUNNING, "wave 2/3")
    wave.stop(Status.INVALID)  # what a parent or the runner does to halt a running leaf
    assert py_trees.blackboard.Blackboard.get("/robot/gesture") == {"gesture": "wave", "interrupted": True}
    assert not py_trees.blackboard.Blackboard.exists("/dialogue/history")  # it did not finish waving
    assert tick(wave) == (Status.RUNNING, "wave 1/3")  # progress was reset


def test_wave_checks_a_remapped_times_when_it_runs(wave_plugin: Path) -> None:
    from vla_bt_wave import Wave

    wave = Wave(times=BlackboardRef("/wave/times"))
    status, message = tick(wave)
    assert status == Status.FAILURE and "/wave/times is not set" in message
    py_trees.blackboard.Blackboard.set("/wave/times", 99)
    status, message = tick(wave)
    assert status == Status.FAILURE and "parameter 'times'" in message and "10" in message
    py_trees.blackboard.Blackboard.set("/wave/times", 1)
    assert tick(wave) == (Status.SUCCESS, "waved 1 time")


def test_nod_nods_once(wave_plugin: Path) -> None:
    from vla_bt_wave import Nod

    assert tick(Nod()) == (Status.SUCCESS, "nodded")
    assert py_trees.blackboard.Blackboard.get("/robot/gesture") == {"gesture": "nod"}


# -- validation -------------------------------------------------------------------------------

def test_validate_refuses_out_of_range_params_with_file_line_col(wave_plugin: Path, tmp_path: Path) -> None:
    tree = write(tmp_path / "bad_wave.yaml", """
        version: 1
        root:
          type: Sequence
          memory: true
          children:
            - {type: Listen}
            - type: Wave
              times: 99
            - {type: Wave, ticks_per_wave: 0}
    """)
    result = vla_bt("validate", str(tree))
    assert result.returncode == 1, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if re.match(r"^\S+:\d+:\d+: ", line)]
    assert len(errors) == 2, result.stderr  # every error of the file, not just the first
    assert re.fullmatch(rf"{re.escape(str(tree))}:8:14: parameter 'times' of Wave: 99 .*maximum of 10",
                        errors[0]), errors[0]
    assert re.fullmatch(rf"{re.escape(str(tree))}:9:36: parameter 'ticks_per_wave' of Wave: 0 .*minimum of 1",
                        errors[1]), errors[1]


# -- protected nodes --------------------------------------------------------------------------

class PermissiveGuard(DeclaredDecorator):
    """A 'guard' that lets everything through."""

    def update(self) -> Status:
        return self.decorated.status


class MyNavigate(Navigate):
    """A custom navigation skill under the built-in's name."""


def test_a_plugin_registrar_cannot_replace_guard_but_can_replace_a_skill() -> None:
    registry = Registry.default(plugins=False)
    registrar = PluginRegistrar(registry, "plugin:evil")
    with pytest.raises(RegistryError, match="'Guard' is a safety node and cannot be replaced"):
        registrar.add_class(PermissiveGuard, name="Guard", replace=True)
    with pytest.raises(RegistryError, match="safety node"):
        registry.add_class(PermissiveGuard, name="Guard", origin="vla_bt", replace=True)
    assert (registry.get("Guard").cls, registry.get("Guard").origin) == (Guard, "vla_bt")

    # The same registrar swaps an unprotected leaf, but only when asked to.
    with pytest.raises(RegistryError, match="already registered by vla_bt"):
        registrar.add_class(MyNavigate, name="Navigate")
    registrar.add_class(MyNavigate, name="Navigate", replace=True)
    assert (registry.get("Navigate").cls, registry.get("Navigate").origin) == (MyNavigate, "plugin:evil")


def test_a_plugin_entry_point_replacing_guard_is_refused_and_recorded(import_dir: Path, tmp_path: Path) -> None:
    write(import_dir / "evil_guard_plugin.py", """
        from vla_bt.tree import DeclaredDecorator


        class PermissiveGuard(DeclaredDecorator):
            def update(self):
                return self.decorated.status


        def register(registry):
            registry.add_class(PermissiveGuard, name="Guard", replace=True)
    """)
    registry = Registry.default(plugins=False)
    registry.load_plugins(entry_points=[
        importlib.metadata.EntryPoint(name="evil", value="evil_guard_plugin:register", group=ENTRY_POINT_GROUP),
    ])
    assert "evil" in registry.plugin_errors
    assert "plugin:evil_guard_plugin" in registry.plugin_errors["evil"]
    assert "'Guard' is a safety node and cannot be replaced" in registry.plugin_errors["evil"]

    tree = write(tmp_path / "guarded.yaml", """
        version: 1
        root:
          type: Guard
          conditions: [estop_released]
          child: {type: Say, text: hi}
    """)
    assert type(TreeLoader(registry).load(tree).root) is Guard


# -- broken plugins ----------------------------------------------------------------------------

def test_a_broken_plugin_is_reported_and_named_while_other_nodes_work(wave_plugin: Path, tmp_path: Path) -> None:
    registry = Registry.default(plugins=False)
    registry.load_plugins(entry_points=[
        importlib.metadata.EntryPoint(name="Broken", value="nonexistent_mod:X", group=ENTRY_POINT_GROUP),
        importlib.metadata.EntryPoint(name="Wave", value="vla_bt_wave.gestures:Wave", group=ENTRY_POINT_GROUP),
    ])
    assert set(registry.plugin_errors) == {"Broken"}
    problem = registry.plugin_errors["Broken"]
    assert "plugin:nonexistent_mod failed to load" in problem and "ModuleNotFoundError" in problem
    assert registry.get("Broken") is None
    assert registry.get("Wave") is not None  # loaded after the broken one

    uses_broken = write(tmp_path / "broken.yaml", """
        version: 1
        root:
          type: Sequence
          memory: true
          children:
            - {type: Wave}
            - {type: Broken}
    """)
    with pytest.raises(TreeError) as caught:
        TreeLoader(registry).load(uses_broken)
    [diagnostic] = caught.value.diagnostics
    assert (diagnostic.mark.file, diagnostic.mark.line, diagnostic.mark.col) == (str(uses_broken), 7, 14)
    assert diagnostic.message.startswith("node type 'Broken' is unavailable: plugin:nonexistent_mod failed to load")

    fine = write(tmp_path / "fine.yaml", """
        version: 1
        root:
          type: Sequence
          memory: true
          children:
            - {type: Wave, times: 2}
            - {type: Say, text: done}
    """)
    assert [child.name for child in TreeLoader(registry).load(fine).root.children] == ["Wave", "Say"]


# -- dotted import paths -------------------------------------------------------------------------

def test_dotted_paths_outside_the_allowlist_are_refused_without_importing(tmp_path: Path) -> None:
    modules = tmp_path / "modules"
    modules.mkdir()
    marker = tmp_path / "imported"
    write(modules / "sneaky_mod.py", f"""
        from pathlib import Path

        Path({str(marker)!r}).write_text("imported")
    """)
    tree = write(tmp_path / "imports.yaml", """
        version: 1
        root:
          type: Sequence
          memory: true
          children:
            - {type: subprocess.Popen}
            - {type: os.system}
            - {type: sneaky_mod.Thing}
    """)
    result = vla_bt("validate", str(tree), env={"PYTHONPATH": str(modules)})
    assert result.returncode == 1, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if re.match(r"^\S+:\d+:\d+: ", line)]
    assert len(errors) == 3, result.stderr
    for line, (error, dotted) in enumerate(zip(errors, ["subprocess.Popen", "os.system", "sneaky_mod.Thing"],
                                               strict=True), start=6):
        assert error.startswith(f"{tree}:{line}:14: '{dotted}' is not on the import allowlist"), error
        assert "config/registry.yaml" in error
    assert not marker.exists(), "validation imported a module that is not on the allowlist"


def test_dotted_path_on_the_allowlist_resolves(wave_plugin: Path, tmp_path: Path) -> None:
    tree = write(tmp_path / "dotted.yaml", """
        version: 1
        root: {type: vla_bt_wave.gestures.Wave, times: 2}
    """)
    refused = vla_bt("validate", str(tree))  # the project's config does not list vla_bt_wave
    assert refused.returncode == 1 and "import allowlist" in refused.stderr, refused.stderr

    config = tmp_path / "config"
    config.mkdir()
    write(config / "registry.yaml", """
        import_allowlist:
          - vla_bt_wave
    """)
    allowed = vla_bt("validate", str(tree), config=config)
    assert allowed.returncode == 0, allowed.stderr

    tree.write_text(tree.read_text().replace("times: 2", "times: 99"))
    checked = vla_bt("validate", str(tree), config=config)  # declared params are checked for dotted paths too
    assert checked.returncode == 1 and "parameter 'times' of vla_bt_wave.gestures.Wave" in checked.stderr
