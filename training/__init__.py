"""Posewheel training: data, model, metrics, export, and the train/evaluate entry points.

On a shared CPU, OpenMP threads that spin while waiting for a descheduled sibling make torch 10x
slower (measured: 2 img/s instead of 30 with 2 threads on a loaded 2-core machine). Sleeping
waiters avoid that; the variable must be set before torch loads, hence here.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
