"""Per-prompt SAE latent activations."""

from fastapi import APIRouter

from app.api import compute
from app.api.deps import EngineDep
from app.api.schemas import ActivationsMulti, ActivationsRequest, ActivationsResult

router = APIRouter(prefix="/api", tags=["activations"])


@router.post(
    "/activations",
    response_model=ActivationsResult | ActivationsMulti,
    summary="Latent activations per token",
)
async def activations(body: ActivationsRequest, engine: EngineDep):
    """Runs each model only as far as the SAE's hook point and encodes with the SAE's own
    `encode`. A list of models returns one result per model under `results`."""
    return await compute.activations(engine, body)
