"""The behaviour-tree leaves: dialogue, model stream, plan execution and skills."""

from .ask import Ask
from .dialogue import Confirm, Listen, Say
from .execute import ExecutePlan
from .parse_intent import ParseIntent
from .skills import Grasp, HandOver, Navigate, Place, Stop

__all__ = ["Ask", "Confirm", "ExecutePlan", "Grasp", "HandOver", "Listen", "Navigate", "ParseIntent", "Place", "Say",
           "Stop"]
