"""The robot's camera: a pinhole model mounted on the base, and the geometry between pixels and the floor.

Frames (REP 103): the world is x forward / y left / z up, in metres; the
robot's pose is ``(x, y, theta)``. The camera sits ``mount_height`` above the
floor at the robot's position (``forward`` metres ahead of it), looks along
the robot's heading, pitched down by ``tilt``. Image coordinates are
``(u, v)``: column to the right, row down; pixel centres at integers.

Example:
    >>> camera = CameraModel()
    >>> u, v, depth = camera.project((0.0, 0.0, 0.0), np.array([[2.0, 0.0, 0.0]]))
    >>> camera.floor_point((0.0, 0.0, 0.0), float(u[0]), float(v[0]))
    (2.0, 0.0)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

Pose = tuple[float, float, float]


@dataclass(frozen=True)
class CameraModel:
    """A pinhole camera on the robot.

    Args:
        width: image columns
        height: image rows
        hfov: horizontal field of view (rad); square pixels, so the vertical one follows from the aspect
        mount_height: height of the optical centre above the floor (m)
        tilt: downward pitch of the optical axis (rad)
        range: what lies further than this (m, in the floor plane) is not seen
        near: what lies closer than this (m, in the floor plane) is not seen
        forward: mount offset ahead of the robot's centre (m)
    """

    width: int = 160
    height: int = 120
    hfov: float = math.radians(70.0)
    mount_height: float = 1.2
    tilt: float = math.radians(30.0)
    range: float = 6.0
    near: float = 0.2
    forward: float = 0.0

    def __post_init__(self) -> None:
        if self.width < 8 or self.height < 8:
            raise ValueError(f"a camera image needs at least 8×8 pixels, got {self.width}×{self.height}")
        if not 0 < self.hfov < math.pi:
            raise ValueError(f"hfov must be between 0 and π rad, got {self.hfov!r}")
        if not self.range > self.near >= 0:
            raise ValueError(f"need range > near ≥ 0, got range={self.range!r}, near={self.near!r}")

    # -- intrinsics ---------------------------------------------------------------------------

    @property
    def fx(self) -> float:
        """Focal length in pixels (the same for rows: square pixels)."""
        return (self.width / 2) / math.tan(self.hfov / 2)

    @property
    def cx(self) -> float:
        return (self.width - 1) / 2

    @property
    def cy(self) -> float:
        return (self.height - 1) / 2

    @property
    def vfov(self) -> float:
        """Vertical field of view (rad)."""
        return 2 * math.atan((self.height / 2) / self.fx)

    @classmethod
    def from_camera_info(cls, width: int, height: int, k: Sequence[float], **mount: Any) -> CameraModel:
        """A camera model from ``sensor_msgs/CameraInfo`` fields (K row-major; the principal point is taken
        as the image centre and pixels as square, ``fx``).

        Args:
            width: image columns
            height: image rows
            k: the 3×3 intrinsic matrix, row-major
            **mount: ``mount_height``, ``tilt``, ``range``, ``near``, ``forward`` (from the robot's TF)
        """
        fx = float(k[0])
        if not fx > 0:
            raise ValueError(f"CameraInfo K has no focal length (k[0] = {k[0]!r})")
        return cls(width=int(width), height=int(height), hfov=2 * math.atan((int(width) / 2) / fx), **mount)

    def intrinsics(self) -> dict[str, Any]:
        """As a ``sensor_msgs/CameraInfo`` would carry them (K row-major, no distortion)."""
        return {"width": self.width, "height": self.height,
                "k": [self.fx, 0.0, self.cx, 0.0, self.fx, self.cy, 0.0, 0.0, 1.0], "d": [0.0] * 5,
                "distortion_model": "plumb_bob"}

    # -- extrinsics ---------------------------------------------------------------------------

    def origin(self, pose: Sequence[float]) -> np.ndarray:
        """The optical centre in the world frame, for a robot at ``pose``."""
        x, y, theta = float(pose[0]), float(pose[1]), float(pose[2])
        return np.array([x + self.forward * math.cos(theta), y + self.forward * math.sin(theta), self.mount_height])

    def axes(self, pose: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The camera's right, down and forward unit vectors in the world frame."""
        theta = float(pose[2])
        c, s, ct, st = math.cos(theta), math.sin(theta), math.cos(self.tilt), math.sin(self.tilt)
        forward = np.array([c * ct, s * ct, -st])
        right = np.array([s, -c, 0.0])
        down = np.cross(forward, right)
        return right, down, forward

    def rays(self, pose: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
        """The optical centre and one unit ray per pixel, ``(height, width, 3)``, in the world frame."""
        right, down, forward = self.axes(pose)
        u = (np.arange(self.width) - self.cx) / self.fx
        v = (np.arange(self.height) - self.cy) / self.fx
        directions = (u[None, :, None] * right + v[:, None, None] * down + forward).astype(np.float64)
        directions /= np.linalg.norm(directions, axis=2, keepdims=True)
        return self.origin(pose), directions

    def project(self, pose: Sequence[float], points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Pixel coordinates of world points ``(N, 3)``: ``(u, v, depth)``; depth ≤ 0 is behind the camera."""
        right, down, forward = self.axes(pose)
        rel = np.asarray(points, dtype=float).reshape(-1, 3) - self.origin(pose)
        depth = rel @ forward
        safe = np.where(np.abs(depth) < 1e-9, 1e-9, depth)
        return self.cx + self.fx * (rel @ right) / safe, self.cy + self.fx * (rel @ down) / safe, depth

    def ray(self, pose: Sequence[float], u: float, v: float) -> tuple[np.ndarray, np.ndarray]:
        """The optical centre and the unit ray through image point ``(u, v)``."""
        right, down, forward = self.axes(pose)
        direction = (u - self.cx) / self.fx * right + (v - self.cy) / self.fx * down + forward
        return self.origin(pose), direction / np.linalg.norm(direction)

    def floor_point(self, pose: Sequence[float], u: float, v: float, z: float = 0.0) -> tuple[float, float] | None:
        """Where the ray through ``(u, v)`` meets the horizontal plane at height ``z`` (None: it never does)."""
        origin, direction = self.ray(pose, u, v)
        if direction[2] > -1e-6 or origin[2] <= z:
            return None
        t = (z - origin[2]) / direction[2]
        return (round(float(origin[0] + t * direction[0]), 6), round(float(origin[1] + t * direction[1]), 6))

    def height_above(self, pose: Sequence[float], base: Sequence[float], v: float) -> float | None:
        """How high above ``base`` (x, y, z) a point on the vertical through it is, when it is seen at row ``v``.

        Returns:
            metres above ``base``, or None when the row never meets that vertical
        """
        _, down, forward = self.axes(pose)
        rel = np.array([float(base[0]), float(base[1]), float(base[2])]) - self.origin(pose)
        a0, a1 = float(rel @ forward), float(forward[2])
        b0, b1 = float(rel @ down), float(down[2])
        dv = (v - self.cy) / self.fx
        denominator = dv * a1 - b1
        if abs(denominator) < 1e-9:
            return None
        return (b0 - dv * a0) / denominator

    def sees(self, pose: Sequence[float], point: Sequence[float], margin: float = 0.0) -> bool:
        """Whether a world point (x, y, z) falls inside the image, in front of the camera and within range."""
        origin = self.origin(pose)
        distance = math.hypot(float(point[0]) - origin[0], float(point[1]) - origin[1])
        if not self.near <= distance <= self.range:
            return False
        u, v, depth = self.project(pose, np.array([point], dtype=float))
        return bool(depth[0] > 0 and margin <= u[0] <= self.width - 1 - margin
                    and margin <= v[0] <= self.height - 1 - margin)
