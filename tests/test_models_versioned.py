"""Promoted models are versioned: git + DVC bring back a commit's production model, W&B marks it `production`.

One real loop on tiny settings (`dvc repro`: synth, train with W&B offline, evaluate, promote), `git
commit`, `dvc push` to the project's local remote, a fresh `git clone` and `dvc pull`. The clone's
production model is the same files and serves; a second loop in the clone warm-starts from it and
promotes again. The offline W&B runs hold what `wandb sync` would publish: the training run's model
artifact, and the loop run's `production` alias on that same version (same content digest).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from flywheel.pipeline import dvc_command, repro
from flywheel.tracking import MODEL_ARTIFACT, PRODUCTION_ALIAS, log_iteration, wandb_environ
from posewheel import artifact
from serving.engine import load_model
from tests.support.flywheel import make_project

pytestmark = pytest.mark.slow

# The smallest loop that still trains, exports and evaluates for real; the rule is opened wide so
# that each loop promotes (what is tested here is where the promoted model goes, not the rule).
TINY_PARAMS: dict[str, dict[str, Any]] = {
    "synth": {"seed_count": 64, "holdout_count": 16, "scenes_count": 16},
    "train": {
        "config": "cpu",
        "epochs": 3,
        "max_minutes": 0.25,
        "finetune_max_minutes": 0.2,
        "num_workers": 0,
        "wandb": True,
    },
    "promote": {"street_margin": -1.0, "studio_tolerance": 1.0},
}
GIT = ["git", "-c", "user.name=test", "-c", "user.email=test@posewheel.invalid"]


def _run(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{command}: {done.stdout[-3000:]}{done.stderr[-3000:]}"
    return done.stdout


def _loop(root: Path) -> None:
    env = {"POSEWHEEL_ROOT": str(root), **wandb_environ(root)}
    assert repro(root, extra_env=env).returncode == 0


def _commit(root: Path, message: str) -> None:
    _run(["git", "add", "."], root)  # the project's .gitignore keeps var/, wandb/ and models/<version> out
    _run([*GIT, "commit", "-q", "-m", message], root)


def _file_hashes(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def wandb_records(path: Path) -> Iterator[Any]:
    """The records of an offline run's `.wandb` file, which `wandb sync` replays to the server.

    The file is a LevelDB-style log (W&B's datastore format): a 7-byte header (":W&B", magic 0xBEE1,
    version), then 32 KiB blocks of chunks, each with a 7-byte header (crc32c, length, type: 1 whole
    record, 2 first, 3 middle, 4 last part); each record is a protobuf `Record`.
    """
    from wandb.proto import wandb_internal_pb2

    block, header = 32768, 7
    data = path.read_bytes()
    assert data[:4] == b":W&B" and struct.unpack("<H", data[4:6])[0] == 0xBEE1, f"{path}: not a W&B run file"
    position, pending = header, b""
    while position + header <= len(data):
        left = block - position % block
        if left < header:  # a block's tail too short for a chunk header is padding
            position += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[position : position + header])
        chunk = data[position + header : position + header + length]
        position += header + length
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()  # type: ignore[attr-defined]  # generated protobuf class
            record.ParseFromString(pending)
            yield record


def logged_models(wandb_dir: Path) -> dict[str, list[tuple[str, set[str]]]]:
    """Per offline run's job type: the (digest, aliases) of every `pose-model` artifact it logged."""
    found: dict[str, list[tuple[str, set[str]]]] = {}
    for run_file in sorted(wandb_dir.glob("offline-run-*/run-*.wandb")):
        job, models = "", []
        for record in wandb_records(run_file):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                job = record.run.job_type
            elif kind == "artifact" and record.artifact.name == MODEL_ARTIFACT:
                models.append((record.artifact.digest, set(record.artifact.aliases)))
        found.setdefault(job, []).extend(models)
    return found


@pytest.mark.timeout(900)
def test_dvc_pull_in_a_fresh_clone_brings_back_the_promoted_production_model(tmp_path: Path) -> None:
    project = make_project(tmp_path / "project", TINY_PARAMS)
    _loop(project.root)
    production = project.root / "models" / "production"
    card = artifact.load_card(production)
    assert production.is_symlink() and os.readlink(production) == card.version
    _commit(project.root, f"promoted {card.version}")
    tracked = _run(["git", "ls-files", "models"], project.root).split()
    assert tracked in ([], ["models/.gitignore"]), tracked  # models are DVC's, never git's

    started = time.monotonic()
    _run(dvc_command("push"), project.root)
    push_s = time.monotonic() - started

    clone = tmp_path / "clone"
    _run(["git", "clone", "-q", str(project.root), str(clone)], tmp_path)
    assert not (clone / "models" / "production").exists()  # git alone does not hold the model
    # The local remote is a folder inside the first checkout (var/dvc-remote, git-ignored): a teammate's
    # clone points at it as at any shared remote, in its own untracked config.local.
    remote = project.root / "var" / "dvc-remote"
    _run(dvc_command("remote", "modify", "--local", "local", "url", str(remote)), clone)
    started = time.monotonic()
    _run(dvc_command("pull"), clone)
    pull_s = time.monotonic() - started

    pulled = clone / "models" / "production"
    assert pulled.is_dir() and not pulled.is_symlink()  # DVC writes the files, not the link
    assert _file_hashes(pulled) == _file_hashes(production.resolve())
    served = load_model(pulled, "pulled", threads=1)
    assert served.card.version == card.version
    remote_mb = sum(f.stat().st_size for f in remote.rglob("*") if f.is_file()) / 1e6
    print(f"dvc push {push_s:.1f} s, pull {pull_s:.1f} s, remote {remote_mb:.1f} MB (data and models)")

    # W&B lineage, as `wandb sync` would publish it: the loop run puts `production` on the very version
    # (same content digest) that the training run logged for this model.
    models = logged_models(project.root / "wandb")
    trained = {digest for digest, aliases in models["train"] if card.version in aliases}
    promoted = {digest for digest, aliases in models["flywheel-iteration"] if PRODUCTION_ALIAS in aliases}
    assert len(trained) == 1 and promoted == trained, models

    # A second loop in the clone: it warm-starts from the pulled folder and replaces it with the usual
    # symlink to the new version; dvc.lock then records the new production model.
    params = yaml.safe_load((clone / "params.yaml").read_text())
    params["train"]["seed"] = 1  # a new candidate
    (clone / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _loop(clone)
    after = artifact.load_card(clone / "models" / "production")
    assert after.version != card.version and after.parent_version == card.version
    assert (clone / "models" / "production").is_symlink()
    lock = yaml.safe_load((clone / "dvc.lock").read_text())
    recorded = {out["path"]: out["md5"] for out in lock["stages"]["promote"]["outs"]}
    before = yaml.safe_load((project.root / "dvc.lock").read_text())["stages"]["promote"]["outs"][0]["md5"]
    assert recorded["models/production"] != before
    status = subprocess.run(dvc_command("status", "promote"), cwd=clone, capture_output=True, text=True, check=True)
    assert "changed" not in status.stdout, status.stdout


def test_the_iteration_run_records_the_floor_the_candidate_was_held_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    for key in ("WANDB_DIR", "WANDB_DATA_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR"):
        monkeypatch.delenv(key, raising=False)  # wandb_environ puts them under the project
    served = {"small_people_served_agreement@0.05": 0.6}
    record = {
        "promoted": False,
        "reason": "small people as served 0.600 is below the floor 0.855 ...",
        "candidate_version": "m-2",
        "production_version_before": "m-1",
        "feedback_labels": 300,
        "candidate": {"real_photos": served},
        "production": {"real_photos": {"small_people_served_agreement@0.05": 0.94}},
        "floor": {"model": "movenet-lightning", "start": 0.950437, "fraction": 0.9},
    }
    log_iteration(tmp_path, record)
    (run_file,) = (tmp_path / "wandb").glob("offline-run-*/run-*.wandb")
    summary: dict[str, Any] = {}
    deadline = time.monotonic() + 60  # wandb-core, a separate process, may still be writing when finish() returns
    while "floor/start" not in summary and time.monotonic() < deadline:
        time.sleep(0.2)
        for entry in wandb_records(run_file):
            if entry.WhichOneof("record_type") == "summary":
                summary |= {item.key: json.loads(item.value_json) for item in entry.summary.update}
    assert summary["floor/start"] == 0.950437 and summary["floor/value"] == 0.855393, summary
    assert summary["candidate/real_photos/small_people_served_agreement@0.05"] == 0.6
