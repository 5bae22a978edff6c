"""Label Studio's ML-backend protocol, served beside /v1: a project connected to it gets pose pre-annotations
for any task, also for images imported straight into Label Studio (never seen by /v1/predict or the outbox).

    Label Studio > project > Settings > Model > Connect model: URL http://127.0.0.1:8000/ml-backend
    curl -X POST $LS/api/ml -H "Authorization: Token $TOKEN" -H "Content-Type: application/json" \\
         -d '{"project": 3, "url": "http://127.0.0.1:8000/ml-backend", "title": "posewheel"}'

The protocol as Label Studio 1.23.2 speaks it (label_studio/ml/api_connector.py and models.py; the
reference server is label-studio-ml-backend's label_studio_ml/api.py):

- `GET /health` -> 200 `{"status": "UP"}` (1 s timeout), asked before every setup.
- `POST /setup {project: "<id>.<created>", schema: <label config>, hostname, access_token, extra_params}`
  -> `{"model_version": ...}`. Label Studio keeps that version and, on "Retrieve predictions", asks
  only for tasks that hold no prediction of it yet.
- `POST /predict {tasks: [...], project, label_config, params}` -> `{"results": [...]}`, one entry per
  task in the same order (Label Studio zips the two lists): a prediction `{result, score,
  model_version}`, or an empty list, which Label Studio reads as "nothing for this task". A task that
  cannot be predicted (no image field, an image we may not fetch or cannot decode) gets that empty
  list and a line in `errors`, so it never shifts or fails the other tasks.
- `POST /webhook`: Label Studio subscribes `<url>/webhook` to every project event when the backend is
  added. Training runs in the DVC pipeline, not on annotation events: they are acknowledged and dropped.

Images are fetched from Label Studio with its API token (`POSEWHEEL_LABELSTUDIO_URL` and
`POSEWHEEL_LABELSTUDIO_TOKEN`, as the review queue uses): uploads (`/data/upload/...`), local files
(`/data/local-files/?d=...`), cloud storage URIs (through Label Studio's `/tasks/<id>/presign/`) and
absolute URLs on Label Studio's own origin; `data:` URIs are decoded in place. Any other URL is
refused: the server never fetches an address a task author wrote (no SSRF through task data), and
the token goes to Label Studio's media routes only, never to its API.

Inference takes the same batcher, person detector and crops as /v1/predict, and the regions are the
review queue's own (`labeling.queue.item_to_task`), so a pre-annotation from here is exactly the one
the outbox would have sent. These predictions are neither logged nor queued for review: the task is
already in Label Studio.

With `POSEWHEEL_API_KEY` set, these routes need it too: as `X-API-Key`, or as the password of HTTP
Basic auth, which is what Label Studio can send (`auth_method: "BASIC_AUTH"`, any user name).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import logging
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any
from urllib.parse import unquote

import httpx
from fastapi import APIRouter, Depends, Header, HTTPException, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from labeling.project import BOX_NAME, IMAGE_NAME, KEYPOINTS_NAME, VISIBILITY_NAME
from labeling.queue import item_to_task
from labeling.settings import LabelStudioNotConfiguredError, LabelStudioSettings
from posewheel.review import PredictedPose, ReviewItem
from serving.deps import ApiKeyHeader, ServiceDep, SettingsDep
from serving.engine import ServedModel
from serving.images import InputError
from serving.service import NotReadyError, PoseService, pose_dicts

log = logging.getLogger(__name__)

PREFIX = "/ml-backend"
FETCH_CONCURRENCY = 8  # images downloaded from Label Studio at once per /predict call
FETCH_TIMEOUT_S = 30.0
_CLOUD_SCHEMES = ("s3:", "gs:", "azure-blob:")  # Label Studio's cloud storage URIs, resolved by its presign route
# Label Studio's media routes: uploads, local files, uploads kept in cloud storage. Its token goes nowhere else.
_MEDIA_PATHS = ("/data/upload/", "/data/local-files/", "/storage-data/")
# What our regions name (labeling/results.py): a project whose config lacks one cannot hold our prediction.
_REQUIRED_TAGS = {
    "RectangleLabels": BOX_NAME,
    "KeyPointLabels": KEYPOINTS_NAME,
    "Choices": VISIBILITY_NAME,
}


async def require_ml_backend_key(
    settings: SettingsDep,
    x_api_key: ApiKeyHeader = None,
    authorization: Annotated[str | None, Header(description="HTTP Basic auth, password = the API key")] = None,
) -> None:
    """With POSEWHEEL_API_KEY set: `X-API-Key`, or Basic auth whose password is the key (Label Studio's way)."""
    if settings.api_key is None:
        return
    expected = settings.api_key.get_secret_value().encode()
    given: str | None = x_api_key
    if given is None and authorization and authorization.lower().startswith("basic "):
        try:
            given = base64.b64decode(authorization[6:], validate=True).decode().partition(":")[2]
        except (binascii.Error, UnicodeDecodeError):
            given = None
    if given is None or not hmac.compare_digest(given.encode(), expected):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing or wrong API key: connect Label Studio with Basic auth, password = POSEWHEEL_API_KEY",
            headers={"WWW-Authenticate": 'Basic realm="posewheel"'},
        )


router = APIRouter(
    prefix=PREFIX,
    tags=["ml-backend"],
    dependencies=[Depends(require_ml_backend_key)],
    responses={  # every route: the key check, the app's own body checks, no model yet
        400: {"description": "malformed JSON body"},
        401: {"description": "missing or wrong API key (Basic auth password or X-API-Key)"},
        413: {"description": "body larger than the limit"},
        503: {"description": "no model loaded yet"},
    },
)


class BackendSetupRequest(BaseModel):
    """What Label Studio sends to /setup (its access token is accepted and ignored, never logged)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    project: str | None = Field(None, description="'<project id>.<created timestamp>'")
    label_config: str | None = Field(None, alias="schema", description="the project's labeling config (XML)")


class BackendSetupResponse(BaseModel):
    model_version: str


class BackendPredictRequest(BaseModel):
    """What Label Studio sends to /predict: its tasks as it stores them, and the project's labeling config."""

    model_config = ConfigDict(extra="allow")

    tasks: list[dict[str, Any]] = Field(description="Label Studio tasks: {id, data: {image: <url>}, ...}")
    project: str | None = None
    label_config: str | None = Field(None, description="the project's labeling config; absent: posewheel's own")


class BackendTaskError(BaseModel):
    task: int | str | None = Field(description="the Label Studio task id")
    detail: str


class BackendPredictResponse(BaseModel):
    results: list[list[dict[str, Any]] | dict[str, Any]] = Field(
        description="per task, in order: a prediction {result, score, model_version}, or [] when it failed"
    )
    model_version: str
    errors: list[BackendTaskError] = Field(description="the tasks left without a prediction, and why")


class BackendHealth(BaseModel):
    status: str
    model_class: str = "posewheel"
    model_version: str | None = None
    detail: str | None = None


class _TaskFailedError(Exception):
    """A task we cannot predict; the message says why (the task id is added by the caller)."""


def image_field(label_config: str | None) -> str:
    """The task data key holding the image, read from a posewheel labeling config; ValueError when the
    config cannot hold our regions (not XML, no Image named 'image', a control missing)."""
    if not label_config:
        return IMAGE_NAME
    try:
        root = ET.fromstring(label_config)
    except ET.ParseError as exc:
        raise ValueError(f"the project's labeling config is not valid XML: {exc}") from exc
    images = [e for e in root.iter("Image") if e.get("name") == IMAGE_NAME]
    if not images or not (images[0].get("value") or "").startswith("$"):
        raise ValueError(f"the project's labeling config has no <Image name={IMAGE_NAME!r} value='$...'>")
    missing = [
        f"<{tag} name={name!r}>"
        for tag, name in _REQUIRED_TAGS.items()
        if not any(e.get("name") == name for e in root.iter(tag))
    ]
    if missing:
        raise ValueError(
            f"the project's labeling config lacks {', '.join(missing)}: use posewheel's config "
            f"(labeling.project.label_config(), `posewheel labels setup`)"
        )
    return str(images[0].get("value"))[1:]


@dataclass(frozen=True)
class ImageSource:
    """Where task images come from: Label Studio's base URL and the API token its media need."""

    base_url: str
    token: str | None

    @classmethod
    def from_settings(cls, settings: LabelStudioSettings | None = None) -> ImageSource:
        settings = settings or LabelStudioSettings()
        try:
            token: str | None = settings.credentials().token
        except LabelStudioNotConfiguredError:
            token = None
        return cls(settings.base_url, token)

    def url_for(self, ref: str, task_id: object) -> tuple[str, bool]:
        """The URL to GET for a task's image reference, and whether to follow redirects (cloud presign only)."""
        if ref.startswith(_CLOUD_SCHEMES):
            if not isinstance(task_id, int):
                raise _TaskFailedError(f"cloud storage image {ref[:120]!r} needs the task id to be presigned")
            fileuri = base64.urlsafe_b64encode(ref.encode()).decode()
            return f"{self.base_url}/tasks/{task_id}/presign/?fileuri={fileuri}", True
        url, base = httpx.URL(ref), httpx.URL(self.base_url)
        if ref.startswith("/"):
            url = httpx.URL(self.base_url + ref)
        elif (url.scheme, url.host, url.port) != (base.scheme, base.host, base.port):  # not Label Studio's origin
            raise _TaskFailedError(
                f"image {ref[:120]!r} is not on Label Studio ({self.base_url}); the ML backend fetches only "
                f"Label Studio's own media (uploads, local files, cloud storage) and data: URIs"
            )
        # Label Studio's token goes with the request: to its media routes only, never to its API.
        path = unquote(url.path)[len(base.path.rstrip("/")) :]
        if not path.startswith(_MEDIA_PATHS) or ".." in path.split("/"):
            raise _TaskFailedError(
                f"image {ref[:120]!r} is not one of Label Studio's media paths {', '.join(_MEDIA_PATHS)}"
            )
        return str(url), False


async def fetch_image(client: httpx.AsyncClient, source: ImageSource, ref: str, task_id: object, limit: int) -> bytes:
    """The bytes of a task's image (at most `limit` bytes); _TaskFailedError saying why not."""
    if ref.startswith("data:"):
        header, _, payload = ref.partition(",")
        if not header.endswith(";base64"):
            raise _TaskFailedError("a data: URI image must be base64")
        if len(payload) * 3 // 4 > limit:
            raise _TaskFailedError(f"the data: URI image exceeds the limit of {limit} bytes")
        try:
            return binascii.a2b_base64(payload, strict_mode=True)
        except (binascii.Error, ValueError) as exc:
            raise _TaskFailedError(f"the data: URI image is not valid base64: {exc}") from None
    url, follow = source.url_for(ref, task_id)
    headers = {"Authorization": f"Token {source.token}"} if source.token else {}
    try:
        # httpx drops Authorization on a redirect to another origin (a presigned cloud URL)
        async with client.stream("GET", url, headers=headers, follow_redirects=follow) as response:
            if response.status_code != 200:
                hint = "; set POSEWHEEL_LABELSTUDIO_TOKEN" if response.status_code in (302, 401, 403) else ""
                raise _TaskFailedError(f"Label Studio answered HTTP {response.status_code} for {ref[:120]!r}{hint}")
            chunks, size = [], 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > limit:
                    raise _TaskFailedError(f"image {ref[:120]!r} exceeds the limit of {limit} bytes")
                chunks.append(chunk)
    except httpx.HTTPError as exc:
        raise _TaskFailedError(f"image {ref[:120]!r} could not be fetched from {source.base_url}: {exc!r}") from None
    return b"".join(chunks)


def task_prediction(
    task_id: object, ref: str, data: bytes, model_version: str, width: int, height: int, poses: list[dict[str, Any]]
) -> dict[str, Any]:
    """The Label Studio prediction {result, score, model_version} of one task: the review queue's regions
    (box + keypoints + visibility per person), score = the least confident person's (0 when nobody)."""
    item = ReviewItem(
        request_id=f"labelstudio-task-{task_id}",
        image_sha256=hashlib.sha256(data).hexdigest(),
        image_path=ref,
        width=width,
        height=height,
        model_version=model_version,
        poses=[PredictedPose.model_validate(p) for p in poses],
        score=min((p["score"] for p in poses), default=0.0),
        reason="ml_backend",
    )
    prediction: dict[str, Any] = item_to_task(item, ref)["predictions"][0]
    return prediction


async def predict_task(
    service: PoseService,
    model: ServedModel,
    client: httpx.AsyncClient,
    source: ImageSource,
    fetch_slots: asyncio.Semaphore,
    task: dict[str, Any],
    key: str,
) -> dict[str, Any]:
    """One task's prediction; _TaskFailedError or InputError when it has none."""
    task_id, data_field = task.get("id"), task.get("data")
    if not isinstance(data_field, dict) or not isinstance(data_field.get(key), str) or not data_field[key]:
        raise _TaskFailedError(f"task data has no image URL under {key!r} (keys: {sorted(data_field or {})[:10]})")
    ref = data_field[key]
    async with fetch_slots:
        data = await fetch_image(client, source, ref, task_id, service.settings.max_body_bytes)
    batcher = service.batcher
    if batcher is None:
        raise NotReadyError("the server is starting")
    # The server's own path from bytes to crops (decode limits, EXIF, the artifact's person detector),
    # without /v1/predict's review decision and prediction log: the task is already in Label Studio.
    prepare = partial(service.prepare_request, data, None, model, False)
    answer = await batcher.submit(model, prepare, 1)
    _, (width, height), found, found_scores, _ = answer.extra
    boxes, box_scores = answer.boxes(found, found_scores)
    poses = pose_dicts(boxes, answer.points, answer.scores, box_scores, answer.kept)
    return task_prediction(task_id, ref, data, model.version, width, height, poses)


def _served(service: PoseService) -> ServedModel:
    model = service.model
    if model is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, service.holder.last_error or "no model loaded yet")
    return model


@router.get(
    "/health",
    response_model=BackendHealth,
    responses={503: {"model": BackendHealth, "description": "no model loaded yet"}},
    summary="Label Studio's health check of the ML backend",
)
async def health(service: ServiceDep) -> JSONResponse:
    model = service.model
    if model is None:
        body = BackendHealth(status="DOWN", detail=service.holder.last_error or "no model loaded yet")
        return JSONResponse(body.model_dump(), status_code=503)
    return JSONResponse(BackendHealth(status="UP", model_version=model.version).model_dump())


@router.post(
    "/setup",
    response_model=BackendSetupResponse,
    responses={422: {"description": "the project's labeling config cannot hold posewheel's regions"}},
    summary="Label Studio connects a project: answers the served model version",
)
async def setup(body: BackendSetupRequest, service: ServiceDep) -> BackendSetupResponse:
    try:
        image_field(body.label_config)
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, f"project {body.project}: {exc}") from exc
    return BackendSetupResponse(model_version=_served(service).version)


@router.post(
    "/predict",
    response_model=BackendPredictResponse,
    responses={
        422: {"description": "not a list of tasks, or a labeling config that cannot hold posewheel's regions"},
        503: {"description": "no model loaded yet"},
    },
    summary="Pre-annotations for Label Studio tasks: every person's box and 17 keypoints",
)
async def predict(body: BackendPredictRequest, service: ServiceDep) -> BackendPredictResponse:
    """One prediction per task, in task order; a task that fails gets [] and a line in `errors`."""
    try:
        key = image_field(body.label_config)
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, f"project {body.project}: {exc}") from exc
    model = _served(service)  # one version for every task of the call, even across a hot reload
    source = ImageSource.from_settings()
    fetch_slots = asyncio.Semaphore(FETCH_CONCURRENCY)
    limits = httpx.Limits(max_connections=FETCH_CONCURRENCY)
    async with httpx.AsyncClient(timeout=FETCH_TIMEOUT_S, limits=limits) as client:
        outcomes = await asyncio.gather(
            *(predict_task(service, model, client, source, fetch_slots, task, key) for task in body.tasks),
            return_exceptions=True,
        )
    results: list[list[dict[str, Any]] | dict[str, Any]] = []
    errors: list[BackendTaskError] = []
    for task, outcome in zip(body.tasks, outcomes, strict=True):
        if isinstance(outcome, dict):
            results.append(outcome)
            continue
        task_id = task.get("id")
        if isinstance(outcome, _TaskFailedError | InputError | NotReadyError):
            detail = str(outcome)
            log.warning("Label Studio task %s: no prediction: %s", task_id, detail)
        else:  # a bug must cost this task its prediction, not the whole call
            detail = f"internal error: {type(outcome).__name__}: {outcome}"
            log.error("Label Studio task %s: prediction failed", task_id, exc_info=outcome)
        results.append([])
        errors.append(BackendTaskError(task=task_id if isinstance(task_id, int | str) else None, detail=detail))
    return BackendPredictResponse(results=results, model_version=model.version, errors=errors)


@router.post("/webhook", summary="Label Studio's project events: acknowledged, not acted on")
async def webhook() -> dict[str, str]:
    # Label Studio subscribes <backend url>/webhook to every event of the project; retraining is the
    # DVC pipeline's job (`posewheel flywheel`), so there is nothing to do per annotation.
    return {"status": "ignored"}


@router.get("/versions", summary="The model versions this backend can answer with: the served one")
async def versions(service: ServiceDep) -> dict[str, list[str]]:
    return {"versions": [_served(service).version]}
