"""The prompt inspector: a prompt through one or more models and an SAE; a latent's
activation per token (heatmap and line plot), the top latents of every token, and the
difference between base and fine-tuned."""

import json
from typing import Any

from fastapi import APIRouter, Request

from app.errors import DomainError
from app.schemas.activations import InspectQuery
from app.services import annotations, catalog, directions, inspection
from app.services.context import Context, off_loop
from app.services.deps import ContextDep
from app.web import forms, views
from app.web.common import with_latent
from app.web.forms import FormInput
from app.web.templating import render, url

router = APIRouter(include_in_schema=False)


def inspect_view(
    ctx: Context, results, latent, specials, sae_id: str, params: dict, growth=None
) -> dict:
    wanted = {latent} if latent is not None else set()
    for r in results:
        for top in r["top"]:
            wanted.update(item["latent"] for item in top)
    wanted.update(g["latent"] for g in growth or [])
    names = annotations.labels(ctx, sae_id, wanted)
    return views.activation_view(results, latent, names, specials, params, growth)


def read_form(ctx: Context, params) -> tuple[FormInput[InspectQuery], dict[str, Any]]:
    """The inspector's form as an `InspectQuery`: by default the base model and its first
    fine-tune, and the latent the inspector picks."""
    cat = catalog.catalog(ctx)
    sae = params.get("sae") or cat.default_sae or ""
    base, tuned = cat.pair()
    default_models = [m for m in dict.fromkeys([base, tuned]) if m in cat.models_of(sae)]
    params, typed, latent_error = with_latent(params, ctx, sae, required=False)
    # A conversation (`messages`, JSON text, as a saved run's link carries it) stands in
    # for the prompt.
    prompt = params.get("prompt") or ("(conversation)" if params.get("messages") else "")
    errors = {}
    if latent_error:
        errors["latent"] = latent_error
    if (prompt.strip() or forms.submitted(params)) and not prompt.strip():
        errors["prompt"] = "Type a prompt to inspect."
    form = forms.read(
        InspectQuery,
        params,
        defaults={"sae": sae, "model": default_models or [base]},
        caps={"top_k": ctx.settings.max_top_k},
        errors=errors,
    )
    form.values["latent"] = typed or ""
    if not prompt.strip() and not forms.submitted(params):  # a page to fill in, not a run
        form.errors = {k: v for k, v in form.errors.items() if k in params and k != "prompt"}
        form.body = None
    return form, {
        "catalog": cat,
        "choices": annotations.labelled(ctx, sae),
        "directions": recent_directions(ctx),
        "turns": conversation_turns(form.values.get("messages")),
        # The same form with a prompt box instead of the conversation.
        "prompt_link": url(
            "/inspect", {k: v for k, v in form.values.items() if k not in ("messages", "prompt")}
        ),
    }


def conversation_turns(text: str | None) -> list[dict]:
    """The turns of the form's conversation (`messages`, JSON text) as the page lists them:
    those that read as {role, content}; none when the text is not a list of turns."""
    try:
        value = json.loads(text) if text else None
    except ValueError:
        return []
    if not isinstance(value, list):
        return []
    return [
        {"role": str(t.get("role", "")), "content": str(t.get("content", ""))}
        for t in value
        if isinstance(t, dict)
    ]


DIRECTION_CHOICES = 50


def recent_directions(ctx: Context) -> list[dict]:
    """The newest directions, for the persona-score choice (none while the database is
    down: the inspector works without one)."""
    try:
        return directions.listing(ctx, limit=DIRECTION_CHOICES, offset=0)["data"]
    except DomainError:
        return []


@router.get("/inspect")
async def inspect(request: Request, ctx: ContextDep):
    form, extra = await off_loop(read_form, ctx, request.query_params)
    state = form.values
    view = None
    if form.body is not None:
        try:
            results, latent, specials, growth = await inspection.inspect(
                ctx, form.body.request(), form.body.latent
            )
        except DomainError as exc:
            if exc.field and exc.field.startswith("latents"):  # the one latent asked for
                exc.field = "latent"
            form.fail_from(exc, "prompt")
        else:
            params = {k: v for k, v in state.items() if k != "latent"} | {"run": 1}
            view = await off_loop(
                inspect_view, ctx, results, latent, specials, state["sae"], params, growth
            )
            view["auto"] = form.body.latent is None
    return render(
        request,
        "inspect.html",
        {"active": "inspect", "state": state, "errors": form.errors, "view": view, **extra},
        block="view",
        status_code=422 if form.errors else 200,
    )
