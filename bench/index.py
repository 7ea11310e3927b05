"""Latent-dashboard index benchmarks, printed as ratios measured in one run.

    python bench/index.py throughput   # build vs a bare forward pass to the hook layer
    python bench/index.py scaling      # time and state memory vs corpus size and latents
    python bench/index.py latency      # GET /api/saes/{sae}/latents/{i} p95, 24,576 latents
    python bench/index.py all

Defaults use the embedded organism (models/default.yaml) and its corpus.
"""

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sae_lens import StandardSAE, StandardSAEConfig  # noqa: E402

from app.engine.activations import hook_values, latent_activations  # noqa: E402
from app.engine.registry import Registry  # noqa: E402
from app.index.builder import IndexParams, IndexState, build_index  # noqa: E402
from app.index.datasets import Contexts, load_documents, tokenize_contexts  # noqa: E402
from app.settings import REPO_ROOT  # noqa: E402

CONFIG = REPO_ROOT / "models" / "default.yaml"


def machine(device) -> str:
    gpu = f" ({torch.cuda.get_device_name()})" if torch.cuda.is_available() else ""
    return f"{platform.machine()}, {torch.get_num_threads()} threads, {device}{gpu}"


def sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def organism_contexts(model, n_contexts: int, context: int, tmp: Path) -> Contexts:
    docs = load_documents(organism_corpus=True)
    return tokenize_contexts(
        docs, model.tokenizer, context, tmp / f"ctx{n_contexts}.npy", max_contexts=n_contexts
    )


@torch.no_grad()
def bare_forward_seconds(model, point, contexts: Contexts, batch_size: int) -> float:
    sync()
    start = time.perf_counter()
    for _, tokens in contexts.batches(batch_size):
        hook_values(model, point, torch.from_numpy(tokens.astype("int64")).to(model.device))
    sync()
    return time.perf_counter() - start


def forward_encode_seconds(model, sae, contexts: Contexts, batch_size: int) -> float:
    """The forward pass and the SAE encoder, without the index bookkeeping."""
    sync()
    start = time.perf_counter()
    for _, tokens in contexts.batches(batch_size):
        ids = torch.from_numpy(tokens.astype("int64")).to(model.device)
        with torch.no_grad():
            latent_activations(model, sae, ids)
    sync()
    return time.perf_counter() - start


def build_seconds(model, sae, contexts: Contexts, params: IndexParams) -> tuple[float, IndexState]:
    sync()
    start = time.perf_counter()
    state = build_index(model, sae, contexts, params, progress=False)
    sync()
    return time.perf_counter() - start, state


def state_bytes(state: IndexState) -> int:
    return sum(
        v.numel() * v.element_size() for v in vars(state).values() if isinstance(v, torch.Tensor)
    )


def random_sae(registry: Registry, base_sae, d_sae: int):
    """A random SAELens SAE at the same hook as `base_sae`, hosted like a loaded one."""
    from dataclasses import replace

    torch.manual_seed(d_sae)
    sae = StandardSAE(
        StandardSAEConfig(d_in=base_sae.d_in, d_sae=d_sae, device=str(registry.device))
    )
    with torch.no_grad():
        sae.b_enc.fill_(-0.5)  # sparse-ish, like a trained SAE
    return replace(base_sae, id=f"random-{d_sae}", sae=sae.eval(), _unit_cache={})


def throughput(args, registry, tmp) -> dict:
    model_id, sae_id = args.model, args.sae
    sae, _ = registry.sae_for(sae_id, model_id)
    params = IndexParams(context=args.context, batch_size=args.batch_size)
    with registry.activate(model_id) as model:
        contexts = organism_contexts(model, args.contexts, args.context, tmp)
        point = sae.hooks[model_id]
        bare_forward_seconds(model, point, contexts, args.batch_size)  # warm-up
        fwd, enc, bld = [], [], []
        for _ in range(2):  # interleaved, the best of two
            fwd.append(bare_forward_seconds(model, point, contexts, args.batch_size))
            enc.append(forward_encode_seconds(model, sae, contexts, args.batch_size))
            bld.append(build_seconds(model, sae, contexts, params)[0])
    tokens = len(contexts) * args.context
    out = {
        "machine": machine(registry.device),
        "model": model_id,
        "sae": sae_id,
        "d_sae": sae.d_sae,
        "contexts": len(contexts),
        "tokens": tokens,
        "batch_size": args.batch_size,
        "forward_s": min(fwd),
        "forward_and_encode_s": min(enc),
        "build_s": min(bld),
        "encode_share_of_build": (min(enc) - min(fwd)) / min(bld),
        "bookkeeping_share_of_build": (min(bld) - min(enc)) / min(bld),
        "forward_tok_per_s": tokens / min(fwd),
        "build_tok_per_s": tokens / min(bld),
    }
    out["build_vs_forward_throughput"] = out["build_tok_per_s"] / out["forward_tok_per_s"]
    print(
        f"index build / bare forward throughput: {out['build_vs_forward_throughput']:.3f} "
        f"(target >= 0.8)"
    )
    return out


def scaling(args, registry, tmp) -> dict:
    sae0, _ = registry.sae_for(args.sae, args.model)
    params = IndexParams(context=args.context, batch_size=args.batch_size)
    rows = []
    with registry.activate(args.model) as model:
        for n in (250, 500, 1000, 2000):
            contexts = organism_contexts(model, n, args.context, tmp)
            seconds, state = build_seconds(model, sae0, contexts, params)
            rows.append(
                {
                    "latents": sae0.d_sae,
                    "contexts": n,
                    "seconds": seconds,
                    "state_mb": state_bytes(state) / 2**20,
                }
            )
            print(rows[-1])
        contexts = organism_contexts(model, 500, args.context, tmp)
        for d_sae in (512, 2048, 8192):
            sae = random_sae(registry, sae0, d_sae)
            sae.hooks = dict(sae0.hooks)
            seconds, state = build_seconds(model, sae, contexts, params)
            rows.append(
                {
                    "latents": d_sae,
                    "contexts": 500,
                    "seconds": seconds,
                    "state_mb": state_bytes(state) / 2**20,
                }
            )
            print(rows[-1])
    # Per-token cost grows linearly in corpus size; state memory linearly in latents only.
    by_ctx = [r for r in rows if r["latents"] == sae0.d_sae]
    per_ctx = (by_ctx[-1]["seconds"] - by_ctx[0]["seconds"]) / (
        by_ctx[-1]["contexts"] - by_ctx[0]["contexts"]
    )
    big = IndexState(24_576, IndexParams(), torch.device("meta"))
    return {
        "machine": machine(registry.device),
        "rows": rows,
        "seconds_per_context": per_ctx,
        "gpt2_small_state_mb": state_bytes(big) / 2**20,
    }


def latency(args, registry, tmp) -> dict:
    """A synthetic 24,576-latent index of the organism's base model, served by the app."""
    from fastapi.testclient import TestClient

    from app.db import migrate
    from app.db.indexes import save_index
    from app.db.session import Database
    from app.engine.engine import Engine
    from app.main import create_app
    from app.settings import Settings

    d_sae, k, t = 24_576, 30, 128
    sae0, base = registry.sae_for(args.sae, args.model)
    big = random_sae(registry, sae0, d_sae)
    sae_dir = tmp / "sae-24576"
    big.sae.cfg.metadata.hook_name = sae0.hook_name
    big.sae.save_model(sae_dir)
    spec = yaml.safe_load(Path(args.config).read_text())
    spec["saes"] = {"big": {"path": str(sae_dir), "models": [args.model]}}
    spec["default_sae"] = "big"
    for m in spec["models"].values():
        for key in ("path", "adapter"):
            if key in m and not Path(m[key]).is_absolute():
                m[key] = str((Path(args.config).parent / m[key]).resolve())
    for key in ("question_sets", "judges", "datasets"):
        spec.pop(key, None)
    spec.pop("indexes", None), spec.pop("pins", None), spec.pop("report", None)
    config = tmp / "bench.yaml"
    config.write_text(yaml.safe_dump(spec))
    url = args.database_url or f"sqlite:///{tmp / 'bench.db'}"
    migrate.upgrade(url)
    db = Database(url)
    rng = np.random.default_rng(0)
    n_ctx = 5000
    tokens = rng.integers(0, 2000, size=(n_ctx, t)).tolist()

    def records():
        for latent in range(d_sae):
            ctxs = rng.choice(n_ctx, size=k, replace=False)
            vals = np.sort(rng.random(k))[::-1] * 10
            yield {
                "latent": latent,
                "density": float(rng.random() * 0.01),
                "n_active": 100,
                "max_activation": float(vals[0]),
                "mean_activation": 0.01,
                "mean_active": 1.0,
                "histogram": {"scale": "log2", "low": [0.5], "high": [1.0], "counts": [100]},
                "bins": [
                    {
                        "low": 0.0,
                        "high": float(vals[0]),
                        "fraction": 1.0,
                        "examples": [
                            {
                                "context": int(ctxs[0]),
                                "position": 5,
                                "value": float(vals[0]),
                                "window": None,
                            }
                        ],
                    }
                ],
                "logits": {
                    "positive": [
                        {"token": f"t{j}", "token_id": j, "value": 1.0} for j in range(10)
                    ],
                    "negative": [
                        {"token": f"n{j}", "token_id": j, "value": -1.0} for j in range(10)
                    ],
                },
                "neighbors": [
                    {"latent": int(x), "cosine": 0.5} for x in rng.integers(0, d_sae, 10)
                ],
                "snippets": [
                    {
                        "context": int(c),
                        "max_value": float(v),
                        "values": (rng.random(t) * v).tolist(),
                    }
                    for c, v in zip(ctxs, vals, strict=True)
                ],
            }

    start = time.perf_counter()
    with db.session() as session, session.begin():
        save_index(
            session,
            model_id=args.model,
            sae_id="big",
            dataset_id="synthetic",
            model_fingerprint="x",
            sae_fingerprint="x",
            params={},
            n_contexts=n_ctx,
            n_tokens=n_ctx * t,
            d_sae=d_sae,
            build_seconds=0.0,
            records=records(),
            context_rows={
                c: {
                    "tokens": [f"w{x}" for x in tokens[c]],
                    "token_ids": tokens[c],
                    "source": f"synthetic#{c}",
                }
                for c in range(n_ctx)
            },
        )
    write_s = time.perf_counter() - start
    settings = Settings(models_config=config, data_dir=tmp, database_url=url)
    engine = Engine(Registry.from_file(config), settings)
    times = []
    with TestClient(create_app(settings=settings, engine=engine)) as client:
        for latent in rng.integers(0, d_sae, 20):  # warm-up
            client.get(f"/api/saes/big/latents/{latent}")
        for latent in rng.integers(0, d_sae, 300):
            start = time.perf_counter()
            r = client.get(f"/api/saes/big/latents/{latent}")
            times.append(time.perf_counter() - start)
            assert r.status_code == 200, r.text
    times.sort()
    out = {
        "machine": machine("cpu"),
        "database": url.split(":")[0],
        "latents": d_sae,
        "snippets_per_latent": k,
        "requests": len(times),
        "p50_ms": 1000 * statistics.median(times),
        "p95_ms": 1000 * times[int(0.95 * len(times)) - 1],
        "max_ms": 1000 * times[-1],
        "index_write_s": write_s,
    }
    print(f"latent page p95: {out['p95_ms']:.1f} ms (target <= 50 ms)")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["throughput", "scaling", "latency", "all"])
    ap.add_argument("--config", default=str(CONFIG))
    ap.add_argument("--model", default="organism-base")
    ap.add_argument("--sae", default="organism-sae")
    ap.add_argument("--contexts", type=int, default=2000)
    ap.add_argument("--context", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--database-url", default=None)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    registry = Registry.from_file(args.config)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for what in ["throughput", "scaling", "latency"] if args.what == "all" else [args.what]:
            results[what] = globals()[what](args, registry, Path(tmp))
            print(json.dumps(results[what], indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
