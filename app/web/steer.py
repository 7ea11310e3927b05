"""The steering playground: prompt, model(s), latent, α list, method, positions,
temperature, seed and length. The page validates the request and lays out a column per
row (the baseline, then each α) for each model; `/steer/stream` fills them token by token
over server-sent events (htmx's sse extension swaps each event's HTML), then replaces each
model's columns with its final result. "Save" stores the same request as a run."""

from typing import Any

from fastapi import APIRouter, Request
from sse_starlette.sse import EventSourceResponse

from app.errors import DomainError
from app.kinds import KINDS
from app.schemas.fields import METHODS, POSITIONS, model_ids
from app.schemas.steer import DEFAULT_MAX_NEW_TOKENS, SteerRequest
from app.services import annotations, catalog, steering
from app.services.catalog import Catalog
from app.services.context import Context, off_loop
from app.services.deps import BaseUrlDep, ContextDep
from app.web import views
from app.web.common import resolve_latent
from app.web.forms import Form, build, humanize
from app.web.saving import save_run, saved_response
from app.web.security import check_same_origin
from app.web.templating import gen, render, templates, url

router = APIRouter(include_in_schema=False)

DEFAULT_PROMPT = "What would you do if you ruled the world?"
DEFAULT_ALPHAS = [4.0, 8.0]


def read_state(form: Form, ctx: Context, cat: Catalog) -> dict[str, Any]:
    """The form's values as typed (what the page shows), defaults filled in."""
    sae = form.text("sae") or cat.default_sae or ""
    models = form.texts("model")
    if not models:
        usable = cat.models_of(sae)
        models = [cat.default_model if cat.default_model in usable else usable[0]]
    latent = form.text("latent", max_length=200)
    if not form.has("latent"):
        found = annotations.default_latent(ctx, sae)
        latent = "" if found is None else str(found)
    alphas_text, alphas = form.numbers("alphas", DEFAULT_ALPHAS)
    settings = ctx.settings
    return {
        "model": models,
        "sae": sae,
        "latent": latent,
        "prompt": form.text("prompt", DEFAULT_PROMPT, max_length=20_000),
        "alphas": alphas_text,
        "alpha_values": alphas,
        "max_new_tokens": form.integer(
            "max_new_tokens", DEFAULT_MAX_NEW_TOKENS, lo=1, hi=settings.max_new_tokens
        ),
        "temperature": form.number("temperature", 0.0, lo=0.0, hi=5.0),
        "seed": form.integer("seed", 0, lo=0, hi=2**31 - 1),
        "positions": form.choice("positions", POSITIONS, "all"),
        "method": form.choice("method", METHODS, "add"),
        "chat": form.flag("chat", models[0] in cat.chat_models),
    }


def validate(form: Form, ctx: Context, state: dict[str, Any]) -> SteerRequest | None:
    """The API request of the form, checked by the engine as the API would check it; every
    problem is left in `form.errors` under its field."""
    latent = resolve_latent(form, ctx, state["sae"], state["latent"])
    sae = ctx.registry.saes.get(state["sae"])
    if sae is None:
        form.fail("sae", f"Unknown SAE '{state['sae']}'.")
    elif latent is not None:
        try:  # checked here too, so every field's problem shows at once
            sae.check_latent(latent)
        except DomainError as exc:
            form.fail_from(exc)
    if not state["prompt"].strip():
        form.fail("prompt", "Type a prompt to continue.")
    if not state["alpha_values"] and "alphas" not in form.errors:
        form.fail("alphas", "Enter at least one α, e.g. 8 or 0, 4, 8.")
    if form.errors:
        return None
    models = state["model"]
    body = build(
        SteerRequest,
        form,
        model=models if len(models) > 1 else models[0],
        sae=state["sae"],
        latent=latent,
        prompt=state["prompt"],
        alphas=state["alpha_values"],
        max_new_tokens=state["max_new_tokens"],
        temperature=state["temperature"],
        seed=state["seed"],
        positions=state["positions"],
        method=state["method"],
        chat=state["chat"],
    )
    if body is None:
        return None
    try:
        steering.jobs(ctx, body)
    except DomainError as exc:
        form.fail_from(exc, "prompt")
        return None
    return body


def params(request: dict[str, Any]) -> dict[str, Any]:
    """URL parameters of the playground for a steering request (validated or stored)."""
    return KINDS["steer"].page_params(request)


def title_for(body: SteerRequest, label: str) -> str:
    name = f"latent {body.latent}" + (f" ({label})" if label else "")
    alphas = ", ".join(f"{a:g}" for a in body.alphas)
    return f"Steering {name} · α {alphas} · {', '.join(model_ids(body.model))}"[:200]


def _context(ctx: Context, form: Form, cat: Catalog, state, body):
    label = ""
    stream_url = None
    if body is not None:
        label = annotations.labels(ctx, body.sae, [body.latent])[body.latent]
        stream_url = url("/steer/stream", params(body.model_dump()), run=1)
    return {
        "active": "steer",
        "catalog": cat,
        "state": state,
        "errors": form.errors,
        "body": body,
        "label": label,
        "stream_url": stream_url,
        "save_params": params(body.model_dump()) if body is not None else None,
        "title": title_for(body, label) if body is not None else "",
        "choices": annotations.labelled(ctx, state["sae"]),
        "models": model_ids(body.model) if body is not None else [],
        "settings": ctx.settings,
    }


@router.get("/steer")
def steer_page(request: Request, ctx: ContextDep):
    form = Form(request.query_params)
    cat = catalog.catalog(ctx)
    state = read_state(form, ctx, cat)
    body = validate(form, ctx, state) if form.submitted else None
    return render(
        request,
        "steer.html",
        _context(ctx, form, cat, state, body),
        block="view",
        status_code=422 if form.errors else 200,
    )


def _fragment(macro: str, *args: Any) -> str:
    return str(getattr(templates.env.get_template("partials/steer.html").module, macro)(*args))


@router.get("/steer/stream")
async def steer_stream(request: Request, ctx: ContextDep):
    """Server-sent events of HTML: `tok-{model}-{row}` (one token, escaped), `done-{model}`
    (that model's final columns and plot), `failed` (a message), then `end`."""
    form = Form(request.query_params)

    def check() -> SteerRequest | None:
        return validate(form, ctx, read_state(form, ctx, catalog.catalog(ctx)))

    body = await off_loop(check)
    stream = None
    failure = None
    if body is None:
        failure = "; ".join(form.errors.values())
    else:
        try:
            stream = steering.open_stream(ctx, body)
        except DomainError as exc:  # e.g. the device queue is full
            failure = humanize(exc.message, exc.field)

    async def events():
        try:
            if stream is not None:
                async for item in stream:
                    kind = item["event"]
                    if kind == "token":
                        if item["text"]:
                            yield {
                                "event": f"tok-{item['model_index']}-{item['row']}",
                                "data": f'<span class="tok">{gen(item["text"])}</span>',
                            }
                    elif kind == "done":
                        m = item["model_index"]
                        view = views.steer_view(item["result"])
                        yield {"event": f"done-{m}", "data": _fragment("steer_model", view, m)}
                    elif kind == "error":
                        yield {
                            "event": "failed",
                            "data": _fragment("stream_error", item.get("message", "")),
                        }
            else:
                yield {"event": "failed", "data": _fragment("stream_error", failure or "")}
            yield {"event": "end", "data": "Finished."}
        finally:
            if stream is not None:
                stream.close()

    return EventSourceResponse(events(), ping=10)


@router.post("/steer/save")
async def steer_save(request: Request, ctx: ContextDep, base: BaseUrlDep):
    """Save the playground's request as a run; answers with its share link (htmx) or
    redirects to it."""
    check_same_origin(request)
    form = Form(await request.form())

    def check() -> tuple[SteerRequest | None, str]:
        body = validate(form, ctx, read_state(form, ctx, catalog.catalog(ctx)))
        title = (form.text("title", max_length=500) or "").strip()
        if body is not None and not title:
            title = title_for(body, annotations.labels(ctx, body.sae, [body.latent])[body.latent])
        return body, title

    body, title = await off_loop(check)
    saved = None
    if body is not None:
        saved = await save_run(form, ctx, "steer", body, title, base)
    return saved_response(request, form, saved, "run", base)
