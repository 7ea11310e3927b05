"""Direction pages: the list (newest first) with a form that makes a mean-difference
direction (a persona vector), and one direction's page: how it was made, its norm, the SAE
latents it aligns with, and the histogram of its projections over a latent index's
contexts (loaded after the page, it runs the model)."""

import math
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse
from starlette.datastructures import MultiDict

from app.errors import DomainError, NotFound
from app.schemas.directions import MeanDiff
from app.schemas.fields import split_lines
from app.services import catalog, directions
from app.services.context import Context, off_loop
from app.services.deps import ContextDep
from app.web import forms, plots
from app.web.forms import FormInput
from app.web.security import check_same_origin
from app.web.templating import render

router = APIRouter(include_in_schema=False)

PER_PAGE = 20
POSITIONS = {"all": "every token (BOS left out)", "last": "the last token of each text"}
# Engine fields as the form names them.
FIELDS = {"hook_name": "hook", "request": "form", "id": "form"}


# ------------------------------------------------------------------------------ the list
def _page_number(raw: str | None) -> tuple[int, str | None]:
    text = (raw or "1").strip()
    if not text.isdigit() or not 1 <= int(text) <= 10_000:
        return 1, "Enter a page number from 1."
    return int(text), None


def _list_context(ctx: Context, page: int) -> dict:
    listing = directions.listing(ctx, limit=PER_PAGE, offset=(page - 1) * PER_PAGE)
    cat = catalog.catalog(ctx)
    return {
        "listing": listing,
        "pages": max(1, -(-listing["count"] // PER_PAGE)),
        "catalog": cat,
    }


def _render_list(request: Request, context: dict, form: dict, errors: dict, status: int = 200):
    return render(
        request,
        "directions.html",
        {"active": "directions", "form": form, "errors": errors, **context},
        status_code=status,
    )


def _blank_form(ctx: Context) -> dict:
    cat = catalog.catalog(ctx)
    base, _ = cat.pair()
    return {
        "name": "",
        "model": base,
        "sae": cat.default_sae or "",
        "hook": "",
        "positive": "",
        "negative": "",
        "positions": "last",
        "chat": False,
    }


@router.get("/directions")
async def direction_list(
    request: Request, ctx: ContextDep, page: Annotated[str | None, Query()] = None
):
    number, error = _page_number(page)
    context = await off_loop(_list_context, ctx, number)
    context["page"] = number
    errors = {"page": error} if error else {}
    return _render_list(request, context, _blank_form(ctx), errors, 422 if error else 200)


def read_mean_diff(posted) -> tuple[FormInput[MeanDiff], dict]:
    """The create form as a `MeanDiff` (the schema of POST /api/directions): texts one per
    line, an SAE or a hook (the SAE unless a hook is typed)."""
    params = MultiDict(posted.multi_items())
    typed = {k: str(params.get(k) or "") for k in ("name", "model", "sae", "hook", "positions")}
    typed |= {k: str(params.get(k) or "") for k in ("positive", "negative")}
    typed["chat"] = str(params.get("chat", "")).strip().lower() in forms.TRUE
    errors = {}
    hook, sae = typed["hook"].strip(), typed["sae"].strip()
    if hook:
        params.setlist("sae", [])
    elif not sae:
        errors["sae"] = "Choose an SAE (its hook is used), or type a hook point."
    for side in ("positive", "negative"):
        params.setlist(side, split_lines(typed[side]))
    params["method"] = "mean_diff"
    params["run"] = "1"
    form = forms.read(MeanDiff, params, errors=errors, checkboxes=["chat"])
    return form, typed


@router.post("/directions")
async def create_direction(request: Request, ctx: ContextDep):
    """The list page's form: make the direction, then go to its page (303); invalid input
    comes back as the form with a message on each wrong field (422)."""
    check_same_origin(request)
    form, typed = read_mean_diff(await request.form())
    if form.body is not None:
        try:
            made = await directions.create(ctx, form.body)
        except DomainError as exc:
            if exc.field:
                exc.field = FIELDS.get(exc.field, exc.field)
            form.fail_from(exc, "form")
        else:
            return RedirectResponse(f"/directions/{made['id']}", status_code=303)
    context = await off_loop(_list_context, ctx, 1)
    context["page"] = 1
    return _render_list(request, context, typed, form.errors, 422)


# ------------------------------------------------------------------------ one direction
def histogram_figure(hist: dict) -> dict:
    """Projections per token as bars over their bins (x: h . d / |d|)."""
    edges, counts = hist["edges"], hist["counts"]
    centers = [(a + b) / 2 for a, b in zip(edges, edges[1:], strict=False)]
    widths = [b - a for a, b in zip(edges, edges[1:], strict=False)]
    hover = [
        f"{a:.3g} to {b:.3g}: {c} tokens" for a, b, c in zip(edges, edges[1:], counts, strict=False)
    ]
    trace = {
        "type": "bar",
        "x": centers,
        "y": counts,
        "width": widths,
        "marker": {"color": plots.COLORS[1], "line": {"width": 0}},
        "customdata": hover,
        "hovertemplate": "%{customdata}<extra></extra>",
        "name": "tokens",
    }
    marks = [
        {
            "type": "line",
            "x0": value,
            "x1": value,
            "yref": "paper",
            "y0": 0,
            "y1": 1,
            "line": {"color": color, "width": 1, "dash": "dot"},
        }
        for value, color in ((0.0, plots.BASELINE_COLOR), (hist["mean"], plots.COLORS[0]))
        if math.isfinite(value)
    ]
    return {
        "data": [trace],
        "layout": plots.layout(
            240,
            bargap=0,
            shapes=marks,
            xaxis={"title": {"text": "projection h · d / |d| per token"}, "zeroline": False},
            yaxis={"title": {"text": "tokens"}, "rangemode": "tozero"},
            showlegend=False,
        ),
    }


def _not_found(request: Request, message: str):
    return render(
        request,
        "error.html",
        {
            "title": "Not found",
            "message": message,
            "links": [("/directions", "all directions")],
            "active": "directions",
        },
        status_code=404,
    )


@router.get("/directions/{direction_id}")
async def direction_page(
    request: Request,
    direction_id: str,
    ctx: ContextDep,
    histogram: Annotated[str | None, Query()] = None,
):
    """`?histogram=1` computes the projections (htmx asks for that piece once the page is
    shown; without JavaScript it is a link to the whole page with it)."""
    try:
        d = await off_loop(directions.page, ctx, direction_id)
    except NotFound:
        return _not_found(request, f"There is no direction '{direction_id}'.")
    projections, figure, error = None, None, None
    if (histogram or "").strip().lower() in forms.TRUE:
        try:
            projections = await directions.projections(ctx, direction_id)
        except DomainError as exc:
            error = forms.humanize(exc.message)
        else:
            if projections.get("histogram"):
                figure = histogram_figure(projections["histogram"])
    return render(
        request,
        "direction.html",
        {
            "active": "directions",
            "d": d,
            "positions": POSITIONS,
            "projections": projections,
            "projection_error": error,
            "fig": figure,
        },
        block="histogram" if histogram is not None else None,
    )
