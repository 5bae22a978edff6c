"""POST /v1/admin/reload: load the production model now (admin key required)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from serving.deps import AdminKeyDep, ServiceDep
from serving.engine import ModelLoadError
from serving.schemas import ErrorBody, ReloadResponse

router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[AdminKeyDep])


@router.post(
    "/reload",
    response_model=ReloadResponse,
    responses={
        401: {"model": ErrorBody},
        403: {"model": ErrorBody},
        409: {"model": ErrorBody, "description": "the artifact was refused; the old model keeps serving"},
    },
    summary="Reload the model folder, smoke-test it and swap it in",
)
async def reload(service: ServiceDep) -> ReloadResponse:
    before = service.model
    try:
        model = await service.holder.reload(force=True)
    except ModelLoadError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, f"model refused, old model still serving: {exc}") from exc
    changed = before is None or model.fingerprint != before.fingerprint
    return ReloadResponse(model_version=model.version, changed=changed)
