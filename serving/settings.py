"""The server's knobs, from the environment (`POSEWHEEL_*`), one pydantic-settings class.

    POSEWHEEL_PORT=9000 POSEWHEEL_MAX_BATCH_SIZE=32 posewheel serve

Where things live (`POSEWHEEL_ROOT`, `POSEWHEEL_VAR_DIR`, the prediction log, image store and outbox)
is `posewheel.settings.ProjectSettings`, which this class extends: one class reads each path, with
the project's one default-path convention; tests point them at temporary folders.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from posewheel.artifact import production_dir
from posewheel.detection import FindOptions
from posewheel.settings import ProjectSettings


class ServingSettings(ProjectSettings):
    """Everything `posewheel serve` can be told; each field is `POSEWHEEL_<NAME>` in the environment."""

    model_config = SettingsConfigDict(env_prefix="POSEWHEEL_", extra="ignore")

    host: str = Field("127.0.0.1", description="interface to listen on; loopback unless told otherwise")
    port: int = Field(8000, ge=0, le=65535)
    model_dir: Path | None = Field(None, description="artifact folder or symlink; default models/production")
    api_key: SecretStr | None = Field(None, description="if set, predict/render need this X-API-Key")
    admin_key: SecretStr | None = Field(None, description="X-API-Key for /v1/admin/*; unset disables them")

    workers: int = Field(
        1,
        ge=1,
        le=64,
        description="server processes sharing the port (uvicorn workers); each runs inference_lanes batches at once",
    )
    max_batch_size: int = Field(16, ge=1, le=1024, description="person crops per inference batch")
    max_wait_ms: float = Field(2.0, ge=0.0, le=1000.0, description="how long a batch waits to fill, ms")
    inference_lanes: int = Field(
        0,
        ge=0,
        le=64,
        description="batches inferred at once per worker, from one queue, each on its own thread; "
        "0 = the worker's CPU cores on CPU (one ONNX Runtime thread each), 1 on CUDA",
    )
    intra_op_threads: int = Field(
        0, ge=0, description="ONNX Runtime threads per inference lane; 0 = CPU cores / workers / lanes"
    )
    prepare_threads: int = Field(0, ge=0, description="threads decoding images per worker; 0 = CPU cores / workers")
    execution_provider: Literal["cpu", "cuda"] = "cpu"
    gil_switch_interval_ms: float = Field(0.5, gt=0.0, le=100.0, description="sys.setswitchinterval, ms")

    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1024, description="request body limit, bytes")
    max_pixels: int = Field(40_000_000, ge=1, description="decoded image limit, width * height")
    max_boxes: int = Field(64, ge=1, description="person boxes per request")
    detector_tiles: bool = Field(
        True,
        description="the detector looks again, in tiles, at a picture at least twice its input where it found "
        "a small person (posewheel.detection.with_tiles); false: the whole picture only",
    )
    detector_pose_confirms: bool = Field(
        True,
        description="a box the detector scored under its threshold, down to half of it, is answered where the "
        "pose network reads a confident pose in it (posewheel.detection.confirmed); false: the threshold alone",
    )
    detector_read_alone: bool = Field(
        True,
        description="a person whose crop holds another person's box (the detector's or the caller's) is read with "
        "everything outside their own box blanked (posewheel.detection.read_alone); false: every crop as it is",
    )
    detector_turns: bool = Field(
        True,
        description="a person the pose network reads unsure is read turned a quarter, a half and three quarters too, "
        "for one lying down or upside down (posewheel.detection.read_upright), and a picture those reads say lies "
        "turned is looked at again upright (posewheel.detection.picture_turn); false: upright only",
    )
    detector_probe_turns: bool = Field(
        True,
        description="with detector_turns, a picture in doubt (the detector's best box under 0.5, nobody read upright "
        "and sure, or one against the turned reads or beside a second box) is looked at small turned each way, and "
        "turned upright where the detector is sure of more people (posewheel.detection.probed_turn); false: the turned "
        "reads' votes alone",
    )
    max_requests_in_flight: int = Field(
        256, ge=1, description="requests served at once per worker; more get 503 at once (health and metrics exempt)"
    )
    max_connections: int = Field(
        1024, ge=1, description="open connections and tasks per worker (uvicorn limit_concurrency); more get 503"
    )
    body_timeout_s: float = Field(
        15.0, gt=0.0, description="longest wait for the next piece of a request body, s; a whole body gets 4x (408)"
    )

    review_threshold: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="queue poses whose score (mean joint peak) is below this; 0 (off): the least confident "
        "taught no more than random picks (docs/flywheel.md)",
    )
    review_random_fraction: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="queue this share at random; unset: the share that fills the hourly cap at the last hour's traffic",
    )
    review_uncertain_persons: bool = Field(
        False,
        description="also queue an image with a person the detector was unsure of (off: it flagged 38% of drawn "
        "street scenes, crowding out the random sample)",
    )
    review_cap_per_hour: int = Field(200, ge=0, description="at most this many review items per hour")
    review_drain: bool = Field(False, description="start labeling's outbox drainer in the server")
    review_seed: int | None = Field(None, description="seed of the random review sample (tests)")

    reload_poll_s: float = Field(2.0, gt=0.0, description="how often to look for a new production model, s")
    log_queue_size: int = Field(10_000, ge=1, description="predictions waiting for the background writer")

    @model_validator(mode="after")
    def _key_beyond_loopback(self) -> ServingSettings:
        """A server any other machine can reach needs an API key: refuse to start without one."""
        if not is_loopback(self.host) and (self.api_key is None or not self.api_key.get_secret_value()):
            raise ValueError(
                f"POSEWHEEL_HOST={self.host} listens beyond loopback, so POSEWHEEL_API_KEY must be set "
                f"(predictions, renders and the model card then need it as X-API-Key)"
            )
        return self

    def find_options(self) -> FindOptions:
        """How the served detector finds people (detector_tiles, detector_pose_confirms, detector_read_alone,
        detector_turns, detector_probe_turns)."""
        return FindOptions(
            tiles=self.detector_tiles,
            pose_confirms=self.detector_pose_confirms,
            read_alone=self.detector_read_alone,
            turns=self.detector_turns,
            probe_turn=self.detector_probe_turns,
        )

    def resolved_model_dir(self) -> Path:
        """The artifact folder to serve: `model_dir` or the project's `models/production`."""
        return self.model_dir if self.model_dir is not None else production_dir(self.models_dir)

    def worker_cores(self) -> int:
        """This process's CPUs shared out between the workers."""
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        return max(1, cores // self.workers)

    def resolved_lanes(self) -> int:
        """Inference lanes of each worker: the setting, else one per core of the worker on CPU, one on CUDA.

        benchmarks/serve_load.py, MoveNet Lightning at concurrency 32 on 2 cores: one process of two
        one-thread lanes answered 90.5 req/s, two uvicorn workers of one 1-thread lane 83.5.
        """
        if self.inference_lanes > 0:
            return self.inference_lanes
        return 1 if self.execution_provider == "cuda" else self.worker_cores()

    def resolved_threads(self) -> int:
        """ONNX Runtime intra-op threads of each lane: the setting, else the worker's cores shared by its lanes."""
        if self.intra_op_threads > 0:
            return self.intra_op_threads
        return max(1, self.worker_cores() // self.resolved_lanes())

    def resolved_predictions_dir(self) -> Path:
        return self.predictions_dir

    def resolved_image_store_dir(self) -> Path:
        return self.image_store_dir

    def resolved_outbox_dir(self) -> Path:
        return self.outbox_dir


def is_loopback(host: str) -> bool:
    """True when `host` is only reachable from this machine (127.0.0.0/8, ::1, localhost)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name or an interface we cannot judge: treat as reachable
