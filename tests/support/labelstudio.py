"""One real Label Studio for the whole test session (port 18080, its own data dir), stopped at the end.

The first session on a machine migrates a template database once (var/test-labelstudio-template,
~30-100 s); every session then starts from a copy of it (~10 s), in its own temporary folder, so
concurrent sessions and a dev instance on :8080 never share state. Tests isolate themselves further
with a project of their own (`labelstudio.new_project()`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from labeling import labelstudio_process
from labeling.labelstudio_client import connect
from labeling.project import ensure_project
from labeling.settings import LabelStudioSettings
from posewheel.settings import ProjectSettings

if TYPE_CHECKING:
    from label_studio_sdk import LabelStudio
    from playwright.sync_api import Page

TEST_PORT = int(os.environ.get("POSEWHEEL_TEST_LABELSTUDIO_PORT", "18080"))


@contextlib.contextmanager
def _reserved_port(preferred: int) -> Iterator[int]:
    """A port no other test session on this machine uses: a lock file per port, held while in use."""
    folder = ProjectSettings().var_dir / "test-labelstudio-ports"
    folder.mkdir(parents=True, exist_ok=True)
    for port in range(preferred, preferred + 50):
        with open(folder / f"{port}.lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # another session holds it
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    continue  # something else (a dev server) listens there
            yield port
            return
    raise RuntimeError(f"no free port for Label Studio in {preferred}..{preferred + 49}")


def _settings(data_dir: Path, document_root: Path, port: int, title: str = "test") -> LabelStudioSettings:
    return LabelStudioSettings(
        url=f"http://127.0.0.1:{port}",
        host="127.0.0.1",
        port=port,
        data_dir=data_dir,
        secrets_file=data_dir / "secrets.json",
        document_root=document_root,
        project_title=title,
        password=None,
        token=None,
    )


def _template(port: int) -> Path:
    """A data dir whose database is migrated and whose admin exists; made once per machine."""
    template = ProjectSettings().var_dir / "test-labelstudio-template"
    template.parent.mkdir(parents=True, exist_ok=True)
    with open(template.parent / ".test-labelstudio-template.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # concurrent sessions wait for the one migrating
        if not (template / ".ready").is_file():
            shutil.rmtree(template, ignore_errors=True)
            settings = _settings(template, template / "docroot", port)
            try:
                labelstudio_process.start(settings)
            finally:
                labelstudio_process.stop(settings)
            (template / ".ready").touch()
    return template


@dataclass
class LabelStudioServer:
    """The session's Label Studio: its settings, an SDK client, and where images must live."""

    settings: LabelStudioSettings
    document_root: Path
    client: LabelStudio = field(init=False)

    def __post_init__(self) -> None:
        self.client = connect(self.settings)

    @property
    def image_root(self) -> Path:
        """An image store folder below the document root (Label Studio serves images from there)."""
        return self.document_root / "images"

    def new_project(self, prefix: str = "test", sampling: str | None = None) -> int:
        """A fresh review project of this test's own (`sampling`: the settings' unless given)."""
        return ensure_project(self.client, f"{prefix}-{uuid.uuid4().hex[:8]}", sampling)

    def start(self) -> None:
        labelstudio_process.start(self.settings)

    def stop(self) -> None:
        labelstudio_process.stop(self.settings)

    @contextlib.contextmanager
    def editor(self, project_id: int, task_id: int) -> Iterator[Page]:
        """Debian's headless Chromium, logged in as the admin, on the task in Label Studio's editor.

        Skips the test when chromium is missing (`make browser` installs it); closes the browser after.
        """
        chromium = shutil.which("chromium")
        if chromium is None:
            pytest.skip("needs Debian's chromium (`make browser`)")
        from playwright.sync_api import sync_playwright

        creds, base = self.settings.credentials(), self.settings.base_url
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(f"{base}/user/login")
                page.fill("input[name=email]", creds.username)
                page.fill("input[name=password]", creds.password or "")
                page.click("button[type=submit]")
                page.wait_for_url(lambda url: "/user/login" not in url)
                page.goto(f"{base}/projects/{project_id}/data?task={task_id}")
                yield page
            finally:
                browser.close()

    def env(self, project_title: str | None = None) -> dict[str, str]:
        """Environment for a subprocess (e.g. the API server) to reach this Label Studio."""
        creds = self.settings.credentials()
        env = {
            "POSEWHEEL_LABELSTUDIO_URL": self.settings.base_url,
            "POSEWHEEL_LABELSTUDIO_TOKEN": creds.token,
            "POSEWHEEL_LABELSTUDIO_DOCUMENT_ROOT": str(self.document_root),
        }
        if project_title:
            env["POSEWHEEL_LABELSTUDIO_PROJECT_TITLE"] = project_title
        return env


@contextlib.contextmanager
def running_labelstudio(root: Path, port: int = TEST_PORT) -> Iterator[LabelStudioServer]:
    """A Label Studio of its own under `root` (data, document root), from the template; stopped on exit."""
    venv = LabelStudioSettings().venv
    if not (venv / "bin" / "label-studio").is_file():
        raise RuntimeError(f"Label Studio is not installed at {venv}: run `make labelstudio`")
    with _reserved_port(port) as port:
        yield from _run_from_template(root, port)


def _run_from_template(root: Path, port: int) -> Iterator[LabelStudioServer]:
    template = _template(port)
    data_dir = root / "data"
    shutil.copytree(template, data_dir, ignore=shutil.ignore_patterns("server.pid", "server.log", "docroot"))
    document_root = root / "docroot"
    (document_root / "images").mkdir(parents=True)
    settings = _settings(data_dir, document_root, port)
    labelstudio_process.start(settings)
    try:
        yield LabelStudioServer(settings=settings, document_root=document_root)
    finally:
        labelstudio_process.stop(settings)


@pytest.fixture(scope="session")
def labelstudio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabelStudioServer]:
    """The real Label Studio for this session (started once, SIGTERM at the end)."""
    try:
        with running_labelstudio(tmp_path_factory.mktemp("labelstudio")) as server:
            yield server
    except RuntimeError as exc:
        pytest.fail(str(exc))
