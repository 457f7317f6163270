"""Plan validation (``config/safety.yaml``): checks every command passes before it reaches the robot.

The checks run in the command gate, after the model, the parser and the
skill leaves — so they hold whatever produced the command. Each returns a
reason to refuse, or ``None``; the gate audits refusals as ``rejected``.

* targets inside the workspace and outside no-go zones, and a path to them
  that stays clear (the planned path, or the straight line with
  ``path_check: straight``);
* speed at most the robot's limit: clamped (logged) or refused;
* no grasping people, objects that are not graspable or heavier than the payload;
* objects marked ``risk: high`` only after a "yes" to a ``Confirm`` that names them;
* at most ``rate_limit.commands`` commands per ``rate_limit.per_s`` seconds.
"""

from __future__ import annotations

import collections
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vla_bt import blackboard as keys
from vla_bt.robot.geometry import find_path, point_problem, zones_crossed
from vla_bt.robot.protocol import Command
from vla_bt.robot.world import World
from vla_bt.tree.diagnostics import Diagnostic, TreeError


@dataclass
class SafetyPolicy:
    """``config/safety.yaml``."""

    speed_policy: str = "clamp"
    path_check: str = "planned"
    confirm_high_risk: bool = True
    confirm_window_s: float = 300.0
    rate_limit: dict[str, float] = field(default_factory=lambda: {"commands": 20, "per_s": 10.0})


POLICY_SCHEMA = {"speed_policy": ("clamp", "refuse"), "path_check": ("planned", "straight"),
                 "confirm_high_risk": bool, "confirm_window_s": (int, float), "rate_limit": dict}


def _positive(value: Any) -> bool:
    """A positive, finite number (not a boolean)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def load_safety_policy(directory: Path | None) -> SafetyPolicy:
    """Read ``safety.yaml`` (defaults for what is absent); every problem with its position."""
    from vla_bt.config import read_mapping

    policy = SafetyPolicy()
    data = read_mapping(directory, "safety.yaml")
    if data is None:
        return policy
    errors = []
    for key, value in data.items():
        expected = POLICY_SCHEMA.get(key)
        if expected is None:
            errors.append(Diagnostic(data.key_at(key), f"unknown key '{key}' (expected {', '.join(POLICY_SCHEMA)})"))
        elif isinstance(expected, tuple) and isinstance(expected[0], str):
            if value not in expected:
                errors.append(Diagnostic(data.at(key), f"'{key}' must be one of {', '.join(expected)}"))
            else:
                setattr(policy, key, value)
        elif not isinstance(value, expected) or (expected is not bool and isinstance(value, bool)):
            errors.append(Diagnostic(data.at(key), f"'{key}' has the wrong type"))
        elif key == "rate_limit":
            if set(value) != {"commands", "per_s"} or not all(_positive(v) for v in value.values()):
                errors.append(Diagnostic(data.at(key), "'rate_limit' takes commands and per_s (positive numbers)"))
            else:
                policy.rate_limit = {"commands": float(value["commands"]), "per_s": float(value["per_s"])}
        elif key == "confirm_window_s" and not _positive(value):
            errors.append(Diagnostic(data.at(key), f"'confirm_window_s' must be a positive number of seconds, "
                                                   f"got {value!r}"))
        else:
            setattr(policy, key, value)
    if errors:
        raise TreeError(errors)
    return policy


class PlanValidator:
    """The gate's checks for one run.

    Args:
        world: workspace, no-go zones, objects (graspable, mass, risk) and the robot's limits
        policy: the safety policy
        read: reads a blackboard key (robot pose, confirmations, perceived humans)
        clock: for the rate limit
    """

    def __init__(self, world: World, policy: SafetyPolicy, read: Callable[[str], Any],
                 clock: Callable[[], float] = time.monotonic):
        self.world, self.policy, self.read, self.clock = world, policy, read, clock
        self._sent: collections.deque[float] = collections.deque()

    def checks(self) -> list[Callable[[Command], str | None]]:
        return [self.rate, self.targets, self.speed, self.grasp, self.high_risk]

    # -- checks -------------------------------------------------------------------------

    def rate(self, command: Command) -> str | None:
        now, window = self.clock(), self.policy.rate_limit["per_s"]
        while self._sent and now - self._sent[0] > window:
            self._sent.popleft()
        if len(self._sent) >= self.policy.rate_limit["commands"]:
            return (f"rate limit: more than {self.policy.rate_limit['commands']:g} commands "
                    f"in {window:g} s")
        self._sent.append(now)
        return None

    def targets(self, command: Command) -> str | None:
        if command.skill not in ("navigate", "place"):
            return None
        goal = command.args["pose"]
        problem = point_problem(self.world, goal)
        if problem or command.skill == "place":
            return problem or None
        start = self.read(keys.ROBOT_POSE) or self.world.robot.pose
        if self.policy.path_check == "straight":
            crossed = zones_crossed(self.world, start, goal)
            return f"the straight path crosses no-go zone '{crossed[0]}'" if crossed else None
        path, reason = find_path(self.world, start, goal)
        return None if path is not None else reason

    def speed(self, command: Command) -> str | None:
        speed, limit = command.args.get("speed"), self.world.robot.max_speed
        if command.skill != "navigate" or speed is None or speed <= limit:
            return None
        if self.policy.speed_policy == "refuse":
            return f"speed {speed:g} m/s is above the robot's limit of {limit:g} m/s"
        command.args["speed"] = limit
        command.args["clamped_from"] = speed  # the audit line shows both
        return None

    def grasp(self, command: Command) -> str | None:
        if command.skill != "grasp":
            return None
        object_id = command.args["object"]
        if any(h.id == object_id for h in self.world.humans) or any(
                h.get("id") == object_id for h in self.read(keys.PERCEPTION_HUMANS) or []):
            return f"'{object_id}' is a person: people are never grasped"
        obj = self.world.object(object_id)
        if obj is None:
            return None  # not in the world file (perceived only): the robot's own checks apply
        if not obj.graspable:
            return f"{object_id} is not graspable"
        if obj.mass > self.world.robot.payload:
            return f"{object_id} weighs {obj.mass:g} kg, more than the payload of {self.world.robot.payload:g} kg"
        return None

    def high_risk(self, command: Command) -> str | None:
        if not self.policy.confirm_high_risk or command.skill not in ("grasp", "hand_over", "place"):
            return None
        object_id = command.args.get("object") or self.read(keys.ROBOT_HOLDING)
        obj = self.world.object(object_id) if isinstance(object_id, str) else None
        if obj is None or obj.risk != "high":
            return None
        if self._confirmed(obj.id, obj.label):
            return None
        return f"{obj.id} is marked high-risk: it needs a 'yes' to a confirmation first"

    def _confirmed(self, object_id: str, label: str) -> bool:
        now = time.time()
        for answer in reversed(self.read(keys.DIALOGUE_CONFIRMATIONS) or []):
            if now - float(answer.get("t", 0)) > self.policy.confirm_window_s:
                break
            question = str(answer.get("question", "")).lower()
            named = any(re.search(rf"(?<![\w]){re.escape(name.lower())}(?![\w])", question)
                        for name in (object_id, label))
            if answer.get("answer") == "yes" and named:
                return True
        return False
