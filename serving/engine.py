"""The inference engine: an ONNX Runtime session per model version and a micro-batcher in front of it.

A request is decoded and cropped in a worker thread (`prepare`), its crops join whatever other
requests' crops are waiting (`MicroBatcher`), one batched `session.run` computes all heatmaps,
and the decoding to image pixels runs in the same inference thread; each request gets back only
its own rows. A request pins the model it was prepared for, so a hot reload never mixes versions
inside a batch and requests in flight finish on the model they started with.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

from posewheel.artifact import MODEL_FILE, ArtifactError, ModelCard, load_card
from posewheel.decoding import Box, InputSpec, crop_box, crop_image, decode_to_image, normalize
from posewheel.schema import NUM_KEYPOINTS

log = logging.getLogger(__name__)


class ModelLoadError(RuntimeError):
    """An artifact could not be loaded or failed its smoke test; the message names the folder."""


@dataclass(eq=False)
class PoseModel:
    """One loaded model version: its card, input spec and ONNX Runtime session."""

    card: ModelCard
    spec: InputSpec
    session: ort.InferenceSession
    folder: Path
    fingerprint: str
    input_name: str
    output_name: str
    loaded_at: float = field(default_factory=time.time)

    @property
    def version(self) -> str:
        return self.card.version

    def infer(self, inputs: np.ndarray) -> np.ndarray:
        """(N, 3, H, W) float32 network input -> (N, 17, H/stride, W/stride) float32 heatmaps."""
        (heatmaps,) = self.session.run([self.output_name], {self.input_name: inputs})
        return np.asarray(heatmaps)

    def infer_decode(self, inputs: np.ndarray, windows: Sequence[Box]) -> tuple[np.ndarray, np.ndarray]:
        """Heatmaps of N crops decoded to image pixels: keypoints (N, 17, 2), scores (N, 17) in [0, 1]."""
        return decode_to_image(self.infer(inputs), windows, self.spec)


def providers_for(execution_provider: str) -> list[str]:
    """ONNX Runtime providers for 'cpu' or 'cuda' (CUDA first when this onnxruntime build has it)."""
    available = ort.get_available_providers()
    if execution_provider == "cuda":
        if "CUDAExecutionProvider" not in available:
            log.warning("CUDAExecutionProvider unavailable (have %s); serving on the CPU", available)
        else:
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def load_model(folder: Path, fingerprint: str, threads: int, execution_provider: str = "cpu") -> PoseModel:
    """Load the artifact in `folder`, check its graph against its card and run a smoke test.

    Raises ModelLoadError naming the folder and what was wrong; never returns a model that
    cannot answer a batch of 1 and 2 with finite heatmaps of the card's shape.
    """
    try:
        card = load_card(folder)
    except ArtifactError as exc:
        raise ModelLoadError(str(exc)) from exc
    spec = card.input_spec()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(folder / MODEL_FILE), options, providers=providers_for(execution_provider))
    except Exception as exc:  # onnxruntime raises its own untyped errors for bad graphs
        raise ModelLoadError(f"{folder / MODEL_FILE}: ONNX Runtime cannot load it: {exc}") from exc
    input_names = [i.name for i in session.get_inputs()]
    output_names = [o.name for o in session.get_outputs()]
    if card.input.input_name not in input_names:
        raise ModelLoadError(f"{folder}: card input {card.input.input_name!r} is not a graph input {input_names}")
    if card.output.name not in output_names:
        raise ModelLoadError(f"{folder}: card output {card.output.name!r} is not a graph output {output_names}")
    model = PoseModel(card, spec, session, folder, fingerprint, card.input.input_name, card.output.name)
    smoke_test(model)
    return model


def smoke_test(model: PoseModel) -> None:
    """Run batches of 1 and 2 grey crops (also the warm-up); raise ModelLoadError on a wrong answer."""
    spec = model.spec
    want_h, want_w = spec.heatmap_size
    for n in (1, 2):
        crops = np.full((n, spec.height, spec.width, 3), 128, np.uint8)
        try:
            heatmaps = model.infer(normalize(crops, spec))
        except Exception as exc:  # any failure of the graph means: refuse this model
            raise ModelLoadError(f"{model.folder}: smoke test failed running a batch of {n}: {exc}") from exc
        if heatmaps.shape != (n, NUM_KEYPOINTS, want_h, want_w):
            raise ModelLoadError(
                f"{model.folder}: smoke test: heatmaps of shape {heatmaps.shape} for a batch of {n}, "
                f"the card says {(n, NUM_KEYPOINTS, want_h, want_w)}"
            )
        if not np.isfinite(heatmaps).all():
            raise ModelLoadError(f"{model.folder}: smoke test: heatmaps hold NaN or infinity")


def prepare(image: Image.Image, boxes: Sequence[Box], spec: InputSpec) -> tuple[np.ndarray, list[Box]]:
    """Crop each person box out of an RGB image: network input (N, 3, H, W) float32 and N crop windows."""
    windows = [crop_box(box, spec) for box in boxes]
    crops = np.stack([crop_image(image, window, spec) for window in windows])
    return normalize(crops, spec), windows


@dataclass(eq=False)
class _Job:
    model: PoseModel
    inputs: np.ndarray
    windows: list[Box]
    future: asyncio.Future[tuple[np.ndarray, np.ndarray]]

    @property
    def size(self) -> int:
        return len(self.windows)


class MicroBatcher:
    """Groups concurrent requests' crops into batches of at most `max_batch_size` crops.

    A batch is sent as soon as it is full, or when no other request is on its way (nothing is
    queued and no request is still being decoded), or after `max_wait_s`, whichever is first:
    a lone request never waits, a burst fills batches. One inference thread runs the batches
    (ONNX Runtime spreads each over its own intra-op threads).
    """

    def __init__(
        self, max_batch_size: int, max_wait_s: float, on_batch: Callable[[int, int], None] | None = None
    ) -> None:
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self._on_batch = on_batch  # (batch size in crops, queue depth in requests)
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._incoming = 0
        self._arrived = asyncio.Event()
        self._carry: _Job | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="posewheel-infer")
        self._task: asyncio.Task[None] | None = None

    @property
    def depth(self) -> int:
        """Requests waiting for a batch (queued plus still being decoded)."""
        return self._queue.qsize() + self._incoming + (self._carry is not None)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="posewheel-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._executor.shutdown(wait=True)

    def expect(self) -> None:
        """Announce a request that is being decoded; it will `submit` or `abandon`."""
        self._incoming += 1

    def abandon(self) -> None:
        """An announced request failed before submitting."""
        self._incoming -= 1
        self._arrived.set()

    async def submit(
        self, model: PoseModel, inputs: np.ndarray, windows: list[Box], announced: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """Queue N crops for `model`; returns keypoints (N, 17, 2) image pixels and scores (N, 17)."""
        if announced:
            self._incoming -= 1
        future: asyncio.Future[tuple[np.ndarray, np.ndarray]] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Job(model, inputs, windows, future))
        self._arrived.set()
        return await future

    async def _next_job(self, deadline: float) -> _Job | None:
        """The next queued job, waiting until `deadline` only while another request is on its way."""
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue.empty():
                return self._queue.get_nowait()
            remaining = deadline - loop.time()
            if self._incoming <= 0 or remaining <= 0:
                return None
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                return None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            first = self._carry if self._carry is not None else await self._queue.get()
            self._carry = None
            batch, size = [first], first.size
            deadline = loop.time() + self.max_wait_s
            while size < self.max_batch_size:
                job = await self._next_job(deadline)
                if job is None:
                    break
                if job.model is not first.model or size + job.size > self.max_batch_size:
                    self._carry = job  # another model version or too big: it opens the next batch
                    break
                batch.append(job)
                size += job.size
            live = [job for job in batch if not job.future.done()]  # a cancelled request needs no answer
            if not live:
                continue
            if self._on_batch is not None:
                self._on_batch(sum(j.size for j in live), self.depth)
            try:
                results = await loop.run_in_executor(self._executor, _run_batch, live)
            except Exception as exc:  # the batch's requests get the error, the batcher lives on
                log.exception("inference failed for a batch of %d requests", len(live))
                for job in live:
                    if not job.future.done():
                        job.future.set_exception(exc)
                continue
            for job, result in zip(live, results, strict=True):
                if not job.future.done():
                    job.future.set_result(result)


def _run_batch(jobs: list[_Job]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Run one batch (all jobs share a model) and split the decoded rows back per job."""
    model = jobs[0].model
    inputs = jobs[0].inputs if len(jobs) == 1 else np.concatenate([j.inputs for j in jobs])
    windows = [w for j in jobs for w in j.windows]
    points, scores = model.infer_decode(inputs, windows)
    out, start = [], 0
    for job in jobs:
        out.append((points[start : start + job.size], scores[start : start + job.size]))
        start += job.size
    return out
