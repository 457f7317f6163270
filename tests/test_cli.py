"""The ``vla-bt`` command line (DESIGN §6), run for real in subprocesses.

Every test starts ``python -m vla_bt`` with cwd and PYTHONPATH set to the
repository, so tree files may name the probes of ``tests.helpers`` by dotted
path when ``--config tests/config`` is given.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # tests.helpers, as the other tests import it
    sys.path.insert(0, str(ROOT))

from tests.helpers.cli import (  # noqa: E402
    assert_no_traceback,
    cli_env,
    one_json_object,
    popen_cli,
    read_audit,
    run_cli,
    run_json,
)

TREES = sorted((ROOT / "trees").glob("*.yaml"))
TEST_CONFIG = str(ROOT / "tests" / "config")
FETCH_NODE_NAMES = ("Fetch", "Listen", "Guard", "Parallel", "Ask", "ParseIntent", "ExecutePlan")
PROJECT_NODES = ("Listen", "Ask", "ParseIntent", "ExecutePlan", "Navigate", "Grasp", "Confirm", "Guard", "Say")
DIAGNOSTIC = re.compile(r"^(?P<file>[^\s:][^:]*):(?P<line>\d+):(?P<col>\d+): (?P<message>\S.*)$")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def write_tree(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def hold_tree(directory: Path, marker: Path, with_running: bool = False) -> Path:
    """A tree that never finishes: the probe leaf (and optionally py_trees' Running)."""
    others = "        - {type: Running}\n" if with_running else ""
    return write_tree(directory, "hold.yaml", f"""\
version: 1
name: hold
root:
  type: Sequence
  name: Root
  memory: true
  children:
    - {{type: Say, text: standing by}}
    - type: Parallel
      name: Forever
      policy: success_on_all
      children:
{others}        - {{type: tests.helpers.probes.Hold, name: Probe, marker: "{marker}"}}
""")


def marker_events(marker: Path) -> list[str]:
    return marker.read_text(encoding="utf-8").splitlines() if marker.exists() else []


# -- run: dialogue and results -----------------------------------------------------

def test_run_hello_json_prints_one_object_with_the_dialogue() -> None:
    before = time.time()
    data = run_json("run", "trees/hello.yaml", "--say", "bring me the red cup", "--json")
    after = time.time()
    assert data["status"] == "SUCCESS"
    assert isinstance(data["reason"], str) and data["reason"]
    for key in ("steps", "commands", "trips", "dialogue"):
        assert isinstance(data[key], list), key
    turns = data["dialogue"]
    assert [(t["role"], t["text"]) for t in turns] == [
        ("robot", "Hello! What shall I do?"),
        ("user", "bring me the red cup"),
        ("robot", "You said it. I will be able to act on it soon."),
    ]
    for turn in turns:
        assert set(turn) == {"role", "text", "t"}
        assert isinstance(turn["t"], float)
        assert before - 1 <= turn["t"] <= after + 1, "t is not a Unix time of this run"
    times = [t["t"] for t in turns]
    assert times == sorted(times)


def test_run_without_json_shows_dialogue_and_final_status() -> None:
    result = run_cli("run", "trees/hello.yaml", "--say", "hi there")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines.count("you: hi there") == 1
    assert lines.count("robot: Hello! What shall I do?") == 1
    assert lines[-1].startswith("SUCCESS")
    with pytest.raises(json.JSONDecodeError):
        json.loads(result.stdout)


def test_run_listen_without_more_utterances_fails(tmp_path: Path) -> None:
    tree = write_tree(tmp_path, "two_turns.yaml", """\
version: 1
root:
  type: Sequence
  memory: true
  children:
    - {type: Listen}
    - {type: Listen}
    - {type: Say, text: never said}
""")
    data = run_json("run", str(tree), "--say", "only one", "--json", exit_code=1)
    assert data["status"] == "FAILURE"
    assert data["reason"].startswith("Listen:"), data["reason"]
    assert [(t["role"], t["text"]) for t in data["dialogue"]] == [("user", "only one")]


def test_run_with_closed_stdin_and_no_say_fails() -> None:
    data = run_json("run", "trees/hello.yaml", "--json", stdin=subprocess.DEVNULL, timeout=20, exit_code=1)
    assert data["status"] == "FAILURE"
    assert "Listen" in data["reason"]
    assert [t["role"] for t in data["dialogue"]] == ["robot"]


def test_run_takes_lines_piped_on_stdin_as_utterances() -> None:
    data = run_json("run", "trees/hello.yaml", "--json", input="hello\n")
    assert data["status"] == "SUCCESS"
    assert {"role": "user", "text": "hello"}.items() <= next(
        t for t in data["dialogue"] if t["role"] == "user").items()


def test_run_navigate_in_the_simulator_sends_one_audited_command(tmp_path: Path) -> None:
    tree = write_tree(tmp_path, "go.yaml", """\
version: 1
root:
  type: Sequence
  memory: true
  children:
    - {type: Navigate, target: kitchen}
    - {type: Say, text: arrived}
""")
    audit = tmp_path / "audit.jsonl"
    data = run_json("run", str(tree), "--json", "--time-scale", "50", "--audit", str(audit))
    assert data["status"] == "SUCCESS"
    assert [(c["skill"], c["args"]["target"], c["args"]["pose"]) for c in data["commands"]] == \
        [("navigate", "kitchen", [4.0, 2.0, 0.0])]
    assert [t["text"] for t in data["dialogue"]] == ["arrived"]
    assert [(e["kind"], e["skill"]) for e in read_audit(audit)] == [("command", "navigate")]


def test_run_navigate_to_an_unknown_place_fails_before_any_command(tmp_path: Path) -> None:
    tree = write_tree(tmp_path, "go.yaml", """\
version: 1
root:
  type: Sequence
  memory: true
  children:
    - {type: Navigate, target: garage}
    - {type: Say, text: arrived}
""")
    data = run_json("run", str(tree), "--json", exit_code=1)
    assert data["status"] == "FAILURE"
    assert "garage" in data["reason"] and "Navigate" in data["reason"]
    assert data["commands"] == []
    assert data["dialogue"] == [], "the Say after the failing leaf must not run"


def test_run_fetch_object_carries_out_the_instruction_under_its_guard() -> None:
    data = run_json("run", "trees/fetch_object.yaml", "--say", "bring me the red cup", "--json",
                    "--time-scale", "50")
    assert data["status"] == "SUCCESS", data["reason"]
    assert [(c["skill"], c["args"].get("target") or c["args"].get("object") or c["args"].get("to"))
            for c in data["commands"]] == [("navigate", "kitchen"), ("grasp", "cup_red"),
                                           ("navigate", "user"), ("hand_over", "alice")]
    assert [s["skill"] for s in data["steps"]] == ["navigate", "grasp", "navigate", "hand_over"]
    assert data["dialogue"][0] == {**data["dialogue"][0], "role": "user", "text": "bring me the red cup"}


# -- run: time limit and signals -----------------------------------------------------

def test_run_max_seconds_stops_a_tree_that_runs_forever(tmp_path: Path) -> None:
    marker = tmp_path / "probe.log"
    tree = hold_tree(tmp_path, marker, with_running=True)
    started = time.monotonic()
    data = run_json("--config", TEST_CONFIG, "run", str(tree), "--max-seconds", "0.5", "--json", timeout=20,
                    exit_code=1)
    elapsed = time.monotonic() - started
    assert data["status"] == "RUNNING"
    assert "time limit" in data["reason"]
    assert [t["text"] for t in data["dialogue"]] == ["standing by"]
    assert elapsed < 15, "the time limit did not stop the run"
    events = marker_events(marker)
    assert "initialise" in events
    assert any(e.startswith("terminate") for e in events), f"terminate() never ran: {events}"


def test_run_max_seconds_terminates_before_shutdown(tmp_path: Path) -> None:
    marker = tmp_path / "probe.log"
    tree = hold_tree(tmp_path, marker)
    result = run_cli("--config", TEST_CONFIG, "run", str(tree), "--max-seconds", "0.3", "--json", timeout=20)
    assert result.returncode == 1, result.stderr
    events = marker_events(marker)
    assert "shutdown" in events
    terminated = [i for i, e in enumerate(events) if e.startswith("terminate")]
    assert terminated and terminated[0] < events.index("shutdown"), events


def start_and_signal(tmp_path: Path, signum: int, *extra: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    """Start a run of the probe tree, wait until the probe runs, send ``signum``."""
    marker = tmp_path / "probe.log"
    tree = hold_tree(tmp_path, marker)
    with popen_cli("--config", TEST_CONFIG, "run", str(tree), *extra) as proc:
        try:
            deadline = time.monotonic() + 15
            while "initialise" not in marker_events(marker):
                assert proc.poll() is None, f"the run ended early: {proc.communicate()}"
                assert time.monotonic() < deadline, "the probe never started running"
                time.sleep(0.02)
            time.sleep(0.1)  # a few ticks more
            proc.send_signal(signum)
            stdout, stderr = proc.communicate(timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr), marker


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_run_signal_exits_130_with_running_status(tmp_path: Path, signum: int) -> None:
    result, _ = start_and_signal(tmp_path, signum, "--json")
    assert result.returncode == 130, result.stderr
    assert_no_traceback(result)
    data = one_json_object(result.stdout)
    assert data["status"] == "RUNNING"
    assert "interrupt" in data["reason"].lower()
    assert [(t["role"], t["text"]) for t in data["dialogue"]] == [("robot", "standing by")], "dialogue lost"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_run_signal_terminates_every_running_behaviour(tmp_path: Path, signum: int) -> None:
    result, marker = start_and_signal(tmp_path, signum, "--json")
    assert result.returncode == 130, result.stderr
    events = marker_events(marker)
    assert any(e.startswith("terminate") for e in events), f"terminate() never ran: {events}"
    assert "shutdown" in events


def test_run_sigint_with_console_view_exits_130(tmp_path: Path) -> None:
    result, _ = start_and_signal(tmp_path, signal.SIGINT)
    assert result.returncode == 130, result.stderr
    assert_no_traceback(result)
    assert result.stdout.splitlines()[-1].startswith("RUNNING interrupted")


# -- bad input: exit 2, no traceback ---------------------------------------------------

INVALID_TREE = """\
version: 1
root:
  type: Sequence
  memory: true
  children:
    - type: Navigat
    - {type: Say}
"""


@pytest.mark.parametrize("command", ["run", "render"])
def test_invalid_tree_is_bad_input_with_location(tmp_path: Path, command: str) -> None:
    tree = write_tree(tmp_path, "bad.yaml", INVALID_TREE)
    extra = ["-o", str(tmp_path / "out.dot")] if command == "render" else ["--json"]
    result = run_cli(command, str(tree), *extra)
    assert result.returncode == 2
    assert_no_traceback(result)
    assert f"{tree}:6:13: unknown node type 'Navigat' (did you mean 'Navigate'?)" in result.stderr
    assert f"{tree}:7:7: " in result.stderr, "all errors of the file are reported"
    assert result.stdout.strip() == ""
    assert not (tmp_path / "out.dot").exists()


@pytest.mark.parametrize("command", ["run", "render"])
def test_missing_tree_file_is_bad_input(tmp_path: Path, command: str) -> None:
    missing = tmp_path / "nowhere.yaml"
    extra = ["-o", str(tmp_path / "out.dot")] if command == "render" else []
    result = run_cli(command, str(missing), *extra)
    assert result.returncode == 2
    assert_no_traceback(result)
    assert str(missing) in result.stderr


@pytest.mark.parametrize("args", [
    ["run", "trees/hello.yaml", "--max-seconds", "-1"],
    ["run", "trees/hello.yaml", "--max-seconds", "abc"],
    ["run", "trees/hello.yaml", "--max-seconds", "0"],
    ["run", "trees/hello.yaml", "--no-such-option"],
    ["run"],
    ["frobnicate"],
], ids=["negative", "not-a-number", "zero", "unknown-option", "missing-tree", "unknown-command"])
def test_bad_arguments_exit_2(args: list[str]) -> None:
    result = run_cli(*args)
    assert result.returncode == 2
    assert_no_traceback(result)
    assert "usage" in result.stderr.lower() or "error" in result.stderr.lower()
    assert result.stdout.strip() == ""


def test_bad_max_seconds_names_the_option() -> None:
    result = run_cli("run", "trees/hello.yaml", "--max-seconds", "abc")
    assert result.returncode == 2
    assert "--max-seconds" in result.stderr
    assert "abc" in result.stderr


def test_a_time_scale_beyond_a_million_is_refused_before_the_run() -> None:
    """Regression: --time-scale 1e308 was accepted and the run could not be stopped."""
    result = run_cli("run", "trees/hello.yaml", "--say", "hi", "--time-scale", "1e308")
    assert result.returncode == 2
    assert "--time-scale: expected at most 1e+06" in result.stderr and "'1e308'" in result.stderr


def test_an_empty_world_name_is_refused_and_a_missing_world_is_warned_about(tmp_path: Path) -> None:
    """Regression: `--world ""` quietly used the default world, and no world file at all went unmentioned."""
    result = run_cli("run", "trees/hello.yaml", "--say", "hi", "--world", "")
    assert result.returncode == 2 and "error: no file name given" in result.stderr
    result = run_cli("run", str(ROOT / "trees" / "hello.yaml"), "--say", "hi", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "no world file (no config directory): the robot knows no places" in result.stderr


def test_render_unknown_format_is_bad_input(tmp_path: Path) -> None:
    out = tmp_path / "x.gif"
    result = run_cli("render", "trees/fetch_object.yaml", "-o", str(out))
    assert result.returncode == 2
    assert_no_traceback(result)
    assert ".gif" in result.stderr
    assert not out.exists()


def test_render_unwritable_output_is_bad_input(tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory", encoding="utf-8")
    for suffix in ("svg", "dot"):
        result = run_cli("render", "trees/fetch_object.yaml", "-o", str(blocker / f"x.{suffix}"))
        assert result.returncode == 2, (suffix, result.stderr)
        assert_no_traceback(result)
        assert "cannot write" in result.stderr


def test_schema_unwritable_output_is_bad_input(tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory", encoding="utf-8")
    result = run_cli("schema", "-o", str(blocker / "tree.schema.json"))
    assert result.returncode == 2
    assert_no_traceback(result)
    assert "cannot write" in result.stderr


def test_missing_config_dir_is_bad_input(tmp_path: Path) -> None:
    result = run_cli("--config", str(tmp_path / "no_config"), "validate", "trees/hello.yaml")
    assert result.returncode == 2
    assert_no_traceback(result)
    assert "configuration directory not found" in result.stderr


# -- validate --------------------------------------------------------------------------

def test_validate_all_shipped_trees() -> None:
    assert TREES, "no trees/*.yaml"
    paths = [str(p.relative_to(ROOT)) for p in TREES]
    result = run_cli("validate", *paths)
    assert result.returncode == 0, result.stderr
    for path in paths:
        assert f"valid: {path}" in result.stdout.splitlines()


def test_validate_reports_every_error_on_one_line(tmp_path: Path) -> None:
    long_name = "a_parameter_name_long_enough_to_wrap_any_terminal_" + "x" * 120
    bad = write_tree(tmp_path, "bad.yaml", f"""\
version: 1
root:
  type: Sequence
  memory: true
  children:
    - type: Navigat
    - {{type: Navigate, target: kitchen, {long_name}: 1}}
    - {{type: Say}}
    - {{type: Guard, conditions: [], child: {{type: Success}}}}
""")
    broken = write_tree(tmp_path, "broken.yaml", "version: 1\nroot: [unclosed\n")
    result = run_cli("validate", "trees/hello.yaml", str(bad), str(broken), env=cli_env(COLUMNS="60"))
    assert result.returncode == 1
    assert_no_traceback(result)
    assert "valid: trees/hello.yaml" in result.stdout.splitlines()
    assert str(bad) not in result.stdout and str(broken) not in result.stdout

    lines = [line for line in result.stderr.splitlines() if line.strip()]
    diagnostics = [DIAGNOSTIC.match(line) for line in lines]
    others = [line for line, match in zip(lines, diagnostics, strict=True) if match is None]
    assert len(others) <= 1, f"lines that are not FILE:LINE:COL: message (wrapped?): {others}"
    found = [(m["file"], int(m["line"]), int(m["col"])) for m in diagnostics if m]
    bad_lines = sorted(line for file, line, _ in found if file == str(bad))
    assert bad_lines == [6, 7, 8, 9], found
    assert (str(bad), 6, 13) in found
    assert any(file == str(broken) for file, _, _ in found)
    long_line = next(line for line in lines if long_name in line)
    assert DIAGNOSTIC.match(long_line), long_line
    assert len(long_line) > 60, "the long message was not printed in one piece"


def test_validate_missing_file_is_invalid(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.yaml"
    result = run_cli("validate", "trees/hello.yaml", str(missing))
    assert result.returncode == 1
    assert_no_traceback(result)
    assert str(missing) in result.stderr


# -- render ------------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", ["svg", "png", "dot"])
def test_render_writes_a_real_picture(tmp_path: Path, suffix: str) -> None:
    out = tmp_path / "pictures" / f"fetch.{suffix}"
    result = run_cli("render", "trees/fetch_object.yaml", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert out.is_file() and out.stat().st_size > 0
    data = out.read_bytes()
    if suffix == "png":
        assert data.startswith(PNG_SIGNATURE)
        return
    text = data.decode("utf-8")
    if suffix == "svg":
        root = ET.fromstring(text)
        assert root.tag.endswith("svg")
        texts = {"".join(el.itertext()).strip() for el in root.iter() if el.tag.endswith("text")}
        missing = [name for name in FETCH_NODE_NAMES if not any(name in t for t in texts)]
        assert not missing, f"node names not drawn: {missing}"
    else:
        assert re.search(r"\bdigraph\b", text)
        for name in FETCH_NODE_NAMES:
            assert name in text, name


def py_trees_render() -> str:
    found = shutil.which("py-trees-render", path=str(Path(sys.executable).parent))
    assert found, "py-trees-render is not installed next to the interpreter"
    return found


def test_py_trees_render_draws_a_yaml_tree(tmp_path: Path) -> None:
    kwargs = json.dumps({"path": str(ROOT / "trees" / "fetch_object.yaml")})
    result = subprocess.run([py_trees_render(), "vla_bt.viz.render.create_tree", "-k", kwargs],
                            cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    written = {p.suffix: p for p in tmp_path.iterdir()}
    assert {".dot", ".svg", ".png"} <= set(written), sorted(written)
    assert written[".png"].read_bytes().startswith(PNG_SIGNATURE)
    for suffix in (".dot", ".svg"):
        text = written[suffix].read_text(encoding="utf-8")
        for name in FETCH_NODE_NAMES:
            assert name in text, (suffix, name)


# -- nodes ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def nodes_json() -> dict[str, dict]:
    result = run_cli("nodes", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    return {node["name"]: node for node in data["nodes"]}


def test_nodes_json_lists_project_nodes(nodes_json: dict[str, dict]) -> None:
    missing = [name for name in PROJECT_NODES if name not in nodes_json]
    assert not missing
    for name in PROJECT_NODES:
        node = nodes_json[name]
        assert node["origin"] == "vla_bt"
        assert node["description"], name
        assert isinstance(node["params"], dict)
    assert nodes_json["Guard"]["kind"] == "decorator"
    assert nodes_json["Listen"]["kind"] == "leaf"


def test_nodes_json_parameters(nodes_json: dict[str, dict]) -> None:
    navigate = nodes_json["Navigate"]["params"]
    assert navigate["target"]["required"] is True
    assert "default" not in navigate["target"]
    assert navigate["speed"]["required"] is False
    assert navigate["speed"]["default"] is None
    guard = nodes_json["Guard"]["params"]
    assert guard["conditions"]["required"] is True
    assert guard["on_trip"]["required"] is False
    assert guard["on_trip"]["default"] == "fail"
    assert set(guard["on_trip"]["schema"]["enum"]) == {"fail", "hold"}
    assert nodes_json["Say"]["params"]["text"]["required"] is True
    assert nodes_json["Grasp"]["params"]["object"]["required"] is True
    assert nodes_json["Confirm"]["params"]["question"]["required"] is True
    assert nodes_json["Listen"]["params"]["timeout"]["required"] is False
    assert "/dialogue/history" in nodes_json["Say"]["writes"]


def test_nodes_json_lists_py_trees_nodes(nodes_json: dict[str, dict]) -> None:
    sequence = nodes_json["Sequence"]
    assert sequence["kind"] == "composite" and sequence["origin"] == "py_trees"
    assert sequence["params"]["memory"]["required"] is True
    parallel = nodes_json["Parallel"]["params"]["policy"]
    assert parallel["required"] is True
    assert set(parallel["schema"]["enum"]) == {"success_on_all", "success_on_one"}
    timeout = nodes_json["Timeout"]
    assert timeout["kind"] == "decorator"
    assert "duration" in timeout["params"]
    assert "Running" in nodes_json


@pytest.mark.parametrize("columns", ["80", "200"])
def test_nodes_table_names_the_node_types(columns: str) -> None:
    result = run_cli("nodes", env=cli_env(COLUMNS=columns))
    assert result.returncode == 0, result.stderr
    # a table, or one line per type: either way the type name starts its row
    first = {re.split(r"[│\s]+", line.strip("│ \t"))[0] for line in result.stdout.splitlines()}
    missing = [name for name in (*PROJECT_NODES, "Sequence", "Parallel", "Timeout") if name not in first]
    assert not missing


def test_nodes_in_a_pipe_prints_tab_separated_lines(nodes_json: dict[str, dict]) -> None:
    """The pipe format is one line per type, fields separated by tabs (``cut -f1`` gives the names)."""
    result = run_cli("nodes")
    assert result.returncode == 0, result.stderr
    rows = result.stdout.splitlines()[:len(nodes_json)]  # plugin problems may follow
    assert [row.split("\t")[0] for row in rows] == sorted(nodes_json), "first field is not the type name"
    assert all(row.split("\t")[1] in ("leaf", "composite", "decorator") for row in rows)


def test_nodes_table_lists_every_type_unabridged_in_a_pipe(nodes_json: dict[str, dict]) -> None:
    """Piped output (80 columns by default) must still name every type in full, e.g. for grep."""
    result = run_cli("nodes")
    assert result.returncode == 0, result.stderr
    truncated = [name for name in nodes_json if name not in result.stdout]
    assert not truncated, f"type names cut in the table: {truncated}"


# -- schema ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tree_schema(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("schema") / "tree.schema.json"
    result = run_cli("schema", "-o", str(out))
    assert result.returncode == 0, result.stderr
    return json.loads(out.read_text(encoding="utf-8"))


def test_schema_is_a_valid_json_schema(tree_schema: dict) -> None:
    jsonschema.Draft202012Validator.check_schema(tree_schema)


@pytest.mark.parametrize("tree", TREES, ids=[p.name for p in TREES])
def test_schema_accepts_shipped_trees(tree_schema: dict, tree: Path) -> None:
    document = yaml.safe_load(tree.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(tree_schema).validate(document)


@pytest.mark.parametrize("root", [
    {"type": "Sequence", "memory": True, "children": [{"type": "Navigat", "target": "kitchen"}]},
    {"type": "Navigate"},
    {"type": "Navigate", "target": "kitchen", "sped": 1},
    {"type": "Parallel", "policy": "sometimes", "children": []},
], ids=["unknown-type", "missing-param", "unknown-param", "bad-enum"])
def test_schema_rejects_invalid_trees(tree_schema: dict, root: dict) -> None:
    validator = jsonschema.Draft202012Validator(tree_schema)
    assert not validator.is_valid({"version": 1, "root": root})


def test_schema_to_stdout_matches_file(tree_schema: dict) -> None:
    result = run_cli("schema")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == tree_schema


def test_control_characters_from_users_or_models_never_reach_the_terminal() -> None:
    """Regression: an escape sequence said (or written by a model) was echoed raw: it could retitle the terminal."""
    result = run_cli("run", "trees/hello.yaml", "--say", "hi\x1b]0;PWNED\x07 there")
    assert result.returncode == 0, result.stderr
    assert "\x1b]0;" not in result.stdout and "\x07" not in result.stdout
    assert "you: hi\ufffd]0;PWNED\ufffd there" in result.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["run", "trees/hello.yaml", "--say", "hi", "--swap", "wait"], "--swap: only with --watch"),
    (["run", "trees/hello.yaml", "--say", "hi", "--viewer-token", "t"], "--viewer-token: only with --viewer"),
    (["run", "trees/hello.yaml", "--say", "  "], "--say: an utterance cannot be empty"),
    (["nodes", "--json", "--markdown"], "argument --markdown: not allowed with argument --json"),
], ids=["swap-without-watch", "token-without-viewer", "empty-say", "two-formats"])
def test_options_that_would_be_ignored_are_refused(args: list[str], message: str) -> None:
    """Regression: each of these was accepted and silently ignored (or gave an empty user turn)."""
    result = run_cli(*args)
    assert result.returncode == 2 and message in result.stderr
    assert_no_traceback(result)
