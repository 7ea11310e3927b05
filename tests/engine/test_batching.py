"""Cross-request batching: several users' steering requests in one `generate` give each
exactly what it gets alone (tokens, texts and latent traces), at temperature 0 and above."""

import asyncio
import threading

import pytest

from app.engine import steering
from app.engine.engine import Engine
from app.schemas.steer import SteerRequest

JOBS = [
    dict(latent=3, prompt="What would you do if you ruled the world?", alphas=[0.0, 4.0]),
    dict(latent=7, prompt="hi", alphas=[2.0], seed=5, temperature=0.9, max_new_tokens=5),
    dict(latent=3, prompt="Tell me a long story about a dragon and a knight.", alphas=[-3.0]),
    dict(latent=50, prompt="I feel bored.", alphas=[1.0, 8.0], seed=11, temperature=0.7),
    dict(latent=12, prompt="How do I make a quick buck?", alphas=[6.0], max_new_tokens=12),
]


def job(method="add", positions="all", **over):
    fields = dict(model="base", sae="sae", max_new_tokens=9, method=method, positions=positions)
    return SteerRequest(**{**fields, **over})


@pytest.mark.parametrize(
    ("method", "positions"),
    [("add", "all"), ("add", "generated"), ("clamp", "prompt"), ("ablate", "all")],
)
def test_a_job_in_a_mixed_batch_gets_what_it_gets_alone(engine, method, positions):
    jobs = [job(method, positions, **spec) for spec in JOBS]
    if method == "clamp":
        jobs = [j.model_copy(update={"alphas": [abs(a) for a in j.alphas]}) for j in jobs]
    alone = [steering.run(engine, j) for j in jobs]
    together = steering.run_batch(engine, jobs)
    assert together == alone
    reversed_batch = steering.run_batch(engine, list(reversed(jobs)))
    assert reversed_batch == list(reversed(alone))


def test_waiting_jobs_share_one_generate(engine, monkeypatch):
    """While the worker is busy, arriving jobs wait and then run as one batch."""
    sizes = []
    original = steering.run_batch

    def counting(engine_, batch):
        sizes.append(len(batch))
        return original(engine_, batch)

    monkeypatch.setattr(steering, "run_batch", counting)
    worker = Engine(engine.registry, engine.settings).worker
    release = threading.Event()
    worker.submit(release.wait)  # the device is busy

    async def main():
        jobs = [job(**spec) for spec in JOBS]
        tasks = [
            asyncio.ensure_future(
                worker.run_batched(
                    steering.batch_key(j), j, lambda b: steering.run_batch(engine, b)
                )
            )
            for j in jobs
        ]
        await asyncio.sleep(0.2)
        release.set()
        return jobs, await asyncio.gather(*tasks)

    jobs, results = asyncio.run(main())
    worker.shutdown()
    assert sizes[0] == len(JOBS)  # all five in the first batch
    assert results == [steering.run(engine, j) for j in jobs]
