"""Model diff: base vs fine-tuned on a question set (or your prompts); latents ranked by the
increase of their mean activation, as a bar chart that opens each latent's page."""

import json

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse

from app.errors import DomainError
from app.kinds import KINDS
from app.schemas.compare import CompareRequest
from app.schemas.directions import ModelDiff
from app.services import annotations, catalog, diffing, directions
from app.services.catalog import Catalog
from app.services.context import Context, off_loop
from app.services.deps import BaseUrlDep, ContextDep
from app.web import forms, views
from app.web.forms import FormInput, humanize
from app.web.saving import listing_chosen, save_run, saved_response
from app.web.security import check_same_origin
from app.web.templating import render, url

router = APIRouter(include_in_schema=False)


def read_form(
    ctx: Context, params, check: bool = True
) -> tuple[FormInput[CompareRequest], Catalog]:
    """The diff page's form as a `CompareRequest`: by default the default model and its
    first fine-tune on the first question set (your prompts, when given, replace it)."""
    cat = catalog.catalog(ctx)
    base, tuned = cat.pair()
    sets = [q["id"] for q in cat.question_sets]
    errors = {}
    if check:
        for name in ("base", "finetuned"):
            value = params.get(name) or {"base": base, "finetuned": tuned}[name]
            if value not in ctx.registry.models:
                errors[name] = f"Unknown model '{value}'."
        if (params.get("base") or base) == (params.get("finetuned") or tuned) and not errors:
            errors["finetuned"] = "Choose a model other than the base."
    form = forms.read(
        CompareRequest,
        params,
        defaults={
            "base": base,
            "finetuned": tuned,
            "sae": cat.default_sae or "",
            "question_set": sets[0] if sets else None,
        },
        errors=errors,
    )
    if form.body is not None and form.body.prompts:
        form.body = form.body.model_copy(update={"question_set": None})
    if not check:
        form.errors = {k: v for k, v in form.errors.items() if k in params}
        form.body = None
    return form, cat


def diff_view(ctx: Context, result: dict) -> dict:
    names = annotations.labels(ctx, result["sae"], [r["latent"] for r in result["latents"]])
    return views.compare_view(result, names, views.suggested_alpha(ctx))


@router.get("/diff")
async def diff_page(request: Request, ctx: ContextDep):
    form, cat = read_form(ctx, request.query_params, check=forms.submitted(request.query_params))
    body, view = form.body, None
    if body is not None:
        try:
            result = await diffing.compare(ctx, body)
        except DomainError as exc:
            field = {"model": "base", None: "form"}.get(exc.field, exc.field or "form")
            form.fail(
                "prompts" if field.startswith("prompts") else field,
                humanize(exc.message, exc.field),
            )
            body = None
        else:
            view = await off_loop(diff_view, ctx, result)
    return render(
        request,
        "diff.html",
        {
            "active": "diff",
            "catalog": cat,
            "state": form.values,
            "errors": form.errors,
            "view": view,
            "save_params": KINDS["compare"].page_params(body.model_dump())
            if body is not None
            else None,
        },
        block="view",
        status_code=422 if form.errors else 200,
    )


@router.post("/diff/save")
async def diff_save(request: Request, ctx: ContextDep, base: BaseUrlDep):
    check_same_origin(request)
    posted = await request.form()
    form, _cat = read_form(ctx, posted)
    saved = None
    public = listing_chosen(posted)
    if form.body is not None:
        body = form.body
        title = str(posted.get("title") or "").strip() or (
            f"Diff {body.base} → {body.finetuned} on {body.sae}"
        )
        saved = await save_run(form, ctx, "compare", body, title, base, listed=public)
    return saved_response(request, form, saved, "run", base, listed=public)


@router.post("/diff/ablate")
async def diff_ablate(request: Request, ctx: ContextDep):
    """Make the fine-tuned - base mean-difference direction at the SAE's hook on the diff's
    prompts, then open the evaluation of the fine-tuned model with it ablated, beside the
    unedited model (same seeds)."""
    check_same_origin(request)
    posted = await request.form()
    form, cat = read_form(ctx, posted)
    body = form.body
    if body is not None:
        try:
            prompts = body.prompts or [
                q["question"] for q in await off_loop(catalog.questions, ctx, body.question_set)
            ]
            made = await directions.create(
                ctx,
                ModelDiff(
                    method="model_diff",
                    name=f"Δ {body.finetuned} − {body.base} at {body.sae}",
                    base=body.base,
                    finetuned=body.finetuned,
                    sae=body.sae,
                    prompts=prompts[:256],
                    chat=body.chat,
                ),
            )
        except DomainError as exc:
            form.fail("form", humanize(exc.message, exc.field))
        else:
            edit = [{"direction": made["id"], "method": "ablate"}]
            target = url(
                "/evaluate",
                {
                    "model": body.finetuned,
                    "question_set": body.question_set,
                    "questions": "\n".join(body.prompts) if body.prompts else None,
                    "interventions": json.dumps(edit, separators=(",", ":")),
                    "baseline": 1,
                    "run": 1,
                },
            )
            return RedirectResponse(target, status_code=303)
    return render(
        request,
        "diff.html",
        {"active": "diff", "catalog": cat, "state": form.values, "errors": form.errors},
        status_code=422,
    )
