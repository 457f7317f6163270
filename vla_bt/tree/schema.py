"""The JSON Schema of the tree format, generated from the registry's declarations.

Editors with YAML language support use it for completion and checks (like
BehaviorTree.CPP's exported XSD). ``vla-bt schema -o FILE`` writes it; the
package ships a copy in ``vla_bt/schema/tree.schema.json``.
"""

from __future__ import annotations

from typing import Any

from .loader import VERSION
from .registry import STRUCTURE_KEYS, NodeSpec, Registry

SCHEMA_ID = "urn:vla-bt:tree:1"

BLACKBOARD_REF = {
    "type": "object",
    "description": "read the value from the blackboard at run time",
    "properties": {"key": {"type": "string", "pattern": "^/"}},
    "required": ["key"],
    "additionalProperties": False,
}
PLACEHOLDER = {"type": "string", "pattern": r"\$\{[A-Za-z_][A-Za-z0-9_]*\}",
               "description": "a subtree parameter"}


def _param_schema(spec: NodeSpec, name: str) -> dict[str, Any]:
    param = spec.params[name]
    options = [dict(param.schema), PLACEHOLDER] + ([BLACKBOARD_REF] if param.runtime else [])
    schema: dict[str, Any] = {"anyOf": options, "description": param.description}
    if not param.required and _jsonable(param.default):
        schema["default"] = param.default
    return schema


def _jsonable(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str, list, dict))


def node_schema(spec: NodeSpec) -> dict[str, Any]:
    """Schema of one node type: ``type``, ``name``, its parameters and its structure key."""
    properties: dict[str, Any] = {"type": {"const": spec.name}, "name": {"type": "string"}}
    properties.update({name: _param_schema(spec, name) for name in spec.params})
    required = ["type"] + [name for name, p in spec.params.items() if p.required]
    structure = STRUCTURE_KEYS[spec.kind]
    if structure == "children":
        properties["children"] = {"type": "array", "items": {"$ref": "#/$defs/node"}}
        required.append("children")
    elif structure == "child":
        properties["child"] = {"$ref": "#/$defs/node"}
        required.append("child")
    return {"type": "object", "description": spec.description, "properties": properties,
            "required": required, "additionalProperties": False}


def tree_schema(registry: Registry) -> dict[str, Any]:
    """The whole document schema (draft 2020-12)."""
    specs = registry.specs()
    defs: dict[str, Any] = {f"node.{s.name}": node_schema(s) for s in specs}
    defs["node.Subtree"] = {
        "type": "object", "description": "An instance of a named subtree.",
        "properties": {"type": {"const": "Subtree"}, "name": {"type": "string"}, "ref": {"type": "string"},
                       "with": {"type": "object"}},
        "required": ["type", "ref"], "additionalProperties": False,
    }
    names = [s.name for s in specs] + ["Subtree"]
    defs["node"] = {
        "type": "object",
        "required": ["type"],
        "properties": {"type": {"anyOf": [{"enum": names}, {"type": "string", "pattern": r"^[\w.]+\.\w+$"}]}},
        "allOf": [{"if": {"properties": {"type": {"const": n}}}, "then": {"$ref": f"#/$defs/node.{n}"}}
                  for n in names],
    }
    subtree = {
        "type": "object",
        "properties": {"params": {"type": "array", "items": {"type": "string"}},
                       "description": {"type": "string"}, "root": {"$ref": "#/$defs/node"}},
        "required": ["root"], "additionalProperties": False,
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "vla-bt task tree",
        "type": "object",
        "properties": {
            "version": {"const": VERSION},
            "name": {"type": "string"},
            "description": {"type": "string"},
            "blackboard": {"type": "object", "propertyNames": {"pattern": "^/"}},
            "subtrees": {
                "type": "object",
                "properties": {"include": {"anyOf": [{"type": "string"},
                                                     {"type": "array", "items": {"type": "string"}}]}},
                "additionalProperties": subtree,
            },
            "root": {"$ref": "#/$defs/node"},
        },
        "required": ["version"],
        "additionalProperties": False,
        "$defs": defs,
    }

