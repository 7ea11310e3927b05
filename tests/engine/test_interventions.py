"""Several edits at once (`interventions`): the exactness rules of issue 15 and the
combined edit against hand-written reference hooks."""

import math

import pytest
import torch

from app.engine import steering
from app.engine.generation import Edit, Interventions, boundaries, generate, steering_hooks
from app.engine.sae_ops import decoder_direction
from app.errors import DomainError
from app.schemas.steer import SteerRequest

PROMPT = "What would you do if you ruled the world?"


def legacy(**over) -> SteerRequest:
    fields = dict(model="base", sae="sae", latent=3, prompt=PROMPT, max_new_tokens=10)
    return SteerRequest(**{**fields, **over})


def job(interventions, directions=None, **over) -> steering.SteerJob:
    fields = dict(model="base", prompt=PROMPT, max_new_tokens=10, interventions=interventions)
    return steering.SteerJob(**{**fields, **over}, directions=directions or {})


def rows(result: dict) -> list[list[int]]:
    return [result["baseline"]["token_ids"], *[s["token_ids"] for s in result["steered"]]]


@pytest.mark.parametrize(
    ("method", "alpha", "positions"),
    [
        ("add", 6.0, "all"),
        ("add", -9.0, "generated"),
        ("clamp", 5.0, "all"),
        ("ablate", 3.0, "prompt"),
    ],
)
@pytest.mark.parametrize("temperature", [0.0, 0.9])
def test_one_latent_edit_is_the_single_latent_request(
    engine, method, alpha, positions, temperature
):
    common = dict(positions=positions, temperature=temperature, seed=7)
    one = steering.run(engine, legacy(alphas=[alpha], method=method, **common))
    edit = {"sae": "sae", "latent": 3, "alpha": alpha, "method": method}
    many = steering.run(engine, job([edit], **common))
    assert rows(many) == rows(one)
    assert [s["latent_activations"] for s in many["steered"]] == [
        s["latent_activations"] for s in one["steered"]
    ]
    assert many["interventions"] == [edit] and many["trace"] == {"sae": "sae", "latent": 3}


def test_two_adds_of_one_latent_are_their_sum(engine):
    both = steering.run(
        engine,
        job([{"sae": "sae", "latent": 3, "alpha": 2.5}, {"sae": "sae", "latent": 3, "alpha": 4.0}]),
    )
    summed = steering.run(engine, legacy(alphas=[6.5]))
    assert rows(both) == rows(summed)
    assert both["interventions"] == [{"sae": "sae", "latent": 3, "alpha": 6.5, "method": "add"}]
    # The scales multiply the summed alpha: row k is (a + b) x alphas[k].
    scaled = steering.run(
        engine,
        job(
            [{"sae": "sae", "latent": 3, "alpha": 2.5}, {"sae": "sae", "latent": 3, "alpha": 4.0}],
            alphas=[0.0, 2.0],
        ),
    )
    assert rows(scaled) == rows(steering.run(engine, legacy(alphas=[0.0, 13.0])))


def latent_direction(registry, sae_id: str, latent: int) -> steering.DirectionVector:
    """A direction made as `method: latent` makes it (float32, as stored)."""
    hs = registry.sae(sae_id)
    vector = decoder_direction(hs, latent).float().cpu()
    return steering.DirectionVector("d1", "base", hs.hook_name, vector, "sha")


@pytest.mark.parametrize("temperature", [0.0, 0.8])
def test_a_latent_direction_steers_exactly_like_the_latent(engine, registry, temperature):
    d = latent_direction(registry, "sae", 3)
    by_direction = steering.run(
        engine,
        job([{"direction": "d1", "alpha": 7.0}], {"d1": d}, temperature=temperature, seed=3),
    )
    by_latent = steering.run(engine, legacy(alphas=[7.0], temperature=temperature, seed=3))
    assert rows(by_direction) == rows(by_latent)
    assert "trace" not in by_direction  # no latent edit: nothing to trace


def test_a_direction_made_on_the_base_steers_its_adapter(engine, registry):
    d = latent_direction(registry, "sae", 3)
    on_adapter = steering.run(
        engine, job([{"direction": "d1", "alpha": 7.0}], {"d1": d}, model="tuned")
    )
    assert rows(on_adapter) == rows(steering.run(engine, legacy(model="tuned", alphas=[7.0])))


# ------------------------------------------------------------------ reference hooks
def _reference_generate(model, ids, hooks, max_new_tokens):
    """Greedy decoding by full forward passes (no KV cache), with plain forward hooks."""
    handles = [model.hf.get_submodule(name).register_forward_hook(fn) for name, fn in hooks]
    try:
        out = list(ids)
        for _ in range(max_new_tokens):
            logits = model.hf(input_ids=torch.tensor([out])).logits[0, -1]
            token = int(logits.argmax())
            if token in model.stop_token_ids:
                break
            out.append(token)
        return out[len(ids) :]
    finally:
        for h in handles:
            h.remove()


def test_combined_edit_matches_hand_written_hooks(engine, registry):
    """Three edits at two hooks: a direction projected out of the residual before block 1
    (output of block 0), then at block 1's output latent 3 added and a direction added."""
    model = registry.model("base")
    hs = registry.sae("sae")  # reads transformer.h.1's output
    d3 = decoder_direction(hs, 3).float()
    torch.manual_seed(0)
    v = torch.randn(model.d_model)
    w = torch.randn(model.d_model)
    directions = {
        "v": steering.DirectionVector("v", "base", "blocks.1.hook_resid_pre", v, "-"),
        "w": steering.DirectionVector("w", "base", "transformer.h.1", w, "-"),
    }
    edits = [
        {"sae": "sae", "latent": 3, "alpha": 4.0},
        {"direction": "v", "method": "ablate"},
        {"direction": "w", "alpha": -2.0},
    ]
    result = steering.run(engine, job(edits, directions, alphas=[1.5], max_new_tokens=12))

    u = v / v.norm()

    def project_out(_module, _inputs, output):
        h = output[0] if isinstance(output, tuple) else output
        h = h - (h @ u)[..., None] * u
        return (h, *output[1:]) if isinstance(output, tuple) else h

    def add_both(_module, _inputs, output):
        h = output[0] if isinstance(output, tuple) else output
        h = h + 1.5 * 4.0 * d3
        h = h + 1.5 * -2.0 * w
        return (h, *output[1:]) if isinstance(output, tuple) else h

    hooks = [("transformer.h.0", project_out), ("transformer.h.1", add_both)]
    ids = result["prompt_token_ids"]
    with torch.no_grad():
        expected = _reference_generate(model, ids, hooks, 12)
        plain = _reference_generate(model, ids, [], 12)
    assert result["steered"][0]["token_ids"] == expected
    assert result["baseline"]["token_ids"] == plain
    assert expected != plain  # the edits change the output, so the comparison says something


def test_last_turn_edits_only_the_newest_assistant_turn(registry):
    model = registry.model("base")
    turns = [
        {"role": "user", "content": "hi there"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "what now"},
    ]
    ids, start = model.encode_conversation(turns)
    assert 0 < start < len(ids)
    w = torch.randn(model.d_model)
    edit = Edit("add", torch.tensor([3.0]), vector=w, hook="transformer.h.1")
    plan = Interventions([edit], "last_turn", turn_starts=[start])
    plan.generated_from = boundaries(plan, [len(ids)], len(ids), [0])
    # Block 2's input is block 1's output after the edit.
    captured = {}

    def grab2(_module, args, kwargs):
        captured["x"] = (args[0] if args else kwargs["hidden_states"]).clone()

    handle = model.hf.transformer.h[2].register_forward_pre_hook(grab2, with_kwargs=True)
    try:
        with torch.no_grad():
            model.hf(input_ids=torch.tensor([ids]))
            plain = captured["x"]
            with steering_hooks(model, plan):
                model.hf(input_ids=torch.tensor([ids]))
            edited = captured["x"]
    finally:
        handle.remove()
    delta = (edited - plain)[0]  # (seq, d_model)
    assert torch.allclose(delta[:start], torch.zeros_like(delta[:start]))
    assert torch.allclose(delta[start:], (3.0 * w).expand_as(delta[start:]), atol=1e-5)


def test_a_conversation_steers_its_last_turn(engine):
    turns = [
        {"role": "user", "content": "hi there"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "tell me a story"},
        {"role": "assistant", "content": "once upon"},
        {"role": "user", "content": "go on"},
    ]
    edit = [{"sae": "sae", "latent": 3, "alpha": 9.0}]
    last = steering.run(engine, job(edit, messages=turns, prompt=None, positions="last_turn"))
    everywhere = steering.run(engine, job(edit, messages=turns, prompt=None, positions="all"))
    assert last["baseline"] == everywhere["baseline"]
    assert len(last["prompt_token_ids"]) > 20


def test_interventions_in_a_mixed_batch_get_what_they_get_alone(engine, registry):
    d = latent_direction(registry, "sae", 5)
    jobs = [
        job(
            [{"sae": "sae", "latent": 3, "alpha": 4.0}, {"direction": "d1", "method": "ablate"}],
            {"d1": d},
        ),
        steering.SteerJob(**legacy(alphas=[2.0, -6.0]).model_dump(), directions={}),
        job(
            [{"sae": "sae-tl", "latent": 9, "alpha": 3.0, "method": "clamp"}],
            temperature=0.7,
            seed=4,
        ),
        job([{"direction": "d1", "alpha": -5.0}], {"d1": d}, prompt="hi", alphas=[1.0, 2.0]),
    ]
    alone = [steering.run(engine, j) for j in jobs]
    assert steering.run_batch(engine, jobs) == alone
    assert steering.run_batch(engine, list(reversed(jobs))) == list(reversed(alone))


@pytest.mark.parametrize(
    ("edits", "over", "field"),
    [
        ([], {}, "interventions"),
        ([{"sae": "nope", "latent": 1, "alpha": 1}], {}, "interventions[0].sae"),
        ([{"sae": "sae-mid", "latent": 1, "alpha": 1}], {"model": "tuned"}, "interventions[0].sae"),
        ([{"sae": "sae", "latent": 10**6, "alpha": 1}], {}, "interventions[0].latent"),
        (
            [{"sae": "sae", "latent": 1, "alpha": -1, "method": "clamp"}],
            {},
            "interventions[0].alpha",
        ),
        ([{"sae": "sae", "latent": 1, "alpha": 600}], {"alphas": [2.0]}, "interventions[0].alpha"),
        ([{"direction": "missing", "alpha": 1}], {}, "interventions[0].direction"),
        ([{"sae": "sae", "latent": 1, "alpha": 1}], {"sae": "sae"}, "sae"),
    ],
)
def test_bad_interventions_name_the_field(engine, edits, over, field):
    with pytest.raises(DomainError) as caught:
        steering.validate(engine, job(edits, **over))
    assert caught.value.field == field, caught.value.message
    assert caught.value.message.startswith(field)


def test_a_direction_of_another_base_is_refused(engine, registry):
    d = latent_direction(registry, "sae", 3)
    with pytest.raises(DomainError) as caught:
        steering.validate(engine, job([{"direction": "d1", "alpha": 1}], {"d1": d}, model="other"))
    assert caught.value.field == "interventions[0].direction"
    assert "'other'" in caught.value.message


def test_nan_rows_leave_the_value_exactly_unchanged(registry):
    model = registry.model("base")
    hs = registry.sae("sae")
    edits = [
        Edit("clamp", torch.tensor([math.nan, 2.0]), sae=hs, latent=3),
        Edit(
            "ablate",
            torch.tensor([math.nan, 1.0]),
            vector=torch.randn(model.d_model),
            hook="transformer.h.0",
        ),
    ]
    ids = model.tokenizer(PROMPT)["input_ids"]
    with torch.no_grad():
        rows_ = generate(model, [ids, ids], max_new_tokens=8, steering=Interventions(edits))
        alone = generate(model, [ids], max_new_tokens=8)
    assert rows_[0] == alone[0]
