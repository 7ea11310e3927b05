"""Saved runs and comparisons: the server computes a request of any kind, stores request,
result and provenance, and hands out a link that shows exactly that. Runs are immutable;
`rerun` computes again and says whether the result is identical.

Database work runs in a thread (`off_loop`), model work on the device worker: neither
blocks the event loop.
"""

from typing import Any

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from app import kinds
from app.db import runs as repo
from app.db.models import Comparison, Run
from app.errors import Conflict, DomainError, InvalidRequest, NotFound
from app.schemas.runs import ComparisonCreate, RunCreate
from app.services import provenance, results
from app.services.context import Context, alone, off_loop


# ------------------------------------------------------------------------------- shapes
def run_link(base_url: str, run_id: str) -> str:
    return f"{base_url}/r/{run_id}"


def comparison_link(base_url: str, comparison_id: str) -> str:
    return f"{base_url}/c/{comparison_id}"


def run_summary(run: Run, base_url: str) -> dict[str, Any]:
    prov = run.provenance or {}
    return {
        "id": run.id,
        "url": run_link(base_url, run.id),
        "kind": run.kind,
        "title": run.title,
        "created_at": repo.as_utc(run.created_at),
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


def comparison_summary(comparison: Comparison, base_url: str) -> dict[str, Any]:
    return {
        "id": comparison.id,
        "url": comparison_link(base_url, comparison.id),
        "title": comparison.title,
        "description": comparison.description,
        "created_at": repo.as_utc(comparison.created_at),
        "run_ids": [item.run_id for item in comparison.items],
    }


def comparison_public(comparison: Comparison, base_url: str) -> dict[str, Any]:
    return {
        **comparison_summary(comparison, base_url),
        "runs": [run_public(item.run, base_url) for item in comparison.items],
    }


# ------------------------------------------------------------------------------ compute
def _nest(exc: DomainError, prefix: str = "request") -> DomainError:
    """Name the field of a nested request's error as the client sent it: `request.latent`."""
    if exc.field and not exc.field.startswith(f"{prefix}."):
        if exc.message.startswith(f"{exc.field}:"):
            exc.message = f"{prefix}.{exc.message}"
        exc.field = f"{prefix}.{exc.field}"
    return exc


def parse_request(kind: str, request: dict[str, Any]) -> BaseModel:
    """Validate a nested request with its kind's own schema; errors name `request.*`."""
    try:
        return kinds.get(kind).request.model_validate(request)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", "request", *e["loc"])} for e in exc.errors()]
        raise RequestValidationError(errors) from None


async def compute(ctx: Context, kind: str, body: BaseModel, reuse: bool = True) -> dict[str, Any]:
    """The result, provenance and result hash of `body` by its kind's own computation, or
    the one this server computed for exactly this request and these weights a moment ago
    (`reuse`). Nothing is stored in the database here."""
    try:
        # (Off the loop: fingerprints read stored directions from the database.)
        found = await off_loop(results.lookup, ctx, kind, body) if reuse else None
        if found is None:
            recording = results.Recording(ctx, kind, body)
            raw = await kinds.get(kind).run(ctx, body)  # keeps its result (results.recorded)
            found = await off_loop(results.lookup, ctx, kind, body)
            found = found or await off_loop(recording.done, raw)
    except DomainError as exc:
        raise _nest(exc) from None
    return found.stored()


# ---------------------------------------------------------------------------------- runs
async def create_run(ctx: Context, body: RunCreate, base_url: str) -> dict[str, Any]:
    """Compute `body.request` exactly as POST /api/<kind> would (the server never stores a
    result a client sent), then store request, result and provenance in one transaction.
    Returns the public run with its delete token (shown only here)."""
    kinds.get(body.kind)
    parsed = parse_request(body.kind, body.request)
    computed = await compute(ctx, body.kind, parsed)

    def store() -> tuple[Run, str]:
        with ctx.database.session() as session:
            return repo.create_run(
                session,
                kind=body.kind,
                title=body.title,
                request=parsed.model_dump(mode="json"),
                unlisted=body.unlisted,
                **computed,
            )

    run, token = await off_loop(store)
    return {
        "id": run.id,
        "url": run_link(base_url, run.id),
        "created_at": repo.as_utc(run.created_at),
        "result": run.result,
        "provenance": run.provenance,
        "delete_token": token,
    }


def find_run(ctx: Context, run_id: str) -> Run | None:
    with ctx.database.session() as session:
        return repo.get_run(session, run_id=run_id)


def get_run(ctx: Context, run_id: str) -> Run:
    run = find_run(ctx, run_id)
    if run is None:
        raise NotFound(f"no run with id {run_id!r}", field="id")
    return run


def list_runs(
    ctx: Context, base_url: str, *, limit: int, offset: int = 0, kind: str | None = None
) -> dict[str, Any]:
    """Listed runs, newest first, a page at a time (unlisted runs are left out)."""
    if kind is not None:
        kinds.get(kind)
    with ctx.database.session() as session:
        rows, count = repo.list_runs(session, limit=limit, offset=offset, kind=kind)
        return {"data": [run_summary(r, base_url) for r in rows], "count": count}


def delete_run(ctx: Context, run_id: str, token: str | None) -> None:
    with ctx.database.session() as session:
        repo.delete_run(session, run_id=run_id, token=token)


async def recompute(ctx: Context, run: Run) -> dict[str, Any]:
    """Compute a stored run again and judge the result against the stored one."""
    try:
        body = parse_request(run.kind, run.request)
    except (RequestValidationError, InvalidRequest) as exc:
        message = exc.errors()[0]["msg"] if isinstance(exc, RequestValidationError) else exc.message
        raise Conflict(
            f"run {run.id!r}: the stored request no longer validates on this server: {message}"
        ) from None
    try:
        with alone():  # a rerun recomputes, unbatched
            computed = await compute(ctx, run.kind, body, reuse=False)
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


async def rerun(ctx: Context, run_id: str, client: str) -> dict[str, Any]:
    """Recompute a stored run for `client` (rate-limited: anyone with a link may ask)."""
    run = await off_loop(get_run, ctx, run_id)
    ctx.rerun_limit().take(client)
    return await recompute(ctx, run)


# --------------------------------------------------------------------------- comparisons
def create_comparison(ctx: Context, body: ComparisonCreate, base_url: str) -> dict[str, Any]:
    """Store an ordered collection of saved runs under one link (every run must exist)."""
    with ctx.database.session() as session:
        comparison, token = repo.create_comparison(
            session,
            title=body.title,
            description=body.description,
            run_ids=body.runs,
            unlisted=body.unlisted,
        )
        return {
            "id": comparison.id,
            "url": comparison_link(base_url, comparison.id),
            "created_at": repo.as_utc(comparison.created_at),
            "run_ids": body.runs,
            "delete_token": token,
        }


def get_comparison(ctx: Context, comparison_id: str, base_url: str) -> dict[str, Any]:
    with ctx.database.session() as session:
        found = repo.get_comparison(session, comparison_id=comparison_id, with_runs=True)
        if found is None:
            raise NotFound(f"no comparison with id {comparison_id!r}", field="id")
        return comparison_public(found, base_url)


def list_comparisons(ctx: Context, base_url: str, *, limit: int, offset: int = 0) -> dict:
    with ctx.database.session() as session:
        rows, count = repo.list_comparisons(session, limit=limit, offset=offset)
        return {"data": [comparison_summary(c, base_url) for c in rows], "count": count}


def delete_comparison(ctx: Context, comparison_id: str, token: str | None) -> None:
    with ctx.database.session() as session:
        repo.delete_comparison(session, comparison_id=comparison_id, token=token)


async def rerun_comparison(ctx: Context, comparison_id: str, client: str) -> dict[str, Any]:
    """Rerun each run of the comparison, in order (one rerun of `client`'s allowance)."""

    def load() -> list[Run]:
        with ctx.database.session() as session:
            found = repo.get_comparison(session, comparison_id=comparison_id, with_runs=True)
            if found is None:
                raise NotFound(f"no comparison with id {comparison_id!r}", field="id")
            return [item.run for item in found.items]

    todo = await off_loop(load)
    ctx.rerun_limit().take(client)
    reports = [await recompute(ctx, run) for run in todo]
    return {
        "id": comparison_id,
        "identical": all(r["identical"] for r in reports),
        "runs": reports,
    }
