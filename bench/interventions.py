"""Steering with 4 simultaneous edits vs 1 edit: generation throughput ratio, one run.

    python bench/interventions.py                 # the embedded organism (models/default.yaml)
    python bench/interventions.py --json docs/bench-results/interventions.json

One edit: latent `add` at the SAE's hook (what a one-latent request does). Four edits on the
same rows: that latent `add`, a second latent `add`, a direction `add` and a direction
`ablate` (projection) at the same hook; and the same four with the second latent clamped
instead (a clamp re-encodes the SAE a few times per step to land on its value). Every run
generates the same batch (a sweep of 8 α plus the baseline) for the same number of tokens
(no early stop), greedy; each timing is the median of interleaved repeats after a warm-up.
Target (issue 15): ratio >= 0.95.
"""

import argparse
import json
import math
import platform
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.engine.generation import Edit, Interventions, generate  # noqa: E402
from app.engine.registry import Registry  # noqa: E402
from app.settings import REPO_ROOT  # noqa: E402
from bench.steering import PROMPT, interleaved  # noqa: E402

ALPHAS = [math.nan, -8, -4, -2, -1, 1, 2, 4, 8]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default=str(REPO_ROOT / "models" / "default.yaml"))
    ap.add_argument("--model", default=None)
    ap.add_argument("--sae", default=None)
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    registry = Registry.from_file(args.config)
    model_id = args.model or next(iter(registry.models))
    sae_id = args.sae or next(s.id for s in registry.saes.values() if model_id in s.hooks)
    sae = registry.sae(sae_id)
    coefs = torch.tensor(ALPHAS, dtype=torch.float32)
    with registry.activate(model_id) as model:
        ids = model.encode(PROMPT)
        gen = torch.Generator().manual_seed(0)
        v = torch.randn(model.d_model, generator=gen)
        w = torch.randn(model.d_model, generator=gen)
        hook = sae.hook_name

        def one_edit():
            edits = [Edit("add", coefs, sae=sae, latent=0)]
            generate(
                model,
                [ids] * len(ALPHAS),
                max_new_tokens=args.tokens,
                steering=Interventions(edits),
                stop_at_eos=False,
            )

        def four_edits(clamp: bool):
            second = (
                Edit(
                    "clamp", torch.where(torch.isnan(coefs), coefs, coefs.abs()), sae=sae, latent=1
                )
                if clamp
                else Edit("add", coefs * 0.5, sae=sae, latent=1)
            )
            edits = [
                Edit("add", coefs, sae=sae, latent=0),
                second,
                Edit("add", coefs * 0.1, vector=v, hook=hook),
                Edit("ablate", coefs, vector=w, hook=hook),
            ]
            generate(
                model,
                [ids] * len(ALPHAS),
                max_new_tokens=args.tokens,
                steering=Interventions(edits),
                stop_at_eos=False,
            )

        t = interleaved(
            {
                "one": one_edit,
                "four": lambda: four_edits(False),
                "four_with_clamp": lambda: four_edits(True),
            },
            args.repeats,
        )
    rows = len(ALPHAS) * args.tokens
    out = {
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} "
        f"threads, {model.device}",
        "model": model_id,
        "sae": sae_id,
        "hook": sae.hook_name,
        "rows": len(ALPHAS),
        "new_tokens": args.tokens,
        "one_edit_tok_per_s": rows / t["one"],
        "four_edits_tok_per_s": rows / t["four"],
        "four_vs_one_throughput": t["one"] / t["four"],
        "four_with_clamp_tok_per_s": rows / t["four_with_clamp"],
        "four_with_clamp_vs_one_throughput": t["one"] / t["four_with_clamp"],
        "repeats": args.repeats,
    }
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
