"""Who is who across a video's frames: link each frame's persons to the tracks of the frames before.

    from posewheel.tracks import PoseTracker
    tracker = PoseTracker()                                  # one per video
    ids = tracker.update(keypoints, scores, boxes, t)        # (P,) track ids of this frame's persons, from 1

The detector and the pose network answer each frame on its own, best person first, so a person's
place in a frame's list says nothing about who they are: two people swap places whenever their
scores cross. `PoseTracker` gives each person a track id that stays theirs while they stay in view
(as MoveNet MultiPose's trackers do in tfjs-models pose-detection, plus a motion term as in SORT):

- each track moves on at the velocity its box centre last had, to where it should be now;
- a person's similarity to a track is the IoU of their boxes there (`similarity="boxes"`, the
  default), or the OKS of their poses over the keypoints both scored above `confident`, scaled by
  the area the track's confident keypoints span (`"keypoints"`, MoveNet's keypoint tracker; with
  fewer than `min_keypoints` such keypoints it is the boxes' IoU);
- each frame's persons are linked greedily, most similar pair first (on a tie, the track seen
  more recently: two people at one spot are the one who was in view), to tracks at least
  `min_similarity` alike; a person left over starts a new track;
- a track not linked for `max_age_s` seconds and for more than `max_missed` sampled frames ends
  (both, so that a video sampled at 1 frame every 2 s keeps its tracks over one missed frame).

Boxes are the default because they linked real people better on every clip kind and sampling rate
measured (benchmarks/pose_tracking.py, docs/detector.md): in a tight group the pose network's
reading of a crop can jump to a neighbour between frames while the box stays put.

A client that sends a stream's frames one request at a time carries the tracker between them:
`tracker.state()` is everything the next `update` reads, as JSON numbers, and
`PoseTracker.from_state(state)` picks it up again (the server's /v1/predict with `timestamp_s`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from posewheel.boxes import iou_matrix
from posewheel.schema import oks_terms

Similarity = Literal["keypoints", "boxes"]


@dataclass
class Track:
    """One person followed through a video: their last pose (17, 2) pixels, scores (17,), box x, y, w, h."""

    track_id: int
    keypoints: np.ndarray
    scores: np.ndarray
    box: np.ndarray
    last_seen_s: float
    velocity: np.ndarray | None = None  # of the box centre, pixels per second; None until linked twice
    missed: int = 0  # sampled frames since it was last linked

    def moved(self, timestamp_s: float) -> tuple[np.ndarray, np.ndarray]:
        """Keypoints (17, 2) and box (4,) where this track should be at `timestamp_s`, at its last velocity."""
        if self.velocity is None:
            return self.keypoints, self.box
        shift = self.velocity * (timestamp_s - self.last_seen_s)
        return self.keypoints + shift, np.concatenate([self.box[:2] + shift, self.box[2:]])

    def linked(self, keypoints: np.ndarray, scores: np.ndarray, box: np.ndarray, timestamp_s: float) -> Track:
        """This track, seen again: the new pose, and the velocity half its last, half the move since."""
        seconds = timestamp_s - self.last_seen_s
        velocity = self.velocity
        if seconds > 0:
            step = (box[:2] + box[2:] / 2 - self.box[:2] - self.box[2:] / 2) / seconds
            velocity = step if velocity is None else (velocity + step) / 2
        return Track(self.track_id, keypoints, scores, box, timestamp_s, velocity)


class PoseTracker:
    """Track ids for the persons of consecutive frames of one video; see the module docstring."""

    def __init__(
        self,
        similarity: Similarity = "boxes",
        motion: bool = True,
        min_similarity: float = 0.15,
        max_age_s: float = 1.0,
        max_missed: int = 1,
        confident: float = 0.3,
        min_keypoints: int = 4,
        max_tracks: int | None = None,
    ) -> None:
        """`max_tracks`: live tracks kept at most, the longest unseen ended first (a bound for a state sent over
        the wire; a frame's own persons are never ended)."""
        self.similarity, self.motion, self.min_similarity = similarity, motion, min_similarity
        self.max_age_s, self.max_missed, self.max_tracks = max_age_s, max_missed, max_tracks
        self.confident, self.min_keypoints = confident, min_keypoints
        self.tracks: list[Track] = []
        self._next_id = 1

    @property
    def started(self) -> int:
        """How many tracks this tracker has started (its highest id so far)."""
        return self._next_id - 1

    def update(self, keypoints: np.ndarray, scores: np.ndarray, boxes: np.ndarray, timestamp_s: float) -> np.ndarray:
        """Track ids (P,) int64 for one frame's persons: keypoints (P, 17, 2) pixels, scores (P, 17), boxes
        (P, 4) x, y, w, h pixels, at `timestamp_s` seconds into the video (frames in order)."""
        keypoints = np.asarray(keypoints, dtype=np.float64).reshape(-1, 17, 2)
        scores = np.asarray(scores, dtype=np.float64).reshape(-1, 17)
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        if not len(keypoints) == len(scores) == len(boxes):
            raise ValueError(
                f"{len(keypoints)} poses, {len(scores)} score rows and {len(boxes)} boxes: one each per person"
            )
        ids = np.zeros(len(keypoints), dtype=np.int64)
        links = self.links(keypoints, scores, boxes, timestamp_s)
        for person, track in links.items():
            ids[person] = self.tracks[track].track_id
            self.tracks[track] = self.tracks[track].linked(
                keypoints[person], scores[person], boxes[person], timestamp_s
            )
        linked = set(links.values())
        for n, unseen in enumerate(self.tracks):
            if n not in linked:
                unseen.missed += 1
        for person in np.flatnonzero(ids == 0):
            ids[person] = self._next_id
            self.tracks.append(Track(self._next_id, keypoints[person], scores[person], boxes[person], timestamp_s))
            self._next_id += 1
        self.tracks = [
            t for t in self.tracks if t.missed <= self.max_missed or timestamp_s - t.last_seen_s <= self.max_age_s
        ]
        if self.max_tracks is not None and len(self.tracks) > self.max_tracks:
            by_age = sorted((t for t in self.tracks if t.missed), key=lambda t: t.last_seen_s)
            ended = {id(t) for t in by_age[: len(self.tracks) - self.max_tracks]}
            self.tracks = [t for t in self.tracks if id(t) not in ended]
        return ids

    def links(self, keypoints: np.ndarray, scores: np.ndarray, boxes: np.ndarray, timestamp_s: float) -> dict[int, int]:
        """Which live track (index into `tracks`) each of a frame's persons links to, person -> track, as `update`
        links them (arrays as it takes them); a person absent starts a track of their own. Changes nothing."""
        alike = self.similarities(keypoints, scores, boxes, timestamp_s)
        links: dict[int, int] = {}
        taken: set[int] = set()
        missed = np.broadcast_to([t.missed for t in self.tracks], alike.shape)
        for flat in np.lexsort((missed.ravel(), -alike.ravel())):  # most alike first; on a tie, the fresher track
            person, track = divmod(int(flat), len(self.tracks))
            if alike[person, track] < self.min_similarity:
                break
            if person not in links and track not in taken:
                links[person] = track
                taken.add(track)
        return links

    def unlinked(self, keypoints: np.ndarray, scores: np.ndarray, boxes: np.ndarray, timestamp_s: float) -> list[int]:
        """The live tracks (indices into `tracks`) none of a frame's persons would link to (`links`): the people of
        earlier frames this frame's answer has lost."""
        keypoints = np.asarray(keypoints, dtype=np.float64).reshape(-1, 17, 2)
        scores = np.asarray(scores, dtype=np.float64).reshape(-1, 17)
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        linked = set(self.links(keypoints, scores, boxes, timestamp_s).values())
        return [n for n in range(len(self.tracks)) if n not in linked]

    def state(self) -> dict[str, Any]:
        """Everything the next `update` reads, as JSON-able numbers (this tracker's settings aside): the next id and
        each live track's id, box, pose (17 x, y then 17 scores), when it was last seen, its velocity and misses."""
        return {
            "next_id": self._next_id,
            "tracks": [
                {
                    "track_id": t.track_id,
                    "box": t.box.tolist(),
                    "keypoints": t.keypoints.ravel().tolist(),
                    "scores": t.scores.tolist(),
                    "last_seen_s": t.last_seen_s,
                    "velocity": None if t.velocity is None else t.velocity.tolist(),
                    "missed": t.missed,
                }
                for t in self.tracks
            ],
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any], **settings: Any) -> PoseTracker:
        """A tracker (with `settings`) that goes on from `state()`; ValueError naming what is wrong with it."""
        tracker = cls(**settings)
        next_id = state["next_id"]
        tracks = state["tracks"]
        ids = [t["track_id"] for t in tracks]
        if len(set(ids)) != len(ids):
            raise ValueError("tracks: a track_id appears twice")
        if any(not 1 <= i < next_id for i in ids):
            raise ValueError(f"tracks: every track_id must lie in 1..next_id - 1 ({next_id - 1})")
        for t in tracks:
            velocity = t.get("velocity")
            tracker.tracks.append(
                Track(
                    int(t["track_id"]),
                    _finite(t["keypoints"], (17, 2), "keypoints"),
                    _finite(t["scores"], (17,), "scores"),
                    _finite(t["box"], (4,), "box"),
                    float(_finite([t["last_seen_s"]], (1,), "last_seen_s")[0]),
                    None if velocity is None else _finite(velocity, (2,), "velocity"),
                    int(t.get("missed", 0)),
                )
            )
        tracker._next_id = int(next_id)
        return tracker

    def similarities(
        self, keypoints: np.ndarray, scores: np.ndarray, boxes: np.ndarray, timestamp_s: float
    ) -> np.ndarray:
        """How alike each person (P) at `timestamp_s` is to each live track (T), moved on to then: (P, T) in [0, 1]."""
        if not self.tracks or not len(keypoints):
            return np.zeros((len(keypoints), len(self.tracks)))
        moved = [t.moved(timestamp_s) if self.motion else (t.keypoints, t.box) for t in self.tracks]
        iou = iou_matrix(boxes, np.stack([box for _, box in moved]))
        if self.similarity == "boxes":
            return iou
        track_points = np.stack([points for points, _ in moved])  # (T, 17, 2)
        track_sure = np.stack([t.scores for t in self.tracks]) > self.confident  # (T, 17)
        both = (scores > self.confident)[:, None, :] & track_sure[None]  # (P, T, 17)
        d2 = ((keypoints[:, None] - track_points[None]) ** 2).sum(-1)
        oks = oks_terms(d2, _spans(track_points, track_sure)[None, :, None])
        shared = both.sum(-1)
        mean_oks = (oks * both).sum(-1) / np.maximum(shared, 1)
        return np.where(shared >= self.min_keypoints, mean_oks, iou)


def _spans(points: np.ndarray, sure: np.ndarray) -> np.ndarray:
    """Area (T,) pixels² of the box around each track's confident keypoints (T, 17, 2); at least 1."""
    low = np.where(sure[..., None], points, np.inf).min(axis=1)  # (T, 2)
    high = np.where(sure[..., None], points, -np.inf).max(axis=1)
    extent = np.where(np.asarray(sure.any(axis=1))[:, None], high - low, 0.0)
    return np.maximum(extent[:, 0] * extent[:, 1], 1.0)


def _finite(values: Any, shape: tuple[int, ...], name: str) -> np.ndarray:
    """`values` as float64 of `shape` (a flat list of as many numbers is fine); ValueError unless all finite."""
    array = np.asarray(values, dtype=np.float64)
    if array.size != int(np.prod(shape)) or not np.isfinite(array).all():
        raise ValueError(f"tracks: {name} must be {int(np.prod(shape))} finite numbers")
    return array.reshape(shape)
