"""Index builds as batch jobs: `python -m app index build --model M --sae S --dataset D`.

Resolve and check the dataset (before any model work), cut it into token contexts, stream
them through the model and SAE, then write the finished index in one transaction. The
contexts file and a state checkpoint live in the work directory, so an interrupted build
resumes where it stopped.

Two engines build the same index: `local` (this process) and `ray` (the contexts cut into
shards across Ray workers, their partial states merged exactly; `app.index.distributed`).
"""

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from app.db.indexes import save_index
from app.db.session import Database
from app.engine.config import LoadedConfig
from app.engine.registry import Registry
from app.errors import InvalidRequest, choices
from app.index.builder import IndexParams, build_index
from app.index.datasets import Contexts, Documents, load_documents, tokenize_contexts
from app.index.finalize import latent_records

log = logging.getLogger(__name__)

ENGINES = ("local", "ray")


def check_engine(engine: str, workers: int, address: str | None) -> None:
    """Refuse an unknown engine, a worker count below 1, or Ray options without Ray."""
    if engine not in ENGINES:
        raise InvalidRequest(
            f"engine: unknown engine {engine!r}; valid engines: {choices(ENGINES)}",
            field="engine",
        )
    if workers < 1:
        raise InvalidRequest(f"workers: {workers} is not at least 1", field="workers")
    if engine != "ray" and (workers != 1 or address is not None):
        raise InvalidRequest(
            "engine: --workers and --address are for --engine ray; the local engine is one process",
            field="engine",
        )


def resolve_dataset(
    config: LoadedConfig,
    dataset: str,
    *,
    text_field: str | None = None,
    split: str | None = None,
    subset: str | None = None,
    streaming: bool | None = None,
    format: str | None = None,
    limit_docs: int | None = None,
) -> tuple[Documents, int | None]:
    """A dataset id of the model config, a path (file, glob or folder, relative to the
    working directory), or `hub:<id>` for a hub dataset. Options given here override the
    config's. Returns the opened documents (first record checked) and the dataset's token
    budget from the config, if any."""
    specs = config.spec.datasets
    if dataset in specs:
        spec = specs[dataset]
        docs = load_documents(
            path=config.resolve(spec.path) if spec.path else None,
            hub=spec.hub,
            config=subset or spec.config,
            split=split or spec.split,
            text_field=text_field or spec.text_field,
            format=format or spec.format,
            sample_by=spec.sample_by,
            streaming=spec.streaming if streaming is None else streaming,
            limit_docs=limit_docs,
            name=dataset,
        )
        return docs, spec.max_tokens
    options: dict[str, Any] = {
        "config": subset,
        "split": split or "train",
        "text_field": text_field or "text",
        "format": format,
        "streaming": True if streaming is None else streaming,
        "limit_docs": limit_docs,
    }
    if dataset.startswith("hub:"):
        return load_documents(hub=dataset.removeprefix("hub:"), **options), None
    if Path(dataset).expanduser().exists() or any(c in dataset for c in "*?["):
        return load_documents(path=dataset, **options), None
    raise InvalidRequest(
        f"dataset: {dataset!r} is neither a dataset id of the model config "
        f"({choices(specs)}), an existing path or glob, nor 'hub:<dataset id>'",
        field="dataset",
    )


def build_and_store(
    registry: Registry,
    db: Database,
    *,
    model_id: str,
    sae_id: str,
    dataset: str,
    params: IndexParams,
    work_dir: Path,
    max_contexts: int | None = None,
    max_tokens: int | None = None,
    progress: bool = True,
    docs: Documents | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    engine: str = "local",
    workers: int = 1,
    address: str | None = None,
    shards: int | None = None,
) -> dict:
    """Build one index and store it. `dataset` is resolved as in `resolve_dataset` unless
    `docs` is given already opened (the CLI opens it before loading any model). `engine`
    'ray' builds it across `workers` Ray workers (a local Ray cluster, or the one at
    `address`) in `shards` shards (default: one per worker); the index is the same."""
    check_engine(engine, workers, address)
    sae, model = registry.sae_for(sae_id, model_id)
    if docs is None:
        docs, budget = resolve_dataset(registry.config, dataset)
        max_tokens = max_tokens or budget
    key = hashlib.sha256(
        json.dumps(
            [model_id, sae_id, docs.name, docs.ident, asdict(params), max_contexts, max_tokens]
        ).encode()
    ).hexdigest()[:16]
    job_dir = work_dir / f"{sae_id}-{model_id}-{key}"
    job_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    with registry.activate(model_id) as live:
        contexts = contexts_for(
            docs, live.tokenizer, params.context, job_dir, max_contexts, max_tokens
        )
        if engine == "ray":
            from app.index.distributed import build_index_ray

            state = build_index_ray(
                registry.config,
                model_id,
                sae_id,
                contexts,
                params,
                workers=workers,
                address=address,
                shards=shards,
                device=registry.device,
                dtype=str(registry.dtype).removeprefix("torch."),
                fingerprints=(model.fingerprint, sae.fingerprint),
                shard_dir=job_dir / "shards",
                on_progress=on_progress,
            )
        else:
            state = build_index(
                live,
                sae,
                contexts,
                params,
                checkpoint=job_dir / "state.pt",
                progress=progress,
                on_progress=on_progress,
            )
        records = list(latent_records(live, sae, state, params))
    build_seconds = time.time() - started
    needed = {s["context"] for r in records for s in r["snippets"]}
    needed |= {e["context"] for r in records for b in r["bins"] for e in b["examples"]}
    context_rows = {
        c: {
            "tokens": model.token_strings(contexts.tokens[c].tolist()),
            "token_ids": contexts.tokens[c].tolist(),
            "source": contexts.sources[c][:400],
        }
        for c in sorted(needed)
    }
    with db.session() as session, session.begin():
        index_id = save_index(
            session,
            model_id=model_id,
            sae_id=sae_id,
            dataset_id=docs.name,
            model_fingerprint=model.fingerprint,
            sae_fingerprint=sae.fingerprint,
            params=asdict(params),
            n_contexts=len(contexts),
            n_tokens=state.n_tokens,
            d_sae=sae.d_sae,
            build_seconds=build_seconds,
            records=records,
            context_rows=context_rows,
        )
    (job_dir / "state.pt").unlink(missing_ok=True)
    for shard in (job_dir / "shards").glob("shard-*.pt"):
        shard.unlink()
    return {
        "index": index_id,
        "model": model_id,
        "sae": sae_id,
        "dataset": docs.name,
        "contexts": len(contexts),
        "tokens": state.n_tokens,
        "engine": engine,
        "workers": workers,
        "build_seconds": round(build_seconds, 2),
        "total_seconds": round(time.time() - started, 2),
        "loaded_models": list(registry.models),
    }


def contexts_for(
    docs: Documents,
    tokenizer,
    context: int,
    job_dir: Path,
    max_contexts: int | None,
    max_tokens: int | None = None,
) -> Contexts:
    path = job_dir / "contexts.npy"
    sources = job_dir / "sources.json"
    if path.exists() and sources.exists():
        import numpy as np

        return Contexts(
            np.load(path, mmap_mode="r"), json.loads(sources.read_text()), tokenizer.bos_token_id
        )
    out = tokenize_contexts(docs, tokenizer, context, path, max_contexts, max_tokens)
    sources.write_text(json.dumps(out.sources))
    return out
