"""Label Studio settings: where it runs, its admin user, token and project, from `POSEWHEEL_LABELSTUDIO_*`.

Secrets (password, API token) come from the environment when set; otherwise a local default is
generated once and kept in `var/secrets/labelstudio.json` (mode 0600, ignored by git). They are
never logged: the fields are `SecretStr`, so even a printed settings object shows `**********`.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from posewheel import atomic
from posewheel.settings import ProjectSettings, under

Sampling = Literal["uniform", "uncertainty"]  # the order annotators get open tasks (labeling.project.SAMPLING)

URL_ENV = "POSEWHEEL_LABELSTUDIO_URL"


class LabelStudioNotConfiguredError(RuntimeError):
    """No credentials for Label Studio: neither in the environment nor in the secrets file."""


@dataclass(frozen=True)
class Credentials:
    """The admin's password (None when only a token was given) and API token (legacy, <= 40 chars)."""

    username: str
    password: str | None
    token: str


class LabelStudioSettings(BaseSettings):
    """Label Studio's address, admin user, folders and project.

    Paths follow the project's one convention (`posewheel.settings.under`): run-time folders default
    under `POSEWHEEL_VAR_DIR`, the virtualenv under `POSEWHEEL_ROOT`; relative values are under the same.
    """

    model_config = SettingsConfigDict(env_prefix="POSEWHEEL_LABELSTUDIO_", extra="ignore")

    url: str | None = None  # overrides host/port, e.g. an external Label Studio
    host: str = "127.0.0.1"
    port: int = 8080
    username: str = "admin@posewheel.local"
    password: SecretStr | None = None
    token: SecretStr | None = None
    project_title: str = "Posewheel pose review"
    data_dir: Path = Path()  # its sqlite database, media, pid and log; default <var>/labelstudio
    venv: Path = Path()  # its own virtualenv (its pins clash with training's); default <root>/.venv-labelstudio
    secrets_file: Path = (
        Path()
    )  # generated admin password and token (mode 0600); default <var>/secrets/labelstudio.json
    document_root: Path = Path()  # local-files serving root; the image store must lie below it; default <var>
    start_timeout_s: float = 300.0  # the first start runs ~100 s of migrations on 2 cores
    sampling: Sampling = Field(
        "uniform",
        description="the order annotators get open tasks: `uniform` (at random) or `uncertainty` (least confident "
        "first). At the loop's real budget random picks taught as much (benchmarks/flywheel_curve.py)",
    )
    reachable_subnets: list[str] = Field(
        ["127.0.0.0/8", "::1/128"],
        description="reserved subnets that `posewheel labelstudio start` lets Label Studio reach despite its "
        "SSRF protection (loopback: the server's ML backend); a JSON list, [] blocks them all",
    )

    def model_post_init(self, __context: object) -> None:
        project = ProjectSettings()
        self.data_dir = under(project.var_dir, self.data_dir, "labelstudio")
        self.venv = under(project.root, self.venv, ".venv-labelstudio")
        self.secrets_file = under(project.var_dir, self.secrets_file, "secrets/labelstudio.json")
        self.document_root = under(project.var_dir, self.document_root, ".")

    @property
    def base_url(self) -> str:
        """`http://host:port` without a trailing slash."""
        return (self.url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def configured(self) -> bool:
        """True when Label Studio is set up here (secrets file) or pointed to (POSEWHEEL_LABELSTUDIO_URL)."""
        return self.secrets_file.is_file() or bool(os.environ.get(URL_ENV))

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "server.pid"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "server.log"

    def credentials(self, create: bool = False) -> Credentials:
        """The admin credentials: environment first, then the secrets file (generated when `create`)."""
        stored: dict[str, str] = {}
        if self.secrets_file.is_file():
            try:
                stored = json.loads(self.secrets_file.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise LabelStudioNotConfiguredError(f"{self.secrets_file}: not valid JSON ({exc.msg})") from exc
        password = self.password.get_secret_value() if self.password else stored.get("password")
        token = self.token.get_secret_value() if self.token else stored.get("token")
        if (password is None or token is None) and create:
            stored = {
                "password": password or secrets.token_urlsafe(18),
                "token": token or secrets.token_hex(20),  # 40 chars: Label Studio's legacy token limit
            }
            atomic.write_text(self.secrets_file, json.dumps(stored, indent=2) + "\n", mode=0o600)
            password, token = stored["password"], stored["token"]
        if token is None:
            raise LabelStudioNotConfiguredError(
                f"Label Studio has no credentials: set POSEWHEEL_LABELSTUDIO_TOKEN or run "
                f"`posewheel labelstudio start` to create {self.secrets_file}"
            )
        if len(token) > 40:
            raise LabelStudioNotConfiguredError(
                f"the Label Studio token must be at most 40 characters, got {len(token)}"
            )
        return Credentials(username=self.username, password=password, token=token)
