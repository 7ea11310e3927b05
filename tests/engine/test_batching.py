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
                    steering.batch_key(engine, j), j, lambda b: steering.run_batch(engine, b)
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


def test_streams_and_plain_jobs_share_one_generate(engine, monkeypatch):
    """Two streamed jobs and a plain one, waiting together, run as one `generate`: each
    stream gets its own tokens as they come and the result it gets alone; a client that
    goes away mid-way stops getting events without stopping the others."""
    calls = []
    original = steering.generate

    def counting(model, prompts, **kwargs):
        calls.append(len(prompts))
        return original(model, prompts, **kwargs)

    monkeypatch.setattr(steering, "generate", counting)
    jobs = [job(**JOBS[0]), job(**JOBS[1]), job(**JOBS[3])]
    alone = [steering.run(engine, j) for j in jobs]
    calls.clear()
    events: list[list[dict]] = [[], []]
    gone = threading.Event()

    def emitter(k):
        def emit(event):
            events[k].append(event)
            if k == 1 and event["event"] == "token" and len(events[1]) == 3:
                gone.set()  # the second client leaves after three tokens

        return emit

    items = [
        steering.StreamItem(jobs[0], 0, emitter(0), threading.Event()),
        steering.StreamItem(jobs[1], 0, emitter(1), gone),
        jobs[2],
    ]
    results = steering.run_items(engine, items)
    assert calls == [sum(len(j.alphas) + 1 for j in jobs)]  # one generate for all rows
    assert results == alone
    done = [e for e in events[0] if e["event"] == "done"]
    assert done == [{"event": "done", "model_index": 0, "result": alone[0]}]
    streamed = {}
    for e in events[0]:
        if e["event"] == "token":
            streamed.setdefault(e["row"], []).append(e["token_id"])
    expected = [alone[0]["baseline"]["token_ids"], *[s["token_ids"] for s in alone[0]["steered"]]]
    assert [streamed.get(r, []) for r in range(len(expected))] == expected
    assert len(events[1]) == 3 and all(e["event"] == "token" for e in events[1])


def test_requests_sent_together_to_an_idle_worker_share_a_batch():
    """The batch window: a request to an idle worker waits briefly for its company."""
    import torch

    from app.engine.worker import DeviceWorker

    def sizes_with(window: float) -> list[int]:
        worker = DeviceWorker(torch.device("cpu"), 16, batch_window_s=window)
        sizes: list[int] = []

        def run_batch(items):
            sizes.append(len(items))
            return items

        futures = []
        for i in range(4):
            futures.append(worker.submit_batched("k", i, run_batch))
            threading.Event().wait(0.005)  # the users click within a few milliseconds
        assert [f.result(timeout=5) for f in futures] == [0, 1, 2, 3]
        worker.shutdown()
        return sizes

    assert sizes_with(0.2) == [4]
    assert sizes_with(0.0)[0] == 1  # without a window the first runs alone


def test_jobs_for_adapters_of_one_base_share_a_batch_and_get_what_they_get_alone(
    engine, registry, monkeypatch
):
    """The base and its adapter in one `generate` (PEFT's mixed-adapter batch): each row
    runs its own job's weights, so each job gets exactly its result alone."""
    jobs = [
        job(model="tuned", **JOBS[0]),
        job(**JOBS[1]),
        job(model="tuned", **JOBS[3]),
        steering.SteerJob(
            model="tuned",
            prompt="hi",
            interventions=[{"sae": "sae", "latent": 5, "alpha": 3.0}],
            alphas=[1.0, 2.0],
            max_new_tokens=7,
        ),
    ]
    assert len({steering.batch_key(engine, j) for j in jobs}) == 1
    # `other` is a full fine-tune (its own weights) and sae-mid is not on the adapter: apart
    assert steering.batch_key(engine, job(model="other", sae="sae-tl", **JOBS[1])) != (
        steering.batch_key(engine, jobs[1])
    )
    alone = [steering.run(engine, j) for j in jobs]
    calls = []
    original = steering.generate

    def counting(model, prompts, **kwargs):
        calls.append(kwargs.get("adapter_names"))
        return original(model, prompts, **kwargs)

    monkeypatch.setattr(steering, "generate", counting)
    assert steering.run_batch(engine, jobs) == alone
    assert len(calls) == 1 and set(calls[0]) == {"tuned", "__base__"}
    assert steering.run_batch(engine, list(reversed(jobs))) == list(reversed(alone))
    # and the adapter is off again afterwards: the base alone is the plain base
    assert steering.run(engine, jobs[1]) == alone[1]
