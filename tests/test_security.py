"""Security promises: keys guard what they should and are compared in constant time, services listen on
loopback unless told otherwise, secrets never reach a log or an error message, and no client-chosen
name ever reaches the file system.
"""

from __future__ import annotations

import hmac
import inspect
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import psutil
import pytest
import yaml
from pydantic import ValidationError

import serving.deps
from labeling.settings import LabelStudioSettings
from posewheel.imagestore import ImageStore
from posewheel.review import Outbox
from serving.settings import ServingSettings
from tests.support.labelstudio import LabelStudioServer
from tests.support.onnx_models import spot_image
from tests.support.server import StartServer
from tests.support.server_process import ServerProcess, bright_spot_models, distinct_images, review_env
from tests.support.waiting import wait_for

API_KEY = "api-" + uuid.uuid4().hex
ADMIN_KEY = "adm-" + uuid.uuid4().hex
IMAGE = spot_image(64, 64, (32, 32))


def test_predict_render_upright_and_admin_refuse_requests_without_their_key(start_server: StartServer) -> None:
    server = start_server(api_key=API_KEY, admin_key=ADMIN_KEY)
    files = {"image": ("s.png", IMAGE)}
    for route in ("/v1/predict", "/v1/render", "/v1/upright"):
        for headers in ({}, {"X-API-Key": ""}, {"X-API-Key": API_KEY[:-1]}, {"X-API-Key": ADMIN_KEY}):
            r = httpx.post(server.url + route, files=files, headers=headers)
            assert r.status_code == 401, (route, headers, r.text)
        assert httpx.post(server.url + route, files=files, headers={"X-API-Key": API_KEY}).status_code == 200
    for headers in ({}, {"X-API-Key": ""}, {"X-API-Key": API_KEY}, {"X-API-Key": ADMIN_KEY.upper()}):
        assert httpx.post(server.url + "/v1/admin/reload", headers=headers).status_code == 401, headers
    assert httpx.post(server.url + "/v1/admin/reload", headers={"X-API-Key": ADMIN_KEY}).status_code == 200
    # health and metrics stay open for probes and scrapers
    assert httpx.get(server.url + "/readyz").status_code == 200
    assert httpx.get(server.url + "/metrics").status_code == 200


def test_keys_are_compared_with_hmac_compare_digest(start_server: StartServer, monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def recording(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(serving.deps.hmac, "compare_digest", recording)
    server = start_server(api_key=API_KEY, admin_key=ADMIN_KEY)
    httpx.post(server.url + "/v1/predict", files={"image": ("s.png", IMAGE)}, headers={"X-API-Key": "guess"})
    httpx.post(server.url + "/v1/admin/reload", headers={"X-API-Key": "guess2"})
    assert (b"guess", API_KEY.encode()) in compared
    assert (b"guess2", ADMIN_KEY.encode()) in compared
    source = inspect.getsource(serving.deps)
    assert "get_secret_value() ==" not in source and "== settings." not in source  # no short-circuit comparison


def _listening_ips(pids: set[int], port: int) -> set[str]:
    return {
        c.laddr.ip
        for c in psutil.net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN and c.laddr.port == port and (c.pid in pids or c.pid is None)
    }


def test_api_server_listens_on_loopback_unless_told_otherwise(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("POSEWHEEL_HOST", "POSEWHEEL_LABELSTUDIO_HOST"):
        monkeypatch.delenv(name, raising=False)
    assert ServingSettings().host == "127.0.0.1"
    assert LabelStudioSettings().host == "127.0.0.1"
    monkeypatch.setenv("POSEWHEEL_HOST", "0.0.0.0")
    monkeypatch.setenv("POSEWHEEL_API_KEY", API_KEY)
    assert ServingSettings().host == "0.0.0.0"  # exposing it is one explicit setting, with a key
    monkeypatch.delenv("POSEWHEEL_HOST")
    monkeypatch.delenv("POSEWHEEL_API_KEY")
    production = bright_spot_models(tmp_path / "models")
    with ServerProcess(tmp_path / "server", production).start() as server:  # `posewheel serve` without --host
        assert _listening_ips({server.pid}, server.port) == {"127.0.0.1"}


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "api.example.com"])
def test_a_server_beyond_loopback_without_an_api_key_refuses_to_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, host: str
) -> None:
    monkeypatch.delenv("POSEWHEEL_API_KEY", raising=False)
    with pytest.raises(ValidationError, match="POSEWHEEL_API_KEY must be set"):
        ServingSettings(host=host)
    with pytest.raises(ValidationError, match="POSEWHEEL_API_KEY must be set"):
        ServingSettings(host=host, api_key="")
    assert ServingSettings(host=host, api_key=API_KEY).host == host
    for loopback in ("127.0.0.1", "127.0.0.2", "::1", "localhost"):
        assert ServingSettings(host=loopback).api_key is None  # a laptop needs no key
    if host == "0.0.0.0":  # the command line says so, loudly, and exits
        production = bright_spot_models(tmp_path / "models")
        env = {k: v for k, v in os.environ.items() if k != "POSEWHEEL_API_KEY"}
        command = [str(Path(sys.executable).parent / "posewheel"), "serve", "--host", host, "--model", str(production)]
        run = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env, check=False)
        assert run.returncode != 0 and "POSEWHEEL_API_KEY" in run.stdout + run.stderr


def test_the_model_card_needs_the_api_key(start_server: StartServer) -> None:
    server = start_server(api_key=API_KEY)
    assert httpx.get(server.url + "/v1/model").status_code == 401
    assert httpx.get(server.url + "/v1/model", headers={"X-API-Key": API_KEY + "x"}).status_code == 401
    card = httpx.get(server.url + "/v1/model", headers={"X-API-Key": API_KEY})
    assert card.status_code == 200 and card.json()["version"] == "v1"


def test_the_deployment_requires_an_api_key_and_closes_label_studio_sign_up() -> None:
    compose = yaml.safe_load((Path(__file__).parents[1] / "docker-compose.yml").read_text(encoding="utf-8"))
    api = compose["services"]["api"]["environment"]
    assert api["POSEWHEEL_HOST"] == "0.0.0.0" and str(api["POSEWHEEL_API_KEY"]).startswith("${POSEWHEEL_API_KEY:?")
    labelstudio = compose["services"]["labelstudio"]["environment"]
    assert labelstudio["LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK"] == "true"  # annotators by invitation only


@pytest.mark.labelstudio
def test_label_studio_listens_on_loopback(labelstudio: LabelStudioServer) -> None:
    pid = int(labelstudio.settings.pid_file.read_text())
    family = {pid} | {p.pid for p in psutil.Process(pid).children(recursive=True)}
    assert _listening_ips(family, labelstudio.settings.port) == {"127.0.0.1"}


def _secrets_in(text: str, secrets: dict[str, str]) -> list[str]:
    return [name for name, value in secrets.items() if value and value in text]


@pytest.mark.labelstudio
@pytest.mark.slow
def test_tokens_and_keys_never_reach_logs_or_error_messages(labelstudio: LabelStudioServer, tmp_path: Path) -> None:
    creds = labelstudio.settings.credentials()
    secrets = {"api key": API_KEY, "admin key": ADMIN_KEY, "Label Studio token": creds.token,
               "Label Studio password": creds.password or ""}  # fmt: skip
    title = f"secrets-{uuid.uuid4().hex[:8]}"
    env = {**review_env(labelstudio.env(), labelstudio.image_root, title), "POSEWHEEL_API_KEY": API_KEY,
           "POSEWHEEL_ADMIN_KEY": ADMIN_KEY}  # fmt: skip
    production = bright_spot_models(tmp_path / "models")
    server = ServerProcess(tmp_path / "server", production, env)
    outbox = Outbox(tmp_path / "server" / "var" / "outbox")
    answers: list[str] = []
    images = distinct_images(6, seed=91)

    def call(method: str, path: str, **kwargs: object) -> httpx.Response:
        r = httpx.request(method, server.url + path, timeout=30, **kwargs)  # type: ignore[arg-type]
        answers.append(f"{r.status_code} {dict(r.headers)} {r.text}")
        return r

    good, wrong = {"X-API-Key": API_KEY}, {"X-API-Key": API_KEY + "x"}
    try:
        server.start()
        assert call("POST", "/v1/predict", files={"image": ("a.png", images[0])}, headers=good).status_code == 200
        assert call("POST", "/v1/predict", files={"image": ("a.png", images[1])}, headers=wrong).status_code == 401
        assert call("POST", "/v1/admin/reload", headers={"X-API-Key": ADMIN_KEY + "x"}).status_code == 401
        assert call("POST", "/v1/admin/reload", headers={"X-API-Key": ADMIN_KEY}).status_code == 200
        call("POST", "/v1/predict", files={"image": ("a.png", b"junk")}, headers=good)
        call("GET", "/v1/model")
        call("GET", "/metrics")
        wait_for(lambda: outbox.delivered() == 1, 60, "the first review item to reach Label Studio")
        labelstudio.stop()
        try:  # the drainer fails against a stopped Label Studio, and says so in the log
            for data in images[2:4]:
                assert call("POST", "/v1/predict", files={"image": ("a.png", data)}, headers=good).status_code == 200
            wait_for(lambda: "review drain failed" in server.log_text(), 30, "the drainer to log the outage")
            cli = subprocess.run(
                [str(Path(sys.executable).parent / "posewheel"), "labels", "drain"], capture_output=True, text=True,
                env={**os.environ, **env, "POSEWHEEL_ROOT": str(tmp_path / "server")}, timeout=120, check=False,
            )  # fmt: skip
            assert cli.returncode != 0 and "not reachable" in cli.stderr, cli.stderr
            answers.append(cli.stdout + cli.stderr)
        finally:
            labelstudio.start()
        assert call("POST", "/v1/predict", files={"image": ("a.png", images[4])}, headers=good).status_code == 200
        wait_for(lambda: outbox.depth() == 0 and outbox.delivered() == 4, 90, "the outbox to drain after the restart")
    finally:
        server.stop()
    server_log = server.log_text()
    assert "review drain failed" in server_log and "serving model v1" in server_log  # the logs we scan are real
    assert _secrets_in(server_log, secrets) == [], "a secret is in the API server / drainer log"
    ls_log = labelstudio.settings.log_file.read_text(encoding="utf-8", errors="replace")
    assert _secrets_in(ls_log, secrets) == [], "a secret is in the Label Studio log"
    assert _secrets_in("\n".join(answers), secrets) == [], "a secret is in an answer or a CLI error message"


def test_no_client_chosen_name_reaches_the_file_system(start_server: StartServer, tmp_path: Path) -> None:
    server = start_server(review_threshold=1.0, review_random_fraction=1.0)
    hostile_names = ["../../../../tmp/pwned.png", "/etc/passwd", "..\\..\\x.png", "a/../../b.png", "%2e%2e%2fz.png"]
    for n, name in enumerate(hostile_names):
        data = spot_image(64, 64, (20 + n, 30))
        r = httpx.post(server.url + "/v1/predict", files={"image": (name, data, "image/png")},
                       headers={"X-Request-Id": "../../evil", "X-Forwarded-For": "../"})  # fmt: skip
        assert r.status_code == 200, r.text
    assert server.service.predlog.flush(10)
    var = tmp_path / "var"
    written = sorted(p.relative_to(var).as_posix() for p in var.rglob("*") if p.is_file())
    image, log, item = (
        r"images/[0-9a-f]{2}/[0-9a-f]{64}",
        r"predictions/\d{4}-\d\d-\d\d\.jsonl",
        r"outbox/pending/[0-9a-f]{32}\.json",
    )
    pattern = re.compile(rf"^({image}|{log}|{item})$")
    assert [w for w in written if not pattern.match(w)] == []
    assert len([w for w in written if w.startswith("images/")]) == len(hostile_names)
    assert not any("pwned" in p.name or "evil" in p.name for p in Path("/tmp").iterdir())
    # The stores themselves refuse any key that is not their own kind of name.
    store, outbox = ImageStore(tmp_path / "s"), Outbox(tmp_path / "o")
    for bad in ("../" + "a" * 61, "a" * 63 + "/", "A" * 64, "../../etc/passwd"):
        with pytest.raises(ValueError):
            store.path_for(bad)
    for bad in ("../x", "a/b", "", "x" * 200, "..", "a.json"):
        with pytest.raises(ValueError):
            outbox.ack(bad)
