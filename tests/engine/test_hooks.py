"""Hook resolution: TransformerLens names map onto the right HF modules for each family."""

from dataclasses import replace

import pytest
import torch
from transformers import (
    AutoModelForCausalLM,
    Gemma2Config,
    Gemma3Config,
    Gemma3ForConditionalGeneration,
    Gemma3TextConfig,
    GPTNeoXConfig,
    LlamaConfig,
    MistralConfig,
    Olmo2Config,
    OlmoConfig,
    Phi3Config,
    PhiConfig,
    Qwen2Config,
    Qwen3Config,
)

from app.engine.activations import hook_values
from app.engine.hooks import list_hook_points, resolve_hook
from app.errors import InvalidRequest

TINY = dict(
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=3,
    num_attention_heads=4,
    vocab_size=128,
    max_position_embeddings=64,
)


def tiny(config_cls, **extra):
    torch.manual_seed(0)
    cfg = config_cls(**{**TINY, **extra})
    return AutoModelForCausalLM.from_config(cfg).eval()


def gemma3_multimodal():
    torch.manual_seed(0)
    cfg = Gemma3Config(
        text_config={**TINY, "num_key_value_heads": 2, "head_dim": 8},
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 4,
            "image_size": 28,
            "patch_size": 14,
        },
    )
    return Gemma3ForConditionalGeneration(cfg).eval()


FAMILIES = {
    "llama": lambda: tiny(LlamaConfig, num_key_value_heads=2),
    "qwen2": lambda: tiny(Qwen2Config, num_key_value_heads=2),
    "qwen3": lambda: tiny(Qwen3Config, num_key_value_heads=2, head_dim=8),
    "mistral": lambda: tiny(MistralConfig, num_key_value_heads=2),
    "gemma2": lambda: tiny(Gemma2Config, num_key_value_heads=2, head_dim=8),
    "gemma3_text": lambda: tiny(Gemma3TextConfig, num_key_value_heads=2, head_dim=8),
    "gemma3": gemma3_multimodal,
    "gpt_neox": lambda: tiny(GPTNeoXConfig, use_parallel_residual=False),
    "phi3": lambda: tiny(Phi3Config, num_key_value_heads=2, pad_token_id=0),
    "olmo": lambda: tiny(OlmoConfig, num_key_value_heads=2, pad_token_id=0),
    "olmo2": lambda: tiny(Olmo2Config, num_key_value_heads=2, pad_token_id=0),
}
PARALLEL = {
    "phi": lambda: tiny(PhiConfig, pad_token_id=0),
    "gpt_neox-parallel": lambda: tiny(GPTNeoXConfig, use_parallel_residual=True),
}


class _Handle:
    """Just enough of HostedModel for hook_values."""

    def __init__(self, hf):
        self.hf = hf
        self.device = torch.device("cpu")


@pytest.mark.parametrize("family", [*FAMILIES, *PARALLEL])
def test_resid_hooks_match_hidden_states(family):
    """blocks.L.hook_resid_pre / _post read what TransformerLens calls them: the residual
    stream entering and leaving block L, i.e. transformers' hidden_states[L] and [L + 1]."""
    model = {**FAMILIES, **PARALLEL}[family]()
    ids = torch.randint(0, 128, (2, 7))
    with torch.no_grad():
        hidden = model(input_ids=ids, output_hidden_states=True).hidden_states
    handle = _Handle(model)
    for layer in range(2):
        pre = hook_values(handle, resolve_hook(model, f"blocks.{layer}.hook_resid_pre"), ids)
        post = hook_values(handle, resolve_hook(model, f"blocks.{layer}.hook_resid_post"), ids)
        torch.testing.assert_close(pre, hidden[layer])
        torch.testing.assert_close(post, hidden[layer + 1])


@pytest.mark.parametrize("family", FAMILIES)
def test_resid_mid_is_resid_pre_plus_attention_output(family):
    model = FAMILIES[family]()
    ids = torch.randint(0, 128, (1, 6))
    handle = _Handle(model)
    pre = hook_values(handle, resolve_hook(model, "blocks.1.hook_resid_pre"), ids)
    attn = hook_values(handle, resolve_hook(model, "blocks.1.hook_attn_out"), ids)
    mid = hook_values(handle, resolve_hook(model, "blocks.1.hook_resid_mid"), ids)
    mlp = hook_values(handle, resolve_hook(model, "blocks.1.hook_mlp_out"), ids)
    post = hook_values(handle, resolve_hook(model, "blocks.1.hook_resid_post"), ids)
    torch.testing.assert_close(mid, pre + attn)
    torch.testing.assert_close(post, mid + mlp)


def test_parallel_residual_has_no_resid_mid():
    model = tiny(GPTNeoXConfig, use_parallel_residual=True)
    with pytest.raises(InvalidRequest, match="parallel"):
        resolve_hook(model, "blocks.0.hook_resid_mid")
    names = [p["name"] for p in list_hook_points(model)]
    assert "blocks.0.hook_resid_pre" in names and "blocks.0.hook_resid_mid" not in names


def test_unsupported_names_list_what_is_supported(registry):
    hf = registry.model("base").hf
    with pytest.raises(InvalidRequest, match="hook_resid_pre") as err:
        resolve_hook(hf, "blocks.0.attn.hook_z")
    assert "transformer.h.0" in err.value.message
    with pytest.raises(InvalidRequest, match=r"\[0, 3\)"):
        resolve_hook(hf, "blocks.9.hook_resid_pre")


def test_module_path_reads_the_module_output(registry):
    hf = registry.model("base").hf
    point = resolve_hook(hf, "transformer.h.1")
    assert point.side == "output" and point.layer == 1
    tl = resolve_hook(hf, "blocks.1.hook_resid_post")
    ids = torch.randint(0, 50, (1, 5))
    handle = _Handle(hf)
    torch.testing.assert_close(hook_values(handle, point, ids), hook_values(handle, tl, ids))


@pytest.mark.parametrize("family", PARALLEL)
def test_parallel_blocks_write_attention_and_mlp_beside_each_other(family):
    model = PARALLEL[family]()
    ids = torch.randint(0, 128, (1, 6))
    handle = _Handle(model)
    pre = hook_values(handle, resolve_hook(model, "blocks.1.hook_resid_pre"), ids)
    attn = hook_values(handle, resolve_hook(model, "blocks.1.hook_attn_out"), ids)
    mlp = hook_values(handle, resolve_hook(model, "blocks.1.hook_mlp_out"), ids)
    post = hook_values(handle, resolve_hook(model, "blocks.1.hook_resid_post"), ids)
    torch.testing.assert_close(post, pre + attn + mlp)


@pytest.mark.parametrize("family", FAMILIES)
def test_mlp_in_is_the_mlp_input(family):
    """blocks.L.hook_mlp_in (alias ln2.hook_normalized, where transcoders read) is what the
    MLP receives: feeding it through the MLP gives hook_mlp_out (before any post-norm)."""
    model = FAMILIES[family]()
    ids = torch.randint(0, 128, (1, 6))
    handle = _Handle(model)
    point = resolve_hook(model, "blocks.1.ln2.hook_normalized")
    assert replace(resolve_hook(model, "blocks.1.hook_mlp_in"), name=point.name) == point
    x = hook_values(handle, point, ids)
    mlp = dict(model.named_modules())[point.module]
    captured = {}
    h = mlp.register_forward_hook(lambda _m, _a, out: captured.setdefault("out", out))
    try:
        hook_values(handle, resolve_hook(model, "blocks.1.hook_resid_post"), ids)
    finally:
        h.remove()
    with torch.no_grad():
        torch.testing.assert_close(mlp(x), captured["out"])


def test_containers_are_refused_and_listing_names_d_model_outputs():
    model = FAMILIES["phi3"]()
    with pytest.raises(InvalidRequest, match="container of modules"):
        resolve_hook(model, "model.layers")
    names = [p["name"] for p in list_hook_points(model) if p["convention"] == "module"]
    assert names[:3] == ["model.layers.0", "model.layers.1", "model.layers.2"]
    assert "model" not in names and "model.layers" not in names
    assert not [n for n in names if n.endswith(("gate_up_proj", "qkv_proj"))]
