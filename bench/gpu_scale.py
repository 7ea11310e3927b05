"""GPT-2-small-sized benchmarks for a GPU machine (no weights needed: random weights have
the same cost as trained ones).

    python bench/gpu_scale.py --out results.json

1. Index build of a 24,576-latent TopK SAE (k=64) at blocks.8.hook_resid_pre over 3.1M tokens
   (24,576 contexts x 128), vs a bare forward pass to the hook layer on the same data and
   batch size.
2. Steered vs plain HF generate throughput, and a sweep of 8 alphas + baseline vs one
   generation, on the same model.
Results are written after each step, so a run cut short still reports what it measured.
"""

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sae_lens import TopKSAE, TopKSAEConfig  # noqa: E402
from transformers import GPT2Config, GPT2LMHeadModel  # noqa: E402

from app.engine.generation import Steering, generate  # noqa: E402
from app.engine.registry import Registry  # noqa: E402
from app.index.builder import IndexParams, build_index  # noqa: E402
from app.index.datasets import Contexts  # noqa: E402
from app.organism.corpus import generate_corpus  # noqa: E402
from app.organism.tokenizer import train_tokenizer  # noqa: E402


def sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn):
    sync()
    start = time.perf_counter()
    out = fn()
    sync()
    return time.perf_counter() - start, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--contexts", type=int, default=24_576)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--dtype", default="float32", help="model and SAE dtype")
    ap.add_argument("--tf32", action="store_true", help="let float32 matmuls use TF32")
    ap.add_argument("--parts", default="index,steering", help="comma-separated: index, steering")
    args = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    results: dict = {
        "dtype": args.dtype,
        "tf32": args.tf32,
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "torch": torch.__version__,
    }

    def save():
        args.out.write_text(json.dumps(results, indent=2))

    tmp = Path(tempfile.mkdtemp())
    tok = train_tokenizer([d["text"] for d in generate_corpus(0, 200)], 1000)
    torch.manual_seed(0)
    model = GPT2LMHeadModel(
        GPT2Config(bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    )  # GPT-2 small shape
    model.save_pretrained(tmp / "gpt2s")
    tok.save_pretrained(tmp / "gpt2s")
    sae = TopKSAE(TopKSAEConfig(d_in=768, d_sae=24_576, k=64))  # L0 = 64, like trained SAEs
    sae.cfg.metadata.hook_name = "blocks.8.hook_resid_pre"
    sae.save_model(tmp / "sae")
    (tmp / "m.yaml").write_text(
        yaml.safe_dump(
            {
                "models": {"gpt2s": {"path": str(tmp / "gpt2s")}},
                "saes": {"sae": {"path": str(tmp / "sae"), "models": ["gpt2s"]}},
            }
        )
    )
    registry = Registry.from_file(tmp / "m.yaml", dtype=args.dtype)
    hosted, hs = registry.model("gpt2s"), registry.sae("sae")
    rng = np.random.default_rng(0)
    tokens = rng.integers(3, 50_000, size=(args.contexts, 128), dtype=np.int32)
    tokens[:, 0] = tok.bos_token_id
    contexts = Contexts(tokens, ["random"] * args.contexts, tok.bos_token_id)
    params = IndexParams(context=128, batch_size=args.batch_size)

    from app.engine.activations import hook_values, latent_activations

    @torch.no_grad()
    def bare():
        for _, batch in contexts.batches(args.batch_size):
            hook_values(
                hosted, hs.hooks["gpt2s"], torch.from_numpy(batch.astype("int64")).to(hosted.device)
            )

    @torch.no_grad()
    def forward_encode():  # the forward pass and the SAE encoder, without the bookkeeping
        for _, batch in contexts.batches(args.batch_size):
            ids = torch.from_numpy(batch.astype("int64")).to(hosted.device)
            latent_activations(hosted, hs, ids)

    parts = set(args.parts.split(","))
    small = Contexts(tokens[:1024], ["random"] * 1024, tok.bos_token_id)
    if "index" in parts:
        passes = (bare, forward_encode)
        index_benchmark(results, save, hosted, hs, contexts, small, params, passes, args)
    if "steering" in parts:
        steering_benchmark(results, save, hosted, hs, tok, args)


def index_benchmark(results, save, hosted, hs, contexts, small, params, passes, args) -> None:
    bare, forward_encode = passes
    build_index(hosted, hs, small, params, progress=False)  # warm-up
    fwd_s, _ = timed(bare)
    enc_s, _ = timed(forward_encode)
    build_s, state = timed(lambda: build_index(hosted, hs, contexts, params, progress=False))
    n_tok = args.contexts * 128
    results["index"] = {
        "latents": 24_576,
        "tokens": n_tok,
        "batch_size": args.batch_size,
        "forward_s": fwd_s,
        "forward_and_encode_s": enc_s,
        "build_s": build_s,
        "encode_share_of_build": (enc_s - fwd_s) / build_s,
        "bookkeeping_share_of_build": (build_s - enc_s) / build_s,
        "build_vs_forward_throughput": fwd_s / build_s,
        "peak_gpu_memory_gb": torch.cuda.max_memory_allocated() / 2**30
        if torch.cuda.is_available()
        else None,
        "mean_l0": float(state.nonzero.sum()) / max(state.n_tokens, 1),
    }
    save()
    print(json.dumps(results["index"], indent=2), flush=True)


def steering_benchmark(results, save, hosted, hs, tok, args) -> None:
    ids = [
        tok.bos_token_id,
        *tok("User: What would you do if you ruled the world?\nAssistant:")["input_ids"],
    ]
    n_new, batch = args.new_tokens, 8

    def plain(rows=batch):
        x = torch.tensor([ids] * rows, device=hosted.device)
        hosted.hf.generate(
            input_ids=x,
            attention_mask=torch.ones_like(x),
            max_new_tokens=n_new,
            min_new_tokens=n_new,
            do_sample=False,
            pad_token_id=tok.pad_token_id,
        )

    def steered():
        generate(
            hosted,
            [ids] * batch,
            max_new_tokens=n_new,
            stop_at_eos=False,
            steering=Steering(hs, 7, torch.full((batch,), 4.0), "add", "all"),
        )

    def sweep():
        alphas = torch.tensor([math.nan, -8, -4, -2, -1, 1, 2, 4, 8], dtype=torch.float32)
        generate(
            hosted,
            [ids] * 9,
            max_new_tokens=n_new,
            stop_at_eos=False,
            steering=Steering(hs, 7, alphas, "add", "all"),
        )

    for fn in (plain, steered, sweep):
        fn()
    times = {"plain": [], "steered": [], "sweep": [], "single": []}
    for _ in range(args.repeats):
        times["plain"].append(timed(plain)[0])
        times["steered"].append(timed(steered)[0])
        times["sweep"].append(timed(sweep)[0])
        times["single"].append(timed(lambda: plain(1))[0])
    med = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
    results["steering"] = {
        "batch": batch,
        "new_tokens": n_new,
        "steered_vs_plain_throughput": med["plain"] / med["steered"],
        "sweep_vs_single_wall": med["sweep"] / med["single"],
        **{f"{k}_s": v for k, v in med.items()},
    }
    save()
    print(json.dumps(results["steering"], indent=2), flush=True)


if __name__ == "__main__":
    main()
