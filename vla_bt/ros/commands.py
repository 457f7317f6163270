"""The ``vla-bt ros`` and ``vla-bt sim-node`` commands.

``vla-bt ros TREE.yaml``: the tree inside a ROS 2 node. The executor spins
in its own thread; the tick loop runs in the main thread. Robot: ``--robot
ros2`` (default; ``config/ros2.yaml``) or the embedded simulator. Utterances
come from ``--say`` or the utterance topic; robot turns go out on the reply
topic; the tree's status and snapshots are published as JSON
(``vla_bt.ros.status``). On SIGINT or SIGTERM every goal in flight is
cancelled, and the servers' answers awaited, before the node shuts down
(exit 130).

``vla-bt sim-node``: the embedded simulator as a ROS 2 node
(``vla_bt.ros.sim_node``), until SIGINT or SIGTERM.

Both are also ``python -m vla_bt.ros ros …`` and ``python -m vla_bt.ros sim-node …``.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from vla_bt.cli import add_run_options, positive_number, time_scale_number
from vla_bt.tree.diagnostics import TreeError

EXIT_INTERRUPTED = 130


def _ros_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ros-config", metavar="FILE.yaml",
                        help="ROS 2 names and settings (default: ros2.yaml in the configuration directory)")
    parser.add_argument("--node-name", metavar="NAME", help="node name (default: from the ROS 2 configuration)")
    parser.add_argument("--namespace", metavar="NS",
                        help="ROS namespace of every name (default: from the configuration)")


def add_ros_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``vla-bt ros`` (those of ``run`` where they make sense, and the ROS ones).

    Args:
        parser: the subcommand's parser
    """
    parser.add_argument("tree", metavar="TREE.yaml")
    parser.add_argument("--say", action="append", default=None, metavar="TEXT",
                        help="the next utterance (repeat for several turns); default: the utterance topic")
    parser.add_argument("--llm", default="local", metavar="BACKEND",
                        help="local (embedded planner, default) | realtime | chat | scripted:FILE.yaml")
    parser.add_argument("--robot", default="ros2", choices=["ros2", "sim"],
                        help="robot backend (default: ros2, over the topics and actions of the ROS 2 configuration)")
    add_run_options(parser, session="keep the conversation in this file",
                    estop_file="emergency stop: pressed while this file exists (as well as by the e-stop topic)",
                    time_scale="with --robot sim: run the simulator X times faster than real time")
    _ros_options(parser)


def add_sim_node_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``vla-bt sim-node``.

    Args:
        parser: the subcommand's parser
    """
    parser.add_argument("--world", metavar="WORLD.yaml", help="world file (default: config/world.yaml)")
    parser.add_argument("--time-scale", type=time_scale_number, default=1.0, metavar="X",
                        help="run the simulator X times faster than real time (default 1)")
    parser.add_argument("--events", metavar="FILE.jsonl",
                        help="append every goal, cancel request, result, e-stop change and stop here")
    parser.add_argument("--rate", type=positive_number, default=50.0, metavar="HZ",
                        help="simulation and odometry rate (default 50)")
    parser.add_argument("--max-seconds", type=positive_number, metavar="S", help="stop after S seconds")
    _ros_options(parser)


def _bad_input(message: str) -> Exception:
    from vla_bt.cli import BadInputError

    return BadInputError(message)


def ros2_config(args: argparse.Namespace, node: str = "node_name") -> Any:
    """The ROS 2 configuration for the command line: the file, then ``--node-name`` and ``--namespace``.

    Every name is checked as the node will use it, before any node exists.

    Args:
        args: the parsed options
        node: the key ``--node-name`` sets (``node_name``, or ``sim_node_name`` for the sim node)

    Raises:
        TreeError: a bad value in the file (``FILE:LINE:COL``)
        BadInputError: a bad ``--node-name`` or ``--namespace``, or a name of the file that they make invalid
    """
    from vla_bt.config import config_dir

    from .config import load_ros2_config, ros_name_problem

    config = load_ros2_config(args.ros_config or config_dir(getattr(args, "config", None)))
    for option, kind, key, value in (("--node-name", "node", node, args.node_name),
                                     ("--namespace", "namespace", "namespace", args.namespace)):
        if value is None:
            continue
        problem = ros_name_problem(kind, value)
        if problem:
            raise _bad_input(f"{option}: {problem}")
        setattr(config, key, value)
    problems = config.name_problems(getattr(config, node))
    if problems:  # as this node resolves them, with the options applied (the file alone was checked as read)
        key, why = problems[0]
        more = f" (and {len(problems) - 1} more name(s))" if len(problems) > 1 else ""
        raise _bad_input(f"{config.where(key)}{key}: {why}{more}")
    return config


def require_ros(robot: bool = True) -> None:
    """Check that rclpy (and, for the ROS robot, nav2_msgs and control_msgs) can be used.

    Args:
        robot: also check the interface packages of the ROS robot and the sim node

    Raises:
        BadInputError: what is missing and how to install it (``vla-bt`` exits with 2)
    """
    from .messages import InterfaceError, interface_type

    try:
        import rclpy  # noqa: F401
    except ImportError:
        raise _bad_input("ROS 2 (rclpy) is not available: pip install 'vla-bt[ros]', or source a ROS 2 "
                         "installation (source /opt/ros/<distro>/setup.bash)") from None
    if robot:
        try:
            interface_type("nav2_msgs/action/NavigateToPose", "action")
            interface_type("control_msgs/action/GripperCommand", "action")
        except InterfaceError as error:
            raise _bad_input(str(error)) from None


def _estop_topic(node: Any, topic: str, estop: Any) -> Any:
    """Press and release ``estop`` from a ``std_msgs/msg/Bool`` topic (for the embedded simulator)."""
    from std_msgs.msg import Bool

    from .messages import qos

    return node.create_subscription(Bool, topic, lambda m: (estop.press if m.data else estop.release)(), qos())


def _heard_utterances(node: Any, config: Any, world: Any, registry: Any, session: Any) -> Any:
    """What the user says: the utterance topic, and the audio topic recognised offline when one is set."""
    from vla_bt.speech import MergedUtterances, RecognizerError, command_recognizer

    from .audio import RosAudioUtterances
    from .dialogue import RosUtterances
    from .messages import InterfaceError

    typed = RosUtterances(node, config.dialogue.utterances)
    if not config.dialogue.audio.topic:
        return typed
    try:
        spoken = RosAudioUtterances(node, config.dialogue.audio, command_recognizer(world, registry, session))
    except (InterfaceError, RecognizerError) as error:
        raise _bad_input(f"dialogue.audio ({config.dialogue.audio.topic}): {error}") from None
    return MergedUtterances(typed, spoken)


def run_ros(args: argparse.Namespace, registry: Any = None) -> int:
    """``vla-bt ros``: run a tree inside a ROS 2 node.

    Args:
        args: the parsed options (``add_ros_arguments``; ``config`` from the main parser)
        registry: node types (default: the configured default registry); the generic ROS
            behaviours are added to it

    Returns:
        the exit code: 0 success, 1 failure, 130 interrupted (2 is raised as ``BadInputError``)
    """
    from vla_bt import cli
    from vla_bt.app import assemble, make_robot, needs_model
    from vla_bt.config import config_dir
    from vla_bt.guards.audit import AuditLog
    from vla_bt.guards.estop import EStop
    from vla_bt.guards.validation import load_safety_policy
    from vla_bt.robot.ros2 import Ros2Robot
    from vla_bt.speech import ScriptedUtterances
    from vla_bt.tree.loader import TreeLoader

    from .behaviours import register
    from .dialogue import RepliesPublisher
    from .messages import InterfaceError
    from .node import NodeHost, use_host
    from .status import TreeStatusPublisher

    require_ros(robot=args.robot == "ros2")
    registry = registry if registry is not None else cli._registry(getattr(args, "config", None))
    register(registry)
    config = ros2_config(args)
    loaded = TreeLoader(registry).load(cli._existing(args.tree))
    world = cli._world(args)
    session = cli._model_session(args, registry, world) if needs_model(loaded) else None
    host = use_host(NodeHost(config.node_name, config.namespace))
    node = host.start()
    try:
        estop = EStop(args.estop_file) if args.estop_file else EStop()
        if args.robot == "ros2":
            robot: Any = Ros2Robot(config, host=host, estop=estop)
        else:
            robot = make_robot("sim", world, time_scale=args.time_scale)
            _estop_topic(node, config.estop.topic, estop)
        try:
            audit = AuditLog(args.audit) if args.audit else AuditLog()
        except OSError as error:
            raise _bad_input(str(error)) from None
        utterances = ScriptedUtterances(args.say) if args.say is not None else \
            _heard_utterances(node, config, world, registry, session)
        run = assemble(loaded, registry, world=world, utterances=utterances, robot=robot, session=session,
                       audit=audit, rate_hz=args.rate, max_seconds=args.max_seconds, estop=estop,
                       policy=load_safety_policy(config_dir(getattr(args, "config", None))))
        run.setup_timeout = config.server_timeout_s
        run.runner.setup_kwargs["node"] = node  # py_trees_ros behaviours take their node from setup(node=...)
        status = TreeStatusPublisher(node, loaded.tree, loaded.document.name, config.tree.status,
                                     config.tree.snapshot)
        replies = RepliesPublisher(node, config.dialogue.replies)
        loaded.tree.add_post_tick_handler(replies.post_tick)
        loaded.tree.add_post_tick_handler(status.post_tick)
        if args.session:
            from vla_bt.session_file import SessionFile

            session_file = SessionFile(args.session)
            session_file.load()
            loaded.tree.add_post_tick_handler(session_file.post_tick)
            run.runner.shutdown_hooks.append(session_file.save)
        try:
            with run.runner.signals():
                result = run.execute()
        except InterfaceError as error:
            raise _bad_input(str(error)) from None
        replies.publish_new()
        status.publish_final(result.status, result.reason, result.exit_code)
    finally:
        host.stop()  # cancels any goal still in flight and waits for the servers' answers
    if args.json:
        print(json.dumps(result.to_json()))
    else:
        for command in result.commands:
            print(f"command {command['skill']} {json.dumps(command['args'])}")
        print(f"{result.status} {result.reason} ({result.ticks} ticks, {result.seconds:.2f} s)")
    return result.exit_code


def run_sim_node(args: argparse.Namespace, registry: Any = None) -> int:
    """``vla-bt sim-node``: serve the embedded simulator over ROS 2 until SIGINT, SIGTERM or ``--max-seconds``.

    Args:
        args: the parsed options (``add_sim_node_arguments``)
        registry: unused (the same signature as the other commands)

    Returns:
        0 after ``--max-seconds``, 130 when stopped by a signal
    """
    from vla_bt import cli
    from vla_bt.robot.sim import SimRobot

    from .messages import InterfaceError
    from .sim_node import SimNode

    require_ros()
    config = ros2_config(args, node="sim_node_name")
    world = cli._world(args)
    try:
        sim = SimNode(SimRobot(world, time_scale=args.time_scale), config, events=args.events, rate_hz=args.rate)
    except OSError as error:
        raise _bad_input(f"--events {args.events}: cannot write: {error.strerror or error}") from None
    stopped = threading.Event()
    signalled: list[str] = []

    def handler(signum: int, _frame: Any) -> None:
        signalled.append(signal.Signals(signum).name)
        stopped.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            sim.start()
        except InterfaceError as error:
            raise _bad_input(str(error)) from None
        ns = config.namespace or "/"
        print(f"sim-node ready: node {config.sim_node_name} in {ns}, world {world.path or '(empty)'}, "
              f"time scale {args.time_scale:g}", flush=True)
        stopped.wait(args.max_seconds)
    finally:
        sim.stop()
        for s, h in previous.items():
            signal.signal(s, h)
    return EXIT_INTERRUPTED if signalled else 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m vla_bt.ros {ros,sim-node} …`` (the same as ``vla-bt ros`` and ``vla-bt sim-node``)."""
    from vla_bt.cli import EXIT_BAD_INPUT, BadInputError

    parser = argparse.ArgumentParser(prog="python -m vla_bt.ros", description="vla-bt on ROS 2")
    parser.add_argument("--config", metavar="DIR", help="configuration directory (default: ./config)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_ros_arguments(commands.add_parser("ros", help="run a tree inside a ROS 2 node"))
    add_sim_node_arguments(commands.add_parser("sim-node", help="the embedded simulator as a ROS 2 node"))
    args = parser.parse_args(argv)
    try:
        return {"ros": run_ros, "sim-node": run_sim_node}[args.command](args)
    except TreeError as error:
        for diagnostic in error.diagnostics:
            print(diagnostic, file=sys.stderr)
        return EXIT_BAD_INPUT
    except BadInputError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
