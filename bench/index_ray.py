"""The organism's index built in one process and by N Ray workers, side by side, on the
same contexts: wall times, their ratio, and whether the two states are identical.

    python bench/index_ray.py                          # 200k tokens, 2 workers
    python bench/index_ray.py --max-tokens 1000000 --workers 4 --out result.json

The single-process time is the build alone (the model is already loaded, as in `python -m
app index build`). The Ray time is everything `--engine ray` adds on a fresh local
cluster: starting Ray, starting the workers and loading the model in each, the shards,
the transfers and the merge; `ray_start_s` (ray.init) is reported apart as well.
"""

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.engine.registry import Registry  # noqa: E402
from app.index.builder import IndexParams, build_index  # noqa: E402
from app.index.datasets import load_documents, tokenize_contexts  # noqa: E402
from app.index.distributed import build_index_ray  # noqa: E402
from app.settings import REPO_ROOT  # noqa: E402

FIELDS = ("top_values", "top_ctx", "top_tokens", "nonzero", "total", "max", "hist")
FIELDS += ("ex_key", "ex_ctx", "ex_pos", "ex_value", "ex_window")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-tokens", type=int, default=200_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--config", type=Path, default=REPO_ROOT / "models" / "default.yaml")
    parser.add_argument("--model", default="organism-base")
    parser.add_argument("--sae", default="organism-sae")
    parser.add_argument("--dataset", default="organism-corpus")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    registry = Registry.from_file(args.config, only_models=[args.model])
    sae, model = registry.sae_for(args.sae, args.model)
    spec = registry.config.spec.datasets[args.dataset]
    docs = load_documents(path=registry.config.resolve(spec.path), name=args.dataset)
    params = IndexParams()
    with tempfile.TemporaryDirectory() as tmp:
        contexts = tokenize_contexts(
            docs, model.tokenizer, params.context, Path(tmp) / "c.npy", None, args.max_tokens
        )
        with registry.activate(args.model) as live:
            started = time.perf_counter()
            single = build_index(live, sae, contexts, params, progress=False)
            single_s = time.perf_counter() - started

        import ray

        started = time.perf_counter()
        ray.init(
            address="local",
            num_cpus=args.workers,
            include_dashboard=False,
            logging_level=logging.WARNING,
            log_to_driver=False,
        )
        ray_start_s = time.perf_counter() - started
        try:
            merged = build_index_ray(
                registry.config,
                args.model,
                args.sae,
                contexts,
                params,
                workers=args.workers,
                device=registry.device,
                fingerprints=(model.fingerprint, sae.fingerprint),
            )
            ray_s = time.perf_counter() - started
        finally:
            ray.shutdown()
    identical = merged.n_tokens == single.n_tokens and all(
        torch.equal(getattr(merged, f), getattr(single, f)) for f in FIELDS
    )
    out = {
        "model": args.model,
        "sae": args.sae,
        "d_sae": sae.d_sae,
        "contexts": len(contexts),
        "tokens": single.n_tokens,
        "workers": args.workers,
        "single_process_s": round(single_s, 1),
        "ray_total_s": round(ray_s, 1),
        "ray_start_s": round(ray_start_s, 1),
        "speedup_single_over_ray": round(single_s / ray_s, 2),
        "speedup_excluding_ray_start": round(single_s / (ray_s - ray_start_s), 2),
        "identical_state": identical,
        "torch_threads_single": torch.get_num_threads(),
        "cpus": os.cpu_count(),
    }
    text = json.dumps(out, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
