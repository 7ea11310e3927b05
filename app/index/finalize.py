"""Turns an accumulated IndexState into per-latent dashboard records: statistics, the
histogram, activation-interval bins with examples, logit effects and decoder neighbours."""

from collections.abc import Iterator

import torch

from app.engine.hooks import family_of
from app.engine.registry import HostedModel, HostedSAE
from app.index.builder import (
    EX_BUCKETS,
    HIST_BUCKETS,
    HIST_PER_OCTAVE,
    WINDOW,
    IndexParams,
    IndexState,
    bucket_edges,
)

LOGIT_K = 10
NEIGHBOURS = 10


@torch.no_grad()
def logit_effects(model: HostedModel, sae: HostedSAE, k: int = LOGIT_K) -> tuple[torch.Tensor, ...]:
    """Each latent's decoder direction through the unembedding (with the final norm's scale
    folded in, as TransformerLens does): the output tokens it promotes and suppresses.
    Returns (top values, top ids, bottom values, bottom ids), each (d_sae, k)."""
    w_dec = sae.sae.W_dec.detach().float()  # (d_sae, d_model)
    family = family_of(model.hf)
    if family is not None:
        norm = dict(model.hf.named_modules()).get(family.final_norm)
        weight = getattr(norm, "weight", None)
        if weight is not None:
            w_dec = w_dec * weight.detach().float().to(w_dec.device)
    w_u = model.hf.get_output_embeddings().weight.detach().float().to(w_dec.device)  # (V, d)
    tops, top_ids, bots, bot_ids = [], [], [], []
    for chunk in w_dec.split(1024):
        logits = chunk @ w_u.T  # (c, V)
        v, i = logits.topk(k, dim=1)
        tops.append(v)
        top_ids.append(i)
        v, i = logits.topk(k, dim=1, largest=False)
        bots.append(v)
        bot_ids.append(i)
    return torch.cat(tops), torch.cat(top_ids), torch.cat(bots), torch.cat(bot_ids)


@torch.no_grad()
def decoder_neighbours(sae: HostedSAE, k: int = NEIGHBOURS) -> tuple[torch.Tensor, torch.Tensor]:
    """The k latents with the most similar decoder directions (cosine), per latent."""
    w = sae.sae.W_dec.detach().float()
    w = w / w.norm(dim=1, keepdim=True).clamp_min(1e-12)
    k = min(k, w.shape[0] - 1)
    values, ids = [], []
    for start in range(0, w.shape[0], 2048):
        sims = w[start : start + 2048] @ w.T  # (c, d_sae)
        rows = torch.arange(sims.shape[0], device=w.device)
        sims[rows, rows + start] = -2.0  # not itself
        v, i = sims.topk(k, dim=1)
        values.append(v)
        ids.append(i)
    return torch.cat(values), torch.cat(ids)


def interval_bins(
    max_value: float,
    counts: list[int],
    examples: list[dict],
    top: list[dict],
    n_bins: int,
    per_bin: int,
) -> list[dict]:
    """`n_bins` equal-width intervals over (0, max]. Each interval's edges are snapped to the
    histogram grid (8 buckets per octave), so its `fraction` of the nonzero activations is
    exact for the edges it reports. Examples: sampled contexts whose value lies inside."""
    if max_value <= 0:
        return []
    edges = bucket_edges(HIST_PER_OCTAVE, HIST_BUCKETS)
    total = sum(counts) or 1
    bins = []
    prev = 0
    for j in range(1, n_bins + 1):
        target = max_value * j / n_bins
        # The first grid edge at or above the target closes this interval.
        cut = next((i for i, e in enumerate(edges) if e >= target), len(edges) - 1)
        cut = max(cut, prev) if j < n_bins else len(edges) - 1
        low = edges[prev] if prev > 0 else 0.0
        high = edges[cut] if j < n_bins else max_value
        inside = [e for e in examples if low < e["value"] <= high]
        inside += [
            t
            for t in top
            if low < t["value"] <= high and all(t["context"] != e["context"] for e in inside)
        ]
        bins.append(
            {
                "low": low,
                "high": high,
                "fraction": sum(counts[prev:cut]) / total
                if j < n_bins
                else sum(counts[prev:]) / total,
                "examples": inside[:per_bin],
            }
        )
        prev = cut
    return bins


def latent_records(
    model: HostedModel, sae: HostedSAE, state: IndexState, params: IndexParams
) -> Iterator[dict]:
    """One dashboard record per latent (snippets reference contexts by id)."""
    tok = model.tokenizer
    top_v, top_i, bot_v, bot_i = (x.cpu() for x in logit_effects(model, sae))
    nb_v, nb_i = (x.cpu() for x in decoder_neighbours(sae))
    n_tokens = max(state.n_tokens, 1)
    top_values = state.top_values.cpu()
    top_ctx = state.top_ctx.cpu()
    top_tokens = state.top_tokens.cpu()
    hist = state.hist.cpu()
    sums = state.sums().cpu()
    ex_ctx = state.ex_ctx.view(-1, EX_BUCKETS).cpu()
    ex_pos = state.ex_pos.view(-1, EX_BUCKETS).cpu()
    ex_val = state.ex_value.view(-1, EX_BUCKETS).cpu()
    ex_win = state.ex_window.view(-1, EX_BUCKETS, 2 * WINDOW + 1).cpu()
    edges = bucket_edges(HIST_PER_OCTAVE, HIST_BUCKETS)
    vocab = {}

    def token(i: int) -> str:
        if i not in vocab:
            vocab[i] = tok.decode([i])
        return vocab[i]

    for latent in range(sae.d_sae):
        snippets = [
            {"context": int(c), "max_value": float(v), "values": top_tokens[latent, r].tolist()}
            for r, (v, c) in enumerate(zip(top_values[latent], top_ctx[latent], strict=True))
            if c >= 0 and v > 0
        ]
        examples = [
            {
                "context": int(ex_ctx[latent, b]),
                "position": int(ex_pos[latent, b]),
                "value": float(ex_val[latent, b]),
                "window": ex_win[latent, b].tolist(),
            }
            for b in range(EX_BUCKETS)
            if ex_ctx[latent, b] >= 0
        ]
        examples.sort(key=lambda e: float(e["value"]))  # type: ignore[arg-type]
        top_as_examples = [
            {
                "context": s["context"],
                "position": int(torch.tensor(s["values"]).argmax()),
                "value": s["max_value"],
                "window": None,
            }
            for s in snippets
        ]
        counts = hist[latent].tolist()
        nz = [(edges[i], edges[i + 1], c) for i, c in enumerate(counts) if c > 0]
        n_active = int(state.nonzero[latent])
        yield {
            "latent": latent,
            "density": n_active / n_tokens,
            "n_active": n_active,
            "max_activation": float(state.max[latent]),
            "mean_activation": float(sums[latent]) / n_tokens,
            "mean_active": float(sums[latent]) / max(n_active, 1),
            "histogram": {
                "scale": "log2",
                "per_octave": HIST_PER_OCTAVE,
                "low": [a for a, _, _ in nz],
                "high": [b for _, b, _ in nz],
                "counts": [c for _, _, c in nz],
            },
            "bins": interval_bins(
                float(state.max[latent]),
                counts,
                examples,
                top_as_examples,
                params.n_bins,
                params.bin_examples,
            ),
            "logits": {
                "positive": [
                    {"token": token(int(i)), "token_id": int(i), "value": float(v)}
                    for v, i in zip(top_v[latent], top_i[latent], strict=True)
                ],
                "negative": [
                    {"token": token(int(i)), "token_id": int(i), "value": float(v)}
                    for v, i in zip(bot_v[latent], bot_i[latent], strict=True)
                ],
            },
            "neighbors": [
                {"latent": int(i), "cosine": float(v)}
                for v, i in zip(nb_v[latent], nb_i[latent], strict=True)
            ],
            "snippets": snippets,
        }
