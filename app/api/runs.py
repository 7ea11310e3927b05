"""Saved runs: the server computes a request of any kind, stores request, result and
provenance, and hands out a link that shows exactly that.

Runs are immutable. Ids carry 128 random bits; the delete token is shown once, on creation,
and is the only way to delete. `POST /api/runs/{id}/rerun` computes again and says whether
the result is identical.
"""

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)

from app.api import provenance
from app.api.compute import KINDS
from app.api.deps import BaseUrlDep, EngineDep, SessionDep
from app.db import crud
from app.db.models import TITLE_LENGTH, Run, utcnow
from app.engine.engine import Engine
from app.errors import Conflict, DomainError, InvalidRequest, NotFound, choices

router = APIRouter(prefix="/api/runs", tags=["runs"])

Title = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=TITLE_LENGTH)
]


# --------------------------------------------------------------------------------- schemas
class RunCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: str = Field(
        ...,
        description=f"Which computation: one of {choices(KINDS)} (the endpoint POST /api/<kind>).",
        examples=["steer"],
    )
    request: dict[str, Any] = Field(
        ..., description="The same body that endpoint takes; the server runs it itself."
    )
    title: Title = Field(..., description=f"A title for the link (1-{TITLE_LENGTH} characters).")
    unlisted: bool = Field(
        False, description="Leave the run out of GET /api/runs; its link works all the same."
    )

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        if value not in KINDS:
            raise ValueError(f"unknown kind {value!r}; valid kinds: {choices(KINDS)}")
        return value


class RunSummary(BaseModel):
    id: str
    url: str = Field(..., description="The read-only page of the run (share this).")
    kind: str
    title: str
    created_at: datetime
    models: list[str] = Field(..., description="Model ids the run used.")
    saes: list[str] = Field(..., description="SAE ids the run used.")


class RunPublic(RunSummary):
    request: dict[str, Any] = Field(
        ..., description="The validated request, every default filled in."
    )
    result: dict[str, Any] = Field(..., description="Exactly what POST /api/<kind> returned.")
    provenance: dict[str, Any] = Field(
        ...,
        description="Fingerprints of the weights and files used (models, saes, judges, "
        "question_sets), seed, temperature, app and library versions, device, dtype, times.",
    )
    result_sha256: str = Field(..., description="sha256 of the result as canonical JSON.")


class RunsPublic(BaseModel):
    data: list[RunSummary]
    count: int = Field(..., description="How many listed runs match, over all pages.")


class RunCreated(BaseModel):
    id: str
    url: str
    created_at: datetime
    result: dict[str, Any]
    provenance: dict[str, Any]
    delete_token: str = Field(
        ...,
        description="Shown once: send it as X-Delete-Token to DELETE the run. The server "
        "keeps only its hash.",
    )


class RerunResult(BaseModel):
    id: str
    identical: bool = Field(..., description="The new result equals the stored one exactly.")
    weights_changed: bool = Field(
        ..., description="A model or SAE fingerprint differs from the stored one."
    )
    changes: list[dict[str, Any]] = Field(
        ..., description="Each fingerprint that differs: {what, id, stored, current}."
    )
    environment_changes: list[dict[str, Any]] = Field(
        ..., description="Device, dtype, app or library versions that differ."
    )
    differences: list[str] = Field(
        ..., description="JSON paths where the results differ (at most 20)."
    )
    message: str
    result: dict[str, Any] = Field(..., description="The new result (not stored).")
    provenance: dict[str, Any]


# --------------------------------------------------------------------------------- helpers
def link(base_url: str, run_id: str) -> str:
    return f"{base_url}/r/{run_id}"


def run_summary(run: Run, base_url: str) -> dict[str, Any]:
    prov = run.provenance or {}
    return {
        "id": run.id,
        "url": link(base_url, run.id),
        "kind": run.kind,
        "title": run.title,
        "created_at": crud.as_utc(run.created_at),
        "models": list((prov.get("models") or {}).keys()),
        "saes": list((prov.get("saes") or {}).keys()),
    }


def run_public(run: Run, base_url: str) -> dict[str, Any]:
    return {
        **run_summary(run, base_url),
        "request": run.request,
        "result": run.result,
        "provenance": run.provenance,
        "result_sha256": run.result_sha256,
    }


def _nest(exc: DomainError, prefix: str = "request") -> DomainError:
    """Name the field of a nested request's error as the client sent it: `request.latent`."""
    if exc.field and not exc.field.startswith(f"{prefix}."):
        if exc.message.startswith(f"{exc.field}:"):
            exc.message = f"{prefix}.{exc.message}"
        exc.field = f"{prefix}.{exc.field}"
    return exc


def parse_request(kind: str, request: dict[str, Any]) -> BaseModel:
    """Validate a nested request with its endpoint's own schema; errors name `request.*`."""
    try:
        return KINDS[kind].schema.model_validate(request)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", "request", *e["loc"])} for e in exc.errors()]
        raise RequestValidationError(errors) from None


async def compute(engine: Engine, kind: str, body: BaseModel) -> dict[str, Any]:
    """Run `body` through the endpoint's own computation; returns result, provenance and
    the result's hash. Nothing is stored here."""
    try:
        prints = provenance.fingerprints(engine, kind, body)
        started = utcnow()
        raw = await KINDS[kind].run(engine, body)
        finished = utcnow()
        result = provenance.public_result(kind, raw)
    except DomainError as exc:
        raise _nest(exc) from None
    return {
        "result": result,
        "provenance": provenance.record(engine, kind, body, prints, started, finished),
        "result_sha256": provenance.sha256(result),
    }


async def recompute(engine: Engine, run: Run) -> dict[str, Any]:
    """Compute a stored run again and judge the result against the stored one."""
    try:
        body = parse_request(run.kind, run.request)
    except RequestValidationError as exc:
        raise Conflict(
            f"run {run.id!r}: the stored request no longer validates on this server: "
            f"{exc.errors()[0]['msg']}"
        ) from None
    try:
        computed = await compute(engine, run.kind, body)
    except (NotFound, InvalidRequest) as exc:  # e.g. a model this server no longer hosts
        raise Conflict(
            f"run {run.id!r} cannot be recomputed on this server: {exc.message}", field=exc.field
        ) from None
    verdict = provenance.judge_rerun(
        run.provenance, run.result, computed["provenance"], computed["result"]
    )
    return {
        "id": run.id,
        **verdict,
        "result": computed["result"],
        "provenance": computed["provenance"],
    }


def _get(session, run_id: str) -> Run:
    run = crud.get_run(session, run_id=run_id)
    if run is None:
        raise NotFound(f"no run with id {run_id!r}", field="id")
    return run


# ---------------------------------------------------------------------------------- routes
@router.post("", status_code=201, response_model=RunCreated, summary="Compute and save a run")
async def create_run(body: RunCreate, engine: EngineDep, session: SessionDep, base: BaseUrlDep):
    """Runs `request` exactly as POST /api/<kind> would (the server never stores a result
    a client sent), then stores request, result and provenance in one transaction.
    Errors in `request` name the field as `request.<field>`. Returns the link and the
    delete token, which is shown only here."""
    parsed = parse_request(body.kind, body.request)
    computed = await compute(engine, body.kind, parsed)
    run, token = await run_in_threadpool(
        crud.create_run,
        session,
        kind=body.kind,
        title=body.title,
        request=parsed.model_dump(mode="json"),
        unlisted=body.unlisted,
        **computed,
    )
    return {
        "id": run.id,
        "url": link(base, run.id),
        "created_at": crud.as_utc(run.created_at),
        "result": run.result,
        "provenance": run.provenance,
        "delete_token": token,
    }


@router.get("", response_model=RunsPublic, summary="Recent runs")
def list_runs(
    session: SessionDep,
    base: BaseUrlDep,
    limit: Annotated[int, Query(ge=1, le=100, description="Page size (1-100).")] = 20,
    offset: Annotated[int, Query(ge=0, description="Runs to skip.")] = 0,
    kind: Annotated[str | None, Query(description=f"Only this kind: {choices(KINDS)}.")] = None,
):
    """Listed runs, newest first, a page at a time (unlisted runs are left out)."""
    if kind is not None and kind not in KINDS:
        raise InvalidRequest(
            f"kind: unknown kind {kind!r}; valid kinds: {choices(KINDS)}", field="kind"
        )
    runs, count = crud.list_runs(session, limit=limit, offset=offset, kind=kind)
    return {"data": [run_summary(r, base) for r in runs], "count": count}


@router.get("/{run_id}", response_model=RunPublic, summary="A saved run")
def get_run(run_id: str, session: SessionDep, base: BaseUrlDep):
    """The stored request, result and provenance. Unknown or malformed ids are 404."""
    return run_public(_get(session, run_id), base)


@router.get("/{run_id}/download", summary="A saved run as a JSON file")
def download_run(run_id: str, session: SessionDep, base: BaseUrlDep):
    """The same JSON as GET /api/runs/{id}, as an attachment `personascope-run-<id>.json`."""
    body = RunPublic.model_validate(run_public(_get(session, run_id), base))
    return json_attachment(body, f"personascope-run-{run_id}.json")


def json_attachment(body: BaseModel, filename: str) -> JSONResponse:
    """A response model as a downloadable JSON file."""
    return JSONResponse(
        body.model_dump(mode="json"),
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.post("/{run_id}/rerun", response_model=RerunResult, summary="Recompute a saved run")
async def rerun(run_id: str, engine: EngineDep, session: SessionDep):
    """Computes the stored request again (nothing is stored) and compares: `identical` when
    the result is byte for byte the stored one, which temperature 0 guarantees while the
    weights are unchanged. Otherwise `message` says why it cannot be reproduced
    (weights changed, an input changed, or the environment changed)."""
    run = await run_in_threadpool(_get, session, run_id)
    return await recompute(engine, run)


@router.delete("/{run_id}", status_code=204, summary="Delete a saved run")
def delete_run(
    run_id: str,
    session: SessionDep,
    x_delete_token: Annotated[
        str | None, Header(description="The delete token returned when the run was saved.")
    ] = None,
):
    """Deletes the run if `X-Delete-Token` is its token (401 without one, 403 when wrong:
    nothing is deleted). A run shown by a comparison cannot be deleted (409) until the
    comparison is."""
    crud.delete_run(session, run_id=run_id, token=x_delete_token)
    return Response(status_code=204)
