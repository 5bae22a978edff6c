"""Turning untrusted request bytes into an RGB image and person boxes, or a clear client error.

Every check that can be done before decoding pixels is done first: the format comes from the
file's own header (never from a client's content type or file name) and the pixel count is
checked against the limit before a single pixel is decoded, so a decompression bomb costs
nothing. EXIF orientation is applied, so keypoints come back in the upright image's pixels; an
orientation that cannot be read counts as none, in the server and in the image store alike
(`posewheel.imagestore.exif_orientation`). Whatever Pillow raises while decoding untrusted bytes
(struct.error, TypeError, IndexError, ... from broken metadata) is the client's 400, never a 500.
Multi-frame files (MPO from phone cameras, animated PNG/WebP) are answered from their first frame.
HEIC, the photographs iPhones take, is made an upright JPEG before it gets here, in a child process
(`serving.heif`): its C decoder has crashed on corrupt files.
"""

from __future__ import annotations

import io
import json
import math
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from posewheel.decoding import Box
from posewheel.imagestore import upright, upright_size
from posewheel.picture import Picture, Pixels

# Decoded images live in Pillow blocks; at its default 16 MiB they come from glibc's per-thread malloc
# arenas, which keep freed memory, so RSS grew with every thread that ever decoded a large image.
# Blocks above glibc's largest mmap threshold (32 MiB) are mapped and unmapped: freed memory goes back.
Image.core.set_block_size(64 * 1024 * 1024)

ALLOWED_FORMATS = frozenset({"JPEG", "MPO", "PNG", "WEBP"})  # MPO: a JPEG with more frames (phones)
FORMATS_TEXT = "JPEG, PNG, WebP or HEIC"  # what a refusal asks for (HEIC: serving.heif, before decoding)
# Peak bytes per pixel alive while one image of a mode is decoded, turned upright and made RGB
# (Pillow keeps RGB as 4 bytes a pixel). The pixel limit is a memory budget set in RGB images:
# a palette image with transparency costs more per pixel (P, RGBA, RGB and the alpha band), so
# fewer of its pixels fit. Unknown modes are charged like the dearest.
_PEAK_BYTES = {"RGB": 8, "YCbCr": 8, "CMYK": 8, "L": 5, "1": 5, "P": 9, "RGBA": 13, "LA": 13, "PA": 13}
_PEAK_BYTES_OTHER = 16
# A JPEG at least this many pixels on its long side (a phone camera's: 4032 at 12 MP) may be decoded at half its size
# (`decode_image(small=True)`, `posewheel.picture`): there the detector's looks (512 and 768 px), its tiles from 2560 px
# and every person at least twice the network's input read the half picture.
HALVE_FROM = 2048
# The longest `boxes` text parsed: a box is at most 4 numbers of ~24 characters; past this, refuse unread.
_BOX_TEXT_BYTES = 128


class InputError(ValueError):
    """The client sent something we will not process; `status` is the HTTP status to answer."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class DecodedImage:
    """An upright RGB picture to read (`pixels`: a Pillow image, or a `Picture` held at half its size) and what it
    was before: `format` as Pillow names it, `mode` before conversion."""

    pixels: Pixels
    format: str
    mode: str

    @property
    def width(self) -> int:
        return self.pixels.width

    @property
    def height(self) -> int:
        return self.pixels.height

    @property
    def image(self) -> Image.Image:
        """The picture at its own size (decoded whole now where it is held small)."""
        return self.pixels.whole() if isinstance(self.pixels, Picture) else self.pixels


def decode_image(data: bytes, max_pixels: int, small: bool = False) -> DecodedImage:
    """Decode JPEG/PNG/WebP bytes to an upright RGB image; raise InputError (4xx) for anything else.

    max_pixels: the largest accepted width * height, checked from the header before decoding. `small`: a JPEG at
    least `HALVE_FROM` pixels on its long side is decoded at half its size by the JPEG decoder's DCT scaling (about
    0.4x the time at 12 MP) and held as a `Picture`, decoded whole only when a window needs it; its coordinates
    stay the picture's own.
    """
    if not data:
        raise InputError("the image is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=None)
    except UnidentifiedImageError as exc:
        raise InputError(f"the body is not an image Pillow can identify; send {FORMATS_TEXT}", 415) from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InputError(f"the image is too large: {exc}", 413) from exc
    except Exception as exc:  # a recognised format with a broken header: OSError, SyntaxError, struct.error, ...
        raise InputError(f"the image header could not be read: {type(exc).__name__}: {exc}") from exc
    if image.format not in ALLOWED_FORMATS:
        raise InputError(f"unsupported image format {image.format}; send {FORMATS_TEXT}", 415)
    width, height = image.size
    if width < 1 or height < 1:
        raise InputError(f"the image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise InputError(f"the image is {width}x{height} = {width * height} pixels; the limit is {max_pixels}", 413)
    peak = _peak_bytes(image)
    if width * height * peak > max_pixels * _PEAK_BYTES["RGB"]:
        allowed = max_pixels * _PEAK_BYTES["RGB"] // peak
        raise InputError(
            f"the {image.mode} image is {width}x{height} = {width * height} pixels; decoding that mode "
            f"costs {peak} bytes a pixel, so its limit is {allowed} pixels",
            413,
        )
    # held at half while decoded whole too (a quarter of 4 bytes a pixel more), where that fits the same budget
    halve = (
        small
        and image.format in ("JPEG", "MPO")
        and max(width, height) >= HALVE_FROM
        and width * height * (peak + 1) <= max_pixels * _PEAK_BYTES["RGB"]
    )
    size = upright_size(image)
    try:
        halved = halve and _draft_half(image)
        rgb = _decoded_rgb(image)
    # Truncated or corrupt data, broken metadata, a mode with no RGB conversion: Pillow raises
    # OSError, ValueError, SyntaxError, but also struct.error, TypeError, IndexError, ...
    except Exception as exc:
        raise InputError(f"the {image.format} image could not be decoded: {type(exc).__name__}: {exc}") from exc
    if not halved:
        return DecodedImage(pixels=rgb, format=image.format, mode=image.mode)
    return DecodedImage(Picture(rgb, 2, size, lambda: _decoded_whole(data)), format=image.format, mode=image.mode)


def _draft_half(image: Image.Image) -> bool:
    """Ask the JPEG decoder for the picture at half its size (DCT scaling); whether it will give that."""
    width, height = image.size
    image.draft(None, (width // 2, height // 2))
    return image.size == ((width + 1) // 2, (height + 1) // 2)


def _decoded_rgb(image: Image.Image) -> Image.Image:
    """An opened image's pixels, upright and RGB."""
    image.load()
    return _to_rgb(upright(image))


def _decoded_whole(data: bytes) -> Image.Image:
    """A JPEG `decode_image` held at half its size, decoded whole (upright, RGB): the same checks passed then.
    It entropy-decodes the very stream the half decode did (DCT scaling changes only the inverse transform), so
    bytes that decoded at half decode whole: this may run on an inference lane, where a failure would be the
    batch's (tests/test_reliability_inputs.py damages phone JPEGs to hold that)."""
    try:
        return _decoded_rgb(Image.open(io.BytesIO(data)))
    except Exception as exc:
        raise InputError(f"the JPEG image could not be decoded whole: {type(exc).__name__}: {exc}") from exc


def _peak_bytes(image: Image.Image) -> int:
    """Bytes a pixel of this image costs at the peak of `decode_image` (see _PEAK_BYTES)."""
    mode = image.mode
    if mode == "P" and "transparency" in image.info:
        return _PEAK_BYTES["RGBA"]
    return _PEAK_BYTES.get(mode, _PEAK_BYTES_OTHER)


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode to RGB; transparent pixels become white, as a viewer would show them."""
    if image.mode == "RGB":
        return image
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        rgb = Image.new("RGB", rgba.size, (255, 255, 255))
        rgb.paste(rgba, mask=rgba.getchannel("A"))  # one RGB image and one band, not three RGBA images
        return rgb
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        # 16-bit and float greyscale: scale to 8 bit by the image's own range
        extrema = image.getextrema()
        lo, hi = float(extrema[0]), float(extrema[1])  # type: ignore[arg-type]
        scale = 255.0 / (hi - lo) if hi != lo else 0.0
        image = image.point(lambda v: (v - lo) * scale).convert("L")
    return image.convert("RGB")


def boxes_text_limit(max_boxes: int) -> int:
    """The longest `boxes` JSON text accepted for `max_boxes` boxes, bytes."""
    return 64 + max_boxes * _BOX_TEXT_BYTES


def load_boxes_json(text: str | bytes, max_boxes: int) -> object:
    """Parse a `boxes` JSON text; InputError 422 when it is longer than `max_boxes` boxes can be,
    not JSON, or nested too deep. The length is checked before a byte is parsed."""
    limit = boxes_text_limit(max_boxes)
    if len(text) > limit:
        raise InputError(f"field 'boxes' is {len(text)} bytes; {max_boxes} boxes fit in {limit}", 422)
    try:
        return json.loads(text)
    except RecursionError as exc:
        raise InputError("field 'boxes' is nested too deep; send a list of [x, y, w, h] boxes", 422) from exc
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise InputError(f"field 'boxes' is not valid JSON: {exc}", 422) from exc


def parse_boxes(raw: object, width: int, height: int, max_boxes: int) -> list[Box]:
    """Validate person boxes `[[x, y, w, h], ...]` (pixels) against an image of `width` x `height`.

    `raw` is a JSON string or an already parsed list; None or empty means the whole image is one
    person. A box must be 4 finite numbers with w, h > 0 that overlap the image.
    """
    if raw is None or raw == "":
        return [(0.0, 0.0, float(width), float(height))]
    if isinstance(raw, str | bytes):
        raw = load_boxes_json(raw, max_boxes)
    if not isinstance(raw, list):
        raise InputError("field 'boxes' must be a JSON list of [x, y, w, h] boxes", 422)
    if not raw:
        return [(0.0, 0.0, float(width), float(height))]
    if len(raw) > max_boxes:
        raise InputError(f"field 'boxes' has {len(raw)} boxes; the limit is {max_boxes}", 422)
    boxes: list[Box] = []
    for i, box in enumerate(raw):
        if not isinstance(box, list | tuple) or len(box) != 4:
            raise InputError(f"boxes[{i}] must be a list of 4 numbers [x, y, w, h]", 422)
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in box):
            raise InputError(f"boxes[{i}] must hold numbers only, got {box!r:.80}", 422)
        x, y, w, h = (float(v) for v in box)
        if not all(math.isfinite(v) for v in (x, y, w, h)):
            raise InputError(f"boxes[{i}] holds a non-finite number", 422)
        if w <= 0 or h <= 0:
            raise InputError(f"boxes[{i}] has width {w} and height {h}; both must be > 0", 422)
        if x >= width or y >= height or x + w <= 0 or y + h <= 0:
            raise InputError(f"boxes[{i}] = {[x, y, w, h]} lies outside the {width}x{height} image", 422)
        boxes.append((x, y, w, h))
    return boxes
