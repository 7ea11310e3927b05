"""Direction pages: the list (newest first) with a form that makes a mean-difference
direction (a persona vector), and one direction's page: how it was made, its norm, the SAE
latents it aligns with, and the histogram of its projections over a latent index's
contexts (loaded after the page, it runs the model). Both pages delete a direction with its
delete token, as DELETE /api/directions/{id} does.

The delete token is shown once. The JSON API answers it to the request that made the
direction; the form's post answers a redirect to the new page, so the token travels in a
cookie that only that page's address receives, that the page shows once and then clears."""

import math
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import escape
from starlette.datastructures import MultiDict

from app.errors import DomainError, Forbidden, NotFound, Unauthorized
from app.schemas.directions import MeanDiff
from app.schemas.fields import split_lines
from app.services import catalog, directions
from app.services.context import Context, off_loop
from app.services.deps import BaseUrlDep, ContextDep
from app.web import forms, plots
from app.web.forms import FormInput
from app.web.security import check_same_origin
from app.web.templating import is_htmx, render, templates, url

router = APIRouter(include_in_schema=False)

# The new direction's delete token, from the form's post to the page it redirects to.
TOKEN_COOKIE = "direction_delete_token"
TOKEN_COOKIE_SECONDS = 600

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
    request: Request,
    ctx: ContextDep,
    page: Annotated[str | None, Query()] = None,
    deleted: Annotated[str | None, Query(max_length=64)] = None,
):
    """`deleted`: the id of a direction just deleted (the page says so)."""
    number, error = _page_number(page)
    context = await off_loop(_list_context, ctx, number)
    context["page"] = number
    context["deleted"] = deleted
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
            path = f"/directions/{made['id']}"
            response = RedirectResponse(path, status_code=303)
            response.set_cookie(
                TOKEN_COOKIE,
                made["delete_token"],
                max_age=TOKEN_COOKIE_SECONDS,
                path=path,
                secure=request.url.scheme == "https",
                httponly=True,
                samesite="strict",
            )
            return response
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
    base: BaseUrlDep,
    histogram: Annotated[str | None, Query()] = None,
):
    """`?histogram=1` computes the projections (htmx asks for that piece once the page is
    shown; without JavaScript it is a link to the whole page with it)."""
    try:
        d = await off_loop(directions.page, ctx, direction_id)
    except NotFound:
        return _not_found(
            request,
            f"There is no direction '{direction_id}'. It may have been deleted; saved runs "
            "that used it keep their results.",
        )
    # Shown once: the token of a direction this browser just made with the form.
    token = request.cookies.get(TOKEN_COOKIE) if histogram is None else None
    projections, figure, error = None, None, None
    if (histogram or "").strip().lower() in forms.TRUE:
        try:
            projections = await directions.projections(ctx, direction_id)
        except DomainError as exc:
            error = forms.humanize(exc.message)
        else:
            if projections.get("histogram"):
                figure = histogram_figure(projections["histogram"])
    response = render(
        request,
        "direction.html",
        {
            "active": "directions",
            "d": d,
            "positions": POSITIONS,
            "projections": projections,
            "projection_error": error,
            "fig": figure,
            "delete_token": token,
            "base": base,
        },
        block="histogram" if histogram is not None else None,
    )
    if token is not None:
        response.headers["cache-control"] = "no-store"
        response.delete_cookie(
            TOKEN_COOKIE,
            path=f"/directions/{direction_id}",
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="strict",
        )
    return response


# ------------------------------------------------------------------------------- delete
@router.post("/directions/{direction_id}/delete")
async def delete_direction(request: Request, direction_id: str, ctx: ContextDep):
    """The pages' delete form (`token`: the direction's delete token): delete it as DELETE
    /api/directions/{id} does, then go to the list (303, or HX-Redirect for htmx). A missing
    or wrong token comes back as the form with the message on its field (422), nothing
    deleted; an unknown direction is 404. Saved runs that used the direction are kept."""
    check_same_origin(request)
    posted = await request.form()
    token = str(posted.get("token") or "").strip() or None
    try:
        await off_loop(directions.delete, ctx, direction_id, token)
    except NotFound:
        message = f"There is no direction '{direction_id}'; it may have been deleted already."
        if is_htmx(request):  # in place of the form
            return HTMLResponse(
                f'<p class="alert error" role="alert">{escape(message)}</p>', status_code=404
            )
        return _not_found(request, message)
    except (Unauthorized, Forbidden) as exc:
        message = (
            "Enter the direction's delete token (it was shown once, when it was made)."
            if isinstance(exc, Unauthorized)
            else "This is not the direction's delete token; nothing was deleted."
        )
        return await off_loop(_delete_form, request, ctx, direction_id, {"token": message}, 422)
    target = url("/directions", deleted=direction_id)
    if is_htmx(request):
        return Response(status_code=200, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


def _delete_form(request: Request, ctx: Context, direction_id: str, errors: dict, status: int):
    """The delete form again with its message: alone for htmx (it replaces itself), else
    the direction's page around it."""
    d = directions.page(ctx, direction_id)
    if is_htmx(request):
        form = templates.env.get_template("partials/direction_delete.html").module
        return HTMLResponse(str(form.delete_form(d, errors)), status_code=status)
    return render(
        request,
        "direction.html",
        {
            "active": "directions",
            "d": d,
            "positions": POSITIONS,
            "projections": None,
            "projection_error": None,
            "fig": None,
            "errors": errors,
        },
        status_code=status,
    )
