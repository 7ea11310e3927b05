"""Latent dashboards and search: one latent's page, the latent list, the indexes of an
SAE, and "search by inference" (which latents fire on a text)."""

from typing import Any

import torch

from app.db import indexes as repo
from app.engine.activations import latent_activations
from app.index import progress
from app.schemas.latents import LatentListQuery, SearchRequest
from app.services import annotations
from app.services.context import Context, off_loop

NEURONPEDIA = "https://www.neuronpedia.org"


def neuronpedia_url(neuronpedia_id: str | None, latent: int) -> str | None:
    """The feature's page on Neuronpedia, when SAELens' registry names the SAE there."""
    return f"{NEURONPEDIA}/{neuronpedia_id}/{latent}" if neuronpedia_id else None


def resolve(ctx: Context, ref: str, field: str = "ref") -> dict[str, Any]:
    """A Neuronpedia-style feature id ('gpt2-small/8-res-jb/1234') or '<sae id>/<latent>'
    as the hosted SAE and latent."""
    sae, latent = ctx.registry.resolve_feature(ref, field)
    return {
        "sae": sae.id,
        "latent": latent,
        "neuronpedia_url": neuronpedia_url(sae.neuronpedia_id, latent),
    }


def build_progress(ctx: Context) -> dict[str, Any] | None:
    """The background index build's progress (`python -m app serve` starts it), if one is
    running: {state, model, sae, dataset, done, total, percent}."""
    found = progress.read(ctx.data_dir / "index" / "progress.json")
    if found is None:
        return None
    total = max(int(found.get("total") or 1), 1)
    return {**found, "percent": min(100, round(100 * int(found.get("done") or 0) / total))}


def indexes(ctx: Context, sae_id: str) -> dict[str, Any]:
    ctx.registry.sae(sae_id, "sae_id")
    with ctx.database.session() as session:
        return {
            "sae": sae_id,
            "indexes": [repo.describe(i) for i in repo.indexes_for(session, sae_id)],
        }


def pick_index(ctx: Context, session, sae_id: str, model: str | None, dataset: str | None):
    """The index a page or endpoint shows: the one asked for; else one of the config's
    default model, else of the SAE's first model that has one (never another model's index
    just because it is newer). The answer names it, and the others."""
    if model is None and dataset is None:
        found = repo.indexes_for(session, sae_id)
        spec = ctx.registry.config.spec
        preferred = [spec.default_model, *ctx.registry.sae(sae_id, "sae_id").hooks]
        for model_id in preferred:
            mine = [i for i in found if i.model_id == model_id]
            if mine:
                return mine[0]
    return repo.pick_index(session, sae_id, model, dataset)


def dashboard(
    ctx: Context, sae_id: str, latent: int, model: str | None = None, dataset: str | None = None
) -> dict[str, Any]:
    """Top-activating contexts, activation-interval bins, histogram, density, logit
    effects, decoder neighbours (labelled), the latent's annotation, and the other indexes
    of the SAE."""
    sae = ctx.registry.sae(sae_id, "sae_id")
    sae.check_latent(latent)
    with ctx.database.session() as session:
        index = pick_index(ctx, session, sae_id, model, dataset)
        out = repo.latent_dashboard(session, index, latent)
        others = [
            {"model": i.model_id, "dataset": i.dataset_id}
            for i in repo.indexes_for(session, sae_id)
            if i.id != index.id
        ]
    out["sae"] = sae_id
    notes = annotations.for_latents(ctx, sae_id, [latent, *(n["latent"] for n in out["neighbors"])])
    out["annotation"] = notes[latent]
    for n in out["neighbors"]:
        n["label"] = notes[n["latent"]]["label"]
    out["other_indexes"] = others
    return out


def listing(ctx: Context, sae_id: str, query: LatentListQuery) -> dict[str, Any]:
    """A page of latents, sorted by density, max activation, label or index; filtered by
    text (labels and promoted tokens), a density range, or pinned only."""
    ctx.registry.sae(sae_id, "sae_id")
    with ctx.database.session() as session:
        index = pick_index(ctx, session, sae_id, query.model, query.dataset)
    only = None
    if query.pinned:
        notes = annotations.for_latents(ctx, sae_id, range(index.d_sae))
        only = [i for i, a in notes.items() if a["pinned"]]
    # Labels that come from the model config or the organism report match too.
    needle = (query.q or "").casefold()
    default_matches = [
        i
        for i, pin in annotations.default_pins(ctx, sae_id).items()
        if needle and needle in pin.label.casefold()
    ]
    with ctx.database.session() as session:
        total, rows = repo.list_latents(
            session,
            index,
            sort=query.sort,
            descending=query.order == "desc",
            offset=query.offset,
            limit=query.limit,
            q=query.q,
            latent_ids=only,
            min_density=query.min_density,
            max_density=query.max_density,
            also_matching=default_matches,
        )
    notes = annotations.for_latents(ctx, sae_id, [s.latent for s, _ in rows])
    return {
        "index": repo.describe(index),
        "count": total,
        "data": [
            {
                "latent": s.latent,
                "density": s.density,
                "max_activation": s.max_activation,
                "mean_active": s.mean_active,
                "top_tokens": [t["token"] for t in s.logits["positive"][:5]],
                "label": notes[s.latent]["label"],
                "pinned": notes[s.latent]["pinned"],
            }
            for s, _label in rows
        ],
    }


def max_activation(ctx: Context, sae_id: str, latent: int, model: str | None, dataset: str | None):
    """The latent's largest activation in its index (None without an index): the scale
    a user's text is shaded on."""
    from app.errors import NotFound

    try:
        return dashboard(ctx, sae_id, latent, model, dataset)["max_activation"]
    except NotFound:
        return None


async def search(ctx: Context, body: SearchRequest) -> dict[str, Any]:
    """Neuronpedia's "search via inference": run the text, rank latents by their max (or
    sum) over its tokens (BOS excluded), keep those whose dataset density lies in the range
    (when an index of this SAE exists), and say where each fires."""
    sae = ctx.registry.sae(body.sae)
    model_id = body.model or next(iter(sae.hooks))
    sae, model = ctx.registry.sae_for(body.sae, model_id)
    ids = ctx.engine.tokenize(model, body.text, field="text")

    def run() -> torch.Tensor:
        with ctx.registry.activate(model_id) as live:
            return latent_activations(live, sae, torch.tensor([ids]))[0, 1:].cpu()  # no BOS

    acts = await ctx.worker.run(run, cost=ctx.engine.admit(len(ids)))  # (seq, d_sae)
    score = acts.amax(0) if body.sort == "max" else acts.sum(0)
    positive = [i for i in torch.argsort(score, descending=True).tolist() if score[i] > 0]
    filtering = body.min_density > 0 or body.max_density < 1
    candidates = positive if filtering else positive[: body.top_n]

    def densities():
        # Densities come from the index of the model that ran the text, never another's.
        with ctx.database.session() as session:
            known = [i for i in repo.indexes_for(session, body.sae) if i.model_id == model_id]
            index = repo.pick_index(session, body.sae, model_id) if filtering or known else None
            stats = repo.stats_for(session, index, candidates) if index is not None else {}
            return index, {i: s.density for i, s in stats.items()}

    index, density_of = await off_loop(densities)
    results = []
    for i in candidates:
        density = density_of.get(i)
        if filtering and (density is None or not body.min_density <= density <= body.max_density):
            continue
        results.append(
            {
                "latent": i,
                "max": float(acts[:, i].max()),
                "sum": float(acts[:, i].sum()),
                "density": density,
                "values": acts[:, i].tolist(),
            }
        )
        if len(results) == body.top_n:
            break
    labels = await off_loop(annotations.labels, ctx, body.sae, [r["latent"] for r in results])
    for r in results:
        r["label"] = labels[r["latent"]]
    return {
        "sae": body.sae,
        "model": model_id,
        "tokens": model.token_strings(ids[1:]),
        "index": repo.describe(index) if index is not None else None,
        "results": results,
    }
