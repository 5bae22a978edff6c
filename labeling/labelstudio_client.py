"""The Label Studio SDK client of the configured server: one factory for every labeling module and command.

from labeling.labelstudio_client import connect
client = connect()                      # LabelStudioSettings from the environment; no network call
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from labeling.settings import LabelStudioSettings

if TYPE_CHECKING:
    from label_studio_sdk import LabelStudio


def connect(settings: LabelStudioSettings | None = None, timeout_s: float = 30.0) -> LabelStudio:
    """An SDK client for the configured Label Studio (legacy token from settings; no network call)."""
    from label_studio_sdk import LabelStudio

    settings = settings or LabelStudioSettings()
    # No SDK retries: a retried import after a timeout could land twice; the drainer retries itself,
    # after looking up which request ids Label Studio already holds.
    return LabelStudio(
        base_url=settings.base_url, api_key=settings.credentials().token, timeout=timeout_s, max_retries=0
    )
