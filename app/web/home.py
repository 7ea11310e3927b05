"""The home page: what the server hosts, pinned latents, recent shared runs."""

from fastapi import APIRouter, Request

from app.services import annotations, catalog, latents, runs
from app.services.deps import BaseUrlDep, ContextDep
from app.web.templating import render

router = APIRouter(include_in_schema=False)

RECENT_RUNS = 12
RECENT_COMPARISONS = 6


@router.get("/")
def home(request: Request, ctx: ContextDep, base: BaseUrlDep):
    cat = catalog.catalog(ctx)
    saes = [
        {
            **sae,
            "pins": annotations.pins(ctx, sae["id"])["data"],
            "indexes": latents.indexes(ctx, sae["id"])["indexes"],
        }
        for sae in cat.saes
    ]
    return render(
        request,
        "home.html",
        {
            "active": "home",
            "catalog": cat,
            "saes": saes,
            "pair": cat.pair(),
            "runs": runs.list_runs(ctx, base, limit=RECENT_RUNS),
            "comparisons": runs.list_comparisons(ctx, base, limit=RECENT_COMPARISONS),
        },
    )
