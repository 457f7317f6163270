"""The objects the robot knows of: labels, colours and shapes from the world file, without their positions.

The detector names what it segments after these entries (known-object
recognition), and the object memory gives a detection the id of the entry it
matches: unique label and colour → that object's id. Where several objects
share label and colour, the one whose last known position is nearest is
taken (the world file's position is the prior, like a map), and an object
that is not in the catalogue at all gets a made-up id (``green_mug_2``).

The catalogue also says whether a reference that nobody has seen yet is
plausible ("the green mug": a green mug is known to exist) — what lets a plan
accept it and search for it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .shapes import COLORS, Shape, canonical_color, color_of, shape_for

IT_WORDS = {"it", "that", "this", "one", "them"}


@dataclass(frozen=True)
class Entry:
    """One known object.

    Args:
        id: its id in the world
        label: what it is ("mug")
        color: its colour as the world names it ("" for none)
        drawn: the colour name it shows in images (its material when the world names none)
        shape: its solid
        graspable: whether it may be picked up
        risk: ``low`` or ``high``
        prior: where the world file puts it (x, y, theta)
    """

    id: str
    label: str
    color: str
    drawn: str
    shape: Shape
    graspable: bool = True
    risk: str = "low"
    prior: tuple[float, float, float] | None = None


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9_]+", text.lower())


def _singular(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


class Catalogue:
    """Known objects, by label and colour.

    Args:
        entries: the known objects

    Example:
        >>> catalogue = Catalogue.from_world(load_world("config/world.yaml"))
        >>> [e.id for e in catalogue.matching("green", "mug")]
        ['mug_green']
    """

    def __init__(self, entries: Iterable[Entry] = ()):
        self.entries = list(entries)
        self._by_id = {e.id: e for e in self.entries}

    @classmethod
    def from_world(cls, world: Any) -> Catalogue:
        """From a loaded world file (``vla_bt.robot.world.World``)."""
        return cls(Entry(o.id, o.label, o.color, color_of(o.color, o.label), shape_for(o.label), o.graspable, o.risk,
                         tuple(o.pose)) for o in world.objects)

    @classmethod
    def from_records(cls, records: Iterable[Mapping[str, Any]]) -> Catalogue:
        """From ``{id, label, color[, graspable, risk, pose]}`` mappings."""
        return cls(Entry(str(r["id"]), str(r["label"]), str(r.get("color") or ""),
                         color_of(str(r.get("color") or ""), str(r["label"])), shape_for(str(r["label"])),
                         bool(r.get("graspable", True)), str(r.get("risk", "low")),
                         tuple(float(v) for v in r["pose"][:3]) if r.get("pose") else None)  # type: ignore[arg-type]
                   for r in records)

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, object_id: str) -> Entry | None:
        return self._by_id.get(object_id)

    def kinds(self) -> list[tuple[str, str, Shape]]:
        """Distinct (label, drawn colour, shape) the detector should look for."""
        seen: dict[tuple[str, str], Shape] = {}
        for entry in self.entries:
            seen.setdefault((entry.label, entry.drawn), entry.shape)
        return [(label, colour, shape) for (label, colour), shape in seen.items()]

    def labels(self) -> set[str]:
        return {e.label.lower() for e in self.entries}

    def colors(self) -> set[str]:
        return {canonical_color(e.color) for e in self.entries if e.color}

    def matching(self, color: str | None, label: str | None) -> list[Entry]:
        """Entries with this colour (as named by the world, or as drawn) and label; None matches any."""
        wanted = canonical_color(color) if color else None
        return [e for e in self.entries
                if (label is None or e.label.lower() == label.lower())
                and (wanted is None or canonical_color(e.color) == wanted or e.drawn == wanted)]

    def identify(self, label: str, drawn: str, near: Sequence[float] | None, taken: Iterable[str] = ()) -> Entry | None:
        """The entry a detection of ``label`` in colour ``drawn`` is: the only one, else the nearest untaken prior.

        Args:
            label: the detected label
            drawn: the detected colour name
            near: the detection's estimated x, y
            taken: ids already given to other tracks
        """
        candidates = [e for e in self.entries if e.label == label and e.drawn == canonical_color(drawn)]
        if len(candidates) == 1:
            return candidates[0]
        free = [e for e in candidates if e.id not in set(taken)]
        if not free:
            return None
        if near is None:
            return free[0]
        return min(free, key=lambda e: math.dist(e.prior[:2], near[:2]) if e.prior else math.inf)

    def plausible(self, reference: str) -> list[Entry]:
        """Known objects a reference could mean by its words ("the green mug", "mugs", "mug_green"); [] if none.

        A reference counts when its words name a known label (with a known
        colour of that label, if a colour is said) or a known id. A colour on
        its own, a pronoun or unknown words do not.
        """
        text = reference.strip()
        exact = self.get(text) or self.get(text.replace(" ", "_"))
        if exact is not None:
            return [exact]
        words = [_singular(w) for w in _words(text)]
        labels = [w for w in words if w in self.labels()]
        if not labels:
            return []
        colours = [canonical_color(w) for w in _words(text)
                   if canonical_color(w) in self.colors() or canonical_color(w) in COLORS]
        return [e for e in self.entries if e.label.lower() == labels[0]
                and (not colours or canonical_color(e.color) == colours[0])]
