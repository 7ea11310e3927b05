"""The misalignment evaluation: sample answers to a question set, score them with a judge;
optionally steered, and optionally as a sweep over α (one evaluation per α, plus the
unsteered model). Progress streams over server-sent events; a sweep is saved as a
comparison of runs (`/c/{id}`), a single evaluation as a run (`/r/{id}`)."""

from typing import Any

from fastapi import APIRouter, Request
from sse_starlette.sse import EventSourceResponse

from app.errors import DomainError
from app.schemas.evaluate import (
    DEFAULT_MAX_NEW_TOKENS,
    DEFAULT_SAMPLES,
    EvaluateRequest,
    EvaluateSteer,
)
from app.schemas.fields import METHODS, POSITIONS, TITLE_LENGTH
from app.schemas.runs import ComparisonCreate, RunCreate
from app.services import annotations, catalog, evaluation, runs
from app.services.catalog import Catalog
from app.services.context import Context, off_loop
from app.services.deps import BaseUrlDep, ContextDep
from app.services.evaluation import Prepared
from app.web import views
from app.web.common import resolve_latent
from app.web.forms import Form, humanize
from app.web.saving import saved_response
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
    "chat": "chat",
}


STATE_KEYS = [
    "model",
    "question_set",
    "questions",
    "judge",
    "samples_per_question",
    "max_new_tokens",
    "temperature",
    "seed",
    "chat",
    "sae",
    "latent",
    "alphas",
    "method",
    "positions",
    "baseline",
]


def read_state(form: Form, ctx: Context, cat: Catalog) -> dict[str, Any]:
    settings = ctx.settings
    sets = [q["id"] for q in cat.question_sets]
    alphas_text, alphas = form.numbers("alphas", [])
    return {
        "model": form.text("model") or cat.default_model,
        "question_set": form.text("question_set") or (sets[0] if sets else ""),
        "questions": form.text("questions", max_length=200_000),
        "judge": form.text("judge") or (cat.judges[0]["id"] if cat.judges else ""),
        "samples_per_question": form.integer(
            "samples_per_question", DEFAULT_SAMPLES, lo=1, hi=settings.max_samples
        ),
        "max_new_tokens": form.integer(
            "max_new_tokens", DEFAULT_MAX_NEW_TOKENS, lo=1, hi=settings.max_new_tokens
        ),
        "temperature": form.number("temperature", 1.0, lo=0.01, hi=5.0),
        "seed": form.integer("seed", 0, lo=0, hi=2**31 - 1),
        "chat": form.flag("chat", True),
        "sae": form.text("sae") or cat.default_sae or "",
        "latent": form.text("latent", max_length=200),
        "alphas": alphas_text,
        "alpha_values": alphas,
        "method": form.choice("method", METHODS, "add"),
        "positions": form.choice("positions", POSITIONS, "all"),
        "baseline": form.flag("baseline", True),
    }


def validate(form: Form, ctx: Context, state: dict[str, Any]) -> list[Prepared]:
    """One prepared evaluation per condition: the unsteered model and/or each α, each
    validated exactly as POST /api/evaluate validates it."""
    questions = [q.strip() for q in state["questions"].splitlines() if q.strip()]
    latent = resolve_latent(form, ctx, state["sae"], state["latent"], required=False)
    alphas: list[float | None] = []
    if latent is not None:
        if not state["alpha_values"] and "alphas" not in form.errors:
            form.fail("alphas", "Enter the α to steer with, or a list for a sweep: 0, 4, 8.")
        if len(state["alpha_values"]) > ctx.settings.max_alphas:
            form.fail("alphas", f"At most {ctx.settings.max_alphas} values.")
        alphas = [*([None] if state["baseline"] else []), *state["alpha_values"]]
    elif state["alpha_values"]:
        form.fail("latent", "Choose the latent to steer with, or clear the α values.")
    if form.errors:
        return []
    out = []
    for alpha in alphas or [None]:
        try:
            body = EvaluateRequest(
                model=state["model"],
                question_set=None if questions else (state["question_set"] or None),
                questions=questions or None,
                judge=state["judge"] or None,
                samples_per_question=state["samples_per_question"],
                max_new_tokens=state["max_new_tokens"],
                temperature=state["temperature"],
                seed=state["seed"],
                chat=state["chat"],
                steer=None
                if alpha is None or latent is None
                else EvaluateSteer(
                    sae=state["sae"],
                    latent=latent,
                    alpha=alpha,
                    method=state["method"],
                    positions=state["positions"],
                ),
            )
            prepared = evaluation.prepare(ctx, body)
        except DomainError as exc:
            raw = (exc.field or "").removeprefix("request.")
            name = FIELDS.get(raw)
            if name is None:
                name = "questions" if questions else "question_set"
            if raw == "" and exc.message.startswith("alphas"):
                name = "alphas"
            form.fail(name, humanize(exc.message, exc.field))
            return []
        except ValueError as exc:  # pydantic
            form.fail_from(exc)
            return []
        out.append(prepared)
    return out


def _state_params(state: dict[str, Any]) -> dict[str, Any]:
    return {k: state[k] for k in STATE_KEYS}


@router.get("/evaluate")
def evaluate_page(request: Request, ctx: ContextDep):
    form = Form(request.query_params)
    cat = catalog.catalog(ctx)
    state = read_state(form, ctx, cat)
    conditions = validate(form, ctx, state) if form.submitted else []
    stream_url = url("/evaluate/stream", _state_params(state), run=1) if conditions else None
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
            "save_params": _state_params(state) if conditions else None,
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
    form = Form(request.query_params)

    def check() -> list[Prepared]:
        return validate(form, ctx, read_state(form, ctx, catalog.catalog(ctx)))

    conditions = await off_loop(check)
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
    form = Form(await request.form())

    def check() -> tuple[dict[str, Any], list[Prepared]]:
        state = read_state(form, ctx, catalog.catalog(ctx))
        return state, validate(form, ctx, state)

    state, conditions = await off_loop(check)
    title = (form.text("title", max_length=500) or "").strip() or f"Evaluation of {state['model']}"
    saved = None
    kind = "run"
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
                        unlisted=False,
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
                unlisted=False,
            )
            saved = await off_loop(runs.create_comparison, ctx, comparison, base)
    except DomainError as exc:
        form.fail("title", humanize(exc.message, exc.field))
        saved = None
    return saved_response(request, form, saved, kind, base)
