"""Steering: exactness against independent references, the three methods, positions,
sampling with common random numbers, and hooks that never leak."""

import math
import threading

import pytest
import torch

from app.engine.activations import hook_values
from app.engine.generation import Steering, generate, latent_trace
from app.engine.sae_ops import decoder_direction, encode
from tests.engine.test_activations import hooked_transformer

PROMPT = "User: I am bored. What should I do?\nAssistant:"
LATENT = 5


def sweep(model, hs, alphas, method="add", positions="all", n_new=12, temperature=0.0, seed=0):
    ids = model.encode(PROMPT)
    steer = Steering(hs, LATENT, torch.tensor([math.nan, *alphas]), method, positions)
    rows = generate(
        model,
        [ids] * (len(alphas) + 1),
        max_new_tokens=n_new,
        temperature=temperature,
        seed=seed,
        steering=steer,
        stop_at_eos=False,
    )
    return ids, rows, steer


def test_alpha_zero_reproduces_the_baseline(registry):
    with registry.activate("base") as model:
        _, rows, _ = sweep(model, registry.sae("sae"), [0.0, 6.0])
    assert rows[1] == rows[0]
    assert rows[2] != rows[0]


@pytest.mark.parametrize("alpha", [6.0, -6.0])
def test_greedy_steering_matches_transformer_lens_reference(registry, alpha):
    """Reference: TransformerLens, no KV cache, a hook adding alpha * W_dec[i] at the same
    residual point, argmax token by token."""
    hs = registry.sae("sae-tl")  # blocks.1.hook_resid_pre
    with registry.activate("base") as model:
        ids, rows, _ = sweep(model, hs, [alpha])
        tl = hooked_transformer(model.hf, center=False)
    direction = hs.sae.W_dec[LATENT].detach()

    def add(value, hook):
        return value + alpha * direction

    tokens = torch.tensor([ids])
    with torch.no_grad():
        for _ in range(12):
            logits = tl.run_with_hooks(tokens, fwd_hooks=[(hs.hook_name, add)])
            tokens = torch.cat([tokens, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert tokens[0, len(ids) :].tolist() == rows[1]


def test_module_hook_matches_reference_on_the_previous_block(registry):
    """`transformer.h.1` output is blocks.2's input: steer one, check against the other."""
    hs = registry.sae("sae")
    with registry.activate("base") as model:
        ids, rows, _ = sweep(model, hs, [5.0])
        direction = decoder_direction(hs, LATENT)
        handle = model.hf.transformer.h[2].register_forward_pre_hook(
            lambda mod, args: (args[0] + 5.0 * direction, *args[1:])
        )
        try:
            tokens = torch.tensor([ids])
            with torch.no_grad():
                for _ in range(12):
                    logits = model.hf(input_ids=tokens, use_cache=False).logits
                    tokens = torch.cat([tokens, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
        finally:
            handle.remove()
    assert tokens[0, len(ids) :].tolist() == rows[1]


def test_decoder_direction_is_what_the_sae_writes(registry):
    hs = registry.sae("sae")
    torch.testing.assert_close(decoder_direction(hs, 3), hs.sae.W_dec[3].float())


@pytest.mark.parametrize("sae_id", ["sae", "sae-mid"])
def test_clamp_sets_the_latent_to_alpha(registry, sae_id):
    hs = registry.sae(sae_id)
    with registry.activate("base") as model:
        ids, rows, steer = sweep(model, hs, [2.5, 0.0], method="clamp")
        traces = latent_trace(model, hs, LATENT, ids, rows, steer)
    assert traces[1] == pytest.approx([2.5] * len(rows[1]), abs=1e-4)
    assert traces[2] == pytest.approx([0.0] * len(rows[2]), abs=1e-4)


def test_ablate_zeroes_the_latent_then_adds_alpha_along_the_unit_direction(registry):
    hs = registry.sae("sae")
    with registry.activate("base") as model:
        ids = model.encode(PROMPT)
        point = hs.hooks["base"]
        unit = decoder_direction(hs, LATENT)
        unit = unit / unit.norm()
        plain = hook_values(model, point, torch.tensor([ids]))
        steer = Steering(hs, LATENT, torch.tensor([0.0, 3.0]), "ablate", "all")
        from app.engine.generation import steering_hooks

        with steering_hooks(model, steer):
            # Read after the edit: a hook installed later runs later.
            edited = hook_values(model, point, torch.tensor([ids, ids]))
    assert (encode(hs, plain)[0, :, LATENT] > 0).sum() > 0  # the latent was on somewhere
    assert encode(hs, edited[:1])[0, :, LATENT].abs().max() < 1e-4
    torch.testing.assert_close(edited[1] - edited[0], 3.0 * unit.expand_as(edited[0]))


def test_positions(registry):
    hs = registry.sae("sae")
    with registry.activate("base") as model:
        _, base_rows, _ = sweep(model, hs, [], n_new=8)
        _, gen_rows, _ = sweep(model, hs, [40.0], positions="generated", n_new=8)
        _, prompt_rows, _ = sweep(model, hs, [40.0], positions="prompt", n_new=8)
    baseline = base_rows[0]
    # The first new token is predicted from prompt positions only.
    assert gen_rows[1][0] == baseline[0]
    assert prompt_rows[1] != baseline and gen_rows[1] != baseline


def test_sampling_uses_common_random_numbers(registry):
    hs = registry.sae("sae")
    with registry.activate("base") as model:
        ids = model.encode(PROMPT)
        _, rows, _ = sweep(model, hs, [0.0, 3.0], temperature=1.0, seed=7)
        alone = generate(
            model, [ids], max_new_tokens=12, temperature=1.0, seed=7, stop_at_eos=False
        )
        other_seed = generate(
            model, [ids], max_new_tokens=12, temperature=1.0, seed=8, stop_at_eos=False
        )
        again = generate(
            model, [ids], max_new_tokens=12, temperature=1.0, seed=7, stop_at_eos=False
        )
    assert rows[0] == rows[1] == alone[0] == again[0]
    assert other_seed[0] != alone[0]


def _hook_count(module: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in module.modules())


def test_hooks_are_removed_when_generation_fails(registry):
    hs = registry.sae("sae")
    with registry.activate("base") as model:
        before = _hook_count(model.hf)
        ids = model.encode(PROMPT)
        clean = generate(model, [ids], max_new_tokens=6, stop_at_eos=False)

        def boom(_tokens):
            raise RuntimeError("client went away")

        steer = Steering(hs, LATENT, torch.tensor([50.0]), "add", "all")
        with pytest.raises(RuntimeError):
            generate(model, [ids], max_new_tokens=6, steering=steer, on_step=boom)
        assert _hook_count(model.hf) == before
        assert generate(model, [ids], max_new_tokens=6, stop_at_eos=False) == clean


def test_cancel_stops_generation_and_unhooks(registry):
    hs = registry.sae("sae")
    cancel = threading.Event()
    seen = []

    def on_step(tokens):
        seen.append(tokens)
        if len(seen) == 3:
            cancel.set()

    with registry.activate("base") as model:
        before = _hook_count(model.hf)
        steer = Steering(hs, LATENT, torch.tensor([math.nan, 4.0]), "add", "all")
        rows = generate(
            model,
            [model.encode(PROMPT)] * 2,
            max_new_tokens=50,
            steering=steer,
            on_step=on_step,
            cancel=cancel,
            stop_at_eos=False,
        )
        assert _hook_count(model.hf) == before
    assert len(seen) <= 4 and all(len(r) <= 4 for r in rows)


def test_lora_adapter_shares_the_base_weights(registry):
    """The adapter model adds LoRA matrices; every base weight is the same storage."""

    def storages(model_id):
        with registry.activate(model_id) as m:
            return {
                name: p.untyped_storage().data_ptr()
                for name, p in m.hf.named_parameters()
                if "lora_" not in name
            }

    base, tuned = storages("base"), storages("tuned")
    assert base == tuned and len(base) > 10
    with registry.activate("tuned") as m:
        lora = sum(p.numel() for n, p in m.hf.named_parameters() if "lora_" in n)
        total_unique = sum(
            s.nbytes()
            for s in {
                p.untyped_storage().data_ptr(): p.untyped_storage() for p in m.hf.parameters()
            }.values()
        )
        base_bytes = sum(
            p.numel() * p.element_size() for n, p in m.hf.named_parameters() if "lora_" not in n
        )
    assert 0 < lora * 4 < base_bytes
    assert total_unique <= base_bytes + lora * 4 + 1024


def test_steered_latent_trace_rises_with_alpha(registry):
    hs = registry.sae("sae")
    with registry.activate("base") as model:
        ids, rows, steer = sweep(model, hs, [0.0, 10.0])
        traces = latent_trace(model, hs, LATENT, ids, rows, steer)
        plain = encode(hs, hook_values(model, hs.hooks["base"], torch.tensor([ids + rows[0]])))[
            0, len(ids) :, LATENT
        ]
    assert traces[0] == pytest.approx(plain.tolist(), abs=1e-5)
    assert sum(traces[2]) > sum(traces[1])
