"""The read-only pages of shared links: `/r/{id}` (a saved run) and `/c/{id}` (a comparison
of runs). Each renders the stored result with the same partial as its live view, plus
"copy link", "re-run" (recompute and say whether the result is identical) and "open in
playground" (the live view, filled in from the stored request). The stored request,
result and provenance are also there as JSON.

What a kind's result looks like, and which page is its live view, come from the kind's
registry entry (`app.kinds`) and the view it names (`app.web.views.VIEWS`)."""

import json
import logging
from typing import Any

from fastapi import APIRouter, Request
from markupsafe import Markup, escape

from app import kinds
from app.errors import DomainError
from app.services import runs
from app.services.context import Context, off_loop
from app.services.deps import BaseUrlDep, ClientDep, ContextDep
from app.web import views
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


def playground_link(kind: str, request: dict[str, Any]) -> str | None:
    """The live view of a stored request, filled in (not run, except the cheap inspector)."""
    entry = kinds.KINDS.get(kind)
    if entry is None:
        return None
    try:
        return url(entry.page, entry.page_params(request))
    except (KeyError, TypeError, ValueError):
        return None


def result_view(ctx: Context, kind: str, request: dict, result: dict) -> Any:
    """What the kind's partial renders, from a stored (or recomputed) result; None for a
    stored result this version cannot draw (its JSON shows)."""
    entry = kinds.KINDS.get(kind)
    if entry is None or entry.view not in views.VIEWS:
        return None
    try:
        return views.VIEWS[entry.view](ctx, request, result)
    except (KeyError, TypeError, ValueError, IndexError):
        log.warning("stored %s result cannot be drawn", kind, exc_info=True)
        return None


def _run_context(ctx: Context, run: dict[str, Any]) -> dict[str, Any]:
    return {
        "run": run,
        "view": result_view(ctx, run["kind"], run["request"], run["result"]),
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
def shared_run(request: Request, run_id: str, ctx: ContextDep, base: BaseUrlDep):
    """A saved run, read-only."""
    found = runs.find_run(ctx, run_id)
    if found is None:
        return _not_found(request, "saved run")
    run = runs.run_public(found, base)
    return render(request, "run.html", _run_context(ctx, run), headers=ROBOTS)


@router.get("/c/{comparison_id}")
def shared_comparison(request: Request, comparison_id: str, ctx: ContextDep, base: BaseUrlDep):
    """A comparison, read-only: its runs in order."""
    try:
        comparison = runs.get_comparison(ctx, comparison_id, base)
    except DomainError:
        return _not_found(request, "comparison")
    items = [_run_context(ctx, r) for r in comparison["runs"]]
    kinds_shown = {r["kind"] for r in comparison["runs"]}
    sweep = None
    if kinds_shown == {"evaluate"} and len(items) > 1 and all(i["view"] for i in items):
        sweep = views.evaluation_view([r["result"] for r in comparison["runs"]])
    return render(
        request,
        "comparison.html",
        {"comparison": comparison, "items": items, "sweep": sweep},
        headers=ROBOTS,
    )


def _with_views(ctx: Context, reports: list[dict]) -> list[dict]:
    """Each rerun report with its run's kind, request and drawable view."""
    for report in reports:
        found = runs.find_run(ctx, report["id"])
        if found is not None:
            report["kind"] = found.kind
            report["request"] = found.request
            report["view"] = result_view(ctx, found.kind, found.request, report["result"])
    return reports


@router.post("/r/{run_id}/rerun")
async def rerun_run(request: Request, run_id: str, ctx: ContextDep, client: ClientDep):
    """Recompute a saved run; the answer says whether the result is identical and, if not,
    shows why and the new result."""
    check_same_origin(request)
    found = await off_loop(runs.find_run, ctx, run_id)
    if found is None:
        return _not_found(request, "saved run")
    context: dict[str, Any] = {"reports": []}
    try:
        ctx.rerun_limit().take(client)
        report = await runs.recompute(ctx, found)
    except DomainError as exc:
        context["error"] = humanize(exc.message, None)
    else:
        context["reports"] = await off_loop(_with_views, ctx, [report])
    return render(request, "rerun.html", context, block="result")


@router.post("/c/{comparison_id}/rerun")
async def rerun_comparison_page(
    request: Request, comparison_id: str, ctx: ContextDep, client: ClientDep
):
    check_same_origin(request)
    context: dict[str, Any] = {"reports": []}
    try:
        out = await runs.rerun_comparison(ctx, comparison_id, client)
    except DomainError as exc:
        context["error"] = humanize(exc.message, None)
    else:
        context["reports"] = await off_loop(_with_views, ctx, out["runs"])
    return render(request, "rerun.html", context, block="result")
