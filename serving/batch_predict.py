"""`posewheel predict`: images, folders and videos through a model artifact in this process, no HTTP.

    posewheel predict photos/ --out results.json
    posewheel predict clip.mp4 --fps 5 --out clip.json --render overlays/
    posewheel predict photos/ street.jpg --model models/v3 --review

It runs the server's own engine, step for step as `PoseService.prepare_request` does: `decode_image`
(same EXIF and size limits), the artifact's person detector (or the whole image as one person),
`prepare` and `ServedModel.infer_decode`, so an image's keypoints are the API's. Images are read,
decoded, searched for people and cropped on `threads` threads while the crops of several images
run as one ONNX Runtime batch. Videos are decoded with PyAV (`--every N` frames or `--fps F`) and
turned upright by their display matrix, as photos are by EXIF; each video's persons get track ids
(`posewheel.tracks.PoseTracker`, one per video, fed its frames in order), and a person the detector misses in a
frame is looked for where their track says (`ServedModel.with_carried`, as the API does for a stream's frame sent
with its tracks; `carry`). With `review`, each prediction meets
the server's review policy and a picked one goes into the server's outbox through the server's own
writer (`PredictionLog.queue_review_now`).
"""

from __future__ import annotations

import io
import json
import math
import os
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

from PIL import Image

from posewheel import atomic
from posewheel.decoding import Box
from posewheel.imagestore import ImageStore
from posewheel.picture import Pixels
from posewheel.review import Outbox
from posewheel.tracks import PoseTracker
from serving.engine import Answer, Prepared, ServedModel
from serving.heif import as_decodable
from serving.images import InputError, decode_image, parse_boxes
from serving.overlay import draw_overlay, pose_arrays, render_png
from serving.predlog import PredictionLog, PredictionRecord
from serving.prometheus import ServingMetrics
from serving.review_policy import ReviewPolicy
from serving.service import pose_dicts
from serving.settings import ServingSettings

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".mpo", ".heic", ".heif"})
VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv"})
PERSON_CATEGORY_ID = 1  # COCO's person


@dataclass(frozen=True)
class Source:
    """One input file: `name` is how results name it (the path as found), `rel` its path under the argument."""

    path: Path
    name: str
    rel: Path
    kind: Literal["image", "video"]


@dataclass(frozen=True)
class Options:
    """How to run: frames of videos (`every` N-th, or `fps` per second), batching, limits, outputs."""

    batch_size: int = 16  # person crops per ONNX Runtime run
    threads: int = 1  # prepare threads (read, decode, detect, crop)
    every: int = 1
    fps: float | None = None
    max_persons: int | None = None
    score_threshold: float | None = None
    render_dir: Path | None = None
    review: bool = False
    carry: bool = True  # videos: a person the detector misses in a frame is looked for where their track says


@dataclass
class Summary:
    """What a run did: counts, wall time, and the files that failed with why."""

    images: int = 0
    frames: int = 0
    persons: int = 0
    tracks: int = 0  # persons followed through the videos (track ids started)
    carried: int = 0  # of the persons, those the detector missed in a video frame, answered where their track was
    seconds: float = 0.0
    reviewed: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # file name -> what went wrong

    @property
    def per_second(self) -> float:
        """Images and video frames predicted per second of wall time."""
        return (self.images + self.frames) / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        text = (
            f"{self.images} images, {self.frames} frames, {self.persons} persons"
            + (f" ({self.tracks} tracked through the videos" if self.tracks else "")
            + (f", {self.carried} carried by their tracks" if self.tracks and self.carried else "")
            + (")" if self.tracks else "")
            + f" in {self.seconds:.1f} s "
            f"({self.per_second:.1f} images/s)"
        )
        if self.reviewed:
            text += f"; {self.reviewed} queued for review"
        if self.failed:
            text += f"; {len(self.failed)} file{'s' if len(self.failed) > 1 else ''} failed"
        return text


def find_sources(paths: Sequence[Path]) -> tuple[list[Source], dict[str, str]]:
    """Images and videos named by `paths` (folders searched recursively, sorted); missing paths as failures.

    A file named directly is taken whatever its suffix (a video by its suffix, else an image, so an
    unknown file is reported by the decoder); in folders only known image and video suffixes count.
    """
    sources: list[Source] = []
    missing: dict[str, str] = {}
    for root in paths:
        if root.is_dir():
            for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")):
                suffix = path.suffix.lower()
                if suffix in IMAGE_SUFFIXES or suffix in VIDEO_SUFFIXES:
                    kind: Literal["image", "video"] = "video" if suffix in VIDEO_SUFFIXES else "image"
                    sources.append(Source(path, str(path), path.relative_to(root), kind))
        elif root.is_file():
            kind = "video" if root.suffix.lower() in VIDEO_SUFFIXES else "image"
            sources.append(Source(root, str(root), Path(root.name), kind))
        else:
            missing[str(root)] = "no such file or folder"
    return sources, missing


def coco_results(
    poses: Sequence[dict[str, Any]],
    image_id: int,
    file_name: str,
    frame_index: int | None,
    timestamp_s: float | None,
    track_ids: Sequence[int] | None = None,
) -> list[dict[str, Any]]:
    """COCO keypoint results of one image or frame: per person keypoints [x, y, score] * 17 (pixels), score, bbox;
    a video frame's persons also carry frame_index, timestamp_s and their track_id (posewheel.tracks)."""
    out = []
    for n, pose in enumerate(poses):
        entry: dict[str, Any] = {
            "image_id": image_id,
            "file_name": file_name,
            "category_id": PERSON_CATEGORY_ID,
            "keypoints": [v for k in pose["keypoints"] for v in (k["x"], k["y"], k["score"])],
            "score": pose["score"],
            "bbox": list(pose["box"]),
            "box_score": pose["box_score"],
        }
        if frame_index is not None:
            entry["frame_index"] = frame_index
            entry["timestamp_s"] = timestamp_s
        if track_ids is not None:
            entry["track_id"] = int(track_ids[n])
        out.append(entry)
    return out


def render_name(rel: Path, suffix: str) -> Path:
    """Where the overlay of input `rel` goes under the render folder: its name, plus `suffix` unless it has it."""
    return rel if rel.suffix.lower() == suffix else rel.with_name(rel.name + suffix)


@dataclass
class _Item:
    """One image or video frame on its way through the pipeline."""

    source: Source
    image_id: int
    frame: Any = None  # av.VideoFrame for a video frame; None: read the image file
    frame_index: int | None = None
    timestamp_s: float | None = None
    frame_rate: Fraction | None = None  # of the sampled frames (the overlay video's rate)
    tracker: PoseTracker | None = None  # a video frame: its video's persons' tracks, moved on frame by frame


@dataclass
class _Ready:
    """An item decoded, searched and cropped: network input (N, 3, H, W), N windows, what finishing needs."""

    item: _Item
    prepared: Prepared  # the crops, and the detector's persons when it found them
    boxes: list[Box]
    box_scores: list[float] | None
    unsure: int
    width: int
    height: int
    image: Image.Image | None  # kept only to draw or review
    data: bytes | None  # the file's bytes, kept only to review


class FrameSampler:
    """Which frames of a video to predict: every `every`-th, or (with `fps`) the first of each 1/fps slot."""

    def __init__(self, every: int = 1, fps: float | None = None) -> None:
        self.every, self.fps = every, fps
        self._last_slot = -1

    def keep(self, index: int, timestamp_s: float) -> bool:
        if self.fps is None:
            return index % self.every == 0
        slot = math.floor(timestamp_s * self.fps + 1e-6)  # slots from t=0, so the sampling never drifts
        if slot <= self._last_slot:
            return False
        self._last_slot = slot
        return True

    def rate(self, source_rate: Fraction | None) -> Fraction:
        """Frames per second of the sampled frames (for the overlay video)."""
        if self.fps is not None:
            wanted = Fraction(self.fps).limit_denominator(1001)
            return min(wanted, source_rate) if source_rate else wanted
        return (source_rate or Fraction(25)) / self.every


class BatchPredictor:
    """Runs sources through one loaded model; see the module docstring. Not thread-safe: one run at a time."""

    def __init__(
        self,
        model: ServedModel,
        settings: ServingSettings,
        options: Options,
        on_item: Callable[[], None] | None = None,
        on_failure: Callable[[str, str], None] | None = None,
    ) -> None:
        self.model, self.settings, self.options = model, settings, options
        self.on_item = on_item or (lambda: None)
        self.on_failure = on_failure or (lambda name, why: None)
        self.results: list[dict[str, Any]] = []
        self.summary = Summary()
        self._next_id = 1
        self._pending: list[_Ready] = []
        self._crops = 0
        self._renders: list[tuple[str, Future[None]]] = []
        self._video_out: _VideoWriter | None = None
        self._policy: ReviewPolicy | None = None
        self._predlog: PredictionLog | None = None
        if options.review:
            self._policy = ReviewPolicy(
                settings.review_threshold,
                settings.review_random_fraction,
                settings.review_cap_per_hour,
                seed=settings.review_seed,
                flag_uncertain=settings.review_uncertain_persons,
            )
            self._predlog = PredictionLog(
                settings.resolved_predictions_dir(),
                ImageStore(settings.resolved_image_store_dir()),
                Outbox(settings.resolved_outbox_dir()),
                ServingMetrics(),
                max_queue=settings.log_queue_size,
                file_tag=f".predict-{os.getpid()}",  # never interleaved with a server's own log file
            )

    def run(self, sources: Sequence[Source]) -> Summary:
        """Predict every source in order; results in `self.results`, counts and failures in the summary."""
        started = time.perf_counter()
        threads = max(1, self.options.threads)
        lookahead = 2 * self.options.batch_size + threads  # items decoded ahead of inference, at most
        if self._predlog is not None:
            self._predlog.start()
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="posewheel-predict")
        try:
            window: deque[tuple[_Item, Future[_Ready]]] = deque()
            for item in self._items(sources):
                window.append((item, self._pool.submit(self._prepare, item)))
                if len(window) >= lookahead:
                    self._take(*window.popleft())
            while window:
                self._take(*window.popleft())
            self._flush()
            self._close_video()
            for name, render in self._renders:
                try:
                    render.result()
                except (OSError, ValueError) as exc:
                    self._fail(name, f"overlay not written: {exc}")
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)
            if self._predlog is not None:
                self._predlog.stop()
            self._close_video()  # after an error: the overlay so far stays a playable file
        self.summary.seconds = time.perf_counter() - started
        return self.summary

    # --- reading ------------------------------------------------------------------------------------

    def _items(self, sources: Sequence[Source]) -> Iterator[_Item]:
        for source in sources:
            if source.kind == "image":
                yield _Item(source, self._new_id())
            else:
                yield from self._frames(source)

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id - 1

    def _frames(self, source: Source) -> Iterator[_Item]:
        """The sampled frames of a video, decoded here (FFmpeg's own threads) and converted on a prepare thread."""
        import av

        sampler = FrameSampler(self.options.every, self.options.fps)
        try:
            with av.open(str(source.path)) as container:
                if not container.streams.video:
                    raise ValueError("no video stream")
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                source_rate = Fraction(stream.average_rate) if stream.average_rate else None
                rate = sampler.rate(source_rate)
                tracker = PoseTracker()
                for index, frame in enumerate(container.decode(stream)):
                    t = float(frame.time) if frame.time is not None else index / float(source_rate or 25)
                    if sampler.keep(index, t):
                        yield _Item(source, self._new_id(), frame, index, round(t, 6), rate, tracker)
        except (av.FFmpegError, OSError, ValueError) as exc:
            self._fail(source.name, f"video could not be read: {exc}")

    # --- preparing (prepare threads) -----------------------------------------------------------------

    def _prepare(self, item: _Item) -> _Ready:
        """As PoseService.prepare_request: decode (file) or convert (frame), find the people, crop them."""
        data: bytes | None = None
        keep_image = self.options.render_dir is not None or (self.options.review and item.frame is not None)
        image: Pixels
        if item.frame is None:
            data = as_decodable(item.source.path.read_bytes(), self.settings.max_pixels)  # HEIC: its upright JPEG
            decoded = decode_image(data, self.settings.max_pixels, small=not keep_image)
            image, kept = decoded.pixels, decoded.image if keep_image else None
        else:
            frame = upright_frame(item.frame)
            if frame.width * frame.height > self.settings.max_pixels:
                raise InputError(f"the frame is {frame.width}x{frame.height}; the limit is {self.settings.max_pixels}")
            image, kept = frame, frame if keep_image else None
        box_scores: list[float] | None = None
        unsure = 0
        if self.model.detector is not None:
            # a video frame, as a stream's frame sent to the API with its tracks: settled after the frame before moved
            # the tracker on (`_flush`)
            carry = None
            if item.tracker is not None and self.options.carry:
                carry = (item.tracker, item.timestamp_s or 0.0)
            prepared = self.model.find_people(image, self.options.score_threshold, self.options.max_persons, carry)
            assert prepared.detected is not None
            found = prepared.detected
            boxes, box_scores, unsure = found.box_list, found.scores.tolist(), found.unsure
        else:
            boxes = parse_boxes(None, image.width, image.height, self.settings.max_boxes)
            prepared = self.model.read_boxes(image, boxes)
        return _Ready(
            item,
            prepared,
            boxes,
            box_scores,
            unsure,
            image.width,
            image.height,
            kept,
            data if self.options.review else None,
        )

    # --- inference and results (this thread, in input order) -----------------------------------------

    def _take(self, item: _Item, future: Future[_Ready]) -> None:
        try:
            ready = future.result()
        except (InputError, OSError, ValueError) as exc:  # InputError: what the API answers 4xx to
            self._fail(item.source.name, str(exc) if item.frame is None else f"frame {item.frame_index}: {exc}")
            return
        item.frame = None  # the decoded frame is no longer needed
        self._pending.append(ready)
        self._crops += len(ready.prepared.windows)
        if self._crops >= self.options.batch_size:
            self._flush()

    def _flush(self) -> None:
        """One batched run over the crops of every pending item (`ServedModel.answers`), then each item's results
        in order: a video frame is settled after the frame before it moved their tracker on, so that the persons its
        detector misses are carried by their tracks (`ServedModel.with_carried`) as a stream's are by the API."""
        pending, self._pending, self._crops = self._pending, [], 0
        answers = self.model.answers([r.prepared for r in pending])  # an item with nobody adds no crop
        for ready, answer in zip(pending, answers, strict=True):
            self._finish(ready, answer)

    def _finish(self, ready: _Ready, answer: Answer) -> None:
        item, source = ready.item, ready.item.source
        boxes, box_scores = answer.boxes(ready.boxes, ready.box_scores)
        poses = pose_dicts(boxes, answer.points, answer.scores, box_scores, answer.kept)
        track_ids = None if item.frame_index is None else self._track(item, poses)
        self.results.extend(
            coco_results(poses, item.image_id, source.name, item.frame_index, item.timestamp_s, track_ids)
        )
        self.summary.persons += len(poses)
        if item.frame_index is None:
            self.summary.images += 1
        else:
            self.summary.frames += 1
            if ready.box_scores is not None:  # the detector's persons: a null box score is one their track carried
                self.summary.carried += sum(pose["box_score"] is None for pose in poses)
        if self._policy is not None:
            self._review(ready, poses)
        if self.options.render_dir is not None and ready.image is not None:
            if item.frame_index is None:
                target = self.options.render_dir / render_name(source.rel, ".png")
                self._renders.append((source.name, self._pool.submit(_write_overlay, target, ready.image, poses)))
            else:
                self._write_frame(ready, poses, track_ids)
        self.on_item()

    def _track(self, item: _Item, poses: list[dict[str, Any]]) -> list[int]:
        """Track ids of a video frame's persons: one PoseTracker per video, fed its frames in order."""
        tracker = item.tracker
        assert tracker is not None
        before = tracker.started
        ids = tracker.update(*pose_arrays(poses), item.timestamp_s or 0.0)
        self.summary.tracks += tracker.started - before
        return [int(i) for i in ids]

    def _review(self, ready: _Ready, poses: list[dict[str, Any]]) -> None:
        """The server's decision and writer: PoseService.predict's review step for one image or frame."""
        assert self._policy is not None and self._predlog is not None
        reason = self._policy.decide([p["score"] for p in poses], ready.unsure)
        if reason is None:
            return
        data = ready.data
        if data is None:  # a video frame: stored as the upright RGB pixels it was predicted on
            assert ready.image is not None
            buffer = io.BytesIO()
            ready.image.save(buffer, format="JPEG", quality=95)
            data = buffer.getvalue()
        record = PredictionRecord(
            request_id=uuid.uuid4().hex,
            model_version=self.model.version,
            image=data,
            width=ready.width,
            height=ready.height,
            poses=poses,
            review_reason=reason,
            upright=ready.data is None,
            source=review_source(ready.item),
        )
        if self._predlog.queue_review_now(record):
            self.summary.reviewed += 1
        self._predlog.submit(record)  # the prediction log line the review item refers to

    def _write_frame(self, ready: _Ready, poses: list[dict[str, Any]], track_ids: list[int] | None) -> None:
        item = ready.item
        assert ready.image is not None and item.frame_rate is not None
        writer = self._video_out
        if writer is None or writer.source != item.source:
            self._close_video()
            target = self.options.render_dir / render_name(item.source.rel, ".mp4")  # type: ignore[operator]
            try:
                writer = self._video_out = _VideoWriter(item.source, target, item.frame_rate, ready.image.size)
            except (OSError, ValueError) as exc:
                self._fail(item.source.name, f"overlay video not written: {exc}")
                return
        try:
            writer.write(draw_overlay(ready.image, poses, track_ids))
        except (OSError, ValueError) as exc:
            self._fail(item.source.name, f"overlay video not written: {exc}")

    def _close_video(self) -> None:
        writer, self._video_out = self._video_out, None
        if writer is not None:
            try:
                writer.close()
            except (OSError, ValueError) as exc:
                self._fail(writer.source.name, f"overlay video not finished: {exc}")

    def _fail(self, name: str, why: str) -> None:
        if name not in self.summary.failed:
            self.summary.failed[name] = why
            self.on_failure(name, why)


def review_source(item: _Item) -> str:
    """Where a review item's image came from: the file as named, or VIDEO#t=SECONDS (a media-fragment time)."""
    if item.frame_index is None:
        return item.source.name
    return f"{item.source.name}#t={item.timestamp_s or 0.0:.3f}"


def upright_frame(frame: Any) -> Image.Image:
    """An av.VideoFrame as the RGB image a player shows: turned by its display matrix (phones film sideways),
    as `decode_image` turns a photo by its EXIF orientation. Flips in the matrix are not applied."""
    image: Image.Image = frame.to_image()
    turn = {90: Image.Transpose.ROTATE_90, 180: Image.Transpose.ROTATE_180, 270: Image.Transpose.ROTATE_270}
    degrees = round(frame.rotation or 0) % 360  # counter-clockwise, as PIL's ROTATE_*
    if degrees in turn:
        return image.transpose(turn[degrees])
    return image.rotate(degrees, expand=True) if degrees else image


def _write_overlay(target: Path, image: Image.Image, poses: list[dict[str, Any]]) -> None:
    atomic.write_bytes(target, render_png(image, poses))


class _VideoWriter:
    """An H.264 MP4 of overlaid frames (even-sized: yuv420p wants it), written beside and renamed when done."""

    def __init__(self, source: Source, target: Path, rate: Fraction, size: tuple[int, int]) -> None:
        import av

        self.source, self.target = source, target
        target.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp.mp4")
        self._container = av.open(str(self._tmp), mode="w")
        self._stream = self._container.add_stream("libx264", rate=rate)
        self._size = (size[0] - size[0] % 2, size[1] - size[1] % 2)
        self._stream.width, self._stream.height = self._size
        self._stream.pix_fmt = "yuv420p"
        self._stream.options = {"crf": "23", "preset": "veryfast"}

    def write(self, image: Image.Image) -> None:
        import av

        if image.size != self._size:
            image = image.crop((0, 0, *self._size))
        for packet in self._stream.encode(av.VideoFrame.from_image(image)):
            self._container.mux(packet)

    def close(self) -> None:
        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
        finally:
            self._container.close()
        os.replace(self._tmp, self.target)


def estimate_frames(source: Source, options: Options) -> int:
    """About how many frames of a video will be predicted (for the progress bar); 0 when unknown."""
    import av

    try:
        with av.open(str(source.path)) as container:
            stream = container.streams.video[0]
            count = stream.frames
            seconds = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else None
            if seconds is None and container.duration:
                seconds = container.duration / 1_000_000
            if not count and seconds and stream.average_rate:
                count = round(seconds * float(stream.average_rate))
    except (av.FFmpegError, OSError, ValueError, IndexError):
        return 0
    if options.fps is not None:
        return math.ceil(seconds * options.fps) if seconds else count
    return -(-count // options.every)


def write_results(path: Path, results: list[dict[str, Any]]) -> None:
    """The COCO keypoint results list, written atomically."""
    atomic.write_text(path, json.dumps(results) + "\n")
