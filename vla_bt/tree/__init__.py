"""YAML task trees: loading, validation, the node registry, rendering and running."""

from .declared import BlackboardRef, DeclaredDecorator, Leaf, NotYetImplemented, Param, ParamUnavailableError
from .diagnostics import Diagnostic, Mark, TreeError
from .loader import LoadedTree, TreeLoader, load_tree
from .registry import NodeSpec, Registry, RegistryError

__all__ = ["BlackboardRef", "DeclaredDecorator", "Diagnostic", "Leaf", "LoadedTree", "Mark", "NodeSpec",
           "NotYetImplemented", "Param", "ParamUnavailableError", "Registry", "RegistryError", "TreeError",
           "TreeLoader", "load_tree"]
