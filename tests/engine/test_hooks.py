"""Hook resolution: TransformerLens names map onto the right HF modules for each family."""

import pytest
import torch
from transformers import (
    AutoModelForCausalLM,
    Gemma2Config,
    GPTNeoXConfig,
    LlamaConfig,
    Qwen2Config,
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


FAMILIES = {
    "llama": lambda: tiny(LlamaConfig, num_key_value_heads=2),
    "qwen2": lambda: tiny(Qwen2Config, num_key_value_heads=2),
    "gemma2": lambda: tiny(Gemma2Config, num_key_value_heads=2, head_dim=8),
    "gpt_neox": lambda: tiny(GPTNeoXConfig, use_parallel_residual=False),
}


class _Handle:
    """Just enough of HostedModel for hook_values."""

    def __init__(self, hf):
        self.hf = hf
        self.device = torch.device("cpu")


@pytest.mark.parametrize("family", FAMILIES)
def test_resid_hooks_match_hidden_states(family):
    model = FAMILIES[family]()
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
