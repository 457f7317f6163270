"""The project's node catalogue, registered into every default registry."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vla_bt.tree.registry import Registry


def register_builtin_nodes(registry: Registry) -> None:
    """Register the project's leaves and guards (guards are protected from replacement)."""
    from vla_bt import guards, leaves

    for cls in (leaves.Listen, leaves.Say, leaves.Ask, leaves.ParseIntent, leaves.ExecutePlan,
                leaves.Navigate, leaves.Grasp, leaves.Place, leaves.HandOver, leaves.Stop, leaves.Confirm,
                leaves.Perceive, leaves.Search):
        registry.add_class(cls)
    registry.add_class(guards.Guard, protected=True)
    from vla_bt.ros.behaviours import register as register_ros_behaviours  # declared only: no rclpy import

    register_ros_behaviours(registry)
