"""The behaviour-tree leaves: dialogue, model stream, plan execution and skills."""

from .ask import Ask
from .dialogue import Listen, Say
from .pending import Confirm, ExecutePlan, Grasp, HandOver, Navigate, ParseIntent, Place, Stop

__all__ = ["Ask", "Confirm", "ExecutePlan", "Grasp", "HandOver", "Listen", "Navigate", "ParseIntent", "Place", "Say",
           "Stop"]
