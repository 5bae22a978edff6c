"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from serving.deps import ServiceDep
from serving.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, summary="The process is alive")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Health,
    responses={503: {"model": Health, "description": "no model loaded and warmed yet"}},
    summary="A model is loaded, smoke-tested and warmed",
)
async def readyz(service: ServiceDep) -> Response:
    model = service.model
    if model is None:
        body = Health(status="not ready", detail=service.holder.last_error or "no model loaded yet")
        return JSONResponse(body.model_dump(), status_code=503)
    return JSONResponse(Health(status="ready", model_version=model.version).model_dump())


@router.get("/metrics", response_class=Response, summary="Prometheus metrics")
async def metrics(service: ServiceDep) -> Response:
    """Requests, latency, batch sizes, queue depth, model version, pose confidence, log and reload counters."""
    service.metrics.outbox_failed.set(service.predlog.outbox.failed())
    return Response(service.metrics.render(), media_type=CONTENT_TYPE_LATEST)
