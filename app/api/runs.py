"""Saved runs: the server computes a request of any kind, stores request, result and
provenance, and hands out a link that shows exactly that. Runs are immutable; ids carry
128 random bits; the delete token is shown once, on creation."""

from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from app import kinds
from app.schemas.errors import RATE_LIMITED, WRITES
from app.schemas.fields import MAX_OFFSET
from app.schemas.runs import RerunResult, RunCreate, RunCreated, RunPublic, RunsPublic
from app.services import runs
from app.services.deps import BaseUrlDep, ClientDep, ContextDep

router = APIRouter(prefix="/api/runs", tags=["runs"], responses=WRITES)

KindName = Literal[tuple(kinds.KINDS)]  # the registered request kinds


def json_attachment(body: BaseModel, filename: str) -> JSONResponse:
    """A response model as a downloadable JSON file."""
    return JSONResponse(
        body.model_dump(mode="json"),
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.post("", status_code=201, response_model=RunCreated, summary="Compute and save a run")
async def create_run(body: RunCreate, ctx: ContextDep, base: BaseUrlDep):
    """Runs `request` exactly as POST /api/<kind> would (the server never stores a result
    a client sent), then stores request, result and provenance in one transaction.
    Errors in `request` name the field as `request.<field>`. Returns the link and the
    delete token, which is shown only here."""
    return await runs.create_run(ctx, body, base)


@router.get("", response_model=RunsPublic, summary="Recent runs")
def list_runs(
    ctx: ContextDep,
    base: BaseUrlDep,
    limit: Annotated[int, Query(ge=1, le=100, description="Page size (1-100).")] = 20,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Runs to skip.")] = 0,
    kind: Annotated[KindName | None, Query(description="Only runs of this kind.")] = None,
):
    """Listed runs, newest first, a page at a time (unlisted runs are left out)."""
    return runs.list_runs(ctx, base, limit=limit, offset=offset, kind=kind)


@router.get("/{run_id}", response_model=RunPublic, summary="A saved run")
def get_run(run_id: str, ctx: ContextDep, base: BaseUrlDep):
    """The stored request, result and provenance. Unknown or malformed ids are 404."""
    return runs.run_public(runs.get_run(ctx, run_id), base)


@router.get("/{run_id}/download", response_model=RunPublic, summary="A saved run as a JSON file")
def download_run(run_id: str, ctx: ContextDep, base: BaseUrlDep):
    """The same JSON as GET /api/runs/{id}, as an attachment `personascope-run-<id>.json`."""
    body = RunPublic.model_validate(runs.run_public(runs.get_run(ctx, run_id), base))
    return json_attachment(body, f"personascope-run-{run_id}.json")


@router.post(
    "/{run_id}/rerun",
    response_model=RerunResult,
    responses=RATE_LIMITED,
    summary="Recompute a saved run",
)
async def rerun(run_id: str, ctx: ContextDep, client: ClientDep):
    """Computes the stored request again (nothing is stored) and compares: `identical` when
    the result is byte for byte the stored one, which temperature 0 guarantees while the
    weights are unchanged. Otherwise `message` says why it cannot be reproduced
    (weights changed, an input changed, or the environment changed). Each client may rerun
    `reruns_per_minute` times a minute (429 with Retry-After beyond)."""
    return await runs.rerun(ctx, run_id, client)


@router.delete("/{run_id}", status_code=204, summary="Delete a saved run")
def delete_run(
    run_id: str,
    ctx: ContextDep,
    x_delete_token: Annotated[
        str | None, Header(description="The delete token returned when the run was saved.")
    ] = None,
):
    """Deletes the run if `X-Delete-Token` is its token (401 without one, 403 when wrong:
    nothing is deleted). A run shown by a comparison cannot be deleted (409) until the
    comparison is."""
    runs.delete_run(ctx, run_id, x_delete_token)
    return Response(status_code=204)
