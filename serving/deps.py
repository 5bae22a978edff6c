"""Shared route dependencies as `Annotated` aliases: the service, its settings, API-key checks.

All are `async def`: FastAPI runs plain `def` dependencies in a thread pool, a hop per request.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request, status

from serving.service import PoseService
from serving.settings import ServingSettings


async def get_service(request: Request) -> PoseService:
    service: PoseService = request.app.state.service
    return service


async def get_settings(request: Request) -> ServingSettings:
    settings: ServingSettings = request.app.state.service.settings
    return settings


ServiceDep = Annotated[PoseService, Depends(get_service)]
SettingsDep = Annotated[ServingSettings, Depends(get_settings)]
ApiKeyHeader = Annotated[str | None, Header(alias="X-API-Key", description="API key, when the server requires one")]


def _matches(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


async def require_api_key(settings: SettingsDep, x_api_key: ApiKeyHeader = None) -> None:
    """Predictions need `X-API-Key` only when POSEWHEEL_API_KEY is set."""
    if settings.api_key is not None and not _matches(x_api_key, settings.api_key.get_secret_value()):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing or wrong X-API-Key")


async def require_admin_key(settings: SettingsDep, x_api_key: ApiKeyHeader = None) -> None:
    """Admin routes always need `X-API-Key` = POSEWHEEL_ADMIN_KEY; without that setting they are off."""
    if settings.admin_key is None:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "admin routes are disabled: set POSEWHEEL_ADMIN_KEY")
    if not _matches(x_api_key, settings.admin_key.get_secret_value()):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing or wrong X-API-Key")


ApiKeyDep = Depends(require_api_key)
AdminKeyDep = Depends(require_admin_key)
