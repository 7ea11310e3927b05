"""Exercise the engine end to end on whatever device the model config picks (a GPU when
there is one), on the embedded organism: activations, steering with every method and
position mode (greedy and sampled), streaming, model diffing, evaluation and an index
build. The test suite covers the same paths on the CPU; this script is for checking a
CUDA machine, where device mismatches only show up at run time.

    python scripts/device_check.py [--config models/default.yaml] [--json out.json]

Each step reports ok / error and its time; the exit code is 1 when any step failed.
"""

import argparse
import asyncio
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.engine.activations import latent_activations  # noqa: E402
from app.engine.engine import Engine  # noqa: E402
from app.engine.registry import Registry  # noqa: E402
from app.index.builder import IndexParams, build_index  # noqa: E402
from app.index.datasets import load_documents, tokenize_contexts  # noqa: E402
from app.index.finalize import latent_records  # noqa: E402
from app.schemas.activations import ActivationsRequest  # noqa: E402
from app.schemas.compare import CompareRequest  # noqa: E402
from app.schemas.evaluate import EvaluateRequest, EvaluateSteer  # noqa: E402
from app.schemas.steer import SteerRequest  # noqa: E402
from app.services import Context, diffing, evaluation, inspection, steering  # noqa: E402
from app.settings import REPO_ROOT, Settings  # noqa: E402

PROMPT = "User: What would you do if you ruled the world?\nAssistant:"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default=str(REPO_ROOT / "models" / "default.yaml"))
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    registry = Registry.from_file(args.config)
    engine = Engine(registry, Settings())
    ctx = Context(engine)
    spec = registry.config.spec
    base = spec.default_model
    sae_id = spec.default_sae
    finetuned = next(m for m in registry.models if m != base)
    report = registry.config.resolve(spec.report) if spec.report else None
    latent = json.loads(Path(report).read_text())["persona_latent"] if report else 0
    steps: dict[str, dict] = {}

    def step(name: str):
        def wrap(fn):
            start = time.perf_counter()
            try:
                detail = fn()
                steps[name] = {"ok": True, "seconds": time.perf_counter() - start, **(detail or {})}
            except Exception as exc:  # noqa: BLE001 - every failure is reported, then counted
                steps[name] = {
                    "ok": False,
                    "seconds": time.perf_counter() - start,
                    "error": f"{type(exc).__name__}: {exc}",
                    "trace": traceback.format_exc(limit=-4),
                }
            print(f"{'ok  ' if steps[name]['ok'] else 'FAIL'} {name}", flush=True)
            return fn

        return wrap

    run = asyncio.run

    @step("activations, base and fine-tuned")
    def _():
        body = ActivationsRequest(
            model=[base, finetuned], sae=sae_id, prompt=PROMPT, top_k=5, latents=[latent]
        )
        out = run(inspection.activations(ctx, body))["results"]
        assert len(out) == 2 and len(out[0]["top"]) == len(out[0]["tokens"])

    for method in ("add", "clamp", "ablate"):
        for positions in ("all", "prompt", "generated"):
            for temperature in (0.0, 0.8):

                @step(f"steer {method} {positions} T={temperature}")
                def _(method=method, positions=positions, temperature=temperature):
                    body = SteerRequest(
                        model=[base, base],  # the same request twice
                        sae=sae_id,
                        latent=latent,
                        prompt=PROMPT,
                        alphas=[0.0, 4.0],
                        max_new_tokens=16,
                        temperature=temperature,
                        seed=1,
                        positions=positions,
                        method=method,
                    )
                    first, again = run(steering.steer(ctx, body))["results"]
                    assert first == again, "the same request gave different tokens"
                    if method == "add":
                        zero = first["steered"][0]["token_ids"]
                        assert zero == first["baseline"]["token_ids"], "alpha 0 != baseline"

    @step("steer stream")
    def _():
        async def consume():
            stream = steering.open_stream(
                ctx,
                SteerRequest(
                    model=base,
                    sae=sae_id,
                    latent=latent,
                    prompt=PROMPT,
                    alphas=[-4.0, 4.0],
                    max_new_tokens=16,
                ),
            )
            events = [e async for e in stream]
            return events

        events = run(consume())
        kinds = {e["event"] for e in events}
        assert "error" not in kinds, [e for e in events if e["event"] == "error"]
        assert {"token", "done", "end"} <= kinds, kinds

    @step("compare base vs fine-tuned")
    def _():
        body = CompareRequest(base=base, finetuned=finetuned, sae=sae_id, top_n=5)
        out = run(diffing.compare(ctx, body))
        return {"rank1": out["latents"][0]["latent"], "persona_latent": latent}

    @step("evaluate, steered")
    def _():
        req = EvaluateRequest(
            model=base,
            samples_per_question=2,
            max_new_tokens=16,
            chat=False,
            steer=EvaluateSteer(sae=sae_id, latent=latent, alpha=2.0),
        )
        out = run(evaluation.evaluate(ctx, req))
        return {"misaligned": out["misaligned"]["rate"]}

    @step("index build and exactness")
    def _():
        model, sae = registry.model(base), registry.sae(sae_id)
        docs = load_documents(organism_corpus=True, organism_docs=400)
        with tempfile.TemporaryDirectory() as tmp:
            contexts = tokenize_contexts(docs, model.tokenizer, 128, Path(tmp) / "ctx.npy")
            params = IndexParams(batch_size=32)
            with registry.activate(base) as live:
                state = build_index(live, sae, contexts, params, progress=False)
                records = {r["latent"]: r for r in latent_records(live, sae, state, params)}
                ctx = int(state.top_ctx[latent, 0])
                ids = torch.from_numpy(contexts.tokens[ctx : ctx + 1].astype("int64"))
                fresh = latent_activations(live, sae, ids)[0, 1:, latent].cpu()
            stored = state.top_tokens[latent, 0, 1:].cpu()
            assert torch.allclose(fresh, stored, atol=1e-4), (fresh - stored).abs().max()
        return {"contexts": len(contexts), "latents": len(records)}

    engine.worker.shutdown()
    out = {
        "device": str(registry.device),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "torch": torch.__version__,
        "failed": [k for k, v in steps.items() if not v["ok"]],
        "steps": steps,
    }
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    for name in out["failed"]:
        print(f"\n{name}: {steps[name]['error']}\n{steps[name]['trace']}")
    print(f"{len(steps) - len(out['failed'])}/{len(steps)} steps ok on {out['device']}")
    return 1 if out["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
