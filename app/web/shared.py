"""The read-only pages of shared links: `/r/{id}` (a saved run) and `/c/{id}` (a
comparison). Plain HTML for now: the request, the result and the provenance, escaped, in
`<pre>` blocks. Every piece of stored text goes through `html.escape`."""

import html
import json
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from app.api.comparisons import comparison_public
from app.api.deps import BaseUrlDep, SessionDep
from app.api.runs import run_public
from app.db import crud

router = APIRouter(tags=["shared pages"], include_in_schema=False)

# Nothing on these pages loads from elsewhere, and links to them are the only key to
# unlisted runs: no scripts, no referrer.
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem}"
    "pre{background:#f5f5f5;padding:1rem;overflow:auto;max-height:40rem}"
    ".description{white-space:pre-wrap}"
)


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _json(value: Any) -> str:
    return _e(json.dumps(value, indent=2, ensure_ascii=False))


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    doc = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="robots" content="noindex">'
        f"<title>{_e(title)} · PersonaScope</title><style>{STYLE}</style></head>"
        f"<body>{body}</body></html>"
    )
    return HTMLResponse(doc, status_code=status, headers=HEADERS)


def _not_found(what: str) -> HTMLResponse:
    return _page(
        "Not found",
        f"<h1>Not found</h1><p>There is no {_e(what)} at this link. It may have been "
        "deleted by its owner, or the link is incomplete.</p>",
        404,
    )


def _run_section(run: dict[str, Any], heading: str = "h2") -> str:
    sub = "h3" if heading == "h2" else "h4"
    models = ", ".join(run["models"]) or "none"
    saes = ", ".join(run["saes"]) or "none"
    return (
        f'<section id="run-{_e(run["id"])}"><{heading}>{_e(run["title"])}</{heading}>'
        f"<p>{_e(run['kind'])} · saved {_e(run['created_at'].isoformat())} · "
        f"models: {_e(models)} · SAEs: {_e(saes)} · "
        f'<a href="/r/{_e(run["id"])}">link</a> · '
        f'<a href="/api/runs/{_e(run["id"])}">JSON</a> · '
        f'<a href="/api/runs/{_e(run["id"])}/download">download</a></p>'
        f"<{sub}>Request</{sub}><pre>{_json(run['request'])}</pre>"
        f"<{sub}>Result</{sub}><pre>{_json(run['result'])}</pre>"
        f"<{sub}>Provenance</{sub}><pre>{_json(run['provenance'])}</pre>"
        "</section>"
    )


@router.get("/r/{run_id}", response_class=HTMLResponse)
def shared_run(run_id: str, session: SessionDep, base: BaseUrlDep):
    """A saved run, read-only."""
    found = crud.get_run(session, run_id=run_id)
    if found is None:
        return _not_found("saved run")
    run = run_public(found, base)
    return _page(run["title"], _run_section(run, "h1"))


@router.get("/c/{comparison_id}", response_class=HTMLResponse)
def shared_comparison(comparison_id: str, session: SessionDep, base: BaseUrlDep):
    """A comparison, read-only: its runs in order."""
    found = crud.get_comparison(session, comparison_id=comparison_id, with_runs=True)
    if found is None:
        return _not_found("comparison")
    comparison = comparison_public(found, base)
    cid = _e(comparison["id"])
    head = (
        f"<h1>{_e(comparison['title'])}</h1>"
        f"<p>Comparison of {len(comparison['runs'])} runs · saved "
        f"{_e(comparison['created_at'].isoformat())} · "
        f'<a href="/api/comparisons/{cid}">JSON</a> · '
        f'<a href="/api/comparisons/{cid}/download">download</a></p>'
        f'<p class="description">{_e(comparison["description"])}</p>'
    )
    return _page(comparison["title"], head + "".join(_run_section(r) for r in comparison["runs"]))
