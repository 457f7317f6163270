"""Frames for the model: where a leaf gets the current camera image, and when the user asks about it."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

ASKING_TO_SEE = re.compile(
    r"\b(see|sees|seeing|saw|look|looks|looking|show|camera|picture|image|photo|view|visible|"
    r"in front of you|what(?:'s| is) (?:this|that|there)|describe|which colou?r|what colou?r)\b", re.IGNORECASE)


def asks_to_see(text: str) -> bool:
    """Whether an utterance asks about what the robot sees ("what do you see?", "look at the table")."""
    return bool(ASKING_TO_SEE.search(text or ""))


def frame_source(setup_kwargs: Mapping[str, Any]) -> Callable[[], np.ndarray | None] | None:
    """A function giving the current RGB frame, found among a leaf's ``setup()`` arguments; None without a camera.

    Looks at ``camera=`` (anything with ``latest_frame()`` or ``camera_frame()``), then at the robot
    backend behind ``robot=`` (the command gate's ``robot``): a ``CameraRobot``'s latest frame, else a
    fresh ``camera_frame()`` of a backend that has one (the simulator).
    """
    candidates = [setup_kwargs.get("camera")]
    robot = setup_kwargs.get("robot")
    candidates += [getattr(robot, "robot", None), robot]
    for candidate in candidates:
        if candidate is None:
            continue
        latest = getattr(candidate, "latest_frame", None)
        if callable(latest):
            return latest
        take = getattr(candidate, "camera_frame", None)
        if callable(take):
            return lambda take=take: take().rgb
    return None
