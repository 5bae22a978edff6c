"""The prediction service behind the routes: model holder, micro-batcher, review policy, prediction log.

`PoseService.predict` is the one path every prediction takes: decode and crop off the event
loop, batched inference on the model pinned at the start of the request, the review decision,
and a non-blocking hand-off to the prediction log.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import math
import os
import sys
import time
import uuid
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import IO, Any

import numpy as np
import orjson
from PIL import Image

from posewheel.decoding import Box, pose_score
from posewheel.imagestore import ImageStore
from posewheel.review import Outbox, ReviewDrainer
from posewheel.schema import KEYPOINT_NAMES
from posewheel.tracks import PoseTracker
from serving.engine import MicroBatcher, ModelLoadError, Prepared, ServedModel
from serving.images import decode_image, parse_boxes
from serving.predlog import PredictionLog, PredictionRecord
from serving.prometheus import ServingMetrics
from serving.reload import ModelHolder
from serving.review_policy import ReviewPolicy
from serving.settings import ServingSettings

# Requests waiting for a lane hold their decoded image when detection is left to the lane: up to
# (lanes + 1) x max_batch_size of them (MicroBatcher's budget), 48 at the defaults, 144 MB at 1 MP.
# Bigger images are searched for people on the decoding thread, which holds only their crops after.
DEFER_MAX_PIXELS = 1_000_000

log = logging.getLogger(__name__)


class NotReadyError(RuntimeError):
    """No model is loaded yet (answered 503)."""


class PoseService:
    """Everything one server process runs; `start()` inside the event loop, `stop()` on shutdown."""

    def __init__(self, settings: ServingSettings) -> None:
        self.settings = settings
        self.metrics = ServingMetrics()
        self.holder = ModelHolder(
            settings.resolved_model_dir(),
            settings.resolved_threads(),
            settings.execution_provider,
            self.metrics,
            on_swap=self._on_swap,
            find_options=settings.find_options(),
        )
        self.policy = ReviewPolicy(
            settings.review_threshold,
            settings.review_random_fraction,
            -(-settings.review_cap_per_hour // settings.workers),  # each worker its share of the hourly cap
            seed=settings.review_seed,
            on_capped=self.metrics.review_capped.inc,
            flag_uncertain=settings.review_uncertain_persons,
        )
        self.predlog = PredictionLog(
            settings.resolved_predictions_dir(),
            ImageStore(settings.resolved_image_store_dir()),
            Outbox(settings.resolved_outbox_dir()),
            self.metrics,
            max_queue=settings.log_queue_size,
            on_review_queued=self._wake_drainer,
            file_tag=f".{os.getpid()}" if settings.workers > 1 else "",
        )
        self.batcher: MicroBatcher | None = None
        self.drainer: ReviewDrainer | None = None
        self._drain_lock: IO[bytes] | None = None
        self._watch_task: asyncio.Task[None] | None = None

    @property
    def model(self) -> ServedModel | None:
        return self.holder.current

    async def start(self) -> None:
        """Load the model (a failure leaves the server up but not ready), start batcher, writer, watcher."""
        # The event loop gives up the GIL at every socket wait; with the default 5 ms switch interval
        # it then waits up to 5 ms behind a decoding thread to get it back (the convoy effect).
        sys.setswitchinterval(self.settings.gil_switch_interval_ms / 1000.0)
        self.batcher = MicroBatcher(
            self.settings.max_batch_size,
            self.settings.max_wait_ms / 1000.0,
            self._on_batch,
            prepare_threads=self.settings.prepare_threads or self.settings.worker_cores(),
            lanes=self.settings.resolved_lanes(),
        )
        self.batcher.start()
        self.predlog.start()
        if self.settings.review_drain:
            self._start_drainer()
        try:
            await self.holder.reload()
        except ModelLoadError as exc:
            log.error("no model to serve yet (will keep looking every %.1fs): %s", self.settings.reload_poll_s, exc)
        self._watch_task = asyncio.get_running_loop().create_task(self.holder.watch(self.settings.reload_poll_s))

    async def stop(self) -> None:
        if self._watch_task is not None:
            self._watch_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch_task
        if self.batcher is not None:
            await self.batcher.stop()
        await asyncio.to_thread(self.predlog.stop)
        if self.drainer is not None:
            try:
                self.drainer.stop()
            except Exception:  # another package's worker must not break our shutdown
                log.exception("the review outbox drainer failed to stop")

    async def predict(
        self,
        data: bytes,
        raw_boxes: object,
        keep_image: bool = False,
        max_persons: int | None = None,
        score_threshold: float | None = None,
        carry: tuple[PoseTracker, float] | None = None,
    ) -> Prediction:
        """Predict poses for the image `data` and person boxes `raw_boxes` (JSON text, a list or None).

        Without boxes, a model with a person detector answers every person it finds (at most
        `max_persons` scoring at least `score_threshold`; the card's defaults when None), best first,
        and an empty list when it finds nobody; a model without one treats the whole image as one person.
        `keep_image`: return the decoded image too (only /v1/render needs it; holding every decoded
        image until its answer is sent made memory grow with concurrency).
        `carry`: the image is a frame of a stream, (the stream's tracker before it, the frame's time): without boxes,
        its people the detector misses are looked for where their tracks say (`ServedModel.with_carried`).
        Raises serving.images.InputError for bad input, NotReadyError before the first model.
        """
        model, batcher = self.holder.current, self.batcher
        if model is None or batcher is None:
            raise NotReadyError(self.holder.last_error or "no model loaded yet")
        started = time.perf_counter()
        if isinstance(raw_boxes, str | bytes) and raw_boxes:
            with contextlib.suppress(ValueError):  # parse_boxes reports bad JSON with its message
                raw_boxes = json.loads(raw_boxes)
        expected = len(raw_boxes) if isinstance(raw_boxes, list) and raw_boxes else 1
        prepare = partial(self.prepare_request, data, raw_boxes, model, keep_image, max_persons, score_threshold, carry)
        answer = await batcher.submit(model, prepare, expected)
        image, (width, height), found, found_scores, unsure = answer.extra
        points, scores = answer.points, answer.scores
        boxes, box_scores = answer.boxes(found, found_scores)
        poses = pose_dicts(boxes, points, scores, box_scores, answer.kept)
        pose_scores = [p["score"] for p in poses]
        reason = self.policy.decide(pose_scores, unsure)
        request_id = uuid.uuid4().hex
        for s in pose_scores:
            self.metrics.pose_score.observe(s)
        for s in scores.ravel().tolist():
            self.metrics.keypoint_score.observe(s)
        if reason is not None:
            self.metrics.review_queued.labels(reason=reason).inc()
        record = PredictionRecord(
            request_id=request_id,
            model_version=model.version,
            image=data,
            width=width,
            height=height,
            poses=poses,
            review_reason=reason,
            latency_ms=(time.perf_counter() - started) * 1000.0,
        )
        queued = False
        if reason is not None:
            # "queued" is a promise to the client: the review item is on disk before we answer. Only
            # the reviewed share of requests pays this write; the rest is logged in the background.
            queued = await asyncio.to_thread(self.predlog.queue_review_now, record)
        self.predlog.submit(record)
        return Prediction(request_id, model.version, width, height, poses, reason, queued, image)

    def prepare_request(
        self,
        data: bytes,
        raw_boxes: object,
        model: ServedModel,
        keep_image: bool,
        max_persons: int | None = None,
        score_threshold: float | None = None,
        carry: tuple[PoseTracker, float] | None = None,
    ) -> Prepared:
        """A request's preparation for the batcher: decode, then validate the boxes and crop, here on a decoding
        thread; or, without boxes and with a detector, find the people and crop on the inference lane
        (`Prepared.finish`) when the image is at most DEFER_MAX_PIXELS, here otherwise. Only `keep_image`
        keeps the decoded image past its crops."""
        decoded = decode_image(data, self.settings.max_pixels, small=not keep_image)
        size = (decoded.width, decoded.height)
        image = decoded.image if keep_image else None
        if model.detector is None or raw_boxes not in (None, "", []):
            boxes = parse_boxes(raw_boxes, decoded.width, decoded.height, self.settings.max_boxes)
            return model.read_boxes(decoded.pixels, boxes, (image, size, boxes, None, 0))

        def find_people() -> Prepared:
            people = model.find_people(decoded.pixels, score_threshold, max_persons, carry)
            found = people.detected
            assert found is not None
            return replace(people, extra=(image, size, found.box_list, found.scores.tolist(), found.unsure))

        if decoded.width * decoded.height > DEFER_MAX_PIXELS:
            return find_people()  # here: a waiting request must not hold a big decoded image (memory bound)
        # on the inference lane (Prepared.finish), holding the decoded image until then
        return Prepared(np.zeros((0, 3, model.spec.height, model.spec.width), np.float32), [], finish=find_people)

    def _on_batch(self, size: int, depth: int) -> None:
        self.metrics.batch_size.observe(size)
        self.metrics.queue_depth.set(depth)

    def _on_swap(self, model: ServedModel) -> None:
        drainer = self.drainer
        if drainer is not None:
            try:
                drainer.set_model_version(model.version)
            except Exception:  # Label Studio being down must not stop a model swap
                log.exception("could not tell Label Studio about model %s", model.version)

    def _wake_drainer(self) -> None:
        drainer = self.drainer
        if drainer is not None:
            drainer.wake()

    def _start_drainer(self) -> None:
        try:
            from labeling.queue import start_drainer  # type: ignore[import-not-found,unused-ignore]
        except ImportError as exc:
            log.error("POSEWHEEL_REVIEW_DRAIN is on but labeling.queue.start_drainer is not importable: %s", exc)
            return
        outbox_dir = self.settings.resolved_outbox_dir()
        if self.settings.workers > 1 and not self._take_drain_lock(outbox_dir):
            log.info("another worker drains %s into Label Studio", outbox_dir)
            return
        try:
            self.drainer = start_drainer(outbox_dir)
        except Exception:  # the server serves even when the review queue cannot start
            log.exception("the review outbox drainer for %s did not start; items stay in the outbox", outbox_dir)
            return
        log.info("draining review items from %s into Label Studio", outbox_dir)

    def _take_drain_lock(self, outbox_dir: Path) -> bool:
        """With several workers only one drains the outbox: the one holding its lock file (until it exits)."""
        outbox_dir.mkdir(parents=True, exist_ok=True)
        handle = open(outbox_dir / ".drainer.lock", "ab")  # noqa: SIM115 - held for the process's life
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._drain_lock = handle
        return True


def pose_dicts(
    boxes: list[Box],
    points: np.ndarray,
    scores: np.ndarray,
    box_scores: list[float] | None = None,
    kept: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    """Poses as `PredictedPose`-shaped dicts from boxes, keypoints (N, 17, 2) pixels and scores (N, 17);
    `box_scores`: the detector's score of each box (None: the caller gave the boxes; NaN: a person of a stream the
    detector missed, carried by their track, `ServedModel.with_carried`; both answered as null). `kept`: the rows to
    answer, in the detector's order (`ServedModel.answer`: one answer per person found); None: all.

    Plain dicts, serialised by the C JSON encoder: the values come from our own arrays (finite,
    scores clipped to [0, 1] by decode_to_image), so pydantic models per keypoint would only
    re-check them on the event loop of every request.
    """
    if kept is not None:
        rows = kept.tolist()
        boxes, points, scores = [boxes[i] for i in rows], points[rows], scores[rows]
        box_scores = None if box_scores is None else [box_scores[i] for i in rows]
    totals = pose_score(scores).tolist()
    xy, sc = points.tolist(), scores.tolist()
    return [
        {
            "box": list(box),
            "box_score": None if box_scores is None or math.isnan(box_scores[i]) else box_scores[i],
            "score": totals[i],
            "keypoints": [
                {"name": name, "x": xy[i][k][0], "y": xy[i][k][1], "score": sc[i][k]}
                for k, name in enumerate(KEYPOINT_NAMES)
            ],
        }
        for i, box in enumerate(boxes)
    ]


@dataclass
class Prediction:
    """One answered request: what /v1/predict returns (see schemas.PredictResponse) plus the image."""

    request_id: str
    model_version: str
    width: int
    height: int
    poses: list[dict[str, Any]]
    review_reason: str | None
    review_queued: bool
    image: Image.Image | None = None  # the upright decoded image, kept only when asked for

    def to_json(self, poses: list[dict[str, Any]] | None = None, tracks: dict[str, Any] | None = None) -> bytes:
        """The PredictResponse body; with a stream's frame, its `poses` with their track ids and its `tracks`."""
        body = {
            "request_id": self.request_id,
            "model_version": self.model_version,
            "width": self.width,
            "height": self.height,
            "poses": self.poses if poses is None else poses,
            "review": {"queued": self.review_queued, "reason": self.review_reason},
        }
        if tracks is not None:
            body["tracks"] = tracks
        return orjson.dumps(body)
