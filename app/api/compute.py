"""One table from a request kind to its body schema and its computation. The endpoints and
saved runs both go through it, so a saved run is exactly what its endpoint returns."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from app.api.schemas import (
    ActivationsRequest,
    CompareRequest,
    EvaluateRequest,
    SteerRequest,
    model_ids,
)
from app.engine.engine import Engine, SteerJob


async def activations(engine: Engine, body: ActivationsRequest) -> dict:
    results = await engine.activations(
        model_ids(body.model), body.sae, body.prompt, body.top_k, body.latents, body.chat
    )
    return results[0] if isinstance(body.model, str) else {"results": results}


def steer_jobs(body: SteerRequest) -> list[SteerJob]:
    fields = body.model_dump(exclude={"model"})
    return [SteerJob(model=m, **fields) for m in model_ids(body.model)]


async def steer(engine: Engine, body: SteerRequest) -> dict:
    results = await engine.steer(steer_jobs(body))
    return results[0] if isinstance(body.model, str) else {"results": results}


async def compare(engine: Engine, body: CompareRequest) -> dict:
    return await engine.compare(
        body.base, body.finetuned, body.sae, body.prompts, body.question_set, body.chat, body.top_n
    )


async def evaluate(engine: Engine, body: EvaluateRequest) -> dict:
    return await engine.evaluate(body)


@dataclass(frozen=True)
class Kind:
    schema: type[BaseModel]
    run: Callable[[Engine, Any], Awaitable[dict]]  # takes an instance of `schema`


KINDS: dict[str, Kind] = {
    "activations": Kind(ActivationsRequest, activations),
    "steer": Kind(SteerRequest, steer),
    "compare": Kind(CompareRequest, compare),
    "evaluate": Kind(EvaluateRequest, evaluate),
}
