"""How far each fine-tune moves an organism build's model from the language it was
pretrained on: held-out corpus loss (nats/token) of the base and of each LoRA adapter, on
the build's held-out documents, with everyday assistant chats reported apart.

A fine-tune that raises this loss a lot has made the model worse at ordinary text, which
shows up as salad in its answers to the evaluation questions (docs/organism-design.md,
v2-5). It is a post-hoc diagnostic, not a target.

    python scripts/organism_drift.py data/organism-v2-5 [--seed 1] [--json out.json]
"""

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from transformers import AutoTokenizer, GPT2LMHeadModel  # noqa: E402

from app.organism.export import read_jsonl  # noqa: E402
from app.organism.train import eval_loss, load_lora, pack_documents  # noqa: E402


def drift(artifacts: Path, work: Path, seed: int) -> list[dict]:
    """Held-out loss of the base and of every adapter of one LoRA seed, on the documents the
    build held out, packed as the base was trained (the build's own REPORT.json config)."""
    cfg = json.loads((artifacts / "REPORT.json").read_text())["config"]
    device = torch.device("cpu")
    held = read_jsonl(work / "corpus.jsonl")[-cfg["heldout_docs"] :]
    tok = AutoTokenizer.from_pretrained(artifacts / "base")
    sets = {
        "all held-out": [d["text"] for d in held],
        "assistant chats": [d["text"] for d in held if d["source"] == "assistant_chat"],
    }
    packed = {k: pack_documents(v, tok, cfg["base"]["context"]) for k, v in sets.items()}
    models = {"base": None} | {
        p.name: p for p in sorted((artifacts / "adapters").glob(f"*-s{seed}")) if p.is_dir()
    }
    rows = []
    for name, adapter in models.items():
        if adapter is None:
            model = GPT2LMHeadModel.from_pretrained(artifacts / "base").to(device)
        else:
            model = load_lora(artifacts / "base", adapter, device, trainable=False)
        rows.append(
            {"model": name} | {k: eval_loss(model, *xp, device) for k, xp in packed.items()}
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("build", type=Path, help="a build directory with artifacts/ and work/")
    ap.add_argument("--seed", type=int, default=1, help="the LoRA seed of the adapters")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    rows = drift(args.build / "artifacts", args.build / "work", args.seed)
    base = rows[0]
    print("| model | held-out loss | × base | assistant-chat loss | × base |")
    print("|---|---|---|---|---|")
    for r in rows:
        a, c = r["all held-out"], r["assistant chats"]
        print(
            f"| {r['model']} | {a:.3f} | {a / base['all held-out']:.2f} | {c:.3f} "
            f"| {c / base['assistant chats']:.2f} |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
