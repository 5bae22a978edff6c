"""Waiting for something to become true, and the one check that a server is ready.

wait_for(lambda: outbox.depth() == 0, 60, "the outbox to drain")
wait_for(lambda: answers_ready(url), 20, f"{url}/readyz")
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import httpx


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str, poll_s: float = 0.1) -> None:
    """Poll `condition` until it holds; AssertionError naming `what` after `timeout_s` seconds."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(poll_s)


def answers_ready(url: str, path: str = "/readyz", timeout_s: float = 2.0) -> bool:
    """True when GET `url + path` answers 200; False while nothing listens or it answers otherwise."""
    try:
        return httpx.get(url + path, timeout=timeout_s).status_code == 200
    except httpx.TransportError:
        return False


def free_port() -> int:
    """A TCP port nobody listens on right now (127.0.0.1)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
