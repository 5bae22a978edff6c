"""The HTTP contract: request and response bodies as the OpenAPI schema at /docs shows them.

Poses reuse the review contract's `PredictedPose` so that what a client sees is exactly what
annotators get as a pre-annotation.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from posewheel.centernet import MAX_PERSONS
from posewheel.review import PredictedKeypoint, PredictedPose

__all__ = [
    "PredictJSON",
    "PredictResponse",
    "PredictedKeypoint",
    "PredictedPose",
    "ReviewFlag",
    "TrackState",
    "TrackedPose",
]

# A stream's tracker keeps the people of its last frame and those missed for a frame or a second
# (posewheel.tracks.PoseTracker): a few frames' people at most.
MAX_TRACKS = 4 * MAX_PERSONS
TIMESTAMP_HELP = (
    "this frame's time in its stream, seconds (a camera's clock, a video's time): answer each person with a "
    "track_id, linked to the tracks sent (none: a new stream)"
)
TRACKS_HELP = "the previous frame's answer's `tracks`, sent back as they came: who is who so far in the stream"


class TrackedPerson(BaseModel):
    """One live track of a stream (posewheel.tracks.Track): where its person was last, and how they moved."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    track_id: int = Field(ge=1)
    box: list[float] = Field(min_length=4, max_length=4, description="[x, y, w, h] pixels, when last seen")
    keypoints: list[float] = Field(min_length=34, max_length=34, description="17 x, y pairs, pixels")
    scores: list[float] = Field(min_length=17, max_length=17)
    last_seen_s: float
    velocity: list[float] | None = Field(None, min_length=2, max_length=2, description="box centre, pixels/s")
    missed: int = Field(0, ge=0, description="frames since last seen")


class TrackState(BaseModel):
    """A stream's tracker between two frames (`PoseTracker.state()`): send it back with the next frame."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    next_id: int = Field(ge=1, description="the id the next new person gets")
    tracks: list[TrackedPerson] = Field(max_length=MAX_TRACKS)


class PredictJSON(BaseModel):
    """A prediction request as JSON: the image base64-encoded (a `data:` URI prefix is allowed)."""

    model_config = ConfigDict(extra="forbid")

    image_base64: str = Field(description="JPEG, PNG, WebP or HEIC bytes, base64")
    boxes: list[list[float]] | None = Field(
        None,
        description="person boxes [[x, y, w, h], ...] in pixels; none: the model's detector finds every person",
    )
    timestamp_s: float | None = Field(None, allow_inf_nan=False, description=TIMESTAMP_HELP)
    tracks: TrackState | None = Field(None, description=TRACKS_HELP)


class ReviewFlag(BaseModel):
    queued: bool = Field(description="the prediction was picked for review by annotators")
    reason: str | None = Field(None, description="'low_confidence', 'uncertain_person' or 'random' when queued")


class TrackedPose(PredictedPose):
    track_id: int | None = Field(
        None, description="with timestamp_s: this person's id in the stream, the same while they stay in view"
    )


class PredictResponse(BaseModel):
    request_id: str = Field(description="identifies this prediction in the log and in Label Studio")
    model_version: str
    width: int = Field(description="upright image width, pixels (EXIF orientation applied)")
    height: int = Field(description="upright image height, pixels")
    poses: list[TrackedPose] = Field(
        description="one per person box, in the order given; without boxes one per person found, best first"
    )
    review: ReviewFlag
    tracks: TrackState | None = Field(
        None, description="with timestamp_s: who is who after this frame; send it back with the stream's next frame"
    )


class ErrorBody(BaseModel):
    detail: str = Field(description="what was wrong with the request")


class ReloadResponse(BaseModel):
    model_version: str
    changed: bool = Field(description="a different artifact was loaded")


class Health(BaseModel):
    status: str
    model_version: str | None = None
    detail: str | None = None
