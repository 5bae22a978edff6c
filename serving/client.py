"""A Python client of the Posewheel API: typed predictions, bounded retries on 503, the server's message on errors.

    from serving.client import PosewheelClient

    with PosewheelClient("http://127.0.0.1:8000", api_key="secret") as client:
        prediction = client.predict("photo.jpg")                    # multipart; every person the model finds
        prediction = client.predict(data, boxes=[[10, 20, 80, 200]], as_json=True)   # bytes, base64 JSON
        for pose in prediction.poses:
            print(pose.score, pose.keypoints[0].name, pose.keypoints[0].x, pose.keypoints[0].y)

        stream = client.stream()                                     # a camera's or video's frames, in order
        for seconds, jpeg in frames:
            for pose in stream.predict(jpeg, seconds).poses:
                print(pose.track_id, pose.score)                     # the same id while the person stays in view

It lives in `serving` because it needs httpx, which only the `serve` extra installs. A 503 (no model
loaded yet, or the server busy) and a refused connection are retried with exponential backoff,
`retries` times at most (a 503 and a refused connection mean the server did not take the request,
so a retry never predicts, logs or queues the image twice); any other error raises `ApiError`
carrying the status and the server's own `detail`.
"""

from __future__ import annotations

import base64
import json
import os
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

Box = tuple[float, float, float, float]  # [x, y, w, h], pixels


@dataclass(frozen=True)
class Keypoint:
    """One of the 17 COCO keypoints: `x`, `y` in the upright image's pixels, `score` in [0, 1]."""

    name: str
    x: float
    y: float
    score: float


@dataclass(frozen=True)
class Pose:
    """One person: the box ([x, y, w, h] pixels), the detector's box score (None for a box you sent, and in a stream for
    a person the detector missed whom their track carried), 17 keypoints."""

    box: Box
    box_score: float | None
    score: float
    keypoints: list[Keypoint]
    track_id: int | None = None  # in a stream (`Stream`): the same while the person stays in view


@dataclass(frozen=True)
class Prediction:
    """The answer of POST /v1/predict: poses best first (or in the order of the boxes sent)."""

    request_id: str
    model_version: str
    width: int
    height: int
    poses: list[Pose]
    review_queued: bool
    review_reason: str | None
    tracks: dict[str, Any] | None = None  # in a stream: who is who after this frame, to send with the next

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Prediction:
        """From a PredictResponse body (docs/openapi.json)."""
        poses = [
            Pose(
                box=tuple(float(v) for v in p["box"]),  # type: ignore[arg-type]
                box_score=p.get("box_score"),
                score=float(p["score"]),
                keypoints=[
                    Keypoint(k["name"], float(k["x"]), float(k["y"]), float(k["score"])) for k in p["keypoints"]
                ],
                track_id=p.get("track_id"),
            )
            for p in body["poses"]
        ]
        review = body.get("review") or {}
        return cls(
            request_id=body["request_id"],
            model_version=body["model_version"],
            width=int(body["width"]),
            height=int(body["height"]),
            poses=poses,
            review_queued=bool(review.get("queued", False)),
            review_reason=review.get("reason"),
            tracks=body.get("tracks"),
        )


class ApiError(RuntimeError):
    """The server refused the request: `status_code` and its own `detail` (what was wrong); `attempts` made."""

    def __init__(self, status_code: int, detail: str, url: str, attempts: int = 1) -> None:
        tried = f" after {attempts} attempts" if attempts > 1 else ""
        super().__init__(f"{url}: HTTP {status_code}{tried}: {detail}")
        self.status_code = status_code
        self.detail = detail
        self.url = url
        self.attempts = attempts


class PosewheelClient:
    """A connection pool to one Posewheel server; use it as a context manager, or call `close()`."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        timeout_s: float = 30.0,
        retries: int = 5,
        backoff_s: float = 0.25,
        max_backoff_s: float = 8.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """`timeout_s`: per connect, read and write; `retries`: extra attempts after a 503 or a refused
        connection, waiting `backoff_s` doubled each time (with jitter), at most `max_backoff_s`."""
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        self.retries, self.backoff_s, self.max_backoff_s = retries, backoff_s, max_backoff_s
        headers = {"X-API-Key": api_key} if api_key else {}
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"), headers=headers, timeout=httpx.Timeout(timeout_s), transport=transport
        )

    def __enter__(self) -> PosewheelClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def predict(
        self,
        image: str | os.PathLike[str] | bytes,
        boxes: Sequence[Sequence[float]] | None = None,
        max_persons: int | None = None,
        score_threshold: float | None = None,
        as_json: bool = False,
        timestamp_s: float | None = None,
        tracks: dict[str, Any] | None = None,
    ) -> Prediction:
        """Poses of the people in `image` (a file path or JPEG/PNG/WebP/HEIC bytes).

        boxes: person boxes [[x, y, w, h], ...] in pixels; None: the model's detector finds every
        person (at most `max_persons`, scoring at least `score_threshold`). `as_json`: send the image
        base64 in a JSON body instead of multipart. `timestamp_s` (the frame's time in its stream) and
        `tracks` (the previous frame's `Prediction.tracks`): each pose gets its `track_id` (`stream()`
        keeps them for you). Raises ApiError (4xx, 5xx, 503 after the retries).
        """
        if isinstance(image, bytes):
            data, filename = image, "image"
        else:
            data, filename = Path(image).read_bytes(), Path(image).name
        params = {
            k: v for k, v in {"max_persons": max_persons, "score_threshold": score_threshold}.items() if v is not None
        }
        box_list = [list(map(float, b)) for b in boxes] if boxes else None
        fields: dict[str, Any] = {"boxes": box_list, "timestamp_s": timestamp_s, "tracks": tracks}
        fields = {k: v for k, v in fields.items() if v is not None}
        request: dict[str, Any]
        if as_json:
            request = {"json": {"image_base64": base64.b64encode(data).decode("ascii"), **fields}}
        else:
            request = {"files": {"image": (filename, data, "application/octet-stream")}}
            if fields:
                request["data"] = {k: json.dumps(v) for k, v in fields.items()}  # JSON text; a time as a number
        response = self._send("POST", "/v1/predict", params=params, **request)
        return Prediction.from_json(response.json())

    def stream(self) -> Stream:
        """A stream of frames (a camera's, a video's) sent in order: each person keeps a track id."""
        return Stream(self)

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request, again after a 503 or a refused connection (bounded backoff); ApiError on any non-2xx."""
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.ConnectError:
                if attempt > self.retries:
                    raise
                self._wait(attempt, None)
                continue
            if response.status_code == 503 and attempt <= self.retries:
                self._wait(attempt, response.headers.get("retry-after"))
                continue
            if response.is_success:
                return response
            raise ApiError(response.status_code, _detail(response), str(response.request.url), attempt)

    def _wait(self, attempt: int, retry_after: str | None) -> None:
        delay = min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
        if retry_after is not None and retry_after.isdigit():
            delay = min(self.max_backoff_s, max(delay, float(retry_after)))
        time.sleep(delay)


class Stream:
    """One camera's or video's frames, sent one at a time in order: `predict` sends each with its time and the last
    answer's tracks, so each pose carries a `track_id` that stays the person's while they stay in view (the server
    keeps nothing; the tracks live here)."""

    def __init__(self, client: PosewheelClient) -> None:
        self.client = client
        self.tracks: dict[str, Any] | None = None

    def predict(self, image: str | os.PathLike[str] | bytes, timestamp_s: float, **options: Any) -> Prediction:
        """The poses of the frame taken `timestamp_s` seconds into the stream (`PosewheelClient.predict`'s options)."""
        prediction = self.client.predict(image, timestamp_s=float(timestamp_s), tracks=self.tracks, **options)
        self.tracks = prediction.tracks
        return prediction


def _detail(response: httpx.Response) -> str:
    """The server's error message: its JSON `detail` (ErrorBody), else the start of the body."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:500] or response.reason_phrase
    detail = body.get("detail") if isinstance(body, dict) else None
    return detail if isinstance(detail, str) else str(detail if detail is not None else body)[:500]
