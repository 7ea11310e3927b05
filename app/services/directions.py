"""Residual-stream directions beside SAE latents: persona vectors and the convergent
misalignment direction (a mean difference of activations between contrasting texts, or
between a fine-tuned model and its base), an SAE latent's own direction, or an uploaded
vector. Each is stored with how it was made and compared with every SAE decoder on its
hook (`top_latents`)."""

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from app.db import directions as repo
from app.db.models import Direction
from app.db.runs import as_utc
from app.engine.activations import hook_values
from app.engine.hooks import HookPoint, resolve_hook
from app.engine.registry import HostedModel
from app.engine.sae_ops import decoder_direction, decoder_directions
from app.errors import InvalidRequest, NotFound
from app.schemas.directions import (
    LatentDirection,
    MeanDiff,
    ModelDiff,
    PromptCompletion,
    VectorDirection,
)
from app.services import annotations, provenance
from app.services.context import Context, off_loop

TOP_LATENTS = 10
BATCH = 16


# ------------------------------------------------------------------------------- where
def _place(ctx: Context, model_id: str, hook: str | None, sae: str | None, field: str):
    """(model, the hook's name, its HookPoint) for a direction's model and hook."""
    model = ctx.registry.model(model_id, field)
    if sae is not None:
        hs, _ = ctx.registry.sae_for(sae, model_id)
        return model, hs.hook_name, hs.hooks[model_id]
    assert hook is not None
    return model, hook, resolve_hook(model.hf, hook)


def _tokens(ctx: Context, model: HostedModel, text, chat: bool, positions: str, field: str):
    """(token ids, the positions averaged) of one text or {prompt, completion} pair."""
    engine = ctx.engine
    if isinstance(text, PromptCompletion):
        head = engine.tokenize(model, text.prompt, chat, field=f"{field}.prompt")
        tail = model.tokenizer(text.completion, add_special_tokens=False)["input_ids"]
        ids = head + tail
        if len(ids) > ctx.settings.max_prompt_tokens:
            raise InvalidRequest(
                f"{field}: {len(ids)} tokens is over the limit of {ctx.settings.max_prompt_tokens}",
                field=field,
            )
        start = len(head)
    else:
        if positions == "completion":
            raise InvalidRequest(
                f"positions: 'completion' averages the completion of {{prompt, completion}} "
                f"pairs, and {field} is a plain text",
                field="positions",
            )
        ids = engine.tokenize(model, text, chat, field=field)
        start = 0
    special = set(model.tokenizer.all_special_ids)
    keep = [p for p in range(start, len(ids)) if ids[p] not in special] or [len(ids) - 1]
    if positions == "last":
        keep = [len(ids) - 1]
    return ids, keep


@torch.no_grad()
def _mean(model: HostedModel, point: HookPoint, rows: list[tuple[list[int], list[int]]]):
    """The mean hook value over the chosen positions of every row, (d_model,) float64."""
    total, count = None, 0
    for start in range(0, len(rows), BATCH):
        chunk = rows[start : start + BATCH]
        ids, mask = model.pad([r for r, _ in chunk])
        values = hook_values(model, point, ids, mask).double().cpu()  # (b, s, d_model)
        for b, (_, keep) in enumerate(chunk):
            part = values[b, keep].sum(0)
            total = part if total is None else total + part
            count += len(keep)
    return total / max(count, 1)


# ------------------------------------------------------------------------------ methods
def _mean_diff(ctx: Context, body: MeanDiff):
    model, hook, point = _place(ctx, body.model, body.hook, body.sae, "model")
    sides = {}
    for name in ("positive", "negative"):
        texts = getattr(body, name)
        sides[name] = [
            _tokens(ctx, model, t, body.chat, body.positions, f"{name}[{i}]")
            for i, t in enumerate(texts)
        ]
    cost = sum(len(ids) for rows in sides.values() for ids, _ in rows)

    def work():
        with ctx.registry.activate(body.model) as live:
            return _mean(live, point, sides["positive"]) - _mean(live, point, sides["negative"])

    return model, hook, work, cost


def _model_diff(ctx: Context, body: ModelDiff):
    model, hook, point = _place(ctx, body.base, body.hook, body.sae, "base")
    tuned, _, tuned_point = _place(ctx, body.finetuned, body.hook, body.sae, "finetuned")
    rows = [
        _tokens(ctx, model, p, body.chat, "all", f"prompts[{i}]")
        for i, p in enumerate(body.prompts)
    ]
    cost = 2 * sum(len(ids) for ids, _ in rows)

    def work():
        with ctx.registry.activate(body.finetuned) as live:
            after = _mean(live, tuned_point, rows)
        with ctx.registry.activate(body.base) as live:
            before = _mean(live, point, rows)
        return after - before

    return model, hook, work, cost


def _latent(ctx: Context, body: LatentDirection):
    hs = ctx.registry.sae(body.sae)
    hs.check_latent(body.latent)
    model_id = body.model or next(iter(hs.hooks))
    model = ctx.registry.sae_for(body.sae, model_id)[1]
    hook = getattr(hs, "hook_name_out", None) or hs.hook_name  # where the SAE writes
    return model, hook, lambda: decoder_direction(hs, body.latent).double().cpu(), 0


def _vector(ctx: Context, body: VectorDirection):
    model, hook, _ = _place(ctx, body.model, body.hook, body.sae, "model")
    if len(body.values) != model.d_model:
        raise InvalidRequest(
            f"values: {len(body.values)} numbers, but model {model.id!r} has d_model "
            f"{model.d_model} at {hook!r}",
            field="values",
        )
    vector = torch.tensor(body.values, dtype=torch.float64)
    if not torch.isfinite(vector).all():
        raise InvalidRequest("values: every value must be a finite number", field="values")
    return model, hook, lambda: vector, 0


METHODS = {
    "mean_diff": _mean_diff,
    "model_diff": _model_diff,
    "latent": _latent,
    "vector": _vector,
}


# ----------------------------------------------------------------------------- compare
def top_latents(ctx: Context, model_id: str, hook: str, vector: torch.Tensor) -> list[dict]:
    """For every SAE of this model on this hook, its TOP_LATENTS decoder directions most
    aligned with `vector` (cosine, highest first)."""
    out = []
    direction = vector.float()
    norm = float(direction.norm())
    for hs in ctx.registry.saes.values():
        on_hook = getattr(hs, "hook_name_out", None) or hs.hook_name
        if model_id not in hs.hooks or on_hook != hook or norm == 0:
            continue
        try:
            dirs = hs._all_directions  # computed once per SAE
        except AttributeError:
            dirs = hs._all_directions = decoder_directions(hs)
        if dirs.shape[1] != direction.shape[0]:
            continue
        cos = (dirs @ direction) / (dirs.norm(dim=1).clamp_min(1e-12) * norm)
        values, indices = cos.topk(min(TOP_LATENTS, len(cos)))
        out += [
            {"sae": hs.id, "latent": int(i), "cosine": float(v)}
            for v, i in zip(values, indices, strict=True)
        ]
    return out


def public(ctx: Context, row: Direction) -> dict[str, Any]:
    vector = torch.from_numpy(np.frombuffer(row.vector, dtype="<f4").copy())
    return {
        "id": row.id,
        "name": row.name,
        "method": row.method,
        "model": row.model_id,
        "hook": row.hook,
        "d_model": row.d_model,
        "norm": row.norm,
        "sha256": row.sha256,
        "created_at": as_utc(row.created_at),
        "request": row.request,
        "provenance": row.provenance,
        "top_latents": top_latents(ctx, row.model_id, row.hook, vector),
    }


# -------------------------------------------------------------------------------- uses
async def create(ctx: Context, body) -> dict[str, Any]:
    """Compute the direction (model work on the device worker) and store it."""
    model, hook, work, cost = METHODS[body.method](ctx, body)
    vector = (await ctx.worker.run(work, cost=ctx.engine.admit(cost))).float()
    raw = vector.numpy().astype("<f4").tobytes()
    saes = [body.sae] if getattr(body, "sae", None) else []
    models = [
        m
        for m in (
            getattr(body, "model", None),
            getattr(body, "base", None),
            getattr(body, "finetuned", None),
            model.id,
        )
        if m
    ]
    record = {
        "models": {m: ctx.registry.model(m).fingerprint for m in dict.fromkeys(models)},
        "saes": {s: ctx.registry.sae(s).fingerprint for s in saes},
        **provenance.environment(ctx),
    }

    def store():
        with ctx.database.session() as session:
            return repo.create_direction(
                session,
                name=body.name or f"{body.method} on {model.id} at {hook}",
                method=body.method,
                model_id=model.id,
                hook=hook,
                d_model=int(vector.shape[0]),
                vector=raw,
                norm=float(vector.norm()),
                sha256=hashlib.sha256(raw).hexdigest(),
                request=body.model_dump(mode="json"),
                provenance=record,
                unlisted=False,
            )

    row, token = await off_loop(store)
    return {**public(ctx, row), "delete_token": token}


def get(ctx: Context, direction_id: str) -> dict[str, Any]:
    with ctx.database.session() as session:
        row = repo.get_direction(session, direction_id=direction_id)
    if row is None:
        raise NotFound(f"no direction with id {direction_id!r}", field="id")
    return public(ctx, row)


def listing(ctx: Context, *, limit: int, offset: int) -> dict[str, Any]:
    with ctx.database.session() as session:
        rows, count = repo.list_directions(session, limit=limit, offset=offset)
    data = [
        {
            "id": r.id,
            "name": r.name,
            "method": r.method,
            "model": r.model_id,
            "hook": r.hook,
            "norm": r.norm,
            "created_at": as_utc(r.created_at),
        }
        for r in rows
    ]
    return {"data": data, "count": count}


def delete(ctx: Context, direction_id: str, token: str | None) -> None:
    with ctx.database.session() as session:
        repo.delete_direction(session, direction_id=direction_id, token=token)


# -------------------------------------------------------------------------- projections
def _row(ctx: Context, direction_id: str, field: str) -> Direction:
    with ctx.database.session() as session:
        row = repo.get_direction(session, direction_id=direction_id)
    if row is None:
        raise NotFound(
            f"{field}: no direction with id {direction_id!r} (GET /api/directions lists them)",
            field=field,
        )
    return row


def _unit(row: Direction) -> torch.Tensor:
    vector = torch.from_numpy(np.frombuffer(row.vector, dtype="<f4").copy())
    norm = vector.norm()
    return vector / norm if norm > 0 else vector


def _weights_root(ctx: Context, model_id: str) -> str:
    """The model whose weights `model_id` runs on: its base for an adapter, else itself."""
    model = ctx.registry.models.get(model_id)
    return (model.base_id or model.id) if model is not None else model_id


def same_space(ctx: Context, direction_model: str, model_id: str) -> bool:
    """Whether `model_id` reads the residual space the direction was measured in: the same
    model, or one sharing its weights (an adapter on it, its base, a sibling adapter)."""
    return _weights_root(ctx, direction_model) == _weights_root(ctx, model_id)


def _same_point(a: HookPoint, b: HookPoint) -> bool:
    return (a.module, a.side, a.residual_from) == (b.module, b.side, b.residual_from)


@dataclass
class Projector:
    """A stored direction ready to project activations on, per model of a request."""

    id: str
    name: str
    hook: str
    unit: torch.Tensor  # (d_model,) float32, |unit| = 1
    points: dict[str, HookPoint]  # model id -> where its activations are read


def projector(
    ctx: Context, direction_id: str, model_ids: list[str], sae_id: str, field: str = "direction"
) -> Projector:
    """Check that the direction applies to every model of a request through `sae_id` (the
    same weights, the hook the SAE reads) and return it; else a 4xx naming `field`. Reads
    the database: call it off the event loop."""
    row = _row(ctx, direction_id, field)
    hs = ctx.registry.sae(sae_id)
    points = {}
    for mid in model_ids:
        if not same_space(ctx, row.model_id, mid):
            sharing = [m for m in ctx.registry.models if same_space(ctx, row.model_id, m)]
            raise InvalidRequest(
                f"{field}: direction {row.id!r} was made on model {row.model_id!r}; it applies "
                f"to the models sharing its weights ({', '.join(map(repr, sharing)) or 'none'}"
                f" hosted now), not to {mid!r}; make one on {mid!r}",
                field=field,
            )
        model = ctx.registry.model(mid)
        try:
            point = resolve_hook(model.hf, row.hook)
        except InvalidRequest as exc:
            raise InvalidRequest(
                f"{field}: its hook {row.hook!r} does not resolve on model {mid!r}: {exc.message}",
                field=field,
            ) from None
        if mid not in hs.hooks or not _same_point(point, hs.hooks[mid]):
            raise InvalidRequest(
                f"{field}: direction {row.id!r} is at hook {row.hook!r}, but SAE {sae_id!r} "
                f"reads {hs.hook_name!r}; choose an SAE on that hook, or a direction made at "
                f"{hs.hook_name!r}",
                field=field,
            )
        if row.d_model != model.d_model:
            raise InvalidRequest(
                f"{field}: direction {row.id!r} has {row.d_model} dimensions; model {mid!r} "
                f"has d_model {model.d_model}",
                field=field,
            )
        points[mid] = point
    return Projector(row.id, row.name, row.hook, _unit(row), points)


@torch.no_grad()
def project(model: HostedModel, point: HookPoint, ids, mask, unit: torch.Tensor) -> torch.Tensor:
    """h . unit for every token of a (batch, seq) batch: (batch, seq) float32 on the CPU."""
    values = hook_values(model, point, ids, mask).float()
    return (values @ unit.to(values.device, values.dtype)).cpu()


def prompt_projection(
    live: HostedModel, proj: Projector, ids: list[int], special: set[int]
) -> dict[str, Any]:
    """The `projection` of one prompt's result (on the device worker)."""
    values = project(live, proj.points[live.id], torch.tensor([ids]), None, proj.unit)[0]
    return _projection(proj, values, ids, special)


def projection_of(
    proj: Projector, hooked: torch.Tensor, ids: list[int], special: set[int]
) -> dict[str, Any]:
    """The `projection` of one prompt's result from its values at the direction's hook
    (1, seq, d_model), read in a forward pass already made (on the device worker)."""
    values = hooked.float()
    return _projection(
        proj, (values @ proj.unit.to(values.device, values.dtype)).cpu()[0], ids, special
    )


def _projection(
    proj: Projector, values: torch.Tensor, ids: list[int], special: set[int]
) -> dict[str, Any]:
    keep = [v for v, t in zip(values.tolist(), ids, strict=True) if t not in special]
    return {
        "direction": proj.id,
        "name": proj.name,
        "hook": proj.hook,
        "values": values.tolist(),
        "score": sum(keep) / len(keep) if keep else None,
    }


# Projections over the index's contexts: at most this many contexts and token positions
# (the page says how many it read), cached per direction and index.
SAMPLE_CONTEXTS = 256
SAMPLE_TOKENS = 65_536
HIST_BINS = 40
_HISTOGRAMS: OrderedDict[tuple, dict] = OrderedDict()
_HISTOGRAMS_KEPT = 64
_HISTOGRAMS_LOCK = threading.Lock()


def _summary(values: np.ndarray) -> dict[str, Any]:
    counts, edges = np.histogram(values, bins=HIST_BINS)
    q = np.quantile(values, [0.01, 0.5, 0.99])
    return {
        "counts": counts.tolist(),
        "edges": edges.tolist(),
        "n_tokens": int(values.size),
        "mean": float(values.mean()),
        "std": float(values.std()),
        "min": float(values.min()),
        "max": float(values.max()),
        "p01": float(q[0]),
        "median": float(q[1]),
        "p99": float(q[2]),
    }


async def projections(ctx: Context, direction_id: str) -> dict[str, Any]:
    """The direction's projections (h . d / |d|, as the inspector's persona score) on every
    non-special token of a sample of the contexts a latent index of its model read: the
    newest index of its model, else of a model sharing its weights. `index` is None when
    no such index exists. Model work runs on the device worker; the result is kept per
    direction and index."""
    row = await off_loop(_row, ctx, direction_id, "id")
    models = [row.model_id] + [
        m for m in ctx.registry.models if m != row.model_id and same_space(ctx, row.model_id, m)
    ]

    def find():
        with ctx.database.session() as session:
            return repo.index_for_models(session, models)

    index = await off_loop(find)
    if index is None:
        return {"index": None, "models": models}
    described = {
        "id": index.id,
        "model": index.model_id,
        "sae": index.sae_id,
        "dataset": index.dataset_id,
        "n_contexts": index.n_contexts,
    }
    key = (row.id, index.id)
    with _HISTOGRAMS_LOCK:
        if key in _HISTOGRAMS:
            _HISTOGRAMS.move_to_end(key)
            return _HISTOGRAMS[key]
    if index.model_id not in ctx.registry.models:
        return {"index": described, "error": f"model {index.model_id!r} is not hosted now"}
    model = ctx.registry.model(index.model_id)
    point = resolve_hook(model.hf, row.hook)
    unit = _unit(row)
    special = sorted(set(model.tokenizer.all_special_ids))
    width = max(1, int(index.params.get("context", 128)))
    wanted = max(1, min(SAMPLE_CONTEXTS, SAMPLE_TOKENS // width))

    def sample():
        with ctx.database.session() as session:
            return repo.sample_contexts(session, index.id, wanted)

    contexts = await off_loop(sample)
    if not contexts:
        return {"index": described, "error": "the index stored no contexts"}

    def work() -> np.ndarray:
        out = []
        with ctx.registry.activate(index.model_id) as live:
            for start in range(0, len(contexts), BATCH):
                rows = [ids for _, ids in contexts[start : start + BATCH]]
                ids, mask = live.pad(rows)
                values = project(live, point, ids, mask, unit)
                keep = mask.bool() & ~torch.isin(ids, torch.tensor(special, dtype=ids.dtype))
                out.append(values[keep].numpy())
        return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)

    cost = ctx.engine.admit(sum(len(ids) for _, ids in contexts))
    values = await ctx.worker.run(work, cost=cost)
    if values.size == 0:
        return {"index": described, "error": "the sampled contexts hold only special tokens"}
    found = {
        "index": described,
        "n_contexts": len(contexts),
        "histogram": _summary(values.astype(np.float64)),
    }
    with _HISTOGRAMS_LOCK:
        _HISTOGRAMS[key] = found
        while len(_HISTOGRAMS) > _HISTOGRAMS_KEPT:
            _HISTOGRAMS.popitem(last=False)
    return found


def page(ctx: Context, direction_id: str) -> dict[str, Any]:
    """A direction as its page shows it: `get`, plus the hosted model's kind (adapter or
    not, on which base) and the labels of its top latents."""
    found = get(ctx, direction_id)
    model = ctx.registry.models.get(found["model"])
    found["model_info"] = model.public() if model is not None else None
    labels: dict[str, dict[int, str]] = {}
    for top in found["top_latents"]:
        labels.setdefault(top["sae"], {})
    for sae_id in labels:
        wanted = [t["latent"] for t in found["top_latents"] if t["sae"] == sae_id]
        labels[sae_id] = annotations.labels(ctx, sae_id, wanted)
    found["labels"] = labels
    return found
