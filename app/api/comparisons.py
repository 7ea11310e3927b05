"""Comparisons: a named, ordered collection of saved runs (base vs fine-tuned, an alpha
sweep, several latents) shared as one link `/c/{id}`. Same rules as runs: immutable,
unguessable ids, a delete token shown once."""

from typing import Annotated

from fastapi import APIRouter, Header, Query, Response

from app.api.runs import json_attachment
from app.schemas.errors import RATE_LIMITED, WRITES
from app.schemas.fields import MAX_OFFSET
from app.schemas.runs import (
    ComparisonCreate,
    ComparisonCreated,
    ComparisonPublic,
    ComparisonRerun,
    ComparisonsPublic,
)
from app.services import runs
from app.services.deps import BaseUrlDep, ClientDep, ContextDep

router = APIRouter(prefix="/api/comparisons", tags=["comparisons"], responses=WRITES)


@router.post(
    "", status_code=201, response_model=ComparisonCreated, summary="Save a comparison of runs"
)
def create_comparison(body: ComparisonCreate, ctx: ContextDep, base: BaseUrlDep):
    """Stores an ordered collection of saved runs under one link. Every run must exist
    (404 naming `runs[i]` otherwise). Returns the delete token, shown only here."""
    return runs.create_comparison(ctx, body, base)


@router.get("", response_model=ComparisonsPublic, summary="Recent comparisons")
def list_comparisons(
    ctx: ContextDep,
    base: BaseUrlDep,
    limit: Annotated[int, Query(ge=1, le=100, description="Page size (1-100).")] = 20,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Comparisons to skip.")] = 0,
):
    """Listed comparisons, newest first, a page at a time."""
    return runs.list_comparisons(ctx, base, limit=limit, offset=offset)


@router.get("/{comparison_id}", response_model=ComparisonPublic, summary="A comparison")
def get_comparison(comparison_id: str, ctx: ContextDep, base: BaseUrlDep):
    """The comparison with every run in full, in order. Unknown or malformed ids are 404."""
    return runs.get_comparison(ctx, comparison_id, base)


@router.get(
    "/{comparison_id}/download",
    response_model=ComparisonPublic,
    summary="A comparison as a JSON file",
)
def download_comparison(comparison_id: str, ctx: ContextDep, base: BaseUrlDep):
    """The same JSON as GET /api/comparisons/{id}, as an attachment."""
    body = ComparisonPublic.model_validate(runs.get_comparison(ctx, comparison_id, base))
    return json_attachment(body, f"personascope-comparison-{comparison_id}.json")


@router.post(
    "/{comparison_id}/rerun",
    response_model=ComparisonRerun,
    responses=RATE_LIMITED,
    summary="Recompute every run",
)
async def rerun_comparison(comparison_id: str, ctx: ContextDep, client: ClientDep):
    """POST /api/runs/{id}/rerun for each run of the comparison, in order (one rerun of the
    client's `reruns_per_minute`)."""
    return await runs.rerun_comparison(ctx, comparison_id, client)


@router.delete("/{comparison_id}", status_code=204, summary="Delete a comparison")
def delete_comparison(
    comparison_id: str,
    ctx: ContextDep,
    x_delete_token: Annotated[
        str | None, Header(description="The delete token returned when it was saved.")
    ] = None,
):
    """Deletes the comparison (its runs stay) if `X-Delete-Token` is its token; 401
    without one, 403 when wrong (nothing is deleted)."""
    runs.delete_comparison(ctx, comparison_id, x_delete_token)
    return Response(status_code=204)
