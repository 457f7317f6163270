"""The safety layer: guard decorators, safety conditions, plan validation, audit log."""

from .audit import AuditLog
from .estop import EStop
from .guard import Guard

__all__ = ["AuditLog", "EStop", "Guard"]
