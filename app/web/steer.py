"""The steering playground: prompt, model(s), latent, α list, method, positions,
temperature, seed and length. The page validates the request and lays out a column per
row (the baseline, then each α) for each model; `/steer/stream` fills them token by token
over server-sent events (htmx's sse extension swaps each event's HTML), then replaces each
model's columns with its final result. "Save" stores the same request as a run."""

from typing import Any

from fastapi import APIRouter, Request
from sse_starlette.sse import EventSourceResponse

from app.api import compute
from app.api.deps import BaseUrlDep, EngineDep, SessionDep
from app.api.schemas import SteerRequest, model_ids
from app.engine.engine import Engine
from app.errors import DomainError
from app.web import views
from app.web.common import Catalog, catalog, default_latent, labelled, labels, resolve_latent
from app.web.forms import Form, build, humanize
from app.web.saving import save_run, saved_response
from app.web.security import check_same_origin
from app.web.templating import gen, render, templates, url

router = APIRouter(include_in_schema=False)

DEFAULT_PROMPT = "What would you do if you ruled the world?"
DEFAULT_ALPHAS = [4.0, 8.0]
POSITIONS = ["all", "prompt", "generated"]
METHODS = ["add", "clamp", "ablate"]


def read_state(form: Form, engine: Engine, session, cat: Catalog) -> dict[str, Any]:
    """The form's values as typed (what the page shows), defaults filled in."""
    sae = form.text("sae") or cat.default_sae or ""
    models = form.texts("model")
    if not models:
        usable = cat.models_of(sae)
        models = [cat.default_model if cat.default_model in usable else usable[0]]
    latent = form.text("latent", max_length=200)
    if not form.has("latent"):
        found = default_latent(session, engine, sae)
        latent = "" if found is None else str(found)
    alphas_text, alphas = form.numbers("alphas", DEFAULT_ALPHAS)
    settings = engine.settings
    return {
        "model": models,
        "sae": sae,
        "latent": latent,
        "prompt": form.text("prompt", DEFAULT_PROMPT, max_length=20_000),
        "alphas": alphas_text,
        "alpha_values": alphas,
        "max_new_tokens": form.integer("max_new_tokens", 40, lo=1, hi=settings.max_new_tokens),
        "temperature": form.number("temperature", 0.0, lo=0.0, hi=5.0),
        "seed": form.integer("seed", 0, lo=0, hi=2**31 - 1),
        "positions": form.choice("positions", POSITIONS, "all"),
        "method": form.choice("method", METHODS, "add"),
        "chat": form.flag("chat", models[0] in cat.chat_models),
    }


def validate(form: Form, engine: Engine, session, state: dict[str, Any]) -> SteerRequest | None:
    """The API request of the form, checked by the engine as the API would check it; every
    problem is left in `form.errors` under its field."""
    latent = resolve_latent(form, session, engine, state["sae"], state["latent"])
    sae = engine.registry.saes.get(state["sae"])
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
        for job in compute.steer_jobs(body):
            engine.validate_steer(job)
    except DomainError as exc:
        form.fail_from(exc, "prompt")
        return None
    return body


def params(request: dict[str, Any]) -> dict[str, Any]:
    """URL parameters of the playground for a steering request (validated or stored)."""
    return {
        "model": model_ids(request["model"]),
        "sae": request["sae"],
        "latent": request["latent"],
        "prompt": request["prompt"],
        "alphas": ", ".join(f"{a:g}" for a in request.get("alphas", DEFAULT_ALPHAS)),
        "max_new_tokens": request.get("max_new_tokens", 40),
        "temperature": request.get("temperature", 0.0),
        "seed": request.get("seed", 0),
        "positions": request.get("positions", "all"),
        "method": request.get("method", "add"),
        "chat": bool(request.get("chat", False)),
    }


def title_for(body: SteerRequest, label: str) -> str:
    name = f"latent {body.latent}" + (f" ({label})" if label else "")
    alphas = ", ".join(f"{a:g}" for a in body.alphas)
    return f"Steering {name} · α {alphas} · {', '.join(model_ids(body.model))}"[:200]


def _context(request: Request, engine: Engine, session, form: Form, cat: Catalog, state, body):
    label = ""
    stream_url = None
    if body is not None:
        label = labels(session, engine, body.sae, [body.latent])[body.latent]
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
        "choices": labelled(session, engine, state["sae"]),
        "models": model_ids(body.model) if body is not None else [],
        "settings": engine.settings,
    }


@router.get("/steer")
def steer_page(request: Request, engine: EngineDep, session: SessionDep):
    form = Form(request.query_params)
    cat = catalog(engine)
    state = read_state(form, engine, session, cat)
    body = validate(form, engine, session, state) if form.submitted else None
    return render(
        request,
        "steer.html",
        _context(request, engine, session, form, cat, state, body),
        block="view",
        status_code=422 if form.errors else 200,
    )


def _fragment(macro: str, *args: Any) -> str:
    return str(getattr(templates.env.get_template("partials/steer.html").module, macro)(*args))


@router.get("/steer/stream")
async def steer_stream(request: Request, engine: EngineDep, session: SessionDep):
    """Server-sent events of HTML: `tok-{model}-{row}` (one token, escaped), `done-{model}`
    (that model's final columns and plot), `failed` (a message), then `end`."""
    form = Form(request.query_params)
    state = read_state(form, engine, session, catalog(engine))
    body = validate(form, engine, session, state)
    stream = None
    failure = None
    if body is None:
        failure = "; ".join(form.errors.values())
    else:
        try:
            stream = engine.open_steer_stream(compute.steer_jobs(body))
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
async def steer_save(request: Request, engine: EngineDep, session: SessionDep, base: BaseUrlDep):
    """Save the playground's request as a run; answers with its share link (htmx) or
    redirects to it."""
    check_same_origin(request)
    form = Form(await request.form())
    state = read_state(form, engine, session, catalog(engine))
    body = validate(form, engine, session, state)
    title = (form.text("title", max_length=500) or "").strip()
    if body is not None and not title:
        label = labels(session, engine, body.sae, [body.latent])[body.latent]
        title = title_for(body, label)
    saved = None
    if body is not None:
        saved = await save_run(form, "steer", body, title, engine, session, base)
    return saved_response(request, form, saved, "run", base)
