"""POST /v1/predict (poses as JSON), POST /v1/render (the same poses drawn on the image, PNG) and POST /v1/upright
(the image the poses' pixels refer to: upright, a HEIC made JPEG; for a client that cannot show what it sent)."""

from __future__ import annotations

import asyncio
import binascii
import io
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from posewheel.centernet import MAX_PERSONS
from posewheel.imagestore import is_heif
from posewheel.tracks import PoseTracker
from serving.deps import ApiKeyDep, ServiceDep, SettingsDep
from serving.heif import JPEG_QUALITY, heif_to_jpeg
from serving.images import InputError, decode_image, load_boxes_json
from serving.overlay import pose_arrays, render_png
from serving.schemas import (
    MAX_TRACKS,
    TIMESTAMP_HELP,
    TRACKS_HELP,
    ErrorBody,
    PredictJSON,
    PredictResponse,
    TrackState,
)
from serving.service import PoseService

router = APIRouter(prefix="/v1", tags=["predict"], dependencies=[ApiKeyDep])

_BOXES_HELP = (
    "JSON list of person boxes [[x, y, w, h], ...] in pixels; absent: the model's person detector finds every "
    "person (a model without one treats the whole image as one person)"
)
MaxPersons = Annotated[
    int | None,
    Query(ge=1, le=MAX_PERSONS, description="without boxes: answer at most this many persons (best first)"),
]
ScoreThreshold = Annotated[
    float | None,
    Query(ge=0.0, le=1.0, description="without boxes: persons the detector scores below this are left out"),
]
_IMAGE_FIELD = {"type": "string", "format": "binary", "description": "JPEG, PNG, WebP or HEIC"}


def _request_body(multipart: dict[str, Any], json_schema: dict[str, Any]) -> dict[str, Any]:
    """An OpenAPI request body: a multipart form with these fields ('image' required), or this JSON."""
    form = {"type": "object", "required": ["image"], "properties": multipart}
    return {
        "required": True,
        "content": {"multipart/form-data": {"schema": form}, "application/json": {"schema": json_schema}},
    }


_REQUEST_BODY = _request_body(
    {
        "image": _IMAGE_FIELD,
        "boxes": {"type": "string", "description": _BOXES_HELP},
        "timestamp_s": {"type": "number", "description": TIMESTAMP_HELP},
        "tracks": {"type": "string", "description": TRACKS_HELP + " (JSON text)"},
    },
    PredictJSON.model_json_schema(),
)
_IMAGE_BODY = _request_body(  # /v1/upright takes the image alone
    {"image": _IMAGE_FIELD},
    {
        "type": "object",
        "required": ["image_base64"],
        "properties": {"image_base64": PredictJSON.model_json_schema()["properties"]["image_base64"]},
    },
)
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "malformed body or undecodable image"},
    401: {"model": ErrorBody, "description": "missing or wrong X-API-Key"},
    413: {"model": ErrorBody, "description": "body or image larger than the limits"},
    415: {"model": ErrorBody, "description": "not a JPEG, PNG, WebP or HEIC image / unsupported content type"},
    422: {"model": ErrorBody, "description": "malformed boxes"},
    503: {"model": ErrorBody, "description": "no model loaded yet"},
}


# JSON texts longer than this are parsed in a worker thread: parsing is never a stall of the event loop.
_PARSE_INLINE_BYTES = 4096
# A JSON body is almost all one base64 string, which pydantic scans at about 5 GB/s here (48 KB: 0.011 ms,
# 1 MB: 0.19 ms); below this size the hop to a worker thread and back costs the event loop more than parsing.
_PARSE_BODY_INLINE_BYTES = 1 << 20
_DECODE_INLINE_CHARS = 256 * 1024  # base64 longer than this is decoded in a worker thread too
# HEIC requests wait for the one decoder child here, in their own queue, not in asyncio's default threads
# (a few on 2 cores), which parsing long bodies and drawing need while a burst of HEIC waits
_HEIF_THREAD = ThreadPoolExecutor(1, thread_name_prefix="posewheel-heif")
# '[' a JSON body's `tracks` may hold on top of its boxes': the list, and each track's box, pose, scores, velocity
_TRACK_BRACKETS = 1 + 4 * MAX_TRACKS
_MAX_TRACKS_TEXT = MAX_TRACKS * 2048  # bytes of a multipart `tracks` field: a track's JSON is under 1 KB


@dataclass
class StreamFrame:
    """A frame of a stream (a request with `timestamp_s`): when it was taken, and the stream's tracker so far."""

    timestamp_s: float
    tracker: PoseTracker

    @property
    def carry(self) -> tuple[PoseTracker, float]:
        """What the engine looks with for the people of earlier frames the detector misses in this one."""
        return self.tracker, self.timestamp_s

    def track(self, poses: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """`poses` each with its `track_id`, and the tracker's state after this frame (the answer's `tracks`)."""
        ids = self.tracker.update(*pose_arrays(poses), self.timestamp_s)
        return [{**pose, "track_id": int(i)} for pose, i in zip(poses, ids, strict=True)], self.tracker.state()


def stream_frame(timestamp_s: float | None, tracks: TrackState | None) -> StreamFrame | None:
    """The request's stream frame, if it is one; InputError (422) for tracks without a time or ones that disagree."""
    if timestamp_s is None:
        if tracks is not None:
            raise InputError("field 'tracks' needs 'timestamp_s' (this frame's time in the stream, seconds)", 422)
        return None
    try:
        # never more tracks in an answer than the next request may send
        if tracks is None:
            tracker = PoseTracker(max_tracks=MAX_TRACKS)
        else:
            tracker = PoseTracker.from_state(tracks.model_dump(), max_tracks=MAX_TRACKS)
    except ValueError as exc:
        raise InputError(f"field {exc}", 422) from exc
    return StreamFrame(timestamp_s, tracker)


async def read_image_request(request: Request, service: PoseService) -> tuple[bytes, object, StreamFrame | None]:
    """`read_request`, with a HEIC (an iPhone's photograph) made its upright JPEG (serving.heif, a child process):
    the request is a JPEG from here on, answered, drawn and stored for review as one."""
    data, boxes, stream = await read_request(request, service.settings.max_boxes)
    if is_heif(data):
        loop = asyncio.get_running_loop()
        data = await loop.run_in_executor(_HEIF_THREAD, heif_to_jpeg, data, service.settings.max_pixels)
    return data, boxes, stream


async def read_upright_jpeg(request: Request, max_boxes: int, max_pixels: int) -> bytes:
    """The request's image upright as a JPEG: a HEIC as `read_image_request` makes it (the same bytes), any other
    image decoded as the model reads it (its EXIF turn applied) and written at the same quality."""
    data, _, _ = await read_request(request, max_boxes)
    loop = asyncio.get_running_loop()
    if is_heif(data):
        return await loop.run_in_executor(_HEIF_THREAD, heif_to_jpeg, data, max_pixels)
    async with request.app.state.render_slots:  # a full image lives only while it is written, as in drawing
        return await asyncio.to_thread(_upright_jpeg, data, max_pixels)


def _upright_jpeg(data: bytes, max_pixels: int) -> bytes:
    out = io.BytesIO()
    decode_image(data, max_pixels).image.save(out, format="JPEG", quality=JPEG_QUALITY, subsampling=0)
    return out.getvalue()


async def read_request(request: Request, max_boxes: int) -> tuple[bytes, object, StreamFrame | None]:
    """The image bytes, parsed boxes (a list, or None) and stream frame (with `timestamp_s`, or None) of a
    multipart or JSON prediction request.

    Boxes are bounded before a byte of them is parsed (`max_boxes` decides how long their text, or
    how many '[' a JSON body, may be) and long texts are parsed off the event loop, so no request
    can hold up the others (health included). InputError (4xx) for anything else.
    """
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        form = await request.form(max_files=1, max_fields=4)
        try:
            image = form.get("image")
            if not isinstance(image, UploadFile):
                raise InputError("multipart field 'image' (a file) is missing", 422)
            boxes = form.get("boxes")
            if boxes is not None and not isinstance(boxes, str):
                raise InputError("multipart field 'boxes' must be text (JSON), not a file", 422)
            timestamp, tracks = form.get("timestamp_s"), form.get("tracks")
            if not (timestamp is None or isinstance(timestamp, str)) or not (tracks is None or isinstance(tracks, str)):
                raise InputError("multipart fields 'timestamp_s' and 'tracks' must be text, not files", 422)
            data = await image.read()
        finally:
            await form.close()
        stream = stream_frame(_seconds(timestamp), await _tracks(tracks))
        if not boxes:
            return data, None, stream
        if len(boxes) <= _PARSE_INLINE_BYTES:
            return data, load_boxes_json(boxes, max_boxes), stream
        return data, await asyncio.to_thread(load_boxes_json, boxes, max_boxes), stream
    if content_type == "application/json":
        raw = await request.body()
        # base64 and a data: URI never hold '[': each one is a box list or a box, or a part of the tracks sent
        # (or nesting, or junk)
        with_tracks = b'"tracks"' in raw
        if raw.count(b"[") > max_boxes + 1 + (_TRACK_BRACKETS if with_tracks else 0):
            tracks_too = f", 'tracks' more than {MAX_TRACKS} tracks" if with_tracks else ""
            raise InputError(
                f"field 'boxes' holds more than {max_boxes} boxes (the limit){tracks_too}, or is nested", 422
            )
        try:
            if len(raw) <= _PARSE_BODY_INLINE_BYTES:
                body = PredictJSON.model_validate_json(raw)
            else:
                body = await asyncio.to_thread(PredictJSON.model_validate_json, raw)
        except ValidationError as exc:
            raise InputError(f"invalid JSON body: {_first_error(exc)}", 422) from exc
        text = body.image_base64
        if text.startswith("data:"):
            text = text.partition(",")[2]
        try:  # base64.b64decode(validate=True) checks with a regex first: 3x slower
            if len(text) <= _DECODE_INLINE_CHARS:
                data = binascii.a2b_base64(text, strict_mode=True)
            else:
                data = await asyncio.to_thread(binascii.a2b_base64, text, strict_mode=True)
        except (binascii.Error, ValueError) as exc:
            raise InputError(f"field 'image_base64' is not valid base64: {exc}") from exc
        return data, body.boxes, stream_frame(body.timestamp_s, body.tracks)
    raise InputError(
        f"content type {content_type or 'none'!r} is not accepted; send multipart/form-data or application/json",
        415,
    )


def _seconds(text: str | None) -> float | None:
    """A multipart `timestamp_s`: a finite number of seconds, or None when absent or empty."""
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds):
        raise InputError(f"field 'timestamp_s' must be a finite number of seconds, not {text[:40]!r}", 422)
    return seconds


async def _tracks(text: str | None) -> TrackState | None:
    """A multipart `tracks` (JSON text, bounded, parsed off the event loop when long), or None when absent or empty."""
    if not text:
        return None
    if len(text) > _MAX_TRACKS_TEXT:
        raise InputError(f"field 'tracks' is longer than {_MAX_TRACKS_TEXT} bytes (the limit)", 413)
    try:
        if len(text) <= _PARSE_INLINE_BYTES:
            return TrackState.model_validate_json(text)
        return await asyncio.to_thread(TrackState.model_validate_json, text)
    except ValidationError as exc:
        raise InputError(f"field 'tracks': {_first_error(exc)}", 422) from exc


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ())) or "body"
    return f"{where}: {err.get('msg', 'invalid')}"


@router.post(
    "/predict",
    response_model=PredictResponse,
    responses=_ERRORS,
    openapi_extra={"requestBody": _REQUEST_BODY},
    summary="Predict the 17 COCO keypoints of each person",
)
async def predict(
    request: Request, service: ServiceDep, max_persons: MaxPersons = None, score_threshold: ScoreThreshold = None
) -> Response:
    """Per person: the box, the detector's box score (null for boxes you sent, and for a stream's person the detector
    missed, carried by their track), a pose score and 17 keypoints {name, x, y, score} in image pixels. Without
    boxes, every person the model finds, best first."""
    data, boxes, stream = await read_image_request(request, service)
    carry = None if stream is None else stream.carry
    prediction = await service.predict(
        data, boxes, max_persons=max_persons, score_threshold=score_threshold, carry=carry
    )
    if stream is not None:
        poses, tracks = stream.track(prediction.poses)
        return Response(prediction.to_json(poses, tracks), media_type="application/json")
    # already serialised: FastAPI would otherwise validate 17 keypoints per person against the model again
    return Response(prediction.to_json(), media_type="application/json")


@router.post(
    "/render",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}, "description": "the image with skeletons drawn"}, **_ERRORS},
    openapi_extra={"requestBody": _REQUEST_BODY},
    summary="Draw the predicted skeletons on the image (PNG)",
)
async def render(
    request: Request, service: ServiceDep, max_persons: MaxPersons = None, score_threshold: ScoreThreshold = None
) -> Response:
    """The same prediction as /v1/predict, drawn: boxes, skeleton edges and keypoints over the upright image."""
    data, boxes, stream = await read_image_request(request, service)
    carry = None if stream is None else stream.carry
    prediction = await service.predict(
        data, boxes, max_persons=max_persons, score_threshold=score_threshold, carry=carry
    )
    track_ids = None if stream is None else [p["track_id"] for p in stream.track(prediction.poses)[0]]
    # The image is decoded again for drawing, in a bounded number of drawing slots, instead of being
    # kept from the prediction's decode: a full image lives only while it is drawn, whatever the clients.
    async with request.app.state.render_slots:
        png = await asyncio.to_thread(_draw, data, prediction.poses, service.settings.max_pixels, track_ids)
    return Response(
        png,
        media_type="image/png",
        headers={"X-Request-Id": prediction.request_id, "X-Model-Version": prediction.model_version},
    )


@router.post(
    "/upright",
    response_class=Response,
    responses={
        200: {"content": {"image/jpeg": {}}, "description": "the image upright, as the model reads it (JPEG)"},
        **{code: error for code, error in _ERRORS.items() if code != 503},
    },
    openapi_extra={"requestBody": _IMAGE_BODY},
    summary="The image as the model reads it: upright, a HEIC made JPEG",
)
async def upright(request: Request, settings: SettingsDep) -> Response:
    """The picture whose pixels /v1/predict's coordinates refer to: the image turned upright (the turn its EXIF
    or HEIF data asks for applied) as a JPEG, quality 95. For a client that cannot show the image it sent, such
    as a desktop browser given an iPhone's HEIC (the demo page asks for it then). Nothing is predicted, logged
    or kept for review; no model is needed."""
    jpeg = await read_upright_jpeg(request, settings.max_boxes, settings.max_pixels)
    return Response(jpeg, media_type="image/jpeg")


def _draw(data: bytes, poses: list[dict[str, Any]], max_pixels: int, track_ids: list[int] | None) -> bytes:
    """PNG of the upright image `data` with `poses` drawn, each box in its track's colour with `track_ids` (runs in a
    worker thread)."""
    return render_png(decode_image(data, max_pixels).image, poses, track_ids)
