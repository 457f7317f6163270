"""The safety layer: guard decorators, safety conditions, plan validation, audit log."""

from .guard import Guard

__all__ = ["Guard"]
