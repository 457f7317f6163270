"""The node reference (docs/nodes.md), generated from the registry's declarations.

Regenerate after changing a node's declarations::

    python -m vla_bt.tree.reference > docs/nodes.md
"""

from __future__ import annotations

import json
from typing import Any

from .params import Param
from .registry import STRUCTURE_KEYS, NodeSpec, Registry

ORIGINS = {"vla_bt": "vla-bt nodes", "py_trees": "py_trees nodes"}
HEADER = """# Node reference

Every node type a tree may name, generated from the declarations in the code
(`python -m vla_bt.tree.reference > docs/nodes.md`). `vla-bt nodes` prints the
same list, including the nodes of installed plugins.

In the tables, *remap* means the value may be written as `{key: /blackboard/key}`
and is then read from the blackboard when the node runs.
"""


def _default(param: Param) -> str:
    if param.required:
        return "required"
    value = param.default
    return f"`{json.dumps(value)}`" if isinstance(value, (bool, int, float, str, type(None))) else f"`{value!r}`"


def _node_section(spec: NodeSpec) -> list[str]:
    structure = {"children": "composite: takes `children` (a list of nodes)",
                 "child": "decorator: takes one `child`", None: "leaf"}[STRUCTURE_KEYS[spec.kind]]
    lines = [f"### {spec.name}", "", spec.description or "(no description)", "", f"*{structure}*", ""]
    if spec.params:
        lines += ["| parameter | type | default | remap | description |", "|---|---|---|---|---|"]
        for name, param in spec.params.items():
            kind = param.describe_type().replace("|", "\\|")
            description = param.description.replace("|", "\\|")
            remap = "yes" if param.runtime else "no"
            lines.append(f"| `{name}` | {kind} | {_default(param)} | {remap} | {description} |")
        lines.append("")
    for label, keys in (("Reads", spec.reads), ("Writes", spec.writes)):
        if keys:
            lines += [f"{label}: " + ", ".join(f"`{k}`" for k in keys), ""]
    return lines


def node_reference(registry: Registry) -> str:
    """Markdown of every node type, grouped by origin."""
    groups: dict[str, list[NodeSpec]] = {}
    for spec in registry.specs():
        groups.setdefault(spec.origin, []).append(spec)
    order = sorted(groups, key=lambda o: (list(ORIGINS).index(o) if o in ORIGINS else len(ORIGINS), o))
    lines = [HEADER]
    for origin in order:
        lines += [f"## {ORIGINS.get(origin, origin)}", ""]
        for spec in groups[origin]:
            lines += _node_section(spec)
    lines += ["## Subtree", "", "Instantiates a named subtree: `{type: Subtree, ref: NAME, with: {param: value}}`;",
              "`name` renames the subtree's root. See [the YAML reference](yaml-reference.md).", ""]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: Any = None) -> None:
    print(node_reference(Registry.default(plugins=False)), end="")


if __name__ == "__main__":
    main()
