"""Configuration files (``config/*.yaml``): where they are and what they hold.

The configuration directory is, in order: the ``--config`` option, the
``VLA_BT_CONFIG`` environment variable, ``./config`` when it exists. Files that
are absent fall back to the defaults written here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vla_bt.tree.diagnostics import Diagnostic, Mark, TreeError
from vla_bt.tree.yamlsrc import LMap, read_located


def config_dir(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The configuration directory in force, or ``None`` for built-in defaults."""
    for candidate in (explicit, os.environ.get("VLA_BT_CONFIG"), "config"):
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
        if candidate and candidate is explicit:
            raise TreeError([Diagnostic(Mark(str(candidate), 1, 1), "configuration directory not found")])
    return None


@dataclass
class RegistryConfig:
    """``config/registry.yaml``: modules a tree may import behaviours from."""

    import_allowlist: list[str] = field(default_factory=list)


def read_mapping(directory: Path | None, filename: str) -> LMap | None:
    """A configuration file as a located mapping, or ``None`` when there is none (defaults apply).

    Raises:
        TreeError: the file is not a regular file, not YAML, or not a mapping
    """
    path = directory / filename if directory else None
    if path is None or not os.path.lexists(path):
        return None  # only a file that is absent falls back to the defaults, not one that cannot be read
    data = read_located(path)
    if data is None:
        return None
    if not isinstance(data, LMap):
        raise TreeError([Diagnostic(Mark(str(path), 1, 1), "expected a mapping")])
    return data


def _read_section(directory: Path | None, filename: str, allowed: dict[str, type]) -> dict[str, Any]:
    data = read_mapping(directory, filename)
    if data is None:
        return {}
    errors = []
    for key, value in data.items():
        if key not in allowed:
            errors.append(Diagnostic(data.key_at(key), f"unknown key '{key}' (expected {', '.join(allowed)})"))
        elif not isinstance(value, allowed[key]):
            errors.append(Diagnostic(data.at(key), f"'{key}' must be a {allowed[key].__name__}"))
    if errors:
        raise TreeError(errors)
    return dict(data)


def load_registry_config(directory: Path | None) -> RegistryConfig:
    """Read ``registry.yaml`` from the configuration directory (defaults if absent)."""
    section = _read_section(directory, "registry.yaml", {"import_allowlist": list})
    allowlist = section.get("import_allowlist", [])
    if not all(isinstance(m, str) for m in allowlist):
        raise TreeError([Diagnostic(Mark(str(directory / "registry.yaml"), 1, 1),
                                    "'import_allowlist' must be a list of module names")])
    return RegistryConfig(import_allowlist=list(allowlist))
