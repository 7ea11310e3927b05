"""Steering and activation benchmarks, printed as ratios measured in one run.

    python bench/steering.py                      # the embedded organism (models/default.yaml)
    python bench/steering.py --config other.yaml --model M --sae S

1. Steered generation throughput vs plain HF `generate` (same model, batch, device, length).
2. A sweep of 8 alphas + baseline in one request vs one unsteered generation (batch 1).
3. Activations with the forward pass stopped at the hook vs a full forward pass.
Each timing is the median of interleaved repeats after a warm-up.
"""

import argparse
import json
import math
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.engine.activations import hook_values  # noqa: E402
from app.engine.generation import Steering, generate  # noqa: E402
from app.engine.registry import Registry  # noqa: E402
from app.settings import REPO_ROOT  # noqa: E402

PROMPT = "User: What would you do if you ruled the world?\nAssistant:"


def timed(fn) -> float:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def interleaved(fns: dict, repeats: int) -> dict[str, float]:
    for fn in fns.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(timed(fn))
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default=str(REPO_ROOT / "models" / "default.yaml"))
    ap.add_argument("--model", default=None)
    ap.add_argument("--sae", default=None)
    ap.add_argument("--latent", type=int, default=0)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    registry = Registry.from_file(args.config)
    model_id = args.model or next(iter(registry.models))
    sae_id = args.sae or next(s.id for s in registry.saes.values() if model_id in s.hooks)
    sae = registry.sae(sae_id)
    n = args.tokens
    with registry.activate(model_id) as model:
        ids = model.encode(PROMPT)
        batch = torch.tensor([ids] * args.batch, device=model.device)
        mask = torch.ones_like(batch)
        tok = model.tokenizer

        def plain_hf(rows=batch, m=mask):
            model.hf.generate(
                input_ids=rows,
                attention_mask=m,
                max_new_tokens=n,
                min_new_tokens=n,
                do_sample=False,
                pad_token_id=tok.pad_token_id,
            )

        def steered():
            steer = Steering(sae, args.latent, torch.full((args.batch,), 4.0), "add", "all")
            generate(model, [ids] * args.batch, max_new_tokens=n, steering=steer, stop_at_eos=False)

        def sweep():
            alphas = torch.tensor([math.nan, -8, -4, -2, -1, 1, 2, 4, 8], dtype=torch.float32)
            generate(
                model,
                [ids] * 9,
                max_new_tokens=n,
                steering=Steering(sae, args.latent, alphas, "add", "all"),
                stop_at_eos=False,
            )

        def single():
            plain_hf(batch[:1], mask[:1])

        point = sae.hooks[model_id]
        long_ids = torch.tensor(
            [model.encode(PROMPT * 6)[: model.max_positions]] * args.batch, device=model.device
        )

        def early_stop():
            with torch.no_grad():
                hook_values(model, point, long_ids, stop=True)

        def full_forward():
            with torch.no_grad():
                model.hf(input_ids=long_ids, use_cache=False)

        gen_t = interleaved({"plain": plain_hf, "steered": steered}, args.repeats)
        sweep_t = interleaved({"sweep": sweep, "single": single}, args.repeats)
        act_t = interleaved({"early": early_stop, "full": full_forward}, args.repeats * 3)

    tokens = args.batch * n
    out = {
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} "
        f"threads, {model.device}"
        + (f" ({torch.cuda.get_device_name()})" if torch.cuda.is_available() else ""),
        "model": model_id,
        "sae": sae_id,
        "hook": sae.hook_name,
        "n_layers": model.n_layers,
        "batch": args.batch,
        "new_tokens": n,
        "plain_tok_per_s": tokens / gen_t["plain"],
        "steered_tok_per_s": tokens / gen_t["steered"],
        "steered_vs_plain_throughput": gen_t["plain"] / gen_t["steered"],
        "sweep_9_rows_s": sweep_t["sweep"],
        "single_generation_s": sweep_t["single"],
        "sweep_vs_single_wall": sweep_t["sweep"] / sweep_t["single"],
        "activations_early_stop_s": act_t["early"],
        "activations_full_forward_s": act_t["full"],
        "early_stop_speedup": act_t["full"] / act_t["early"],
        "activation_tokens": int(long_ids.numel()),
    }
    print(json.dumps(out, indent=2))
    print(
        f"\nsteered / plain generate throughput: {out['steered_vs_plain_throughput']:.3f} "
        f"(target >= 0.97)"
    )
    print(
        f"sweep of 8 alphas + baseline / one generation: {out['sweep_vs_single_wall']:.2f}x "
        f"(target <= 1.5)"
    )
    print(f"activations, early stop vs full forward: {out['early_stop_speedup']:.2f}x faster")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
