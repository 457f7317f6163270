"""The ``vla-bt`` command line (DESIGN §6).

Exit codes: 0 success, 1 failure (or invalid trees for ``validate``),
2 bad input (invalid tree, bad arguments, unreadable file), 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich_argparse import RawDescriptionRichHelpFormatter

from vla_bt import __version__
from vla_bt.config import config_dir, load_registry_config
from vla_bt.tree.diagnostics import TreeError
from vla_bt.tree.loader import TreeLoader
from vla_bt.tree.registry import NodeSpec, Registry
from vla_bt.tree.yamlsrc import file_problem

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130

EXAMPLES = """examples:
  vla-bt run trees/hello.yaml --say "hello robot"
  vla-bt validate trees/*.yaml
  vla-bt render trees/fetch_object.yaml -o fetch_object.svg
  vla-bt nodes --json
"""


class BadInputError(Exception):
    """Input the user can fix; printed without a traceback, exit 2."""


def add_run_options(parser: argparse.ArgumentParser, *, session: str, estop_file: str, time_scale: str) -> None:
    """The options every command that runs a tree shares (``run``, ``ros``), with their own help where it differs.

    Args:
        parser: the command's parser
        session: the help of ``--session``
        estop_file: the help of ``--estop-file``
        time_scale: the help of ``--time-scale``
    """
    parser.add_argument("--world", metavar="WORLD.yaml", help="world file (default: config/world.yaml)")
    parser.add_argument("--audit", metavar="FILE.jsonl", help="append the audit log here (one JSON object per line)")
    parser.add_argument("--session", metavar="FILE.json", help=session)
    parser.add_argument("--estop-file", metavar="PATH", help=estop_file)
    parser.add_argument("--time-scale", type=time_scale_number, default=1.0, metavar="X", help=time_scale)
    parser.add_argument("--json", action="store_true", help="print one JSON object at the end, nothing else")
    parser.add_argument("--max-seconds", type=positive_number, metavar="S", help="stop after S seconds")
    parser.add_argument("--rate", type=positive_number, default=10.0, metavar="HZ", help="tick rate (default 10)")


def positive_number(text: str) -> float:
    """argparse type: a positive, finite number."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text!r}")
    return value


MAX_TIME_SCALE = 1e6


def time_scale_number(text: str) -> float:
    """argparse type of ``--time-scale``: a positive number up to ``MAX_TIME_SCALE``."""
    value = positive_number(text)
    if value > MAX_TIME_SCALE:
        raise argparse.ArgumentTypeError(f"expected at most {MAX_TIME_SCALE:g} (a million times real time), "
                                         f"got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vla-bt", description="Run, check and draw YAML behaviour trees that put a language model "
                                   "in charge of a robot, safely.",
        epilog=EXAMPLES, formatter_class=RawDescriptionRichHelpFormatter)
    parser.add_argument("--version", action="version", version=f"vla-bt {__version__}")
    parser.add_argument("--config", metavar="DIR", help="configuration directory (default: ./config)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=help_text, description=help_text,
                                   formatter_class=RawDescriptionRichHelpFormatter)

    run = command("run", "Run a tree until it succeeds, fails or time runs out.")
    run.add_argument("tree", metavar="TREE.yaml")
    run.add_argument("--say", action="append", default=None, metavar="TEXT",
                     help="the next utterance Listen receives (repeat for several turns)")
    run.add_argument("--audio", action="append", default=None, metavar="FILE.wav",
                     help="recorded speech: the next utterance, transcribed offline (repeat for several turns)")
    run.add_argument("--microphone", nargs="?", const="", default=None, metavar="DEVICE",
                     help="live speech from a microphone, recognised offline while the user speaks "
                          "(needs sounddevice; DEVICE: a name or number, default the system's input)")
    run.add_argument("--speak", action="store_true", help="speak robot turns through espeak-ng")
    run.add_argument("--llm", default="local", metavar="BACKEND",
                     help="local (embedded planner, default) | realtime | chat | scripted:FILE.yaml")
    run.add_argument("--robot", default="sim", choices=["sim", "ros2"],
                     help="robot backend: sim (the embedded simulator, default) or ros2 (config/ros2.yaml)")
    add_run_options(run, session="keep the conversation in this file: a later run continues it",
                    estop_file="emergency stop: pressed while this file exists (and does not contain 0)",
                    time_scale="run the simulator X times faster than real time (default 1)")
    run.add_argument("--perception", default="truth", choices=["truth", "camera"],
                     help="truth: the simulator's complete object list (default); camera: only what the robot's "
                          "camera detected (docs/vision.md)")
    run.add_argument("--record", metavar="FILE.jsonl",
                     help="append every tick's changes to this file (see 'vla-bt replay')")
    run.add_argument("--viewer", metavar="[HOST:]PORT",
                     help="serve the live web viewer on this port (127.0.0.1 unless HOST is given)")
    run.add_argument("--viewer-token", metavar="TOKEN",
                     help="access token for the viewer; required for a HOST other than 127.0.0.1 "
                          "(or set VLA_BT_VIEWER_TOKEN)")
    run.add_argument("--watch", action="store_true",
                     help="hot reload: when the tree file changes, swap the changed parts of the running tree")
    run.add_argument("--swap", choices=["stop", "wait"], default=None,
                     help="with --watch: stop a running part before swapping it (default), or wait until it is idle")

    validate = command("validate", "Check trees; exit 0 when all are valid, 1 otherwise.")
    validate.add_argument("trees", nargs="+", metavar="TREE.yaml")

    render = command("render", "Draw a tree to SVG, PNG or DOT with Graphviz.")
    render.add_argument("tree", metavar="TREE.yaml")
    render.add_argument("-o", "--output", required=True, metavar="OUT.{svg,png,dot}")
    render.add_argument("-b", "--with-blackboard", action="store_true",
                        help="also draw the blackboard keys each node reads and writes")

    nodes = command("nodes", "List every registered node type with its parameters.")
    output = nodes.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="machine-readable output")
    output.add_argument("--markdown", action="store_true", help="the node reference as Markdown")

    serve = command("serve-realtime", "Serve the OpenAI Realtime protocol (GA) locally, answered by an embedded "
                                      "backend, for offline runs, tests and benchmarks.")
    serve.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8765, help="TCP port (default 8765; 0 picks a free one)")
    serve.add_argument("--llm", default="local", metavar="BACKEND", help="local (default) | scripted:FILE.yaml")
    serve.add_argument("--world", metavar="WORLD.yaml", help="world file for the local planner")
    serve.add_argument("--pace", default="none", metavar="gpt4o|FIRST_S,TOKENS_PER_S",
                       help="answer at GPT-4o's published pace (gpt4o), or at a given one (default: no delay)")
    serve.add_argument("--api-key-env", metavar="VAR",
                       help="require clients to present the key held in this environment variable")

    replay = command("replay", "Replay a recording: print what happened, or show it in the viewer with a timeline.")
    replay.add_argument("file", metavar="FILE.jsonl")
    replay.add_argument("--viewer", metavar="[HOST:]PORT", help="serve the recording in the viewer page")
    replay.add_argument("--viewer-token", metavar="TOKEN",
                        help="access token for the viewer (required for a HOST other than 127.0.0.1)")
    replay.add_argument("--run", type=int, metavar="N",
                        help="which run of a file that holds several (0 is the first; default: the last)")

    bench = command("bench", "Measure the performance figures of docs/benchmarks.md, side by side in one run.")
    bench.add_argument("--json", action="store_true", help="print one JSON object with every figure")
    bench.add_argument("--quick", action="store_true", help="fewer repetitions (a minute instead of several)")
    bench.add_argument("--only", action="append", metavar="FIGURE", help="measure only this figure (repeatable)")

    from vla_bt.ros import commands as ros_commands

    ros_commands.add_ros_arguments(command("ros", "Run a tree inside a ROS 2 node (status, speech and robot "
                                                  "on ROS 2 topics and actions)."))
    ros_commands.add_sim_node_arguments(command("sim-node", "Serve the embedded simulator as a ROS 2 robot "
                                                            "(Nav2 and gripper actions, odometry, markers)."))

    schema = command("schema", "Write the JSON Schema of the tree format (for editors).")
    schema.add_argument("-o", "--output", metavar="FILE", help="write here instead of standard output")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``vla-bt`` command."""
    args = build_parser().parse_args(argv)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        registry = _registry(args.config)
        from vla_bt.ros import commands as ros_commands

        handler = {"run": cmd_run, "validate": cmd_validate, "render": cmd_render, "nodes": cmd_nodes,
                   "schema": cmd_schema, "serve-realtime": cmd_serve_realtime, "bench": cmd_bench,
                   "replay": cmd_replay, "ros": ros_commands.run_ros,
                   "sim-node": ros_commands.run_sim_node}[args.command]
        return handler(args, registry)
    except BrokenPipeError:  # the reader went away (`vla-bt replay FILE | head`): nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except TreeError as error:
        for diagnostic in error.diagnostics:
            err.print(escape(str(diagnostic)), style="red")
        return EXIT_BAD_INPUT
    except BadInputError as error:
        err.print(f"[red]error[/]: {escape(str(error))}")
        return EXIT_BAD_INPUT


def _registry(config: str | None) -> Registry:
    settings = load_registry_config(config_dir(config))
    return Registry.default(import_allowlist=settings.import_allowlist)


def _existing(path: str) -> Path:
    """``path`` as a file to read: a regular file (not a directory, device or pipe), else bad input saying so."""
    problem = file_problem(path)
    if problem:
        raise BadInputError(f"{path}: {problem}" if path else problem)
    return Path(path)


# -- commands --------------------------------------------------------------------

def _microphone(args: argparse.Namespace, registry: Registry, world: Any, session: Any) -> Any:
    """The live microphone of ``--microphone [DEVICE]``, listening (exit 2 when it cannot)."""
    from vla_bt.speech import MicrophoneUtterances, RecognizerError, command_recognizer

    if args.audio is not None or args.say is not None:
        raise BadInputError("--microphone: give either a microphone, or --say / --audio, not both")
    device: Any = args.microphone or None
    if isinstance(device, str) and device.isdigit():
        device = int(device)
    try:
        return MicrophoneUtterances(command_recognizer(world, registry, session), device=device).start()
    except (RecognizerError, RuntimeError) as error:
        raise BadInputError(f"--microphone: {error}") from None


def _refuse_idle_options(args: argparse.Namespace) -> None:
    """Options that would be ignored as given: said, rather than silently dropped."""
    if args.swap is not None and not args.watch:
        raise BadInputError("--swap: only with --watch (it says how a changed tree is swapped in)")
    if args.viewer_token is not None and args.viewer is None:
        raise BadInputError("--viewer-token: only with --viewer")
    if any(not text.strip() for text in args.say or ()):
        raise BadInputError("--say: an utterance cannot be empty (e.g. --say 'go to the kitchen')")


def cmd_run(args: argparse.Namespace, registry: Registry) -> int:
    from vla_bt.app import assemble, make_robot, needs_model
    from vla_bt.guards.audit import AuditLog
    from vla_bt.guards.estop import EStop
    from vla_bt.guards.validation import load_safety_policy
    from vla_bt.speech import ConsoleUtterances, ScriptedUtterances
    from vla_bt.viz.console import ConsoleView, shown

    _refuse_idle_options(args)
    loaded = TreeLoader(registry).load(_existing(args.tree))
    world = _world(args)
    session = _model_session(args, registry, world) if needs_model(loaded) else None
    if args.robot == "ros2":
        from vla_bt.ros.commands import require_ros

        require_ros()  # rclpy, nav2_msgs and control_msgs present, else exit 2 with how to install them
    estop = EStop(args.estop_file) if args.estop_file else EStop()
    try:
        robot = make_robot(args.robot, world, time_scale=args.time_scale, estop=estop, config=config_dir(args.config))
        audit = AuditLog(args.audit) if args.audit else AuditLog()
    except (ValueError, OSError) as error:
        raise BadInputError(str(error)) from None
    if args.microphone is not None:
        utterances = _microphone(args, registry, world, session)
    elif args.audio is not None:
        from vla_bt.speech import AudioError, RecognizerError, audio_utterances

        try:
            utterances = audio_utterances(args.audio, llm=args.llm, session=session, world=world, registry=registry)
        except (AudioError, RecognizerError) as error:
            raise BadInputError(str(error)) from None
    elif args.say is not None:
        utterances = ScriptedUtterances(args.say)
    else:
        utterances = ConsoleUtterances()
    run = assemble(loaded, registry, world=world, utterances=utterances, robot=robot, session=session,
                   audit=audit, rate_hz=args.rate, max_seconds=args.max_seconds,
                   estop=estop,
                   policy=load_safety_policy(config_dir(args.config)), perception=args.perception)
    if hasattr(utterances, "wake"):
        utterances.wake = run.runner.wake
    if args.speak:
        from vla_bt.speech import SpeechOutputError, speech_output

        try:
            speaker = speech_output()
        except SpeechOutputError as error:
            raise BadInputError(str(error)) from None
        loaded.tree.add_post_tick_handler(speaker.post_tick)
        if args.microphone is not None:
            utterances.muted = lambda: speaker.speaker.speaking  # the robot does not hear itself
    if args.microphone is not None:
        run.runner.shutdown_hooks.append(utterances.close)
    if args.session:
        from vla_bt.session_file import SessionFile

        session_file = SessionFile(args.session)
        session_file.load()
        loaded.tree.add_post_tick_handler(session_file.post_tick)
        run.runner.shutdown_hooks.append(session_file.save)
    recorder, viewer = _attach_tools(args, run, registry)
    out = Console(highlight=False, soft_wrap=True)
    with run.runner.signals():
        if args.json:
            result = run.execute()
        else:
            with ConsoleView(loaded.root, out) as view:
                loaded.tree.add_post_tick_handler(view.post_tick)
                result = run.execute()
    if recorder is not None:
        recorder.finish(result)
    if viewer is not None:
        viewer.finish(result)
        viewer.close()
    if args.json:
        print(json.dumps(result.to_json()))
    else:
        style = {"SUCCESS": "green", "FAILURE": "red"}.get(result.status, "yellow")
        for command in result.commands:
            out.print(f"[dim]command[/] {escape(command['skill'])} {escape(json.dumps(command['args']))}")
        out.print(f"[bold {style}]{result.status}[/] {shown(result.reason)} "
                  f"[dim]({result.ticks} ticks, {result.seconds:.2f} s)[/]")
    return result.exit_code


def _attach_tools(args: argparse.Namespace, run: Any, registry: Registry) -> tuple[Any, Any]:
    """``--viewer``, ``--record`` and ``--watch``: returns (recorder, viewer), either may be ``None``."""
    from vla_bt.viz.web import ViewerError

    recorder = viewer = None
    try:
        if args.viewer:
            from vla_bt.viz.web import attach_viewer, parse_address

            viewer = attach_viewer(run, *parse_address(args.viewer), token=args.viewer_token)
            Console(stderr=True, highlight=False, soft_wrap=True).print(f"viewer: {viewer.url}")
        if args.record:
            from vla_bt.viz.record import attach_recorder

            recorder = attach_recorder(run, args.record)
    except ViewerError as error:
        raise BadInputError(str(error)) from None
    except OSError as error:
        if viewer is not None:
            viewer.close()
        raise BadInputError(f"--record {args.record}: cannot write: {error.strerror or error}") from None
    if args.watch:
        from vla_bt.tree.reload import attach_watcher

        attach_watcher(run, TreeLoader(registry), args.tree, args.swap or "stop")
    return recorder, viewer


def cmd_replay(args: argparse.Namespace, registry: Registry) -> int:
    from vla_bt.viz.replay import replay_command

    if args.viewer_token is not None and args.viewer is None:
        raise BadInputError("--viewer-token: only with --viewer")
    return replay_command(args)


def _world(args: argparse.Namespace) -> Any:
    from vla_bt.robot.world import World, load_world

    if args.world is not None:
        return load_world(_existing(args.world))
    directory = config_dir(args.config)
    default = directory / "world.yaml" if directory else None
    if default is None or not default.exists():
        logging.getLogger(__name__).warning(
            "no world file (%s): the robot knows no places, objects or limits; give --world WORLD.yaml",
            default or "no config directory")
        return World()
    return load_world(default)


def _model_session(args: argparse.Namespace, registry: Registry, world: Any) -> Any:
    """The model session for ``--llm``."""
    from vla_bt.llm.backend import BackendError
    from vla_bt.llm.factory import load_llm_config, make_backend
    from vla_bt.llm.session import ModelSession
    from vla_bt.llm.tools import tool_specs

    tools = tool_specs(registry)
    try:
        backend = make_backend(args.llm, tools, load_llm_config(config_dir(args.config)), world=world,
                               registry=registry)
    except BackendError as error:
        raise BadInputError(str(error)) from None
    return ModelSession(backend, tools)


def cmd_validate(args: argparse.Namespace, registry: Registry) -> int:
    out, err = Console(highlight=False, soft_wrap=True), Console(stderr=True, highlight=False, soft_wrap=True)
    loader = TreeLoader(registry)
    invalid = 0
    for path in args.trees:
        diagnostics = loader.check(path)
        for diagnostic in diagnostics:
            err.print(escape(str(diagnostic)), style="red")
        if diagnostics:
            invalid += 1
        else:
            out.print(f"[green]valid[/]: {escape(path)}")
    if invalid:
        err.print(f"{invalid} of {len(args.trees)} tree file(s) invalid")
    return EXIT_FAILURE if invalid else EXIT_OK


def cmd_render(args: argparse.Namespace, registry: Registry) -> int:
    from vla_bt.viz.render import RenderError, render

    loaded = TreeLoader(registry).load(_existing(args.tree))
    try:
        written = render(loaded.root, args.output, with_blackboard=args.with_blackboard)
    except RenderError as error:
        raise BadInputError(str(error)) from None
    Console(highlight=False, soft_wrap=True).print(f"wrote {written}")
    return EXIT_OK


def node_info(spec: NodeSpec) -> dict[str, Any]:
    """A registered node type as plain data (``vla-bt nodes --json``)."""
    params = {}
    for name, p in spec.params.items():
        entry: dict[str, Any] = {"type": p.describe_type(), "schema": dict(p.schema), "required": p.required,
                                 "description": p.description, "blackboard_remap": p.runtime}
        if not p.required:
            entry["default"] = p.default if isinstance(p.default, (bool, int, float, str, type(None))) \
                else repr(p.default)
        params[name] = entry
    return {"name": spec.name, "kind": spec.kind, "description": spec.description, "origin": spec.origin,
            "params": params, "reads": list(spec.reads), "writes": list(spec.writes)}


def cmd_nodes(args: argparse.Namespace, registry: Registry) -> int:
    infos = [node_info(s) for s in registry.specs()]
    if args.markdown:
        from vla_bt.tree.reference import node_reference

        sys.stdout.write(node_reference(registry))
        return EXIT_OK
    if args.json:
        print(json.dumps({"nodes": infos, "plugin_errors": registry.plugin_errors}, indent=2))
        return EXIT_OK
    out = Console(highlight=False, soft_wrap=True)
    if not out.is_terminal:  # one line per type, nothing cut, for grep and pipes
        for info in infos:
            params = ", ".join(f"{n}{'' if p['required'] else '?'}: {p['type']}" for n, p in info["params"].items())
            sys.stdout.write(f"{info['name']}\t{info['kind']}\t{info['origin']}\t{params}\t{info['description']}\n")
        for name, problem in registry.plugin_errors.items():
            sys.stdout.write(f"plugin node {name} unavailable: {problem}\n")
        return EXIT_OK
    table = Table(title="Registered node types", show_lines=False)
    for column in ("type", "kind", "parameters", "origin", "description"):
        table.add_column(column)
    for info in infos:
        params = ", ".join(f"{n}{'' if p['required'] else '?'}: {p['type']}" for n, p in info["params"].items())
        table.add_row(info["name"], info["kind"], escape(params), info["origin"], escape(info["description"]))
    out.print(table)
    for name, problem in registry.plugin_errors.items():
        out.print(f"[red]plugin node {name} unavailable[/]: {escape(problem)}")
    return EXIT_OK


def _pace(text: str) -> Any:
    from vla_bt.llm.pacing import Pacing

    if text == "none":
        return Pacing()
    if text == "gpt4o":
        return Pacing.gpt4o()
    try:
        first, rate = (float(v) for v in text.split(","))
    except ValueError:
        raise BadInputError(f"--pace: expected gpt4o, none or FIRST_S,TOKENS_PER_S, got {text!r}") from None
    if not 0 <= first <= MAX_FIRST_TOKEN_S:
        raise BadInputError(f"--pace: the time to the first token must be 0 to {MAX_FIRST_TOKEN_S:g} s, got {first:g}")
    if not (rate == 0 or MIN_TOKEN_RATE <= rate <= MAX_TOKEN_RATE):
        raise BadInputError(f"--pace: the token rate must be 0 (no pacing) or {MIN_TOKEN_RATE:g} to "
                            f"{MAX_TOKEN_RATE:g} tokens/s, got {rate:g}")
    return Pacing(first, rate)


MAX_FIRST_TOKEN_S, MIN_TOKEN_RATE, MAX_TOKEN_RATE = 60.0, 0.1, 100_000.0
"""Paces a client could wait for: beyond them a response would never seem to come."""


def cmd_serve_realtime(args: argparse.Namespace, registry: Registry) -> int:
    from vla_bt.llm.endpoint import serve_forever
    from vla_bt.llm.factory import load_llm_config, make_backend
    from vla_bt.llm.tools import tool_specs
    from vla_bt.net import is_loopback

    if args.llm not in ("local",) and not args.llm.startswith("scripted:"):
        raise BadInputError("serve-realtime answers with an embedded backend: --llm local or scripted:FILE")
    if not 0 <= args.port <= 65535:
        raise BadInputError(f"--port: {args.port} is not a TCP port")
    key = None
    if args.api_key_env:
        key = os.environ.get(args.api_key_env)
        if key is None:
            raise BadInputError(f"--api-key-env: the environment variable {args.api_key_env} is not set")
        if not key.strip():
            raise BadInputError(f"--api-key-env: the environment variable {args.api_key_env} is empty")
    elif not is_loopback(args.host):
        raise BadInputError(f"--host {args.host or '(every interface)'}: serving beyond this machine needs "
                            "--api-key-env VAR (a key clients must present); anyone on the network could use it")
    pacing = _pace(args.pace)
    backend = make_backend(args.llm, tool_specs(registry), load_llm_config(config_dir(args.config)),
                           world=_world(args), registry=registry)
    try:
        serve_forever(args.host, args.port, backend, pacing=pacing, api_key=key)
    except OSError as error:
        raise BadInputError(f"cannot serve on {args.host}:{args.port}: {error.strerror or error}") from None
    return EXIT_INTERRUPTED


def cmd_bench(args: argparse.Namespace, registry: Registry) -> int:
    from vla_bt.bench import GOALS, run_all

    known = set(GOALS)
    unknown = [f for f in args.only or [] if f not in known]
    if unknown:
        raise BadInputError(f"--only: unknown figure {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    err = Console(stderr=True, highlight=False)
    figures = run_all(quick=args.quick, only=args.only,
                      progress=lambda key: None if args.json else err.print(f"[dim]measuring {key} ...[/]"))
    if args.json:
        report: dict[str, Any] = {}
        for figure in figures:
            report[figure.key] = None if figure.value is None else round(figure.value, 4)
            report[f"{figure.key}_detail"] = {**figure.detail, "goal": " ".join(map(str, GOALS[figure.key])),
                                              "meets_goal": figure.meets_goal, "note": figure.note}
        print(json.dumps(report))
        return EXIT_OK
    table = Table(title="vla-bt bench" + (" (quick)" if args.quick else ""))
    for column in ("figure", "value", "goal", "met", "how"):
        table.add_column(column)
    for figure in figures:
        relation, goal = GOALS[figure.key]
        value = "n/a" if figure.value is None else f"{figure.value:.3g} {figure.unit}"
        met = {True: "[green]yes[/]", False: "[red]no[/]", None: "-"}[figure.meets_goal]
        how = ", ".join(f"{k}={v}" for k, v in figure.detail.items())
        table.add_row(figure.key, value, f"{relation} {goal:g}", met, escape(how))
    Console().print(table)
    return EXIT_OK


def cmd_schema(args: argparse.Namespace, registry: Registry) -> int:
    from vla_bt.tree.schema import tree_schema

    text = json.dumps(tree_schema(registry), indent=2) + "\n"
    if args.output:
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise BadInputError(f"{args.output}: cannot write: {exc.strerror or exc}") from None
    else:
        sys.stdout.write(text)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
