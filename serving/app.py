"""The FastAPI application: `create_app(settings)` wires the service, routers, limits and metrics.

uvicorn --factory serving.app:app_from_env      # or: posewheel serve
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.api import admin, health, model, page, predict
from serving.images import InputError
from serving.metrics import ServingMetrics
from serving.service import NotReadyError, PoseService
from serving.settings import ServingSettings


class _BodyTooLargeError(Exception):
    pass


class LimitsAndMetrics:
    """ASGI middleware: refuse bodies over `max_body_bytes` (413, also when streamed without a length)
    and count every request by route and status with its latency."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, metrics: ServingMetrics) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500, "sent": False}
        limit = self.max_body_bytes

        length = _content_length(scope)
        if length is not None and length > limit:
            await _send_error(send, 413, f"request body of {length} bytes exceeds the limit of {limit} bytes")
            self._observe(scope, 413, started)
            return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLargeError
            return message

        async def tracking_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"], status["sent"] = message["status"], True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLargeError:
            if not status["sent"]:
                await _send_error(send, 413, f"request body exceeds the limit of {limit} bytes")
                status["code"] = 413
        finally:
            self._observe(scope, int(status["code"]), started)

    def _observe(self, scope: Scope, code: int, started: float) -> None:
        route = scope.get("route")
        path = getattr(route, "path", None) or "unmatched"
        self.metrics.requests.labels(route=path, status=str(code)).inc()
        self.metrics.latency.labels(route=path).observe(time.perf_counter() - started)


def _content_length(scope: Scope) -> int | None:
    for key, value in scope.get("headers", ()):
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _send_error(send: Send, code: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": code, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def create_app(settings: ServingSettings | None = None) -> FastAPI:
    """A server for `settings` (default: from the environment). Its service starts in the lifespan."""
    settings = settings or ServingSettings()
    service = PoseService(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    app = FastAPI(
        title="Posewheel",
        summary="2D human pose estimation (COCO-17 keypoints) from an exported ONNX model",
        version="1",
        lifespan=lifespan,
    )
    app.state.service = service
    for module in (predict, model, health, admin, page):
        app.include_router(module.router)

    @app.exception_handler(InputError)
    async def _input_error(request: Request, exc: InputError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    @app.exception_handler(NotReadyError)
    async def _not_ready(request: Request, exc: NotReadyError) -> JSONResponse:
        return JSONResponse({"detail": f"no model loaded: {exc}"}, status_code=503)

    app.add_middleware(LimitsAndMetrics, max_body_bytes=settings.max_body_bytes, metrics=service.metrics)
    return app


def app_from_env() -> Any:
    """Factory for `uvicorn --factory`: settings from POSEWHEEL_* variables."""
    return create_app(ServingSettings())
