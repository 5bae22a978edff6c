"""Start, stop and inspect the project's own Label Studio server (its own virtualenv, data under var/).

    posewheel labelstudio start     # returns once /health answers; first start ~100 s (migrations)
    posewheel labelstudio status    # prints the URL and pid
    posewheel labelstudio stop      # SIGTERM (Label Studio ignores SIGINT in the background)

The admin user and API token are created from the settings at the first start only; the data dir
(sqlite, uploads) lives under `var/labelstudio` so the server never writes to `~/.local/share`.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from labeling.settings import LabelStudioSettings

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class LabelStudioServiceError(RuntimeError):
    """Label Studio could not be started, stopped or reached; the message says where and why."""


@dataclass(frozen=True)
class ServiceStatus:
    """What `status` reports: the URL, whether /health answers and the pid of our process (if any)."""

    url: str
    healthy: bool
    pid: int | None


def is_healthy(url: str, timeout_s: float = 2.0) -> bool:
    """True when `url`/health answers {"status": "UP"} (no auth needed)."""
    try:
        response = httpx.get(f"{url.rstrip('/')}/health", timeout=timeout_s)
        return response.status_code == 200 and response.json().get("status") == "UP"
    except (httpx.HTTPError, ValueError):
        return False


def wait_healthy(
    url: str, timeout_s: float = 300.0, process: subprocess.Popen[bytes] | None = None, log_file: Path | None = None
) -> None:
    """Poll `url`/health until it answers; raise LabelStudioServiceError after `timeout_s` seconds.

    When `process` is given, its early exit fails fast with the tail of `log_file`.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if is_healthy(url):
            return
        if process is not None and process.poll() is not None:
            raise LabelStudioServiceError(
                f"Label Studio exited with code {process.returncode} before {url} became healthy{_log_tail(log_file)}"
            )
        time.sleep(0.5)
    raise LabelStudioServiceError(f"Label Studio at {url} not healthy after {timeout_s:.0f} s{_log_tail(log_file)}")


def _log_tail(log_file: Path | None, lines: int = 15) -> str:
    if log_file is None or not log_file.is_file():
        return ""
    tail = log_file.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
    return f"; last lines of {log_file}:\n" + "\n".join(tail)


def _port_busy(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _read_pid(pid_file: Path) -> int | None:
    """The pid in `pid_file` when that process is still alive, else None."""
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, 0)
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return None
    except PermissionError:  # alive, owned by someone else
        return pid
    return pid


# Label Studio's own list of reserved networks (label_studio/core/utils/io.py `validate_ip`, 1.23.2),
# which its SSRF protection refuses for ML backends, webhooks and URL imports alike.
DEFAULT_BANNED_SUBNETS = (
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.88.99.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "233.252.0.0/24",
    "240.0.0.0/4",
    "255.255.255.255/32",
    "::/128",
    "::1/128",
    "::ffff:0:0/96",
    "::ffff:0:0:0/96",
    "64:ff9b::/96",
    "64:ff9b:1::/48",
    "100::/64",
    "2001:0000::/32",
    "2001:20::/28",
    "2001:db8::/32",
    "2002::/16",
    "fc00::/7",
    "fe80::/10",
    "ff00::/8",
)


def ssrf_environment(reachable: list[str]) -> dict[str, str]:
    """Label Studio's SSRF switches with only the `reachable` subnets opened, every other reserved one still banned.

    Label Studio refuses an ML backend on a reserved address (`POST /api/ml` answers 403 "URL resolves
    to a reserved network address (block: 127.0.0.0/8)"), and the posewheel server's backend listens
    on loopback. Its switches cannot open one subnet: the default list is all or nothing. So the
    default list goes off and comes back, less the opened subnets, as the user's list; SSRF protection
    itself stays on. (ML_BLOCK_LOCAL_IP=false would open every address to ML backends alone, the
    cloud metadata service included.) The opened subnets are open to webhooks and URL imports too.
    """
    if not reachable:
        return {}
    try:
        opened = [ipaddress.ip_network(subnet) for subnet in reachable]
    except ValueError as exc:
        raise LabelStudioServiceError(f"POSEWHEEL_LABELSTUDIO_REACHABLE_SUBNETS: {exc}") from exc
    banned = [ipaddress.ip_network(subnet) for subnet in DEFAULT_BANNED_SUBNETS]
    for hole in opened:  # cut each opened subnet out of every banned one that holds it
        kept: list[IPNetwork] = []
        for net in banned:
            if net.version != hole.version or not net.overlaps(hole):
                kept.append(net)
            elif not net.subnet_of(hole):  # type: ignore[arg-type]
                kept.extend(net.address_exclude(hole))  # type: ignore[arg-type]
        banned = kept
    return {
        "SSRF_PROTECTION_ENABLED": "true",
        "USE_DEFAULT_BANNED_SUBNETS": "false",
        "USER_ADDITIONAL_BANNED_SUBNETS": ",".join(str(net) for net in banned),
    }


def server_environment(settings: LabelStudioSettings) -> dict[str, str]:
    """The environment Label Studio runs with: data dir, admin, token, local files, SSRF subnets, no telemetry."""
    creds = settings.credentials(create=True)
    if creds.password is None:
        raise LabelStudioServiceError("POSEWHEEL_LABELSTUDIO_TOKEN is set without POSEWHEEL_LABELSTUDIO_PASSWORD")
    env = dict(os.environ)
    env.update(
        {
            "LABEL_STUDIO_BASE_DATA_DIR": str(settings.data_dir),
            "LABEL_STUDIO_USERNAME": creds.username,
            "LABEL_STUDIO_PASSWORD": creds.password,
            "LABEL_STUDIO_USER_TOKEN": creds.token,
            "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
            "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",  # sign-up by invitation only, as in compose
            "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true",
            "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(settings.document_root),
            "SENTRY_DSN": "",
            "FRONTEND_SENTRY_DSN": "",
            "LATEST_VERSION_CHECK": "false",
            "COLLECT_ANALYTICS": "false",
            **ssrf_environment(settings.reachable_subnets),
        }
    )
    return env


def start(settings: LabelStudioSettings | None = None) -> ServiceStatus:
    """Start Label Studio in the background and return once healthy; a no-op when ours already runs."""
    settings = settings or LabelStudioSettings()
    if settings.url and settings.url.rstrip("/") != f"http://{settings.host}:{settings.port}":
        raise LabelStudioServiceError(
            f"POSEWHEEL_LABELSTUDIO_URL={settings.url} names an external server; not starting one"
        )
    url = settings.base_url
    pid = _read_pid(settings.pid_file)
    if pid is not None:
        wait_healthy(url, settings.start_timeout_s, log_file=settings.log_file)
        return ServiceStatus(url=url, healthy=True, pid=pid)
    # Label Studio silently moves to the next port when its own is taken: refuse instead.
    if _port_busy(settings.host, settings.port):
        raise LabelStudioServiceError(f"port {settings.host}:{settings.port} is already in use by another process")
    executable = settings.venv / "bin" / "label-studio"
    if not executable.is_file():
        raise LabelStudioServiceError(f"{executable} not found: run `make labelstudio` to create its virtualenv")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.document_root.mkdir(parents=True, exist_ok=True)
    command = [str(executable), "start", "--no-browser", "--internal-host", settings.host, "--port", str(settings.port)]
    log_offset = settings.log_file.stat().st_size if settings.log_file.is_file() else 0
    with open(settings.log_file, "ab") as log:
        process = subprocess.Popen(
            command,
            cwd=settings.data_dir,
            env=server_environment(settings),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    settings.pid_file.write_text(f"{process.pid}\n")
    try:
        _wait_started(settings, process, log_offset)
    except LabelStudioServiceError:
        _terminate(process.pid)
        settings.pid_file.unlink(missing_ok=True)
        raise
    return ServiceStatus(url=url, healthy=True, pid=process.pid)


_ANNOUNCED_RE = re.compile(rb"Starting development server at https?://[^/\s]+:(\d+)/")


def _wait_started(settings: LabelStudioSettings, process: subprocess.Popen[bytes], log_offset: int) -> None:
    """Wait until our process announces our port in its log and /health answers there.

    Label Studio moves to the next free port when its own was taken between our check and its bind
    (another session starting at the same moment); a healthy answer on our port would then come
    from someone else's server, so the announcement decides.
    """
    deadline = time.monotonic() + settings.start_timeout_s
    while time.monotonic() < deadline:
        with open(settings.log_file, "rb") as log:
            log.seek(log_offset)
            match = _ANNOUNCED_RE.search(log.read())
        if match and int(match.group(1)) != settings.port:
            raise LabelStudioServiceError(
                f"port {settings.port} was taken while Label Studio started; it moved to port {int(match.group(1))}"
            )
        if match and is_healthy(settings.base_url):
            return
        if process.poll() is not None:
            raise LabelStudioServiceError(
                f"Label Studio exited with code {process.returncode} before {settings.base_url} became healthy"
                f"{_log_tail(settings.log_file)}"
            )
        time.sleep(0.5)
    raise LabelStudioServiceError(
        f"Label Studio at {settings.base_url} not healthy after "
        f"{settings.start_timeout_s:.0f} s{_log_tail(settings.log_file)}"
    )


def _terminate(pid: int, timeout_s: float = 15.0) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reap it when it is our child
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def stop(settings: LabelStudioSettings | None = None) -> bool:
    """Stop our Label Studio (SIGTERM, then SIGKILL after 15 s); False when none was running."""
    settings = settings or LabelStudioSettings()
    pid = _read_pid(settings.pid_file)
    if pid is None:
        settings.pid_file.unlink(missing_ok=True)
        return False
    _terminate(pid)
    settings.pid_file.unlink(missing_ok=True)
    return True


def status(settings: LabelStudioSettings | None = None) -> ServiceStatus:
    """The URL, whether it answers /health and the pid of our process (None if not started by us)."""
    settings = settings or LabelStudioSettings()
    return ServiceStatus(url=settings.base_url, healthy=is_healthy(settings.base_url), pid=_read_pid(settings.pid_file))
