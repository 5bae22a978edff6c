"""Posewheel training: data, model, metrics, export, and the train/evaluate entry points.

Two process-wide settings come first, before torch loads:

- On a shared CPU, OpenMP threads that spin while waiting for a descheduled sibling make torch 10x
  slower (measured: 2 img/s instead of 30 with 2 threads on a loaded 2-core machine). Sleeping
  waiters avoid that; the variable must be set before torch loads.
- glibc serves every allocation above 32 MiB (a batch's activations are 38 MiB) with its own `mmap`
  and gives it back to the kernel when freed, so every training step faults in and zeroes its
  activations again: 66,000-103,000 page faults and 0.16-0.26 s of kernel time per MoveNet step of
  32. `keep_freed_memory` makes glibc keep freed memory for the next step instead
  (`benchmarks/train_throughput.py --measure allocator` measures the whole pipeline both ways;
  `POSEWHEEL_KEEP_FREED_MEMORY=0` leaves glibc alone).
"""

import ctypes
import os
import sys

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

_M_TRIM_THRESHOLD = -1  # mallopt parameters, <malloc.h>
_M_MMAP_MAX = -4
GLIBC_VARIABLES = ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_")


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory in the process for the next allocation.

    No `mmap` per large allocation (they come from the heap; non-main arenas still fall back to
    `mmap` when their heap is full) and no trimming of the heap's top below 1 GiB. The resident size
    is what the largest step needs, as before. Returns False where there is no glibc (macOS, musl):
    nothing changes there. It holds for the process and the data workers it forks, and cannot be
    undone: any mallopt call also fixes glibc's mmap threshold, which glibc otherwise raises as it
    goes, so a baseline is a process started with `POSEWHEEL_KEEP_FREED_MEMORY=0`.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return libc.mallopt(_M_MMAP_MAX, 0) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30) == 1


KEEP_FREED_MEMORY_VARIABLE = "POSEWHEEL_KEEP_FREED_MEMORY"  # 0: glibc's own defaults (the benchmark's baseline)

# Whoever tunes glibc by its own variables wins; and a mallopt call would switch off glibc's dynamic threshold.
if os.environ.get(KEEP_FREED_MEMORY_VARIABLE, "1") != "0" and not any(name in os.environ for name in GLIBC_VARIABLES):
    keep_freed_memory()
