"""Model diffing (the method of Wang et al.): rank SAE latents by how much their mean
activation rises from the base model to the fine-tuned model on the same prompts."""

import torch

from app.engine.activations import latent_activations
from app.engine.registry import HostedModel, HostedSAE, Registry


@torch.no_grad()
def mean_activations(
    model: HostedModel, sae: HostedSAE, prompts: list[list[int]], batch_size: int = 32
) -> tuple[torch.Tensor, int]:
    """Mean SAE activation per latent over every token of every prompt, skipping the
    BOS token and padding. Returns ((d_sae,), number of tokens averaged)."""
    total = torch.zeros(sae.d_sae, dtype=torch.float64)
    count = 0
    bos = model.tokenizer.bos_token_id
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start : start + batch_size]
        ids, mask = model.pad(chunk)
        acts = latent_activations(model, sae, ids, mask).cpu().double()  # (b, s, d_sae)
        keep = mask.bool()
        if bos is not None:
            keep[:, 0] &= ids[:, 0] != bos
        total += acts[keep].sum(0)
        count += int(keep.sum())
    return total / max(count, 1), count


def compare_models(
    registry: Registry,
    base_id: str,
    finetuned_id: str,
    sae: HostedSAE,
    prompts: list[list[int]],
    top_n: int,
) -> dict:
    with registry.activate(base_id) as base:
        base_mean, n_tokens = mean_activations(base, sae, prompts)
    with registry.activate(finetuned_id) as tuned:
        tuned_mean, _ = mean_activations(tuned, sae, prompts)
    delta = tuned_mean - base_mean
    order = torch.argsort(delta, descending=True)[:top_n]
    return {
        "base": base_id,
        "finetuned": finetuned_id,
        "sae": sae.id,
        "n_prompts": len(prompts),
        "n_tokens": n_tokens,
        "latents": [
            {
                "latent": int(i),
                "base_mean": float(base_mean[i]),
                "finetuned_mean": float(tuned_mean[i]),
                "delta": float(delta[i]),
            }
            for i in order.tolist()
        ],
    }
