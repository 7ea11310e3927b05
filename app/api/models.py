"""What the server hosts: models, adapters, SAEs, and each model's hook points."""

from fastapi import APIRouter

from app.schemas.models import HooksPublic, ModelsPublic
from app.services import catalog
from app.services.deps import ContextDep

router = APIRouter(prefix="/api/models", tags=["models"])


@router.get("", response_model=ModelsPublic, summary="Hosted models and SAEs")
def list_models(ctx: ContextDep):
    """`models`: each hosted model (`source` is the hub id or local path its weights came
    from; adapters name their `base`). `saes`: each SAE, its hook and the models it applies
    to. Also the question sets and judges the config offers."""
    return catalog.models_public(ctx)


@router.get("/{model_id}/hooks", response_model=HooksPublic, summary="A model's hook points")
def hooks(model_id: str, ctx: ContextDep):
    """Every TransformerLens-style name this model supports, the module it maps to, and
    the block modules (any module path of the model is also accepted as an SAE hook)."""
    return catalog.hooks_public(ctx, model_id)
