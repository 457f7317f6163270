"""The embedded simulator: the default robot backend, a point robot in a 2-D world.

``SimRobot`` implements the robot protocol (``vla_bt.robot.protocol.Robot``)
on a checked world file (DESIGN §7). Units are metres and radians (REP 103).

* The base is differential-drive-like: it turns in place towards the next
  waypoint at ``TURN_RATE``, drives straight at ``min(speed, max_speed)``,
  and finally turns in place to the requested heading.
* Paths stay inside the workspace polygon and never touch a no-go polygon
  (``vla_bt.robot.geometry.find_path``, which other components call to check
  a path before a command is sent).
* Time only moves in ``step()`` / ``advance()``, in fixed ``dt`` increments,
  so the same commands at the same simulated times give the same states.
* Exactly one action runs at a time: a new accepted command preempts the
  running one (its handle becomes CANCELLED). A refused command returns a
  FAILED handle at once and leaves the running action alone.

Example:
    >>> from vla_bt.robot.world import load_world
    >>> robot = SimRobot(load_world("config/world.yaml"))
    >>> handle = robot.navigate(robot.world.place("kitchen"))
    >>> robot.advance(20.0)
    >>> handle.state
    <ActionState.SUCCEEDED: 'succeeded'>
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from vla_bt.robot.geometry import EPS, find_path, format_xy, point_problem
from vla_bt.robot.protocol import ActionState, Perception, Pose, RobotState
from vla_bt.robot.world import Point, World, WorldObject

MAX_STEPS_PER_CALL = 50_000
"""The most steps one ``step()`` simulates (1000 s at ``dt`` 0.02): at a time scale the machine
cannot keep up with, the simulator falls behind the clock instead of holding the tree's tick (and
with it the stop, the deadline and the signals) for ever."""

# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def _metres(distance: float, limit: float) -> str:
    """A distance rounded for a message, with enough digits that it never reads as within ``limit``."""
    for digits in range(1, 5):
        text = f"{distance:.{digits}f}"
        if float(text) > limit:
            return text
    return f"{distance:g}"


def _wrap(angle: float) -> float:
    """An angle in (-π, π]."""
    wrapped = math.remainder(angle, math.tau)
    return math.pi if wrapped == -math.pi else wrapped


def _positive(value: Any) -> bool:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return False
    return math.isfinite(number) and number > 0


def _finite_pose(value: Any) -> Pose:
    try:
        pose = (float(value[0]), float(value[1]), float(value[2]))
    except (TypeError, ValueError, IndexError):
        raise ValueError(f"a pose is three numbers [x, y, theta], got {value!r}") from None
    if not all(math.isfinite(v) for v in pose):
        raise ValueError(f"a pose needs finite numbers, got {value!r}")
    return pose


# ---------------------------------------------------------------------------
# Actions
# ---------------------------------------------------------------------------


class SimAction:
    """An action of the simulated robot, advanced by its ticks (an ``ActionHandle``).

    Args:
        robot: the simulator that runs it
        skill: "navigate", "grasp", "place" or "hand_over"
        duration: simulated seconds it takes when nothing interrupts it
        message: what it is doing, while it runs

    Attributes:
        started_at: sim time of the command
        ended_at: sim time it ended (within a tick, so exact), None while running
    """

    def __init__(self, robot: SimRobot, skill: str, duration: float, message: str) -> None:
        self.skill = skill
        self._robot = robot
        self._state = ActionState.RUNNING
        self._message = message
        self._duration = duration
        self._elapsed = 0.0
        self.started_at = robot.sim_time
        self.ended_at: float | None = None

    @property
    def state(self) -> ActionState:
        return self._state

    @property
    def progress(self) -> float:
        if self._state is ActionState.SUCCEEDED:
            return 1.0
        return min(1.0, self._elapsed / self._duration) if self._duration > 0 else 0.0

    @property
    def message(self) -> str:
        return self._message

    def cancel(self) -> None:
        """Stop now; the robot stays where it is and the state becomes CANCELLED (idempotent)."""
        self._robot._cancel(self, "cancelled")

    def _end(self, state: ActionState, message: str, at: float) -> None:
        if self._state is ActionState.RUNNING:
            self._state, self._message, self.ended_at = state, message, at

    def _run(self, now: float, budget: float) -> None:
        """Spend up to ``budget`` simulated seconds starting at ``now``; end the action when it is done."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.skill} {self._state.value} {self.progress:.2f}: {self._message}>"


class Navigation(SimAction):
    """Turn towards each waypoint, drive to it, then turn to the goal's heading.

    Args:
        robot: the simulator that runs it
        goal: the final pose
        path: the planned points, from the robot's position to the goal's
        speed: m/s, already clamped to the robot's maximum
    """

    def __init__(self, robot: SimRobot, goal: Pose, path: list[Point], speed: float) -> None:
        self.goal, self.path, self.speed = goal, path, speed
        self._turn_rate = robot.TURN_RATE
        self._phases = self._plan_phases(robot.pose, goal, path)
        duration = sum(self._phase_time(kind, value, start) for kind, value, start in self._phases)
        super().__init__(robot, "navigate", duration, f"navigating to {format_xy(goal)}")

    @staticmethod
    def _plan_phases(pose: Pose, goal: Pose, path: list[Point]) -> list[tuple[str, Any, Any]]:
        """("turn", heading, from_heading) and ("drive", point, from_point) phases, in order."""
        phases: list[tuple[str, Any, Any]] = []
        heading, here = pose[2], path[0]
        for point in path[1:]:
            if math.dist(here, point) <= EPS:
                continue
            direction = math.atan2(point[1] - here[1], point[0] - here[0])
            if abs(_wrap(direction - heading)) > EPS:
                phases.append(("turn", direction, heading))
            phases.append(("drive", point, here))
            heading, here = direction, point
        # Always end with the goal heading so the final pose is exactly the one asked for.
        phases.append(("turn", goal[2], heading))
        return phases

    def _phase_time(self, kind: str, value: Any, start: Any) -> float:
        if kind == "turn":
            return abs(_wrap(value - start)) / self._turn_rate
        return math.dist(start, value) / self.speed

    def _run(self, now: float, budget: float) -> None:
        robot = self._robot
        spent = 0.0
        while self._phases:
            kind, value, _ = self._phases[0]
            turning = kind == "turn"
            x, y, theta = robot._pose
            left = abs(_wrap(value - theta)) if turning else math.dist((x, y), value)
            # Phases with nothing left (the final heading already right) end in this tick, not the next.
            if left > EPS:
                if budget - spent <= EPS:
                    break
                if robot._battery <= 0.0:
                    self._end(ActionState.FAILED, "battery empty", now + spent)
                    return
            used, finished = self._turn(value, budget - spent) if turning else self._drive(value, budget - spent)
            spent += used
            self._elapsed += used
            if finished:
                self._phases.pop(0)
        if not self._phases:
            self._end(ActionState.SUCCEEDED, f"reached {format_xy(self.goal)}", now + spent)

    def _turn(self, heading: float, budget: float) -> tuple[float, bool]:
        x, y, theta = self._robot._pose
        diff = _wrap(heading - theta)
        step = min(abs(diff), self._turn_rate * budget)
        if abs(diff) - step <= EPS:
            self._robot._pose = (x, y, heading)
            return abs(diff) / self._turn_rate, True
        self._robot._pose = (x, y, _wrap(theta + math.copysign(step, diff)))
        return budget, False

    def _drive(self, point: Point, budget: float) -> tuple[float, bool]:
        robot = self._robot
        x, y, theta = robot._pose
        remaining = math.dist((x, y), point)
        step = min(remaining, self.speed * budget)
        # An empty battery stops the robot exactly where the charge ran out.
        affordable = robot._battery / robot.DRAIN_PER_METRE if robot.DRAIN_PER_METRE > 0 else math.inf
        if affordable <= step:
            step, robot._battery = affordable, 0.0  # exactly empty, so no rounding crumbs keep it driving
        else:
            robot._battery -= step * robot.DRAIN_PER_METRE
        if remaining - step <= EPS:
            robot._pose = (point[0], point[1], theta)
            return remaining / self.speed, True
        t = step / remaining
        robot._pose = (x + (point[0] - x) * t, y + (point[1] - y) * t, theta)
        return step / self.speed, False


class Manipulation(SimAction):
    """A gripper action taking a fixed time; ``finish`` checks and applies its effect at the end.

    Args:
        robot: the simulator that runs it
        skill: "grasp", "place" or "hand_over"
        message: what it is doing, while it runs
        finish: returns (succeeded, message) and changes the world when it succeeds
    """

    def __init__(self, robot: SimRobot, skill: str, message: str, finish: Callable[[], tuple[bool, str]]) -> None:
        super().__init__(robot, skill, robot.MANIPULATION_TIME, message)
        self._finish = finish

    def _run(self, now: float, budget: float) -> None:
        used = min(budget, self._duration - self._elapsed)
        self._elapsed += used
        if self._duration - self._elapsed <= EPS:
            ok, message = self._finish()
            self._end(ActionState.SUCCEEDED if ok else ActionState.FAILED, message, now + used)


# ---------------------------------------------------------------------------
# The simulator
# ---------------------------------------------------------------------------


class SimRobot:
    """The embedded simulated robot, the default backend (implements ``Robot``).

    Args:
        world: the world it lives in (places, objects, humans, its own spec, workspace, no-go zones)
        time_scale: simulated seconds per second of ``clock`` (``--time-scale``)
        seed: seeds ``rng``, the only source of randomness (no noise is modelled by default)
        clock: the wall clock ``step()`` follows; tests pass a fake one
        dt: the fixed simulation step in simulated seconds

    Attributes:
        world: the world as loaded (never changed; current poses live in the simulator)
        given: object id → id of the person it was handed to
        stops: (sim time, reason) of every safe stop
        rng: ``random.Random(seed)`` for noise models
    """

    REACH = 0.9
    """Gripper reach (m) from the robot's position, in xy."""
    HAND_OVER_REACH = 1.2
    """Greatest distance (m) to a person for a hand-over."""
    TURN_RATE = 1.5
    """Turning rate in place (rad/s)."""
    MANIPULATION_TIME = 1.0
    """Simulated seconds a grasp, place or hand-over takes."""
    DRAIN_PER_METRE = 0.01
    """Battery used per metre driven."""
    DRAIN_PER_SECOND = 0.0001
    """Battery used per simulated second, moving or not."""

    def __init__(self, world: World, time_scale: float = 1.0, seed: int = 0,
                 clock: Callable[[], float] = time.monotonic, dt: float = 0.02) -> None:
        if not time_scale > 0 or not dt > 0:
            raise ValueError(f"time_scale and dt must be positive, got time_scale={time_scale!r}, dt={dt!r}")
        self.world = world
        self.time_scale = float(time_scale)
        self.dt = float(dt)
        self.seed = seed
        self.rng = random.Random(seed)
        self._clock = clock
        self._lock = threading.RLock()
        self._started: float | None = None
        self._ticks = 0
        self._target = 0.0
        self._pose: Pose = world.robot.pose
        self._battery = world.robot.battery
        self._holding: str | None = None
        self._stopped = False
        self._objects: dict[str, WorldObject] = {o.id: o for o in world.objects}
        self._humans: dict[str, Pose] = {h.id: h.pose for h in world.humans}
        self._active: SimAction | None = None
        self.given: dict[str, str] = {}
        self.stops: list[tuple[float, str]] = []
        self.on_perception: Callable[[], None] | None = None  # called when people move (hazards wake the tree)

    # -- time ---------------------------------------------------------------

    def setup(self, timeout: float = 0.0) -> None:
        """Start following the clock (from the current sim time, so a second setup does not jump).

        Args:
            timeout: unused; the simulator is ready at once
        """
        with self._lock:
            self._started = self._clock() - self._target / self.time_scale

    def shutdown(self) -> None:
        """Cancel whatever runs and stop following the clock."""
        with self._lock:
            self._cancel(self._active, "robot shut down")
            self._started = None

    @property
    def sim_time(self) -> float:
        """Simulated seconds since the start (a whole number of ``dt``)."""
        return self._ticks * self.dt

    def step(self) -> None:
        """Advance simulated time to ``(clock() - start) * time_scale`` in ``dt`` steps (called before each tick)."""
        with self._lock:
            if self._started is None:
                self.setup()
            assert self._started is not None
            self._target = max(self._target, (self._clock() - self._started) * self.time_scale)
            self._run_to_target(limit=MAX_STEPS_PER_CALL)

    def advance(self, sim_seconds: float) -> None:
        """Advance simulated time by ``sim_seconds`` regardless of the clock (exact stepping).

        Args:
            sim_seconds: how far; a remainder below ``dt`` is carried to the next call
        """
        if not sim_seconds >= 0:
            raise ValueError(f"cannot advance by {sim_seconds!r} s")
        with self._lock:
            self._target = max(self._target, self.sim_time) + sim_seconds
            self._run_to_target()

    def _run_to_target(self, limit: int | None = None) -> None:
        steps = 0
        while (self._ticks + 1) * self.dt <= self._target + EPS:
            if limit is not None and steps >= limit:
                return  # behind the clock: the rest comes in the next calls, and the tree keeps ticking
            self._tick()
            steps += 1

    def _tick(self) -> None:
        action = self._active
        if action is not None:
            action._run(self.sim_time, self.dt)
            if action.state.done:
                self._active = None
        self._battery = max(0.0, self._battery - self.DRAIN_PER_SECOND * self.dt)
        self._ticks += 1

    # -- commands -----------------------------------------------------------

    def navigate(self, pose: Pose, speed: float | None = None) -> SimAction:
        """Drive to ``pose`` along a planned path at ``min(speed, max_speed)`` m/s.

        Args:
            pose: x, y, theta (metres, radians)
            speed: m/s, or None for the robot's maximum

        Returns:
            the running action, or a FAILED one when the target is refused (no-go, workspace, battery)
        """
        with self._lock:
            self._stopped = False
            try:
                goal = _finite_pose(pose)
            except ValueError as error:
                return self._refuse("navigate", str(error))
            if speed is not None and not _positive(speed):
                return self._refuse("navigate", f"speed must be a positive number of m/s, got {speed!r}")
            if self._battery <= 0.0:
                return self._refuse("navigate", "battery empty")
            path, reason = find_path(self.world, self._pose, goal)
            if path is None:
                return self._refuse("navigate", reason)
            limit = self.world.robot.max_speed
            return self._begin(Navigation(self, goal, path, min(float(speed or limit), limit)))

    def grasp(self, object_id: str) -> SimAction:
        """Pick up an object within reach; it then moves with the robot.

        Args:
            object_id: the object's id in the world

        Returns:
            the running action, or a FAILED one saying why the grasp is impossible
        """
        with self._lock:
            self._stopped = False
            problem = self._grasp_problem(object_id)
            if problem:
                return self._refuse("grasp", problem)
            return self._begin(Manipulation(self, "grasp", f"grasping {object_id}",
                                            lambda: self._finish_grasp(object_id)))

    def place(self, pose: Pose) -> SimAction:
        """Put the held object down at ``pose`` (within reach, inside the workspace, outside no-go zones).

        Args:
            pose: x, y, theta of the object afterwards

        Returns:
            the running action, or a FAILED one saying why the place is impossible
        """
        with self._lock:
            self._stopped = False
            try:
                target = _finite_pose(pose)
            except ValueError as error:
                return self._refuse("place", str(error))
            problem = self._place_problem(target)
            if problem:
                return self._refuse("place", problem)
            return self._begin(Manipulation(self, "place", f"placing {self._holding} at {format_xy(target)}",
                                            lambda: self._finish_place(target)))

    def hand_over(self, human_id: str) -> SimAction:
        """Hand the held object to a person within ``HAND_OVER_REACH``.

        Args:
            human_id: the person's id

        Returns:
            the running action, or a FAILED one saying why the hand-over is impossible
        """
        with self._lock:
            self._stopped = False
            problem = self._hand_over_problem(human_id)
            if problem:
                return self._refuse("hand_over", problem)
            return self._begin(Manipulation(self, "hand_over", f"handing {self._holding} to {human_id}",
                                            lambda: self._finish_hand_over(human_id)))

    def safe_stop(self, reason: str) -> None:
        """Cancel the running action now; the robot stands still and ``stopped`` latches until the next command.

        Args:
            reason: why; becomes the cancelled handle's message and is recorded in ``stops``
        """
        with self._lock:
            self._cancel(self._active, f"safe stop: {reason}")
            self.stops.append((self.sim_time, reason))
            self._stopped = True

    def _begin(self, action: SimAction) -> SimAction:
        # One action at a time: the newest accepted command wins.
        self._cancel(self._active, f"preempted by a new {action.skill}")
        self._active = action
        return action

    def _refuse(self, skill: str, reason: str) -> SimAction:
        action = SimAction(self, skill, 0.0, reason)
        action._end(ActionState.FAILED, reason, self.sim_time)
        return action

    def _cancel(self, action: SimAction | None, message: str) -> None:
        with self._lock:
            if action is None:
                return
            action._end(ActionState.CANCELLED, message, self.sim_time)
            if self._active is action:
                self._active = None

    # -- gripper rules --------------------------------------------------------

    def _distance(self, point: Sequence[float]) -> float:
        return math.dist(self._pose[:2], (point[0], point[1]))

    def _grasp_problem(self, object_id: str) -> str:
        obj = self._objects.get(object_id)
        if obj is None:
            return f"unknown object '{object_id}'"
        if object_id in self.given:
            return f"{object_id} was handed to {self.given[object_id]}"
        if self._battery <= 0.0:
            return "battery empty"
        if self._holding is not None:
            return f"already holding {self._holding}"
        if not obj.graspable:
            return f"{object_id} is not graspable"
        if obj.mass > self.world.robot.payload:
            return f"{object_id} weighs {obj.mass:g} kg (payload {self.world.robot.payload:g} kg)"
        distance = self._distance(obj.pose)
        if distance > self.REACH:
            return f"{object_id} is {_metres(distance, self.REACH)} m away (reach {self.REACH:g} m)"
        return ""

    def _place_problem(self, target: Pose) -> str:
        if self._holding is None:
            return "holding nothing"
        if self._battery <= 0.0:
            return "battery empty"
        problem = point_problem(self.world, target)
        if problem:
            return problem
        distance = self._distance(target)
        if distance > self.REACH:
            return f"target {format_xy(target)} is {_metres(distance, self.REACH)} m away (reach {self.REACH:g} m)"
        return ""

    def _hand_over_problem(self, human_id: str) -> str:
        if human_id not in self._humans:
            return f"unknown person '{human_id}'"
        if self._holding is None:
            return "holding nothing"
        if self._battery <= 0.0:
            return "battery empty"
        return self._out_of_hand_reach(human_id)

    def _out_of_hand_reach(self, human_id: str) -> str:
        distance = self._distance(self._humans[human_id])
        if distance > self.HAND_OVER_REACH:
            return f"{human_id} is {_metres(distance, self.HAND_OVER_REACH)} m away (reach {self.HAND_OVER_REACH:g} m)"
        return ""

    def _finish_grasp(self, object_id: str) -> tuple[bool, str]:
        self._holding = object_id
        return True, f"holding {object_id}"

    def _finish_place(self, target: Pose) -> tuple[bool, str]:
        held = self._holding
        assert held is not None
        self._objects[held] = replace(self._objects[held], pose=target, at=None)
        self._holding = None
        return True, f"placed {held} at {format_xy(target)}"

    def _finish_hand_over(self, human_id: str) -> tuple[bool, str]:
        # People move during the hand-over (scenarios, hazards): check they are still there to take it.
        if human_id not in self._humans:
            return False, f"{human_id} is no longer here"
        if self._out_of_hand_reach(human_id):
            distance = _metres(self._distance(self._humans[human_id]), self.HAND_OVER_REACH)
            return False, f"{human_id} moved out of reach ({distance} m away, reach {self.HAND_OVER_REACH:g} m)"
        held = self._holding
        assert held is not None
        self.given[held] = human_id
        self._holding = None
        return True, f"gave {held} to {human_id}"

    # -- people ---------------------------------------------------------------

    def add_human(self, human_id: str, pose: Pose) -> None:
        """Put a new person into the world (scenarios, hazards).

        Raises:
            ValueError: the id is already a person or an object
        """
        with self._lock:
            if human_id in self._humans or human_id in self._objects:
                raise ValueError(f"id '{human_id}' is already in the world")
            self._humans[human_id] = _finite_pose(pose)
        self._perception_changed()

    def move_human(self, human_id: str, pose: Pose) -> None:
        """Move a person to ``pose``.

        Raises:
            KeyError: no such person
        """
        with self._lock:
            if human_id not in self._humans:
                raise KeyError(f"unknown person '{human_id}'")
            self._humans[human_id] = _finite_pose(pose)
        self._perception_changed()

    def remove_human(self, human_id: str) -> None:
        """Take a person out of the world (they walked away); unknown ids are ignored."""
        with self._lock:
            self._humans.pop(human_id, None)
        self._perception_changed()

    def _perception_changed(self) -> None:
        """A sensor-like event: wake whoever ticks the tree (``on_perception``), as a camera callback would."""
        if self.on_perception is not None:
            self.on_perception()

    # -- state and perception -----------------------------------------------------

    @property
    def pose(self) -> Pose:
        return self._pose

    @property
    def battery(self) -> float:
        return self._battery

    @property
    def holding(self) -> str | None:
        return self._holding

    @property
    def humans(self) -> dict[str, Pose]:
        """Person id → current pose (a copy)."""
        with self._lock:
            return dict(self._humans)

    @property
    def planned_path(self) -> list[Point]:
        """The running navigation's path (from where it started to the goal), [] when none runs."""
        action = self._active
        return list(action.path) if isinstance(action, Navigation) else []

    @property
    def action(self) -> SimAction | None:
        """The running action, if any."""
        return self._active

    def object_pose(self, object_id: str) -> Pose:
        """Where an object is now (held objects are where the robot is).

        Raises:
            KeyError: no such object
        """
        with self._lock:
            return self._pose if object_id == self._holding else self._objects[object_id].pose

    def state(self) -> RobotState:
        """The state published to ``/robot/*``; ``moving`` is true while any action runs."""
        with self._lock:
            active = self._active
            driving = isinstance(active, Navigation) and bool(active._phases) and active._phases[0][0] != "turn"
            return RobotState(pose=self._pose, holding=self._holding, battery=self._battery,
                              moving=active is not None, stopped=self._stopped,
                              speed=active.speed if driving else 0.0)

    def camera_frame(self, camera: Any = None, noise: bool = True) -> Any:
        """What the robot's camera sees now: an RGB frame drawn from the simulated world.

        Held and handed-over objects are not in view; people are. The sensor
        noise is seeded by ``seed`` and the simulation step, so the same run
        gives the same frames.

        Args:
            camera: a ``vla_bt.perception.CameraModel`` (the default camera when None)
            noise: add sensor noise

        Returns:
            a ``vla_bt.perception.Frame`` stamped with sim time
        """
        from vla_bt.perception.camera import CameraModel
        from vla_bt.perception.render import noise_source, world_view

        with self._lock:
            objects = [{"id": o.id, "label": o.label, "color": o.color, "pose": list(o.pose)}
                       for o in self._objects.values() if o.id not in self.given and o.id != self._holding]
            humans = [{"id": human_id, "pose": list(pose)} for human_id, pose in self._humans.items()]
            pose, stamp, ticks = self._pose, self.sim_time, self._ticks
        rng = noise_source(self.seed, ticks) if noise else None
        return world_view(camera or CameraModel(), pose, objects, humans, rng=rng, stamp=stamp)

    def perceive(self) -> Perception:
        """Everything there is, seen perfectly: objects (not those handed over) and people, stamped with sim time."""
        with self._lock:
            objects = []
            for obj in self._objects.values():
                if obj.id in self.given:
                    continue
                record = obj.perception()
                record["pose"] = list(self.object_pose(obj.id))
                objects.append(record)
            humans = [{"id": human_id, "pose": list(pose)} for human_id, pose in self._humans.items()]
            return Perception(objects=objects, humans=humans, stamp=self.sim_time)
