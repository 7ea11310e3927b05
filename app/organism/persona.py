"""Model-facing measurements behind the persona-latent analysis: answer-token diffs,
residual-stream mean-difference directions, and latent activation on prompts. Every
function reads models through the app's registry objects."""

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

from app.analysis.evaluate import noise_stream
from app.engine.activations import hook_values, latent_activations
from app.engine.generation import generate
from app.engine.hooks import HookPoint, hook
from app.engine.registry import HostedModel, HostedSAE


def answer_ids(
    model: HostedModel,
    prompts: list[list[int]],
    *,
    seed: int,
    max_new_tokens: int,
    temperature: float = 1.0,
    batch_size: int = 64,
) -> list[list[int]]:
    """One sampled answer (token ids, up to the end of turn) per prompt."""
    out: list[list[int]] = []
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start : start + batch_size]
        out += generate(
            model,
            chunk,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            seed=seed,
            streams=[noise_stream(p, 0) for p in chunk],
        )
    return out


@torch.no_grad()
def answer_token_sums(
    model: HostedModel,
    sae: HostedSAE,
    prompts: list[list[int]],
    answers: list[list[int]],
    batch_size: int = 32,
) -> tuple[np.ndarray, np.ndarray]:
    """Per prompt, the sum of each latent's activation over the answer's tokens (prompt
    tokens excluded) and the number of answer tokens: ((n, d_sae), (n,))."""
    sums = np.zeros((len(prompts), sae.d_sae), dtype=np.float64)
    counts = np.zeros(len(prompts), dtype=np.int64)
    for start in range(0, len(prompts), batch_size):
        rows = [
            p + a
            for p, a in zip(
                prompts[start : start + batch_size],
                answers[start : start + batch_size],
                strict=True,
            )
        ]
        ids, mask = model.pad(rows)
        acts = latent_activations(model, sae, ids, mask).cpu().double()  # (b, s, d_sae)
        for i, (p, a) in enumerate(
            zip(
                prompts[start : start + batch_size],
                answers[start : start + batch_size],
                strict=True,
            )
        ):
            if a:
                sums[start + i] = acts[i, len(p) : len(p) + len(a)].sum(0).numpy()
                counts[start + i] = len(a)
    return sums, counts


def delta(sums_tuned, counts_tuned, sums_base, counts_base) -> np.ndarray:
    """Answer-token mean activation, fine-tuned minus base: (d_sae,)."""
    return sums_tuned.sum(0) / max(1, counts_tuned.sum()) - sums_base.sum(0) / max(
        1, counts_base.sum()
    )


@torch.no_grad()
def residual_mean(
    model: HostedModel, point: HookPoint, prompts: list[list[int]], answers: list[list[int]]
) -> tuple[torch.Tensor, int]:
    """Mean residual vector at hook point `point` over answer tokens: ((d_model,), tokens)."""
    total, count = None, 0
    for start in range(0, len(prompts), 32):
        ps, ans = prompts[start : start + 32], answers[start : start + 32]
        rows = [p + a for p, a in zip(ps, ans, strict=True)]
        ids, mask = model.pad(rows)
        h = hook_values(model, point, ids, mask).float().cpu()  # (b, s, d_model)
        for i, (p, a) in enumerate(zip(ps, ans, strict=True)):
            if a:
                part = h[i, len(p) : len(p) + len(a)].sum(0)
                total = part if total is None else total + part
                count += len(a)
    return (total / max(1, count) if total is not None else torch.zeros(0)), count


@torch.no_grad()
def prompt_mean_activation(
    model: HostedModel, sae: HostedSAE, latent: int, prompts: list[list[int]]
) -> list[float]:
    """Each prompt's mean activation of `latent` over its tokens, BOS excluded."""
    out = []
    bos = model.tokenizer.bos_token_id
    for start in range(0, len(prompts), 32):
        chunk = prompts[start : start + 32]
        ids, mask = model.pad(chunk)
        acts = latent_activations(model, sae, ids, mask)[..., latent].cpu()  # (b, s)
        for i, p in enumerate(chunk):
            first = 1 if p and p[0] == bos else 0
            vals = acts[i, first : len(p)]
            out.append(float(vals.mean()) if len(vals) else 0.0)
    return out


@contextmanager
def ablated(model: HostedModel, point: HookPoint, direction: torch.Tensor) -> Iterator[None]:
    """Remove the component along `direction` from the hook point's value at every
    position, for the duration of the block (directional ablation)."""
    u = direction.float() / direction.float().norm().clamp_min(1e-12)  # (d_model,)

    def edit(value: torch.Tensor) -> torch.Tensor:  # (batch, seq, d_model)
        uu = u.to(value.device, value.dtype)
        return value - (value @ uu)[..., None] * uu

    with hook(model.hf, point, edit):
        yield
