"""YAML task trees (DESIGN §5) → ``py_trees.trees.BehaviourTree``.

The loader checks a document completely before building anything and
reports every error it finds with ``FILE:LINE:COL``; only a valid document
is turned into behaviours.

Example:
    >>> from vla_bt.tree import load_tree
    >>> loaded = load_tree("trees/hello.yaml")
    >>> loaded.tree.root.name
    'Hello'
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import py_trees

from .diagnostics import MAX_NESTING, Diagnostic, Mark, TreeError, did_you_mean, too_deep
from .params import Param, as_blackboard_ref
from .registry import STRUCTURE_KEYS, NodeSpec, Registry, RegistryError
from .yamlsrc import LList, LMap, mark_at, read_located

VERSION = 1
DOCUMENT_KEYS = ("version", "name", "description", "blackboard", "subtrees", "root")
SUBTREE_KEYS = ("params", "root", "description")
SUBTREE_NODE_KEYS = ("type", "ref", "with", "name")
PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass
class SubtreeDef:
    """A named, parameterised subtree from ``subtrees:`` (possibly included)."""

    name: str
    params: list[str]
    root: Any
    root_mark: Mark
    mark: Mark


@dataclass
class TreeDocument:
    """A parsed tree file: its header, initial blackboard and subtrees."""

    path: str
    name: str
    description: str
    blackboard: dict[str, Any]
    subtrees: dict[str, SubtreeDef]
    root: Any
    root_mark: Mark


@dataclass
class LoadedTree:
    """A built tree and the document it came from.

    Args:
        tree: the py_trees tree, ready for ``setup()``
        document: the parsed document (name, description, initial blackboard)
    """

    tree: py_trees.trees.BehaviourTree
    document: TreeDocument

    @property
    def root(self) -> py_trees.behaviour.Behaviour:
        return self.tree.root

    def apply_blackboard(self) -> None:
        """Write the document's ``blackboard:`` initial values."""
        for key, value in self.document.blackboard.items():
            py_trees.blackboard.Blackboard.set(key, value)


@dataclass(frozen=True)
class _Scope:
    """Where a node is being built: which subtree parameters are in force."""

    params: Mapping[str, Any] | None  # None: checking a subtree definition on its own
    declared: frozenset[str] = frozenset()
    stack: tuple[str, ...] = ()
    used_at: Mark | None = None
    construct: bool = True  # False: check only (a document is built only once it is valid)

    @property
    def building(self) -> bool:
        return self.params is not None


class _Unchecked:
    """A value that depends on a subtree parameter not yet bound."""


UNCHECKED = _Unchecked()


class TreeLoader:
    """Loads tree files against a node registry.

    Args:
        registry: node types available to trees (``Registry.default()`` if omitted)
    """

    def __init__(self, registry: Registry | None = None):
        self.registry = registry or Registry.default()
        self._errors: list[Diagnostic] = []
        self._depth = 0

    # -- public ---------------------------------------------------------------

    def load(self, path: str | os.PathLike[str]) -> LoadedTree:
        """Check and build a tree file.

        Raises:
            TreeError: with every error of the file and the files it includes
        """
        self._errors = []
        self._depth = 0
        document = self._document(str(path))
        root = None
        if document is not None:
            for definition in document.subtrees.values():
                self._node(definition.root, definition.root_mark,
                           _Scope(None, frozenset(definition.params), (definition.name,)), document)
            self._check_cycles(document)
            if document.root is not None:
                self._node(document.root, document.root_mark, _Scope({}, construct=False), document)
            if not self._errors:
                root = self._node(document.root, document.root_mark, _Scope({}), document)
        if self._errors or document is None or root is None:
            raise TreeError(self._errors or [Diagnostic(Mark(str(path), 1, 1), "invalid tree")])
        return LoadedTree(py_trees.trees.BehaviourTree(root), document)

    def check(self, path: str | os.PathLike[str]) -> list[Diagnostic]:
        """Every error of a tree file (empty when it is valid)."""
        try:
            self.load(path)
        except TreeError as error:
            return error.diagnostics
        return []

    # -- documents --------------------------------------------------------------

    def _error(self, mark: Mark, message: str) -> None:
        self._errors.append(Diagnostic(mark, message))

    def _parse(self, path: str) -> LMap | None:
        try:
            data = read_located(path)
        except TreeError as error:
            self._errors.extend(error.diagnostics)
            return None
        if data is None:
            self._error(Mark(path, 1, 1), "empty file: expected a tree document with 'version: 1' and 'root'")
            return None
        if not isinstance(data, LMap):
            self._error(Mark(path, 1, 1), "expected a mapping with 'version: 1' and 'root' at the top level")
            return None
        for key in data:
            if key not in DOCUMENT_KEYS:
                hint = did_you_mean(str(key), DOCUMENT_KEYS) or f" (expected one of {', '.join(DOCUMENT_KEYS)})"
                self._error(data.key_at(key), f"unknown top-level key '{key}'{hint}")
        if "version" not in data:
            self._error(data.mark, f"missing 'version' (expected 'version: {VERSION}')")
        elif data["version"] != VERSION or isinstance(data["version"], bool):
            self._error(data.at("version"), f"unsupported version {data['version']!r} (expected {VERSION})")
        for key in ("name", "description"):
            if key in data and not isinstance(data[key], str):
                self._error(data.at(key), f"'{key}' must be a string")
        return data

    def _document(self, path: str) -> TreeDocument | None:
        data = self._parse(path)
        if data is None:
            return None
        if "root" not in data:
            self._error(data.mark, "missing 'root' (the tree's top node)")
        elif data["root"] is None:
            self._error(data.at("root"), "'root' is empty: it needs a node, e.g. {type: Sequence, memory: true, ...}")
        subtrees: dict[str, SubtreeDef] = {}
        self._included: set[str] = set()
        self._subtrees(data, path, subtrees, (os.path.normpath(path),))
        return TreeDocument(
            path=path, name=str(data.get("name") or Path(path).stem),
            description=str(data.get("description") or ""),
            blackboard=self._blackboard(data), subtrees=subtrees,
            root=data.get("root"), root_mark=data.at("root"),
        )

    def _blackboard(self, data: LMap) -> dict[str, Any]:
        values = data.get("blackboard")
        if values is None:
            return {}
        if not isinstance(values, LMap):
            self._error(data.at("blackboard"), "'blackboard' must be a mapping of /absolute/keys to values")
            return {}
        for key in values:
            if not (isinstance(key, str) and key.startswith("/") and len(key) > 1):
                self._error(values.key_at(key), f"blackboard key {key!r} must be absolute, e.g. '/robot/max_speed'")
        return dict(values)

    def _subtrees(self, data: LMap, path: str, into: dict[str, SubtreeDef], chain: tuple[str, ...]) -> None:
        section = data.get("subtrees")
        if section is None:
            return
        if not isinstance(section, LMap):
            self._error(data.at("subtrees"), "'subtrees' must be a mapping of names to subtrees")
            return
        for name, body in section.items():
            if name == "include":
                self._includes(section, path, into, chain)
            else:
                self._subtree(str(name), body, section, into)

    def _includes(self, section: LMap, path: str, into: dict[str, SubtreeDef], chain: tuple[str, ...]) -> None:
        value = section["include"]
        items = [(value, section.at("include"))] if isinstance(value, str) else (
            [(v, value.at(i)) for i, v in enumerate(value)] if isinstance(value, LList) else [])
        if not items or not all(isinstance(v, str) for v, _ in items):
            self._error(section.at("include"), "'include' takes a file path or a list of file paths")
            return
        for relative, mark in items:
            target = os.path.normpath(os.path.join(os.path.dirname(path), relative))
            if target in chain:
                cycle = " → ".join([*chain[chain.index(target):], target])
                self._error(mark, f"include cycle: {cycle}")
                continue
            if not os.path.isfile(target):
                self._error(mark, f"included file '{relative}' not found (looked for {target})")
                continue
            if target in self._included:
                continue  # reached again through another include: its subtrees are already in
            self._included.add(target)
            included = self._parse(target)
            if included is not None:
                self._subtrees(included, target, into, (*chain, target))

    def _subtree(self, name: str, body: Any, section: LMap, into: dict[str, SubtreeDef]) -> None:
        if ":" in name:
            self._error(section.key_at(name), f"subtree name '{name}' may not contain ':'")
        if name in into:
            self._error(section.key_at(name), f"subtree '{name}' is already defined at {into[name].mark}")
            return
        if not isinstance(body, LMap):
            self._error(section.at(name), f"subtree '{name}' must be a mapping with 'root' (and optional 'params')")
            return
        for key in body:
            if key not in SUBTREE_KEYS:
                self._error(body.key_at(key), f"unknown key '{key}' in subtree '{name}'"
                            + (did_you_mean(str(key), SUBTREE_KEYS) or " (expected params, root, description)"))
        params = body.get("params", [])
        if not (isinstance(params, list) and all(isinstance(p, str) and IDENTIFIER.match(p) for p in params)):
            self._error(body.at("params"), f"'params' of subtree '{name}' must be a list of parameter names")
            params = []
        if "root" not in body:
            self._error(body.mark, f"subtree '{name}' has no 'root'")
            return
        into[name] = SubtreeDef(name, list(params), body["root"], body.at("root"), section.key_at(name))

    def _check_cycles(self, document: TreeDocument) -> None:
        refs = {name: list(_subtree_refs(d.root)) for name, d in document.subtrees.items()}

        def visit(name: str, path: tuple[str, ...]) -> None:
            for ref, mark in refs.get(name, []):
                if ref in path:
                    cycle = " → ".join([*path[path.index(ref):], ref])
                    self._error(mark, f"subtree cycle: {cycle}")
                elif ref in refs:
                    visit(ref, (*path, ref))

        for name in refs:
            visit(name, (name,))

    # -- nodes ------------------------------------------------------------------

    def _node(self, data: Any, where: Mark, scope: _Scope, doc: TreeDocument) -> py_trees.behaviour.Behaviour | None:
        """One node and everything below it (subtrees expanded), at most ``MAX_NESTING`` deep."""
        if self._depth >= MAX_NESTING:  # subtrees can nest deeper than any one file does
            if not any(d.message == too_deep(where).message for d in self._errors):
                self._errors.append(too_deep(where).diagnostics[0])
            return None
        self._depth += 1
        try:
            if not isinstance(data, LMap):
                self._error(where, f"expected a node (a mapping with 'type'), got {_kind(data)}")
                return None
            if "type" not in data:
                self._error(data.mark, "node has no 'type'" + _hint_type(data))
                return None
            type_name = data["type"]
            if not isinstance(type_name, str):
                self._error(data.at("type"), f"'type' must be a node type name, got {_kind(type_name)}")
                return None
            if type_name == "Subtree":
                return self._subtree_node(data, scope, doc)
            spec = self._spec(type_name, data.at("type"))
            if spec is None:
                self._check_children_of_unknown(data, scope, doc)
                return None
            before = len(self._errors)
            structure = self._structure(data, spec, scope, doc)
            params = self._params(data, spec, scope)
            name = self._name(data, type_name.rpartition(".")[2], scope)
            if len(self._errors) > before or not scope.building or not scope.construct or _missing(spec, structure):
                return None
            try:
                return spec.build(name, params, structure)
            except Exception as exc:  # noqa: BLE001 - a constructor's refusal is bad input, not a crash
                self._error(data.mark, f"cannot create {type_name} '{name}': {type(exc).__name__}: {exc}")
                return None

        finally:
            self._depth -= 1

    def _check_children_of_unknown(self, data: LMap, scope: _Scope, doc: TreeDocument) -> None:
        """Check what an unknown node holds, so that all errors are reported at once."""
        unchecked = replace(scope, construct=False)
        if isinstance(data.get("child"), LMap):
            self._node(data["child"], data.at("child"), unchecked, doc)
        if isinstance(data.get("children"), LList):
            for index, child in enumerate(data["children"]):
                self._node(child, data["children"].at(index), unchecked, doc)

    def _spec(self, type_name: str, mark: Mark) -> NodeSpec | None:
        spec = self.registry.get(type_name)
        if spec is not None:
            return spec
        if "." in type_name:
            try:
                return self.registry.resolve_import(type_name)
            except RegistryError as exc:
                self._error(mark, str(exc))
                return None
        if type_name in self.registry.plugin_errors:
            self._error(mark, f"node type '{type_name}' is unavailable: {self.registry.plugin_errors[type_name]}")
            return None
        failed = "; ".join(self.registry.plugin_errors.values())
        self._error(mark, f"unknown node type '{type_name}'"
                    + (did_you_mean(type_name, [*self.registry.names(), "Subtree"])
                       or " (see 'vla-bt nodes' for the registered types)")
                    + (f" [{failed}]" if failed else ""))
        return None

    def _structure(self, data: LMap, spec: NodeSpec, scope: _Scope, doc: TreeDocument) -> Any:
        wanted = STRUCTURE_KEYS[spec.kind]
        for key in ("children", "child"):
            if key in data and key != wanted:
                expected = {"children": "a list of nodes in 'children'", "child": "one node in 'child'",
                            None: "no children"}[wanted]
                self._error(data.key_at(key), f"'{spec.name}' is a {spec.kind}: it takes {expected}, not '{key}'")
        if wanted == "child":
            if "child" not in data:
                self._error(data.mark, f"decorator '{spec.name}' has no 'child' (it decorates exactly one node)")
                return None
            return self._node(data["child"], data.at("child"), scope, doc)
        if wanted == "children":
            children = data.get("children")
            if not isinstance(children, LList):
                where = data.at("children") if "children" in data else data.mark
                got = "nothing" if "children" not in data else _kind(children)
                self._error(where, f"'children' of composite '{spec.name}' must be a list of nodes, got {got}")
                return None
            if not children:  # py_trees would tick it to an outcome at once, having done nothing
                self._error(data.at("children"), f"'children' of composite '{spec.name}' is empty: give it at "
                                                 "least one node")
                return None
            return [self._node(child, children.at(i), scope, doc) for i, child in enumerate(children)]
        return None

    def _name(self, data: LMap, default: str, scope: _Scope) -> str:
        if "name" not in data:
            return default
        value, _ = self._substitute(data["name"], data.at("name"), scope)
        if value is UNCHECKED:
            return default
        if not isinstance(value, str) or not value.strip():
            self._error(data.at("name"), f"'name' must be a non-empty string, got {_kind(value)}")
            return default
        if ":" in value:
            self._error(data.at("name"), f"node name '{value}' may not contain ':' (it breaks Graphviz output)")
        return value

    def _params(self, data: LMap, spec: NodeSpec, scope: _Scope) -> dict[str, Any]:
        reserved = {"type", "name", "children", "child"}
        for key in data:
            if key not in reserved and key not in spec.params:
                known = ", ".join(spec.params) or "none"
                self._error(data.key_at(key), f"unknown parameter '{key}' for {spec.name}"
                            + (did_you_mean(str(key), spec.params) or f" (parameters: {known})"))
        result: dict[str, Any] = {}
        for pname, param in spec.params.items():
            if pname not in data:
                if param.required:
                    self._error(data.mark, f"{spec.name} needs parameter '{pname}' ({param.describe_type()})")
                else:
                    result[pname] = param.default
                continue
            value = self._param(spec, pname, param, data[pname], data.at(pname), scope)
            if value is not UNCHECKED:
                result[pname] = value
        return result

    def _param(self, spec: NodeSpec, pname: str, param: Param, raw: Any, mark: Mark, scope: _Scope) -> Any:
        value, substituted = self._substitute(raw, mark, scope)
        if value is UNCHECKED:
            return UNCHECKED
        origin = f" (from a subtree parameter; subtree used at {scope.used_at})" if substituted else ""
        ref = as_blackboard_ref(value)
        if ref is not None:
            if not param.runtime:
                self._error(mark, f"parameter '{pname}' of {spec.name} cannot be read from the blackboard "
                                  f"at run time (it is fixed when the tree is built){origin}")
            elif not ref.key.startswith("/"):
                self._error(mark, f"blackboard key '{ref.key}' must be absolute, e.g. '/robot/max_speed'")
            return ref
        problems = param.errors(value)
        for path, message in problems:
            self._error(mark_at(raw, path, mark), f"parameter '{pname}' of {spec.name}: {message}{origin}")
        return UNCHECKED if problems else param.to_python(value)

    def _substitute(self, value: Any, mark: Mark, scope: _Scope) -> tuple[Any, bool]:
        """Replace ``${param}`` placeholders; ``UNCHECKED`` when the parameter is unbound."""
        if isinstance(value, list):
            items = [self._substitute(v, value.at(i) if isinstance(value, LList) else mark, scope)
                     for i, v in enumerate(value)]
            if any(v is UNCHECKED for v, _ in items):
                return UNCHECKED, True
            return [v for v, _ in items], any(s for _, s in items)
        if isinstance(value, dict):
            pairs = {k: self._substitute(v, value.at(k) if isinstance(value, LMap) else mark, scope)
                     for k, v in value.items()}
            if any(v is UNCHECKED for v, _ in pairs.values()):
                return UNCHECKED, True
            return {k: v for k, (v, _) in pairs.items()}, any(s for _, s in pairs.values())
        if not isinstance(value, str) or "${" not in value:
            return value, False
        names = PLACEHOLDER.findall(value)
        for name in names:
            if name not in scope.declared:
                where = f"subtree '{scope.stack[-1]}'" if scope.stack else "the main tree"
                declared = ", ".join(sorted(scope.declared)) or "none"
                self._error(mark, f"unknown subtree parameter '${{{name}}}' in {where} (declared: {declared})"
                            + did_you_mean(name, scope.declared))
                return UNCHECKED, True
        if not scope.building:
            return UNCHECKED, True
        params = scope.params or {}
        whole = PLACEHOLDER.fullmatch(value)
        if whole:  # keep the value's own type: numbers, lists, {key: ...}
            return params[whole.group(1)], True
        refs = [n for n in names if as_blackboard_ref(params[n]) is not None]
        if refs:
            self._error(mark, f"'${{{refs[0]}}}' is a {{key: ...}} blackboard reference; it can only be a whole "
                              f"value, not part of the text {value!r} (subtree used at {scope.used_at})")
            return UNCHECKED, True
        return PLACEHOLDER.sub(lambda m: str(params[m.group(1)]), value), True

    def _subtree_node(self, data: LMap, scope: _Scope, doc: TreeDocument) -> py_trees.behaviour.Behaviour | None:
        for key in data:
            if key not in SUBTREE_NODE_KEYS:
                self._error(data.key_at(key), f"unknown key '{key}' for Subtree"
                            + (did_you_mean(str(key), SUBTREE_NODE_KEYS) or " (expected ref, with, name)"))
        ref = data.get("ref")
        if not isinstance(ref, str):
            self._error(data.at("ref") if "ref" in data else data.mark, "Subtree needs 'ref': the name of a subtree")
            return None
        definition = doc.subtrees.get(ref)
        if definition is None:
            known = ", ".join(sorted(doc.subtrees)) or "none defined"
            self._error(data.at("ref"), f"unknown subtree '{ref}'"
                        + (did_you_mean(ref, doc.subtrees) or f" (subtrees: {known})"))
            return None
        bound = self._with(data, definition, scope)
        name = self._name(data, "", scope)
        if ref in scope.stack or bound is None or not scope.building:
            return None  # cycles are reported once by _check_cycles
        inner = _Scope(bound, frozenset(definition.params), (*scope.stack, ref), data.mark, scope.construct)
        root = self._node(definition.root, definition.root_mark, inner, doc)
        if root is not None and name:
            root.name = name
        return root

    def _with(self, data: LMap, definition: SubtreeDef, scope: _Scope) -> dict[str, Any] | None:
        given = data.get("with", LMap())
        if not isinstance(given, dict):
            self._error(data.at("with"), "'with' must be a mapping of subtree parameters to values")
            return None
        bound: dict[str, Any] = {}
        for key in given:
            if key not in definition.params:
                self._error(given.key_at(key) if isinstance(given, LMap) else data.mark,
                            f"subtree '{definition.name}' has no parameter '{key}'"
                            + (did_you_mean(str(key), definition.params)
                               or f" (params: {', '.join(definition.params) or 'none'})"))
            else:
                value, _ = self._substitute(given[key], given.at(key) if isinstance(given, LMap) else data.mark, scope)
                bound[key] = value
        missing = [p for p in definition.params if p not in given]
        if missing:
            self._error(data.mark, f"subtree '{definition.name}' needs {', '.join(missing)} in 'with'")
        if missing or any(v is UNCHECKED for v in bound.values()):
            return None
        return bound


def _missing(spec: NodeSpec, structure: Any) -> bool:
    """A child could not be built (e.g. a subtree that is part of a cycle)."""
    if spec.kind == "composite":
        return structure is None or any(child is None for child in structure)
    return spec.kind == "decorator" and structure is None


def _subtree_refs(data: Any) -> Any:
    """Yield ``(ref, mark)`` for every ``Subtree`` node inside ``data``."""
    if isinstance(data, LMap):
        if data.get("type") == "Subtree" and isinstance(data.get("ref"), str):
            yield data["ref"], data.at("ref")
        for key in ("child", "children"):
            if key in data:
                yield from _subtree_refs(data[key])
    elif isinstance(data, LList):
        for item in data:
            yield from _subtree_refs(item)


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    for kind, text in ((bool, "a boolean"), (int, "a number"), (float, "a number"),
                       (list, "a list"), (dict, "a mapping")):
        if isinstance(value, kind):
            return text
    return f"the string {value!r}" if isinstance(value, str) else type(value).__name__


def _hint_type(data: LMap) -> str:
    if len(data) == 1:
        (key,) = data
        return f" (every node is a mapping with 'type'; did you mean 'type: {key}'?)"
    return " (every node is a mapping with 'type', e.g. {type: Sequence, memory: true, children: [...]})"


def load_tree(path: str | os.PathLike[str], registry: Registry | None = None) -> LoadedTree:
    """Check and build a tree file with the default registry (see ``TreeLoader.load``)."""
    return TreeLoader(registry).load(path)
