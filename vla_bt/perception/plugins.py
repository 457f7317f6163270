"""The detector plugin point: the embedded detector by name, and real detectors from other packages.

A detector is anything with ``detect(image, camera=None, pose=None) ->
list[Detection]`` (``Detector``). Register one in code::

    @register_detector("yolo")
    def make_yolo(catalogue=None, **options):
        return MyOnnxDetector(catalogue, **options)

or ship it as an entry point in the group ``vla_bt.detectors`` (the value is
the factory, called with ``catalogue=`` and the options)::

    [project.entry-points."vla_bt.detectors"]
    yolo = "my_package.detector:make_yolo"

A detector that only finds boxes (an ONNX network, a ROS 2 detection node)
can give them world poses with ``locate``: the box's foot on the floor, from
the camera model and the robot's pose — the same output as the embedded one.
"""

from __future__ import annotations

import importlib.metadata
import logging
import math
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .camera import CameraModel
from .catalogue import Catalogue
from .detect import ColorShapeDetector, Detection
from .shapes import shape_for

log = logging.getLogger(__name__)
ENTRY_POINT_GROUP = "vla_bt.detectors"


@runtime_checkable
class Detector(Protocol):
    """What finds objects in images."""

    name: str

    def detect(self, image: np.ndarray, camera: CameraModel | None = None,
               pose: Sequence[float] | None = None) -> list[Detection]:
        """Detections in an ``(h, w, 3)`` uint8 RGB image, world poses included when ``camera`` and ``pose`` are."""


DetectorFactory = Callable[..., Detector]
DETECTORS: dict[str, DetectorFactory] = {"color": ColorShapeDetector}
"""Registered detector factories by name; ``color`` is the embedded one."""


class DetectorError(LookupError):
    """No detector of that name, or its plugin failed to load."""


def register_detector(name: str, factory: DetectorFactory | None = None) -> Any:
    """Register a detector factory (usable as a decorator).

    Args:
        name: what ``make_detector`` and the ``detector`` parameters call it
        factory: called as ``factory(catalogue=..., **options)``
    """
    def add(function: DetectorFactory) -> DetectorFactory:
        DETECTORS[name] = function
        return function
    return add(factory) if factory is not None else add


def detector_names() -> list[str]:
    """Every registered and installed detector name."""
    installed = {ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}
    return sorted(set(DETECTORS) | installed)


def make_detector(name: str = "color", catalogue: Catalogue | None = None, **options: Any) -> Detector:
    """A detector by name: registered ones first, then installed entry points (``vla_bt.detectors``).

    Raises:
        DetectorError: unknown name, or the plugin failed to load (the message says why)
    """
    factory = DETECTORS.get(name)
    if factory is None:
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if ep.name == name:
                try:
                    factory = ep.load()
                except Exception as exc:  # noqa: BLE001 - a broken plugin is reported, not raised through
                    raise DetectorError(f"detector plugin '{name}' failed to load: {type(exc).__name__}: {exc}") \
                        from None
                break
    if factory is None:
        raise DetectorError(f"unknown detector '{name}' (available: {', '.join(detector_names())})")
    detector = factory(catalogue=catalogue, **options)
    if not isinstance(detector, Detector):
        raise DetectorError(f"detector '{name}' has no detect(image, camera, pose) method")
    return detector


def locate(detection: Detection, camera: CameraModel, pose: Sequence[float], support: float = 0.0) -> Detection:
    """Give a box-only detection a world pose and size: its box's foot stands on the floor (or ``support``).

    Args:
        detection: with ``bbox`` and ``label``
        camera: the camera model of the image
        pose: the robot's pose when it was taken
        support: height of the surface it stands on

    Returns:
        the same detection with ``pose`` and ``size`` set (unchanged when the foot is not on the floor)
    """
    u0, v0, u1, v1 = detection.bbox
    foot = camera.floor_point(pose, (u0 + u1 - 1) / 2, v1 - 0.5, z=support)
    if foot is None:
        return detection
    origin = camera.origin(pose)
    bearing = math.atan2(foot[1] - origin[1], foot[0] - origin[0])
    radius = shape_for(detection.label).radius
    _, _, forward = camera.axes(pose)
    depth = float((np.array([foot[0], foot[1], support]) - origin) @ forward)
    height = camera.height_above(pose, (foot[0], foot[1], support), v0 - 0.5) or 0.0
    detection.pose = (round(foot[0] + radius * math.cos(bearing), 3), round(foot[1] + radius * math.sin(bearing), 3),
                      0.0)
    detection.size = (round((u1 - u0) * depth / camera.fx, 3), round(height, 3))
    detection.support = support
    return detection
