"""Model diff: base vs fine-tuned on a question set (or your prompts); latents ranked by the
increase of their mean activation, as a bar chart that opens each latent's page."""

from typing import Any

from fastapi import APIRouter, Request

from app.errors import DomainError
from app.kinds import KINDS
from app.schemas.compare import DEFAULT_TOP_N, CompareRequest
from app.services import annotations, catalog, diffing
from app.services.catalog import Catalog
from app.services.context import Context, off_loop
from app.services.deps import BaseUrlDep, ContextDep
from app.web import views
from app.web.forms import Form, build, humanize
from app.web.saving import save_run, saved_response
from app.web.security import check_same_origin
from app.web.templating import render

router = APIRouter(include_in_schema=False)


def read_state(form: Form, cat: Catalog) -> dict[str, Any]:
    base, tuned = cat.pair()
    sets = [q["id"] for q in cat.question_sets]
    return {
        "base": form.text("base") or base,
        "finetuned": form.text("finetuned") or tuned,
        "sae": form.text("sae") or cat.default_sae or "",
        "question_set": form.text("question_set") or (sets[0] if sets else ""),
        "prompts": form.text("prompts", max_length=200_000),
        "chat": form.flag("chat", True),
        "top_n": form.integer("top_n", DEFAULT_TOP_N, lo=1, hi=200),
    }


def validate(form: Form, ctx: Context, state: dict[str, Any]) -> CompareRequest | None:
    for name in ("base", "finetuned"):
        if state[name] not in ctx.registry.models:
            form.fail(name, f"Unknown model '{state[name]}'.")
    if state["base"] == state["finetuned"] and "base" not in form.errors:
        form.fail("finetuned", "Choose a model other than the base.")
    prompts = [line.strip() for line in state["prompts"].splitlines() if line.strip()]
    if form.errors:
        return None
    return build(
        CompareRequest,
        form,
        base=state["base"],
        finetuned=state["finetuned"],
        sae=state["sae"],
        prompts=prompts or None,
        question_set=None if prompts else (state["question_set"] or None),
        chat=state["chat"],
        top_n=state["top_n"],
    )


def diff_view(ctx: Context, result: dict) -> dict:
    names = annotations.labels(ctx, result["sae"], [r["latent"] for r in result["latents"]])
    return views.compare_view(result, names)


@router.get("/diff")
async def diff_page(request: Request, ctx: ContextDep):
    form = Form(request.query_params)
    cat = catalog.catalog(ctx)
    state = read_state(form, cat)
    body, view = None, None
    if form.submitted:
        body = validate(form, ctx, state)
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
            "state": state,
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
    form = Form(await request.form())
    state = read_state(form, catalog.catalog(ctx))
    body = validate(form, ctx, state)
    saved = None
    if body is not None:
        title = (form.text("title", max_length=500) or "").strip() or (
            f"Diff {body.base} → {body.finetuned} on {body.sae}"
        )
        saved = await save_run(form, ctx, "compare", body, title, base)
    return saved_response(request, form, saved, "run", base)
