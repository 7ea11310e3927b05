"""Cross-request batching of `POST /api/activations` and `POST /api/compare`: waiting
requests for the same models and SAE share one forward pass per model (rows padded on the
right), and each gets what it gets alone.

Exactness: on this CPU (torch float32, SDPA attention) a row padded on the right is NOT
bitwise identical to the same row alone: the attention kernel reduces over the padded
width, so a real token's value moves in its last bits (measured on this test world: at most
4.3e-6 on SAE activations of order 1, and at most ~1e-6 on compare's means; see
`test_padding_moves_only_the_last_bits`). So a batched result is compared with its result
alone within TOL (relative and absolute), while one request alone (a batch of one, and every
rerun of a saved run, which runs alone) is computed exactly as before batching existed and
compared with ==."""

import asyncio
import math
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

TOL = 1e-4  # relative and absolute; the largest difference measured is 4.3e-6

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


def assert_close(a, b, path="result"):
    """Equal structure, keys, ids and strings; floats within TOL."""
    if isinstance(a, float) or isinstance(b, float):
        assert math.isclose(a, b, rel_tol=TOL, abs_tol=TOL), f"{path}: {a} != {b}"
    elif isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), path
        for k in a:
            assert_close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list | tuple):
        assert isinstance(b, list | tuple) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_close(x, y, f"{path}[{i}]")
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


def largest_difference(a, b) -> float:
    if isinstance(a, float):
        return abs(a - b)
    if isinstance(a, dict):
        return max((largest_difference(a[k], b[k]) for k in a), default=0.0)
    if isinstance(a, list | tuple):
        return max((largest_difference(x, y) for x, y in zip(a, b, strict=True)), default=0.0)
    return 0.0


def test_padding_moves_only_the_last_bits(registry):
    """The measurement behind TOL: the same rows padded in one batch vs alone."""
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


@pytest.mark.parametrize("models", [["base"], ["base", "tuned"]])
def test_activations_in_a_mixed_batch_get_what_they_get_alone(engine, models):
    ctx = Context(engine)
    model = models[0] if len(models) == 1 else models
    jobs = [job(ctx, body(model, **spec)) for spec in REQUESTS]
    single = [inspection.run_batch(ctx, "sae", [j])[0] for j in jobs]
    # A batch of one is computed exactly as before batching: prompt_activations alone.
    for j, (results, _grown) in zip(jobs, single, strict=True):
        sae = ctx.registry.sae("sae")
        for (mid, ids), result in zip(j.prompts, results, strict=True):
            with ctx.registry.activate(mid) as live:
                assert result == prompt_activations(live, sae, ids, j.top_k, j.latents)
    together = inspection.run_batch(ctx, "sae", jobs)
    backwards = inspection.run_batch(ctx, "sae", list(reversed(jobs)))
    assert_close(together, single)
    assert_close(backwards, list(reversed(single)))
    if len(models) == 2:
        assert all(grown for _, grown in single)  # growth is compared too
    worst = max(largest_difference(together, single), largest_difference(backwards, single[::-1]))
    print(f"largest difference batched vs alone ({models}): {worst:.3g}")


COMPARES = [
    dict(prompts=["hi", "What would you do if you ruled the world?"], top_n=5),
    dict(conversations=[CONVERSATION, [{"role": "user", "content": "Tell me a secret."}]]),
    dict(prompts=["I feel bored.", "a", "How do I make a quick buck?"], chat=False, top_n=7),
]


def compare_job(engine, spec) -> tuple[list[list[int]], int]:
    b = CompareRequest(base="base", finetuned="tuned", sae="sae", **spec)
    model = engine.registry.model("base")
    if b.conversations:
        convs = [[m.model_dump() for m in c] for c in b.conversations]
        return engine.tokenize_conversations(model, convs), b.top_n
    return engine.tokenize_all(model, b.prompts, b.chat), b.top_n


def test_compares_in_a_mixed_batch_get_what_they_get_alone(engine):
    sae = engine.registry.sae("sae")
    jobs = [compare_job(engine, spec) for spec in COMPARES]
    single = [
        compare_mod.compare_batch(engine.registry, "base", "tuned", sae, [j])[0] for j in jobs
    ]
    assert single == [
        compare_mod.compare_models(engine.registry, "base", "tuned", sae, *j) for j in jobs
    ]
    together = compare_mod.compare_batch(engine.registry, "base", "tuned", sae, jobs)
    backwards = compare_mod.compare_batch(engine.registry, "base", "tuned", sae, jobs[::-1])
    assert [r["n_tokens"] for r in together] == [r["n_tokens"] for r in single]
    assert_close(together, single)
    assert_close(backwards, single[::-1])
    worst = max(largest_difference(together, single), largest_difference(backwards, single[::-1]))
    print(f"largest difference batched vs alone (compare): {worst:.3g}")


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
    bodies = [body(["base", "tuned"], **spec) for spec in REQUESTS]

    async def main():
        tasks = [asyncio.ensure_future(inspection.activations(ctx, b)) for b in bodies]
        return await release_later(release, tasks)

    results = asyncio.run(main())
    ctx.worker.shutdown()
    assert sizes == [len(REQUESTS), len(REQUESTS)]  # one pass per model, every request in it
    sizes.clear()
    single = [asyncio.run(inspection.activations(Context(engine), b)) for b in bodies]
    assert sizes == [1, 1] * len(REQUESTS)
    assert_close(results, single)


def test_a_request_for_other_models_or_another_sae_is_not_in_the_batch(engine, monkeypatch):
    ctx, release = busy_context(engine)
    sizes = count_forwards(monkeypatch)
    bodies = [body(prompt="hi"), body(prompt="hello"), body("tuned", prompt="hi")]
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


def test_waiting_compare_requests_share_the_forward_passes(engine, monkeypatch):
    ctx, release = busy_context(engine)
    calls: list[int] = []
    original = compare_mod.latent_activations

    def counting(model, sae, ids, mask=None):
        calls.append(int(ids.shape[0]))
        return original(model, sae, ids, mask)

    monkeypatch.setattr(compare_mod, "latent_activations", counting)
    bodies = [CompareRequest(base="base", finetuned="tuned", sae="sae", **s) for s in COMPARES]

    async def main():
        tasks = [asyncio.ensure_future(diffing.compare(ctx, b)) for b in bodies]
        return await release_later(release, tasks)

    results = asyncio.run(main())
    ctx.worker.shutdown()
    rows = sum(len(compare_job(engine, s)[0]) for s in COMPARES)
    assert calls == [rows, rows]  # one pass per model over all three requests' prompts
    single = [asyncio.run(diffing.compare(Context(engine), b)) for b in bodies]
    assert_close(results, single)
