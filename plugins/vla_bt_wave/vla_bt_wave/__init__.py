"""An example vla-bt plugin: gesture leaves for a robot with an arm and a head.

Installed, it offers two node types to every tree, through two entry points of
the group ``vla_bt.nodes`` (see ``pyproject.toml``):

- ``Wave = "vla_bt_wave.gestures:Wave"`` names a class: the registry registers
  it under the entry point's name;
- ``vla_bt_wave = "vla_bt_wave:register"`` names a function: the registry
  calls it with a registrar, and it registers ``Nod`` (and could register more,
  or swap a built-in leaf for its own).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .gestures import ROBOT_GESTURE, Nod, Wave

if TYPE_CHECKING:
    from vla_bt.tree.registry import PluginRegistrar

__all__ = ["ROBOT_GESTURE", "Nod", "Wave", "register"]
__version__ = "0.1.0"


def register(registry: PluginRegistrar) -> None:
    """Register this plugin's nodes (the ``vla_bt_wave`` entry point).

    Args:
        registry: the registrar the node registry hands to plugins; its
            ``add_class(cls, name=None, replace=False)`` registers a behaviour class

    Raises:
        vla_bt.tree.registry.RegistryError: a name is taken (and ``replace`` is
            false) or belongs to a safety node; the registry records the error
            in ``plugin_errors`` and carries on without this plugin
    """
    registry.add_class(Nod)

    # Swapping a built-in leaf for your own: register your class under the
    # built-in's name with replace=True. Every tree that says `type: Navigate`
    # then builds your class, with the parameters your class declares. Keep the
    # built-in's parameters (here `target` and `speed`) so existing trees stay
    # valid. Safety nodes such as Guard are protected and cannot be replaced.
    #
    #     from vla_bt.leaves import Navigate
    #
    #     class MyNavigate(Navigate):
    #         """Drive with my robot's own planner."""
    #
    #         def update(self) -> py_trees.common.Status:
    #             ...
    #
    #     registry.add_class(MyNavigate, name="Navigate", replace=True)
