"""The skills offered to the model as tools, generated from the registry's declarations."""

from __future__ import annotations

from typing import Any

from vla_bt.tree.registry import NodeSpec, Registry

from .backend import ToolSpec

# `ask` has no skill leaf: a clarification question is a robot turn, and the
# next utterance answers it (DESIGN §9).
ASK_TOOL = ToolSpec(
    name="ask",
    description="Ask the user a clarification question when the instruction is ambiguous or unclear; "
                "their next utterance answers it.",
    parameters={"type": "object", "properties": {"question": {"type": "string", "minLength": 1,
                                                              "maxLength": 500}},
                "required": ["question"], "additionalProperties": False},
)


def arguments_schema(spec: NodeSpec) -> dict[str, Any]:
    """JSON Schema of a skill's arguments object, from its declared parameters (strict)."""
    properties = {}
    for name, param in spec.params.items():
        schema = dict(param.schema)
        if param.description:
            schema["description"] = param.description
        properties[name] = schema
    required = [name for name, param in spec.params.items() if param.required]
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


def tool_specs(registry: Registry) -> list[ToolSpec]:
    """Every registered skill as a tool, plus ``ask``."""
    tools = [ToolSpec(spec.tool or spec.name, spec.description, arguments_schema(spec))
             for spec in registry.skills()]
    if all(t.name != ASK_TOOL.name for t in tools):
        tools.append(ASK_TOOL)
    return tools
