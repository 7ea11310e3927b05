"""Latent pages: the list (search, sort, pages, pinned, search by text) and one latent's
dashboard with its label, note, pin and a "test your text" box."""

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse
from pydantic import ValidationError

from app.errors import Conflict, DomainError, Forbidden, NotFound, Unauthorized
from app.schemas.annotations import AnnotationUpdate
from app.schemas.fields import LABEL_LENGTH
from app.schemas.latents import LATENT_SORTS, LatentsPage, SearchRequest
from app.services import annotations, catalog, inspection, latents
from app.services.context import Context, off_loop
from app.services.deps import ContextDep
from app.web import forms, plots, views
from app.web.errors import error_page
from app.web.forms import humanize
from app.web.security import check_same_origin
from app.web.templating import is_htmx, render, url
from app.web.templating import latent_url as latent_url_for

router = APIRouter(include_in_schema=False)

PER_PAGE = 50
SEARCH_HITS = 30


# ------------------------------------------------------------------------------- the list
@router.get("/latents")
async def latent_list(request: Request, ctx: ContextDep):
    cat = catalog.catalog(ctx)
    sae_ids = [s["id"] for s in cat.saes]
    params = request.query_params
    errors = {}
    if params.get("sae") and params["sae"] not in sae_ids:
        errors["sae"] = f"Choose one of {', '.join(sae_ids)}."
    form = forms.read(LatentsPage, params, defaults={"sae": cat.default_sae or ""}, errors=errors)
    state = form.values
    page = form.body
    listing, search, index_error = None, None, None
    if page is not None and page.sae:
        try:
            if page.text.strip():
                body = SearchRequest(
                    sae=page.sae, model=page.model, text=page.text, top_n=SEARCH_HITS
                )
                search = await latents.search(ctx, body)
            else:
                listing = await off_loop(latents.listing, ctx, page.sae, page.query(PER_PAGE))
        except NotFound as exc:
            if exc.field in ("sae", None) and "index" in exc.message:
                index_error = exc.message
            else:
                form.fail(exc.field or "form", humanize(exc.message, exc.field))
        except ValidationError as exc:
            form.fail_from(exc)
        except DomainError as exc:
            form.fail_from(exc, "text")
    pins = []
    if page is not None and page.sae in sae_ids and (index_error or listing is None):
        pins = (await off_loop(annotations.pins, ctx, page.sae))["data"]
    pages = 1
    if listing:
        pages = max(1, -(-listing["count"] // PER_PAGE))
    return render(
        request,
        "latents.html",
        {
            "active": "latents",
            "catalog": cat,
            "state": state,
            "errors": form.errors,
            "listing": listing,
            "search": search,
            "index_error": index_error,
            "building": latents.build_progress(ctx) if index_error else None,
            "pins": pins,
            "pages": pages,
            "sorts": LATENT_SORTS,
        },
        block="view",
        status_code=422 if form.errors else 200,
    )


# ------------------------------------------------------------------------- one latent
def _not_found(request: Request, message: str, links: list[tuple[str, str]] | None = None):
    return render(
        request,
        "error.html",
        {"title": "Not found", "message": message, "links": links or [], "active": "latents"},
        status_code=404,
    )


async def _test_text(ctx: Context, sae_id: str, latent: int, model_id: str, text: str, top):
    """The latent on a user's text: tokens, values, and the shading scale."""
    found = await inspection.latent_on_text(ctx, sae_id, latent, model_id, text)
    values, special = found["values"], found["special"]
    shown = [0.0 if s else v for v, s in zip(values, special, strict=True)]
    peak = max(shown, default=0.0)
    return {
        "model": model_id,
        "tokens": found["tokens"],
        "values": values,
        "special": special,
        "max": peak,
        "scale": top if top and top > 0 else peak,
        "active": sum(v > 0 for v in shown),
        "fig": plots.activation_lines([(model_id, found["tokens"], values)], latent),
    }


@router.get("/latents/{sae_id}/{latent}")
async def latent_page(
    request: Request,
    sae_id: str,
    latent: int,
    ctx: ContextDep,
    model: Annotated[str | None, Query()] = None,
    dataset: Annotated[str | None, Query()] = None,
    text: Annotated[str | None, Query(max_length=20_000)] = None,
    test_model: Annotated[str | None, Query()] = None,
):
    cat = catalog.catalog(ctx)
    sae = cat.sae(sae_id)
    if sae is None:
        return _not_found(
            request,
            f"There is no SAE '{sae_id}' on this server.",
            [(url("/latents", sae=s["id"]), s["id"]) for s in cat.saes],
        )
    if not 0 <= latent < sae["d_sae"]:
        return _not_found(
            request,
            f"There is no latent {latent}: SAE '{sae_id}' has latents 0 to {sae['d_sae'] - 1}.",
            [
                (url(f"/latents/{sae_id}/0"), "latent 0"),
                (url("/latents", sae=sae_id), "all latents"),
            ],
        )
    only_test = is_htmx(request) and request.headers.get("hx-target") == "test-result"
    errors: dict[str, str] = {}
    dashboard, index_error = None, None
    if not only_test:
        try:
            dashboard = await off_loop(latents.dashboard, ctx, sae_id, latent, model, dataset)
        except NotFound as exc:
            index_error = exc.message
    annotation = await off_loop(annotations.get, ctx, sae_id, latent)
    index_model = dashboard["model"] if dashboard else (model or sae["models"][0])
    test = None
    test_model = test_model or index_model
    if text is not None and text.strip():
        top = dashboard["max_activation"] if dashboard else None
        if only_test:
            top = await off_loop(latents.max_activation, ctx, sae_id, latent, model, dataset)
        try:
            test = await _test_text(ctx, sae_id, latent, test_model, text, top)
        except DomainError as exc:
            field = "test_model" if exc.field in ("model", "sae") else "text"
            errors[field] = humanize(exc.message, exc.field)
    elif text is not None:
        errors["text"] = "Type some text to run through the model."
    base_model = index_model
    finetunes = [m for m in cat.finetuned_of(base_model) if m in sae["models"]]
    prompt = ""
    if dashboard and dashboard["top_snippets"]:  # its top context, special tokens left out
        top = dashboard["top_snippets"][0]
        special = catalog.special_ids(ctx, index_model)
        ids = top.get("token_ids") or [None] * len(top["tokens"])
        prompt = "".join(t for t, i in zip(top["tokens"], ids, strict=True) if i not in special)
    figs = {}
    if dashboard:
        for snip in dashboard["top_snippets"]:
            values = snip["values"]
            snip["peak"] = max(range(len(values)), key=values.__getitem__) if values else None
        figs["histogram"] = plots.histogram(dashboard["histogram"])
        figs["logits"] = plots.logit_effects(dashboard["logits"])
    return render(
        request,
        "latent.html",
        {
            "active": "latents",
            "catalog": cat,
            "sae": sae,
            "latent": latent,
            "d": dashboard,
            "index_error": index_error,
            "building": latents.build_progress(ctx) if index_error else None,
            "annotation": annotation,
            "figs": figs,
            "test": test,
            "text": text or "",
            "test_model": test_model,
            "index_model": index_model,
            "model_param": model,
            "dataset_param": dataset,
            "finetunes": finetunes,
            "compare_prompt": prompt,
            "errors": errors,
            "partial": only_test,
            "label_length": LABEL_LENGTH,
            "edit_required": annotations.edit_required(ctx),
            "evaluate_alpha": views.suggested_alpha(ctx),
            "neuronpedia_url": latents.neuronpedia_url(sae.get("neuronpedia_id"), latent),
        },
        block="test_result" if only_test else None,
        status_code=422 if errors else 200,
    )


def _annotation_response(request: Request, sae_id: str, latent: int, context: dict, status=200):
    if is_htmx(request):
        return render(request, "latent.html", context, block="annotation", status_code=status)
    if context["errors"]:  # a plain form post: say what was wrong instead of going back
        return error_page(request, status, " ".join(context["errors"].values()))
    return RedirectResponse(url(f"/latents/{sae_id}/{latent}"), status_code=303)


@router.post("/latents/{sae_id}/{latent}/annotation")
def save_annotation(
    request: Request,
    sae_id: str,
    latent: int,
    ctx: ContextDep,
    label: Annotated[str, Form()] = "",
    note: Annotated[str, Form()] = "",
    edit_token: Annotated[str | None, Form()] = None,
):
    """Label and note from the latent page's form (htmx swaps the block; a plain form
    post is redirected back to the page)."""
    check_same_origin(request)
    annotations.get(ctx, sae_id, latent)  # 404 for an unknown SAE or latent
    errors: dict[str, str] = {}
    saved = False
    try:
        body = AnnotationUpdate(label=label, note=note)
    except ValidationError as exc:
        for err in exc.errors():
            name = str(err["loc"][0])
            errors.setdefault(name, forms.friendly(dict(err), AnnotationUpdate.model_fields[name]))
        body = None
    if body is not None:
        try:
            annotations.put(ctx, sae_id, latent, body, edit_token)
            saved = True
        except (Unauthorized, Forbidden) as exc:
            errors["edit_token"] = humanize(exc.message)
    current = annotations.get(ctx, sae_id, latent)
    if errors:  # show what was typed, not what is stored
        current = {**current, "label": label, "note": note}
    context = {
        "sae": {"id": sae_id},
        "latent": latent,
        "annotation": current,
        "errors": errors,
        "saved": saved,
        "label_length": LABEL_LENGTH,
        "edit_required": annotations.edit_required(ctx),
    }
    status = 403 if "edit_token" in errors else 422 if errors else 200
    return _annotation_response(request, sae_id, latent, context, status)


@router.post("/latents/{sae_id}/{latent}/pin")
def toggle_pin(
    request: Request,
    sae_id: str,
    latent: int,
    ctx: ContextDep,
    pinned: Annotated[str, Form()] = "1",
    edit_token: Annotated[str | None, Form()] = None,
):
    check_same_origin(request)
    annotations.get(ctx, sae_id, latent)  # 404 for an unknown SAE or latent
    errors: dict[str, str] = {}
    try:
        if pinned == "1":
            annotations.pin(ctx, sae_id, latent, edit_token)
        else:
            annotations.unpin(ctx, sae_id, latent, edit_token)
    except (Unauthorized, Forbidden) as exc:
        errors["edit_token"] = humanize(exc.message)
    except (Conflict, NotFound) as exc:
        errors["pin"] = humanize(exc.message, None)
    context = {
        "sae": {"id": sae_id},
        "latent": latent,
        "annotation": annotations.get(ctx, sae_id, latent),
        "errors": errors,
        "label_length": LABEL_LENGTH,
        "edit_required": annotations.edit_required(ctx),
    }
    status = 403 if "edit_token" in errors else 200
    return _annotation_response(request, sae_id, latent, context, status)


@router.get("/latents/go")
def go_to_latent(
    request: Request,
    ctx: ContextDep,
    sae: Annotated[str, Query()] = "",
    latent: Annotated[str, Query()] = "",
):
    """The list page's "go to latent" box: a number of the chosen SAE, or a feature id as
    Neuronpedia writes it (`gpt2-small/8-res-jb/1234`) or `<sae id>/<latent>`."""
    typed = latent.strip().lstrip("#")
    target = url("/latents", sae=sae)
    if typed.isdigit():
        target = latent_url_for(sae, int(typed))
    elif "/" in typed:
        try:
            found = latents.resolve(ctx, typed, "latent")
        except DomainError as exc:
            return error_page(request, exc.status_code, humanize(exc.message))
        target = latent_url_for(found["sae"], found["latent"])
    return RedirectResponse(target, status_code=303)
