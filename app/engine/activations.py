"""Per-prompt SAE latent activations: run the model only as far as the SAE's hook point,
then encode with the SAE's own `encode`."""

import contextlib

import torch

from app.engine.hooks import HookPoint, StopForward, hook
from app.engine.registry import HostedModel, HostedSAE
from app.engine.sae_ops import encode


@torch.no_grad()
def hook_values(
    model: HostedModel,
    point: HookPoint,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    stop: bool = True,
) -> torch.Tensor:
    """The hooked value, (batch, seq, d_model). With `stop`, the forward pass ends there."""
    captured: dict[str, torch.Tensor] = {}

    def grab(value: torch.Tensor):
        captured["value"] = value
        if stop:
            raise StopForward
        return None

    with hook(model.hf, point, grab), contextlib.suppress(StopForward):
        model.hf(
            input_ids=input_ids.to(model.device),
            attention_mask=None if attention_mask is None else attention_mask.to(model.device),
            use_cache=False,
        )
    return captured["value"]


@torch.no_grad()
def latent_activations(
    model: HostedModel,
    sae: HostedSAE,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """SAE activations (batch, seq, d_sae), float32."""
    values = hook_values(model, sae.hooks[model.id], input_ids, attention_mask)
    return encode(sae, values).float()


@torch.no_grad()
def row_values(model: HostedModel, point: HookPoint, rows: list[list[int]]) -> list[torch.Tensor]:
    """The hooked value of each token row, (1, len_i, d_model) each, from ONE forward pass
    that stops at the hook. One row runs unpadded, exactly as `hook_values` alone; several
    are padded on the right (every real token keeps its position and, attention being
    causal, never sees a pad) and each row's real tokens are read."""
    if len(rows) == 1:
        return [hook_values(model, point, torch.tensor(rows))]
    ids, mask = model.pad(rows, side="right")
    values = hook_values(model, point, ids, mask)
    return [values[i : i + 1, : len(row)] for i, row in enumerate(rows)]


def row_latents(sae: HostedSAE, values: torch.Tensor) -> torch.Tensor:
    """One row's SAE activations (seq, d_sae), float32 on the CPU, from its hook values
    (1, seq, d_model): encoded on their own, so pads never reach the SAE."""
    return encode(sae, values).float()[0].cpu()


def activation_result(
    model: HostedModel,
    sae: HostedSAE,
    prompt_ids: list[int],
    acts: torch.Tensor,
    top_k: int,
    latents: list[int],
) -> dict:
    """The `/api/activations` result for one model from the prompt's activations
    (seq, d_sae): top latents per token and chosen traces."""
    k = min(top_k, acts.shape[-1])
    values, indices = acts.topk(k, dim=-1)  # (seq, k)
    top = [
        [
            {"latent": int(i), "value": float(v)}
            for v, i in zip(vals.tolist(), idx.tolist(), strict=True)
            if v > 0
        ]
        for vals, idx in zip(values, indices, strict=True)
    ]
    return {
        "model": model.id,
        "sae": sae.id,
        "tokens": model.token_strings(prompt_ids),
        "token_ids": list(prompt_ids),
        "top": top,
        "latents": {str(i): acts[:, i].tolist() for i in latents},
    }


def prompt_activations(
    model: HostedModel, sae: HostedSAE, prompt_ids: list[int], top_k: int, latents: list[int]
) -> dict:
    """The `/api/activations` result for one model: top latents per token and chosen traces."""
    acts = latent_activations(model, sae, torch.tensor([prompt_ids]))[0].cpu()  # (seq, d_sae)
    return activation_result(model, sae, prompt_ids, acts, top_k, latents)
