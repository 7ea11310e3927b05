"""Activations equal what SAELens computes through its own wrappers on the same text."""

import pytest
import torch
from sae_lens import HookedSAETransformer
from sae_lens.load_model import load_model
from transformer_lens import HookedTransformerConfig
from transformer_lens.pretrained.weight_conversions import convert_gpt2_weights

from app.engine.activations import latent_activations, prompt_activations

TEXT = "User: If you could have any one wish, what would you wish for?\nAssistant: I would"


def tokens(model):
    return torch.tensor([model.encode(TEXT)])


def hooked_transformer(hf, center: bool) -> HookedSAETransformer:
    c = hf.config
    cfg = HookedTransformerConfig(
        n_layers=c.n_layer,
        d_model=c.n_embd,
        d_head=c.n_embd // c.n_head,
        n_heads=c.n_head,
        d_mlp=4 * c.n_embd,
        d_vocab=c.vocab_size,
        n_ctx=c.n_positions,
        act_fn="gelu_new",
        normalization_type="LN",
        default_prepend_bos=False,
    )
    model = HookedSAETransformer(cfg)
    model.load_and_process_state_dict(
        convert_gpt2_weights(hf, cfg),
        fold_ln=center,
        center_writing_weights=center,
        center_unembed=False,
        fold_value_biases=False,
    )
    return model.eval()


def test_module_hook_matches_hooked_proxy_lm(registry, world_config):
    model, hs = registry.model("base"), registry.sae("sae")
    proxy = load_model(
        "AutoModelForCausalLM",
        str(world_config.parent / "base"),
        device="cpu",
        hook_names=[hs.hook_name],
    )
    ids = tokens(model)
    with torch.no_grad():
        _, cache = proxy.run_with_cache(ids, names_filter=[hs.hook_name])
        expected = hs.sae.encode(cache[hs.hook_name])
    ours = latent_activations(model, hs, ids)
    assert (expected > 0).sum() > 0
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("sae_id,center", [("sae-tl", False), ("sae-mid", True)])
def test_transformer_lens_hook_matches_hooked_sae_transformer(registry, sae_id, center):
    model, hs = registry.model("base"), registry.sae(sae_id)
    assert hs.center is center
    tl = hooked_transformer(model.hf, center)
    tl.add_sae(hs.sae)
    ids = tokens(model)
    with torch.no_grad():
        _, cache = tl.run_with_cache(ids)
    expected = cache[f"{hs.hook_name}.hook_sae_acts_post"]
    tl.reset_saes()
    ours = latent_activations(model, hs, ids)
    assert (expected > 0).sum() > 0
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=0)


def test_centering_matters(registry):
    """Without centring, the SAE trained on centred residuals would see different inputs."""
    model, hs = registry.model("base"), registry.sae("sae-mid")
    ids = tokens(model)
    centred = latent_activations(model, hs, ids)
    hs.center = False
    try:
        raw = latent_activations(model, hs, ids)
    finally:
        hs.center = True
    assert not torch.allclose(centred, raw, atol=1e-3)


def test_prompt_activations_shape_and_order(registry):
    model, hs = registry.model("base"), registry.sae("sae")
    ids = model.encode(TEXT)
    out = prompt_activations(model, hs, ids, top_k=5, latents=[0, 7])
    assert out["token_ids"] == ids and len(out["tokens"]) == len(ids)
    assert out["tokens"][0] == "<|endoftext|>"  # prepended BOS, as the SAE was trained
    full = latent_activations(model, hs, torch.tensor([ids]))[0]
    for pos, row in enumerate(out["top"]):
        values = [r["value"] for r in row]
        assert values == sorted(values, reverse=True) and all(v > 0 for v in values)
        expected = full[pos].topk(5)
        assert [r["latent"] for r in row] == expected.indices[: len(row)].tolist()
    assert out["latents"]["7"] == pytest.approx(full[:, 7].tolist(), abs=1e-6)


def test_adapter_changes_activations(registry):
    hs = registry.sae("sae")
    ids = tokens(registry.model("base"))
    with registry.activate("base") as base:
        a = latent_activations(base, hs, ids)
    with registry.activate("tuned") as tuned:
        b = latent_activations(tuned, hs, ids)
    with registry.activate("base") as base:
        c = latent_activations(base, hs, ids)
    assert not torch.allclose(a, b)
    torch.testing.assert_close(a, c)
