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


@torch.no_grad()
def mean_activations_of(
    model: HostedModel,
    sae: HostedSAE,
    prompts: list[list[int]],
    owners: list[int],
    n: int,
    batch_size: int = 32,
) -> list[tuple[torch.Tensor, int]]:
    """`mean_activations` for `n` requests at once: prompt i belongs to request
    `owners[i]`; every forward pass takes `batch_size` prompts whoever they belong to (right
    padded), and each request sums only its own prompts' real tokens."""
    totals = [torch.zeros(sae.d_sae, dtype=torch.float64) for _ in range(n)]
    counts = [0] * n
    bos = model.tokenizer.bos_token_id
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start : start + batch_size]
        owner = torch.tensor(owners[start : start + batch_size])
        ids, mask = model.pad(chunk)
        acts = latent_activations(model, sae, ids, mask).cpu().double()  # (b, s, d_sae)
        keep = mask.bool()
        if bos is not None:
            keep[:, 0] &= ids[:, 0] != bos
        for j in owner.unique().tolist():
            mine = keep & (owner == j)[:, None]
            totals[j] += acts[mine].sum(0)
            counts[j] += int(mine.sum())
    return [(t / max(c, 1), c) for t, c in zip(totals, counts, strict=True)]


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
    return _ranked(base_id, finetuned_id, sae, len(prompts), n_tokens, base_mean, tuned_mean, top_n)


def compare_batch(
    registry: Registry,
    base_id: str,
    finetuned_id: str,
    sae: HostedSAE,
    jobs: list[tuple[list[list[int]], int]],
) -> list[dict]:
    """Several requests' diffs of the same models and SAE, each (prompts, top_n): the
    forward passes of each model take every request's prompts together. One request alone
    runs exactly as `compare_models`."""
    if len(jobs) == 1:
        return [compare_models(registry, base_id, finetuned_id, sae, *jobs[0])]
    prompts = [p for job, _ in jobs for p in job]
    owners = [j for j, (job, _) in enumerate(jobs) for _ in job]
    with registry.activate(base_id) as base:
        based = mean_activations_of(base, sae, prompts, owners, len(jobs))
    with registry.activate(finetuned_id) as tuned:
        tuned_ = mean_activations_of(tuned, sae, prompts, owners, len(jobs))
    return [
        _ranked(base_id, finetuned_id, sae, len(job), b[1], b[0], t[0], top_n)
        for (job, top_n), b, t in zip(jobs, based, tuned_, strict=True)
    ]


def _ranked(
    base_id: str,
    finetuned_id: str,
    sae: HostedSAE,
    n_prompts: int,
    n_tokens: int,
    base_mean: torch.Tensor,
    tuned_mean: torch.Tensor,
    top_n: int,
) -> dict:
    delta = tuned_mean - base_mean
    order = torch.argsort(delta, descending=True)[:top_n]
    return {
        "base": base_id,
        "finetuned": finetuned_id,
        "sae": sae.id,
        "n_prompts": n_prompts,
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
