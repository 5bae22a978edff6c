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
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    # a server shares its cores with HTTP and decoding threads: idle ORT threads must sleep, not spin
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
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


@dataclass
class Prepared:
    """A request's network input (N, 3, H, W) float32, its N crop windows, and what the caller wants back."""

    inputs: np.ndarray
    windows: list[Box]
    extra: Any = None


@dataclass
class Answer:
    """A request's keypoints (N, 17, 2) image pixels, scores (N, 17) in [0, 1], and its `Prepared.extra`."""

    points: np.ndarray
    scores: np.ndarray
    extra: Any = None


@dataclass(eq=False)
class _Job:
    model: PoseModel
    prepare: Callable[[], Prepared]
    size: int
    future: asyncio.Future[Answer]


class MicroBatcher:
    """Groups concurrent requests into batches of at most `max_batch_size` person crops.

    Each batch goes through two stages off the event loop: `prepare` (decode and crop, split
    over `prepare_threads` threads; Pillow and NumPy release the GIL) and one ONNX Runtime run
    with the heatmap decoding (one inference thread; ONNX Runtime spreads it over its own
    intra-op threads). Two batches are in flight at once, so the next batch is decoded while
    the current one is inferred. Each request gets back only its own rows, or its own error.
    While both stages are busy, new requests queue up, so batches grow with the load by
    themselves; after a batch of several requests the next one waits up to `max_wait_s` to
    fill, and a lone request never waits.
    """

    def __init__(
        self,
        max_batch_size: int,
        max_wait_s: float,
        on_batch: Callable[[int, int], None] | None = None,
        prepare_threads: int = 2,
    ) -> None:
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self._on_batch = on_batch  # (batch size in crops, requests still queued)
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._carry: _Job | None = None
        self._prepare_threads = max(1, prepare_threads)
        self._prepare_pool = ThreadPoolExecutor(self._prepare_threads, thread_name_prefix="posewheel-prepare")
        # Decoded images are the big allocations: at most `prepare_threads` at once, on whichever
        # thread prepares (a lone request prepares on the inference thread), so memory is bounded by
        # threads, not by the number of clients.
        self._decode_slots = threading.BoundedSemaphore(self._prepare_threads)
        self._infer_pool = ThreadPoolExecutor(1, thread_name_prefix="posewheel-infer")
        self._slots = asyncio.Semaphore(2)
        self._inflight: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None

    @property
    def depth(self) -> int:
        """Requests waiting for a batch."""
        return self._queue.qsize() + (self._carry is not None)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="posewheel-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)
        self._prepare_pool.shutdown(wait=True)
        self._infer_pool.shutdown(wait=True)

    async def submit(self, model: PoseModel, prepare: Callable[[], Prepared], size: int = 1) -> Answer:
        """Run `prepare()` then `model` on its crops within a batch; `size` is the expected crop count.

        Raises whatever `prepare` raised (e.g. serving.images.InputError) for this request only.
        """
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()

        def bounded_prepare() -> Prepared:
            with self._decode_slots:
                return prepare()

        self._queue.put_nowait(_Job(model, bounded_prepare, max(1, size), future))
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        busy = False  # the last batch held several requests: wait a little for company
        while True:
            await self._slots.acquire()
            batch = await self._collect(loop.time() + (self.max_wait_s if busy else 0.0))
            live = [job for job in batch if not job.future.done()]  # a cancelled request needs no answer
            busy = len(live) > 1
            if not live:
                self._slots.release()
                continue
            task = loop.create_task(self._process(live))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)

    async def _collect(self, deadline: float) -> list[_Job]:
        """The next batch: the first queued job, then more of the same model until full or `deadline`."""
        loop = asyncio.get_running_loop()
        first = self._carry if self._carry is not None else await self._queue.get()
        self._carry = None
        batch, size = [first], first.size
        while size < self.max_batch_size:
            if self._queue.empty():
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    job = await asyncio.wait_for(self._queue.get(), remaining)
                except TimeoutError:
                    break
            else:
                job = self._queue.get_nowait()
            if job.model is not first.model or size + job.size > self.max_batch_size:
                self._carry = job  # another model version or too big: it opens the next batch
                break
            batch.append(job)
            size += job.size
        return batch

    async def _process(self, jobs: list[_Job]) -> None:
        loop = asyncio.get_running_loop()
        model = jobs[0].model
        try:
            try:
                if len(jobs) == 1:  # a lone request: one thread hop instead of two (no batch to overlap with)
                    outcomes = await loop.run_in_executor(self._infer_pool, _prepare_infer, model, jobs)
                else:
                    n = -(-len(jobs) // self._prepare_threads)  # ceil: one chunk per prepare thread
                    chunks = [jobs[i : i + n] for i in range(0, len(jobs), n)]
                    parts = await asyncio.gather(
                        *(loop.run_in_executor(self._prepare_pool, _prepare, c) for c in chunks)
                    )
                    prepared = [p for part in parts for p in part]
                    outcomes = await loop.run_in_executor(self._infer_pool, _infer, model, prepared)
            except Exception as exc:  # the batch's requests get the error, the batcher lives on
                log.exception("inference failed for a batch of %d requests", len(jobs))
                outcomes = [exc] * len(jobs)
        finally:
            self._slots.release()
        if self._on_batch is not None:
            self._on_batch(sum(o.points.shape[0] for o in outcomes if isinstance(o, Answer)), self.depth)
        for job, outcome in zip(jobs, outcomes, strict=True):
            if job.future.done():
                continue
            if isinstance(outcome, Answer):
                job.future.set_result(outcome)
            else:
                job.future.set_exception(outcome)


def _prepare(jobs: list[_Job]) -> list[Prepared | Exception]:
    """Prepare each job; a failure is that request's own answer (re-raised in it), not the batch's."""
    out: list[Prepared | Exception] = []
    for job in jobs:
        try:
            out.append(job.prepare())
        except Exception as exc:  # noqa: BLE001 - re-raised in the request that sent this input
            out.append(exc)
    return out


def _prepare_infer(model: PoseModel, jobs: list[_Job]) -> list[Answer | Exception]:
    return _infer(model, _prepare(jobs))


def _infer(model: PoseModel, prepared: list[Prepared | Exception]) -> list[Answer | Exception]:
    """One batch over the prepared jobs; returns each job's Answer (or its preparation error) in order."""
    ready = [p for p in prepared if isinstance(p, Prepared)]
    if not ready:
        return [p for p in prepared if isinstance(p, Exception)]
    inputs = ready[0].inputs if len(ready) == 1 else np.concatenate([p.inputs for p in ready])
    points, scores = model.infer_decode(inputs, [w for p in ready for w in p.windows])
    outcomes: list[Answer | Exception] = []
    start = 0
    for p in prepared:
        if isinstance(p, Exception):
            outcomes.append(p)
            continue
        n = len(p.windows)
        outcomes.append(Answer(points[start : start + n], scores[start : start + n], p.extra))
        start += n
    return outcomes
