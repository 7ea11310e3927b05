"""Comparisons: a named, ordered collection of saved runs (base vs fine-tuned, an alpha
sweep, several latents) shared as one link `/c/{id}`. Same rules as runs: immutable,
unguessable ids, a delete token shown once."""

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.api.deps import BaseUrlDep, EngineDep, SessionDep
from app.api.runs import RerunResult, RunPublic, Title, json_attachment, recompute, run_public
from app.db import crud
from app.db.models import Comparison
from app.errors import NotFound

router = APIRouter(prefix="/api/comparisons", tags=["comparisons"])

MAX_RUNS = 100
MAX_DESCRIPTION = 5000


# --------------------------------------------------------------------------------- schemas
class ComparisonCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Title = Field(..., description="A title for the link (1-200 characters).")
    description: str = Field(
        "", max_length=MAX_DESCRIPTION, description="What the comparison shows (plain text)."
    )
    runs: list[str] = Field(
        ...,
        min_length=1,
        max_length=MAX_RUNS,
        description=f"Ids of saved runs, in display order (1-{MAX_RUNS}, no repeats).",
    )
    unlisted: bool = Field(False, description="Leave out of GET /api/comparisons.")

    @field_validator("runs")
    @classmethod
    def _no_repeats(cls, value: list[str]) -> list[str]:
        seen: set[str] = set()
        for run_id in value:
            if run_id in seen:
                raise ValueError(f"run {run_id!r} is listed twice")
            seen.add(run_id)
        return value


class ComparisonSummary(BaseModel):
    id: str
    url: str = Field(..., description="The read-only page of the comparison (share this).")
    title: str
    description: str
    created_at: datetime
    run_ids: list[str] = Field(..., description="The runs, in order.")


class ComparisonPublic(ComparisonSummary):
    runs: list[RunPublic] = Field(..., description="Every run, in order, as GET /api/runs/{id}.")


class ComparisonsPublic(BaseModel):
    data: list[ComparisonSummary]
    count: int = Field(..., description="How many listed comparisons there are, over all pages.")


class ComparisonCreated(BaseModel):
    id: str
    url: str
    created_at: datetime
    run_ids: list[str]
    delete_token: str = Field(
        ..., description="Shown once: send it as X-Delete-Token to DELETE the comparison."
    )


class ComparisonRerun(BaseModel):
    id: str
    identical: bool = Field(..., description="Every run reproduced exactly.")
    runs: list[RerunResult]


# --------------------------------------------------------------------------------- helpers
def link(base_url: str, comparison_id: str) -> str:
    return f"{base_url}/c/{comparison_id}"


def comparison_summary(comparison: Comparison, base_url: str) -> dict[str, Any]:
    return {
        "id": comparison.id,
        "url": link(base_url, comparison.id),
        "title": comparison.title,
        "description": comparison.description,
        "created_at": crud.as_utc(comparison.created_at),
        "run_ids": [item.run_id for item in comparison.items],
    }


def comparison_public(comparison: Comparison, base_url: str) -> dict[str, Any]:
    return {
        **comparison_summary(comparison, base_url),
        "runs": [run_public(item.run, base_url) for item in comparison.items],
    }


def _get(session, comparison_id: str) -> Comparison:
    comparison = crud.get_comparison(session, comparison_id=comparison_id, with_runs=True)
    if comparison is None:
        raise NotFound(f"no comparison with id {comparison_id!r}", field="id")
    return comparison


# ---------------------------------------------------------------------------------- routes
@router.post(
    "", status_code=201, response_model=ComparisonCreated, summary="Save a comparison of runs"
)
def create_comparison(body: ComparisonCreate, session: SessionDep, base: BaseUrlDep):
    """Stores an ordered collection of saved runs under one link. Every run must exist
    (404 naming `runs[i]` otherwise). Returns the delete token, shown only here."""
    comparison, token = crud.create_comparison(
        session,
        title=body.title,
        description=body.description,
        run_ids=body.runs,
        unlisted=body.unlisted,
    )
    return {
        "id": comparison.id,
        "url": link(base, comparison.id),
        "created_at": crud.as_utc(comparison.created_at),
        "run_ids": body.runs,
        "delete_token": token,
    }


@router.get("", response_model=ComparisonsPublic, summary="Recent comparisons")
def list_comparisons(
    session: SessionDep,
    base: BaseUrlDep,
    limit: Annotated[int, Query(ge=1, le=100, description="Page size (1-100).")] = 20,
    offset: Annotated[int, Query(ge=0, description="Comparisons to skip.")] = 0,
):
    """Listed comparisons, newest first, a page at a time."""
    rows, count = crud.list_comparisons(session, limit=limit, offset=offset)
    return {"data": [comparison_summary(c, base) for c in rows], "count": count}


@router.get("/{comparison_id}", response_model=ComparisonPublic, summary="A comparison")
def get_comparison(comparison_id: str, session: SessionDep, base: BaseUrlDep):
    """The comparison with every run in full, in order. Unknown or malformed ids are 404."""
    return comparison_public(_get(session, comparison_id), base)


@router.get("/{comparison_id}/download", summary="A comparison as a JSON file")
def download_comparison(comparison_id: str, session: SessionDep, base: BaseUrlDep):
    """The same JSON as GET /api/comparisons/{id}, as an attachment."""
    body = ComparisonPublic.model_validate(comparison_public(_get(session, comparison_id), base))
    return json_attachment(body, f"personascope-comparison-{comparison_id}.json")


@router.post(
    "/{comparison_id}/rerun", response_model=ComparisonRerun, summary="Recompute every run"
)
async def rerun_comparison(comparison_id: str, engine: EngineDep, session: SessionDep):
    """POST /api/runs/{id}/rerun for each run of the comparison, in order."""
    comparison = await run_in_threadpool(_get, session, comparison_id)
    reports = [await recompute(engine, item.run) for item in comparison.items]
    return {
        "id": comparison.id,
        "identical": all(r["identical"] for r in reports),
        "runs": reports,
    }


@router.delete("/{comparison_id}", status_code=204, summary="Delete a comparison")
def delete_comparison(
    comparison_id: str,
    session: SessionDep,
    x_delete_token: Annotated[
        str | None, Header(description="The delete token returned when it was saved.")
    ] = None,
):
    """Deletes the comparison (its runs stay) if `X-Delete-Token` is its token; 401
    without one, 403 when wrong (nothing is deleted)."""
    crud.delete_comparison(session, comparison_id=comparison_id, token=x_delete_token)
    return Response(status_code=204)
