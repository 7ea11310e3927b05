"""Latent dashboards: one latent's page, the latent list, and search by inference."""

from typing import Annotated

from fastapi import APIRouter, Query

from app.schemas.latents import (
    FeatureRef,
    IndexesPublic,
    LatentDashboard,
    LatentList,
    LatentListQuery,
    SearchRequest,
    SearchResult,
)
from app.services import latents
from app.services.deps import ContextDep

router = APIRouter(prefix="/api", tags=["latents"])


@router.get("/features/{ref:path}", response_model=FeatureRef, summary="Find a latent by its id")
def feature(ref: str, ctx: ContextDep):
    """A Neuronpedia-style feature id (`gpt2-small/8-res-jb/1234`, for SAEs SAELens'
    registry names on Neuronpedia) or `<sae id>/<latent>`, as the hosted SAE and latent."""
    return latents.resolve(ctx, ref)


@router.get(
    "/saes/{sae_id}/indexes", response_model=IndexesPublic, summary="Indexes built for an SAE"
)
def indexes(sae_id: str, ctx: ContextDep):
    return latents.indexes(ctx, sae_id)


@router.get(
    "/saes/{sae_id}/latents/{latent}",
    response_model=LatentDashboard,
    summary="One latent's dashboard",
)
def latent(
    sae_id: str,
    latent: int,
    ctx: ContextDep,
    model: Annotated[str | None, Query(description="Which model's index (when several).")] = None,
    dataset: Annotated[str | None, Query(description="Which dataset's index.")] = None,
):
    """Top-activating contexts (per-token values, descending by max), activation-interval
    bins with the fraction of activations in each and examples, the histogram of nonzero
    activations (log-spaced), density, logit effects, decoder neighbours, and the latent's
    label, note and pin state."""
    return latents.dashboard(ctx, sae_id, latent, model, dataset)


@router.get("/saes/{sae_id}/latents", response_model=LatentList, summary="List latents")
def latent_list(sae_id: str, query: Annotated[LatentListQuery, Query()], ctx: ContextDep):
    """Paged, sorted by density, max activation, label or index; filtered by text (labels
    and promoted tokens), a density range, or pinned only."""
    return latents.listing(ctx, sae_id, query)


@router.post("/search", response_model=SearchResult, summary="Which latents fire on a text")
async def search(body: SearchRequest, ctx: ContextDep):
    """Neuronpedia's "search via inference": run the text, rank latents by their max (or
    sum) over its tokens (BOS excluded), keep those whose dataset density lies in the range
    (when an index of this SAE exists), and say where each fires."""
    return await latents.search(ctx, body)
