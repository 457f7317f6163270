"""ROS 2 interface types by name, and messages to and from plain data (dicts, lists, numbers).

Trees name types as text (``std_msgs/msg/String``, ``test_msgs/action/Fibonacci``)
and give values as YAML; these helpers turn one into the other. Nothing here
creates a node, so it is safe to use anywhere.

Example:
    >>> cls = interface_type("geometry_msgs/msg/Point", "msg")
    >>> to_plain(from_plain(cls, {"x": 1, "y": 2}))
    {'x': 1.0, 'y': 2.0, 'z': 0.0}
"""

from __future__ import annotations

import importlib
import math
import re
from collections.abc import Mapping
from typing import Any

from vla_bt.tree.diagnostics import did_you_mean

KINDS = ("msg", "srv", "action")
TYPE_NAME = r"^[A-Za-z][A-Za-z0-9_]*([/.](msg|srv|action))?[/.][A-Z][A-Za-z0-9]*$"
"""The pattern of a type name in a tree: ``pkg/kind/Name``, ``pkg.kind.Name`` or ``pkg/Name``."""


class InterfaceError(ValueError):
    """A type name that does not resolve, or a value that does not fit a message."""


def interface_type(name: str, kind: str) -> Any:
    """The Python class of a ROS 2 interface named in text.

    Args:
        name: ``pkg/kind/Name``, ``pkg.kind.Name`` or ``pkg/Name`` (the kind is then ``kind``)
        kind: ``msg``, ``srv`` or ``action``: what the caller needs

    Returns:
        the message, service or action class

    Raises:
        InterfaceError: the name is malformed, of another kind, or not installed
    """
    parts = re.split(r"[/.]", name)
    if len(parts) == 2:
        parts.insert(1, kind)
    if len(parts) != 3 or not all(parts):
        raise InterfaceError(f"'{name}' is not an interface type name (expected e.g. 'std_msgs/msg/String')")
    package, given, cls_name = parts
    if given != kind:
        raise InterfaceError(f"'{name}' is a {given} type, but a {kind} type is needed here")
    try:
        module = importlib.import_module(f"{package}.{kind}")
    except ImportError:
        hint = " (run: python -m vla_bt.ros.interfaces.build)" if package in ("nav2_msgs", "control_msgs") else ""
        raise InterfaceError(f"interface package '{package}' is not installed{hint}") from None
    cls = getattr(module, cls_name, None)
    if cls is None or not isinstance(cls, type):
        names = [n for n in dir(module) if n[:1].isupper()]
        raise InterfaceError(f"{package}/{kind} has no type '{cls_name}'" + did_you_mean(cls_name, names))
    return cls


def is_message(value: Any) -> bool:
    return hasattr(type(value), "get_fields_and_field_types") and hasattr(value, "__slots__")


def to_plain(value: Any) -> Any:
    """A message (or any value inside one) as JSON-ready data: dicts, lists, numbers, strings."""
    if is_message(value):
        return {name: to_plain(getattr(value, name)) for name in type(value).get_fields_and_field_types()}
    if isinstance(value, (bytes, bytearray)):
        return list(value)
    if isinstance(value, str):
        return value
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return to_plain(value.tolist())
    if isinstance(value, (list, tuple)) or type(value).__name__ == "array":
        return [to_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else (1e308 if value > 0 else -1e308)
    return value


def _slot_class(slot_type: Any) -> Any:
    return getattr(importlib.import_module(".".join(slot_type.namespaces)), slot_type.name)


def _convert(slot_type: Any, value: Any, where: str) -> Any:
    from rosidl_parser.definition import AbstractNestedType, BasicType, NamespacedType

    if isinstance(slot_type, NamespacedType):
        return from_plain(_slot_class(slot_type), value, where)
    if isinstance(slot_type, AbstractNestedType):
        if not isinstance(value, (list, tuple)):
            raise InterfaceError(f"{where}: expected a list, got {value!r}")
        return [_convert(slot_type.value_type, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(slot_type, BasicType) and slot_type.typename in ("float", "double", "long double"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InterfaceError(f"{where}: expected a number, got {value!r}")
        return float(value)
    return value


def from_plain(cls: Any, data: Any, where: str = "") -> Any:
    """A message of type ``cls`` filled from plain data.

    Args:
        cls: the message class
        data: a mapping of field names to values (nested mappings for nested messages, lists for
            sequences); for a message with a single field, the bare value (``"hello"`` for ``std_msgs/String``);
            an instance of ``cls`` is returned as it is
        where: the field path so far, for error messages

    Returns:
        the message

    Raises:
        InterfaceError: an unknown field or a value of the wrong type, naming the field
    """
    if isinstance(data, cls):
        return data
    fields = list(cls.get_fields_and_field_types())
    if not isinstance(data, Mapping):
        if len(fields) != 1:
            raise InterfaceError(f"{where or cls.__name__}: expected a mapping of {', '.join(fields)}, got {data!r}")
        data = {fields[0]: data}
    message = cls()
    slot_types = dict(zip(fields, cls.SLOT_TYPES, strict=True))
    for key, value in data.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in slot_types:
            raise InterfaceError(f"{path}: {cls.__name__} has no field '{key}' (fields: {', '.join(fields)})"
                                 + did_you_mean(str(key), fields))
        try:
            setattr(message, key, _convert(slot_types[key], value, path))
        except (AssertionError, TypeError, ValueError) as error:
            if isinstance(error, InterfaceError):
                raise
            raise InterfaceError(f"{path}: {value!r} does not fit ({error})") from None
    return message


def field_value(value: Any, path: str) -> Any:
    """A field inside a message or plain data by dotted path (``pose.pose.position``); "" is the whole value.

    Raises:
        InterfaceError: no such field
    """
    for name in filter(None, path.split(".")):
        if isinstance(value, Mapping) and name in value:
            value = value[name]
        elif is_message(value) and name in type(value).get_fields_and_field_types():
            value = getattr(value, name)
        else:
            raise InterfaceError(f"no field '{name}' in {path!r}")
    return value


def yaw_of(q: Any) -> float:
    """Heading (rad) of a quaternion (anything with x, y, z, w), about the z axis."""
    return math.atan2(2.0 * (q.w * q.z + q.x * q.y), 1.0 - 2.0 * (q.y * q.y + q.z * q.z))


def quaternion(yaw: float) -> tuple[float, float, float, float]:
    """The quaternion (x, y, z, w) of a heading about the z axis."""
    return 0.0, 0.0, math.sin(yaw / 2.0), math.cos(yaw / 2.0)


def qos(reliable: bool = True, latched: bool = False, depth: int = 10) -> Any:
    """A QoS profile: reliable or best effort, transient-local ("latched") or volatile, keep-last ``depth``."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)
