"""The behaviour-tree leaves: dialogue, model stream, plan execution, skills and perception."""

from .ask import Ask
from .dialogue import Confirm, Listen, Say
from .execute import ExecutePlan
from .parse_intent import ParseIntent
from .perceive import Perceive, Search
from .skills import Grasp, HandOver, Navigate, Place, Stop

__all__ = ["Ask", "Confirm", "ExecutePlan", "Grasp", "HandOver", "Listen", "Navigate", "ParseIntent", "Perceive",
           "Place", "Say", "Search", "Stop"]
