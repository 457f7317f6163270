"""The object memory: detections over time become ``/perception/objects`` records, and age out.

Each detection is matched to a track of the same label and colour (the
catalogue's only object of that kind, wherever it now is; else the nearest
track within ``gate_m``), or starts a new one named after the catalogue. A
track is forgotten when

* it was not seen for ``forget_after`` seconds of the camera's clock, or
* it should have been seen and was not: its place was in view, within
  reliable range and not covered by another detection, in ``miss_limit``
  frames over at least ``miss_seconds`` (somebody took it away).

The object in the gripper is kept, where the robot is (the gripper knows what
it holds even though the camera cannot see it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .catalogue import Catalogue
from .detect import Detection
from .render import Frame
from .shapes import canonical_color, shape_for


@dataclass
class Track:
    """One object the robot believes is there.

    Args:
        id: the object's id (from the catalogue, or made up)
        label: what it is
        color: its colour as the world names it
        drawn: its colour as the camera sees it
        pose: estimated x, y, theta
        graspable: whether it may be picked up
        confidence: of the latest detection, 0…1
        seen: Unix time of the latest detection
        seen_clock: the same on the camera's clock
        support: height of the surface it stands on
    """

    id: str
    label: str
    color: str
    drawn: str
    pose: tuple[float, float, float]
    graspable: bool
    confidence: float
    seen: float
    seen_clock: float
    support: float = 0.0
    hits: int = 1
    misses: int = 0
    missed_since: float | None = None
    held: bool = False

    def record(self) -> dict[str, Any]:
        """As a ``/perception/objects`` record (DESIGN §4, with confidence, time seen and source)."""
        return {"id": self.id, "label": self.label, "color": self.color, "pose": [round(v, 3) for v in self.pose],
                "graspable": self.graspable, "confidence": round(self.confidence, 3), "seen": self.seen,
                "source": "gripper" if self.held else "camera"}


class ObjectMemory:
    """Tracks of detected objects.

    Args:
        catalogue: the known objects (ids, labels, colours); None: ids are made up
        gate_m: a detection this close to a track of its kind is that track
        forget_after: seconds (camera clock) after which an unseen object is forgotten
        miss_limit: frames in which an object in plain view was not detected before it is forgotten
        miss_seconds: ... spread over at least this many seconds (camera clock)
        min_confidence: weaker detections are ignored
        reliable_range: misses count only this near (m); further, small things are missed anyway
    """

    def __init__(self, catalogue: Catalogue | None = None, gate_m: float = 0.6, forget_after: float = 60.0,
                 miss_limit: int = 3, miss_seconds: float = 1.0, min_confidence: float = 0.25,
                 reliable_range: float = 3.5):
        self.catalogue = catalogue or Catalogue()
        self.gate_m, self.forget_after = float(gate_m), float(forget_after)
        self.miss_limit, self.miss_seconds = int(miss_limit), float(miss_seconds)
        self.min_confidence, self.reliable_range = float(min_confidence), float(reliable_range)
        self.tracks: dict[str, Track] = {}
        self.forgotten: list[tuple[str, str]] = []  # (id, why), newest last, bounded
        self._made_up = 0

    def records(self) -> list[dict[str, Any]]:
        """Every remembered object as a ``/perception/objects`` record, by id."""
        return [self.tracks[key].record() for key in sorted(self.tracks)]

    def update(self, frame: Frame, detections: Sequence[Detection], holding: str | None = None) -> None:
        """Take in one frame's detections (with world poses).

        Args:
            frame: the frame they came from (its pose, camera and clocks)
            detections: what the detector found in it
            holding: the id of the object in the gripper, if any
        """
        matched: set[str] = set()
        for detection in sorted(detections, key=lambda d: -d.confidence):
            if detection.pose is None or detection.confidence < self.min_confidence:
                continue
            track = self._associate(detection, matched)
            if track is None:
                track = self._start(detection, frame)
            else:
                self._refresh(track, detection, frame)
            matched.add(track.id)
        self._hold(holding, frame)
        self._misses(frame, detections, matched)
        self._forget(frame.stamp)

    # -- matching ---------------------------------------------------------------------------

    def _same_kind(self, track: Track, detection: Detection) -> bool:
        return track.label == detection.label and track.drawn == canonical_color(detection.color)

    def _associate(self, detection: Detection, matched: set[str]) -> Track | None:
        kind = [e for e in self.catalogue.entries if e.label == detection.label and e.drawn == detection.color]
        if len(kind) == 1 and kind[0].id in self.tracks and kind[0].id not in matched \
                and not self.tracks[kind[0].id].held:
            return self.tracks[kind[0].id]  # the only one of its kind: wherever it is now
        assert detection.pose is not None
        near = [(math.dist(t.pose[:2], detection.pose[:2]), t.id) for t in self.tracks.values()
                if t.id not in matched and not t.held and self._same_kind(t, detection)]
        near = [n for n in near if n[0] <= self.gate_m]
        return self.tracks[min(near)[1]] if near else None

    def _start(self, detection: Detection, frame: Frame) -> Track:
        assert detection.pose is not None
        entry = self.catalogue.identify(detection.label, detection.color, detection.pose, taken=self.tracks)
        if entry is not None and entry.id not in self.tracks:
            object_id, colour, graspable = entry.id, entry.color, entry.graspable
        else:
            self._made_up += 1
            object_id = f"{detection.color}_{detection.label}_{self._made_up}"
            shape = shape_for(detection.label)
            colour, graspable = detection.color, shape.height < 0.4 and not shape.support
        track = Track(object_id, detection.label, colour, canonical_color(detection.color), detection.pose,
                      graspable, detection.confidence, frame.wall, frame.stamp, detection.support)
        self.tracks[object_id] = track
        return track

    def _refresh(self, track: Track, detection: Detection, frame: Frame) -> None:
        assert detection.pose is not None
        old, new = track.pose, detection.pose
        if math.dist(old[:2], new[:2]) <= self.gate_m:
            # Estimates from different views scatter a little: average them, the newest weighing more.
            new = (old[0] + 0.6 * (new[0] - old[0]), old[1] + 0.6 * (new[1] - old[1]), old[2])
        track.pose = (round(new[0], 3), round(new[1], 3), round(new[2], 3))
        track.confidence, track.seen, track.seen_clock = detection.confidence, frame.wall, frame.stamp
        track.support, track.hits, track.misses, track.missed_since = detection.support, track.hits + 1, 0, None

    # -- the gripper -------------------------------------------------------------------------

    def _hold(self, holding: str | None, frame: Frame) -> None:
        for track in self.tracks.values():
            track.held = track.id == holding
        if holding is None:
            return
        track = self.tracks.get(holding)
        if track is None:
            entry = self.catalogue.get(holding)
            label, colour, drawn = (entry.label, entry.color, entry.drawn) if entry else (holding, "", "")
            track = Track(holding, label, colour, drawn, frame.pose, True, 1.0, frame.wall, frame.stamp, held=True)
            self.tracks[holding] = track
        track.pose = tuple(round(v, 3) for v in frame.pose)  # type: ignore[assignment]
        track.seen, track.seen_clock, track.misses, track.missed_since = frame.wall, frame.stamp, 0, None

    # -- forgetting --------------------------------------------------------------------------

    def _misses(self, frame: Frame, detections: Sequence[Detection], matched: set[str]) -> None:
        camera, pose = frame.camera, frame.pose
        origin = camera.origin(pose)
        for track in list(self.tracks.values()):
            if track.id in matched or track.held:
                continue
            shape = shape_for(track.label)
            middle = (track.pose[0], track.pose[1], track.support + shape.height / 2)
            if math.hypot(middle[0] - origin[0], middle[1] - origin[1]) > self.reliable_range:
                continue
            if not camera.sees(pose, middle, margin=3) or \
                    not camera.sees(pose, (track.pose[0], track.pose[1], track.support), margin=3):
                continue
            u, v, _ = camera.project(pose, [middle])  # type: ignore[arg-type]
            if any(d.bbox[0] - 2 <= u[0] <= d.bbox[2] + 2 and d.bbox[1] - 2 <= v[0] <= d.bbox[3] + 2
                   for d in detections):
                continue  # something else stands in front of it
            track.misses += 1
            track.missed_since = frame.stamp if track.missed_since is None else track.missed_since
            if track.misses >= self.miss_limit and frame.stamp - track.missed_since >= self.miss_seconds:
                self._drop(track.id, "not there any more")

    def _forget(self, clock: float) -> None:
        for track in list(self.tracks.values()):
            if not track.held and clock - track.seen_clock > self.forget_after:
                self._drop(track.id, f"not seen for {clock - track.seen_clock:.0f} s")

    def _drop(self, object_id: str, why: str) -> None:
        self.tracks.pop(object_id, None)
        self.forgotten = [*self.forgotten[-49:], (object_id, why)]

    def clear(self) -> None:
        """Forget everything."""
        self.tracks.clear()
