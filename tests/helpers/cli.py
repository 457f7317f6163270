"""The ``vla-bt`` command in a subprocess: its environment, running it, reading what it prints and logs.

Every run is ``python -m vla_bt`` from the repository root, with the root on
PYTHONPATH (so tree files may name ``tests.helpers`` probes by dotted path
when ``--config tests/config`` is given), without colour and without settings
from the caller's environment that would change what a run does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
RESULT_KEYS = frozenset({"status", "reason", "steps", "commands", "trips", "dialogue"})
"""The keys of the object ``--json`` prints."""

_UNSET = ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "VLA_BT_CONFIG", "OPENAI_API_KEY", "OPENAI_BASE_URL")


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of a ``vla-bt`` subprocess.

    Args:
        **extra: variables to set on top (``OPENAI_BASE_URL`` …)

    Returns:
        this process's environment without colour and configuration overrides, the repository on PYTHONPATH
    """
    env = {k: v for k, v in os.environ.items() if k not in _UNSET}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env["NO_COLOR"] = "1"
    env.update(extra)
    return env


def cli_argv(*args: str) -> list[str]:
    """The command line of ``vla-bt ARGS`` run by this interpreter."""
    return [sys.executable, "-m", "vla_bt", *args]


def run_cli(*args: str, stdin: int | None = subprocess.DEVNULL, input: str | None = None,
            timeout: float = 30, cwd: Path = ROOT, env: dict[str, str] | None = None,
            ) -> subprocess.CompletedProcess[str]:
    """Run ``vla-bt ARGS`` to its end and capture its output.

    Args:
        *args: the command's arguments
        stdin: its standard input when ``input`` is None
        input: text written to its standard input
        timeout: seconds before the run is killed (and the test fails)
        cwd: its working directory
        env: its environment (default: ``cli_env()``)

    Returns:
        the finished process, its output as text
    """
    return subprocess.run(cli_argv(*args), cwd=cwd, env=env or cli_env(),
                          stdin=None if input is not None else stdin, input=input,
                          capture_output=True, text=True, timeout=timeout, check=False)


def popen_cli(*args: str, env: dict[str, str] | None = None,
              stdin: int | None = subprocess.DEVNULL) -> subprocess.Popen[str]:
    """Start ``vla-bt ARGS`` in the background, its output piped as text.

    Args:
        *args: the command's arguments
        env: its environment (default: ``cli_env()``)
        stdin: its standard input (``subprocess.PIPE`` to write to it)

    Returns:
        the running process
    """
    return subprocess.Popen(cli_argv(*args), cwd=ROOT, env=env or cli_env(), stdin=stdin,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def say_args(texts: Iterable[str]) -> list[str]:
    """``--say TEXT`` for each text, in order."""
    return [arg for text in texts for arg in ("--say", text)]


def one_json_object(stdout: str) -> dict[str, Any]:
    """The single result object ``--json`` prints, and nothing else.

    Args:
        stdout: what the run printed

    Returns:
        the object (checked to have exactly ``RESULT_KEYS``)
    """
    text = stdout.strip()
    assert text, "nothing on standard output (--json prints one object)"
    data, end = json.JSONDecoder().raw_decode(text)
    assert text[end:].strip() == "", f"more than one JSON value on stdout: {stdout!r}"
    assert isinstance(data, dict), f"not a JSON object: {data!r}"
    assert set(data) == RESULT_KEYS, f"keys {sorted(data)}"
    return data


def assert_no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    """Neither output of a finished run shows a Python traceback."""
    assert "Traceback" not in result.stderr, result.stderr
    assert "Traceback" not in result.stdout, result.stdout


def run_json(*args: str, exit_code: int = 0, **options: Any) -> dict[str, Any]:
    """Run ``vla-bt ARGS`` (``--json`` among them) and read the result it prints.

    Args:
        *args: the command's arguments
        exit_code: the exit code the run must end with
        **options: as for ``run_cli`` (``timeout``, ``input``, ``env`` …)

    Returns:
        the result object (the run showed no traceback)
    """
    result = run_cli(*args, **options)
    assert result.returncode == exit_code, result.stderr
    assert_no_traceback(result)
    return one_json_object(result.stdout)


def read_audit(path: Path) -> list[dict[str, Any]]:
    """Every line of an audit log (``--audit``), each checked to be one JSON object with ``t`` and ``kind``.

    Args:
        path: the log file

    Returns:
        the events in file order
    """
    assert path.is_file(), f"no audit log at {path}"
    text = path.read_text(encoding="utf-8")
    assert text == "" or text.endswith("\n"), "the last audit line is incomplete (not flushed or cut off)"
    events = []
    for number, line in enumerate(text.splitlines(), 1):
        try:
            event = json.loads(line)
        except ValueError as exc:
            raise AssertionError(f"{path.name}:{number} is not valid JSON ({exc}): {line[:200]!r}") from None
        assert isinstance(event, dict), f"{path.name}:{number} is not a JSON object"
        stamp = event.get("t")
        assert isinstance(stamp, float), f"{path.name}:{number}: no 't'"
        assert 1.5e9 < stamp < 4e9, f"{path.name}:{number}: 't' {stamp} is not Unix time in seconds"
        assert isinstance(event.get("kind"), str) and event["kind"], f"{path.name}:{number}: no 'kind'"
        events.append(event)
    return events
