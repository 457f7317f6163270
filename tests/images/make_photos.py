"""Makes the test photographs: plain coloured objects on a table, drawn with numpy like a small camera would see them.

Each photograph has shading across curved surfaces, soft shadows, a lighting
gradient, lens vignetting, blur, a colour cast and sensor noise; one is dim
and grainy. ``expected.json`` lists what is in each (label, colour, pixel box).

    .venv/bin/python tests/images/make_photos.py     # rewrites the PNGs and expected.json here
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from vla_bt.perception.imageio import encode_png  # noqa: E402

SCALE = 2  # drawn at twice the size, then averaged down: smooth edges
RGB = {"red": (0.78, 0.10, 0.09), "blue": (0.12, 0.28, 0.80), "green": (0.14, 0.58, 0.20),
       "yellow": (0.93, 0.78, 0.12), "orange": (0.95, 0.48, 0.08), "pink": (0.92, 0.40, 0.66)}


class Canvas:
    """An image being drawn, with a mask of every object drawn on it."""

    def __init__(self, width: int, height: int, seed: int):
        self.w, self.h = width * SCALE, height * SCALE
        self.rng = np.random.default_rng(seed)
        self.image = np.zeros((self.h, self.w, 3))
        self.masks: list[tuple[str, str, np.ndarray]] = []
        y, x = np.mgrid[0:self.h, 0:self.w]
        self.x, self.y = x / SCALE, y / SCALE  # in output pixels

    def background(self, horizon: float, wall: tuple[float, float, float], cloth: tuple[float, float, float]) -> None:
        wall_shade = 0.92 + 0.08 * (self.y / horizon)
        cloth_shade = 0.85 + 0.15 * ((self.y - horizon) / (self.h / SCALE - horizon))
        weave = 0.015 * np.sin(self.x * 2.1) * np.sin(self.y * 1.7)
        top = self.y < horizon
        for c in range(3):
            self.image[..., c] = np.where(top, wall[c] * wall_shade, cloth[c] * cloth_shade + weave)

    def shadow(self, cx: float, cy: float, rx: float, ry: float, strength: float = 0.35) -> None:
        d = ((self.x - cx) / rx) ** 2 + ((self.y - cy) / ry) ** 2
        self.image *= (1 - strength * np.clip(1.2 - d, 0, 1))[..., None]

    def paint(self, mask: np.ndarray, colour: tuple[float, float, float], shade: np.ndarray | float) -> None:
        shaded = np.asarray(colour)[None, None, :] * np.broadcast_to(np.asarray(shade, float), mask.shape)[..., None]
        self.image[mask] = shaded[mask]

    def record(self, label: str, colour: str, mask: np.ndarray) -> None:
        for _, _, other in self.masks:
            other &= ~mask  # later objects stand in front
        self.masks.append((label, colour, mask.copy()))

    def cylinder(self, label: str, colour: str, cx: float, bottom: float, width: float, height: float,
                 hollow: bool = True) -> None:
        rx, ry = width / 2, width / 7
        self.shadow(cx + rx * 0.6, bottom, rx * 1.5, ry * 1.6)
        x, y = self.x, self.y
        side = (np.abs(x - cx) <= rx) & (y >= bottom - height) & (y <= bottom)
        side |= ((x - cx) / rx) ** 2 + ((y - bottom) / ry) ** 2 <= 1
        top = ((x - cx) / rx) ** 2 + ((y - (bottom - height)) / ry) ** 2 <= 1
        angle = np.clip((x - cx) / rx, -1, 1)
        rgb = RGB[colour]
        self.paint(side, rgb, 0.55 + 0.45 * np.cos(np.arcsin(angle) + 0.6))
        self.paint(top, rgb, 0.45 if hollow else 0.95)
        if hollow:  # the rim of an open cup
            inner = ((x - cx) / (rx * 0.85)) ** 2 + ((y - (bottom - height)) / (ry * 0.8)) ** 2 <= 1
            self.paint(top & ~inner, rgb, 0.9)
        self.record(label, colour, side | top)

    def ball(self, label: str, colour: str, cx: float, bottom: float, radius: float) -> None:
        cy = bottom - radius
        self.shadow(cx + radius * 0.5, bottom, radius * 1.3, radius * 0.35)
        dx, dy = (self.x - cx) / radius, (self.y - cy) / radius
        inside = dx ** 2 + dy ** 2 <= 1
        nz = np.sqrt(np.clip(1 - dx ** 2 - dy ** 2, 0, 1))
        light = np.clip(-0.5 * dx - 0.5 * dy + 0.7 * nz, 0, 1)
        self.paint(inside, RGB[colour], 0.4 + 0.6 * light)
        highlight = inside & ((dx + 0.35) ** 2 + (dy + 0.4) ** 2 < 0.03)
        self.image[highlight] = 0.6 * self.image[highlight] + 0.4  # a specular glint, nearly white
        self.record(label, colour, inside)

    def box(self, label: str, colour: str, left: float, bottom: float, width: float, height: float,
            depth: float) -> None:
        """Front face, top face and right side face of a box seen from a little above and to the left."""
        x, y = self.x, self.y
        dx, dy = depth * 0.55, depth * 0.45
        self.shadow(left + width / 2 + dx, bottom - dy / 2, width * 0.7, dy * 1.2)
        front = (x >= left) & (x <= left + width) & (y >= bottom - height) & (y <= bottom)
        # top: parallelogram above the front face, slanting right
        t = (bottom - height - y) / dy
        top = (t >= 0) & (t <= 1) & (x >= left + t * dx) & (x <= left + width + t * dx)
        s = (x - left - width) / dx
        side = (s >= 0) & (s <= 1) & (y <= bottom - s * dy) & (y >= bottom - height - s * dy)
        rgb = RGB[colour]
        self.paint(front, rgb, 0.8)
        self.paint(top, rgb, 1.0)
        self.paint(side, rgb, 0.55)
        self.record(label, colour, front | top | side)

    def bowl(self, label: str, colour: str, cx: float, bottom: float, width: float, height: float) -> None:
        x, y = self.x, self.y
        rx, ry = width / 2, width / 6
        self.shadow(cx + rx * 0.4, bottom, rx * 1.2, ry)
        t = np.clip((bottom - y) / height, 0, 1)
        half = rx * (0.65 + 0.35 * t)
        side = (y <= bottom) & (y >= bottom - height) & (np.abs(x - cx) <= half)
        rim = ((x - cx) / rx) ** 2 + ((y - (bottom - height)) / ry) ** 2 <= 1
        inner = ((x - cx) / (rx * 0.88)) ** 2 + ((y - (bottom - height)) / (ry * 0.8)) ** 2 <= 1
        rgb = RGB[colour]
        self.paint(side, rgb, 0.55 + 0.35 * np.cos(np.arcsin(np.clip((x - cx) / rx, -1, 1)) + 0.5))
        self.paint(rim, rgb, 0.95)
        self.paint(inner, rgb, 0.6)
        self.record(label, colour, side | rim)

    def finish(self, brightness: float, cast: tuple[float, float, float], noise: float, blur: int) -> np.ndarray:
        """Lighting, vignetting, colour cast, blur, noise; averaged down to the output size; uint8."""
        cx, cy = self.w / 2, self.h / 2
        r = np.hypot((np.mgrid[0:self.h, 0:self.w][1] - cx) / cx, (np.mgrid[0:self.h, 0:self.w][0] - cy) / cy)
        gradient = 0.85 + 0.3 * (1 - self.x / (self.w / SCALE))  # brighter towards the window on the left
        image = self.image * (brightness * gradient * (1 - 0.25 * r ** 2))[..., None] * np.asarray(cast)
        for _ in range(blur):
            image = (image + np.roll(image, 1, 0) + np.roll(image, -1, 0) + np.roll(image, 1, 1)
                     + np.roll(image, -1, 1)) / 5
        image = image.reshape(self.h // SCALE, SCALE, self.w // SCALE, SCALE, 3).mean(axis=(1, 3))
        image += self.rng.normal(0, noise, image.shape)
        return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)

    def boxes(self) -> list[dict[str, object]]:
        out = []
        for label, colour, mask in self.masks:
            small = mask.reshape(self.h // SCALE, SCALE, self.w // SCALE, SCALE).mean(axis=(1, 3)) >= 0.5
            rows, cols = np.nonzero(small)
            out.append({"label": label, "color": colour,
                        "bbox": [int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1]})
        return out


def kitchen_table() -> Canvas:
    c = Canvas(240, 180, seed=1)
    c.background(70, (0.86, 0.86, 0.84), (0.92, 0.91, 0.89))
    c.cylinder("cup", "red", 48, 128, 26, 36)
    c.box("box", "blue", 92, 140, 46, 40, 22)
    c.ball("ball", "green", 175, 120, 17)
    c.box("book", "yellow", 150, 168, 64, 8, 26)
    return c


def same_colour_shapes() -> Canvas:
    c = Canvas(240, 180, seed=2)
    c.background(60, (0.80, 0.82, 0.86), (0.90, 0.90, 0.90))
    c.ball("ball", "red", 60, 130, 20)
    c.cylinder("cup", "red", 130, 132, 28, 40)
    c.box("box", "yellow", 170, 150, 44, 38, 20)
    c.bowl("bowl", "pink", 62, 172, 44, 20)
    return c


def dim_evening() -> Canvas:
    c = Canvas(240, 180, seed=3)
    c.background(75, (0.80, 0.78, 0.74), (0.88, 0.86, 0.82))
    c.cylinder("bottle", "green", 60, 150, 20, 72, hollow=False)
    c.cylinder("cup", "blue", 120, 140, 26, 36)
    c.ball("ball", "orange", 185, 150, 19)
    return c


PHOTOS = {
    "kitchen_table.png": (kitchen_table, dict(brightness=1.0, cast=(1.03, 1.0, 0.96), noise=0.015, blur=1)),
    "same_colour_shapes.png": (same_colour_shapes, dict(brightness=0.95, cast=(0.98, 1.0, 1.04), noise=0.02, blur=1)),
    "dim_evening.png": (dim_evening, dict(brightness=0.6, cast=(1.06, 1.0, 0.9), noise=0.03, blur=2)),
}
KNOWN = [("cup", "red"), ("ball", "red"), ("box", "blue"), ("cup", "blue"), ("ball", "green"), ("bottle", "green"),
         ("book", "yellow"), ("box", "yellow"), ("bowl", "pink"), ("ball", "orange")]
"""The objects the robot knows (its catalogue), of which each photograph shows a few."""


def main() -> None:
    expected: dict[str, object] = {"known": [{"label": label, "color": colour} for label, colour in KNOWN]}
    for name, (draw, finish) in PHOTOS.items():
        canvas = draw()
        image = canvas.finish(**finish)  # type: ignore[arg-type]
        (HERE / name).write_bytes(encode_png(image, level=9))
        expected[name] = canvas.boxes()
    (HERE / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
    print(f"wrote {len(PHOTOS)} photographs to {HERE}")


if __name__ == "__main__":
    main()
