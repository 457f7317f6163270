"""``Perceive`` (one look with the camera) and ``Search`` (turn and move until the camera shows something).

Both work on the camera perception pipeline (``vla_bt.perception``): the
robot backend handed to ``setup(robot=...)`` is a ``CameraRobot`` (or any
backend with ``camera_frame()``, for which ``Perceive`` builds its own
pipeline on the world's catalogue). ``Search`` moves the robot only through
the command gate, so every look is validated and audited like any command.
"""

from __future__ import annotations

import math
import time
from typing import Any

import py_trees

from vla_bt import blackboard as keys
from vla_bt.intent.grounding import AmbiguousError, Grounded, UnresolvedError, approach_pose, describe, ground_object
from vla_bt.perception.camera import CameraModel
from vla_bt.perception.catalogue import Catalogue
from vla_bt.perception.memory import ObjectMemory
from vla_bt.perception.source import CameraPerception
from vla_bt.robot.gate import CommandGate, CommandRefusedError
from vla_bt.robot.geometry import find_path, point_problem
from vla_bt.robot.protocol import ActionHandle, ActionState, Pose
from vla_bt.tree.declared import Param, ParamUnavailableError

from .skills import REFERENCE, SCENE_KEYS, SceneAware

Status = py_trees.common.Status
RING_M = 1.3
"""Radius of the circle of viewpoints around the spot where the search started (m)."""
ARRIVAL_TOLERANCE_M = 0.15


def _camera_source(kwargs: dict[str, Any]) -> Any:
    """The ``CameraRobot`` (or other object with ``capture()`` and ``perception``) behind ``setup`` arguments."""
    for candidate in (kwargs.get("camera"), getattr(kwargs.get("robot"), "robot", None)):
        if candidate is not None and callable(getattr(candidate, "capture", None)) \
                and hasattr(candidate, "perception"):
            return candidate
    return None


class Perceive(SceneAware):
    """Take one camera frame, detect the objects in it, and update ``/perception/objects``.

    Args:
        look_for: an object reference ("the green mug"); when given, SUCCESS only if it is seen
        min_confidence: detections below this confidence are ignored

    Blackboard:
        reads the scene (``/robot/*``, ``/dialogue/context``); writes ``/perception/objects``,
        ``/perception/stamp`` (Unix time of the frame)

    Returns:
        SUCCESS after the look (and, with ``look_for``, when it is seen); FAILURE with the reason when
        there is no camera, the camera gives no frame, or ``look_for`` is not (or ambiguously) seen
    """

    DESCRIPTION = "Take one camera frame, detect the objects in it, and update /perception/objects."
    PARAMS = {
        "look_for": Param({"type": ["string", "null"], "maxLength": 200},
                          "object reference that must be seen for SUCCESS (null: any look succeeds)", default=None),
        "min_confidence": Param({"type": "number", "minimum": 0, "maximum": 1},
                                "ignore weaker detections", default=0.25, runtime=False),
    }
    READS = SCENE_KEYS
    WRITES = (keys.PERCEPTION_OBJECTS, keys.PERCEPTION_STAMP)

    def __init__(self, name: str | None = None, **params: Any):
        super().__init__(name, **params)
        self.source: Any = None
        self._own: CameraPerception | None = None
        self._camera: Any = None

    def setup(self, **kwargs: Any) -> None:
        super().setup(**kwargs)
        self.source = _camera_source(kwargs)
        if self.source is None:
            backend = getattr(kwargs.get("robot"), "robot", None) or kwargs.get("camera")
            if backend is not None and callable(getattr(backend, "camera_frame", None)):
                world = kwargs.get("world")
                catalogue = Catalogue.from_world(world) if world is not None else Catalogue()
                memory = ObjectMemory(catalogue, min_confidence=float(self.params["min_confidence"]))
                self._own, self._camera = CameraPerception(catalogue, memory=memory), backend

    def update(self) -> Status:
        if self.source is not None:
            frame = self.source.capture(force=True)
            perception = self.source.perception
        elif self._own is not None:
            frame = self._camera.camera_frame()
            frame.wall = time.time()
            holding = self._get(keys.ROBOT_HOLDING)
            self._own.process(frame, holding)
            perception = self._own
        else:
            self.feedback_message = "no camera (run with camera perception, or a robot that has a camera)"
            return Status.FAILURE
        if frame is None:
            self.feedback_message = "the camera gave no frame"
            return Status.FAILURE
        self.blackboard.set(keys.PERCEPTION_OBJECTS, perception.objects())
        self.blackboard.set(keys.PERCEPTION_STAMP, frame.wall)
        seen = sorted({describe(d.__dict__) for d in perception.detections})
        self.feedback_message = f"I see: {', '.join(seen)}" if seen else "I see nothing I know"
        try:
            wanted = self.param("look_for")
        except ParamUnavailableError as exc:
            self.feedback_message = str(exc)
            return Status.FAILURE
        if not wanted:
            return Status.SUCCESS
        try:
            ground_object(str(wanted), self.scene(), self.context())
        except AmbiguousError as ambiguity:
            self.feedback_message = ambiguity.question
            return Status.FAILURE
        except UnresolvedError as unresolved:
            self.feedback_message = str(unresolved)
            return Status.FAILURE
        return Status.SUCCESS


class Search(SceneAware):
    """Look for an object: turn on the spot, then look from around it, then at the known places, until it is seen.

    Looks, in order, each ended by a fresh camera frame taken after the robot stopped:
    turning on the spot in steps of most of the camera's field of view; then
    viewpoints on a circle (``RING_M``) around the spot, facing it (what stands
    right at the robot's feet cannot be seen from there); then, with ``places``,
    each known place, nearest first, turning there too. While it moves it
    keeps checking: once perception shows the object the motion is stopped.
    With ``approach``, the robot then drives to within that distance of it.

    Args:
        reference: what to look for ("the green mug", "mug_green")
        approach: after finding it, drive to within this many metres of it (null: stay)
        places: also go and look at the world's known places
        max_looks: at most this many looks (turns and moves)
        say: tell the user the question when the search fails

    Blackboard:
        reads the scene and ``/perception/stamp``; writes ``/dialogue/history`` (the question, with ``say``)

    Returns:
        SUCCESS once perception shows exactly one object matching ``reference`` (after the approach, if
        any); FAILURE with a question when the looks are used up, several objects match, or a motion fails
    """

    DESCRIPTION = "Turn and move to look for an object until the camera shows it; fail with a question otherwise."
    PARAMS = {
        "reference": Param(REFERENCE, "what to look for"),
        "approach": Param({"type": ["number", "null"], "exclusiveMinimum": 0, "maximum": 5},
                          "after finding it, drive to within this distance (m); null: stay", default=None),
        "places": Param({"type": "boolean"}, "also look at the known places, nearest first", default=True,
                        runtime=False),
        "max_looks": Param({"type": "integer", "minimum": 1, "maximum": 200}, "at most this many looks",
                           default=24, runtime=False),
        "say": Param({"type": "boolean"}, "say the question when the search fails", default=True, runtime=False),
    }
    READS = (*SCENE_KEYS, keys.PERCEPTION_STAMP)
    WRITES = (keys.DIALOGUE_HISTORY,)

    step_id: str | None = None  # set by ExecutePlan: the plan step this search prepares

    def __init__(self, name: str | None = None, **params: Any):
        super().__init__(name, **params)
        self.robot: CommandGate | None = None
        self.world: Any = None
        self.camera = CameraModel()
        self._handle: ActionHandle | None = None

    def setup(self, **kwargs: Any) -> None:
        super().setup(**kwargs)
        self.robot = kwargs.get("robot", self.robot)
        self.world = kwargs.get("world", self.world)
        source = _camera_source(kwargs)
        self.camera = getattr(source, "camera", None) or self.camera

    # -- the plan of looks ----------------------------------------------------------------------

    def _looks(self, start: Pose) -> list[tuple[str, Pose]]:
        x, y, theta = start
        step = self.camera.hfov * 0.8
        turns = max(1, math.ceil(2 * math.pi / step) - 1)
        looks = [("turn", (x, y, _wrap(theta + k * 2 * math.pi / (turns + 1)))) for k in range(1, turns + 1)]
        for k in range(4):
            angle = theta + math.pi + k * math.pi / 2
            point = (x + RING_M * math.cos(angle), y + RING_M * math.sin(angle))
            looks.append(("move", (point[0], point[1], _wrap(angle + math.pi))))
        if self.params["places"]:
            for name, pose in sorted(self.places.items(), key=lambda p: math.dist(p[1][:2], (x, y))):
                if math.dist(pose[:2], (x, y)) < 0.5:
                    continue
                looks.append((f"place {name}", (float(pose[0]), float(pose[1]), float(pose[2]))))
                px, py, heading = float(pose[0]), float(pose[1]), float(pose[2])
                looks += [("turn", (px, py, _wrap(heading + k * 2 * math.pi / (turns + 1))))
                          for k in range(1, turns + 1)]
        return [(kind, pose) for kind, pose in looks if self._reachable(pose)][: int(self.params["max_looks"])]

    def _reachable(self, pose: Pose) -> bool:
        if self.world is None:
            return True
        return not point_problem(self.world, pose) and find_path(self.world, self._pose(), pose)[0] is not None

    def _pose(self) -> Pose:
        pose = self._get(keys.ROBOT_POSE) or (0.0, 0.0, 0.0)
        return (float(pose[0]), float(pose[1]), float(pose[2]))

    # -- the behaviour ----------------------------------------------------------------------------

    def initialise(self) -> None:
        self._handle, self._found, self._problem = None, None, None
        self._waiting_since: float | None = None
        self._approached = False
        self._count = 0
        try:
            self._reference = str(self.param("reference"))
        except ParamUnavailableError as exc:
            self._problem, self._queue = str(exc), []
            return
        self._queue = self._looks(self._pose())
        self.feedback_message = f"looking for {self._reference}"

    def _seen(self) -> Grounded | None:
        """The object, if perception shows it; raises ``AmbiguousError`` when it shows several."""
        try:
            return ground_object(self._reference, self.scene(), self.context())
        except UnresolvedError:
            return None

    def update(self) -> Status:
        if self._problem is not None:
            return self._fail(self._problem)
        if self.robot is None:
            return self._fail("no robot backend (run with --robot sim or ros2)")
        try:
            found = self._seen()
        except AmbiguousError as ambiguity:
            self._stop_motion()
            return self._fail(ambiguity.question)
        if found is not None and not self._approached:
            return self._on_found(found)
        if self._handle is not None:
            state = self._handle.state
            if state is ActionState.RUNNING:
                return Status.RUNNING
            self._handle = None
            if state is ActionState.SUCCEEDED and self._approached:
                self.feedback_message = f"found {self._found} and went to it"
                return Status.SUCCESS
            if state is not ActionState.SUCCEEDED and self._approached:
                return self._fail(f"I saw {self._found} but could not get to it")
            self._waiting_since = time.time()  # a look is judged on a frame taken after the robot stopped
        if self._waiting_since is not None:
            stamp = self._get(keys.PERCEPTION_STAMP)
            if isinstance(stamp, (int, float)) and stamp <= self._waiting_since:
                return Status.RUNNING
            self._waiting_since = None
        return self._next_look()

    def _on_found(self, found: Grounded) -> Status:
        self._found = found.label
        self._stop_motion()
        approach = self.param("approach")
        here = self._pose()
        if approach is None or math.dist(here[:2], found.pose[:2]) <= float(approach) + ARRIVAL_TOLERANCE_M:
            self.feedback_message = f"found {found.label}"
            return Status.SUCCESS
        self._approached = True
        handle = self._start(approach_pose(here, found.pose, float(approach)), f"approach {found.label}")
        if isinstance(handle, str):
            return self._fail(f"I can see {found.label} but cannot go to it: {handle}")
        self._handle = handle
        self.feedback_message = f"found {found.label}, going to it"
        return Status.RUNNING

    def _next_look(self) -> Status:
        while self._queue:
            kind, pose = self._queue.pop(0)
            self._count += 1
            handle = self._start(pose, f"look for {self._reference}")
            if isinstance(handle, str):
                continue  # this viewpoint is refused: the next one
            self._handle = handle
            self.feedback_message = f"looking for {self._reference}: look {self._count} ({kind})"
            return Status.RUNNING
        return self._fail(f"I looked around but I can't see {_the(self._reference)}. Where should I look?")

    def _start(self, pose: Pose, purpose: str) -> ActionHandle | str:
        """Send a motion through the gate: its handle, or why it was refused."""
        assert self.robot is not None
        try:
            handle = self.robot.navigate(pose, None, step=self.step_id, target=purpose)
        except CommandRefusedError as refusal:
            return str(refusal)
        if handle.state is ActionState.FAILED:
            return handle.message or "refused by the robot"
        return handle

    def _stop_motion(self) -> None:
        if self._handle is not None and self._handle.state is ActionState.RUNNING:
            self._handle.cancel()
        self._handle = None

    def _fail(self, reason: str) -> Status:
        self.feedback_message = reason
        if self.params["say"]:
            keys.append_turn(self.blackboard, "robot", reason)
        return Status.FAILURE

    def terminate(self, new_status: Status) -> None:
        if self._handle is not None and self._handle.state is ActionState.RUNNING:
            # Halted (a guard, a failed sibling, Ctrl-C): the robot must not go on looking.
            self._handle.cancel()
            if self.robot is not None:
                self.robot.safe_stop(f"{self.name} halted", step=self.step_id)
        self._handle = None


def _wrap(angle: float) -> float:
    wrapped = math.remainder(angle, math.tau)
    return math.pi if wrapped == -math.pi else wrapped


def _the(reference: str) -> str:
    text = reference.strip()
    return text if text.lower().startswith(("the ", "a ", "an ", "my ")) else f"the {text.replace('_', ' ')}"
