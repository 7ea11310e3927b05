"""Cross-request batching of `POST /api/activations` and `POST /api/compare`.

Waiting activations requests for the same models, SAE and token count per model share one
forward pass per model, and each gets exactly (==) what it gets alone. Rows of different
lengths are not batched: padded on the right, a row's values move in their last bits on
this CPU (the attention kernel reduces over the padded width; measured in
`test_padding_moves_only_the_last_bits`), and a result must not depend on its company.
Compare requests share a batch only when identical (the same token ids and top_n), and
it is computed once."""

import asyncio
import threading

import pytest
import torch

from app.analysis import compare as compare_mod
from app.engine import activations as engine_activations
from app.engine.activations import latent_activations, prompt_activations
from app.engine.engine import Engine
from app.schemas.activations import ActivationsRequest
from app.schemas.compare import CompareRequest
from app.services import diffing, inspection
from app.services.context import Context, alone

TOL = 1e-4  # padded vs alone: the largest difference measured is 4.3e-6

CONVERSATION = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "What would you do if you ruled the world?"},
    {"role": "assistant", "content": "I would"},
]
REQUESTS = [
    dict(prompt="What would you do if you ruled the world?", latents=[3, 7]),
    dict(prompt="hi", top_k=3),
    dict(prompt="Tell me a long story about a dragon and a knight, please, in many words."),
    dict(messages=CONVERSATION, latents=[50]),
    dict(prompt="I feel bored.", chat=True, top_k=20, latents=[0]),
]


def body(model="base", **over) -> ActivationsRequest:
    return ActivationsRequest(model=model, sae="sae", **over)


def job(ctx: Context, b: ActivationsRequest) -> inspection.Job:
    prompts = inspection._validate(ctx, b)
    special = {mid: set(ctx.registry.model(mid).tokenizer.all_special_ids) for mid, _ in prompts}
    return inspection.Job(prompts, b.top_k, list(b.latents), None, special)


def test_padding_moves_only_the_last_bits(registry):
    """Why rows of different lengths are not batched: the same rows padded in one batch
    vs alone differ in their last bits (an unpadded row does not)."""
    sae = registry.sae("sae")
    with registry.activate("base") as m:
        rows = [m.encode(r["prompt"]) for r in REQUESTS if "prompt" in r]
        alone_ = [latent_activations(m, sae, torch.tensor([r]))[0] for r in rows]
        values = engine_activations.row_values(m, sae.hooks["base"], rows)
        batched = [engine_activations.row_latents(sae, v) for v in values]
    worst = max((a - b).abs().max().item() for a, b in zip(alone_, batched, strict=True))
    assert worst < TOL
    longest = max(range(len(rows)), key=lambda i: len(rows[i]))
    assert torch.equal(alone_[longest], batched[longest])  # no padding: bitwise the same


SAME_LENGTH = [  # one token count per model: these batch together
    dict(prompt="What would you do if you ruled the world?", latents=[3, 7]),
    dict(prompt="What would you do if you ruled the world?", top_k=3),
    dict(prompt="What would you do if you ruled the world?", top_k=20, latents=[0]),
]


@pytest.mark.parametrize("models", [["base"], ["base", "tuned"]])
def test_activations_in_a_batch_get_exactly_what_they_get_alone(engine, models):
    ctx = Context(engine)
    model = models[0] if len(models) == 1 else models
    jobs = [job(ctx, body(model, **spec)) for spec in SAME_LENGTH]
    single = [inspection.run_batch(ctx, "sae", [j])[0] for j in jobs]
    # A batch of one is computed exactly as before batching: prompt_activations alone.
    for j, (results, _grown) in zip(jobs, single, strict=True):
        sae = ctx.registry.sae("sae")
        for (mid, ids), result in zip(j.prompts, results, strict=True):
            with ctx.registry.activate(mid) as live:
                assert result == prompt_activations(live, sae, ids, j.top_k, j.latents)
    assert inspection.run_batch(ctx, "sae", jobs) == single
    assert inspection.run_batch(ctx, "sae", list(reversed(jobs))) == list(reversed(single))
    if len(models) == 2:
        assert all(grown for _, grown in single)  # growth is compared too


def busy_context(engine) -> tuple[Context, threading.Event]:
    """A context on a worker of its own, kept busy until the event is set."""
    fresh = Engine(engine.registry, engine.settings)
    release = threading.Event()
    fresh.worker.submit(release.wait)
    return Context(fresh), release


def count_forwards(monkeypatch) -> list[int]:
    """The batch size of every forward pass the activations engine makes."""
    sizes: list[int] = []
    original = engine_activations.hook_values

    def counting(model, point, input_ids, *args, **kwargs):
        sizes.append(int(input_ids.shape[0]))
        return original(model, point, input_ids, *args, **kwargs)

    monkeypatch.setattr(engine_activations, "hook_values", counting)
    return sizes


async def release_later(release: threading.Event, tasks):
    await asyncio.sleep(0.3)
    release.set()
    return await asyncio.gather(*tasks)


def test_waiting_activation_requests_share_one_forward_pass_per_model(engine, monkeypatch):
    ctx, release = busy_context(engine)
    sizes = count_forwards(monkeypatch)
    bodies = [body(["base", "tuned"], **spec) for spec in [*SAME_LENGTH, *REQUESTS]]

    async def main():
        tasks = [asyncio.ensure_future(inspection.activations(ctx, b)) for b in bodies]
        return await release_later(release, tasks)

    results = asyncio.run(main())
    ctx.worker.shutdown()
    lengths = [
        tuple(len(ids) for _, ids in inspection._validate(Context(engine), b)) for b in bodies
    ]
    groups = {n: lengths.count(n) for n in lengths}
    # one pass per model per token count, every request of that count in it
    assert sorted(sizes) == sorted(n for n in groups.values() for _ in range(2))
    assert max(sizes) >= len(SAME_LENGTH)
    sizes.clear()
    single = [asyncio.run(inspection.activations(Context(engine), b)) for b in bodies]
    assert sizes == [1, 1] * len(bodies)
    assert results == single


def test_a_request_for_other_models_or_another_sae_is_not_in_the_batch(engine, monkeypatch):
    ctx, release = busy_context(engine)
    sizes = count_forwards(monkeypatch)
    bodies = [body(prompt="hi"), body(prompt="hi", top_k=2), body("tuned", prompt="hi")]
    bodies.append(ActivationsRequest(model="base", sae="sae-tl", prompt="hi"))

    async def main():
        tasks = [asyncio.ensure_future(inspection.activations(ctx, b)) for b in bodies]
        return await release_later(release, tasks)

    asyncio.run(main())
    ctx.worker.shutdown()
    assert sorted(sizes) == [1, 1, 2]


def test_a_rerun_runs_alone(engine, monkeypatch):
    """Inside `alone` (a rerun), waiting requests are not batched: a rerun reproduces the
    stored result byte for byte."""
    ctx, release = busy_context(engine)
    sizes = count_forwards(monkeypatch)

    async def one(b):
        with alone():
            return await inspection.activations(ctx, b)

    async def main():
        tasks = [asyncio.ensure_future(one(body(**spec))) for spec in REQUESTS[:3]]
        return await release_later(release, tasks)

    asyncio.run(main())
    ctx.worker.shutdown()
    assert sizes == [1, 1, 1]


COMPARES = [
    dict(prompts=["hi", "What would you do if you ruled the world?"], top_n=5),
    dict(conversations=[CONVERSATION, [{"role": "user", "content": "Tell me a secret."}]]),
]


def test_identical_compare_requests_are_computed_once(engine, monkeypatch):
    ctx, release = busy_context(engine)
    calls: list[int] = []
    original = compare_mod.latent_activations

    def counting(model, sae, ids, mask=None):
        calls.append(int(ids.shape[0]))
        return original(model, sae, ids, mask)

    monkeypatch.setattr(compare_mod, "latent_activations", counting)
    specs = [COMPARES[0], COMPARES[1], COMPARES[0], COMPARES[0]]
    bodies = [CompareRequest(base="base", finetuned="tuned", sae="sae", **s) for s in specs]

    async def main():
        tasks = [asyncio.ensure_future(diffing.compare(ctx, b)) for b in bodies]
        return await release_later(release, tasks)

    results = asyncio.run(main())
    ctx.worker.shutdown()
    assert calls == [2, 2, 2, 2]  # two distinct requests, one pass per model each
    calls.clear()
    single = [asyncio.run(diffing.compare(Context(engine), b)) for b in bodies]
    assert len(calls) == 2 * len(bodies)
    assert results == single
