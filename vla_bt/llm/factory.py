"""Choosing a backend from ``--llm`` and ``config/llm.yaml``."""

from __future__ import annotations

import math
import os
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vla_bt.tree.diagnostics import Diagnostic, TreeError
from vla_bt.tree.yamlsrc import LMap

from .backend import Backend, BackendError, ToolSpec
from .pacing import Pacing

CHOICES = ("local", "realtime", "chat", "scripted:FILE")
SECTIONS = {
    "realtime": {"model": str, "timeout_s": (int, float)},
    "chat": {"model": str, "timeout_s": (int, float)},
    "local": {"first_token_s": (int, float), "tokens_per_s": (int, float)},
}


@dataclass
class LlmConfig:
    """``config/llm.yaml``: per-backend settings (never keys)."""

    realtime: dict[str, Any] = field(default_factory=lambda: {"model": "gpt-realtime", "timeout_s": 30.0})
    chat: dict[str, Any] = field(default_factory=lambda: {"model": "gpt-4o-mini", "timeout_s": 60.0})
    local: dict[str, Any] = field(default_factory=lambda: {"first_token_s": 0.0, "tokens_per_s": 0.0})


def load_llm_config(directory: Path | None) -> LlmConfig:
    """Read ``llm.yaml`` from the configuration directory (defaults for what is absent)."""
    from vla_bt.config import read_mapping

    config = LlmConfig()
    data = read_mapping(directory, "llm.yaml")
    if data is None:
        return config
    errors = []
    for section, values in data.items():
        if section not in SECTIONS:
            errors.append(Diagnostic(data.key_at(section), f"unknown backend '{section}' (expected "
                                                           f"{', '.join(SECTIONS)})"))
            continue
        if not isinstance(values, LMap):
            errors.append(Diagnostic(data.at(section), f"'{section}' must be a mapping"))
            continue
        for key, value in values.items():
            kind = SECTIONS[section].get(key)
            if kind is None:
                errors.append(Diagnostic(values.key_at(key), f"unknown key '{key}' in '{section}' "
                                                             f"(expected {', '.join(SECTIONS[section])})"))
            elif not isinstance(value, kind) or isinstance(value, bool):
                expected = "a string" if kind is str else "a number"
                errors.append(Diagnostic(values.at(key), f"'{section}.{key}' must be {expected}, got {value!r}"))
            elif kind is not str and not _allowed_number(section, value):
                least = "0 or more" if section == "local" else "a positive number"
                errors.append(Diagnostic(values.at(key), f"'{section}.{key}' must be {least}, got {value!r}"))
            else:
                getattr(config, section)[key] = value
    if errors:
        raise TreeError(errors)
    return config


def _check_base_url(url: str | None) -> None:
    """Refuse an ``OPENAI_BASE_URL`` that is no http(s) URL, before anything tries to reach it."""
    if not url:
        return
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise BackendError(f"OPENAI_BASE_URL: {url!r} is not an http(s) URL (e.g. http://127.0.0.1:8765/v1)")


def _allowed_number(section: str, value: float) -> bool:
    """Finite and positive; the local pace may also be 0 (no delay, no rate limit)."""
    return math.isfinite(value) and (value > 0 or (section == "local" and value == 0))


def make_backend(choice: str, tools: list[ToolSpec], config: LlmConfig, world: Any = None,
                 registry: Any = None) -> Backend:
    """The backend named by ``--llm``.

    Args:
        choice: ``local``, ``realtime``, ``chat`` or ``scripted:FILE``
        tools: the skills offered
        config: settings from ``config/llm.yaml``
        world: the world (the local planner's vocabulary)
        registry: the node registry (the phrasings skills declare for the local planner)

    Raises:
        BackendError: an unknown choice, or a backend whose optional dependency is missing
        TreeError: a malformed scripted file
    """
    if choice.startswith("scripted:"):
        from .scripted import ScriptedBackend

        return ScriptedBackend.from_file(choice.split(":", 1)[1])
    if choice == "local":
        from .local import LocalPlanner

        pacing = Pacing(float(config.local["first_token_s"]), float(config.local["tokens_per_s"]))
        from vla_bt.intent.grammar import phrases_from_registry

        phrases = phrases_from_registry(registry) if registry is not None else None
        return LocalPlanner(world, tools, pacing=pacing, phrases=phrases)
    if choice in ("realtime", "chat"):
        try:
            if choice == "realtime":
                from .realtime import RealtimeBackend as Chosen
            else:
                from .chat import ChatBackend as Chosen  # type: ignore[assignment]
        except ImportError as exc:
            raise BackendError(f"--llm {choice} needs the 'realtime' extra: pip install 'vla-bt[realtime]' "
                               f"({exc})") from None
        _check_base_url(os.environ.get("OPENAI_BASE_URL"))
        settings = getattr(config, choice)
        return Chosen(model=settings["model"], timeout=float(settings["timeout_s"]))
    raise BackendError(f"unknown --llm '{choice}' (expected one of {', '.join(CHOICES)})")
