"""Residual-stream directions: make one (mean difference of activations, model difference,
an SAE latent's direction, or your own vector), read it, list them, delete one."""

from typing import Annotated

from fastapi import APIRouter, Body, Header, Query, Response

from app.schemas.directions import (
    DirectionCreate,
    DirectionCreated,
    DirectionPublic,
    DirectionsPublic,
)
from app.schemas.errors import WRITES
from app.schemas.fields import MAX_OFFSET
from app.services import directions
from app.services.deps import ContextDep

router = APIRouter(prefix="/api/directions", tags=["directions"], responses=WRITES)


@router.post("", status_code=201, response_model=DirectionCreated, summary="Make a direction")
async def create_direction(body: Annotated[DirectionCreate, Body()], ctx: ContextDep):
    """`method` is one of:
    - `mean_diff`: mean(activations on `positive`) - mean(on `negative`) at `hook` (or the
      hook of `sae`) of `model`, over `positions`: every token, the last of each text, or
      the completion tokens of {prompt, completion} pairs (a persona vector);
    - `model_diff`: mean activation of `finetuned` minus `base` on the same `prompts`;
    - `latent`: the SAE latent's own direction, d_i = decode(e_i) - decode(0), as `add`
      steering uses it;
    - `vector`: your `values`, d_model of them.
    The answer names the 10 decoder directions of each SAE on that hook that align best
    with it (`top_latents`), and the delete token, shown only here."""
    return await directions.create(ctx, body)


@router.get("", response_model=DirectionsPublic, summary="Directions, newest first")
def list_directions(
    ctx: ContextDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
):
    return directions.listing(ctx, limit=limit, offset=offset)


@router.get("/{direction_id}", response_model=DirectionPublic, summary="A direction")
def get_direction(direction_id: str, ctx: ContextDep):
    return directions.get(ctx, direction_id)


@router.delete("/{direction_id}", status_code=204, summary="Delete a direction")
def delete_direction(
    direction_id: str,
    ctx: ContextDep,
    x_delete_token: Annotated[str | None, Header(description="Its delete token.")] = None,
):
    """Deletes the direction if `X-Delete-Token` is its token (the one POST answered); 401
    without one, 403 when wrong (nothing is deleted), 404 for an unknown id. Saved runs
    that used it stay as they are (their result and the direction's sha256); rerunning one
    is then a 409 naming the edit's `direction` field."""
    directions.delete(ctx, direction_id, x_delete_token)
    return Response(status_code=204)
