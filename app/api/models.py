"""What the server hosts: models, adapters, SAEs, and each model's hook points."""

from fastapi import APIRouter

from app.api.deps import EngineDep
from app.engine.hooks import list_hook_points

router = APIRouter(prefix="/api/models", tags=["models"])


@router.get("", summary="Hosted models and SAEs")
def list_models(engine: EngineDep) -> dict:
    """`models`: each hosted model (`source` is the hub id or local path its weights came
    from; adapters name their `base`). `saes`: each SAE, its hook and the models it applies
    to. Also the question sets and judges the config offers."""
    out = engine.registry.public()
    spec = engine.registry.config.spec
    out["question_sets"] = [
        {"id": k, "path": v.path, "description": v.description}
        for k, v in spec.question_sets.items()
    ]
    out["judges"] = [
        {"id": k, "kind": v.kind, "description": v.description} for k, v in spec.judges.items()
    ]
    out["default_model"] = spec.default_model or next(iter(spec.models))
    out["default_sae"] = spec.default_sae or next(iter(spec.saes), None)
    return out


@router.get("/{model_id}/hooks", summary="A model's hook points")
def hooks(model_id: str, engine: EngineDep) -> dict:
    """Every TransformerLens-style name this model supports, the module it maps to, and
    the block modules (any module path of the model is also accepted as an SAE hook)."""
    model = engine.registry.model(model_id, "model_id")
    return {"model": model_id, "hooks": list_hook_points(model.hf)}
