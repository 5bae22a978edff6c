"""The FastAPI application: `create_app(settings)` wires the service, routers, limits and metrics.

uvicorn --factory serving.app:app_from_env      # or: posewheel serve
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving import ml_backend
from serving.api import admin, health, model, page, predict
from serving.images import InputError
from serving.prometheus import ServingMetrics
from serving.service import NotReadyError, PoseService
from serving.settings import ServingSettings


class _BodyTooLargeError(Exception):
    pass


class _BodyTimeoutError(Exception):
    pass


_BODY_DEADLINE_FACTOR = 4  # a whole body must arrive within 4 x body_timeout_s (60 s by default)
_EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})  # never refused as "busy": they are how we look


class LimitsAndMetrics:
    """ASGI middleware: refuse bodies over `max_body_bytes` (413, also when streamed without a length),
    bodies that stall longer than `body_timeout_s` between pieces or take more than four times that
    in all (408: slow clients hold no slot for long), requests beyond `max_in_flight` at once (503,
    health and metrics exempt), and count every request by route and status with its latency."""

    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int,
        metrics: ServingMetrics,
        max_in_flight: int = 256,
        body_timeout_s: float = 15.0,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.metrics = metrics
        self.max_in_flight = max_in_flight
        self.body_timeout_s = body_timeout_s
        self.in_flight = 0

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
        counted = scope.get("path") not in _EXEMPT_PATHS
        if counted and self.in_flight >= self.max_in_flight:
            await _send_error(send, 503, f"the server is busy: {self.max_in_flight} requests in flight; retry")
            self._observe(scope, 503, started)
            return

        received, more_body = 0, True
        # A stall between pieces is cut after body_timeout_s, and a body trickled a byte at a time
        # (slowloris) after _BODY_DEADLINE_FACTOR times that in all.
        body_deadline = time.monotonic() + self.body_timeout_s * _BODY_DEADLINE_FACTOR

        async def limited_receive() -> Message:
            nonlocal received, more_body
            if not more_body:  # the body is complete: this waits for a disconnect, which has no time limit
                return await receive()
            wait = min(self.body_timeout_s, body_deadline - time.monotonic())
            try:
                message = await asyncio.wait_for(receive(), max(wait, 0.0))
            except TimeoutError:
                raise _BodyTimeoutError from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                more_body = bool(message.get("more_body", False))
                if received > limit:
                    raise _BodyTooLargeError
            return message

        async def tracking_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"], status["sent"] = message["status"], True
            await send(message)

        if counted:
            self.in_flight += 1
        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLargeError:
            if not status["sent"]:
                await _send_error(send, 413, f"request body exceeds the limit of {limit} bytes")
                status["code"] = 413
        except _BodyTimeoutError:
            if not status["sent"]:
                await _send_error(
                    send,
                    408,
                    f"the request body stalled for {self.body_timeout_s:g} s, or took "
                    f"longer than {self.body_timeout_s * _BODY_DEADLINE_FACTOR:g} s in all",
                )
                status["code"] = 408
        finally:
            if counted:
                self.in_flight -= 1
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
    # /v1/render decodes its image again to draw it: at most this many full images at once
    app.state.render_slots = asyncio.Semaphore(settings.prepare_threads or settings.worker_cores())
    for module in (predict, model, health, admin, page):
        app.include_router(module.router)
    app.include_router(ml_backend.router)  # Label Studio's ML-backend protocol at /ml-backend

    @app.exception_handler(InputError)
    async def _input_error(request: Request, exc: InputError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        # One sentence, as every other error: the documented ErrorBody has `detail` as a string.
        problems = []
        for err in exc.errors()[:5]:
            where = ".".join(str(p) for p in err.get("loc", ())) or "request"
            problems.append(f"{where}: {err.get('msg', 'invalid')}")
        return JSONResponse({"detail": "; ".join(problems) or "invalid request"}, status_code=422)

    @app.exception_handler(NotReadyError)
    async def _not_ready(request: Request, exc: NotReadyError) -> JSONResponse:
        return JSONResponse({"detail": f"no model loaded: {exc}"}, status_code=503)

    app.add_middleware(
        LimitsAndMetrics,
        max_body_bytes=settings.max_body_bytes,
        metrics=service.metrics,
        max_in_flight=settings.max_requests_in_flight,
        body_timeout_s=settings.body_timeout_s,
    )
    return app


def app_from_env() -> Any:
    """Factory for `uvicorn --factory`: settings from POSEWHEEL_* variables."""
    return create_app(ServingSettings())
