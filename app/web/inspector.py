"""The prompt inspector: a prompt through one or more models and an SAE; a latent's
activation per token (heatmap and line plot), the top latents of every token, and the
difference between base and fine-tuned."""

from typing import Any

from fastapi import APIRouter, Request

from app.errors import DomainError
from app.schemas.activations import ActivationsRequest
from app.services import annotations, catalog, inspection
from app.services.context import Context, off_loop
from app.services.deps import ContextDep
from app.web import views
from app.web.common import resolve_latent
from app.web.forms import Form, build
from app.web.templating import render

router = APIRouter(include_in_schema=False)


def inspect_view(ctx: Context, results, latent, specials, sae_id: str, params: dict) -> dict:
    wanted = {latent} if latent is not None else set()
    for r in results:
        for top in r["top"]:
            wanted.update(item["latent"] for item in top)
    names = annotations.labels(ctx, sae_id, wanted)
    return views.activation_view(results, latent, names, specials, params)


def _page(request: Request, ctx: Context) -> tuple[Form, dict[str, Any], Any, int | None, dict]:
    form = Form(request.query_params)
    cat = catalog.catalog(ctx)
    sae = form.text("sae") or cat.default_sae or ""
    base, tuned = cat.pair()
    default_models = [m for m in dict.fromkeys([base, tuned]) if m in cat.models_of(sae)]
    state: dict[str, Any] = {
        "model": form.texts("model") or default_models or [base],
        "sae": sae,
        "prompt": form.text("prompt", max_length=20_000),
        "latent": form.text("latent", max_length=200),
        "chat": form.flag("chat", False),
        "top_k": form.integer("top_k", 10, lo=1, hi=ctx.settings.max_top_k),
    }
    body, latent = None, None
    if state["prompt"].strip() or form.submitted:
        if not state["prompt"].strip():
            form.fail("prompt", "Type a prompt to inspect.")
        latent = resolve_latent(form, ctx, sae, state["latent"], required=False)
        if not form.errors:
            models = state["model"]
            body = build(
                ActivationsRequest,
                form,
                model=models if len(models) > 1 else models[0],
                sae=sae,
                prompt=state["prompt"],
                top_k=state["top_k"],
                latents=[latent] if latent is not None else [],
                chat=state["chat"],
            )
    return form, state, body, latent, {"catalog": cat, "choices": annotations.labelled(ctx, sae)}


@router.get("/inspect")
async def inspect(request: Request, ctx: ContextDep):
    form, state, body, latent, extra = await off_loop(_page, request, ctx)
    view = None
    if body is not None:
        try:
            results, latent, specials = await inspection.inspect(ctx, body, latent)
        except DomainError as exc:
            if exc.field and exc.field.startswith("latents"):  # the one latent asked for
                exc.field = "latent"
            form.fail_from(exc, "prompt")
        else:
            params = {k: v for k, v in state.items() if k != "latent"} | {"run": 1}
            view = await off_loop(
                inspect_view, ctx, results, latent, specials, state["sae"], params
            )
            view["auto"] = not state["latent"].strip()
    return render(
        request,
        "inspect.html",
        {"active": "inspect", "state": state, "errors": form.errors, "view": view, **extra},
        block="view",
        status_code=422 if form.errors else 200,
    )
