"""Requests for different LoRA adapters of one base: one generate per adapter (what the
engine does) vs one generate with PEFT's mixed-adapter batch (`adapter_names` per row).

    python bench/mixed_adapters.py --json docs/bench-results/cpu_mixed_adapters.json

The organism's base and its adapters: `--per-adapter` rows of one prompt for each of
`--adapters` adapters, `--tokens` new tokens, greedy, no early stop. Prints the two times
(median of interleaved repeats after a warm-up), their ratio, and whether the mixed batch
gave each row the tokens its own adapter gives it alone.
"""

import argparse
import json
import platform
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.engine.generation import cut_at_stop  # noqa: E402
from app.engine.registry import Registry  # noqa: E402
from app.settings import REPO_ROOT  # noqa: E402
from bench.steering import PROMPT, interleaved  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default=str(REPO_ROOT / "models" / "default.yaml"))
    ap.add_argument("--adapters", type=int, default=3)
    ap.add_argument("--per-adapter", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    registry = Registry.from_file(args.config)
    adapters = [m.id for m in registry.models.values() if m.adapter_source][: args.adapters]
    base = registry.model(registry.model(adapters[0]).base_id)
    peft = base.peft if base.peft is not None else registry.model(adapters[0]).peft
    ids = base.encode(PROMPT)
    n = args.per_adapter
    tok = base.tokenizer
    config = dict(
        max_new_tokens=args.tokens,
        min_new_tokens=args.tokens,
        do_sample=False,
        pad_token_id=tok.pad_token_id,
    )

    @torch.no_grad()
    def separate() -> list[list[int]]:
        out = []
        for name in adapters:
            with registry.activate(name) as live:
                rows = live.hf.generate(input_ids=torch.tensor([ids] * n), **config)
            out += rows[:, len(ids) :].tolist()
        return out

    @torch.no_grad()
    def mixed() -> list[list[int]]:
        names = [name for name in adapters for _ in range(n)]
        peft.base_model.enable_adapter_layers()
        try:
            rows = peft.generate(
                input_ids=torch.tensor([ids] * len(names)), adapter_names=names, **config
            )
        finally:
            peft.base_model.disable_adapter_layers()
        return rows[:, len(ids) :].tolist()

    same = [cut_at_stop(r, []) for r in separate()] == [cut_at_stop(r, []) for r in mixed()]
    t = interleaved({"separate": separate, "mixed": mixed}, args.repeats)
    out = {
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} "
        f"threads, {base.device}",
        "base": base.id,
        "adapters": adapters,
        "rows_per_adapter": n,
        "new_tokens": args.tokens,
        "separate_s": t["separate"],
        "mixed_s": t["mixed"],
        "separate_over_mixed": t["separate"] / t["mixed"],
        "mixed_tokens_identical": same,
        "repeats": args.repeats,
    }
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
