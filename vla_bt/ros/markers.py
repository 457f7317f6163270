"""Perception as ``visualization_msgs/MarkerArray``: markers to ``/perception/*`` records and back.

The mapping (docs/ros2.md):

* one marker per object: ``ns`` is the label ("cup"), ``text`` is the id ("cup_red"),
  optionally followed by ``;key=value`` attributes (``graspable=false``, ``color=teal``);
  without a text the id is ``<ns>_<marker id>``;
* the colour name is the nearest of ``COLOURS`` to the marker's RGB (a ``color=`` attribute
  overrides it; ``color=`` with nothing after it means "no colour");
* the pose is the marker's position and heading (yaw) in the fixed frame; markers in the
  robot's base frame are moved by the robot's pose; markers in the gripper frame are held;
* people are markers whose ``ns`` is the people namespace (``human``), on the objects topic
  or on their own topic (where every marker is a person);
* ``ADD``/``MODIFY`` adds or replaces the marker (``ns``, ``id``); ``DELETE`` removes it;
  ``DELETEALL`` removes every marker of that topic (as RViz does).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from vla_bt.robot.protocol import Pose

from .messages import quaternion, yaw_of

COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.9, 0.1, 0.1), "green": (0.1, 0.7, 0.2), "blue": (0.1, 0.3, 0.9), "yellow": (0.95, 0.85, 0.1),
    "orange": (1.0, 0.55, 0.0), "purple": (0.55, 0.2, 0.7), "pink": (1.0, 0.6, 0.75), "brown": (0.55, 0.35, 0.15),
    "cyan": (0.0, 0.8, 0.8), "white": (1.0, 1.0, 1.0), "black": (0.0, 0.0, 0.0), "grey": (0.5, 0.5, 0.5),
}
"""Colour names and the RGB (0…1) that stands for each, both ways."""
ALIASES = {"gray": "grey"}
NEUTRAL = (0.6, 0.6, 0.6)
ADD, DELETE, DELETEALL = 0, 2, 3


def colour_name(r: float, g: float, b: float) -> str:
    """The nearest named colour to an RGB colour (components 0…1)."""
    return min(COLOURS, key=lambda name: math.dist(COLOURS[name], (r, g, b)))


def parse_text(text: str) -> tuple[str, dict[str, str]]:
    """A marker text as (id, attributes): ``"table_1;graspable=false"`` → ``("table_1", {"graspable": "false"})``."""
    head, *rest = text.split(";")
    attributes = {}
    for item in rest:
        key, _, value = item.partition("=")
        if key.strip():
            attributes[key.strip()] = value.strip()
    return head.strip(), attributes


@dataclass
class Seen:
    """One marker as understood: an object or a person."""

    id: str
    label: str
    color: str
    pose: Pose
    graspable: bool
    human: bool
    held: bool = False


class MarkerScene:
    """The markers received so far on the perception topics, as objects and people.

    Args:
        frame_id: the fixed frame (``map``)
        base_frame: the robot's frame: such markers are moved by the robot's pose when received
        gripper_frame: markers in this frame are held objects
        human_ns: the namespace of people on the objects topic

    Attributes:
        ignored_frames: frames of markers that were dropped (no TF here: only the three frames above are known)
    """

    def __init__(self, frame_id: str = "map", base_frame: str = "base_link", gripper_frame: str = "gripper",
                 human_ns: str = "human"):
        self.frame_id, self.base_frame = frame_id, base_frame
        self.gripper_frame, self.human_ns = gripper_frame, human_ns
        self._markers: dict[tuple[str, str, int], Seen] = {}
        self.ignored_frames: set[str] = set()

    def apply(self, markers: Any, robot_pose: Pose, source: str = "objects", all_human: bool = False) -> None:
        """Take in one ``MarkerArray``.

        Args:
            markers: the message
            robot_pose: the robot's pose now (for markers in the base frame)
            source: which topic it came from (``DELETEALL`` clears only that topic's markers)
            all_human: every marker is a person (a topic of its own for people)
        """
        for marker in markers.markers:
            key = (source, marker.ns, marker.id)
            if marker.action == DELETEALL:
                self._markers = {k: v for k, v in self._markers.items() if k[0] != source}
            elif marker.action == DELETE:
                self._markers.pop(key, None)
            else:
                seen = self._understand(marker, robot_pose, all_human)
                if seen is not None:
                    self._markers[key] = seen

    def _understand(self, marker: Any, robot_pose: Pose, all_human: bool) -> Seen | None:
        frame = marker.header.frame_id.lstrip("/")
        p, q = marker.pose.position, marker.pose.orientation
        pose: Pose = (p.x, p.y, yaw_of(q))
        held = frame == self.gripper_frame
        if frame == self.base_frame:
            x, y, theta = robot_pose
            c, s = math.cos(theta), math.sin(theta)
            pose = (x + c * pose[0] - s * pose[1], y + s * pose[0] + c * pose[1],
                    math.remainder(theta + pose[2], math.tau))
        elif frame not in (self.frame_id, "") and not held:
            self.ignored_frames.add(frame)
            return None
        ident, attributes = parse_text(marker.text)
        human = all_human or marker.ns == self.human_ns
        ident = ident or f"{marker.ns or ('human' if human else 'object')}_{marker.id}"
        colour = attributes["color"] if "color" in attributes else colour_name(marker.color.r, marker.color.g,
                                                                                marker.color.b)
        graspable = attributes.get("graspable", "true").lower() not in ("false", "0", "no")
        return Seen(ident, marker.ns, colour, pose, graspable, human, held)

    def objects(self, robot_pose: Pose) -> list[dict[str, Any]]:
        """``/perception/objects`` records (held objects are where the robot is)."""
        return [{"id": s.id, "label": s.label, "color": s.color,
                 "pose": list(robot_pose if s.held else s.pose), "graspable": s.graspable}
                for s in self._markers.values() if not s.human]

    def humans(self) -> list[dict[str, Any]]:
        """``/perception/humans`` records."""
        return [{"id": s.id, "pose": list(s.pose)} for s in self._markers.values() if s.human]

    def held(self) -> str | None:
        """The id of the object shown in the gripper frame, if any."""
        return next((s.id for s in self._markers.values() if s.held and not s.human), None)


def marker_id(ident: str) -> int:
    """A stable marker id for an object id (the same in every frame)."""
    return zlib.crc32(ident.encode()) & 0x7FFFFFFF


def scene_markers(objects: Iterable[dict[str, Any]], humans: Iterable[dict[str, Any]], *, stamp: Any,
                  frame_id: str = "map", gripper_frame: str = "gripper", held: str | None = None,
                  human_ns: str = "human") -> Any:
    """The whole scene as one ``MarkerArray`` (``DELETEALL`` first, then a marker per object and person).

    Args:
        objects: ``/perception/objects`` records
        humans: ``/perception/humans`` records
        stamp: ``builtin_interfaces/Time`` of the markers
        frame_id: the fixed frame
        gripper_frame: the frame of the held object
        held: id of the held object
        human_ns: namespace of people

    Returns:
        the ``visualization_msgs/msg/MarkerArray``
    """
    from visualization_msgs.msg import Marker, MarkerArray

    def marker(ns: str, ident: str, pose: Any, kind: int, scale: tuple[float, float, float],
               rgb: tuple[float, float, float], text: str, frame: str) -> Marker:
        m = Marker(ns=ns, id=marker_id(ident), type=kind, action=ADD, text=text, frame_locked=frame != frame_id)
        m.header.frame_id, m.header.stamp = frame, stamp
        if frame == frame_id:
            m.pose.position.x, m.pose.position.y = float(pose[0]), float(pose[1])
            o = m.pose.orientation
            o.x, o.y, o.z, o.w = quaternion(float(pose[2]))
        m.scale.x, m.scale.y, m.scale.z = scale
        m.color.r, m.color.g, m.color.b, m.color.a = (*rgb, 1.0)
        return m

    clear = Marker(action=DELETEALL)
    clear.header.frame_id, clear.header.stamp = frame_id, stamp
    array = MarkerArray(markers=[clear])
    for obj in objects:
        name = ALIASES.get(obj.get("color", ""), obj.get("color", ""))
        text = obj["id"] + ("" if name in COLOURS else f";color={obj.get('color', '')}")
        if not obj.get("graspable", True):
            text += ";graspable=false"
        frame = gripper_frame if obj["id"] == held else frame_id
        array.markers.append(marker(obj["label"], obj["id"], obj["pose"], Marker.CUBE, (0.1, 0.1, 0.12),
                                    COLOURS.get(name, NEUTRAL), text, frame))
    for human in humans:
        array.markers.append(marker(human_ns, human["id"], human["pose"], Marker.CYLINDER, (0.4, 0.4, 1.7),
                                    NEUTRAL, human["id"], frame_id))
    return array
