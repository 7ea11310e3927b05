"""Model diff: base vs fine-tuned on a question set (or your prompts); latents ranked by the
increase of their mean activation, as a bar chart that opens each latent's page."""

from typing import Any

from fastapi import APIRouter, Request

from app.api import compute
from app.api.deps import BaseUrlDep, EngineDep, SessionDep
from app.api.schemas import CompareRequest
from app.engine.engine import Engine
from app.errors import DomainError
from app.web import views
from app.web.common import Catalog, catalog, labels
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
        "top_n": form.integer("top_n", 20, lo=1, hi=200),
    }


def validate(form: Form, engine: Engine, state: dict[str, Any]) -> CompareRequest | None:
    for name in ("base", "finetuned"):
        if state[name] not in engine.registry.models:
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


def diff_view(engine: Engine, session, result: dict) -> dict:
    names = labels(session, engine, result["sae"], [r["latent"] for r in result["latents"]])
    return views.compare_view(result, names)


def params(request: dict[str, Any]) -> dict[str, Any]:
    """URL parameters of the diff page for a compare request (validated or stored)."""
    return {
        "base": request["base"],
        "finetuned": request["finetuned"],
        "sae": request["sae"],
        "question_set": request.get("question_set"),
        "prompts": "\n".join(request.get("prompts") or []) or None,
        "chat": bool(request.get("chat", True)),
        "top_n": request.get("top_n", 20),
    }


@router.get("/diff")
async def diff_page(request: Request, engine: EngineDep, session: SessionDep):
    form = Form(request.query_params)
    cat = catalog(engine)
    state = read_state(form, cat)
    body, view = None, None
    if form.submitted:
        body = validate(form, engine, state)
        if body is not None:
            try:
                result = await compute.compare(engine, body)
            except DomainError as exc:
                field = {"model": "base", None: "form"}.get(exc.field, exc.field or "form")
                form.fail(
                    "prompts" if field.startswith("prompts") else field,
                    humanize(exc.message, exc.field),
                )
                body = None
            else:
                view = diff_view(engine, session, result)
    return render(
        request,
        "diff.html",
        {
            "active": "diff",
            "catalog": cat,
            "state": state,
            "errors": form.errors,
            "view": view,
            "save_params": params(body.model_dump()) if body is not None else None,
        },
        block="view",
        status_code=422 if form.errors else 200,
    )


@router.post("/diff/save")
async def diff_save(request: Request, engine: EngineDep, session: SessionDep, base: BaseUrlDep):
    check_same_origin(request)
    form = Form(await request.form())
    state = read_state(form, catalog(engine))
    body = validate(form, engine, state)
    saved = None
    if body is not None:
        title = (form.text("title", max_length=500) or "").strip() or (
            f"Diff {body.base} → {body.finetuned} on {body.sae}"
        )
        saved = await save_run(form, "compare", body, title, engine, session, base)
    return saved_response(request, form, saved, "run", base)
