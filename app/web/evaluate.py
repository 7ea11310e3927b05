"""The misalignment evaluation: sample answers to a question set, score them with a judge;
optionally steered, and optionally as a sweep over α (one evaluation per α, plus the
unsteered model). Progress streams over server-sent events; a sweep is saved as a
comparison of runs (`/c/{id}`), a single evaluation as a run (`/r/{id}`)."""

from typing import Any

from fastapi import APIRouter, Request
from sse_starlette.sse import EventSourceResponse

from app.errors import DomainError
from app.schemas.evaluate import EvaluateQuery
from app.schemas.fields import TITLE_LENGTH
from app.schemas.runs import ComparisonCreate, RunCreate
from app.services import annotations, catalog, evaluation, runs
from app.services.catalog import Catalog
from app.services.context import Context, off_loop
from app.services.deps import BaseUrlDep, ContextDep
from app.services.evaluation import Prepared
from app.web import forms, views
from app.web.common import with_latent
from app.web.forms import FormInput, humanize
from app.web.saving import listing_chosen, saved_response
from app.web.security import check_same_origin
from app.web.templating import render, templates, url

router = APIRouter(include_in_schema=False)

# Where an engine error about an evaluation request is shown on the form.
FIELDS = {
    "model": "model",
    "question_set": "question_set",
    "questions": "questions",
    "judge": "judge",
    "samples_per_question": "samples_per_question",
    "max_new_tokens": "max_new_tokens",
    "steer.latent": "latent",
    "latent": "latent",
    "sae": "sae",
    "alphas": "alphas",
    "positions": "positions",
    "steer.positions": "positions",
    "chat": "chat",
}


def read_form(ctx: Context, params, check: bool = True) -> tuple[FormInput[EvaluateQuery], Catalog]:
    """The evaluation page's form as an `EvaluateQuery` (one evaluation, or a sweep over α)."""
    cat = catalog.catalog(ctx)
    sae = params.get("sae") or cat.default_sae or ""
    params, typed, latent_error = with_latent(params, ctx, sae, required=False)
    errors = {}
    if latent_error:
        errors["latent"] = latent_error
    alphas_typed = bool((params.get("alphas") or "").strip())
    if check and params.get("latent") and not alphas_typed:
        errors["alphas"] = "Enter the α to steer with, or a list for a sweep: 0, 4, 8."
    if check and alphas_typed and not params.get("latent") and not latent_error:
        errors["latent"] = "Choose the latent to steer with, or clear the α values."
    sets = [q["id"] for q in cat.question_sets]
    form = forms.read(
        EvaluateQuery,
        params,
        defaults={
            "model": cat.default_model,
            "question_set": sets[0] if sets else None,
            "judge": cat.judges[0]["id"] if cat.judges else None,
            "sae": sae,
        },
        caps={
            "samples_per_question": ctx.settings.max_samples,
            "max_new_tokens": ctx.settings.max_new_tokens,
        },
        errors=errors,
    )
    form.values["latent"] = typed or ""
    alphas = form.body.alphas if form.body is not None else None
    if alphas and len(alphas) > ctx.settings.max_alphas:
        form.fail("alphas", f"At most {ctx.settings.max_alphas} values.")
    if not check:
        form.errors = {k: v for k, v in form.errors.items() if k in params}
        form.body = None
    return form, cat


def prepare(ctx: Context, form: FormInput[EvaluateQuery]) -> list[Prepared]:
    """One prepared evaluation per condition, each validated exactly as POST /api/evaluate
    validates it; the first problem is left on its field."""
    if form.body is None:
        return []
    out = []
    for body in form.body.conditions():
        try:
            out.append(evaluation.prepare(ctx, body))
        except DomainError as exc:
            raw = (exc.field or "").removeprefix("request.")
            name = "interventions" if raw.startswith("interventions") else FIELDS.get(raw)
            if name is None:
                name = "questions" if form.body.questions else "question_set"
            if raw == "" and exc.message.startswith("alphas"):
                name = "alphas"
            form.fail(name, humanize(exc.message, exc.field))
            return []
    return out


def _state_params(form: FormInput[EvaluateQuery]) -> dict[str, Any]:
    """The page's own query: what the stream and the save button send again."""
    return {k: v for k, v in form.values.items() if k in EvaluateQuery.model_fields}


@router.get("/evaluate")
def evaluate_page(request: Request, ctx: ContextDep):
    sent = forms.submitted(request.query_params)
    form, cat = read_form(ctx, request.query_params, check=sent)
    state = form.values
    conditions = prepare(ctx, form) if sent else []
    stream_url = url("/evaluate/stream", _state_params(form), run=1) if conditions else None
    latent_label = ""
    if conditions and conditions[-1].body.steer is not None:
        steer = conditions[-1].body.steer
        latent_label = annotations.labels(ctx, steer.sae, [steer.latent])[steer.latent]
    return render(
        request,
        "evaluate.html",
        {
            "active": "evaluate",
            "catalog": cat,
            "state": state,
            "errors": form.errors,
            "conditions": [p.body.condition() for p in conditions],
            "stream_url": stream_url,
            "save_params": _state_params(form) if conditions else None,
            "total": sum(p.total for p in conditions),
            "choices": annotations.labelled(ctx, state["sae"]),
            "latent_label": latent_label,
            "settings": ctx.settings,
        },
        block="view",
        status_code=422 if form.errors else 200,
    )


def _fragment(macro: str, *args: Any) -> str:
    module = templates.env.get_template("partials/evaluate.html").module
    return str(getattr(module, macro)(*args))


@router.get("/evaluate/stream")
async def evaluate_stream(request: Request, ctx: ContextDep):
    """Server-sent events of HTML: `progress` (a progress bar over every condition),
    `done` (the results), `failed` (a message), then `end`."""
    form, _cat = await off_loop(read_form, ctx, request.query_params)
    conditions = await off_loop(prepare, ctx, form)
    total = sum(p.total for p in conditions)

    async def events():
        if not conditions:
            message = "; ".join(form.errors.values()) or "Nothing to evaluate."
            yield {"event": "failed", "data": _fragment("stream_error", message)}
            yield {"event": "end", "data": "Stopped."}
            return
        results = []
        offset = 0
        for k, prepared in enumerate(conditions):
            name = prepared.body.condition()
            try:
                stream = evaluation.open_stream(ctx, prepared)
            except DomainError as exc:  # the device queue is full
                yield {"event": "failed", "data": _fragment("stream_error", exc.message)}
                break
            try:
                async for item in stream:
                    if item["event"] == "progress":
                        yield {
                            "event": "progress",
                            "data": _fragment(
                                "progress", offset + item["done"], total, name, k, len(conditions)
                            ),
                        }
                    elif item["event"] == "done":
                        results.append(item["result"])
                    elif item["event"] == "error":
                        yield {
                            "event": "failed",
                            "data": _fragment("stream_error", item.get("message", "")),
                        }
            finally:
                stream.close()
            if len(results) != k + 1:
                break
            offset += prepared.total
        if results:
            view = views.evaluation_view(results)
            yield {"event": "done", "data": _fragment("evaluation_results", view)}
        yield {
            "event": "end",
            "data": "Finished." if len(results) == len(conditions) else "Stopped.",
        }

    return EventSourceResponse(events(), ping=10)


@router.post("/evaluate/save")
async def evaluate_save(request: Request, ctx: ContextDep, base: BaseUrlDep):
    """One condition is saved as a run; a sweep as its runs plus a comparison of them."""
    check_same_origin(request)
    posted = await request.form()
    form, _cat = await off_loop(read_form, ctx, posted)
    conditions = await off_loop(prepare, ctx, form)
    state = form.values
    title = str(posted.get("title") or "").strip() or f"Evaluation of {state['model']}"
    saved = None
    kind = "run"
    public = listing_chosen(posted)
    try:
        created = []
        for prepared in conditions:
            name = prepared.body.condition()
            created.append(
                await runs.create_run(
                    ctx,
                    RunCreate(
                        kind="evaluate",
                        request=prepared.body.model_dump(),
                        title=(title if len(conditions) == 1 else f"{title} · {name}")[
                            :TITLE_LENGTH
                        ],
                        unlisted=not public,
                    ),
                    base,
                )
            )
        if len(created) == 1:
            saved = created[0]
        elif created:
            kind = "comparison"
            comparison = ComparisonCreate(
                title=title[:TITLE_LENGTH],
                description=f"Misalignment of {state['model']} steered along latent "
                f"{state['latent']} of {state['sae']} ({state['method']}), one run per α.",
                runs=[c["id"] for c in created],
                unlisted=not public,
            )
            saved = await off_loop(runs.create_comparison, ctx, comparison, base)
    except DomainError as exc:
        form.fail("title", humanize(exc.message, exc.field))
        saved = None
    return saved_response(request, form, saved, kind, base, listed=public)
