"""The HTTP contract: request and response bodies as the OpenAPI schema at /docs shows them.

Poses reuse the review contract's `PredictedPose` so that what a client sees is exactly what
annotators get as a pre-annotation.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from posewheel.review import PredictedKeypoint, PredictedPose

__all__ = ["PredictJSON", "PredictResponse", "PredictedKeypoint", "PredictedPose", "ReviewFlag"]


class PredictJSON(BaseModel):
    """A prediction request as JSON: the image base64-encoded (a `data:` URI prefix is allowed)."""

    model_config = ConfigDict(extra="forbid")

    image_base64: str = Field(description="JPEG, PNG, WebP or HEIC bytes, base64")
    boxes: list[list[float]] | None = Field(
        None,
        description="person boxes [[x, y, w, h], ...] in pixels; none: the model's detector finds every person",
    )


class ReviewFlag(BaseModel):
    queued: bool = Field(description="the prediction was picked for review by annotators")
    reason: str | None = Field(None, description="'low_confidence', 'uncertain_person' or 'random' when queued")


class PredictResponse(BaseModel):
    request_id: str = Field(description="identifies this prediction in the log and in Label Studio")
    model_version: str
    width: int = Field(description="upright image width, pixels (EXIF orientation applied)")
    height: int = Field(description="upright image height, pixels")
    poses: list[PredictedPose] = Field(
        description="one per person box, in the order given; without boxes one per person found, best first"
    )
    review: ReviewFlag


class ErrorBody(BaseModel):
    detail: str = Field(description="what was wrong with the request")


class ReloadResponse(BaseModel):
    model_version: str
    changed: bool = Field(description="a different artifact was loaded")


class Health(BaseModel):
    status: str
    model_version: str | None = None
    detail: str | None = None
