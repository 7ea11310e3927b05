"""Per-prompt SAE latent activations."""

from fastapi import APIRouter

from app.schemas.activations import ActivationsRequest, ActivationsResponse
from app.services import inspection
from app.services.deps import ContextDep

router = APIRouter(prefix="/api", tags=["activations"])


@router.post(
    "/activations", response_model=ActivationsResponse, summary="Latent activations per token"
)
async def activations(body: ActivationsRequest, ctx: ContextDep):
    """Runs each model only as far as the SAE's hook point and encodes with the SAE's own
    `encode`. A list of models returns one result per model under `results`."""
    return await inspection.activations(ctx, body)
