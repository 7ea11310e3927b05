"""Model diffing (the `compare` kind): rank SAE latents by how much their mean activation
rises from a base model to a fine-tuned one on the same prompts."""

import copy
import hashlib
import json

from app import kinds
from app.analysis.compare import compare_models
from app.errors import InvalidRequest
from app.schemas.compare import CompareRequest, CompareResult
from app.schemas.conversation import turns
from app.schemas.fields import json_param
from app.services import catalog, results
from app.services.context import Context, batch_key


@results.recorded("compare")
async def compare(ctx: Context, body: CompareRequest) -> dict:
    """POST /api/compare. Waiting requests for the same (base, finetuned, SAE) share the
    forward passes of each model."""
    sae, base_model = ctx.registry.sae_for(body.sae, body.base)
    ctx.registry.sae_for(body.sae, body.finetuned)
    if body.prompts and body.conversations:
        raise InvalidRequest(
            "conversations: give either `prompts` or `conversations`, not both",
            field="conversations",
        )
    if body.conversations:
        convs = [turns(c) for c in body.conversations]
        ids = ctx.engine.tokenize_conversations(base_model, convs)
    else:
        prompts = body.prompts or [q["question"] for q in catalog.questions(ctx, body.question_set)]
        ids = ctx.engine.tokenize_all(base_model, prompts, body.chat)
    cost = ctx.engine.admit(2 * sum(len(i) for i in ids))  # both models read every prompt
    # Only identical requests share a batch, and it is computed once: pooling different
    # requests' prompts pads them to other widths, which moves means in their last bits.
    prints = hashlib.sha256(json.dumps([ids, body.top_n]).encode()).hexdigest()
    key = batch_key(("compare", body.base, body.finetuned, body.sae, prints))

    def run_batch(jobs: list[tuple[list[list[int]], int]]) -> list[dict]:
        result = compare_models(ctx.registry, body.base, body.finetuned, sae, *jobs[0])
        return [result] + [copy.deepcopy(result) for _ in jobs[1:]]

    return await ctx.worker.run_batched(key, (ids, body.top_n), run_batch, cost=cost)


def _page_params(request: dict) -> dict:
    out = {**request, "prompts": "\n".join(request.get("prompts") or []) or None}
    if request.get("conversations"):
        out["conversations"] = json_param(request["conversations"])
    return out


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
