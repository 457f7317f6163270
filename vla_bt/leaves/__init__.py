"""The behaviour-tree leaves: dialogue, model stream, plan execution and skills."""

from .dialogue import Listen, Say
from .pending import Ask, Confirm, ExecutePlan, Grasp, Navigate, ParseIntent

__all__ = ["Ask", "Confirm", "ExecutePlan", "Grasp", "Listen", "Navigate", "ParseIntent", "Say"]
