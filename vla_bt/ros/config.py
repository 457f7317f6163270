"""``config/ros2.yaml``: the ROS 2 names and settings of the ROS robot, the tree node and the sim node.

Every key is optional; what is absent keeps the default below. Names without
a leading ``/`` are relative to the node's namespace (``--namespace``), so one
file serves many robots. Unknown keys and wrong types are errors with
``FILE:LINE:COL``, as in trees.

Example:
    >>> config = load_ros2_config(Path("config"))
    >>> config.navigate.action
    'navigate_to_pose'
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vla_bt.tree.diagnostics import Diagnostic, Mark, TreeError
from vla_bt.tree.yamlsrc import LMap, read_located, schema_diagnostics

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


def _schema(cls: type) -> dict[str, Any]:
    """A strict JSON Schema of a config dataclass, from its field types."""
    props: dict[str, Any] = {}
    kinds = {"str": {"type": "string"}, "float": {"type": "number"}, "bool": {"type": "boolean"},
             "float | None": {"type": ["number", "null"], "exclusiveMinimum": 0},
             "int": {"type": "integer", "minimum": 1}}
    for f in dataclasses.fields(cls):
        if f.name == "path":
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
    errors = schema_diagnostics(SCHEMA, data, start)
    if errors:
        raise TreeError(errors)
    _apply(config, data)
    config.path = str(path)
    return config
