"""`vla-bt run --llm realtime` against `vla-bt serve-realtime`: two real processes, the real SDK, real websockets."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # tests.helpers, as the other tests import it
    sys.path.insert(0, str(ROOT))

from tests.helpers.cli import cli_argv, cli_env, one_json_object, read_audit, run_cli  # noqa: E402


@pytest.fixture
def endpoint() -> Iterator[str]:
    """A paced local Realtime endpoint answered by the embedded planner; yields OPENAI_BASE_URL."""
    argv = cli_argv("serve-realtime", "--port", "0", "--pace", "0.2,40", "--api-key-env", "SERVE_KEY")
    server = subprocess.Popen(argv, cwd=ROOT, env=cli_env(SERVE_KEY="local-test-key"), stderr=subprocess.PIPE,
                              text=True)
    try:
        assert server.stderr is not None
        line = server.stderr.readline()
        match = re.search(r"OPENAI_BASE_URL=(\S+)", line)
        assert match, f"no address announced: {line!r}"
        yield match.group(1)
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


def run(base_url: str, key: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``vla-bt run trees/assistant.yaml --llm realtime --json ARGS`` against the endpoint at ``base_url``."""
    return run_cli("run", "trees/assistant.yaml", "--llm", "realtime", "--time-scale", "50", "--json", *args,
                   env=cli_env(OPENAI_BASE_URL=base_url, OPENAI_API_KEY=key), timeout=120)


def test_a_two_step_instruction_through_the_realtime_protocol(endpoint: str, tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    result = run(endpoint, "local-test-key", "--say", "go to the kitchen and then pick up the red cup",
                 "--audit", str(audit))
    assert result.returncode == 0, result.stderr
    data = one_json_object(result.stdout)
    assert data["status"] == "SUCCESS", data["reason"]
    assert [(c["skill"], c["args"].get("target") or c["args"].get("object")) for c in data["commands"]] == [
        ("navigate", "kitchen"), ("grasp", "cup_red")]
    assert [e["kind"] for e in read_audit(audit)] == ["command", "command"]


def test_a_wrong_key_fails_clearly_without_showing_it(endpoint: str) -> None:
    result = run(endpoint, "sk-wrong-secret-key-123456", "--say", "go to the kitchen")
    assert result.returncode == 0, result.stderr  # the assistant reports the failed turn and goes on
    data = one_json_object(result.stdout)
    assert data["commands"] == []
    assert "sk-wrong-secret-key-123456" not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    told = [t["text"] for t in data["dialogue"] if t["role"] == "robot"][-1]
    assert "401" in told and "API key" in told, told


@pytest.mark.parametrize(("args", "message"), [
    (["--pace", "nan,nan"], "--pace: the time to the first token must be 0 to 60 s, got nan"),
    (["--pace", "0.3,1e-9"], "--pace: the token rate must be 0 (no pacing) or 0.1 to 100000 tokens/s, got 1e-09"),
    (["--host", "0.0.0.0"], "--host 0.0.0.0: serving beyond this machine needs --api-key-env VAR"),
    (["--host", ""], "--host (every interface): serving beyond this machine needs --api-key-env VAR"),
    (["--api-key-env", "EMPTY_KEY"], "--api-key-env: the environment variable EMPTY_KEY is empty"),
], ids=["pace-nan", "pace-never", "every-interface-without-key", "empty-host-without-key", "empty-key"])
def test_a_server_that_could_not_serve_well_is_refused_before_it_starts(args: list[str], message: str) -> None:
    """Regression: a pace whose first token never comes, and an open port on every interface with no key."""
    result = run_cli("serve-realtime", "--port", "0", *args, env=cli_env(EMPTY_KEY=""), timeout=30)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_an_ipv6_address_is_announced_in_brackets() -> None:
    server = subprocess.Popen(cli_argv("serve-realtime", "--host", "::1", "--port", "0"), cwd=ROOT, env=cli_env(),
                              stderr=subprocess.PIPE, text=True)
    try:
        assert server.stderr is not None
        line = server.stderr.readline()
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=10)
    assert re.search(r"ws://\[::1\]:\d+/v1/realtime — set OPENAI_BASE_URL=http://\[::1\]:\d+/v1", line), line
