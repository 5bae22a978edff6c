"""benchmarks/serve_load.py: while one server is loaded, the others (and their children) are paused."""

from __future__ import annotations

import subprocess
import sys
import time
from types import ModuleType

import psutil
import pytest

from tests.support.benchmarks import load_benchmark

# a parent that starts a child, both spinning: a server whose idle loop takes CPU
SPINNER = "import subprocess, sys\nsubprocess.Popen([sys.executable, '-c', 'while True: pass'])\nwhile True: pass\n"


@pytest.fixture(scope="module")
def serve_load() -> ModuleType:
    return load_benchmark("serve_load")


def test_only_the_active_server_runs_and_every_other_resumes_after(serve_load: ModuleType) -> None:
    servers = [subprocess.Popen([sys.executable, "-c", SPINNER]) for _ in range(2)]
    try:
        active, other = servers
        deadline = time.monotonic() + 10
        while not psutil.Process(other.pid).children() and time.monotonic() < deadline:
            time.sleep(0.05)
        other_tree = [psutil.Process(other.pid), *psutil.Process(other.pid).children()]
        assert len(other_tree) == 2
        with serve_load.only_running(active, servers):
            assert all(p.status() == psutil.STATUS_STOPPED for p in other_tree)
            assert psutil.Process(active.pid).status() != psutil.STATUS_STOPPED
            assert serve_load.idle_cpu_pct(other, seconds=0.5) == 0.0  # paused: no CPU at all
            assert serve_load.idle_cpu_pct(active, seconds=0.5) > 10.0  # the spinner under test runs
        deadline = time.monotonic() + 5  # SIGCONT is delivered asynchronously too
        while any(p.status() == psutil.STATUS_STOPPED for p in other_tree) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert all(p.status() != psutil.STATUS_STOPPED for p in other_tree)
    finally:
        for proc in servers:
            for child in psutil.Process(proc.pid).children(recursive=True):
                child.kill()
            proc.kill()
            proc.wait()
