"""The home page: what the server hosts, pinned latents, recent shared runs."""

from fastapi import APIRouter, Request

from app.api import annotations, comparisons, runs
from app.api.deps import BaseUrlDep, EngineDep, SessionDep
from app.index.store import describe, indexes_for
from app.web.common import catalog
from app.web.templating import render

router = APIRouter(include_in_schema=False)

RECENT_RUNS = 12
RECENT_COMPARISONS = 6


@router.get("/")
def home(request: Request, engine: EngineDep, session: SessionDep, base: BaseUrlDep):
    cat = catalog(engine)
    saes = []
    for sae in cat.saes:
        pins = annotations.list_pins(sae["id"], session, engine)["data"]
        saes.append(
            {
                **sae,
                "pins": pins,
                "indexes": [describe(i) for i in indexes_for(session, sae["id"])],
            }
        )
    pair = cat.pair()
    return render(
        request,
        "home.html",
        {
            "active": "home",
            "catalog": cat,
            "saes": saes,
            "pair": pair,
            "runs": runs.list_runs(session, base, limit=RECENT_RUNS, offset=0, kind=None),
            "comparisons": comparisons.list_comparisons(
                session, base, limit=RECENT_COMPARISONS, offset=0
            ),
        },
    )
