"""Camera perception: frames → detections → object memory → ``/perception/*``, continuously.

``CameraPerception`` is the pipeline; frames are pushed into it (``process``)
by whatever produces them: the simulator's camera here, a
``sensor_msgs/Image`` subscription on ROS 2.

``CameraRobot`` wraps a robot backend whose perception should come from its
camera: every call is passed to the backend, except ``perceive()``, which
takes a frame from ``camera_frame()`` (at most ``rate_hz`` per second of the
robot's clock), runs the pipeline and answers with the remembered objects.
People still come from the backend's own people tracking: the safety
conditions (``human_clearance``) must not depend on a colour detector. Its
``pre_tick`` handler, added after the robot publisher's, stamps
``/perception/stamp`` with the Unix time of the latest frame — so a camera
that stops delivering makes ``heartbeat_fresh`` trip — and writes
``/perception/source`` (``camera``) and ``/perception/camera`` (the latest
frame's detections, for viewers).

Example:
    >>> robot = CameraRobot(SimRobot(world), world)
    >>> run = assemble(loaded, registry, world=world, utterances=..., robot=robot, session=...)
    >>> loaded.tree.add_pre_tick_handler(robot.pre_tick)   # after assemble's own handlers
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import py_trees

from vla_bt import blackboard as keys
from vla_bt.robot.protocol import Perception

from .camera import CameraModel
from .catalogue import Catalogue
from .detect import Detection
from .imageio import annotate, encode_png
from .memory import ObjectMemory
from .plugins import Detector, make_detector
from .render import Frame

PERCEPTION_SOURCE = "/perception/source"
"""Where ``/perception/objects`` comes from: ``camera`` (seen) or unset (the backend's own, complete list)."""
PERCEPTION_CAMERA = "/perception/camera"
"""The latest frame's metadata: ``{stamp, seen, width, height, detections: [...]}`` (no pixels)."""


class CameraPerception:
    """Detector and object memory for a stream of frames.

    Args:
        catalogue: the known objects (labels, colours, ids)
        detector: a ``Detector``, or the name of a registered one (``color``: the embedded one)
        memory: the object memory (a default one on ``catalogue`` when None)
        detector_options: passed to the detector's factory when ``detector`` is a name
    """

    def __init__(self, catalogue: Catalogue | None = None, detector: Detector | str = "color",
                 memory: ObjectMemory | None = None, **detector_options: Any):
        self.catalogue = catalogue or Catalogue()
        self.detector = make_detector(detector, self.catalogue, **detector_options) \
            if isinstance(detector, str) else detector
        self.memory = memory or ObjectMemory(self.catalogue)
        self.latest: Frame | None = None
        self.detections: list[Detection] = []
        self.frames = 0
        self._lock = threading.Lock()

    def process(self, frame: Frame, holding: str | None = None) -> list[Detection]:
        """Detect objects in a frame and update the memory with them.

        Args:
            frame: an image with its camera model, the robot's pose and its clocks
            holding: the id of the object in the gripper (kept in memory where the robot is)

        Returns:
            the frame's detections
        """
        detections = self.detector.detect(frame.rgb, frame.camera, frame.pose)
        with self._lock:
            self.memory.update(frame, detections, holding)
            self.latest, self.detections, self.frames = frame, detections, self.frames + 1
        return detections

    def objects(self) -> list[dict[str, Any]]:
        """The remembered objects, as ``/perception/objects`` records."""
        with self._lock:
            return self.memory.records()

    @property
    def stamp(self) -> float | None:
        """Unix time the latest frame was taken (None before the first)."""
        return self.latest.wall if self.latest is not None else None

    def summary(self) -> dict[str, Any]:
        """The latest frame's metadata and detections, for ``/perception/camera``."""
        frame = self.latest
        if frame is None:
            return {"frames": 0}
        return {"frames": self.frames, "stamp": frame.stamp, "seen": frame.wall, "width": frame.rgb.shape[1],
                "height": frame.rgb.shape[0], "pose": list(frame.pose),
                "detections": [d.to_json() for d in self.detections]}

    def annotated(self) -> np.ndarray | None:
        """The latest frame with its detections drawn (None before the first)."""
        frame = self.latest
        return None if frame is None else annotate(frame.rgb, self.detections)

    def annotated_png(self) -> bytes | None:
        """The same, as PNG bytes (what a viewer serves)."""
        image = self.annotated()
        return None if image is None else encode_png(image)


class CameraRobot:
    """A robot backend whose ``perceive()`` answers with what its camera detected.

    Args:
        robot: the backend; it must have ``camera_frame(camera)`` returning a ``Frame`` (``SimRobot`` does)
        world: the world file, for the catalogue of known objects (labels, colours, ids)
        camera: the camera model (the default one when None)
        detector: a ``Detector`` or a registered name
        rate_hz: at most this many frames per second of the robot's clock
        forget_after: seconds (robot clock) after which an object not seen is forgotten
        perception: a ready pipeline to use instead of building one

    Attributes:
        enabled: False makes the camera deliver nothing (a fault: the heartbeat goes stale)
        errors: how many frames failed
    """

    def __init__(self, robot: Any, world: Any = None, *, camera: CameraModel | None = None,
                 detector: Detector | str = "color", rate_hz: float = 10.0, forget_after: float = 60.0,
                 perception: CameraPerception | None = None):
        if not callable(getattr(robot, "camera_frame", None)):
            raise TypeError(f"{type(robot).__name__} has no camera_frame(): it cannot be a camera perception source")
        if rate_hz <= 0:
            raise ValueError(f"rate_hz must be positive, got {rate_hz!r}")
        catalogue = Catalogue.from_world(world) if world is not None else Catalogue()
        self.__dict__["robot"] = robot  # before anything else: __getattr__ reads it
        self.camera = camera or CameraModel()
        self.perception = perception or CameraPerception(
            catalogue, detector, ObjectMemory(catalogue, forget_after=forget_after))
        self.period = 1.0 / rate_hz
        self.enabled = True
        self.errors = 0
        self.last_error = ""
        self._last_capture: float | None = None
        self._client: py_trees.blackboard.Client | None = None

    # -- everything else is the backend's ---------------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["robot"], name)

    @property
    def on_perception(self) -> Callable[[], None] | None:
        return getattr(self.robot, "on_perception", None)

    @on_perception.setter
    def on_perception(self, callback: Callable[[], None] | None) -> None:
        self.robot.on_perception = callback  # hazards (people moving) still wake the tree at once

    # -- the camera ---------------------------------------------------------------------------------

    def _clock(self) -> float:
        sim_time = getattr(self.robot, "sim_time", None)
        return float(sim_time) if isinstance(sim_time, (int, float)) else time.monotonic()

    def capture(self, force: bool = False) -> Frame | None:
        """Take and process a frame if one is due (or ``force``); None when none was taken.

        A failing camera is counted in ``errors`` and gives no frame; it never raises into the tick.
        """
        now = self._clock()
        if not self.enabled:
            return None
        if not force and self._last_capture is not None and now - self._last_capture < self.period - 1e-9:
            return None
        try:
            frame = self.robot.camera_frame(self.camera)
        except Exception as exc:  # noqa: BLE001 - a camera fault must not crash the tree: perception goes stale
            self.errors += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            return None
        self._last_capture = now
        frame.wall = time.time()
        self.perception.process(frame, self.robot.state().holding)
        return frame

    def perceive(self) -> Perception:
        """The objects the camera detected (remembered), and the backend's people."""
        self.capture()
        humans = self.robot.perceive().humans
        latest = self.perception.latest
        return Perception(objects=self.perception.objects(), humans=humans,
                          stamp=latest.stamp if latest is not None else 0.0)

    def latest_frame(self) -> np.ndarray | None:
        """The newest RGB frame (taking one if there is none yet); None when the camera gives none."""
        if self.perception.latest is None:
            self.capture(force=True)
        latest = self.perception.latest
        return None if latest is None else latest.rgb

    def pre_tick(self, _tree: Any = None) -> None:
        """Stamp ``/perception/stamp`` with the latest frame's Unix time (0 before any), and the camera's keys.

        Add it after the robot publisher's handler, whose stamp it replaces.
        """
        if self._client is None:
            self._client = py_trees.blackboard.Client(name="CameraPerception")
            for key in (keys.PERCEPTION_STAMP, PERCEPTION_SOURCE, PERCEPTION_CAMERA):
                self._client.register_key(key, access=py_trees.common.Access.WRITE)
        stamp = self.perception.stamp
        self._client.set(keys.PERCEPTION_STAMP, float(stamp) if stamp is not None else 0.0)
        self._client.set(PERCEPTION_SOURCE, "camera")
        self._client.set(PERCEPTION_CAMERA, self.perception.summary())


def camera_robot(robot: Any, world: Any, **options: Any) -> CameraRobot:
    """``robot`` wrapped so that its perception comes from its camera (see ``CameraRobot``)."""
    return CameraRobot(robot, world, **options)
