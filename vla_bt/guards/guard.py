"""The ``Guard`` decorator: safety conditions checked before every tick of its child.

Semantics (as py_trees' ``EternalGuard`` and BehaviorTree.CPP's ``_while``
pre-condition, with a safe stop added):

* Before **every** tick of the child, every condition is evaluated on fresh
  blackboard values. The child is ticked only when all hold.
* When one does not hold (a *trip*): the robot is commanded to stop safely,
  the trip is written to the audit log (``guard_trip``, then ``safe_stop``)
  and to ``/safety/last_trip``, and the user is told why — once per trip.

  - ``on_trip: fail`` — the child is halted (``stop(INVALID)``: every running
    behaviour's ``terminate()`` cancels its robot action) and the Guard
    returns FAILURE.
  - ``on_trip: hold`` — only the running skill leaves are halted (their
    actions cancelled); the rest of the child keeps its place (the plan, a
    sequence's position). The Guard returns RUNNING without ticking the child
    until every condition holds again, then ticks it on: the halted step
    starts again from where the robot is.

* A Guard that is not ticked (its parent moved on) checks nothing: place it
  above everything that must be protected.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from typing import Any

import py_trees

from vla_bt import blackboard as keys
from vla_bt.guards.audit import AuditLog
from vla_bt.tree.declared import DeclaredDecorator, Param

from . import conditions as registry
from .conditions import Condition

Status = py_trees.common.Status


class Guard(DeclaredDecorator):
    """Check safety conditions before every tick of the child; stop safely on a trip.

    Args:
        child: the guarded subtree
        name: node name
        conditions: condition names, or one-key mappings with an argument (``{battery_above: 0.2}``)
        on_trip: ``fail`` (halt the child, FAILURE) or ``hold`` (halt the robot action, RUNNING until clear)

    Blackboard:
        reads what its conditions read (``/safety/estop``, ``/robot/*``, ``/perception/*`` …);
        writes ``/safety/last_trip`` and ``/dialogue/history`` (why the robot stopped)

    Returns:
        the child's status while every condition holds; on a trip FAILURE (``fail``) or RUNNING (``hold``)
    """

    DESCRIPTION = "Check safety conditions before every tick of the child; stop safely on a trip."
    PARAMS = {
        "conditions": Param({"type": "array", "items": registry.conditions_schema(), "minItems": 1},
                            "conditions that must all hold", runtime=False),
        "on_trip": Param({"enum": ["fail", "hold"]}, "fail: halt and FAILURE; hold: wait until they hold again",
                         default="fail", runtime=False),
    }
    WRITES = (keys.SAFETY_LAST_TRIP, keys.DIALOGUE_HISTORY)

    def __init__(self, child: py_trees.behaviour.Behaviour, name: str | None = None, **params: Any):
        self.checks: list[Condition] = [registry.build(entry) for entry in params.get("conditions", [])]
        for entry in params.get("conditions", []):
            if isinstance(entry, dict) and "expr" in entry:
                ast.parse(entry["expr"], mode="eval")  # a syntax error is refused when the tree loads
        self.READS = tuple(sorted({key for check in self.checks for key in check.keys}))  # type: ignore[misc]
        super().__init__(child, name, **params)
        self.robot: Any = None
        self.world: Any = None
        self.audit = AuditLog()
        self._tripped: str | None = None

    def setup(self, **kwargs: Any) -> None:
        self.robot = kwargs.get("robot", self.robot)
        self.world = kwargs.get("world", self.world)
        self.audit = kwargs.get("audit", self.audit)

    @property
    def holding(self) -> bool:
        """Tripped and waiting (``on_trip: hold``): conditions judge the motion it would resume."""
        return self._tripped is not None

    # the View protocol of the conditions
    def get(self, key: str, default: Any = None) -> Any:
        return self.blackboard.get(key) if self.blackboard.exists(key) else default

    def violated(self) -> tuple[str, str] | None:
        """The first condition that does not hold, as ``(name, reason)``."""
        for check in self.checks:
            reason = check.check(self)
            if reason:
                return check.name, reason
        return None

    def tick(self) -> Iterator[py_trees.behaviour.Behaviour]:
        if self.status != Status.RUNNING:
            self._tripped = None
            self.initialise()
        trip = self.violated()
        if trip is not None:
            yield from self._trip(*trip)
            return
        if self._tripped is not None:
            self.audit.write("guard_clear", guard=self.name, condition=self._tripped)
            self._tripped = None
        yield from self.decorated.tick()
        self.status = self.decorated.status
        self.feedback_message = self.decorated.feedback_message
        if self.status != Status.RUNNING:
            self.stop(self.status)
        yield self

    def update(self) -> Status:
        """Not used: ``tick`` decides (the conditions come before the child, every tick)."""
        return self.decorated.status

    def _trip(self, condition: str, reason: str) -> Iterator[py_trees.behaviour.Behaviour]:
        first = self._tripped is None
        step = self._running_step()
        if self.params["on_trip"] == "fail":
            self.decorated.stop(Status.INVALID)
        else:
            self._halt_robot_actions()
        if first:
            self._tripped = condition
            self.audit.write("guard_trip", guard=self.name, condition=condition, reason=reason, step=step)
            if self.robot is not None:
                self.robot.safe_stop(f"{condition}: {reason}", step=step)
            else:
                self.audit.write("safe_stop", reason=f"{condition}: {reason}", step=step)
            self.blackboard.set(keys.SAFETY_LAST_TRIP, {"guard": self.name, "condition": condition,
                                                        "reason": reason, "step": step})
            keys.append_turn(self.blackboard, "robot", f"I stopped: {reason}.")
        if self.params["on_trip"] == "fail":
            self.feedback_message = f"tripped {condition}: {reason}"
            self.stop(Status.FAILURE)
        else:
            self.feedback_message = f"holding ({condition}: {reason})"
            self.status = Status.RUNNING
        yield self

    def _running_leaves(self) -> list[py_trees.behaviour.Behaviour]:
        return [n for n in self.decorated.iterate() if n.status == Status.RUNNING and not n.children]

    def _running_step(self) -> str | None:
        return next((getattr(n, "step_id", None) for n in self._running_leaves() if getattr(n, "step_id", None)),
                    None)

    def _halt_robot_actions(self) -> None:
        from vla_bt.leaves.skills import SkillLeaf  # leaves depend on guards' audit; import late

        for node in self._running_leaves():
            if isinstance(node, SkillLeaf):
                node.stop(Status.INVALID)
