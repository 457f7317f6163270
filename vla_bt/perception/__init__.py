"""Perception from a camera: frames of the robot's view, detection, object memory, and their sources.

* ``camera``: the pinhole camera model and pixel ↔ floor geometry;
* ``render``: the simulator's camera view, ray-cast with numpy (``SimRobot.camera_frame``);
* ``detect``: the embedded colour/shape detector; ``plugins``: registry and entry points for others;
* ``catalogue``: the known objects (labels, colours, shapes, ids) — what references can plausibly mean;
* ``memory``: detections over time → ``/perception/objects``, with ageing;
* ``source``: the continuous pipeline and ``CameraRobot``, a backend whose perception is its camera;
* ``imageio``: PNG in and out, size-limited encoding for the model, detections drawn on frames;
* ``quality``: precision and recall of the detector on seeded scenes (``vla-bt bench``).
"""

from .camera import CameraModel
from .catalogue import Catalogue, Entry
from .detect import ColorShapeDetector, Detection
from .memory import ObjectMemory
from .plugins import DETECTORS, Detector, DetectorError, locate, make_detector, register_detector
from .render import Frame, render, world_view
from .source import PERCEPTION_CAMERA, PERCEPTION_SOURCE, CameraPerception, CameraRobot, camera_robot

__all__ = ["DETECTORS", "PERCEPTION_CAMERA", "PERCEPTION_SOURCE", "CameraModel", "CameraPerception", "CameraRobot",
           "Catalogue", "ColorShapeDetector", "Detection", "Detector", "DetectorError", "Entry", "Frame",
           "ObjectMemory", "camera_robot", "locate", "make_detector", "register_detector", "render", "world_view"]
