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
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from PIL import Image

from posewheel.artifact import MODEL_FILE, ArtifactError, DetectorCard, ModelCard, load_card
from posewheel.decoding import Box, InputSpec, crop_box, crop_images, decode_outputs, normalize, whole_image_box
from posewheel.detection import (
    PROBE_SIDE,
    Crop,
    FindOptions,
    answer_once,
    answer_with_parts,
    blanked_boxes,
    blanked_parts,
    blanked_reread,
    carried_boxes,
    carried_persons,
    joined_upright,
    person_cap,
    persons_to_read,
    picture_boxes_back,
    picture_points_back,
    picture_quarters,
    read_alone,
    read_upright,
    sure_when_turned,
    turned_picture,
)
from posewheel.picture import Pixels
from posewheel.schema import NUM_KEYPOINTS
from posewheel.tracks import PoseTracker

log = logging.getLogger(__name__)


class ModelLoadError(RuntimeError):
    """An artifact could not be loaded or failed its smoke test; the message names the folder."""


ALL_ON = FindOptions()  # every way of finding and reading people on, as served by default
UNSURE_BAND = 0.05  # detector scores this close to its threshold make an image worth a person's look


@dataclass(frozen=True)
class Detected:
    """The persons the detector found in one image, to be read: boxes (N, 4) image pixels and scores (N,), best
    first, down to the floor of its `FindOptions`; at or above `threshold` a box is a person, under it only where
    the pose network confirms it (`posewheel.detection.answer_once`). `unsure`: how many scored within
    UNSURE_BAND of the threshold, kept or not."""

    boxes: np.ndarray
    scores: np.ndarray
    threshold: float
    unsure: int

    @property
    def box_list(self) -> list[Box]:
        return [(float(x), float(y), float(w), float(h)) for x, y, w, h in self.boxes]


@dataclass
class Prepared:
    """An image's (a request's) network input (N, 3, H, W) float32, its N crop windows, what the caller wants back.

    `finish`: the compute-heavy rest of the preparation (finding the people with the detector, then
    cropping), left for the inference lane that takes the request. A lane then runs detector and
    pose network on one thread, as many of them as there are cores; on the decoding threads, the
    detector competed with the lanes for the same two cores (c32 answered 0.79x the offline limit).
    """

    inputs: np.ndarray
    windows: list[Box]
    extra: Any = None
    finish: Callable[[], Prepared] | None = None
    # where the detector found the persons: cut more boxes out of the same image (`prepare`), for
    # `posewheel.detection.answer_parts`
    crop: Crop | None = None
    detected: Detected | None = None  # the detector's boxes and scores of the crops, when it found them
    alone: np.ndarray | None = None  # which of them were read alone (posewheel.detection.read_alone)
    # where the detector found the persons: find them again in the picture turned (quarter turns counter-clockwise),
    # for `posewheel.detection.picture_turn`; and the picture's size (width, height)
    turned: Callable[[int], Prepared] | None = None
    size: tuple[int, int] = (0, 0)
    # where the detector found the persons: how many it is sure of in the picture turned, looked at small
    # (`posewheel.detection.probed_turn`)
    probe: Callable[[], tuple[np.ndarray, np.ndarray]] | None = None
    # where the detector found the persons of a stream's frame: the stream's tracks before it and the frame's time, for
    # its people the detector missed (`ServedModel.with_carried`)
    carry: tuple[PoseTracker, float] | None = None


@dataclass
class Answer:
    """A request's keypoints (N, 17, 2) image pixels, scores (N, 17) in [0, 1], and its `Prepared.extra`;
    `kept`: the rows to answer when the detector found its persons (one per person, `ServedModel.answer`),
    None for all of them. `added`: persons found besides the detector's boxes, their boxes (Q, 4) image pixels and
    box scores (Q,): one standing in the empty side of a box drawn around two (`posewheel.detection.answer_parts`,
    its parent's score), then those found in the picture turned upright (`posewheel.detection.picture_turn`);
    their poses are the last Q rows of `points` and `scores`, and in `kept` where answered."""

    points: np.ndarray
    scores: np.ndarray
    extra: Any = None
    kept: np.ndarray | None = None
    added: tuple[np.ndarray, np.ndarray] | None = None

    def joined(self, points: np.ndarray, scores: np.ndarray, boxes: np.ndarray, box_scores: np.ndarray) -> Answer:
        """This answer with Q more persons answered after its own: poses (Q, 17, 2), joint scores (Q, 17), boxes (Q, 4)
        image pixels and box scores (Q,), `added` after those added already."""
        assert self.kept is not None
        first = len(self.points)
        added_boxes, added_scores = self.added if self.added is not None else (np.zeros((0, 4)), np.zeros(0))
        return Answer(
            np.concatenate([self.points, points]),
            np.concatenate([self.scores, scores]),
            self.extra,
            np.concatenate([self.kept, first + np.arange(len(points))]),
            (np.concatenate([added_boxes, boxes]), np.concatenate([added_scores, box_scores])),
        )

    def boxes(self, found: list[Box], box_scores: list[float] | None) -> tuple[list[Box], list[float] | None]:
        """Every row's box and detector score: the `found` ones, then the `added` ones."""
        if self.added is None:
            return found, box_scores
        added_boxes, added_scores = self.added
        boxes: list[Box] = [*found, *((float(x), float(y), float(w), float(h)) for x, y, w, h in added_boxes)]
        return boxes, None if box_scores is None else [*box_scores, *map(float, added_scores)]


@dataclass(eq=False)
class PersonDetector:
    """The artifact's person detector (card.detector): finds the people of a request without boxes."""

    card: DetectorCard
    spec: InputSpec
    session: ort.InferenceSession

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        outputs = self.session.run(self.card.names, {self.card.input_name: batch})
        return dict(zip(self.card.names, outputs, strict=True))

    def find(
        self,
        image: Pixels,
        score_threshold: float | None = None,
        max_persons: int | None = None,
        options: FindOptions = ALL_ON,
    ) -> Detected:
        """The boxes to read in `image` (the card's threshold and cap if None): those scored at the threshold and,
        at the card's threshold where the pose network may confirm them, those down to `FindOptions.floor` of it
        that are not a part of a sure one (`posewheel.detection.boxes_to_read`). A threshold the caller gives is
        applied exactly: persons scored under it are left out. `options`: tiles and weak boxes, as served
        (`ServedModel.find_options`)."""
        threshold = self.card.score_threshold if score_threshold is None else score_threshold
        cap = person_cap(self.card.kind, self.card.max_persons, max_persons)
        found, scores, read = persons_to_read(
            image, self.spec, self.run, threshold, cap, self.card.kind, options,
            exact=score_threshold is not None, look_down_to=threshold - UNSURE_BAND,
        )  # fmt: skip
        unsure = int((np.abs(scores - threshold) < UNSURE_BAND).sum())
        return Detected(found[read], scores[read], threshold, unsure)

    def detect(
        self,
        image: Pixels,
        score_threshold: float | None = None,
        max_persons: int | None = None,
        options: FindOptions = ALL_ON,
    ) -> tuple[list[Box], np.ndarray, int]:
        """Boxes (image pixels) and scores of the people in `image` the detector is sure of, at or above the
        threshold, best first (the card's defaults if None), and how many people it was unsure of (`find`)."""
        found = self.find(image, score_threshold, max_persons, options)
        sure = found.scores >= found.threshold
        return [b for b, s in zip(found.box_list, sure, strict=True) if s], found.scores[sure], found.unsure

    def sure_when_turned(
        self, image: Pixels, threshold: float, max_persons: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """How many persons the detector is sure of in `image` turned 1, 2, 3 quarters, looked at small, and its best
        score there, (3,) each (`posewheel.detection.sure_when_turned`)."""
        cap = person_cap(self.card.kind, self.card.max_persons, max_persons)
        return sure_when_turned(image, self.card.input_spec(PROBE_SIDE), self.run, threshold, cap, self.card.kind)


@dataclass(eq=False)
class ServedModel:
    """One loaded model version: its card, input spec, ONNX Runtime session and person detector (if any)."""

    card: ModelCard
    spec: InputSpec
    session: ort.InferenceSession
    folder: Path
    fingerprint: str
    input_name: str
    output_names: tuple[str, ...]  # what the card's decoding reads; output_names[0] is the heatmaps
    loaded_at: float = field(default_factory=time.time)
    detector: PersonDetector | None = None
    # how people are found and read: tiles and weak boxes for the detector's; read_alone for its and the caller's
    find_options: FindOptions = ALL_ON

    @property
    def version(self) -> str:
        return self.card.version

    def infer(self, inputs: np.ndarray) -> dict[str, np.ndarray]:
        """(N, 3, H, W) float32 network input -> the card's outputs by name, (N, C, H/stride, W/stride) each."""
        outputs = self.session.run(list(self.output_names), {self.input_name: inputs})
        return {name: np.asarray(value) for name, value in zip(self.output_names, outputs, strict=True)}

    def infer_decode(self, inputs: np.ndarray, windows: Sequence[Box]) -> tuple[np.ndarray, np.ndarray]:
        """N crops decoded to image pixels (the card's decoding): keypoints (N, 17, 2), scores (N, 17) in [0, 1]."""
        if not len(windows):  # an image where the detector found nobody
            return np.zeros((0, NUM_KEYPOINTS, 2)), np.zeros((0, NUM_KEYPOINTS))
        return decode_outputs(self.infer(inputs), windows, self.spec, self.card.output.kind)

    def find_people(
        self,
        image: Pixels,
        score_threshold: float | None = None,
        max_persons: int | None = None,
        carry: tuple[PoseTracker, float] | None = None,
    ) -> Prepared:
        """The persons the detector finds in `image` (`PersonDetector.find`), cropped for the pose network
        (`prepare`); where its `FindOptions.read_alone`, one whose crop holds another person's box is blanked
        outside its own (`posewheel.detection.read_alone`). What the server, `posewheel predict` and the
        benchmarks' offline limits do for an image sent without boxes; `answer` reads it. `carry`: `image` is a
        frame of a stream, (its tracks before it, the frame's time in seconds): its people the detector misses are
        looked for where their tracks say (`with_carried`)."""
        if self.detector is None:
            raise ValueError(f"model {self.version} has no person detector: send the person boxes")
        found = self.detector.find(image, score_threshold, max_persons, self.find_options)
        crop = partial(prepare, image, spec=self.spec)
        turned = partial(self.find_turned, image, score_threshold, max_persons)
        probe = partial(self.detector.sure_when_turned, image, found.threshold, max_persons)
        prepared = self.read_boxes(image, found.box_list)
        size = (image.width, image.height)
        return replace(prepared, detected=found, crop=crop, turned=turned, size=size, probe=probe, carry=carry)

    def find_turned(
        self, image: Pixels, score_threshold: float | None, max_persons: int | None, quarters: int
    ) -> Prepared:
        """`find_people` in `image` turned `quarters` quarter turns counter-clockwise (`turned_picture`)."""
        return self.find_people(turned_picture(image, quarters), score_threshold, max_persons)

    def read_boxes(self, image: Pixels, boxes: Sequence[Box], extra: Any = None) -> Prepared:
        """The person boxes a caller gives, cropped for the pose network (`prepare`), read as `find_people` reads
        the detector's: where `FindOptions.read_alone`, one whose crop holds another person's box is blanked
        outside its own (`posewheel.detection.read_alone`), so a box in a group gets its own person's pose and
        not a neighbour's. Every box is answered (`answer`), repeats or not."""
        inputs, windows = prepare(image, boxes, self.spec)
        alone = None
        if self.find_options.read_alone:
            inputs, alone = read_alone(inputs, np.asarray(boxes, dtype=np.float64).reshape(-1, 4), windows, self.spec)
        return Prepared(inputs, windows, extra, alone=alone)

    def answer(self, prepared: Sequence[Prepared]) -> list[Answer]:
        """Each image's `Answer`, in order: one batched run of the pose network over all their crops, decoded to
        image pixels; then, for an image whose persons the detector found (`find_people`), one answer per person
        (`settle`)."""
        return list(self.answers(prepared))

    def answers(self, prepared: Sequence[Prepared]) -> Iterator[Answer]:
        """`answer`'s answers one at a time: the batched run first, then each image settled only when its answer is
        asked for, so that a caller reading a stream's frames as one batch moves their tracker on by a frame's answer
        before the next frame, whose `Prepared.carry` holds that tracker, is settled (`posewheel predict` on a
        video)."""
        if not prepared:
            return
        inputs = prepared[0].inputs if len(prepared) == 1 else np.concatenate([p.inputs for p in prepared])
        points, scores = self.infer_decode(inputs, [w for p in prepared for w in p.windows])
        start = 0
        for p in prepared:
            own = slice(start, start + len(p.windows))
            yield self.settle(p, points[own], scores[own])
            start = own.stop

    def settle(self, p: Prepared, points: np.ndarray, scores: np.ndarray, turn_picture: bool = True) -> Answer:
        """One image's `Answer` from its crops' poses (N, 17, 2) image pixels and scores (N, 17). Where the detector
        found its persons, one answer per person (`posewheel.detection.answer_once`: a box under the threshold only
        where its pose is confirmed, a pose repeating a better one's read again blanked outside its box unless it
        was read alone already), with those lying down or upside down read turned (`read_upright`), one in the
        empty side of a box around two (`answer_with_parts`), in a picture stored sideways or upside down
        (`picture_turn`, `probed_turn`, where `turn_picture`), those found in it turned upright (`with_turned`), and,
        in a stream's frame, those its tracks carry (`with_carried`)."""
        if p.detected is None:  # the caller's boxes: each answered
            return Answer(points, scores, p.extra)
        found, how = p.detected, self.find_options
        turns, votes = None, None
        if how.turns:  # one lying down or upside down, read turned
            points, scores, turns, votes = read_upright(p.inputs, p.windows, points, scores, self.infer_decode)
        reread = blanked_reread(p.inputs, found.boxes, p.windows, self.spec, self.infer_decode, turns)
        kept, points, scores = answer_once(
            found.boxes, points, scores, found.scores, reread, found.threshold, p.alone, options=how
        )
        quarters = 0
        if turn_picture and how.turn_picture and votes is not None and turns is not None and p.turned is not None:
            probe = p.probe if how.probe_turn else None  # in doubt, the detector looks at it small, turned each way
            quarters = picture_quarters(votes, turns, scores, kept, found.scores, found.threshold, probe)
        added = None
        if how.read_parts and p.crop is not None:  # one in the empty side of a box around two
            read_parts = blanked_parts(p.crop, self.spec, self.infer_decode)
            kept, points, scores, parents, part_boxes = answer_with_parts(
                found.boxes, points, scores, found.scores, kept, read_parts, how
            )
            added = (part_boxes, found.scores[parents]) if len(parents) else None
        answer = Answer(points, scores, p.extra, kept, added)
        if quarters and p.turned is not None:
            answer = self.with_turned(answer, found, p.turned(quarters), p.size, quarters)
        if p.carry is not None and p.crop is not None:
            answer = self.with_carried(answer, found, p.crop, p.size, p.carry)
        return answer

    def with_carried(
        self, answer: Answer, found: Detected, crop: Crop, size: tuple[int, int], carry: tuple[PoseTracker, float]
    ) -> Answer:
        """`answer` (of a stream's frame of `size`, `crop` cutting boxes out of it) with the people its tracks saw and
        it lost: `carry` is (the stream's tracker before this frame, the frame's time); each track seen in the frame
        before that none of the answers links to (`PoseTracker.unlinked`), moved on to now and still inside the
        picture (`carried_boxes`), is read blanked outside its box (`blanked_boxes`) and answered where the read is
        that person again (`posewheel.detection.carried_persons`). Their box score is NaN: the detector did not find
        them. A track lost two frames running is not read again (the detector may find them again): reading every
        live track, up to a second after it was lost, found the same people (`benchmarks/live_steadiness.py`) for
        about ten reads of each person gone for good."""
        tracker, timestamp_s = carry
        assert answer.kept is not None
        rows = answer.kept
        boxes = np.asarray(answer.boxes(found.box_list, None)[0], dtype=np.float64).reshape(-1, 4)[rows]
        held = (boxes, answer.points[rows], answer.scores[rows])
        unlinked = tracker.unlinked(held[1], held[2], boxes, timestamp_s)
        lost = [track for track in (tracker.tracks[n] for n in unlinked) if not track.missed]  # seen the frame before
        moved = [track.moved(timestamp_s) for track in lost]
        inside, track_boxes = carried_boxes(np.asarray([box for _, box in moved]), *size)
        if not inside.any():
            return answer
        track_points = np.stack([points for points, _ in moved])[inside]
        track_scores = np.stack([track.scores for track in lost])[inside]
        read = blanked_boxes(crop, self.spec, self.infer_decode)(track_boxes[inside])
        tracks = (track_boxes[inside], track_points, track_scores)
        carried, carried_at = carried_persons(held, tracks, read, size, self.find_options)
        if not len(carried):
            return answer
        return answer.joined(read[0][carried], read[1][carried], carried_at, np.full(len(carried), np.nan))

    def with_turned(
        self, answer: Answer, found: Detected, again: Prepared, size: tuple[int, int], quarters: int
    ) -> Answer:
        """`answer` (of a picture of `size`) with the persons found in it turned `quarters` (`again`, found by
        `find_people`; settled without turning it again), turned back into the picture: those the pose network is
        sure of, then those of `answer` it is sure of that repeat none of them
        (`posewheel.detection.joined_upright`)."""
        points, scores = self.infer_decode(again.inputs, again.windows)
        upright = self.settle(again, points, scores, turn_picture=False)
        if upright.kept is None or again.detected is None or not len(upright.kept):
            return answer
        assert answer.kept is not None
        rows = upright.kept
        turned_boxes, turned_scores = upright.boxes(again.detected.box_list, again.detected.scores.tolist())
        new_boxes = picture_boxes_back(np.asarray(turned_boxes, dtype=np.float64)[rows], size, quarters)
        new_points = picture_points_back(upright.points[rows], size, quarters)
        own_boxes = np.asarray(answer.boxes(found.box_list, None)[0], dtype=np.float64).reshape(-1, 4)[answer.kept]
        own = (own_boxes, answer.points[answer.kept], answer.scores[answer.kept])
        kept, new = joined_upright(own, (new_boxes, new_points, upright.scores[rows]), self.find_options)
        if not new.any():
            return answer
        new_box_scores = np.asarray(turned_scores, dtype=np.float64)[rows][new]
        return replace(answer, kept=answer.kept[kept]).joined(
            new_points[new], upright.scores[rows][new], new_boxes[new], new_box_scores
        )


def providers_for(execution_provider: str) -> list[str]:
    """ONNX Runtime providers for 'cpu' or 'cuda' (CUDA first when this onnxruntime build has it)."""
    available = ort.get_available_providers()
    if execution_provider == "cuda":
        if "CUDAExecutionProvider" not in available:
            log.warning("CUDAExecutionProvider unavailable (have %s); serving on the CPU", available)
        else:
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def load_model(
    folder: Path,
    fingerprint: str,
    threads: int,
    execution_provider: str = "cpu",
    find_options: FindOptions | None = None,
) -> ServedModel:
    """Load the artifact in `folder`, check its graph against its card and run a smoke test. `find_options`:
    how people are found and read (`posewheel.detection.FindOptions`, `ServedModel.find_options`; None: all on).

    Raises ModelLoadError naming the folder and what was wrong; never returns a model that
    cannot answer a batch of 1 and 2 with finite heatmaps of the card's shape.
    """
    try:
        card = load_card(folder)
    except ArtifactError as exc:
        raise ModelLoadError(str(exc)) from exc
    spec = card.input_spec()
    options = session_options(threads)
    try:
        session = ort.InferenceSession(str(folder / MODEL_FILE), options, providers=providers_for(execution_provider))
    except Exception as exc:  # onnxruntime raises its own untyped errors for bad graphs
        raise ModelLoadError(f"{folder / MODEL_FILE}: ONNX Runtime cannot load it: {exc}") from exc
    input_names = [i.name for i in session.get_inputs()]
    output_names = [o.name for o in session.get_outputs()]
    if card.input.input_name not in input_names:
        raise ModelLoadError(f"{folder}: card input {card.input.input_name!r} is not a graph input {input_names}")
    missing = [name for name in card.output.names if name not in output_names]
    if missing:
        raise ModelLoadError(f"{folder}: card outputs {missing} are not graph outputs {output_names}")
    wanted = (card.output.name, *[n for n in card.output.names if n != card.output.name])
    model = ServedModel(
        card, spec, session, folder, fingerprint, card.input.input_name, wanted, find_options=find_options or ALL_ON
    )
    if card.detector is not None:
        model.detector = load_detector(folder, card.detector, options, providers_for(execution_provider))
    smoke_test(model)
    return model


def session_options(threads: int) -> ort.SessionOptions:
    """ONNX Runtime options for a server: `threads` intra-op threads that sleep when idle."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    # a server shares its cores with HTTP and decoding threads: idle ORT threads must sleep, not spin
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def load_detector(
    folder: Path,
    card: DetectorCard,
    options: ort.SessionOptions,
    providers: list[str],
) -> PersonDetector:
    """The artifact's person detector; ModelLoadError when its graph does not answer what its card says."""
    path = folder / card.file
    try:
        session = ort.InferenceSession(str(path), options, providers=providers)
        detector = PersonDetector(card, card.input_spec(), session)
        detector.detect(Image.new("RGB", (64, 48), (128, 128, 128)))  # smoke test and warm-up
    except Exception as exc:  # onnxruntime raises its own untyped errors; decoding a wrong graph fails anywhere
        raise ModelLoadError(f"{path}: the person detector cannot run: {exc}") from exc
    return detector


def smoke_test(model: ServedModel) -> None:
    """Run batches of 1 and 2 grey crops (also the warm-up); raise ModelLoadError on a wrong answer."""
    spec = model.spec
    want_h, want_w = spec.heatmap_size
    for n in (1, 2):
        crops = np.full((n, spec.height, spec.width, 3), 128, np.uint8)
        try:
            outputs = model.infer(normalize(crops, spec))
        except Exception as exc:  # any failure of the graph means: refuse this model
            raise ModelLoadError(f"{model.folder}: smoke test failed running a batch of {n}: {exc}") from exc
        heatmaps = outputs[model.output_names[0]]
        if heatmaps.shape != (n, NUM_KEYPOINTS, want_h, want_w):
            raise ModelLoadError(
                f"{model.folder}: smoke test: heatmaps of shape {heatmaps.shape} for a batch of {n}, "
                f"the card says {(n, NUM_KEYPOINTS, want_h, want_w)}"
            )
        for name, value in outputs.items():
            if value.shape[0] != n or value.shape[2:] != (want_h, want_w):
                raise ModelLoadError(f"{model.folder}: smoke test: output {name!r} has shape {value.shape}")
            if not np.isfinite(value).all():
                raise ModelLoadError(f"{model.folder}: smoke test: output {name!r} holds NaN or infinity")


def prepare(image: Pixels, boxes: Sequence[Box], spec: InputSpec) -> tuple[np.ndarray, list[Box]]:
    """Crop each person box out of an RGB image: network input (N, 3, H, W) float32 and N crop windows."""
    full = (0.0, 0.0, float(image.width), float(image.height))
    boxes = [whole_image_box(image.width, image.height, spec) if box == full else box for box in boxes]
    windows = [crop_box(box, spec) for box in boxes]
    if not windows:
        return np.zeros((0, 3, spec.height, spec.width), np.float32), []
    return normalize(crop_images(image, windows, spec), spec), windows


@dataclass(eq=False)
class _Job:
    model: ServedModel
    prepare: Callable[[], Prepared]
    size: int  # crops: the expected count until prepared, then the real one
    future: asyncio.Future[Answer]
    prepared: Prepared | None = None  # None: a lone request, prepared on the inference thread


class MicroBatcher:
    """Continuous batching: at most `max_batch_size` person crops per ONNX Runtime run.

    Each request is decoded and cropped (`prepare`) on one of `prepare_threads` threads as soon as
    it arrives (Pillow and NumPy release the GIL). `lanes` inference loops each run one batch at a
    time on a thread of their own (ONNX Runtime releases the GIL, so lanes run in parallel) and, the
    moment a lane's batch is done, it takes every prepared request that is ready (same model, up to
    the size limit) as its next batch, so inference never waits for a whole batch to be decoded and
    decoding never waits for inference. Lanes share one queue: on CPU, one lane per core with one
    ONNX Runtime thread each keeps every core busy with no load imbalance, which uvicorn worker
    processes (each holding the connections it happened to accept) do not. Batches grow with the
    load by themselves; after a batch of several requests the next one also waits up to `max_wait_s`
    for requests still being decoded. A lone request (nothing else in flight) skips the prepare hop:
    it is decoded and inferred in one trip to the inference thread. Each request gets back only its
    own rows, or its own error.

    Memory: requests holding decoded crops (or being decoded) add up to at most `lanes + 1` times
    `max_batch_size` crops (a bigger request is let in alone); the rest wait as their encoded bytes.
    """

    def __init__(
        self,
        max_batch_size: int,
        max_wait_s: float,
        on_batch: Callable[[int, int], None] | None = None,
        prepare_threads: int = 2,
        lanes: int = 1,
    ) -> None:
        self.max_batch_size = max_batch_size
        self.lanes = max(1, lanes)
        # A lane takes its share of the limit: while every lane runs, as many requests again wait
        # prepared for the next free lane, so a lane never idles while the answers it just sent turn
        # into new requests (at 32 clients and two lanes of 16, every client sat in a batch).
        self._lane_batch = max(1, -(-max_batch_size // self.lanes))
        self.max_wait_s = max_wait_s
        self._on_batch = on_batch  # (batch size in crops, requests still queued)
        self._prepare_threads = max(1, prepare_threads)
        self._prepare_pool = ThreadPoolExecutor(self._prepare_threads, thread_name_prefix="posewheel-prepare")
        self._infer_pool = ThreadPoolExecutor(self.lanes, thread_name_prefix="posewheel-infer")
        # Decoded images are the big allocations: at most `prepare_threads` at once, on whichever
        # thread prepares (a lone request prepares on the inference thread), so memory is bounded by
        # threads, not by the number of clients.
        self._decode_slots = threading.BoundedSemaphore(self._prepare_threads)
        self._budget = (self.lanes + 1) * max_batch_size  # crops decoded or being decoded: a batch per lane, one more
        self._held = 0
        self._room = asyncio.Condition()
        self._ready: deque[_Job] = deque()  # prepared (or lone) requests in arrival order
        self._wake = asyncio.Event()  # set when a request becomes ready or its preparation ends
        self._preparing = 0
        self._inferring = 0  # lanes running a batch
        self._current: set[_Job] = set()  # the requests of the batches being run
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def depth(self) -> int:
        """Requests being decoded or waiting for a batch."""
        return len(self._ready) + self._preparing

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._run(), name=f"posewheel-batcher-{i}") for i in range(self.lanes)]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for job in [*self._current, *self._ready]:  # nobody waits forever on a stopped batcher
            if not job.future.done():
                job.future.set_exception(RuntimeError("the server is shutting down"))
        self._ready.clear()
        self._prepare_pool.shutdown(wait=True)
        self._infer_pool.shutdown(wait=True)

    async def submit(self, model: ServedModel, prepare: Callable[[], Prepared], size: int = 1) -> Answer:
        """Run `prepare()` then `model` on its crops within a batch; `size` is the expected crop count.

        Raises whatever `prepare` raised (e.g. serving.images.InputError) for this request only.
        """
        loop = asyncio.get_running_loop()

        def bounded_prepare() -> Prepared:
            with self._decode_slots:
                return prepare()

        job = _Job(model, bounded_prepare, max(1, size), loop.create_future())
        reserved = min(job.size, self._budget)
        async with self._room:
            await self._room.wait_for(lambda: self._held + reserved <= self._budget)
            self._held += reserved
        try:
            if self._inferring < self.lanes and not (self._preparing or self._ready):
                self._enqueue(job)  # lone: a lane is free, one hop, prepared on its inference thread
            else:
                self._preparing += 1
                try:
                    job.prepared = await loop.run_in_executor(self._prepare_pool, bounded_prepare)
                finally:
                    self._preparing -= 1
                    self._wake.set()
                job.size = max(1, len(job.prepared.windows))
                self._enqueue(job)
            return await job.future
        finally:
            async with self._room:
                self._held -= reserved
                self._room.notify_all()

    def _enqueue(self, job: _Job) -> None:
        self._ready.append(job)
        self._wake.set()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        busy = False  # the last batch held several requests: wait a little for company
        while True:
            while not self._ready:
                self._wake.clear()
                await self._wake.wait()
            batch = [self._ready.popleft()]
            if batch[0].prepared is not None:
                size = self._fill(batch, batch[0].size)
                deadline = loop.time() + (self.max_wait_s if busy else 0.0)
                while size < self._lane_batch and self._preparing and (remaining := deadline - loop.time()) > 0:
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), remaining)
                    size = self._fill(batch, size)
            live = [job for job in batch if not job.future.done()]  # a cancelled request needs no answer
            busy = len(live) > 1
            if live:
                await self._process(live)

    def _fill(self, batch: list[_Job], size: int) -> int:
        """Move ready requests of the batch's model into it, in order, while they fit; the new size."""
        model = batch[0].model
        while self._ready:
            job = self._ready[0]
            if job.prepared is None or job.model is not model or size + job.size > self._lane_batch:
                break  # a lone request, another model version or too big: it opens the next batch
            batch.append(self._ready.popleft())
            size += job.size
        return size

    async def _process(self, jobs: list[_Job]) -> None:
        loop = asyncio.get_running_loop()
        model = jobs[0].model
        self._inferring += 1
        self._current.update(jobs)
        try:
            if jobs[0].prepared is None:
                outcomes = await loop.run_in_executor(self._infer_pool, _prepare_infer, model, jobs)
            else:
                prepared: list[Prepared | Exception] = [job.prepared for job in jobs if job.prepared is not None]
                outcomes = await loop.run_in_executor(self._infer_pool, _infer, model, prepared)
        except Exception as exc:  # the batch's requests get the error, the batcher lives on
            log.exception("inference failed for a batch of %d requests", len(jobs))
            outcomes = [exc] * len(jobs)
        finally:
            self._inferring -= 1
            self._current.difference_update(jobs)
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


def _prepare_infer(model: ServedModel, jobs: list[_Job]) -> list[Answer | Exception]:
    return _infer(model, _prepare(jobs))


def _finish(prepared: Prepared | Exception) -> Prepared | Exception:
    """The preparation's deferred part, if any (run on the lane); its failure is that request's answer."""
    if not isinstance(prepared, Prepared) or prepared.finish is None:
        return prepared
    try:
        return prepared.finish()
    except Exception as exc:  # noqa: BLE001 - re-raised in the request that sent this input
        return exc


def _infer(model: ServedModel, prepared: list[Prepared | Exception]) -> list[Answer | Exception]:
    """One batch over the prepared jobs (`ServedModel.answer`); each job's Answer (or its preparation error)."""
    prepared = [_finish(p) for p in prepared]
    answers = iter(model.answer([p for p in prepared if isinstance(p, Prepared)]))
    return [p if isinstance(p, Exception) else next(answers) for p in prepared]
