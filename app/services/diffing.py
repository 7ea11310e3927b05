"""Model diffing (the `compare` kind): rank SAE latents by how much their mean activation
rises from a base model to a fine-tuned one on the same prompts."""

from app import kinds
from app.analysis.compare import compare_models
from app.schemas.compare import CompareRequest, CompareResult
from app.services import catalog, results
from app.services.context import Context


@results.recorded("compare")
async def compare(ctx: Context, body: CompareRequest) -> dict:
    """POST /api/compare."""
    sae, base_model = ctx.registry.sae_for(body.sae, body.base)
    ctx.registry.sae_for(body.sae, body.finetuned)
    prompts = body.prompts or [q["question"] for q in catalog.questions(ctx, body.question_set)]
    ids = ctx.engine.tokenize_all(base_model, prompts, body.chat)
    cost = ctx.engine.admit(2 * sum(len(i) for i in ids))  # both models read every prompt
    return await ctx.worker.run(
        compare_models, ctx.registry, body.base, body.finetuned, sae, ids, body.top_n, cost=cost
    )


def _page_params(request: dict) -> dict:
    return {**request, "prompts": "\n".join(request.get("prompts") or []) or None}


kinds.register(
    kinds.Kind(
        name="compare",
        request=CompareRequest,
        response=CompareResult,
        run=compare,
        page="/diff",
        view="compare",
        page_params=_page_params,
        summary="Diff two models in SAE space",
    )
)
