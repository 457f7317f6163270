"""``config/ros2.yaml``: the ROS 2 names and settings of the ROS robot, the tree node and the sim node.

Every key is optional; what is absent keeps the default below. Names without
a leading ``/`` are relative to the node's namespace (``--namespace``), so one
file serves many robots. Unknown keys, wrong types and names that ROS 2 would
refuse (checked with rclpy's own validation, before any node exists) are
errors with ``FILE:LINE:COL``, as in trees.

Example:
    >>> config = load_ros2_config(Path("config"))
    >>> config.navigate.action
    'navigate_to_pose'
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vla_bt.tree.diagnostics import Diagnostic, Mark, TreeError
from vla_bt.tree.yamlsrc import LMap, mark_at, read_located, schema_diagnostics

FILENAME = "ros2.yaml"
POSE_TYPES = ("nav_msgs/msg/Odometry", "geometry_msgs/msg/PoseStamped", "geometry_msgs/msg/PoseWithCovarianceStamped")
AUDIO_TYPES = ("audio_common_msgs/msg/AudioData", "std_msgs/msg/UInt8MultiArray", "std_msgs/msg/Int16MultiArray")
AUDIO_ENCODINGS = ("S16LE", "F32LE")


@dataclass
class NavigateConfig:
    """Navigation through Nav2's ``NavigateToPose`` action.

    Args:
        action: action name
        behavior_tree: Nav2 behaviour tree for the goals ("" = the navigator's default)
        speed_limit_topic: ``nav2_msgs/msg/SpeedLimit`` topic for a command's speed ("" = never send limits)
    """

    action: str = "navigate_to_pose"
    behavior_tree: str = ""
    speed_limit_topic: str = "speed_limit"


@dataclass
class GripperConfig:
    """The gripper through ``control_msgs/action/GripperCommand``.

    Args:
        action: action name
        open_position: gap (m) commanded to release (place, hand over)
        closed_position: gap (m) commanded to grasp
        max_effort: force limit (N) of every command
        grasp_requires_stall: a grasp succeeds only when the gripper stalled on something
            (closing all the way means it closed on nothing)
        intent_topic: ``std_msgs/msg/String`` topic announcing what each gripper command is for (JSON), "" = none
    """

    action: str = "gripper_controller/gripper_cmd"
    open_position: float = 0.08
    closed_position: float = 0.0
    max_effort: float = 20.0
    grasp_requires_stall: bool = True
    intent_topic: str = "gripper/intent"


@dataclass
class PoseConfig:
    """Where the robot's pose comes from (TF-free).

    Args:
        topic: topic name
        type: one of ``POSE_TYPES``
    """

    topic: str = "odom"
    type: str = "nav_msgs/msg/Odometry"


@dataclass
class EStopConfig:
    """The emergency stop input (``std_msgs/msg/Bool``, true = pressed).

    Args:
        topic: topic name
        timeout_s: press the e-stop when no message came for this long (``None``: no heartbeat needed)
    """

    topic: str = "estop"
    timeout_s: float | None = None


@dataclass
class PerceptionConfig:
    """Objects and people as ``visualization_msgs/msg/MarkerArray`` (see docs/ros2.md for the mapping).

    Args:
        objects: topic of object markers ("" = none)
        humans: topic of people markers (may be the same topic as ``objects``; "" = none)
        human_ns: marker namespace that marks a person on a shared topic
    """

    objects: str = "perception/objects"
    humans: str = "perception/objects"
    human_ns: str = "human"


@dataclass
class AudioConfig:
    """Raw speech audio from a topic, recognised by the tree's node (as a microphone would be).

    Args:
        topic: topic name ("" = none: only the utterance topic is heard)
        type: one of ``AUDIO_TYPES``; its ``data`` holds the PCM samples
        sample_rate: samples per second of each channel
        channels: interleaved channels (mixed down to one)
        encoding: ``S16LE`` (signed 16-bit little-endian, the usual) or ``F32LE`` in byte arrays;
            ``Int16MultiArray`` carries 16-bit samples whatever this says
    """

    topic: str = ""
    type: str = "audio_common_msgs/msg/AudioData"
    sample_rate: int = 16000
    channels: int = 1
    encoding: str = "S16LE"


@dataclass
class DialogueConfig:
    """Speech as ``std_msgs/msg/String`` topics, and optionally raw audio.

    Args:
        utterances: what the user said (in); an empty string means no more utterances will come
        replies: what the robot says (out)
        audio: speech audio to recognise (in), beside the utterance topic
    """

    utterances: str = "speech/utterance"
    replies: str = "speech/reply"
    audio: AudioConfig = field(default_factory=AudioConfig)


@dataclass
class TreeConfig:
    """Topics of ``vla-bt ros`` for viewers (JSON in ``std_msgs/msg/String``, latched).

    Args:
        status: one message per tick (and a final one)
        snapshot: the whole tree and the blackboard, whenever they change
    """

    status: str = "~/status"
    snapshot: str = "~/snapshot"


@dataclass
class Ros2Config:
    """Everything in ``config/ros2.yaml``.

    Args:
        node_name: the node of ``vla-bt ros`` and of ``--robot ros2``
        namespace: ROS namespace of every name ("" = root)
        frame_id: the fixed frame of goals, poses and perception
        base_frame: the robot's own frame (markers in it are transformed with the robot's pose)
        gripper_frame: markers in this frame are objects held by the gripper
        cmd_vel: ``geometry_msgs/msg/Twist`` topic; a zero twist is sent on every safe stop
        battery: ``sensor_msgs/msg/BatteryState`` topic ("" = none; the battery then reads 1.0)
        server_timeout_s: how long ``setup()`` waits for the action servers, the first pose and perception
        sim_node_name: the node of ``vla-bt sim-node``
    """

    node_name: str = "vla_bt"
    namespace: str = ""
    frame_id: str = "map"
    base_frame: str = "base_link"
    gripper_frame: str = "gripper"
    cmd_vel: str = "cmd_vel"
    battery: str = "battery_state"
    server_timeout_s: float = 10.0
    sim_node_name: str = "vla_bt_sim"
    navigate: NavigateConfig = field(default_factory=NavigateConfig)
    gripper: GripperConfig = field(default_factory=GripperConfig)
    pose: PoseConfig = field(default_factory=PoseConfig)
    estop: EStopConfig = field(default_factory=EStopConfig)
    perception: PerceptionConfig = field(default_factory=PerceptionConfig)
    dialogue: DialogueConfig = field(default_factory=DialogueConfig)
    tree: TreeConfig = field(default_factory=TreeConfig)
    path: str = ""
    marks: dict[str, Mark] = field(default_factory=dict, repr=False, compare=False)

    def name_problems(self, node_name: str | None = None) -> list[tuple[str, str]]:
        """Every name here that ROS 2 would refuse, as its node ``node_name`` would resolve it.

        Args:
            node_name: the node that uses the topics and actions (default: ``node_name``)

        Returns:
            ``(key, why)`` pairs, keys dotted as in the file (``navigate.action``); empty when all
            are valid, or when rclpy is not installed (nothing can be created then anyway)
        """
        problems = []
        for key, kind in ROS_NAMES.items():
            value = _value(self, key)
            if value == "" and key in OPTIONAL_NAMES:
                continue
            why = ros_name_problem(kind, value, node_name or self.node_name, self.namespace)
            if why:
                problems.append((key, why))
        return problems

    def where(self, key: str) -> str:
        """``FILE:LINE:COL: `` of a key's value as read from the file ("" for a default)."""
        mark = self.marks.get(key)
        return f"{mark}: " if mark is not None else ""


def _schema(cls: type) -> dict[str, Any]:
    """A strict JSON Schema of a config dataclass, from its field types."""
    props: dict[str, Any] = {}
    kinds = {"str": {"type": "string"}, "float": {"type": "number"}, "bool": {"type": "boolean"},
             "float | None": {"type": ["number", "null"], "exclusiveMinimum": 0},
             "int": {"type": "integer", "minimum": 1}}
    for f in dataclasses.fields(cls):
        if f.name in ("path", "marks"):
            continue
        if f.default_factory is not dataclasses.MISSING:
            props[f.name] = _schema(f.default_factory)  # type: ignore[arg-type]
        else:
            props[f.name] = dict(kinds[str(f.type)])
    if cls is PoseConfig:
        props["type"] = {"enum": list(POSE_TYPES)}
    if cls is AudioConfig:
        props["type"] = {"enum": list(AUDIO_TYPES)}
        props["encoding"] = {"enum": list(AUDIO_ENCODINGS)}
    return {"type": "object", "properties": props, "additionalProperties": False}


SCHEMA = _schema(Ros2Config)

# The keys that hold ROS 2 names, by kind: node names, the namespace, and topic and action names
# (relative ones resolve in the namespace; ``~`` is the node's own).
ROS_NAMES = {
    "node_name": "node", "sim_node_name": "node", "namespace": "namespace", "cmd_vel": "topic",
    "battery": "topic", "navigate.action": "action", "navigate.speed_limit_topic": "topic",
    "gripper.action": "action", "gripper.intent_topic": "topic", "pose.topic": "topic", "estop.topic": "topic",
    "perception.objects": "topic", "perception.humans": "topic", "dialogue.utterances": "topic",
    "dialogue.replies": "topic", "dialogue.audio.topic": "topic", "tree.status": "topic", "tree.snapshot": "topic",
}
# Names that may be "" (the feature is off).
OPTIONAL_NAMES = {"battery", "navigate.speed_limit_topic", "gripper.action", "gripper.intent_topic",
                  "perception.objects", "perception.humans", "dialogue.audio.topic"}


def _value(config: Any, key: str) -> Any:
    for step in key.split("."):
        config = getattr(config, step)
    return config


def _reason(error: Exception) -> str:
    """The reason in one of rclpy's name errors, without the name, the caret line or the C source position."""
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    if isinstance(error, ValueError) and " is invalid: " in text:  # expand_topic_name: "topic name 'x' is invalid: …"
        text = text.partition(" is invalid: ")[2].rpartition(", at ")[0] or text
    else:  # NameValidationException: "Invalid topic name: …:"
        text = text.partition(": ")[2].rstrip(":") or text
    return text


NOUNS = {"node": "node name", "namespace": "namespace", "topic": "topic name", "action": "action name"}


def ros_name_problem(kind: str, name: str, node_name: str = "vla_bt", namespace: str = "") -> str | None:
    """Why ROS 2 would refuse a name, checked with rclpy's own validation (``None``: it is valid).

    A namespace may be "" (the root) or relative (as ``rclpy.create_node`` takes it: under ``/``).
    A topic or action name is checked as written, then as the node resolves it (``~`` and
    substitutions expanded, relative names put in the namespace), which also bounds its length.

    Args:
        kind: ``node``, ``namespace``, ``topic`` or ``action`` (actions are named as topics are)
        name: the name
        node_name: the node that resolves a topic or action name
        namespace: the namespace of that node

    Returns:
        the problem, e.g. ``'bad name' is not a valid ROS 2 node name (node name must not contain …)``;
        ``None`` when the name is valid, or when rclpy is not installed
    """
    try:
        from rclpy.exceptions import NameValidationException
        from rclpy.expand_topic_name import expand_topic_name
        from rclpy.validate_full_topic_name import validate_full_topic_name
        from rclpy.validate_namespace import validate_namespace
        from rclpy.validate_node_name import validate_node_name
        from rclpy.validate_topic_name import validate_topic_name
    except ImportError:
        return None
    absolute = namespace if namespace.startswith("/") else "/" + namespace
    resolved = ""
    try:
        if kind == "node":
            validate_node_name(name)
        elif kind == "namespace":
            if name:
                validate_namespace(name if name.startswith("/") else "/" + name)
        else:
            validate_topic_name(name)
            if ros_name_problem("node", node_name) or ros_name_problem("namespace", namespace):
                return None  # the node's own name is at fault, and reported as such
            resolved = f" as node '{node_name}' in namespace '{absolute}' resolves it"
            validate_full_topic_name(expand_topic_name(name, node_name, absolute))
    except (NameValidationException, ValueError) as error:
        return f"{name!r} is not a valid ROS 2 {NOUNS[kind]}{resolved} ({_reason(error)})"
    return None


def _apply(target: Any, data: dict[str, Any]) -> None:
    for key, value in data.items():
        current = getattr(target, key)
        if dataclasses.is_dataclass(current):
            _apply(current, value)
        else:
            setattr(target, key, float(value) if isinstance(value, int) and not isinstance(value, bool)
                    and isinstance(current, float) else value)


def load_ros2_config(where: str | os.PathLike[str] | None = None) -> Ros2Config:
    """Read ``ros2.yaml`` from a configuration directory, or a file given directly (defaults when absent).

    Args:
        where: a directory holding ``ros2.yaml``, a YAML file, or ``None`` for the defaults

    Returns:
        the configuration

    Raises:
        TreeError: every problem, each with ``FILE:LINE:COL``
    """
    config = Ros2Config()
    if where is None:
        return config
    path = Path(where)
    if path.is_dir():
        path = path / FILENAME
        if not path.is_file():
            return config
    elif not path.is_file():
        raise TreeError([Diagnostic(Mark(str(path), 1, 1), "ROS 2 configuration file not found")])
    data = read_located(path)
    if data is None:
        return config
    start = Mark(str(path), 1, 1)
    if not isinstance(data, LMap):
        raise TreeError([Diagnostic(start, "expected a mapping (node_name, navigate, gripper, ...)")])
    errors = schema_diagnostics(SCHEMA, data, start) or list(_number_problems(data))
    if errors:
        raise TreeError(errors)
    _apply(config, data)
    config.path = str(path)
    config.marks = {key: mark_at(data, key.split("."), start) for key in ROS_NAMES if _present(data, key)}
    problems = config.name_problems()
    if problems:
        raise TreeError([Diagnostic(config.marks.get(key, start), f"{key}: {why}") for key, why in problems])
    return config


def _number_problems(data: LMap, prefix: str = "") -> Iterator[Diagnostic]:
    """Numbers the schema lets through: not finite (``.nan``, ``.inf``), or a duration (``*_s``) not above 0."""
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, LMap):
            yield from _number_problems(value, f"{dotted}.")
        elif isinstance(value, float) and not math.isfinite(value):
            yield Diagnostic(data.at(key), f"{dotted}: expected a finite number, got {value!r}")
        elif str(key).endswith("_s") and isinstance(value, (int, float)) and not isinstance(value, bool) \
                and value <= 0:
            yield Diagnostic(data.at(key), f"{dotted}: expected a positive number of seconds, got {value!r}")


def _present(data: Any, key: str) -> bool:
    for step in key.split("."):
        if not isinstance(data, dict) or step not in data:
            return False
        data = data[step]
    return True
