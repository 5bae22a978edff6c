"""HEIC, the photographs iPhones take, made an upright JPEG in a child process before anything reads it.

    data = as_decodable(data, settings.max_pixels)   # HEIC -> JPEG bytes; any other bytes unchanged

HEIC is decoded by libheif, in C. On corrupt files it has crashed the interpreter: pi-heif 1.4.0 (libheif
1.23.0) died with SIGSEGV while reading the metadata of 7 of 3000 corrupted copies of a phone photograph
(benchmarks/heic_fuzz.py). A crash there must cost one request, not the server. So the bytes go to a child
process (`python -m serving.heif`, started once, then kept; one file at a time, through its pipes), which
checks the pixel budget from the header, decodes (libheif applies the turn a phone writes into the file,
`irot`) and sends back the upright picture as a JPEG (quality 95, full colour resolution). From then on the
request is a JPEG: decoded, answered, stored for review and shown in Label Studio like any other. A child
that dies, or takes longer than TIMEOUT_S, is killed and replaced, and the request is answered 400.
"""

from __future__ import annotations

import io
import logging
import os
import select
import struct
import subprocess
import sys
import threading
import time
from typing import IO

from posewheel.imagestore import is_heif
from serving.images import InputError

# Peak bytes a pixel while the child decodes: libheif's own YCbCr and RGB planes come before Pillow's image
# (measured 8.0-8.8 on a 12 MP photograph, turned and not). Against the pixel limit's budget of RGB_PEAK_BYTES
# a pixel, a HEIC may hold 0.8 of the limit: 32 MP at the default, above an iPhone's 24.
PEAK_BYTES = 10
RGB_PEAK_BYTES = 8  # serving.images' budget for an RGB image, in which the pixel limit is set
TIMEOUT_S = 30.0  # a 12 MP photograph takes about 1 s
JPEG_QUALITY = 95  # with full colour resolution (4:4:4): the keypoints move less than over a 4:2:0 copy
# The pipe's messages: a request is (length, max_pixels) then the file; an answer is (status, length) then
# the JPEG (status 0) or the reason, UTF-8 (an HTTP status).
_ASK, _ANSWER = struct.Struct(">QQ"), struct.Struct(">IQ")

log = logging.getLogger(__name__)


def as_decodable(data: bytes, max_pixels: int) -> bytes:
    """`data` itself, or for a HEIF file its upright JPEG (heif_to_jpeg)."""
    return heif_to_jpeg(data, max_pixels) if is_heif(data) else data


def heif_to_jpeg(data: bytes, max_pixels: int) -> bytes:
    """The upright JPEG of HEIF bytes, made in the child process; InputError (4xx) with the reason otherwise."""
    status, payload = _CHILD.ask(data, max_pixels)
    if status:
        raise InputError(payload.decode("utf-8", "replace"), status)
    return payload


class _Child:
    """One `python -m serving.heif` process and its pipes, started on first use, replaced when it dies or hangs.

    A plain subprocess, not multiprocessing: a spawned process first re-runs the parent's main script, which
    a caller's own script (or `python -` reading stdin) does not survive."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # one file at a time through the pipes
        self.process: subprocess.Popen[bytes] | None = None

    def ask(self, data: bytes, max_pixels: int) -> tuple[int, bytes]:
        with self._lock:
            if self.process is None or self.process.poll() is not None:
                self._start()
            assert self.process is not None and self.process.stdin is not None and self.process.stdout is not None
            deadline = time.monotonic() + TIMEOUT_S
            try:
                self.process.stdin.write(_ASK.pack(len(data), max_pixels) + data)
                self.process.stdin.flush()
                status, length = _ANSWER.unpack(_read(self.process.stdout, _ANSWER.size, deadline))
                return status, _read(self.process.stdout, length, deadline)
            except (OSError, EOFError, TimeoutError) as exc:  # it crashed (EOF, a broken pipe) or hangs: replace it
                code = self._stop()
                why = str(exc) or "it crashed"
                log.warning(
                    "the HEIC decoder stopped (%s, exit code %s) on a %d-byte file; a new one starts",
                    why,
                    code,
                    len(data),
                )
                raise InputError(f"the HEIC image could not be decoded: its decoder stopped ({why})") from exc

    def _start(self) -> None:
        self._stop()
        command = [sys.executable, "-m", "serving.heif"]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)

    def _stop(self) -> int | None:
        """Kill the child unless it has ended; its exit code (negative: the signal that ended it)."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.kill()
        code = self.process.wait(5)
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()
        self.process = None
        return code


_CHILD = _Child()


def _read(pipe: IO[bytes], count: int, deadline: float) -> bytes:
    """Exactly `count` bytes of the child's answer; EOFError when it closes (it crashed), TimeoutError past
    `deadline`."""
    chunks, left = [], count
    while left:
        wait = deadline - time.monotonic()
        if wait <= 0 or not select.select([pipe], [], [], wait)[0]:
            raise TimeoutError(f"no answer in {TIMEOUT_S:.0f} s")
        chunk = os.read(pipe.fileno(), min(left, 1 << 20))
        if not chunk:
            raise EOFError("it crashed")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _serve() -> None:
    """The child: requests from stdin, answers to stdout, until stdin closes. Anything else that writes to
    standard output (a library's message) goes to stderr instead, away from the answers."""
    import pi_heif

    pi_heif.register_heif_opener()
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    requests = sys.stdin.buffer
    while True:
        head = requests.read(_ASK.size)
        if len(head) < _ASK.size:
            return
        length, max_pixels = _ASK.unpack(head)
        status, payload = _transcode(requests.read(length), max_pixels)
        body = payload if isinstance(payload, bytes) else payload.encode("utf-8")
        answers.write(_ANSWER.pack(status, len(body)) + body)
        answers.flush()


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
        image.convert("RGB").save(buffer, format="JPEG", quality=JPEG_QUALITY, subsampling=0)
    except Exception as exc:  # noqa: BLE001
        return 400, f"the HEIC image could not be decoded: {type(exc).__name__}: {exc}"
    return 0, buffer.getvalue()


if __name__ == "__main__":
    _serve()
