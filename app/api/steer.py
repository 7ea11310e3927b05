"""Steering by alpha along an SAE latent: one batched generation per model."""

import json
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from sse_starlette.sse import EventSourceResponse

from app.api import compute
from app.api.deps import EngineDep
from app.api.schemas import SteerMulti, SteerRequest, SteerResult

router = APIRouter(prefix="/api", tags=["steering"])


@router.post("/steer", response_model=SteerResult | SteerMulti, summary="Steer by alpha")
async def steer(body: SteerRequest, engine: EngineDep):
    """The baseline and every alpha are generated in one batched `generate` call with one
    seed and KV cache. Temperature 0 is deterministic, and alpha 0 with `add` reproduces the
    baseline exactly. A list of models returns one result per model under `results`."""
    return await compute.steer(engine, body)


def _stream(engine, body: SteerRequest) -> EventSourceResponse:
    stream = engine.open_steer_stream(compute.steer_jobs(body))

    async def events():
        async for item in stream:
            yield {"event": item["event"], "data": json.dumps(item)}

    return EventSourceResponse(events(), ping=10)


@router.post("/steer/stream", summary="Steer by alpha, streamed (server-sent events)")
async def steer_stream(body: SteerRequest, engine: EngineDep):
    """Server-sent events: `token` ({model_index, row, alpha, token_id, text}) as each token
    is generated (row 0 is the baseline, row k the k-th alpha), `done` with the full result
    per model, then `end`. Generation stops when the client disconnects."""
    return _stream(engine, body)


@router.get("/steer/stream", summary="Steer by alpha, streamed (for EventSource)")
async def steer_stream_get(
    engine: EngineDep,
    model: Annotated[list[str], Query(description="Model id(s).")],
    sae: str,
    latent: int,
    prompt: str,
    alphas: Annotated[list[float], Query()] = [8.0],  # noqa: B006
    max_new_tokens: int = 40,
    temperature: float = 0.0,
    seed: int = 0,
    positions: Literal["all", "prompt", "generated"] = "all",
    method: Literal["add", "clamp", "ablate"] = "add",
    chat: bool = False,
):
    """The same stream as POST /api/steer/stream, with the request in the query string so a
    browser `EventSource` can open it."""
    body = SteerRequest(
        model=model if len(model) > 1 else model[0],
        sae=sae,
        latent=latent,
        prompt=prompt,
        alphas=alphas,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        seed=seed,
        positions=positions,
        method=method,
        chat=chat,
    )
    return _stream(engine, body)
