"""Base classes for the project's nodes: declared parameters and blackboard keys.

A node class declares what it takes and touches, the way BehaviorTree.CPP
nodes declare their ports; the registry, the validator, ``vla-bt nodes``, the
docs and the JSON Schema are all generated from these declarations::

    class Say(Leaf):
        DESCRIPTION = "Say something to the user."
        PARAMS = {"text": Param({"type": "string"}, "what to say")}
        WRITES = (keys.DIALOGUE_HISTORY,)

Parameters given as ``{key: /some/key}`` are read from the blackboard when the
node runs (``self.param("text")``); the key is registered for read access in
``__init__``, as py_trees asks of every blackboard access.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import py_trees

from .params import REQUIRED, BlackboardRef, Param


class ParamUnavailableError(LookupError):
    """A parameter remapped to a blackboard key that holds no value yet."""


class Declared:
    """Mixin: parameter binding and blackboard registration from declarations."""

    DESCRIPTION: ClassVar[str] = ""
    PARAMS: ClassVar[Mapping[str, Param]] = {}
    READS: ClassVar[tuple[str, ...]] = ()
    WRITES: ClassVar[tuple[str, ...]] = ()
    TOOL: ClassVar[str | None] = None
    """Name under which the model may call this node as a skill (``navigate`` …), if any."""
    PHRASES: ClassVar[Any] = None
    """Phrasings the embedded planner understands for the tool (see docs/local-planner.md), e.g.
    ``["wave [at me]", "wave {times} times"]``."""

    params: dict[str, Any]
    blackboard: py_trees.blackboard.Client

    @classmethod
    def bind(cls, given: Mapping[str, Any]) -> dict[str, Any]:
        """Complete ``given`` with defaults; raise ``TypeError`` like a bad call would."""
        unknown = sorted(set(given) - set(cls.PARAMS))
        if unknown:
            raise TypeError(f"{cls.__name__} has no parameter {', '.join(map(repr, unknown))}")
        missing = sorted(n for n, p in cls.PARAMS.items() if p.required and n not in given)
        if missing:
            raise TypeError(f"{cls.__name__} needs parameter {', '.join(map(repr, missing))}")
        return {n: given.get(n, p.default) for n, p in cls.PARAMS.items()}

    def _declare(self, params: Mapping[str, Any]) -> None:
        self.params = self.bind(params)
        behaviour: Any = self
        self.blackboard = behaviour.attach_blackboard_client(name=behaviour.name)
        for key in self.WRITES:
            self.blackboard.register_key(key, access=py_trees.common.Access.WRITE)
        reads = {v.key for v in self.params.values() if isinstance(v, BlackboardRef)}
        for key in sorted(reads.union(self.READS) - set(self.WRITES)):
            self.blackboard.register_key(key, access=py_trees.common.Access.READ)

    def param(self, name: str) -> Any:
        """The value of a parameter, read from the blackboard if it was remapped.

        Raises:
            ParamUnavailableError: the remapped blackboard key holds no value
        """
        value = self.params[name]
        if isinstance(value, BlackboardRef):
            if not self.blackboard.exists(value.key):
                raise ParamUnavailableError(f"parameter '{name}': blackboard key {value.key} is not set")
            return self.blackboard.get(value.key)
        return value


class Leaf(Declared, py_trees.behaviour.Behaviour):
    """A project leaf. Subclasses set the class declarations and implement ``update``.

    Args:
        name: the node's name (defaults to the class name)
        **params: the declared parameters
    """

    def __init__(self, name: str | None = None, **params: Any):
        super().__init__(name or type(self).__name__)
        self._declare(params)


class DeclaredDecorator(Declared, py_trees.decorators.Decorator):
    """A project decorator with declared parameters.

    Args:
        child: the decorated behaviour
        name: the node's name (defaults to the class name)
        **params: the declared parameters
    """

    def __init__(self, child: py_trees.behaviour.Behaviour, name: str | None = None, **params: Any):
        super().__init__(name=name or type(self).__name__, child=child)
        self._declare(params)


class NotYetImplemented(Leaf):
    """A declared leaf whose behaviour has not landed yet: it fails loudly.

    Trees that use it validate and render; ticking it returns FAILURE with a
    reason, so a run never pretends to have done what it did not.
    """

    def update(self) -> py_trees.common.Status:
        self.feedback_message = f"{type(self).__name__} is not implemented yet"
        return py_trees.common.Status.FAILURE


__all__ = ["REQUIRED", "BlackboardRef", "Declared", "DeclaredDecorator", "Leaf",
           "NotYetImplemented", "Param", "ParamUnavailableError"]
