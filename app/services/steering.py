"""Steering by α along one SAE latent, or by several edits at once (the `steer` kind): one
batched generation per model, as a whole result or streamed token by token."""

import asyncio

import numpy as np
import torch

from app import kinds
from app.db import directions as direction_repo
from app.engine import steering
from app.engine.bridge import BatchedStream
from app.errors import NotFound
from app.schemas.fields import json_param, model_ids
from app.schemas.steer import DEFAULT_ALPHAS, DEFAULT_SCALES, SteerRequest, SteerResponse
from app.services import results
from app.services.context import Context, off_loop


def directions(ctx: Context, wanted: list[tuple[str, str]]) -> dict[str, steering.DirectionVector]:
    """The stored directions that edits name, from (id, field) pairs (a database read)."""
    out: dict[str, steering.DirectionVector] = {}
    if not wanted:
        return out
    with ctx.database.session() as session:
        for direction_id, field in wanted:
            row = direction_repo.get_direction(session, direction_id=direction_id)
            if row is None:
                raise NotFound(f"{field}: no direction with id {direction_id!r}", field=field)
            vector = torch.from_numpy(np.frombuffer(row.vector, dtype="<f4").copy())
            out[row.id] = steering.DirectionVector(
                row.id, row.model_id, row.hook, vector, row.sha256
            )
    return out


def jobs(ctx: Context, body: SteerRequest) -> list[steering.SteerJob]:
    """One job per model, each checked as the API checks it (domain errors name the
    field); nothing is queued. Reads the directions the edits name from the database."""
    ctx.engine.check_models(model_ids(body.model))
    found = directions(ctx, body.direction_ids())
    fields = body.model_dump(exclude={"model"}, exclude_unset=False)
    out = [
        steering.SteerJob.model_validate({**fields, "model": m, "directions": found})
        for m in model_ids(body.model)
    ]
    for job in out:
        steering.validate(ctx.engine, job)
    return out


def cost(ctx: Context, todo: list[steering.SteerJob]) -> int:
    """Token positions: rows (baseline + each α) x (prompt + new tokens), per model."""
    total = 0
    for job in todo:
        plan = steering.validate(ctx.engine, job)
        total += plan.rows(job) * (len(plan.ids) + job.max_new_tokens)
    return ctx.engine.admit(total)


@results.recorded("steer")
async def steer(ctx: Context, body: SteerRequest) -> dict:
    """POST /api/steer: the baseline and every α in one batched `generate` per model."""
    todo = await off_loop(jobs, ctx, body)
    cost(ctx, todo)  # the whole request is admitted or refused
    # Each model's job joins the other users' waiting jobs of that model: one `generate`.
    results = await asyncio.gather(
        *(
            ctx.worker.run_batched(
                steering.batch_key(ctx.engine, job),
                job,
                lambda batch: steering.run_items(ctx.engine, batch),
                cost=cost(ctx, [job]),
            )
            for job in todo
        )
    )
    return results[0] if isinstance(body.model, str) else {"results": list(results)}


async def open_stream(ctx: Context, body: SteerRequest) -> BatchedStream:
    """Validate, queue at once (Busy when the queue is full) and stream: `token` events
    per row and step, `done` per model, then `end`. Each model's job shares one
    `generate` with the other clients' jobs waiting for that model. Closing the stream
    stops its events (and the generation, once no client in it is left)."""
    todo = await off_loop(jobs, ctx, body)
    recording = results.Recording(ctx, "steer", body)
    done: dict[int, dict] = {}

    def maker(m: int, job: steering.SteerJob):
        def make(emit, cancel) -> steering.StreamItem:
            def forward(event: dict) -> None:  # on the device worker
                if event["event"] == "done":
                    done[m] = event["result"]
                    if len(done) == len(todo):  # kept, so saving it is no second generation
                        results_ = [done[k] for k in range(len(todo))]
                        recording.done(
                            results_[0] if isinstance(body.model, str) else {"results": results_}
                        )
                emit(event)

            return steering.StreamItem(job, m, forward, cancel)

        return make

    def run_batch(items: list) -> list[dict]:
        return steering.run_items(ctx.engine, items)

    parts = [
        (steering.batch_key(ctx.engine, job), maker(m, job), run_batch, cost(ctx, [job]))
        for m, job in enumerate(todo)
    ]
    return BatchedStream(ctx.worker, parts)


def _page_params(request: dict) -> dict:
    """The playground's query for a steering request (validated or stored)."""
    defaults = SteerRequest.model_fields
    optional = ("max_new_tokens", "temperature", "seed", "positions", "method")
    alphas = request.get("alphas") or (
        DEFAULT_SCALES if request.get("interventions") else DEFAULT_ALPHAS
    )
    out = {
        "model": model_ids(request["model"]),
        **{k: request[k] for k in ("sae", "latent", "prompt") if request.get(k) is not None},
        **{k: request.get(k, defaults[k].default) for k in optional},
        "alphas": ", ".join(f"{a:g}" for a in alphas),
        "chat": bool(request.get("chat", False)),
    }
    for key in ("interventions", "messages"):  # structured: JSON text in the URL
        if request.get(key):
            out[key] = json_param(request[key])
    return out


kinds.register(
    kinds.Kind(
        name="steer",
        request=SteerRequest,
        response=SteerResponse,
        run=steer,
        page="/steer",
        view="steer",
        page_params=_page_params,
        summary="Steer by alpha",
    )
)
