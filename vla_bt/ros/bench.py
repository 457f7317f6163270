"""``ros_round_trip_ms`` for ``vla-bt bench``: a robot command's round trip over ROS 2, between two processes.

The simulated robot runs as ``vla-bt sim-node`` in a child process, in a DDS
domain of its own (a random ``ROS_DOMAIN_ID`` nobody on this machine uses,
discovery kept on this machine). This process drives it through a
``Ros2Robot``, as ``--robot ros2`` does. After a warm-up, each trial:

1. ``navigate()`` sends a ``NavigateToPose`` goal (after its ``SpeedLimit``)
   to the place farthest from the robot; the time until the goal response is
   back in the robot's node (goal accepted) is the figure, the time until
   the server's first feedback is back a detail;
2. ``safe_stop()`` cancels the goal and publishes a zero ``Twist`` on
   ``cmd_vel``; the time until the sim node's ``stop`` event (published on
   its ``~/events`` topic when the zero twist arrived) is back here is the
   stop acknowledgement;
3. the cancelled goal's result is awaited, so that trials do not overlap.

The figure is the median over the trials, with p95 in ``detail``. Without
rclpy or the interface packages the figure is ``None`` with a note saying
what is missing; nothing here raises.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vla_bt.ros.node import NodeHost

if TYPE_CHECKING:
    from vla_bt.bench import Figure
    from vla_bt.robot.protocol import Pose
    from vla_bt.robot.ros2 import Ros2Robot
    from vla_bt.robot.world import World
    from vla_bt.ros.config import Ros2Config

KEY = "ros_round_trip_ms"
QUICK_TRIALS, FULL_TRIALS = 40, 200
BUDGET_S_PER_TRIAL = 0.5
"""The trials stop early (and say so) after this many seconds per planned trial, on a machine far too busy."""
WARMUP_TRIALS = 5
DOMAINS = range(101, 216)
"""Domain ids to pick from (the ROS tests use 1 to 100; Fast DDS ports allow up to 232)."""
DISCOVERY_PORT_BASE, DISCOVERY_PORT_STEP = 7410, 250
"""The RTPS unicast discovery port of a domain's first participant: base + step × domain id."""
START_TIMEOUT_S = 15.0
TRIAL_TIMEOUT_S = 2.0
POLL_S = 0.0002
INTERFACES = ("nav2_msgs/action/NavigateToPose", "control_msgs/action/GripperCommand")
MEASURED = ("Ros2Robot.navigate() → NavigateToPose goal accepted (goal response back in the robot's node); "
            "details: → first feedback back; safe_stop() → the sim node's stop event for the zero cmd_vel "
            "Twist back")


def missing_ros() -> str:
    """What keeps the round trip from being measured ("" when rclpy and every interface package import).

    Returns:
        a sentence naming what is missing, or ""
    """
    try:
        import rclpy.action  # noqa: F401
    except ImportError as error:
        return (f"rclpy is not available ({error}): pip install 'vla-bt[ros]', or source a ROS 2 installation "
                "(source /opt/ros/<distro>/setup.bash)")
    from vla_bt.ros.messages import InterfaceError, interface_type

    needed = [("geometry_msgs/msg/Twist", "msg"), ("std_msgs/msg/String", "msg"),
              ("nav_msgs/msg/Odometry", "msg"), ("visualization_msgs/msg/MarkerArray", "msg"),
              *((name, "action") for name in INTERFACES)]
    for name, kind in needed:
        try:
            interface_type(name, kind)
        except InterfaceError as error:
            return f"{error}; the ROS 2 round trip needs {name}"
    return ""


def ros_round_trip(quick: bool, world: World | None) -> Figure:
    """Measure a robot command's ROS 2 round trip against the sim node in another process.

    Args:
        quick: fewer trials (``QUICK_TRIALS`` instead of ``FULL_TRIALS``)
        world: the world the sim node serves (its file is passed on); ``None`` for the configured one

    Returns:
        ``ros_round_trip_ms``: the median milliseconds from ``navigate()`` to the goal being accepted,
        with p95, feedback and stop acknowledgement times in ``detail``; ``None`` with a note when
        ROS 2 is missing or the measurement could not be made
    """
    from vla_bt.bench import Figure

    missing = missing_ros()
    if missing:
        return Figure(KEY, None, "ms", {"trials": 0}, note=f"not measured: {missing}")
    try:
        return _measure(QUICK_TRIALS if quick else FULL_TRIALS, world)
    except Exception as error:  # noqa: BLE001 - a benchmark reports what went wrong instead of stopping
        return Figure(KEY, None, "ms", {"trials": 0}, note=f"not measured: {type(error).__name__}: {error}")


# -- the two processes -------------------------------------------------------------------


def domain_in_use(domain: int) -> bool:
    """Whether a DDS participant of this machine is in ``domain`` (the first one's unicast discovery port is bound)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind(("0.0.0.0", DISCOVERY_PORT_BASE + DISCOVERY_PORT_STEP * domain))
        except OSError:
            return True
    return False


def pick_domain() -> int:
    """A random ROS domain id for this measurement: not this process's own, and with nobody in it if possible."""
    taken = os.environ.get("ROS_DOMAIN_ID", "")
    candidates = [d for d in DOMAINS if str(d) != taken]
    random.shuffle(candidates)
    return next((d for d in candidates if not domain_in_use(d)), candidates[0])


@contextlib.contextmanager
def ros_environment(domain: int, log_dir: Path) -> Iterator[dict[str, str]]:
    """Set this process's ROS domain, local discovery and log folder while inside; restore them after.

    Args:
        domain: the ``ROS_DOMAIN_ID``
        log_dir: the ``ROS_LOG_DIR``

    Returns:
        (as the context value) the environment for the child process
    """
    wanted = {"ROS_DOMAIN_ID": str(domain), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
              "ROS_LOG_DIR": str(log_dir)}
    saved = {key: os.environ.get(key) for key in wanted}
    os.environ.update(wanted)
    package_root = str(Path(__file__).resolve().parents[2])
    child = {**os.environ, "PYTHONUNBUFFERED": "1",
             "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
    try:
        yield child
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class SimNodeProcess:
    """``python -m vla_bt.ros sim-node`` in a child process, its output in files; started when constructed.

    ``vla-bt bench`` measures against it; the ROS tests run their sim node through it too.

    Args:
        folder: where its output goes (``sim_node.out``, ``sim_node.err``)
        env: its environment
        *options: the command's options (``--ros-config FILE``, ``--world FILE``, ``--events FILE`` …)
        cwd: its working directory (where it looks for ``config/``); ``None`` for this process's
    """

    READY = "sim-node ready"
    """The start of the line it prints once its node serves."""

    def __init__(self, folder: Path, env: dict[str, str], *options: str, cwd: Path | None = None):
        self.out, self.err = folder / "sim_node.out", folder / "sim_node.err"
        args = [sys.executable, "-m", "vla_bt.ros", "sim-node", *options]
        with self.out.open("w") as out, self.err.open("w") as err:
            self.process = subprocess.Popen(args, cwd=cwd, env=env, stdout=out, stderr=err,
                                            stdin=subprocess.DEVNULL)

    def output(self, limit: int = 600) -> str:
        """The end of what it printed so far.

        Args:
            limit: how many characters of each stream at the most

        Returns:
            ``stdout: …; stderr: …`` (only the streams it printed to), or ``(no output)``
        """
        parts = [f"{name}: {text}" for name, path in (("stdout", self.out), ("stderr", self.err))
                 if (text := path.read_text(errors="replace")[-limit:].strip())]
        return "; ".join(parts) or "(no output)"

    def wait_ready(self, timeout: float) -> None:
        """Wait for its ``sim-node ready`` line.

        Args:
            timeout: how many seconds at the most

        Raises:
            RuntimeError: it ended, or was not ready within ``timeout``; with the end of its output
        """
        deadline = time.monotonic() + timeout
        while True:
            code = self.process.poll()  # before reading: once it has ended, the files hold all it printed
            if self.READY in self.out.read_text(errors="replace"):
                return
            if code is not None:
                raise RuntimeError(f"the sim node did not start (exit code {code}): {self.output()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the sim node did not start within {timeout:g} s (still running): "
                                   f"{self.output()}")
            time.sleep(0.02)

    def stop(self) -> None:
        """Interrupt it as Ctrl-C does; kill it if it does not end within 5 s."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


class StampingHost(NodeHost):
    """A node host that notes when each goal was accepted (``track`` runs as the goal response arrives)."""

    def __init__(self, name: str, namespace: str = ""):
        super().__init__(name, namespace)
        self.accepted: list[float] = []

    def track(self, goal_handle: Any) -> None:
        self.accepted.append(time.perf_counter())
        super().track(goal_handle)


@dataclass
class StopAcks:
    """Arrival times of the sim node's ``stop`` events (published on its ``~/events`` topic)."""

    times: list[float] = field(default_factory=list)
    subscription: Any = None

    def listen(self, node: Any, config: Ros2Config) -> None:
        """Subscribe to the sim node's events topic on ``node``."""
        from std_msgs.msg import String

        from vla_bt.ros.messages import qos

        namespace = config.namespace.strip("/")
        topic = "/" + "/".join(filter(None, [namespace, config.sim_node_name, "events"]))
        self.subscription = node.create_subscription(String, topic, self._on_event, qos(depth=50))

    def _on_event(self, message: Any) -> None:
        now = time.perf_counter()
        try:
            event = json.loads(message.data)
        except ValueError:
            return
        if isinstance(event, dict) and event.get("event") == "stop":
            self.times.append(now)

    def wait_after(self, count: int, deadline: float) -> float | None:
        """The arrival time of stop event number ``count`` (0-based), waiting until ``deadline``."""
        while len(self.times) <= count:
            if time.perf_counter() > deadline:
                return None
            time.sleep(POLL_S)
        return self.times[count]


# -- trials -------------------------------------------------------------------------------


@dataclass
class Trial:
    """Milliseconds of one trial (``None``: that answer did not come back)."""

    accepted: float | None
    feedback: float | None
    stop_ack: float | None

    @property
    def complete(self) -> bool:
        return None not in (self.accepted, self.feedback, self.stop_ack)


def _target(robot: Ros2Robot, places: list[Pose]) -> Pose:
    """The place farthest from the robot (so that a goal never ends by arriving), or 2 m ahead of it."""
    x, y, theta = robot.state().pose
    if not places:
        return (x + 2.0 * math.cos(theta), y + 2.0 * math.sin(theta), theta)
    return max(places, key=lambda p: math.dist(p[:2], (x, y)))


def run_trial(robot: Ros2Robot, host: StampingHost, acks: StopAcks, target: Pose) -> Trial:
    """Send one goal, wait for its feedback, stop, wait for the stop's acknowledgement and the goal's result.

    Args:
        robot: the ROS robot (set up)
        host: its node host
        acks: the sim node's stop events
        target: where the goal goes

    Returns:
        the times of the trial
    """
    from vla_bt.robot.protocol import ActionState

    accepted_before, stops_before = len(host.accepted), len(acks.times)
    start = time.perf_counter()
    deadline = start + TRIAL_TIMEOUT_S
    handle = robot.navigate(target)
    feedback_at = None
    while handle.state is ActionState.RUNNING and time.perf_counter() < deadline:
        if feedback_at is None and handle.feedback is not None:
            feedback_at = time.perf_counter()
        if feedback_at is not None and len(host.accepted) > accepted_before:
            break  # feedback may overtake the goal response: both are waited for
        time.sleep(POLL_S)
    accepted_at = host.accepted[accepted_before] if len(host.accepted) > accepted_before else None
    stop_at = time.perf_counter()
    robot.safe_stop("round trip measured")
    acked_at = acks.wait_after(stops_before, stop_at + TRIAL_TIMEOUT_S)
    end = time.perf_counter() + TRIAL_TIMEOUT_S
    while host.goals_in_flight() and time.perf_counter() < end:
        time.sleep(0.001)

    def ms(at: float | None, since: float) -> float | None:
        return None if at is None else (at - since) * 1000
    return Trial(ms(accepted_at, start), ms(feedback_at, start), ms(acked_at, stop_at))


def warm_up(robot: Ros2Robot, host: StampingHost, acks: StopAcks, places: list[Pose], timeout: float) -> None:
    """Run trials until one came back complete (every endpoint matched), then ``WARMUP_TRIALS`` more.

    Raises:
        RuntimeError: no complete trial within ``timeout`` seconds
    """
    deadline = time.monotonic() + timeout
    while not run_trial(robot, host, acks, _target(robot, places)).complete:
        if time.monotonic() > deadline:
            raise RuntimeError("no complete round trip with the sim node (goal, feedback and stop event)")
    for _ in range(WARMUP_TRIALS):
        run_trial(robot, host, acks, _target(robot, places))


# -- the figure ---------------------------------------------------------------------------


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile (``share`` 0.95 = p95) of a non-empty list."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))]


def _ros2_config(world: World | None, folder: Path) -> Path:
    """The ``ros2.yaml`` beside the world file, else the configured one, else one of defaults in ``folder``."""
    from vla_bt.config import config_dir

    candidates = [Path(world.path).parent] if world is not None and world.path else []
    candidates.append(config_dir(None) or folder)
    for directory in candidates:
        if (directory / "ros2.yaml").is_file():
            return directory / "ros2.yaml"
    defaults = folder / "ros2.yaml"
    defaults.write_text("# every setting at its default\n")
    return defaults


def _world_places(world: World | None) -> tuple[str, list[Pose]]:
    """The world file to pass to the sim node, and its places (the goals' targets)."""
    if world is None or not world.path:
        return "", []
    return world.path, list(world.places.values())


def _summary(trials: list[Trial]) -> dict[str, Any]:
    """Median and p95 of the feedback and stop times, and how many answers did not come back (in time)."""
    detail: dict[str, Any] = {}
    for name in ("feedback", "stop_ack"):
        values = [v for t in trials if (v := getattr(t, name)) is not None]
        if values:
            detail[f"{name}_median_ms"] = round(statistics.median(values), 3)
            detail[f"{name}_p95_ms"] = round(percentile(values, 0.95), 3)
    detail["unanswered"] = sum((t.accepted is None) + (t.feedback is None) + (t.stop_ack is None) for t in trials)
    return detail


def _run_trials(trials: int, world: World | None, domain: int) -> tuple[list[Trial], float]:
    """Start the sim node in ``domain``, set up the robot, warm up and run the trials; stop everything.

    Args:
        trials: how many trials to time
        world: the world (its file goes to the sim node; its places are the goals)
        domain: the ROS domain id of both processes

    Returns:
        the trials, and the seconds it took to get ready for them
    """
    from vla_bt.robot.ros2 import Ros2Robot
    from vla_bt.ros.config import load_ros2_config

    started = time.monotonic()
    world_file, places = _world_places(world)
    with contextlib.ExitStack() as stack:  # on the way out: the robot, its node, the sim node, the folder
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="vla_bt_ros_bench_",
                                                                      ignore_cleanup_errors=True)))
        env = stack.enter_context(ros_environment(domain, folder))
        ros_config = _ros2_config(world, folder)
        config = load_ros2_config(ros_config)
        sim = SimNodeProcess(folder, env, "--ros-config", str(ros_config),
                             *(["--world", world_file] if world_file else []))
        stack.callback(sim.stop)
        host = StampingHost("vla_bt_bench", config.namespace)
        stack.callback(host.stop)
        robot = Ros2Robot(config, host=host)
        stack.callback(robot.shutdown)
        sim.wait_ready(START_TIMEOUT_S)
        robot.setup(timeout=START_TIMEOUT_S)
        acks = StopAcks()
        acks.listen(robot.node, config)
        warm_up(robot, host, acks, places, START_TIMEOUT_S)
        ready_s = time.monotonic() - started
        stop_by = time.monotonic() + BUDGET_S_PER_TRIAL * trials
        results = []
        while len(results) < trials and time.monotonic() < stop_by:
            results.append(run_trial(robot, host, acks, _target(robot, places)))
        return results, ready_s


def _measure(trials: int, world: World | None) -> Figure:
    """Run the trials in a domain of their own and make the figure of them."""
    from rclpy.utilities import get_rmw_implementation_identifier

    from vla_bt.bench import Figure

    started, domain = time.monotonic(), pick_domain()
    results, ready_s = _run_trials(trials, world, domain)
    accepted = [t.accepted for t in results if t.accepted is not None]
    if not accepted:
        return Figure(KEY, None, "ms", {"trials": len(results)}, note="not measured: no goal was accepted")
    detail = {"p95_ms": round(percentile(accepted, 0.95), 3), "trials": len(results), **_summary(results),
              "measured": MEASURED,
              "transport": f"{get_rmw_implementation_identifier()}, 2 processes on this machine, "
                           f"ROS_DOMAIN_ID {domain}, discovery LOCALHOST",
              "world": _world_places(world)[0] or "(the sim node's default)", "setup_s": round(ready_s, 2),
              "seconds": round(time.monotonic() - started, 1)}
    note = "Ros2Robot → vla-bt sim-node in another process, real rclpy and DDS"
    if len(results) < trials:
        note += f"; stopped after {len(results)} of {trials} trials (time budget)"
    return Figure(KEY, statistics.median(accepted), "ms", detail, note=note)
