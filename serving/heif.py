"""HEIC, the photographs iPhones take, made an upright JPEG in a child process before anything reads it.

    data = as_decodable(data, settings.max_pixels)   # HEIC -> JPEG bytes; any other bytes unchanged

HEIC is decoded by libheif, in C. On corrupt files it has crashed the interpreter: pi-heif 1.4.0 (libheif
1.23.0) died with SIGSEGV while reading the metadata of 1 of the first 1500 corrupted copies of a phone
photograph. A crash there must cost one request, not the server. So the bytes go to a child process
(spawned once, then kept; one file at a time), which checks the pixel budget from the header, decodes
(libheif applies the turn a phone writes into the file, `irot`) and sends back the upright picture as a
JPEG (quality 95). From then on the request is a JPEG: decoded, answered, stored for review and shown in
Label Studio like any other. A child that dies, or takes longer than TIMEOUT_S, is killed and replaced,
and the request is answered 400.
"""

from __future__ import annotations

import io
import multiprocessing
import threading
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from serving.images import InputError

# The major brand of the file's `ftyp` box: HEIC (HEVC-coded HEIF) and the generic HEIF image brands.
HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"})
# Peak bytes a pixel while the child decodes: libheif's own YCbCr and RGB planes come before Pillow's image
# (measured 8.0-8.8 on a 12 MP photograph, turned and not). Against the pixel limit's budget of RGB_PEAK_BYTES
# a pixel, a HEIC may hold 0.8 of the limit: 32 MP at the default, above an iPhone's 24.
PEAK_BYTES = 10
RGB_PEAK_BYTES = 8  # serving.images' budget for an RGB image, in which the pixel limit is set
TIMEOUT_S = 30.0  # a 24 MP photograph takes about 2 s


def is_heif(data: bytes) -> bool:
    """Whether `data` starts as a HEIF image file does (its first box `ftyp`, a HEIF brand): by the bytes, never a
    name or content type."""
    return len(data) >= 12 and data[4:8] == b"ftyp" and data[8:12] in HEIF_BRANDS


def as_decodable(data: bytes, max_pixels: int) -> bytes:
    """`data` itself, or for a HEIF file its upright JPEG (heif_to_jpeg)."""
    return heif_to_jpeg(data, max_pixels) if is_heif(data) else data


def heif_to_jpeg(data: bytes, max_pixels: int) -> bytes:
    """The upright JPEG of HEIF bytes, made in the child process; InputError (4xx) with the reason otherwise."""
    status, payload = _CHILD.ask(data, max_pixels)
    if status:
        assert isinstance(payload, str)
        raise InputError(payload, status)
    assert isinstance(payload, bytes)
    return payload


class _Child:
    """One spawned decoding process and its pipe, started on first use, replaced when it dies or hangs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # one file at a time through the pipe
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None

    def ask(self, data: bytes, max_pixels: int) -> tuple[int, bytes | str]:
        with self._lock:
            if self._process is None or not self._process.is_alive():
                self._start()
            assert self._conn is not None
            try:
                self._conn.send((data, max_pixels))
                if not self._conn.poll(TIMEOUT_S):
                    raise TimeoutError(f"no answer in {TIMEOUT_S:.0f} s")
                answer: tuple[int, bytes | str] = self._conn.recv()
            except (EOFError, OSError, TimeoutError) as exc:  # it crashed (EOF) or hangs: replace it
                self._stop()
                why = str(exc) or "it crashed"
                raise InputError(f"the HEIC image could not be decoded: its decoder stopped ({why})") from exc
            return answer

    def _start(self) -> None:
        self._stop()
        context = multiprocessing.get_context("spawn")  # not fork: the server has threads
        parent, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(child,), name="posewheel-heif", daemon=True)
        self._process.start()
        child.close()
        self._conn = parent

    def _stop(self) -> None:
        if self._conn is not None:
            self._conn.close()
        if self._process is not None and self._process.is_alive():
            self._process.kill()
        if self._process is not None:
            self._process.join(5)
        self._process, self._conn = None, None


_CHILD = _Child()


def _serve(conn: Connection) -> None:
    """The child's loop: (bytes, max_pixels) in, _transcode's answer out, until the pipe closes."""
    import pi_heif

    pi_heif.register_heif_opener()
    while True:
        try:
            data, max_pixels = conn.recv()
        except EOFError:
            return
        conn.send(_transcode(data, max_pixels))


def _transcode(data: bytes, max_pixels: int) -> tuple[int, bytes | str]:
    """(0, the upright JPEG) or (HTTP status, why not); runs in the child, with pi-heif registered."""
    from PIL import Image

    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        return 413, f"the HEIC image is too large: {exc}"
    except Exception as exc:  # noqa: BLE001 - untrusted bytes: whatever the parser raises is the client's 400
        return 400, f"the HEIC header could not be read: {type(exc).__name__}: {exc}"
    width, height = image.size
    if width * height * PEAK_BYTES > max_pixels * RGB_PEAK_BYTES:
        allowed = max_pixels * RGB_PEAK_BYTES // PEAK_BYTES
        return 413, (
            f"the HEIC image is {width}x{height} = {width * height} pixels; decoding it costs {PEAK_BYTES} "
            f"bytes a pixel, so its limit is {allowed} pixels"
        )
    try:
        image.load()
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, format="JPEG", quality=95, subsampling=0)
    except Exception as exc:  # noqa: BLE001
        return 400, f"the HEIC image could not be decoded: {type(exc).__name__}: {exc}"
    return 0, buffer.getvalue()
