"""The steering playground: prompt, model(s), latent, α list, method, positions,
temperature, seed and length. The page validates the request and lays out a column per
row (the baseline, then each α) for each model; `/steer/stream` fills them token by token
over server-sent events (htmx's sse extension swaps each event's HTML), then replaces each
model's columns with its final result. "Save" stores the same request as a run.

Two more shapes of the same `SteerRequest`: several edits at once (`interventions`, JSON
text in the URL, edited as rows on the page) and a conversation (`messages`, JSON text):
the user's newest message is answered in every column at once, and the conversation
continues from one answer (the baseline's unless another column's is picked), so every
column answers the next message from one shared history."""

import json
from functools import cache
from typing import Any

from fastapi import APIRouter, Request
from pydantic import TypeAdapter, ValidationError
from sse_starlette.sse import EventSourceResponse

from app.errors import DomainError
from app.kinds import KINDS
from app.schemas.fields import METHOD_LABELS, model_ids, split_list
from app.schemas.steer import DEFAULT_SCALES, SteerQuery, SteerRequest
from app.services import annotations, catalog, directions, steering
from app.services.catalog import Catalog
from app.services.context import Context, off_loop
from app.services.deps import BaseUrlDep, ContextDep
from app.web import forms, views
from app.web.common import with_latent
from app.web.forms import FormInput, humanize
from app.web.saving import listing_chosen, save_run, saved_response
from app.web.security import check_same_origin
from app.web.templating import gen, render, templates, url

router = APIRouter(include_in_schema=False)

DEFAULT_PROMPT = "What would you do if you ruled the world?"
ALPHA_MULTIPLES = (1, 2, 4)  # the default sweep: the report's chosen α and two multiples


def default_alphas(ctx: Context) -> list[float]:
    """The organism report's chosen α and two multiples of it (1, 2, 4 without a report):
    steps that stay readable, unlike large α that turn the text to repetition."""
    alpha = views.suggested_alpha(ctx)
    return [alpha * k for k in ALPHA_MULTIPLES]


STRUCTURED = ("interventions", "messages")  # JSON text in the URL and the form


def _where(loc: tuple) -> str:
    """A pydantic location inside a structured field as the field's own path:
    (1, 'latent', 'alpha') -> '[1].alpha' (the union's tag after an index is dropped)."""
    out = ""
    parts = list(loc)
    for i, part in enumerate(parts):
        if isinstance(part, int):
            out += f"[{part}]"
        elif i > 0 and isinstance(parts[i - 1], int) and part in ("latent", "direction"):
            if i + 1 < len(parts):
                continue  # the discriminator's tag, not a field
            out += f".{part}"
        else:
            out += f".{part}"
    return out


@cache
def _adapter(name: str) -> TypeAdapter:
    return TypeAdapter(SteerQuery.model_fields[name].annotation)


def structured(params, name: str) -> tuple[str, Any, str | None]:
    """A structured field of the form: (its text, its JSON value or None, a message naming
    the field and the place inside it when it is wrong)."""
    text = str(params.get(name) or "").strip()
    if not text:
        return "", None, None
    try:
        value = json.loads(text)
    except ValueError as exc:
        return text, None, f"{name}: is not valid JSON ({exc.msg}, at character {exc.pos})."
    try:
        _adapter(name).validate_python(value)
    except ValidationError as exc:
        err = exc.errors()[0]
        message = humanize(str(err.get("msg", "invalid value")).removeprefix("Value error, "))
        return text, value, f"{name}{_where(tuple(err.get('loc', ())))}: {message}"
    return text, value, None


def _rows(value: Any) -> list[dict]:
    """Edits or turns as the page lists them (what parses as a list of objects)."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def read_form(ctx: Context, params, check: bool = True) -> tuple[FormInput[SteerQuery], Catalog]:
    """The playground's form as a `SteerQuery`, checked by the engine as the API checks it
    (`check`: the form was sent); every problem is left in `errors` under its field. A page
    that was only linked to shows the problems of the values the link names."""
    cat = catalog.catalog(ctx)
    texts, errors = {}, {}
    for name in STRUCTURED:
        texts[name], value, problem = structured(params, name)
        texts[name + "_rows"] = _rows(value)
        if problem:
            errors[name] = problem
    several = bool(texts["interventions"])
    chat_mode = bool(texts["messages"]) or params.get("mode") == "chat"
    first = next((e for e in texts["interventions_rows"] if isinstance(e.get("sae"), str)), {})
    sae = params.get("sae") or (first.get("sae") if several else None) or cat.default_sae or ""
    models = [m for m in params.getlist("model") if m.strip()]
    if not models:
        usable = cat.models_of(sae)
        models = [cat.default_model if cat.default_model in usable else usable[0]]
    params, typed, latent_error = with_latent(params, ctx, sae)
    defaults: dict[str, Any] = {
        "model": models,
        "alphas": list(DEFAULT_SCALES) if several else default_alphas(ctx),
        "chat": models[0] in cat.chat_models,
    }
    if not several:  # one latent: the SAE and latent the page starts from
        defaults |= {"sae": sae, "latent": annotations.default_latent(ctx, sae)}
    if not chat_mode:
        defaults["prompt"] = DEFAULT_PROMPT
    if latent_error:
        errors["latent"] = latent_error
    if "prompt" in params and not params["prompt"].strip():
        errors["prompt"] = "Type a prompt to continue."
    if chat_mode and not texts["messages"] and forms.submitted(params):
        errors["messages"] = "messages: type a message to start the conversation."
    if "alphas" in params and not params["alphas"].strip():
        errors["alphas"] = "Enter at least one α, e.g. 8 or 0, 4, 8."
    if sae not in ctx.registry.saes and (not several or "sae" in params):
        errors["sae"] = f"Unknown SAE '{sae}'."
    form = forms.read(
        SteerQuery,
        params,
        defaults=defaults,
        caps={"max_new_tokens": ctx.settings.max_new_tokens},
        errors=errors,
        checkboxes={"chat"},
    )
    latent = form.values.get("latent")
    if typed is not None:
        form.values["latent"] = typed
    form.values["alpha_values"] = form.body.alphas if form.body else _numbers(params.get("alphas"))
    if several and first.get("method") in METHOD_LABELS:
        form.values["method"] = first["method"]
    form.values |= {
        "sae": sae,
        # With edits, the one-latent fields (not sent) hold the first latent edit.
        "latent": first.get("latent", annotations.default_latent(ctx, sae))
        if several
        else form.values["latent"],
        "prompt": form.values.get("prompt") or (DEFAULT_PROMPT if chat_mode else ""),
        "several": several,
        "chat_mode": chat_mode,
        "interventions": texts["interventions"],
        "edits": texts["interventions_rows"],
        "messages": texts["messages"],
        "turns": texts["messages_rows"],
    }
    if not check:
        form.errors = {k: v for k, v in form.errors.items() if k in params}
        form.body = None
        return form, cat
    if "latent" not in form.errors and isinstance(latent, int) and sae in ctx.registry.saes:
        try:  # checked here too, so every field's problem shows at once
            ctx.registry.sae(sae).check_latent(latent)
        except DomainError as exc:
            form.fail_from(exc)
    if form.body is not None:
        try:
            steering.jobs(ctx, form.body.request())
        except DomainError as exc:
            _fail(form, exc)
    return form, cat


def _fail(form: FormInput[SteerQuery], exc: DomainError) -> None:
    """An engine error on its field; one inside `interventions` or `messages` stays on that
    field, with its place named (`interventions[1].latent: ...`)."""
    where = (exc.field or "").removeprefix("request.")
    for name in STRUCTURED:
        if where.startswith(name):
            form.fail(name, f"{where}: {humanize(exc.message, exc.field)}")
            return
    form.fail_from(exc, "prompt")


def _numbers(text: str | None) -> list[float]:
    try:
        return [float(v) for v in split_list(text or "")]
    except ValueError:
        return []


def params(request: dict[str, Any]) -> dict[str, Any]:
    """URL parameters of the playground for a steering request (validated or stored)."""
    return KINDS["steer"].page_params(request)


def title_for(body: SteerRequest, label: str) -> str:
    alphas = ", ".join(f"{a:g}" for a in body.alphas)
    if body.interventions is not None:
        n = len(body.interventions)
        name = f"{n} edit{'s' if n != 1 else ''} · scales {alphas}"
    else:
        name = f"latent {body.latent}" + (f" ({label})" if label else "") + f" · α {alphas}"
    turns = sum(m.role == "user" for m in body.messages or [])
    talk = f" · conversation, {turns} turn{'s' if turns != 1 else ''}" if body.messages else ""
    return f"Steering {name}{talk} · {', '.join(model_ids(body.model))}"[:200]


def latent_label(ctx: Context, body: SteerRequest) -> str:
    if body.sae is None or body.latent is None:
        return ""
    return annotations.labels(ctx, body.sae, [body.latent])[body.latent]


def direction_choices(ctx: Context, models: list[str]) -> list[dict[str, Any]]:
    """Stored directions to pick from, the newest first: those measured in the residual
    space of every chosen model (its own, its base's or a sibling adapter's)."""
    listed = directions.listing(ctx, limit=MAX_DIRECTION_CHOICES, offset=0)["data"]
    return [d for d in listed if all(directions.same_space(ctx, d["model"], m) for m in models)]


MAX_DIRECTION_CHOICES = 200


def _chosen_models(form: FormInput[SteerQuery]) -> list[str]:
    chosen = form.values.get("model")
    chosen = chosen if isinstance(chosen, list) else [chosen]
    return [m for m in chosen if isinstance(m, str) and m]


def _context(ctx: Context, form: FormInput[SteerQuery], cat: Catalog) -> dict[str, Any]:
    body = form.body.request() if form.body is not None else None
    label = ""
    stream_url = None
    if body is not None:
        label = latent_label(ctx, body)
        stream_url = url("/steer/stream", params(body.model_dump()), run=1)
    return {
        "active": "steer",
        "catalog": cat,
        "state": form.values,
        "errors": form.errors,
        "body": body,
        "label": label,
        "stream_url": stream_url,
        "save_params": params(body.model_dump()) if body is not None else None,
        "title": title_for(body, label) if body is not None else "",
        "choices": annotations.labelled(ctx, form.values["sae"]),
        "directions": direction_choices(ctx, _chosen_models(form)),
        "models": model_ids(body.model) if body is not None else [],
        "settings": ctx.settings,
    }


@router.get("/steer")
def steer_page(request: Request, ctx: ContextDep):
    params_ = request.query_params
    form, cat = read_form(ctx, params_, check=forms.submitted(params_))
    return render(
        request,
        "steer.html",
        _context(ctx, form, cat),
        block="view",
        status_code=422 if form.errors else 200,
    )


def _fragment(macro: str, *args: Any) -> str:
    return str(getattr(templates.env.get_template("partials/steer.html").module, macro)(*args))


@router.get("/steer/stream")
async def steer_stream(request: Request, ctx: ContextDep):
    """Server-sent events of HTML: `tok-{model}-{row}` (one token, escaped), `done-{model}`
    (that model's final columns and plot), `failed` (a message), then `end`."""
    form, _cat = await off_loop(read_form, ctx, request.query_params)
    body = form.body.request() if form.body is not None else None
    stream = None
    failure = None
    if body is None:
        failure = "; ".join(form.errors.values())
    else:
        try:
            stream = await steering.open_stream(ctx, body)
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
                        pick = body.messages is not None  # continue from one answer
                        yield {
                            "event": f"done-{m}",
                            "data": _fragment("steer_model", view, m, pick),
                        }
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
    posted = await request.form()

    def check() -> tuple[FormInput[SteerQuery], SteerRequest | None, str]:
        form, _cat = read_form(ctx, posted)
        body = form.body.request() if form.body is not None else None
        title = str(posted.get("title") or "").strip()
        if body is not None and not title:
            title = title_for(body, latent_label(ctx, body))
        return form, body, title

    form, body, title = await off_loop(check)
    saved = None
    public = listing_chosen(posted)
    if body is not None:
        saved = await save_run(form, ctx, "steer", body, title, base, listed=public)
    return saved_response(request, form, saved, "run", base, listed=public)
