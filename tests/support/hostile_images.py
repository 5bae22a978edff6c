"""Generated *valid* images with random metadata, for the input tests and benchmarks/fuzz_api.py.

JPEG, PNG, WebP and MPO files in many modes (palette with and without transparency, alpha, 16-bit,
CMYK, 1-bit) carrying EXIF with an orientation plus random directory entries (the blocks that made
Pillow raise struct.error, TypeError, ValueError), XMP with an orientation, ICC and text chunks.
The same seed always gives the same bytes.
"""

from __future__ import annotations

import io
import random
import struct
import warnings

import numpy as np
from PIL import Image, PngImagePlugin

FORMATS = ("JPEG", "PNG", "WEBP", "MPO")
MODES = {
    "JPEG": ("RGB", "L", "CMYK"),
    "MPO": ("RGB",),
    "PNG": ("RGB", "RGBA", "L", "LA", "P", "P+transparency", "I;16", "1"),
    "WEBP": ("RGB", "RGBA"),
}


def _exif(rng: random.Random) -> bytes:
    """A TIFF-structured EXIF block: an orientation (valid or not) and random entries of any type."""
    endian = rng.choice("<>")
    orientation = rng.choice([1, 3, 5, 6, 8, 6, 0, 9, 65535])
    entries = [(0x0112, 3, 1, struct.pack(endian + "HH", orientation, 0))]
    for _ in range(rng.randint(0, 4)):
        tag = rng.choice([0x8769, 0x8825, 0xA005, 0x011A, 0x0132, rng.randint(0, 65535)])
        count = rng.choice([0, 1, 2, 7, rng.randint(0, 2**32 - 1)])
        entries.append((tag, rng.randint(0, 13), count, rng.randbytes(4)))
    body = struct.pack(endian + "H", len(entries))
    for tag, kind, count, value in entries:
        body += struct.pack(endian + "HHI", tag, kind, count) + value
    head = (b"II" if endian == "<" else b"MM") + struct.pack(endian + "HI", 42, 8)
    return head + body + struct.pack(endian + "I", 0) + rng.randbytes(rng.randint(0, 24))


def generated_image(seed: int) -> tuple[str, bytes]:
    """A decodable image with random metadata: (description, file bytes)."""
    rng = random.Random(seed)
    fmt = rng.choice(FORMATS)
    mode = rng.choice(MODES[fmt])
    width, height = rng.randint(8, 96), rng.randint(8, 96)
    pixels = np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    if mode == "P+transparency":
        image = image.convert("P")
        image.info["transparency"] = 0
    elif mode == "I;16":
        image = Image.fromarray(pixels[..., 0].astype(np.uint16) * 257)  # mode I;16
    else:
        image = image.convert(mode)
    options: dict[str, object] = {}
    if rng.random() < 0.8:
        exif = _exif(rng)
        options["exif"] = b"Exif\x00\x00" + exif if fmt in ("JPEG", "MPO") else exif
    if rng.random() < 0.3:
        options["icc_profile"] = rng.randbytes(rng.randint(0, 200))
    if fmt == "PNG" and rng.random() < 0.5:
        info = PngImagePlugin.PngInfo()
        xmp = f'<x:xmpmeta><rdf:Description tiff:Orientation="{rng.randint(0, 9)}"/></x:xmpmeta>'
        info.add_itxt("XML:com.adobe.xmp", xmp)
        info.add_text("Comment", rng.randbytes(16).hex())
        options["pnginfo"] = info
    if fmt == "MPO":
        options.update(save_all=True, append_images=[image.copy()])
    if mode == "P+transparency" and "transparency" in image.info:
        options["transparency"] = 0
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        image.save(buffer, format=fmt, **options)
    return f"seed {seed}: {fmt} {mode} {width}x{height} {sorted(options)}", buffer.getvalue()
