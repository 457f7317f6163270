"""Images in and out without an imaging library: PNG (and PPM) with zlib, downscaling, drawing detections.

* ``encode_png`` / ``decode_png``: 8-bit RGB (and grey, RGBA on reading),
  non-interlaced — what cameras, the tests' photographs and the model's
  ``input_image`` need. ``load_image`` reads PNG and PPM; JPEG and other
  formats are read through Pillow when it is installed.
* ``encode_within(rgb, max_bytes)``: the frame as PNG, halved in size until
  it fits the limit (the model sees a smaller image, never a truncated one).
* ``annotate``: detections drawn on a frame (boxes in the detection's colour,
  for the viewer and for docs).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class ImageError(ValueError):
    """An image that cannot be read or encoded as asked; the message says why."""


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def encode_png(image: np.ndarray, level: int = 6) -> bytes:
    """PNG bytes of an ``(h, w, 3)`` RGB or ``(h, w)`` grey uint8 image.

    Raises:
        ImageError: not a 2-D grey or 3-channel image
    """
    pixels = np.ascontiguousarray(image)
    if pixels.dtype != np.uint8:
        pixels = np.clip(pixels, 0, 255).astype(np.uint8)
    if pixels.ndim == 2:
        colour_type = 0
    elif pixels.ndim == 3 and pixels.shape[2] == 3:
        colour_type = 2
    else:
        raise ImageError(f"expected an (h, w) or (h, w, 3) image, got shape {pixels.shape}")
    height, width = pixels.shape[:2]
    rows = pixels.reshape(height, -1)
    # Filter type 1 (Sub) for every row: neighbouring pixels differ little, so it compresses better.
    channels = 1 if colour_type == 0 else 3
    sub = rows.astype(np.int16)
    sub[:, channels:] -= rows[:, :-channels].astype(np.int16)
    raw = np.concatenate([np.ones((height, 1), np.uint8), (sub % 256).astype(np.uint8)], axis=1).tobytes()
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw, level)) + _chunk(b"IEND", b"")


def _paeth(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    p = a.astype(np.int16) + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c)).astype(np.uint8)


def decode_png(data: bytes) -> np.ndarray:
    """An ``(h, w, 3)`` uint8 RGB image from PNG bytes (8-bit grey, RGB or RGBA; alpha is dropped).

    Raises:
        ImageError: not a PNG, or a kind this reader does not handle (palette, 16-bit, interlaced)
    """
    if not data.startswith(PNG_SIGNATURE):
        raise ImageError("not a PNG file")
    position, idat, header = len(PNG_SIGNATURE), [], None
    while position + 8 <= len(data):
        (length,) = struct.unpack(">I", data[position:position + 4])
        kind, body = data[position + 4:position + 8], data[position + 8:position + 8 + length]
        position += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    if header is None:
        raise ImageError("PNG without a header")
    width, height, depth, colour_type, _, _, interlace = header
    channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(colour_type)
    if depth != 8 or channels is None or interlace:
        raise ImageError(f"unsupported PNG (bit depth {depth}, colour type {colour_type}, interlace {interlace}); "
                         "install Pillow to read it")
    try:
        raw = np.frombuffer(zlib.decompress(b"".join(idat)), np.uint8)
    except zlib.error as exc:
        raise ImageError(f"corrupt PNG data: {exc}") from None
    stride = width * channels
    if raw.size != height * (stride + 1):
        raise ImageError("PNG data does not match its size")
    rows = raw.reshape(height, stride + 1)
    out = np.zeros((height, stride), np.uint8)
    previous = np.zeros(stride, np.uint8)
    for y in range(height):
        kind, line = rows[y, 0], rows[y, 1:].astype(np.uint8)
        if kind == 0:
            current = line
        elif kind == 2:
            current = (line + previous).astype(np.uint8)
        elif kind in (1, 3, 4):
            current = np.zeros(stride, np.uint8)
            # Sub, Average and Paeth depend on the pixel to the left: one pixel at a time.
            for x in range(0, stride, channels):
                left = current[x - channels:x] if x else np.zeros(channels, np.uint8)
                up = previous[x:x + channels]
                if kind == 1:
                    predictor = left
                elif kind == 3:
                    predictor = ((left.astype(np.int16) + up) // 2).astype(np.uint8)
                else:
                    upper_left = previous[x - channels:x] if x else np.zeros(channels, np.uint8)
                    predictor = _paeth(left, up, upper_left)
                current[x:x + channels] = line[x:x + channels] + predictor
        else:
            raise ImageError(f"PNG row {y} has unknown filter type {kind}")
        out[y], previous = current, current
    pixels = out.reshape(height, width, channels)
    if channels in (1, 2):
        return np.repeat(pixels[:, :, :1], 3, axis=2)
    return np.ascontiguousarray(pixels[:, :, :3])


def decode_ppm(data: bytes) -> np.ndarray:
    """An RGB image from binary PPM (P6, 8-bit) bytes.

    Raises:
        ImageError: not a binary 8-bit PPM
    """
    fields, position = [], 2
    if not data.startswith(b"P6"):
        raise ImageError("not a binary PPM (P6) file")
    while len(fields) < 3:
        while data[position:position + 1].isspace():
            position += 1
        if data[position:position + 1] == b"#":
            position = data.index(b"\n", position) + 1
            continue
        end = position
        while not data[end:end + 1].isspace():
            end += 1
        fields.append(int(data[position:end]))
        position = end
    width, height, maximum = fields
    if maximum != 255:
        raise ImageError("only 8-bit PPM is supported")
    body = np.frombuffer(data[position + 1:position + 1 + width * height * 3], np.uint8)
    if body.size != width * height * 3:
        raise ImageError("PPM data does not match its size")
    return body.reshape(height, width, 3).copy()


def load_image(path: str | Path) -> np.ndarray:
    """An ``(h, w, 3)`` uint8 RGB image from a file: PNG and PPM here, anything else through Pillow if installed.

    Raises:
        ImageError: unreadable, or a format that needs Pillow when it is not installed
    """
    data = Path(path).read_bytes()
    if data.startswith(PNG_SIGNATURE):
        try:
            return decode_png(data)
        except ImageError:
            pass  # a kind of PNG this reader does not handle: try Pillow below
    elif data.startswith(b"P6"):
        return decode_ppm(data)
    try:
        from PIL import Image  # type: ignore[import-not-found]
    except ImportError:
        raise ImageError(f"{path}: only PNG and PPM can be read without Pillow (pip install pillow)") from None
    with Image.open(path) as opened:
        return np.asarray(opened.convert("RGB"), dtype=np.uint8).copy()


def from_buffer(width: int, height: int, encoding: str, data: bytes, step: int = 0) -> np.ndarray:
    """An ``(h, w, 3)`` RGB image from raw pixel rows, as a ``sensor_msgs/Image`` carries them.

    Args:
        width: columns
        height: rows
        encoding: ``rgb8``, ``bgr8``, ``rgba8``, ``bgra8`` or ``mono8``
        data: the pixel bytes
        step: bytes per row (0: packed)

    Raises:
        ImageError: another encoding, or data shorter than the size says
    """
    channels = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}.get(encoding)
    if channels is None:
        raise ImageError(f"unsupported image encoding '{encoding}' (rgb8, bgr8, rgba8, bgra8 or mono8)")
    step = step or width * channels
    if len(data) < step * height:
        raise ImageError(f"image data has {len(data)} bytes, {step * height} expected")
    rows = np.frombuffer(bytes(data), np.uint8)[:step * height].reshape(height, step)[:, :width * channels]
    pixels = rows.reshape(height, width, channels)
    if channels == 1:
        return np.repeat(pixels, 3, axis=2)
    rgb = pixels[:, :, :3] if encoding.startswith("rgb") else pixels[:, :, 2::-1]
    return np.ascontiguousarray(rgb)


def downscale(image: np.ndarray, factor: int = 2) -> np.ndarray:
    """The image shrunk by an integer factor, averaging each block of pixels."""
    height, width = (image.shape[0] // factor) * factor, (image.shape[1] // factor) * factor
    blocks = image[:height, :width].reshape(height // factor, factor, width // factor, factor, -1).astype(np.float32)
    shrunk = (blocks.mean(axis=(1, 3)) + 0.5).astype(np.uint8)
    return shrunk.reshape(height // factor, width // factor, *image.shape[2:])


def encode_within(image: np.ndarray, max_bytes: int, min_side: int = 16) -> bytes:
    """PNG bytes of the image, halved in size as often as needed to fit ``max_bytes``.

    Raises:
        ImageError: even the smallest version (``min_side`` pixels on its short side) is larger
    """
    current = image
    while True:
        data = encode_png(current, level=9)
        if len(data) <= max_bytes:
            return data
        if min(current.shape[:2]) // 2 < min_side:
            raise ImageError(f"a {image.shape[1]}×{image.shape[0]} frame does not fit in {max_bytes} bytes "
                             f"(smallest PNG: {len(data)} bytes)")
        current = downscale(current)


PALETTE = {"red": (230, 30, 30), "green": (30, 200, 60), "blue": (40, 90, 255), "yellow": (250, 220, 20)}


def annotate(image: np.ndarray, detections: Iterable[Any], thickness: int = 1) -> np.ndarray:
    """A copy of the image with each detection's box drawn (white boxes for colours without a palette entry).

    Args:
        image: ``(h, w, 3)`` uint8
        detections: objects with ``bbox`` (u0, v0, u1, v1; u1 and v1 exclusive) and ``color``
        thickness: line width in pixels
    """
    out = np.array(image, dtype=np.uint8, copy=True)
    height, width = out.shape[:2]
    for detection in detections:
        u0, v0, u1, v1 = (round(float(v)) for v in detection.bbox)
        u0, v0 = max(0, min(width - 1, u0 - 1)), max(0, min(height - 1, v0 - 1))
        u1, v1 = max(0, min(width - 1, u1)), max(0, min(height - 1, v1))
        colour = PALETTE.get(str(getattr(detection, "color", "")), (255, 255, 255))
        for k in range(thickness):
            out[min(v0 + k, height - 1), u0:u1 + 1] = colour
            out[max(v1 - k, 0), u0:u1 + 1] = colour
            out[v0:v1 + 1, min(u0 + k, width - 1)] = colour
            out[v0:v1 + 1, max(u1 - k, 0)] = colour
    return out


def write_png(path: str | Path, image: np.ndarray) -> None:
    """Save an RGB or grey uint8 image as PNG."""
    Path(path).write_bytes(encode_png(image))


__all__: Sequence[str] = ["ImageError", "annotate", "decode_png", "decode_ppm", "downscale", "encode_png",
                          "encode_within", "from_buffer", "load_image", "write_png"]
