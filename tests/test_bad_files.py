"""Input files that are not what they should be: nested too deeply, devices, directories, pipes.

Every file the command reads (tree, world, scripted model, configuration,
session) goes through one reader: only a regular file of bounded size is read,
and collections nested deeper than ``MAX_NESTING`` are refused at the line and
column where they go too deep. Each case is bad input: exit 2 (1 for
``validate``, its usual failure code), one clear line naming the file, and
never a Python traceback.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from vla_bt.tree.diagnostics import MAX_NESTING, TreeError
from vla_bt.tree.yamlsrc import MAX_FILE_BYTES, load_located, read_located

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # tests.helpers, as the other tests import it
    sys.path.insert(0, str(ROOT))

from tests.helpers.cli import assert_no_traceback, run_cli  # noqa: E402

EXIT_FAILURE, EXIT_BAD_INPUT = 1, 2
TOO_DEEP = f"nesting too deep (at most {MAX_NESTING} levels)"
DEEP = MAX_NESTING + 100
"""A depth past the limit (500 with the limit of 400: the depth that used to crash the reader)."""

HELLO = "trees/hello.yaml"  # needs no model
ASSISTANT = "trees/assistant.yaml"  # asks the model, so --llm and llm.yaml are read


def inverters(count: int) -> str:
    """A tree of ``count`` nested Inverters around a Success (decorator ``k`` opens on line ``2 + 2k``)."""
    lines = ["version: 1", "name: deep", "root:"]
    indent = "  "
    for _ in range(count):
        lines += [f"{indent}type: Inverter", f"{indent}child:"]
        indent += "  "
    lines.append(f"{indent}type: Success")
    return "\n".join(lines) + "\n"


def flow(depth: int) -> str:
    """A flow sequence nested ``depth`` deep: ``[[[…]]]``."""
    return "[" * depth + "]" * depth


def refused(result: subprocess.CompletedProcess[str], code: int, *patterns: str) -> None:
    """The run ended with ``code``, its error output matching every pattern, without a traceback."""
    assert result.returncode == code, (result.returncode, result.stderr)
    assert_no_traceback(result)
    for pattern in patterns:
        assert re.search(pattern, result.stderr), (pattern, result.stderr)


def too_deep_at(path: Path, line: int | None = None) -> str:
    """The pattern of the nesting error at ``path`` (at ``line`` when given)."""
    where = str(line) if line is not None else r"\d+"
    return rf"{re.escape(str(path))}:{where}:\d+: {re.escape(TOO_DEEP)}"


# -- 1. nesting too deep -----------------------------------------------------------------------------

def _deep_tree(tmp_path: Path) -> tuple[Path, int]:
    """The tree of DEEP Inverters, and the line of the collection one level past the limit."""
    path = tmp_path / "deep.yaml"
    path.write_text(inverters(DEEP))
    # the document is level 1, the root node level 2: level MAX_NESTING + 1 is decorator MAX_NESTING - 1
    return path, 2 + 2 * MAX_NESTING


@pytest.mark.parametrize("command", [
    pytest.param(["validate"], id="validate"),
    pytest.param(["run", "--say", "hi"], id="run"),
    pytest.param(["render", "-o", "OUT"], id="render"),
])
def test_deeply_nested_inverters_are_refused_at_their_line(tmp_path: Path, command: list[str]) -> None:
    path, line = _deep_tree(tmp_path)
    args = [command[0], str(path), *[str(tmp_path / "out.dot") if a == "OUT" else a for a in command[1:]]]
    result = run_cli(*args)
    refused(result, EXIT_FAILURE if command[0] == "validate" else EXIT_BAD_INPUT, too_deep_at(path, line))
    assert not (tmp_path / "out.dot").exists()


def test_three_hundred_nested_inverters_are_still_a_valid_tree(tmp_path: Path) -> None:
    path = tmp_path / "deep300.yaml"
    path.write_text(inverters(300))
    result = run_cli("validate", str(path))
    assert result.returncode == 0, result.stderr
    assert_no_traceback(result)
    result = run_cli("render", str(path), "-o", str(tmp_path / "out.dot"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out.dot").is_file()


def test_subtrees_nesting_deeper_than_the_limit_together_are_refused(tmp_path: Path) -> None:
    """Regression: two subtrees of 250 levels, one inside the other, crashed the loader (RecursionError)."""
    chain = "{type: Success}"
    for _ in range(250):
        chain = "{type: Inverter, child: " + chain + "}"
    outer = chain.replace("{type: Success}", "{type: Subtree, ref: inner}")
    path = tmp_path / "subtrees.yaml"
    path.write_text(f"version: 1\nsubtrees:\n  inner:\n    root: {chain}\n  outer:\n    root: {outer}\n"
                    "root: {type: Subtree, ref: outer}\n")
    for command in (["validate"], ["run", "--say", "hi"]):
        result = run_cli(command[0], str(path), *command[1:])
        refused(result, EXIT_FAILURE if command[0] == "validate" else EXIT_BAD_INPUT, too_deep_at(path, 4))


def test_a_deeply_nested_blackboard_value_is_refused_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "value.yaml"
    path.write_text(f"version: 1\nname: deep_value\nblackboard:\n  /deep/value: {flow(1000)}\n"
                    "root: {type: Success}\n")
    refused(run_cli("validate", str(path)), EXIT_FAILURE, too_deep_at(path, 4))
    refused(run_cli("run", str(path), "--say", "hi"), EXIT_BAD_INPUT, too_deep_at(path, 4))


def test_a_deeply_nested_world_file_is_refused(tmp_path: Path) -> None:
    world = tmp_path / "world.yaml"
    world.write_text(f"places:\n  dock: {flow(1000)}\n")
    refused(run_cli("run", HELLO, "--say", "hi", "--world", str(world)), EXIT_BAD_INPUT, too_deep_at(world, 2))


def test_a_deeply_nested_scripted_model_file_is_refused(tmp_path: Path) -> None:
    script = tmp_path / "script.yaml"
    script.write_text(f"responses:\n  - text: hello\n  - {flow(1000)}\n")
    refused(run_cli("run", ASSISTANT, "--say", "hi", "--llm", f"scripted:{script}"), EXIT_BAD_INPUT,
            too_deep_at(script, 3))


@pytest.mark.parametrize("name", ["safety.yaml", "llm.yaml", "registry.yaml"])
def test_a_deeply_nested_configuration_file_is_refused(tmp_path: Path, name: str) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (config / name).write_text(f"# too deep\nanything: {flow(1000)}\n")
    result = run_cli("--config", str(config), "run", ASSISTANT, "--say", "hi", "--llm", "local")
    refused(result, EXIT_BAD_INPUT, too_deep_at(config / name, 2))


def test_a_deeply_nested_session_file_is_refused_and_left_untouched(tmp_path: Path) -> None:
    session = tmp_path / "session.json"
    text = '{"history": [],\n "context": {"deep": ' + "[" * 100_000 + "]" * 100_000 + "}}"
    session.write_text(text)
    result = run_cli("run", HELLO, "--say", "hi", "--session", str(session))
    refused(result, EXIT_BAD_INPUT, too_deep_at(session, 2))
    assert session.read_text() == text


def test_aliases_cannot_stack_values_deeper_than_the_text_nests() -> None:
    # Each line nests just over half the limit; the alias puts the first inside the second.
    half = MAX_NESTING // 2 + 1
    document = f"a: &a {flow(half)}\nb: {'[' * half}*a{']' * half}\n"
    with pytest.raises(TreeError) as error:
        load_located(document, "aliases.yaml")
    # the first collection of line 2 (column 4) that holds more than the limit is its second bracket
    assert [str(d) for d in error.value.diagnostics] == [f"aliases.yaml:2:5: {TOO_DEEP}"]


def test_nesting_up_to_the_limit_is_read() -> None:
    assert load_located(f"top: {flow(MAX_NESTING - 1)}", "ok.yaml")["top"] is not None


# -- 2. special files, directories, no file name ----------------------------------------------------

def _inputs(tmp_path: Path, bad: str) -> dict[str, tuple[list[str], int]]:
    """Each kind of input given ``bad`` as its file: the command line and its expected exit code."""
    return {
        "validate": (["validate", bad], EXIT_FAILURE),
        "run tree": (["run", bad, "--say", "hi"], EXIT_BAD_INPUT),
        "render tree": (["render", bad, "-o", str(tmp_path / "out.svg")], EXIT_BAD_INPUT),
        "run --world": (["run", HELLO, "--say", "hi", "--world", bad], EXIT_BAD_INPUT),
        "serve-realtime --world": (["serve-realtime", "--port", "0", "--world", bad], EXIT_BAD_INPUT),
        "run --llm scripted": (["run", ASSISTANT, "--say", "hi", "--llm", f"scripted:{bad}"], EXIT_BAD_INPUT),
        "serve-realtime --llm scripted": (["serve-realtime", "--port", "0", "--llm", f"scripted:{bad}"],
                                          EXIT_BAD_INPUT),
        "run --session": (["run", HELLO, "--say", "hi", "--session", bad], EXIT_BAD_INPUT),
    }


KINDS = ["validate", "run tree", "render tree", "run --world", "serve-realtime --world", "run --llm scripted",
         "serve-realtime --llm scripted", "run --session"]


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero here")
@pytest.mark.parametrize("kind", KINDS)
def test_dev_zero_is_not_a_regular_file(tmp_path: Path, kind: str) -> None:
    args, code = _inputs(tmp_path, "/dev/zero")[kind]
    refused(run_cli(*args), code, r"/dev/zero(:1:1)?: not a regular file")


@pytest.mark.parametrize("kind", KINDS)
def test_a_directory_is_refused_as_a_directory(tmp_path: Path, kind: str) -> None:
    directory = tmp_path / "folder"
    directory.mkdir()
    args, code = _inputs(tmp_path, str(directory))[kind]
    result = run_cli(*args)
    refused(result, code, rf"{re.escape(str(directory))}(:1:1)?: is a directory")
    assert "file not found" not in result.stderr


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
@pytest.mark.parametrize("kind", ["validate", "run tree", "run --world", "run --llm scripted", "run --session"])
def test_a_named_pipe_is_refused_without_waiting_for_a_writer(tmp_path: Path, kind: str) -> None:
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    args, code = _inputs(tmp_path, str(pipe))[kind]
    refused(run_cli(*args), code, rf"{re.escape(str(pipe))}(:1:1)?: not a regular file")


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full here")
def test_dev_full_as_the_session_is_refused_instead_of_hanging() -> None:
    refused(run_cli("run", HELLO, "--say", "hi", "--session", "/dev/full"), EXIT_BAD_INPUT,
            r"/dev/full:1:1: not a regular file")


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero here")
@pytest.mark.parametrize("name", ["safety.yaml", "llm.yaml"])
def test_a_configuration_file_that_is_a_device_or_directory_is_refused(tmp_path: Path, name: str) -> None:
    for kind, make in (("device", lambda p: p.symlink_to("/dev/zero")), ("directory", lambda p: p.mkdir())):
        config = tmp_path / kind
        config.mkdir()
        make(config / name)
        result = run_cli("--config", str(config), "run", ASSISTANT, "--say", "hi", "--llm", "local")
        problem = "not a regular file" if kind == "device" else "is a directory"
        refused(result, EXIT_BAD_INPUT, rf"{re.escape(str(config / name))}:1:1: {problem}")


@pytest.mark.parametrize("command", [
    pytest.param(["run", ASSISTANT, "--say", "hi", "--llm", "scripted:"], id="run"),
    pytest.param(["serve-realtime", "--port", "0", "--llm", "scripted:"], id="serve-realtime"),
])
def test_scripted_without_a_file_name_says_so(command: list[str]) -> None:
    result = run_cli(*command)
    refused(result, EXIT_BAD_INPUT, r"scripted:FILE: no file name given")
    assert "Is a directory" not in result.stderr and ":1:1:" not in result.stderr


def test_an_empty_tree_name_says_no_file_name_given() -> None:
    refused(run_cli("run", "", "--say", "hi"), EXIT_BAD_INPUT, r"no file name given")


def test_a_file_past_the_size_limit_is_refused_unread(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    with big.open("wb") as out:  # sparse: no disk space used
        out.truncate(MAX_FILE_BYTES + 1)
    with pytest.raises(TreeError) as error:
        read_located(big)
    assert [str(d) for d in error.value.diagnostics] == [f"{big}:1:1: file too large (more than 8 MiB)"]


def test_model_settings_name_the_expected_type_and_refuse_impossible_numbers(tmp_path: Path) -> None:
    """Regression: 'realtime.model has the wrong type' said not which, and a negative timeout or a NaN pace passed."""
    (tmp_path / "llm.yaml").write_text("realtime: {model: 5, timeout_s: -1}\nlocal: {first_token_s: .nan, "
                                       "tokens_per_s: 0}\n")
    result = run_cli("--config", str(tmp_path), "run", ASSISTANT, "--say", "hi", "--world", "config/world.yaml")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    where = tmp_path / "llm.yaml"
    assert result.stderr.splitlines() == [
        f"{where}:1:19: 'realtime.model' must be a string, got 5",
        f"{where}:1:33: 'realtime.timeout_s' must be a positive number, got -1",
        f"{where}:2:24: 'local.first_token_s' must be 0 or more, got nan"]  # a rate of 0 (unpaced) is fine
