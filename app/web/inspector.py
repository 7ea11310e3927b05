"""The prompt inspector: a prompt through one or more models and an SAE; a latent's
activation per token (heatmap and line plot), the top latents of every token, and the
difference between base and fine-tuned."""

from typing import Any

from fastapi import APIRouter, Request

from app.api import compute
from app.api.deps import EngineDep, SessionDep
from app.api.schemas import ActivationsRequest
from app.engine.engine import Engine
from app.errors import DomainError
from app.web import views
from app.web.common import catalog, labelled, labels, resolve_latent
from app.web.forms import Form, build
from app.web.templating import render

router = APIRouter(include_in_schema=False)


def specials(engine: Engine, results: list[dict]) -> list[list[bool]]:
    """Per model, which tokens are special (BOS and the like): SAEs are not read there."""
    out = []
    for r in results:
        ids = set(engine.registry.model(r["model"]).tokenizer.all_special_ids)
        out.append([t in ids for t in r["token_ids"]])
    return out


async def inspect_results(
    engine: Engine, session, body: ActivationsRequest, latent: int | None
) -> tuple[list[dict], int | None]:
    """Run the prompt; when no latent is chosen, pick one and run again for its trace."""
    results = views.results_of(await compute.activations(engine, body))
    if latent is None:
        latent = views.pick_latent(results, specials(engine, results))
        if latent is not None:
            body = body.model_copy(update={"latents": [latent]})
            results = views.results_of(await compute.activations(engine, body))
    return results, latent


def inspect_view(engine, session, results: list[dict], latent, sae_id: str, params: dict) -> dict:
    wanted = {latent} if latent is not None else set()
    for r in results:
        for top in r["top"]:
            wanted.update(item["latent"] for item in top)
    return views.activation_view(
        results, latent, labels(session, engine, sae_id, wanted), specials(engine, results), params
    )


@router.get("/inspect")
async def inspect(request: Request, engine: EngineDep, session: SessionDep):
    form = Form(request.query_params)
    cat = catalog(engine)
    sae = form.text("sae") or cat.default_sae or ""
    base, tuned = cat.pair()
    default_models = [m for m in dict.fromkeys([base, tuned]) if m in cat.models_of(sae)]
    state: dict[str, Any] = {
        "model": form.texts("model") or default_models or [base],
        "sae": sae,
        "prompt": form.text("prompt", max_length=20_000),
        "latent": form.text("latent", max_length=200),
        "chat": form.flag("chat", False),
        "top_k": form.integer("top_k", 10, lo=1, hi=100),
    }
    view = None
    if state["prompt"].strip() or form.submitted:
        if not state["prompt"].strip():
            form.fail("prompt", "Type a prompt to inspect.")
        latent = resolve_latent(form, session, engine, sae, state["latent"], required=False)
        body = None
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
        if body is not None:
            try:
                results, latent = await inspect_results(engine, session, body, latent)
            except DomainError as exc:
                if exc.field and exc.field.startswith("latents"):  # the one latent asked for
                    exc.field = "latent"
                form.fail_from(exc, "prompt")
            else:
                params = {k: v for k, v in state.items() if k != "latent"} | {"run": 1}
                view = inspect_view(engine, session, results, latent, sae, params)
                view["auto"] = not state["latent"].strip()
    return render(
        request,
        "inspect.html",
        {
            "active": "inspect",
            "catalog": cat,
            "state": state,
            "errors": form.errors,
            "view": view,
            "choices": labelled(session, engine, sae),
        },
        block="view",
        status_code=422 if form.errors else 200,
    )
