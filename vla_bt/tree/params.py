"""Declared node parameters: their JSON Schema, defaults and conversions.

A parameter is declared once (``Param``) and that declaration serves three
purposes: checking YAML values with ``jsonschema``, converting them to what
the behaviour's constructor takes, and exporting the tree format's JSON
Schema for editors (as BehaviorTree.CPP exports its XSD from ``providedPorts``).
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jsonschema
import py_trees

from vla_bt.tree.diagnostics import number_as_text_hint


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()
"""Sentinel default of a parameter that a tree must give."""


@dataclass(frozen=True)
class BlackboardRef:
    """A parameter whose value is read from the blackboard at run time.

    Written in YAML as ``{key: /blackboard/key}``.
    """

    key: str

    def __str__(self) -> str:
        return f"{{key: {self.key}}}"


def as_blackboard_ref(value: Any) -> BlackboardRef | None:
    """Return the reference if ``value`` is ``{key: /abs/key}``, else ``None``."""
    if isinstance(value, Mapping) and set(value) == {"key"} and isinstance(value["key"], str):
        return BlackboardRef(value["key"])
    return None


def _finite_number(checker: Any, value: Any) -> bool:
    return jsonschema.Draft202012Validator.TYPE_CHECKER.is_type(value, "number") and math.isfinite(value)


FiniteValidator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine("number", _finite_number))
"""Draft 2020-12, where a number is finite: YAML's ``.nan`` and ``.inf`` (or ``1.0e+400``) are no
timeout, speed or coordinate, and would otherwise pass the tree's check and fail only when the robot moves."""


@dataclass(frozen=True)
class Param:
    """Declaration of one node parameter (a BehaviorTree.CPP input port).

    Args:
        schema: JSON Schema (draft 2020-12) of the YAML value
        description: one line for ``vla-bt nodes`` and the docs
        default: value used when the tree omits it; ``REQUIRED`` if it must be given
        runtime: whether the value may be ``{key: /blackboard/key}``, read when the node runs
        convert: turns the checked YAML value into the constructor's argument
    """

    schema: Mapping[str, Any]
    description: str = ""
    default: Any = REQUIRED
    runtime: bool = True
    convert: Callable[[Any], Any] | None = field(default=None, compare=False)

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def errors(self, value: Any) -> list[tuple[list[Any], str]]:
        """Schema violations of ``value`` as ``(path inside the value, message)``."""
        validator = FiniteValidator(dict(self.schema))
        found = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
        return [(list(e.absolute_path), _friendly(e)) for e in found]

    def to_python(self, value: Any) -> Any:
        return self.convert(value) if self.convert else value

    def describe_type(self) -> str:
        return describe_schema(self.schema)


def _friendly(error: jsonschema.ValidationError) -> str:
    if error.validator == "enum":
        return f"{error.instance!r} is not one of {', '.join(map(repr, error.validator_value))}"
    if error.validator in ("anyOf", "oneOf"):
        deepest = [e for e in error.context or () if e.validator == "type" and _not_finite(e.instance)]
        why = " (numbers must be finite)" if deepest else ""
        return f"expected {describe_schema(error.schema)}, got {_yaml_kind(error.instance)} {error.instance!r}{why}"
    if error.validator == "type":
        if _not_finite(error.instance):
            return f"expected {describe_schema(error.schema)}, got {error.instance!r} (numbers must be finite)"
        return (f"expected {describe_schema(error.schema)}, got {_yaml_kind(error.instance)} {error.instance!r}"
                f"{number_as_text_hint(error.instance)}")
    return error.message


def _not_finite(value: Any) -> bool:
    return isinstance(value, float) and not math.isfinite(value)


def _yaml_kind(value: Any) -> str:
    kinds = {bool: "boolean", int: "integer", float: "number", str: "string", list: "list", dict: "mapping"}
    for kind, name in kinds.items():
        if isinstance(value, kind):
            return name
    return "null" if value is None else type(value).__name__


def describe_schema(schema: Mapping[str, Any]) -> str:
    """A short human description of a schema: ``number``, ``list of string`` …"""
    if "enum" in schema:
        return " | ".join(str(v) for v in schema["enum"])
    if "anyOf" in schema:
        return " or ".join(describe_schema(s) for s in schema["anyOf"])
    kind = schema.get("type", "any")
    if isinstance(kind, list):
        return " or ".join(kind)
    if kind == "array" and "items" in schema:
        return f"list of {describe_schema(schema['items'])}"
    if kind == "object":
        return "mapping"
    return str(kind)


# -- py_trees' own behaviours -------------------------------------------------

STATUS = Param(
    {"enum": [s.name for s in py_trees.common.Status]},
    convert=lambda name: py_trees.common.Status[name],
)
COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt,
    "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}
COMPARISON_SCHEMA = {
    "type": "object",
    "properties": {
        "variable": {"type": "string"},
        "operator": {"enum": list(COMPARISONS)},
        "value": {},
    },
    "required": ["variable", "operator", "value"],
    "additionalProperties": False,
}


def _comparison(value: Mapping[str, Any]) -> py_trees.common.ComparisonExpression:
    return py_trees.common.ComparisonExpression(
        value["variable"], value["value"], COMPARISONS[value["operator"]]
    )


PARALLEL_POLICIES = {
    "success_on_all": lambda sync: py_trees.common.ParallelPolicy.SuccessOnAll(synchronise=sync),
    "success_on_one": lambda sync: py_trees.common.ParallelPolicy.SuccessOnOne(),
}

# Annotations of py_trees constructors mapped to parameter declarations.
ANNOTATIONS: dict[str, Param] = {
    "str": Param({"type": "string"}),
    "int": Param({"type": "integer"}),
    "float": Param({"type": "number"}, convert=float),
    "bool": Param({"type": "boolean"}),
    "list[str]": Param({"type": "array", "items": {"type": "string"}}),
    "list[float]": Param({"type": "array", "items": {"type": "number"}}),
    "list[float] | None": Param({"type": ["array", "null"], "items": {"type": "number"}}),
    "str | None": Param({"type": ["string", "null"]}),
    "py_trees.common.Status": STATUS,
    "py_trees.common.Status | None": Param(
        {"enum": [s.name for s in py_trees.common.Status] + [None]},
        convert=lambda name: None if name is None else py_trees.common.Status[name],
    ),
    "list[py_trees.common.Status]": Param(
        {"type": "array", "items": STATUS.schema},
        convert=lambda names: [py_trees.common.Status[n] for n in names],
    ),
    "py_trees.common.OneShotPolicy": Param(
        {"enum": [p.name for p in py_trees.common.OneShotPolicy]},
        convert=lambda name: py_trees.common.OneShotPolicy[name],
    ),
    "py_trees.common.ComparisonExpression": Param(COMPARISON_SCHEMA, convert=_comparison),
    "list[py_trees.common.ComparisonExpression]": Param(
        {"type": "array", "items": COMPARISON_SCHEMA},
        convert=lambda items: [_comparison(i) for i in items],
    ),
    "Union[Any, Callable[[], Any]]": Param({}),
}

# Parameters whose annotation alone does not say how to write them in YAML.
OVERRIDES: dict[tuple[str, str], Param] = {
    ("CheckBlackboardVariableValues", "operator"): Param(
        {"enum": ["and", "or"]}, convert=lambda name: {"and": operator.and_, "or": operator.or_}[name]
    ),
    ("CompareBlackboardVariables", "operator"): Param(
        {"enum": list(COMPARISONS)}, convert=lambda name: COMPARISONS[name]
    ),
}


def annotation_name(annotation: Any) -> str:
    """Normalise an annotation to the spelling used as key in ``ANNOTATIONS``."""
    if isinstance(annotation, type) and not getattr(annotation, "__args__", None):
        if annotation.__module__ == "builtins":
            return annotation.__name__
        return f"{annotation.__module__}.{annotation.__qualname__}"
    text = str(annotation).replace("typing.", "").replace("NoneType", "None")
    optional = re.fullmatch(r"Optional\[(.*)\]", text)
    return f"{optional.group(1)} | None" if optional else text


def param_docs(docstring: str | None) -> dict[str, str]:
    """Parse the ``Args:`` section of a Google-style docstring into ``{name: text}``."""
    docs: dict[str, str] = {}
    in_args, current = False, None
    for line in (docstring or "").splitlines():
        stripped = line.strip()
        if stripped in ("Args:", "Arguments:"):
            in_args = True
            continue
        if in_args and re.match(r"^[A-Z][a-z]+:$", stripped):
            break
        match = re.match(r"^(\*{0,2}\w+)(?: \(.*?\))?\s*:\s*(.*)$", stripped) if in_args else None
        if match:
            current = match.group(1).lstrip("*")
            docs[current] = match.group(2)
        elif in_args and current and stripped:
            docs[current] += " " + stripped
    return {name: re.sub(r"\s+", " ", re.sub(r":\w+:`~?([^`]*)`", r"\1", text)).strip()
            for name, text in docs.items()}
