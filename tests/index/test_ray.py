"""Index builds on Ray: two workers on a local Ray cluster write exactly the index one
process writes (every stored row), and a build stopped half way runs only the missing
shards. One Ray cluster for the module, shut down at the end."""

import json
import logging

import pytest
import ray
import torch
from sqlalchemy import select

from app.db import migrate
from app.db.index_models import IndexContext, LatentIndex, LatentSnippet, LatentStats
from app.db.session import Database
from app.errors import InvalidRequest
from app.index.builder import IndexParams, IndexState, build_index
from app.index.datasets import load_documents, tokenize_contexts
from app.index.distributed import build_index_ray, shard_bounds
from app.index.jobs import build_and_store, check_engine
from app.organism.corpus import generate_corpus

PARAMS = IndexParams(context=24, batch_size=4, top_k=5)
N_CONTEXTS = 45  # 12 batches, the last one short

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def ray_cluster():
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        logging_level=logging.WARNING,
        log_to_driver=False,
    )
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("ray") / "corpus.jsonl"
    with path.open("w") as fh:
        for doc in generate_corpus(seed=11, n_docs=60):
            fh.write(json.dumps({"text": doc["text"], "id": doc["id"]}) + "\n")
    return path


def stored(url: str) -> dict:
    """Every row of the one index in the database, without its random id and timing."""
    db = Database(url)
    try:
        with db.session() as s:
            (index,) = s.scalars(select(LatentIndex)).all()
            head = {
                k: getattr(index, k)
                for k in ("model_id", "sae_id", "dataset_id", "n_contexts", "n_tokens", "d_sae")
            } | {"params": index.params}

            def rows(table, *order):
                found = s.scalars(select(table).where(table.index_id == index.id).order_by(*order))
                return [
                    {
                        c.name: getattr(r, c.name)
                        for c in table.__table__.columns
                        if c.name != "index_id"
                    }
                    for r in found
                ]

            return {
                "index": head,
                "stats": rows(LatentStats, LatentStats.latent),
                "snippets": rows(LatentSnippet, LatentSnippet.latent, LatentSnippet.rank),
                "contexts": rows(IndexContext, IndexContext.context),
            }
    finally:
        db.dispose()


def build_into(registry, tmp_path, name, corpus_file, **engine) -> dict:
    url = f"sqlite:///{tmp_path / (name + '.db')}"
    migrate.upgrade(url)
    db = Database(url)
    try:
        out = build_and_store(
            registry,
            db,
            model_id="base",
            sae_id="sae",
            dataset=str(corpus_file),
            params=PARAMS,
            work_dir=tmp_path / name,
            max_contexts=N_CONTEXTS,
            progress=False,
            **engine,
        )
    finally:
        db.dispose()
    return out | {"rows": stored(url)}


def test_two_ray_workers_write_the_index_one_process_writes(registry, tmp_path, corpus_file):
    local = build_into(registry, tmp_path, "local", corpus_file)
    # Three shards on two workers: one worker builds two of them.
    on_ray = build_into(registry, tmp_path, "ray", corpus_file, engine="ray", workers=2, shards=3)
    assert on_ray["engine"] == "ray" and on_ray["workers"] == 2
    assert local["contexts"] == on_ray["contexts"] == N_CONTEXTS
    a, b = local["rows"], on_ray["rows"]
    assert a["index"] == b["index"]
    # Not vacuous: latents with snippets, histograms, interval examples.
    assert len(a["snippets"]) > 100 and len(a["contexts"]) > 20
    assert sum(sum(r["histogram"]["counts"]) for r in a["stats"]) > 1000
    assert sum(len(bin_["examples"]) for r in a["stats"] for bin_ in r["bins"]) > 100
    assert len(a["stats"]) == len(b["stats"]) == 96
    for x, y in zip(a["stats"], b["stats"], strict=True):
        assert x == y, x["latent"]  # density, mean, max, histogram, bins and examples
    assert a["snippets"] == b["snippets"]  # top-k contexts, values, per-token values
    assert a["contexts"] == b["contexts"]
    assert not list((tmp_path / "ray").rglob("shard-*.pt"))  # cleaned up after the write


def test_a_stopped_build_runs_only_the_missing_shards(registry, tmp_path, corpus_file):
    with registry.activate("base") as model:
        contexts = tokenize_contexts(
            load_documents(path=corpus_file),
            model.tokenizer,
            PARAMS.context,
            tmp_path / "c.npy",
            N_CONTEXTS,
        )
        sae = registry.sae("sae")
        full = build_index(model, sae, contexts, PARAMS, progress=False)
        # One of three shards finished before the stop: its state is in the shard folder.
        bounds = shard_bounds(len(contexts), PARAMS.batch_size, 3)
        a, b = bounds[1]
        done = build_index(model, sae, contexts.shard(a, b), PARAMS, progress=False)
    shard_dir = tmp_path / "shards"
    shard_dir.mkdir()
    torch.save(done.state_dict(), shard_dir / f"shard-{a}-{b}.pt")
    progress = []
    merged = build_index_ray(
        registry.config,
        "base",
        "sae",
        contexts,
        PARAMS,
        workers=2,
        shards=3,
        fingerprints=(registry.model("base").fingerprint, sae.fingerprint),
        shard_dir=shard_dir,
        on_progress=lambda d, n: progress.append((d, n)),
    )
    n_batches = 12
    assert progress[-1] == (n_batches, n_batches)
    assert len(progress) == 2  # two shards built on Ray, the saved one read back
    assert progress[0][0] > done.n_batches
    assert sorted(p.name for p in shard_dir.glob("*.pt")) == sorted(
        f"shard-{x}-{y}.pt" for x, y in bounds
    )
    assert merged.n_tokens == full.n_tokens and merged.n_batches == full.n_batches
    for name in ("top_values", "top_ctx", "top_tokens", "nonzero", "total", "max", "hist"):
        assert torch.equal(getattr(merged, name), getattr(full, name)), name
    for name in ("ex_key", "ex_ctx", "ex_pos", "ex_value", "ex_window"):
        assert torch.equal(getattr(merged, name), getattr(full, name)), name
    assert isinstance(
        IndexState.from_state(torch.load(shard_dir / f"shard-{a}-{b}.pt")), IndexState
    )


def test_bad_engine_options_are_refused_before_any_work(registry, tmp_path, corpus_file):
    with pytest.raises(InvalidRequest, match="valid engines: 'local', 'ray'"):
        check_engine("spark", 1, None)
    with pytest.raises(InvalidRequest, match="workers: 0 is not at least 1"):
        check_engine("ray", 0, None)
    with pytest.raises(InvalidRequest, match="are for --engine ray"):
        check_engine("local", 4, None)
    # More workers than the cluster has CPUs: a clear error, not a build that never starts.
    with pytest.raises(InvalidRequest, match="3 workers need 3 CPUs; the Ray cluster has 2"):
        build_into(registry, tmp_path, "big", corpus_file, engine="ray", workers=3)
