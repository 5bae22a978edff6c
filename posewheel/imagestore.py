"""Content-addressed image store: each image's bytes saved once under its SHA-256.

No client-controlled name ever reaches the file system: the only key is the hash we compute.

One frame everywhere: the store keeps images *upright*. A photo whose EXIF orientation turns it
(phones write 6 for a portrait shot) is stored as its upright pixels with no EXIF (`upright_bytes`),
so Label Studio, the export and training all see the frame the server predicted in, whatever a
viewer does with EXIF. Images without a turning orientation are stored byte for byte.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from posewheel import atomic

_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
_ORIENTATION_TAG = 0x0112
# EXIF orientation -> the transpose that makes the image upright (as PIL.ImageOps.exif_transpose).
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


# The major brand of the file's `ftyp` box: HEIC (HEVC-coded HEIF) and the generic HEIF image brands.
HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"})


def is_heif(data: bytes) -> bool:
    """Whether `data` starts as a HEIF image file does (its first box `ftyp`, a HEIF brand): by the bytes, never a
    name or content type. The server makes such a file its upright JPEG first (serving/heif.py)."""
    return len(data) >= 12 and data[4:8] == b"ftyp" and data[8:12] in HEIF_BRANDS


def content_hash(data: bytes) -> str:
    """SHA-256 hex digest of the image bytes: the image's identity everywhere in the project."""
    return hashlib.sha256(data).hexdigest()


def exif_orientation(image: Image.Image) -> int:
    """The EXIF orientation (1..8) of an opened image; 1 when it has none or it cannot be read."""
    try:
        value = image.getexif().get(_ORIENTATION_TAG, 1)
    # EXIF is untrusted metadata that Pillow parses lazily: malformed blocks raise struct.error,
    # TypeError, AttributeError, KeyError, ... An orientation we cannot read is no orientation.
    except Exception:  # noqa: BLE001
        return 1
    return value if isinstance(value, int) and value in _UPRIGHT else 1


def upright(image: Image.Image, orientation: int | None = None) -> Image.Image:
    """The image turned as its EXIF orientation says (the same image when there is nothing to turn)."""
    method = _UPRIGHT.get(exif_orientation(image) if orientation is None else orientation)
    return image if method is None else image.transpose(method)


def upright_size(image: Image.Image) -> tuple[int, int]:
    """(width, height) of the image once upright, from its header (no pixels decoded)."""
    return _turned(image.size, exif_orientation(image))


class ImageReadError(OSError):
    """A dataset image whose pixels cannot be read; the message names the file."""


def read_rgb(path: str | os.PathLike[str], size: tuple[int, int] | None = None) -> Image.Image:
    """A dataset's image file as RGB pixels, in the frame its annotations use: upright (its EXIF orientation
    applied, as viewers, Label Studio, CVAT and the server show it), unless `size`, the record's (width, height),
    matches the stored pixels and not the upright ones: then the annotation tool ignored the turn, and the stored
    pixels are what its coordinates mean. Where both frames have the record's size (a square photo, a photo turned
    upside down), upright."""
    try:
        with Image.open(path) as image:
            image.load()  # a PNG's EXIF may come after its pixels
            orientation = exif_orientation(image)
            if size is not None and size == image.size and size != _turned(image.size, orientation):
                orientation = 1
            return upright(image.convert("RGB"), orientation)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        # a file that passed validation (its header) but whose pixels are broken, e.g. truncated: say which one,
        # not only what Pillow says, from inside a data-loader worker
        raise ImageReadError(f"{path}: the image could not be read: {type(exc).__name__}: {exc}") from exc


def frame_problem(path: str | os.PathLike[str], width: int, height: int) -> str | None:
    """Why the image file at `path` cannot be a dataset record of `width` x `height`, or None: it must be an image
    Pillow reads (by its header; its pixels are not decoded) whose stored or upright size is the record's."""
    try:
        with Image.open(path) as image:
            stored = image.size
            if stored == (width, height):
                return None
            turned = upright_size(image)
    except UnidentifiedImageError:
        with open(path, "rb") as file:
            head = file.read(16)
        if is_heif(head):
            return (
                "is a HEIC photograph, which training does not read: convert it to an upright JPEG (as the server "
                "does with every HEIC it is sent) and name that in 'file_name'"
            )
        return "is not an image Pillow can read (JPEG, PNG, WebP, ...)"
    except Exception as exc:  # noqa: BLE001 - a broken header, whatever Pillow raises for it
        return f"could not be read: {type(exc).__name__}: {exc}"
    if turned == (width, height):
        return None
    how = f" ({turned[0]}x{turned[1]} upright, by its EXIF orientation)" if turned != stored else ""
    return f"the file is {stored[0]}x{stored[1]}{how}, fields 'width'/'height' say {width}x{height}"


def _turned(size: tuple[int, int], orientation: int) -> tuple[int, int]:
    return (size[1], size[0]) if orientation in (5, 6, 7, 8) else size


def upright_bytes(data: bytes) -> bytes:
    """`data` itself unless its EXIF orientation turns it; then the upright pixels, re-encoded without EXIF.

    JPEG sources become JPEG (quality 95), anything else PNG. Raises OSError/ValueError when the
    bytes are not an image Pillow can decode.
    """
    with Image.open(io.BytesIO(data)) as image:
        orientation = exif_orientation(image)
        if orientation == 1:
            return data
        fmt = "JPEG" if image.format in ("JPEG", "MPO") else "PNG"
        turned = upright(image, orientation)
        if fmt == "JPEG" and turned.mode not in ("RGB", "L", "CMYK"):
            turned = turned.convert("RGB")
        buffer = io.BytesIO()
        turned.save(buffer, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
        return buffer.getvalue()


class ImageStore:
    """Images under `root/<sha[:2]>/<sha>`; writes are atomic, a second put of the same bytes is free."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)

    def path_for(self, sha256: str) -> Path:
        if not _SHA_RE.match(sha256):
            raise ValueError(f"not a SHA-256 hex digest: {sha256[:80]!r}")
        return self.root / sha256[:2] / sha256

    def put(self, data: bytes) -> str:
        """Store `data` (once) and return its hash."""
        sha = content_hash(data)
        path = self.path_for(sha)
        if not path.exists():
            atomic.write_bytes(path, data)
        return sha

    def get(self, sha256: str) -> bytes:
        return self.path_for(sha256).read_bytes()

    def __contains__(self, sha256: str) -> bool:
        return self.path_for(sha256).is_file()
