"""Steering by α along one SAE latent (the `steer` kind): one batched generation per
model, as a whole result or streamed token by token."""

import asyncio

from app import kinds
from app.engine import steering
from app.engine.bridge import WorkerStream
from app.schemas.fields import model_ids
from app.schemas.steer import SteerRequest, SteerResponse
from app.services import results
from app.services.context import Context


def jobs(ctx: Context, body: SteerRequest) -> list[steering.SteerJob]:
    """One job per model, each checked as the API checks it (domain errors name the
    field); nothing is queued."""
    ctx.engine.check_models(model_ids(body.model))
    out = [body.model_copy(update={"model": m}) for m in model_ids(body.model)]
    for job in out:
        steering.validate(ctx.engine, job)
    return out


def cost(ctx: Context, todo: list[steering.SteerJob]) -> int:
    """Token positions: rows (baseline + each α) x (prompt + new tokens), per model."""
    total = 0
    for job in todo:
        _sae, _model, ids = steering.validate(ctx.engine, job)
        total += (len(job.alphas) + 1) * (len(ids) + job.max_new_tokens)
    return ctx.engine.admit(total)


@results.recorded("steer")
async def steer(ctx: Context, body: SteerRequest) -> dict:
    """POST /api/steer: the baseline and every α in one batched `generate` per model."""
    todo = jobs(ctx, body)
    cost(ctx, todo)  # the whole request is admitted or refused
    # Each model's job joins the other users' waiting jobs of that model: one `generate`.
    results = await asyncio.gather(
        *(
            ctx.worker.run_batched(
                steering.batch_key(job),
                job,
                lambda batch: steering.run_batch(ctx.engine, batch),
                cost=cost(ctx, [job]),
            )
            for job in todo
        )
    )
    return results[0] if isinstance(body.model, str) else {"results": list(results)}


def open_stream(ctx: Context, body: SteerRequest) -> WorkerStream:
    """Validate, queue at once (Busy when the queue is full) and stream: `token` events
    per row and step, `done` per model, then `end`. Closing it stops generation at the
    next token."""
    todo = jobs(ctx, body)
    recording = results.Recording(ctx, "steer", body)

    def work(emit, cancel) -> None:
        done: list[dict] = []

        def forward(event: dict) -> None:
            if event["event"] == "done":
                done.append(event["result"])
            emit(event)

        steering.stream(ctx.engine, todo, forward, cancel)
        if len(done) == len(todo):  # kept, so saving it is no second generation
            recording.done(done[0] if isinstance(body.model, str) else {"results": done})

    return WorkerStream(ctx.worker, work, cost=cost(ctx, todo))


def _page_params(request: dict) -> dict:
    """The playground's query for a steering request (validated or stored)."""
    defaults = SteerRequest.model_fields
    optional = ("max_new_tokens", "temperature", "seed", "positions", "method")
    return {
        "model": model_ids(request["model"]),
        **{k: request[k] for k in ("sae", "latent", "prompt")},
        **{k: request.get(k, defaults[k].default) for k in optional},
        "alphas": ", ".join(f"{a:g}" for a in request.get("alphas", defaults["alphas"].default)),
        "chat": bool(request.get("chat", False)),
    }


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
