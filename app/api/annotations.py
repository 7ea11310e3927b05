"""Latent annotations: a team's labels and notes on SAE latents, and pinned latents per SAE.
Default pins (the model config's `pins:` and the organism report's persona latent) are
listed with the stored ones."""

from typing import Annotated

from fastapi import APIRouter, Header, Query, Response

from app.schemas.annotations import (
    MAX_QUERY_LATENTS,
    AnnotationsPublic,
    AnnotationUpdate,
    LatentAnnotationPublic,
    PinCreate,
)
from app.schemas.errors import WRITES
from app.services import annotations
from app.services.deps import ContextDep

router = APIRouter(prefix="/api/saes", tags=["annotations"], responses=WRITES)

# Writes carry the server's edit token when it has one (PERSONASCOPE_EDIT_TOKEN).
EditToken = Annotated[
    str | None,
    Header(description="The server's edit token; required when PERSONASCOPE_EDIT_TOKEN is set."),
]


@router.get("/{sae_id}/annotations", response_model=AnnotationsPublic, summary="Annotations")
def list_annotations(
    sae_id: str,
    ctx: ContextDep,
    latents: Annotated[
        list[int] | None,
        Query(
            max_length=MAX_QUERY_LATENTS,
            description="Only these latents (each gets an entry, annotated or not).",
        ),
    ] = None,
):
    """Every latent of the SAE with a label, note or pin (default pins included), by
    latent index; or exactly the latents asked for."""
    return annotations.list_annotations(ctx, sae_id, latents)


@router.get(
    "/{sae_id}/latents/{latent}/annotation",
    response_model=LatentAnnotationPublic,
    summary="One latent's annotation",
)
def get_annotation(sae_id: str, latent: int, ctx: ContextDep):
    """The latent's label, note and pin state (empty when it has none)."""
    return annotations.get(ctx, sae_id, latent)


@router.put(
    "/{sae_id}/latents/{latent}/annotation",
    response_model=LatentAnnotationPublic,
    summary="Label or note a latent",
)
def put_annotation(
    sae_id: str,
    latent: int,
    body: AnnotationUpdate,
    ctx: ContextDep,
    x_edit_token: EditToken = None,
):
    """Sets the latent's label and note (replacing both). The latent must be in
    [0, d_sae) of the SAE."""
    return annotations.put(ctx, sae_id, latent, body, x_edit_token)


@router.delete(
    "/{sae_id}/latents/{latent}/annotation", status_code=204, summary="Clear an annotation"
)
def delete_annotation(sae_id: str, latent: int, ctx: ContextDep, x_edit_token: EditToken = None):
    """Removes the stored label and note (404 when there is none). Pins are unaffected."""
    annotations.delete(ctx, sae_id, latent, x_edit_token)
    return Response(status_code=204)


@router.get("/{sae_id}/pins", response_model=AnnotationsPublic, summary="Pinned latents")
def list_pins(sae_id: str, ctx: ContextDep):
    """Default pins (the report's persona latent, the config's `pins:`) first, then the
    latents pinned here in the order they were pinned, each with its annotation."""
    return annotations.pins(ctx, sae_id)


@router.post(
    "/{sae_id}/pins",
    status_code=201,
    response_model=LatentAnnotationPublic,
    summary="Pin a latent",
)
def add_pin(sae_id: str, body: PinCreate, ctx: ContextDep, x_edit_token: EditToken = None):
    """Pins the latent (pinning it again changes nothing)."""
    return annotations.pin(ctx, sae_id, body.latent, x_edit_token)


@router.delete("/{sae_id}/pins/{latent}", status_code=204, summary="Unpin a latent")
def delete_pin(sae_id: str, latent: int, ctx: ContextDep, x_edit_token: EditToken = None):
    """Unpins a latent pinned here. A default pin comes from the model config or the
    report and stays (409); edit the config to remove it."""
    annotations.unpin(ctx, sae_id, latent, x_edit_token)
    return Response(status_code=204)
