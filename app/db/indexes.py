"""The indexes repository: latent-dashboard indexes in the database (SQLite or Postgres).

A finished build is written in one transaction that also removes the index it replaces, so
readers see either the old index or the new one, never a mix, and an interrupted write
leaves the old one intact.
"""

import secrets
from collections.abc import Iterable

import numpy as np
from sqlalchemy import delete, func, insert, or_, select
from sqlalchemy.orm import Session

from app.db.index_models import IndexContext, LatentIndex, LatentSnippet, LatentStats
from app.db.models import LatentAnnotation
from app.errors import NotFound, choices

WRITE_CHUNK = 2000  # rows per INSERT batch


def text_column(value: str) -> str:
    """Text for a plain text column: a token can be the NUL byte, which PostgreSQL refuses
    in text, so it is stored as U+FFFD (JSON columns keep it escaped, exactly)."""
    return value.replace("\x00", "\ufffd")


def save_index(
    session: Session,
    *,
    model_id: str,
    sae_id: str,
    dataset_id: str,
    model_fingerprint: str,
    sae_fingerprint: str,
    params: dict,
    n_contexts: int,
    n_tokens: int,
    d_sae: int,
    build_seconds: float,
    records: Iterable[dict],
    context_rows: dict[int, dict],
) -> str:
    index_id = secrets.token_urlsafe(16)
    session.execute(
        delete(LatentIndex).where(
            LatentIndex.model_id == model_id,
            LatentIndex.sae_id == sae_id,
            LatentIndex.dataset_id == dataset_id,
        )
    )
    session.flush()
    session.add(
        LatentIndex(
            id=index_id,
            model_id=model_id,
            sae_id=sae_id,
            dataset_id=dataset_id,
            model_fingerprint=model_fingerprint,
            sae_fingerprint=sae_fingerprint,
            params=params,
            n_contexts=n_contexts,
            n_tokens=n_tokens,
            d_sae=d_sae,
            build_seconds=build_seconds,
        )
    )
    session.flush()
    stats: list[dict] = []
    snippets: list[dict] = []

    def flush() -> None:
        if stats:
            session.execute(insert(LatentStats), stats)
            stats.clear()
        if snippets:
            session.execute(insert(LatentSnippet), snippets)
            snippets.clear()

    for rec in records:
        stats.append(
            {
                "index_id": index_id,
                "latent": rec["latent"],
                "density": rec["density"],
                "n_active": rec["n_active"],
                "max_activation": rec["max_activation"],
                "mean_activation": rec["mean_activation"],
                "mean_active": rec["mean_active"],
                "histogram": rec["histogram"],
                "bins": rec["bins"],
                "logits": rec["logits"],
                "neighbors": rec["neighbors"],
                "top_tokens": text_column(
                    " ".join(t["token"].strip() for t in rec["logits"]["positive"])
                ),
            }
        )
        for rank, snip in enumerate(rec["snippets"]):
            snippets.append(
                {
                    "index_id": index_id,
                    "latent": rec["latent"],
                    "rank": rank,
                    "context": snip["context"],
                    "max_value": snip["max_value"],
                    "values": np.asarray(snip["values"], dtype=np.float32).tobytes(),
                }
            )
        if len(snippets) >= WRITE_CHUNK:
            flush()
    flush()
    rows = [
        {"index_id": index_id, "context": c, **row, "source": text_column(row["source"])}
        for c, row in context_rows.items()
    ]
    for start in range(0, len(rows), WRITE_CHUNK):
        session.execute(insert(IndexContext), rows[start : start + WRITE_CHUNK])
    return index_id


def indexes_for(session: Session, sae_id: str) -> list[LatentIndex]:
    return list(
        session.scalars(
            select(LatentIndex)
            .where(LatentIndex.sae_id == sae_id)
            .order_by(LatentIndex.created_at.desc())
        )
    )


def pick_index(
    session: Session, sae_id: str, model_id: str | None = None, dataset_id: str | None = None
) -> LatentIndex:
    found = indexes_for(session, sae_id)
    if not found:
        raise NotFound(
            f"no latent index for SAE {sae_id!r} yet; build one with "
            f"`python -m app index build --sae {sae_id} --model <model id> --dataset <dataset id>`"
            " (or `make index` for the organism)",
            field="sae",
        )
    if model_id is not None:
        options = [i for i in found if i.model_id == model_id]
        if not options:
            raise NotFound(
                f"model: no index of SAE {sae_id!r} for model {model_id!r}; indexed "
                f"models: {choices(sorted({i.model_id for i in found}))}",
                field="model",
            )
        found = options
    if dataset_id is not None:
        options = [i for i in found if i.dataset_id == dataset_id]
        if not options:
            raise NotFound(
                f"dataset: no index on dataset {dataset_id!r}; indexed datasets: "
                f"{choices(sorted({i.dataset_id for i in found}))}",
                field="dataset",
            )
        found = options
    return found[0]


def describe(index: LatentIndex) -> dict:
    return {
        "id": index.id,
        "model": index.model_id,
        "sae": index.sae_id,
        "dataset": index.dataset_id,
        "n_contexts": index.n_contexts,
        "n_tokens": index.n_tokens,
        "d_sae": index.d_sae,
        "params": index.params,
        "model_fingerprint": index.model_fingerprint,
        "sae_fingerprint": index.sae_fingerprint,
        "build_seconds": index.build_seconds,
        "created_at": index.created_at.isoformat(),
    }


def latent_dashboard(session: Session, index: LatentIndex, latent: int) -> dict:
    stats = session.get(LatentStats, (index.id, latent))
    if stats is None:
        raise NotFound(f"latent: {latent} is outside [0, {index.d_sae})", field="latent")
    snippet_rows = session.execute(
        select(LatentSnippet, IndexContext)
        .join(
            IndexContext,
            (IndexContext.index_id == LatentSnippet.index_id)
            & (IndexContext.context == LatentSnippet.context),
        )
        .where(LatentSnippet.index_id == index.id, LatentSnippet.latent == latent)
        .order_by(LatentSnippet.rank)
    ).all()
    example_contexts = {e["context"] for b in stats.bins for e in b["examples"]}
    contexts = {
        c.context: c
        for c in session.scalars(
            select(IndexContext).where(
                IndexContext.index_id == index.id, IndexContext.context.in_(example_contexts)
            )
        )
    }
    bins = []
    for b in stats.bins:
        examples = []
        for e in b["examples"]:
            ctx = contexts.get(e["context"])
            if ctx is None:
                continue
            pos = e["position"]
            if e["window"] is not None:  # the latent's values around the example position
                half = (len(e["window"]) - 1) // 2
                lo, hi = max(0, pos - half), min(len(ctx.tokens), pos + half + 1)
                start = lo - (pos - half)
                tokens, values = ctx.tokens[lo:hi], e["window"][start : start + hi - lo]
            else:  # a top context: the full context, its values are in the snippets
                lo, tokens, values = 0, ctx.tokens, None
            examples.append(
                {
                    "tokens": tokens,
                    "values": values,
                    "value": e["value"],
                    "position": pos - lo,
                    "source": ctx.source,
                    "context": e["context"],
                }
            )
        bins.append(
            {"low": b["low"], "high": b["high"], "fraction": b["fraction"], "examples": examples}
        )
    return {
        "latent": latent,
        "model": index.model_id,
        "dataset": index.dataset_id,
        "index": index.id,
        "density": stats.density,
        "n_active": stats.n_active,
        "max_activation": stats.max_activation,
        "mean_activation": stats.mean_activation,
        "mean_active": stats.mean_active,
        "top_snippets": [
            {
                "tokens": ctx.tokens,
                "token_ids": ctx.token_ids,
                "values": np.frombuffer(snip.values, dtype=np.float32).tolist(),
                "max_value": snip.max_value,
                "source": ctx.source,
                "context": snip.context,
            }
            for snip, ctx in snippet_rows
        ],
        "bins": bins,
        "histogram": stats.histogram,
        "logits": stats.logits,
        "neighbors": stats.neighbors,
    }


SORTS = {
    "density": LatentStats.density,
    "max_activation": LatentStats.max_activation,
    "latent": LatentStats.latent,
    "label": func.coalesce(LatentAnnotation.label, ""),
}


def list_latents(
    session: Session,
    index: LatentIndex,
    *,
    sort: str,
    descending: bool,
    offset: int,
    limit: int,
    q: str | None,
    latent_ids: list[int] | None = None,
    min_density: float = 0.0,
    max_density: float = 1.0,
    also_matching: list[int] | None = None,
) -> tuple[int, list]:
    """A page of (LatentStats, label) rows. `q` matches the latent's label, its promoted
    tokens (case-insensitive) or its index; `also_matching` are latents whose labels live
    outside the database (default pins) and match `q`."""
    labelled = (LatentAnnotation.sae_id == index.sae_id) & (
        LatentAnnotation.latent == LatentStats.latent
    )
    query = (
        select(LatentStats, LatentAnnotation.label)
        .outerjoin(LatentAnnotation, labelled)
        .where(
            LatentStats.index_id == index.id,
            LatentStats.density >= min_density,
            LatentStats.density <= max_density,
        )
    )
    if latent_ids is not None:
        query = query.where(LatentStats.latent.in_(latent_ids))
    if q:
        needle = q.lower()
        conditions = [
            func.lower(LatentStats.top_tokens).contains(needle),
            func.lower(func.coalesce(LatentAnnotation.label, "")).contains(needle),
        ]
        if q.isdigit():
            conditions.append(LatentStats.latent == int(q))
        if also_matching:
            conditions.append(LatentStats.latent.in_(also_matching))
        query = query.where(or_(*conditions))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    column = SORTS[sort]
    query = query.order_by(column.desc() if descending else column.asc(), LatentStats.latent)
    rows = list(session.execute(query.offset(offset).limit(limit)).all())
    return total, rows


def stats_for(session: Session, index: LatentIndex, latents: list[int]) -> dict[int, LatentStats]:
    return {
        s.latent: s
        for s in session.scalars(
            select(LatentStats).where(
                LatentStats.index_id == index.id, LatentStats.latent.in_(latents)
            )
        )
    }
