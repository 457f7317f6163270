"""The ``Guard`` decorator: conditions checked before every tick of its child."""

from __future__ import annotations

from collections.abc import Iterator

import py_trees

from vla_bt import blackboard as keys
from vla_bt.tree.declared import DeclaredDecorator, Param

CONDITION = {
    "anyOf": [
        {"type": "string", "minLength": 1},
        {"type": "object", "minProperties": 1, "maxProperties": 1},
    ]
}


class Guard(DeclaredDecorator):
    """Check safety conditions before every tick of the child; stop safely on a trip.

    Args:
        child: the guarded subtree
        name: node name
        conditions: condition names, or one-key mappings with arguments (``{battery_above: 0.2}``)
        on_trip: ``fail`` (FAILURE after a safe stop) or ``hold`` (RUNNING until the conditions hold again)

    Until the safety layer lands, a Guard never ticks its child and fails:
    nothing runs unguarded.
    """

    DESCRIPTION = "Check safety conditions before every tick of the child; stop safely on a trip."
    PARAMS = {
        "conditions": Param({"type": "array", "items": CONDITION, "minItems": 1},
                            "conditions that must all hold", runtime=False),
        "on_trip": Param({"enum": ["fail", "hold"]}, "fail: FAILURE; hold: wait until they hold again",
                         default="fail", runtime=False),
    }
    READS = (keys.SAFETY_ESTOP,)
    WRITES = (keys.SAFETY_LAST_TRIP,)

    def tick(self) -> Iterator[py_trees.behaviour.Behaviour]:
        # The child is not ticked: a guard that cannot check its conditions must not let it run.
        yield from py_trees.behaviour.Behaviour.tick(self)

    def update(self) -> py_trees.common.Status:
        self.feedback_message = "Guard is not implemented yet: refusing to run the guarded subtree"
        return py_trees.common.Status.FAILURE
