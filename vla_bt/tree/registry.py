"""The node registry: every node type a YAML tree may name, with its parameters.

Three sources, in this order:

1. py_trees' own composites, decorators and behaviours under their class
   names, with parameters read from their constructor signatures;
2. the project's nodes (``Declared`` subclasses registered by ``vla_bt``);
3. plugins: entry points in the group ``vla_bt.nodes``. An entry point may
   name a behaviour class (registered under the entry point's name) or a
   function ``register(registry)`` that registers several.

Dotted import paths (``type: my_pkg.skills.Wave``) resolve only for modules on
the allowlist of the configuration, so a tree file cannot import arbitrary code.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import logging
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import py_trees

from .declared import Declared
from .params import ANNOTATIONS, OVERRIDES, PARALLEL_POLICIES, REQUIRED, Param, annotation_name, param_docs

log = logging.getLogger(__name__)

Kind = Literal["composite", "decorator", "leaf"]
ENTRY_POINT_GROUP = "vla_bt.nodes"
STRUCTURE_KEYS = {"composite": "children", "decorator": "child", "leaf": None}


class RegistryError(Exception):
    """A node type cannot be registered or resolved."""


@dataclass(frozen=True)
class NodeSpec:
    """Everything the loader, the validator and the docs know about a node type.

    Args:
        name: the ``type`` written in YAML
        kind: ``composite`` (takes ``children``), ``decorator`` (``child``) or ``leaf``
        params: declared parameters by name
        factory: builds the behaviour from ``name``, converted params and children/child
        description: one line
        reads: blackboard keys read
        writes: blackboard keys written
        origin: ``py_trees``, ``vla_bt``, ``plugin:DIST`` or ``import``
        protected: a safety node that plugins may not replace
    """

    name: str
    kind: Kind
    params: Mapping[str, Param]
    factory: Callable[..., py_trees.behaviour.Behaviour]
    description: str = ""
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()
    origin: str = "vla_bt"
    protected: bool = False
    cls: type | None = field(default=None, compare=False)
    tool: str | None = None

    def build(self, name: str, params: Mapping[str, Any], structure: Any = None) -> py_trees.behaviour.Behaviour:
        kwargs = dict(params)
        key = STRUCTURE_KEYS[self.kind]
        if key:
            kwargs[key] = structure
        return self.factory(name=name, **kwargs)


def first_line(doc: str | None) -> str:
    lines = [line.strip() for line in (doc or "").strip().splitlines()]
    return lines[0].rstrip(".") + "." if lines and lines[0] else ""


def kind_of(cls: type) -> Kind:
    declared = getattr(cls, "YAML_KIND", None)  # e.g. a composite whose children come from the plan
    if declared in STRUCTURE_KEYS:
        return declared
    if issubclass(cls, py_trees.composites.Composite):
        return "composite"
    if issubclass(cls, py_trees.decorators.Decorator):
        return "decorator"
    return "leaf"


def spec_from_declared(cls: type[Declared], name: str | None = None, origin: str = "vla_bt",
                       protected: bool = False) -> NodeSpec:
    """A spec from a class that declares ``DESCRIPTION``, ``PARAMS``, ``READS``, ``WRITES``."""
    return NodeSpec(
        name=name or cls.__name__, kind=kind_of(cls), params=dict(cls.PARAMS), factory=cls,
        description=cls.DESCRIPTION or first_line(cls.__doc__), reads=tuple(cls.READS),
        writes=tuple(cls.WRITES), origin=origin, protected=protected, cls=cls, tool=cls.TOOL,
    )


def spec_from_signature(cls: type, name: str | None = None, origin: str = "import") -> NodeSpec:
    """A spec introspected from a py_trees-style constructor signature.

    Raises:
        RegistryError: a required parameter has a type YAML cannot express
    """
    hints = typing.get_type_hints(cls.__init__)
    docs = {**param_docs(cls.__doc__), **param_docs(cls.__init__.__doc__)}
    params: dict[str, Param] = {}
    for p in list(inspect.signature(cls.__init__).parameters.values())[1:]:
        if p.name in ("name", "child", "children") or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        declared = OVERRIDES.get((cls.__name__, p.name)) or ANNOTATIONS.get(annotation_name(hints.get(p.name)))
        if declared is None:
            if p.default is p.empty:
                raise RegistryError(f"{cls.__name__}: parameter '{p.name}' has a type YAML cannot express")
            continue
        default = REQUIRED if p.default is p.empty else p.default
        description = docs.get(p.name, "").split(" .. ")[0]
        params[p.name] = Param(declared.schema, description, default, runtime=False, convert=declared.convert)
    return NodeSpec(name=name or cls.__name__, kind=kind_of(cls), params=params, factory=cls,
                    description=first_line(cls.__doc__), origin=origin, cls=cls)


def _parallel(name: str, children: Sequence[py_trees.behaviour.Behaviour], policy: str,
              synchronise: bool) -> py_trees.composites.Parallel:
    return py_trees.composites.Parallel(name=name, policy=PARALLEL_POLICIES[policy](synchronise),
                                        children=children)


PARALLEL = NodeSpec(
    name="Parallel", kind="composite", factory=_parallel, origin="py_trees",
    cls=py_trees.composites.Parallel,
    description="Tick all children every tick; succeed when the policy says so.",
    params={
        "policy": Param({"enum": list(PARALLEL_POLICIES)},
                        "success_on_all: every child succeeded; success_on_one: any child succeeded",
                        runtime=False),
        "synchronise": Param({"type": "boolean"},
                             "with success_on_all, do not re-tick children that already succeeded",
                             default=True, runtime=False),
    },
)

# py_trees classes not offered by name: abstract bases, and EternalGuard
# (whose condition is a Python callable; the Guard decorator replaces it).
EXCLUDED = {"Composite", "Decorator", "EternalGuard"}


def py_trees_specs() -> Iterable[NodeSpec]:
    """Specs of py_trees' composites, decorators and behaviours."""
    yield PARALLEL
    for module in (py_trees.composites, py_trees.decorators, py_trees.behaviours):
        for cls_name, cls in inspect.getmembers(module, inspect.isclass):
            if (cls.__module__ != module.__name__ or cls_name in EXCLUDED or cls_name == "Parallel"
                    or not issubclass(cls, py_trees.behaviour.Behaviour)):
                continue
            try:
                yield spec_from_signature(cls, origin="py_trees")
            except RegistryError as exc:
                log.debug("not registered: %s", exc)


class Registry:
    """Node types by name.

    Example:
        >>> registry = Registry.default()
        >>> registry.get("Navigate").params["target"].description
    """

    def __init__(self, import_allowlist: Iterable[str] = ()):
        self._specs: dict[str, NodeSpec] = {}
        self.import_allowlist = tuple(import_allowlist)
        self.plugin_errors: dict[str, str] = {}
        """Entry points that failed to load: ``{entry point name: "plugin:DIST failed to load: why"}``."""

    # -- registration ---------------------------------------------------------

    def add(self, spec: NodeSpec, replace: bool = False) -> None:
        """Register a node type.

        Args:
            spec: the node type
            replace: allow replacing an existing type of the same name (never a protected one)

        Raises:
            RegistryError: the name is taken and ``replace`` is false, or it is protected
        """
        existing = self._specs.get(spec.name)
        if existing is not None:
            if existing.protected:
                raise RegistryError(f"'{spec.name}' is a safety node and cannot be replaced")
            if not replace:
                raise RegistryError(f"'{spec.name}' is already registered by {existing.origin} "
                                    "(pass replace=True to swap it for your own)")
        self._specs[spec.name] = spec

    def add_class(self, cls: type, name: str | None = None, origin: str = "vla_bt",
                  replace: bool = False, protected: bool = False) -> NodeSpec:
        """Register a behaviour class, declared (``PARAMS`` …) or py_trees-style."""
        if not (isinstance(cls, type) and issubclass(cls, py_trees.behaviour.Behaviour)):
            raise RegistryError(f"{cls!r} is not a py_trees.behaviour.Behaviour subclass")
        if issubclass(cls, Declared):
            spec = spec_from_declared(cls, name, origin, protected)
        else:
            spec = spec_from_signature(cls, name, origin)
        self.add(spec, replace=replace)
        return spec

    def load_plugins(self, entry_points: Iterable[importlib.metadata.EntryPoint] | None = None) -> None:
        """Register the nodes of every installed plugin (entry-point group ``vla_bt.nodes``).

        A plugin that fails to load registers none of its nodes; it is recorded
        in ``plugin_errors``, named when a tree uses an unknown type and by
        ``vla-bt nodes``; it does not stop other trees.
        """
        if entry_points is None:
            entry_points = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
        for ep in entry_points:
            origin = f"plugin:{ep.dist.name if ep.dist else ep.module}"
            before = dict(self._specs)
            try:
                target = ep.load()
                if isinstance(target, type):
                    self.add_class(target, name=ep.name, origin=origin)
                else:
                    target(PluginRegistrar(self, origin))
            except Exception as exc:  # noqa: BLE001 - a broken plugin must not break the rest
                self._specs = before  # all of a plugin's nodes, or none
                self.plugin_errors[ep.name] = f"{origin} failed to load: {type(exc).__name__}: {exc}"
                log.debug("plugin entry point %s (%s) failed: %s", ep.name, origin, exc)

    # -- lookup ---------------------------------------------------------------

    def get(self, name: str) -> NodeSpec | None:
        return self._specs.get(name)

    def names(self) -> list[str]:
        return sorted(self._specs)

    def specs(self) -> list[NodeSpec]:
        return [self._specs[n] for n in self.names()]

    def skills(self) -> list[NodeSpec]:
        """Node types the model may call as tools, by tool name order."""
        return sorted((s for s in self._specs.values() if s.tool), key=lambda s: s.tool or "")

    def import_allowed(self, dotted: str) -> bool:
        module = dotted.rpartition(".")[0]
        return any(module == allowed or module.startswith(allowed + ".") for allowed in self.import_allowlist)

    def resolve_import(self, dotted: str) -> NodeSpec:
        """Resolve ``package.module.Class`` from an allowlisted module.

        Raises:
            RegistryError: not on the allowlist, not importable (missing, or its module fails while
                it is imported), or not a behaviour
        """
        if not self.import_allowed(dotted):
            allowed = ", ".join(self.import_allowlist) or "nothing"
            raise RegistryError(f"'{dotted}' is not on the import allowlist (allowed: {allowed}; "
                                "add its module to import_allowlist in config/registry.yaml)")
        module_name, _, cls_name = dotted.rpartition(".")
        try:
            cls = getattr(importlib.import_module(module_name), cls_name)
        except (ImportError, AttributeError) as exc:
            raise RegistryError(f"cannot import '{dotted}': {exc}") from None
        except Exception as exc:  # noqa: BLE001 - a module that fails as it runs is bad input, not a crash
            raise RegistryError(f"cannot import '{module_name}': {type(exc).__name__}: {exc}") from None
        if not (isinstance(cls, type) and issubclass(cls, py_trees.behaviour.Behaviour)):
            raise RegistryError(f"'{dotted}' is not a py_trees.behaviour.Behaviour subclass")
        if issubclass(cls, Declared):
            return spec_from_declared(cls, dotted, origin="import")
        try:
            return spec_from_signature(cls, dotted, origin="import")
        except RegistryError:
            raise
        except Exception as exc:  # noqa: BLE001 - e.g. an annotation that names nothing importable
            raise RegistryError(f"cannot read the parameters of '{dotted}': {type(exc).__name__}: {exc}") from None

    # -- construction ---------------------------------------------------------

    @classmethod
    def default(cls, import_allowlist: Iterable[str] = (), plugins: bool = True) -> Registry:
        """py_trees' nodes, the project's nodes and (optionally) installed plugins."""
        from vla_bt.nodes import register_builtin_nodes  # the project's node catalogue

        registry = cls(import_allowlist)
        for spec in py_trees_specs():
            registry.add(spec)
        register_builtin_nodes(registry)
        if plugins:
            registry.load_plugins()
        return registry


class PluginRegistrar:
    """What a plugin's ``register(registry)`` function receives.

    Example:
        >>> def register(registry):
        ...     registry.add_class(Wave)
        ...     registry.add_class(MyNavigate, name="Navigate", replace=True)
    """

    def __init__(self, registry: Registry, origin: str):
        self._registry, self._origin = registry, origin

    def add_class(self, cls: type, name: str | None = None, replace: bool = False) -> NodeSpec:
        return self._registry.add_class(cls, name=name, origin=self._origin, replace=replace)
