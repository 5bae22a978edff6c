"""Corrupt HEIC through serving/heif.py: how many copies crash the decoder, and that none crashes this process.

    .venv/bin/python benchmarks/heic_fuzz.py [--copies 3000] [--seed 0]

Each copy of tests/fixtures/heic's iPhone-style photograph is cut short (3 in 10) or has 1-20 bytes changed
(most in the first 2000 bytes, where the boxes that describe the file are), then goes to `heif_to_jpeg`, as a
request's bytes do. Prints one JSON line: how many decoded, were refused with a status and their reason, or
stopped the child decoder (a crash: the request's 400); and the seconds it took. Reaching the end is the
point: in this process, the first crash would have ended the run.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # as a script, sys.path[0] is benchmarks/

from serving.heif import heif_to_jpeg
from serving.images import InputError
from tests.fixtures.heic.make_heic import FIXTURE
from tests.support.figures import emit


def corrupt(data: bytes, rng: random.Random) -> bytes:
    """A copy cut short, or with a few bytes changed."""
    copy = bytearray(data)
    if rng.random() < 0.3:
        return bytes(copy[: rng.randrange(8, len(copy))])
    for _ in range(rng.randint(1, 20)):
        at = rng.randrange(0, 2000) if rng.random() < 0.7 else rng.randrange(len(copy))
        copy[at] = rng.randrange(256)
    return bytes(copy)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    data, rng = FIXTURE.read_bytes(), random.Random(args.seed)
    counts = {"decoded": 0, "refused_400": 0, "refused_413": 0, "decoder_stopped": 0}
    started = time.perf_counter()
    for _ in range(args.copies):
        try:
            heif_to_jpeg(corrupt(data, rng), 40_000_000)
            counts["decoded"] += 1
        except InputError as exc:
            counts["decoder_stopped" if "decoder stopped" in str(exc) else f"refused_{exc.status}"] += 1
    seconds = round(time.perf_counter() - started, 1)
    emit("heic_fuzz", benchmark="heic_fuzz", copies=args.copies, seed=args.seed, **counts, seconds=seconds)


if __name__ == "__main__":
    main()
