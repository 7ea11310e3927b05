"""The read-only pages of shared links: `/r/{id}` (a saved run) and `/c/{id}` (a comparison
of runs). Each renders the stored result with the same partial as its live view, plus
"copy link", "re-run" (recompute and say whether the result is identical) and "open in
playground" (the live view, filled in from the stored request). The stored request,
result and provenance are also there as JSON."""

import json
import logging
from typing import Any

from fastapi import APIRouter, Request
from markupsafe import Markup, escape

from app.api import runs
from app.api.comparisons import comparison_public, rerun_comparison
from app.api.deps import BaseUrlDep, EngineDep, SessionDep
from app.db import crud
from app.engine.engine import Engine
from app.errors import DomainError
from app.web import diff, evaluate, inspector, steer, views
from app.web.common import labels
from app.web.forms import humanize
from app.web.security import check_same_origin
from app.web.templating import render, url

log = logging.getLogger(__name__)

router = APIRouter(tags=["shared pages"], include_in_schema=False)

# Links to these pages are the only key to unlisted runs: no search engine indexing.
ROBOTS = {"X-Robots-Tag": "noindex"}


def pretty_json(value: Any) -> Markup:
    """Indented JSON, escaped for a <pre> block."""
    return escape(json.dumps(value, indent=2, ensure_ascii=False))


def _specials(engine: Engine, results: list[dict]) -> list[list[bool]]:
    """Special tokens per model; a model this server no longer hosts has none marked."""
    try:
        return inspector.specials(engine, results)
    except DomainError:
        return [[False] * len(r["token_ids"]) for r in results]


def playground_link(kind: str, request: dict[str, Any]) -> str | None:
    """The live view of a stored request, filled in (not run, except the cheap inspector)."""
    try:
        if kind == "steer":
            return url("/steer", steer.params(request))
        if kind == "compare":
            return url("/diff", diff.params(request))
        if kind == "evaluate":
            return url("/evaluate", evaluate.params(request))
        if kind == "activations":
            latents = request.get("latents") or []
            return url(
                "/inspect",
                model=request["model"],
                sae=request["sae"],
                prompt=request["prompt"],
                latent=latents[0] if latents else None,
                top_k=request.get("top_k"),
                chat=bool(request.get("chat", False)),
                run=1,
            )
    except (KeyError, TypeError, ValueError):
        return None
    return None


def result_view(engine: Engine, session, kind: str, request: dict, result: dict) -> Any:
    """What the kind's partial renders, from a stored (or recomputed) result."""
    if kind == "steer":
        return [views.steer_view(r) for r in views.results_of(result)]
    if kind == "compare":
        return diff.diff_view(engine, session, result)
    if kind == "evaluate":
        return views.evaluation_view([result])
    if kind == "activations":
        results = views.results_of(result)
        wanted = [int(k) for k in results[0]["latents"]] if results else []
        latent = wanted[0] if wanted else None
        names = labels(
            session,
            engine,
            request["sae"],
            {*wanted, *(x["latent"] for r in results for top in r["top"] for x in top)},
        )
        link = {
            "model": request["model"],
            "sae": request["sae"],
            "prompt": request["prompt"],
            "top_k": request.get("top_k"),
            "chat": bool(request.get("chat", False)),
            "run": 1,
        }
        return views.activation_view(results, latent, names, _specials(engine, results), link)
    return None


def _safe_view(engine: Engine, session, kind: str, request: dict, result: dict) -> Any:
    """The view, or None for a stored result this version cannot draw (its JSON shows)."""
    try:
        return result_view(engine, session, kind, request, result)
    except (KeyError, TypeError, ValueError, IndexError):
        log.warning("stored %s result cannot be drawn", kind, exc_info=True)
        return None


def _run_context(engine: Engine, session, run: dict[str, Any]) -> dict[str, Any]:
    return {
        "run": run,
        "view": _safe_view(engine, session, run["kind"], run["request"], run["result"]),
        "playground": playground_link(run["kind"], run["request"]),
        "request_json": pretty_json(run["request"]),
        "result_json": pretty_json(run["result"]),
        "provenance_json": pretty_json(run["provenance"]),
    }


def _not_found(request: Request, what: str):
    return render(
        request,
        "error.html",
        {
            "title": "Not found",
            "message": f"There is no {what} at this link. It may have been deleted by its "
            "owner, or the link is incomplete.",
            "links": [],
        },
        status_code=404,
        headers=ROBOTS,
    )


@router.get("/r/{run_id}")
def shared_run(
    request: Request, run_id: str, engine: EngineDep, session: SessionDep, base: BaseUrlDep
):
    """A saved run, read-only."""
    found = crud.get_run(session, run_id=run_id)
    if found is None:
        return _not_found(request, "saved run")
    run = runs.run_public(found, base)
    return render(request, "run.html", _run_context(engine, session, run), headers=ROBOTS)


@router.get("/c/{comparison_id}")
def shared_comparison(
    request: Request, comparison_id: str, engine: EngineDep, session: SessionDep, base: BaseUrlDep
):
    """A comparison, read-only: its runs in order."""
    found = crud.get_comparison(session, comparison_id=comparison_id, with_runs=True)
    if found is None:
        return _not_found(request, "comparison")
    comparison = comparison_public(found, base)
    items = [_run_context(engine, session, r) for r in comparison["runs"]]
    kinds = {r["kind"] for r in comparison["runs"]}
    sweep = None
    if kinds == {"evaluate"} and len(items) > 1 and all(i["view"] for i in items):
        sweep = views.evaluation_view([r["result"] for r in comparison["runs"]])
    return render(
        request,
        "comparison.html",
        {"comparison": comparison, "items": items, "sweep": sweep},
        headers=ROBOTS,
    )


@router.post("/r/{run_id}/rerun")
async def rerun_run(request: Request, run_id: str, engine: EngineDep, session: SessionDep):
    """Recompute a saved run; the answer says whether the result is identical and, if not,
    shows why and the new result."""
    check_same_origin(request)
    found = crud.get_run(session, run_id=run_id)
    if found is None:
        return _not_found(request, "saved run")
    context: dict[str, Any] = {"reports": []}
    try:
        report = await runs.recompute(engine, found)
    except DomainError as exc:
        context["error"] = humanize(exc.message, None)
    else:
        report["view"] = _safe_view(engine, session, found.kind, found.request, report["result"])
        report["kind"] = found.kind
        report["request"] = found.request
        context["reports"] = [report]
    return render(request, "rerun.html", context, block="result")


@router.post("/c/{comparison_id}/rerun")
async def rerun_comparison_page(
    request: Request, comparison_id: str, engine: EngineDep, session: SessionDep
):
    check_same_origin(request)
    context: dict[str, Any] = {"reports": []}
    try:
        out = await rerun_comparison(comparison_id, engine, session)
    except DomainError as exc:
        context["error"] = humanize(exc.message, None)
    else:
        for report in out["runs"]:
            found = crud.get_run(session, run_id=report["id"])
            if found is not None:
                report["kind"] = found.kind
                report["request"] = found.request
                report["view"] = _safe_view(
                    engine, session, found.kind, found.request, report["result"]
                )
        context["reports"] = out["runs"]
    return render(request, "rerun.html", context, block="result")
