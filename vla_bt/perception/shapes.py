"""What things look like: a shape for each object label and an RGB colour for each colour name.

The simulator's camera draws objects with these; the embedded detector
compares what it segments with them. Units are metres; colours are linear
RGB in 0…1. A label that is not listed gets ``DEFAULT_SHAPE``; plurals and
case do not matter (``shape_for("Cups")`` is the cup).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Shape:
    """The solid an object label stands for.

    Args:
        kind: ``cylinder`` (upright), ``box`` or ``sphere``
        size: extent along the object's own x (length), y (width) and z (height), in metres
        support: other objects at the same spot stand on top of it (a table)
        material: the colour name it has when the world gives it none (furniture: ``brown``)
    """

    kind: str
    size: tuple[float, float, float]
    support: bool = False
    material: str = "grey"

    @property
    def height(self) -> float:
        return self.size[2]

    @property
    def footprint(self) -> tuple[float, float]:
        """Smallest and largest width seen from the side: a box turned any way shows something in between."""
        if self.kind == "box":
            return (min(self.size[0], self.size[1]), (self.size[0] ** 2 + self.size[1] ** 2) ** 0.5)
        return (self.size[0], self.size[0])

    @property
    def radius(self) -> float:
        """Half its depth: how far its centre lies behind the front edge the camera sees."""
        return min(self.size[0], self.size[1]) / 2


SHAPES: dict[str, Shape] = {
    "cup": Shape("cylinder", (0.08, 0.08, 0.10)),
    "mug": Shape("cylinder", (0.10, 0.10, 0.11)),
    "glass": Shape("cylinder", (0.07, 0.07, 0.13)),
    "can": Shape("cylinder", (0.066, 0.066, 0.12)),
    "bottle": Shape("cylinder", (0.075, 0.075, 0.27)),
    "vase": Shape("cylinder", (0.12, 0.12, 0.30)),
    "bowl": Shape("cylinder", (0.17, 0.17, 0.07)),
    "plate": Shape("cylinder", (0.25, 0.25, 0.025)),
    "bucket": Shape("cylinder", (0.28, 0.28, 0.30)),
    "ball": Shape("sphere", (0.14, 0.14, 0.14)),
    "apple": Shape("sphere", (0.08, 0.08, 0.08)),
    "orange": Shape("sphere", (0.08, 0.08, 0.08)),
    "book": Shape("box", (0.24, 0.17, 0.04)),
    "box": Shape("box", (0.30, 0.30, 0.25)),
    "brick": Shape("box", (0.22, 0.10, 0.07)),
    "phone": Shape("box", (0.15, 0.075, 0.02)),
    "remote": Shape("box", (0.18, 0.05, 0.025)),
    "knife": Shape("box", (0.24, 0.03, 0.02)),
    "wrench": Shape("box", (0.25, 0.05, 0.02)),
    "hammer": Shape("box", (0.30, 0.10, 0.04)),
    "toolbox": Shape("box", (0.45, 0.22, 0.22)),
    "bag": Shape("box", (0.35, 0.15, 0.30)),
    "anvil": Shape("box", (0.40, 0.18, 0.30)),
    "table": Shape("box", (1.00, 0.60, 0.74), support=True, material="brown"),
    "desk": Shape("box", (1.20, 0.60, 0.74), support=True, material="brown"),
    "bench": Shape("box", (1.20, 0.40, 0.45), support=True, material="brown"),
    "counter": Shape("box", (1.50, 0.60, 0.90), support=True, material="grey"),
    "shelf": Shape("box", (0.35, 1.00, 1.60), material="brown"),
    "chair": Shape("box", (0.45, 0.45, 0.90), material="brown"),
    "cabinet": Shape("box", (0.50, 0.80, 1.00), support=True, material="brown"),
    "bin": Shape("cylinder", (0.30, 0.30, 0.45)),
}
DEFAULT_SHAPE = Shape("box", (0.12, 0.12, 0.12))

COLORS: dict[str, tuple[float, float, float]] = {
    "red": (0.80, 0.08, 0.08),
    "orange": (0.95, 0.50, 0.06),
    "yellow": (0.92, 0.80, 0.08),
    "green": (0.10, 0.62, 0.18),
    "cyan": (0.08, 0.72, 0.80),
    "blue": (0.10, 0.26, 0.86),
    "purple": (0.50, 0.14, 0.72),
    "pink": (0.95, 0.38, 0.68),
    "brown": (0.55, 0.33, 0.15),
    "black": (0.07, 0.07, 0.07),
    "grey": (0.46, 0.46, 0.47),
    "gray": (0.46, 0.46, 0.47),
    "silver": (0.70, 0.70, 0.72),
    "white": (0.93, 0.93, 0.93),
}
"""Colour names the camera draws and the embedded detector names (``gray`` is ``grey``)."""

SYNONYMS = {"gray": "grey", "violet": "purple", "magenta": "pink", "teal": "cyan"}


def canonical_color(name: str) -> str:
    """``"Gray"`` → ``"grey"``: the spelling the detector reports."""
    lowered = name.strip().lower()
    return SYNONYMS.get(lowered, lowered)


def _singular(label: str) -> str:
    label = label.strip().lower()
    for ending, replacement in (("ves", "f"), ("ies", "y"), ("ches", "ch"), ("shes", "sh"), ("xes", "x")):
        if label.endswith(ending) and label[: -len(ending)] + replacement in SHAPES:
            return label[: -len(ending)] + replacement
    return label[:-1] if label.endswith("s") and label[:-1] in SHAPES else label


def shape_for(label: str) -> Shape:
    """The shape of an object label (``DEFAULT_SHAPE`` for labels not listed)."""
    return SHAPES.get(_singular(label), DEFAULT_SHAPE)


def color_of(name: str, label: str = "") -> str:
    """The colour name an object is drawn in: its own, else its label's material."""
    name = canonical_color(name or "")
    return name if name in COLORS else shape_for(label).material


def rgb_of(name: str, label: str = "") -> tuple[float, float, float]:
    """RGB of an object with colour ``name`` and ``label`` (unknown colour names are drawn neutral grey)."""
    return COLORS.get(color_of(name, label), COLORS["grey"])
