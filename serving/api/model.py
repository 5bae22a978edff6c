"""GET /v1/model: the served model's card."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from posewheel.artifact import ModelCard
from serving.deps import ApiKeyDep, ServiceDep

# The card names the training data, commit and parameters: behind the same key as predictions.
router = APIRouter(prefix="/v1", tags=["model"], dependencies=[ApiKeyDep])


@router.get("/model", response_model=ModelCard, summary="The card of the model being served")
async def model_card(service: ServiceDep) -> ModelCard:
    """Version, input size and normalisation, skeleton, metrics per holdout set, training data and params."""
    model = service.model
    if model is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, service.holder.last_error or "no model loaded yet")
    return model.card
