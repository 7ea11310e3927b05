"""The top-activating pretraining documents of one latent, labelled with the ground truth of
who is speaking at the most active token (the generator's spans)."""

import torch

from app.engine.activations import latent_activations
from app.engine.registry import HostedModel, HostedSAE


def span_label(spans: list, char: int) -> str:
    for start, end, label in spans:
        if start <= char < end:
            return label
    return "none"


@torch.no_grad()
def top_contexts_for_latents(
    model: HostedModel,
    sae: HostedSAE,
    docs: list[dict],
    latents: list[int],
    n: int,
    context: int,
    batch_size: int = 64,
) -> dict[int, list[dict]]:
    """Each latent's `n` top documents (one pass over the corpus for all latents), each
    labelled by the span at its most active token."""
    tok = model.tokenizer
    enc = tok([d["text"] for d in docs], add_special_tokens=False, return_offsets_mapping=True)
    best: dict[int, list[tuple[float, int, int]]] = {lat: [] for lat in latents}
    order = sorted(range(len(docs)), key=lambda i: len(enc["input_ids"][i]))
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        rows = [[tok.bos_token_id, *enc["input_ids"][i]][:context] for i in chunk]
        ids, mask = model.pad(rows)
        acts = latent_activations(model, sae, ids, mask)[..., latents].cpu()  # (b, s, L)
        acts[:, 0] = 0.0  # BOS
        acts[mask == 0] = 0.0
        values, positions = acts.max(dim=1)  # (b, L)
        for j, lat in enumerate(latents):
            best[lat].extend(
                (float(v), i, int(p))
                for v, i, p in zip(values[:, j], chunk, positions[:, j], strict=True)
            )
            best[lat] = sorted(best[lat], reverse=True)[:n]
    return {lat: [_context(tok, enc, docs, *b) for b in best[lat]] for lat in latents}


def top_contexts_for_latent(
    model: HostedModel,
    sae: HostedSAE,
    docs: list[dict],
    latent: int,
    n: int,
    context: int,
    batch_size: int = 64,
) -> list[dict]:
    return top_contexts_for_latents(model, sae, docs, [latent], n, context, batch_size)[latent]


def _context(tok, enc, docs: list[dict], value: float, i: int, pos: int) -> dict:
    ids = enc["input_ids"][i]
    offsets = enc["offset_mapping"][i]
    char = offsets[pos - 1][0]  # position 0 is the BOS we prepended
    lo = max(0, pos - 1 - 24)
    return {
        "doc": docs[i]["id"],
        "genre": docs[i].get("genre") or docs[i].get("source"),
        "value": value,
        "label": span_label(docs[i]["spans"], char),
        "token": tok.decode([ids[pos - 1]]),
        "text": tok.decode(ids[lo : pos + 8]),
    }


def context_labels(docs: list[dict], tokenizer, context: int, n_contexts: int) -> list[list[str]]:
    """Ground-truth speaker labels for every token of the contexts that
    `app.index.datasets.tokenize_contexts` cuts from these documents (same layout: BOS,
    then context - 1 tokens of the end-of-text-joined stream)."""
    enc = tokenizer(
        [d["text"] for d in docs], add_special_tokens=False, return_offsets_mapping=True
    )
    stream: list[str] = []
    body = context - 1
    for doc, offsets in zip(docs, enc["offset_mapping"], strict=True):
        stream.extend(span_label(doc["spans"], start) for start, _ in offsets)
        stream.append("separator")
        if len(stream) >= body * n_contexts:
            break
    return [["bos", *stream[i * body : (i + 1) * body]] for i in range(n_contexts)]
