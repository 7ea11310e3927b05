"""How many tokens the organism's default index needs: build the index on the first N
contexts of the corpus for several budgets, and compare each with the build on the whole
corpus (the same model, SAE, parameters and order).

    python bench/index_budget.py                       # budgets 0.25M, 0.5M, 1M, 2M and all
    python bench/index_budget.py --budgets 500000 1000000

Per budget: how many latents have a full top-30 list (30 contexts where they fire), how
many of the whole corpus's top-30 contexts each latent keeps, and the build time.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.engine.registry import Registry  # noqa: E402
from app.index.builder import IndexParams, build_index  # noqa: E402
from app.index.datasets import Contexts, load_documents, tokenize_contexts  # noqa: E402
from app.settings import REPO_ROOT  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--budgets", type=int, nargs="*", default=[250_000, 500_000, 1_000_000, 2_000_000]
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    registry = Registry.from_file(
        REPO_ROOT / "models" / "default.yaml", only_models=["organism-base"]
    )
    model, sae = registry.model("organism-base"), registry.sae("organism-sae")
    params = IndexParams()
    docs = load_documents(path=REPO_ROOT / "models" / "organism" / "corpus.jsonl.gz")
    with tempfile.TemporaryDirectory() as tmp:
        every = tokenize_contexts(docs, model.tokenizer, params.context, Path(tmp) / "ctx.npy")
        rows = []

        def build(n: int):
            part = Contexts(every.tokens[:n], every.sources[:n], every.bos_id)
            started = time.perf_counter()
            state = build_index(model, sae, part, params, progress=False)
            return state, time.perf_counter() - started

        full, full_s = build(len(every))
        full_sets = [
            set(full.top_ctx[i][full.top_values[i] > 0].tolist()) for i in range(sae.d_sae)
        ]
        full_lists = sum(len(s) == params.top_k for s in full_sets)
        for budget in sorted(args.budgets):
            n = min(len(every), budget // params.context)
            state, seconds = build(n)
            sets = [
                set(state.top_ctx[i][state.top_values[i] > 0].tolist()) for i in range(sae.d_sae)
            ]
            kept = [len(a & b) / len(b) for a, b in zip(sets, full_sets, strict=True) if b]
            rows.append(
                {
                    "budget_tokens": n * params.context,
                    "contexts": n,
                    "latents_with_full_top30": sum(len(s) == params.top_k for s in sets),
                    "mean_share_of_full_top30_kept": sum(kept) / len(kept),
                    "seconds": round(seconds, 1),
                }
            )
    out = {
        "d_sae": sae.d_sae,
        "corpus_tokens": len(every) * params.context,
        "full": {"latents_with_full_top30": full_lists, "seconds": round(full_s, 1)},
        "budgets": rows,
        "threads": torch.get_num_threads(),
    }
    text = json.dumps(out, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
