"""Inspection: a prompt through one model or several and an SAE, the latents of every
token (the `activations` kind), and the inspector's choice of a latent to show."""

from dataclasses import dataclass

import torch

from app import kinds
from app.engine.activations import activation_result, row_latents, row_values
from app.schemas.activations import ActivationsRequest, ActivationsResponse
from app.schemas.fields import json_param, model_ids
from app.services import catalog, directions, results
from app.services.context import Context, batch_key, off_loop


def _validate(ctx: Context, body: ActivationsRequest) -> list[tuple[str, list[int]]]:
    ctx.engine.check_top_k(body.top_k)
    ctx.engine.check_models(model_ids(body.model))
    out = []
    for mid in model_ids(body.model):
        sae, model = ctx.registry.sae_for(body.sae, mid)
        ids, _ = ctx.engine.tokenize_input(model, body.prompt, body.messages, body.chat)
        for i, latent in enumerate(body.latents):
            sae.check_latent(latent, f"latents[{i}]")
        out.append((mid, ids))
    return out


@dataclass
class Job:
    """One activations request, validated: its token ids per model (the batch key's
    models, in order) and what its result holds."""

    prompts: list[tuple[str, list[int]]]
    top_k: int
    latents: list[int]
    proj: directions.Projector | None = None
    special: dict[str, set[int]] | None = None


def job_key(body: ActivationsRequest, prompts: list[tuple[str, list[int]]]) -> tuple:
    """Requests with the same key share one forward pass per model: the same models (in
    order), the same SAE and the same token count per model; prompts, conversations,
    top_k, latents and directions may differ. Rows of one length need no padding, and an
    unpadded row's values here are bitwise those it gets alone (a padded row's move in
    their last bits: tests/engine/test_batching_activations.py), so a result never
    depends on its company and a saved run reruns byte for byte."""
    lengths = tuple(len(ids) for _, ids in prompts)
    return ("activations", tuple(model_ids(body.model)), body.sae, lengths)


@results.recorded("activations")
async def activations(ctx: Context, body: ActivationsRequest) -> dict:
    """POST /api/activations: runs each model only as far as the SAE's hook point and
    encodes with the SAE's own `encode`. Waiting requests for the same models and SAE are
    batched: one forward pass per model for all of them."""
    prompts = _validate(ctx, body)
    proj = None
    if body.direction is not None:
        proj = await off_loop(
            directions.projector, ctx, body.direction, [m for m, _ in prompts], body.sae
        )
    special = {mid: catalog.special_ids(ctx, mid) for mid, _ in prompts}
    job = Job(prompts, body.top_k, list(body.latents), proj, special)
    cost = ctx.engine.admit(sum(len(ids) for _, ids in prompts) * (2 if proj else 1))
    results, grown = await ctx.worker.run_batched(
        batch_key(job_key(body, prompts)),
        job,
        lambda jobs: run_batch(ctx, body.sae, jobs),
        cost=cost,
    )
    return results[0] if isinstance(body.model, str) else {"results": results, "growth": grown}


def run_batch(ctx: Context, sae_id: str, jobs: list[Job]) -> list[tuple[list[dict], list]]:
    """Several requests (one `job_key`) on the device worker: per model ONE forward pass over
    every request's prompt, padded on the right; each request reads only its own row's real
    tokens. Returns each request's (results per model, growth)."""
    sae = ctx.registry.sae(sae_id)
    models = [mid for mid, _ in jobs[0].prompts]
    out: list[list[dict]] = [[] for _ in jobs]
    peaks: list[list[torch.Tensor]] = [[] for _ in jobs]
    for m, mid in enumerate(models):
        rows = [job.prompts[m][1] for job in jobs]
        with ctx.registry.activate(mid) as live:
            values = row_values(live, sae.hooks[mid], rows)
            for j, (job, ids, hooked) in enumerate(zip(jobs, rows, values, strict=True)):
                acts = row_latents(sae, hooked)  # (seq, d_sae)
                result = activation_result(live, sae, ids, acts, job.top_k, job.latents)
                if job.proj is not None:
                    result["projection"] = directions.projection_of(
                        job.proj, hooked, ids, job.special[mid]
                    )
                out[j].append(result)
                if len(models) >= 2 and m in (0, len(models) - 1):
                    peaks[j].append(_peaks(acts, ids, job.special[mid]))
            del values
    return [(res, _growth(p) if len(p) == 2 else []) for res, p in zip(out, peaks, strict=True)]


GROWTH_LATENTS = 10


def _peaks(acts: torch.Tensor, ids: list[int], special: set[int]) -> torch.Tensor:
    """Each latent's peak over the prompt's non-special tokens (zeros when none)."""
    keep = torch.tensor([t not in special for t in ids])
    return acts[keep].amax(0) if keep.any() else torch.zeros(acts.shape[-1])


def _growth(peaks: list[torch.Tensor]) -> list[dict]:
    """The latents whose peak over non-special tokens grows most from the first model to the
    last, over every latent of the SAE."""
    delta = peaks[1] - peaks[0]
    order = torch.argsort(delta, descending=True)[:GROWTH_LATENTS].tolist()
    return [
        {
            "latent": i,
            "first": float(peaks[0][i]),
            "last": float(peaks[1][i]),
            "delta": float(delta[i]),
        }
        for i in order
        if delta[i] > 0
    ]


def results_of(result: dict) -> list[dict]:
    """One result per model: a multi-model answer holds them under `results`."""
    return list(result["results"]) if "results" in result else [result]


def peak_by_latent(result: dict, special: list[bool]) -> dict[int, float]:
    """Each latent's largest value over the (non-special) tokens, from the top-k lists."""
    out: dict[int, float] = {}
    for i, top in enumerate(result["top"]):
        if special[i]:
            continue
        for item in top:
            if item["value"] > out.get(item["latent"], 0.0):
                out[item["latent"]] = item["value"]
    return out


def pick_latent(
    results: list[dict], specials: list[list[bool]], grown: list[dict] | None = None
) -> int | None:
    """The latent to show when none was chosen: with two models or more, the one whose peak
    grows most from the first model to the last; with one, the largest peak."""
    if grown:
        return grown[0]["latent"]
    peaks = [peak_by_latent(r, s) for r, s in zip(results, specials, strict=True)]
    merged: dict[int, float] = {}
    for p in peaks:
        for i, v in p.items():
            merged[i] = max(v, merged.get(i, 0.0))
    return max(merged, key=merged.__getitem__, default=None)


async def inspect(
    ctx: Context, body: ActivationsRequest, latent: int | None
) -> tuple[list[dict], int | None, list[list[bool]]]:
    """The inspector: run the prompt; when no latent is chosen, pick one and run again for
    its trace. Returns (results per model, the latent shown, special tokens per model)."""
    first = await activations(ctx, body)
    results = results_of(first)
    specials = catalog.specials(ctx, results)
    if latent is None:
        latent = pick_latent(results, specials, first.get("growth"))
        if latent is not None:
            body = body.model_copy(update={"latents": [latent]})
            first = await activations(ctx, body)
            results = results_of(first)
    return results, latent, specials, first.get("growth", [])


async def latent_on_text(ctx: Context, sae_id: str, latent: int, model_id: str, text: str) -> dict:
    """One latent's values on a user's text (the latent page's "test your text" box)."""
    body = ActivationsRequest(
        model=model_id, sae=sae_id, prompt=text, top_k=1, latents=[latent], chat=False
    )
    result = await activations(ctx, body)
    special = catalog.special_ids(ctx, model_id)
    return {
        "tokens": result["tokens"],
        "token_ids": result["token_ids"],
        "values": result["latents"][str(latent)],
        "special": [tid in special for tid in result["token_ids"]],
    }


kinds.register(
    kinds.Kind(
        name="activations",
        request=ActivationsRequest,
        response=ActivationsResponse,
        run=activations,
        page="/inspect",
        view="activations",
        page_params=lambda r: {
            "model": r["model"],
            "sae": r["sae"],
            "prompt": r.get("prompt"),
            **({"messages": json_param(r["messages"])} if r.get("messages") else {}),
            "latent": (r.get("latents") or [None])[0],
            "top_k": r.get("top_k"),
            "chat": bool(r.get("chat", False)),
            "direction": r.get("direction"),
            "run": 1,  # the inspector is cheap: open it run
        },
        summary="Latent activations per token",
    )
)
