"""Latent dashboards: one latent's page, the latent list, and search by inference."""

from typing import Annotated, Literal

import torch
from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from app.api.annotations import latent_annotations
from app.api.deps import EngineDep, SessionDep
from app.engine.activations import latent_activations
from app.index.store import (
    describe,
    indexes_for,
    latent_dashboard,
    list_latents,
    pick_index,
    stats_for,
)

router = APIRouter(prefix="/api", tags=["latents"])


@router.get("/saes/{sae_id}/indexes", summary="Indexes built for an SAE")
def indexes(sae_id: str, engine: EngineDep, session: SessionDep) -> dict:
    engine.registry.sae(sae_id, "sae_id")
    return {"sae": sae_id, "indexes": [describe(i) for i in indexes_for(session, sae_id)]}


@router.get("/saes/{sae_id}/latents/{latent}", summary="One latent's dashboard")
def latent(
    sae_id: str,
    latent: int,
    engine: EngineDep,
    session: SessionDep,
    model: Annotated[str | None, Query(description="Which model's index (when several).")] = None,
    dataset: Annotated[str | None, Query(description="Which dataset's index.")] = None,
) -> dict:
    """Top-activating contexts (per-token values, descending by max), activation-interval
    bins with the fraction of activations in each and examples, the histogram of nonzero
    activations (log-spaced), density, logit effects, decoder neighbours, and the latent's
    label, note and pin state."""
    sae = engine.registry.sae(sae_id, "sae_id")
    sae.check_latent(latent)
    index = pick_index(session, sae_id, model, dataset)
    out = latent_dashboard(session, index, latent)
    out["sae"] = sae_id
    out["annotation"] = latent_annotations(session, engine, sae_id, [latent])[latent]
    for n in out["neighbors"]:
        n["label"] = ""
    labels = latent_annotations(session, engine, sae_id, [n["latent"] for n in out["neighbors"]])
    for n in out["neighbors"]:
        n["label"] = labels[n["latent"]]["label"]
    out["other_indexes"] = [
        {"model": i.model_id, "dataset": i.dataset_id}
        for i in indexes_for(session, sae_id)
        if i.id != index.id
    ]
    return out


@router.get("/saes/{sae_id}/latents", summary="List latents")
def latents(
    sae_id: str,
    engine: EngineDep,
    session: SessionDep,
    model: str | None = None,
    dataset: str | None = None,
    sort: Literal["density", "max_activation", "label", "latent"] = "max_activation",
    order: Literal["asc", "desc"] = "desc",
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    q: Annotated[
        str | None, Query(max_length=200, description="Text in the label or promoted tokens.")
    ] = None,
    min_density: Annotated[float, Query(ge=0, le=1)] = 0.0,
    max_density: Annotated[float, Query(ge=0, le=1)] = 1.0,
    pinned: bool = False,
) -> dict:
    """Paged, sorted by density, max activation, label or index; filtered by text (labels
    and promoted tokens), a density range, or pinned only."""
    engine.registry.sae(sae_id, "sae_id")
    index = pick_index(session, sae_id, model, dataset)
    only = None
    if pinned:
        notes = latent_annotations(session, engine, sae_id, range(index.d_sae))
        only = [i for i, a in notes.items() if a["pinned"]]
    total, rows = list_latents(
        session,
        index,
        sort=sort,
        descending=order == "desc",
        offset=offset,
        limit=limit,
        q=q,
        latent_ids=only,
        min_density=min_density,
        max_density=max_density,
    )
    notes = latent_annotations(session, engine, sae_id, [s.latent for s, _ in rows])
    return {
        "index": describe(index),
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


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sae: str = Field(..., description="SAE id.")
    model: str | None = Field(None, description="Model to run (default: the SAE's first).")
    text: str = Field(..., min_length=1, description="Text to run (at most 512 tokens).")
    top_n: int = Field(20, ge=1, le=200, description="How many latents to return.")
    sort: Literal["max", "sum"] = Field("max", description="Rank by max or sum over tokens.")
    min_density: float = Field(0.0, ge=0, le=1, description="Density filter (needs an index).")
    max_density: float = Field(1.0, ge=0, le=1, description="Density filter (needs an index).")


@router.post("/search", summary="Which latents fire on a text")
async def search(body: SearchRequest, engine: EngineDep, session: SessionDep) -> dict:
    """Neuronpedia's "search via inference": run the text, rank latents by their max (or
    sum) over its tokens (BOS excluded), keep those whose dataset density lies in the range
    (when an index of this SAE exists), and say where each fires."""
    sae = engine.registry.sae(body.sae)
    model_id = body.model or next(iter(sae.hooks))
    sae, model = engine.registry.sae_for(body.sae, model_id)
    ids = engine.tokenize(model, body.text, field="text")

    def run():
        with engine.registry.activate(model_id) as live:
            acts = latent_activations(live, sae, torch.tensor([ids]))[0, 1:].cpu()  # no BOS
        return acts

    acts = await engine.worker.run(run)  # (seq, d_sae)
    score = acts.amax(0) if body.sort == "max" else acts.sum(0)
    positive = [i for i in torch.argsort(score, descending=True).tolist() if score[i] > 0]
    filtering = body.min_density > 0 or body.max_density < 1
    index = pick_index(session, body.sae) if filtering or indexes_for(session, body.sae) else None
    candidates = positive if filtering else positive[: body.top_n]
    stats = stats_for(session, index, candidates) if index is not None else {}
    results = []
    for i in candidates:
        density = stats[i].density if i in stats else None
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
    labels = latent_annotations(session, engine, body.sae, [r["latent"] for r in results])
    for r in results:
        r["label"] = labels[r["latent"]]["label"]
    return {
        "sae": body.sae,
        "model": model_id,
        "tokens": model.token_strings(ids[1:]),
        "index": describe(index) if index is not None else None,
        "results": results,
    }
