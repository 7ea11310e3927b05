"""Steering by alpha along an SAE latent: one batched generation per model."""

import json
from typing import Annotated

from fastapi import APIRouter, Query
from sse_starlette.sse import EventSourceResponse

from app.schemas.errors import event_stream
from app.schemas.steer import SteerQuery, SteerRequest, SteerResponse
from app.services import steering
from app.services.deps import ContextDep

router = APIRouter(prefix="/api", tags=["steering"])


@router.post("/steer", response_model=SteerResponse, summary="Steer by alpha")
async def steer(body: SteerRequest, ctx: ContextDep):
    """The baseline and every alpha are generated in one batched `generate` call with one
    seed and KV cache. Temperature 0 is deterministic, and alpha 0 with `add` reproduces the
    baseline exactly. A list of models returns one result per model under `results`."""
    return await steering.steer(ctx, body)


async def _stream(ctx, body: SteerRequest) -> EventSourceResponse:
    stream = await steering.open_stream(ctx, body)

    async def events():
        async for item in stream:
            yield {"event": item["event"], "data": json.dumps(item)}

    return EventSourceResponse(events(), ping=10)


STREAM = event_stream(
    "`token` events, `done` per model, then `end` (`error` if generation failed).",
    ["token", "done", "error", "end"],
)


@router.post(
    "/steer/stream",
    response_class=EventSourceResponse,
    responses=STREAM,
    summary="Steer by alpha, streamed (server-sent events)",
)
async def steer_stream(body: SteerRequest, ctx: ContextDep):
    """Server-sent events: `token` ({model_index, row, alpha, token_id, text}) as each token
    is generated (row 0 is the baseline, row k the k-th alpha), `done` with the full result
    per model, then `end`. Generation stops when the client disconnects."""
    return await _stream(ctx, body)


@router.get(
    "/steer/stream",
    response_class=EventSourceResponse,
    responses=STREAM,
    summary="Steer by alpha, streamed (for EventSource)",
)
async def steer_stream_get(query: Annotated[SteerQuery, Query()], ctx: ContextDep):
    """The same stream as POST /api/steer/stream, with the request in the query string so a
    browser `EventSource` can open it (`model` once per id)."""
    return await _stream(ctx, query.request())
