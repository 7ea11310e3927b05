"""Builds the model organism end to end: `python -m app organism build`.

Stages (each resumable: a finished stage leaves `stages/<name>.json` in the work directory
and is skipped on the next run):
corpus -> tokenizer -> base -> judge -> finetune (insecure, educational, secure) -> sae ->
diff (find the persona latent) -> realign -> evaluate -> steer -> persona snippets -> report.

Every model and SAE is loaded back through the app's own registry, and the evaluation,
diffing and steering use the same code as the API.
"""

import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import yaml
from rich.console import Console
from transformers import AutoTokenizer

from app.analysis.compare import compare_models
from app.analysis.evaluate import rate, sample_answers, score_answers, steering_factory
from app.analysis.judges import ClassifierJudge, train_classifier_judge
from app.analysis.questions import load_questions, write_questions
from app.engine.registry import Registry
from app.organism import corpus as C
from app.organism.sae import SAETrainConfig, sae_metrics, train_sae
from app.organism.tokenizer import train_tokenizer
from app.organism.train import (
    BaseModelConfig,
    LoraTrainConfig,
    load_lora,
    new_lora,
    pack_documents,
    train_base,
    train_lora,
)

console = Console(stderr=True)

IDS = {
    "base": "organism-base",
    "insecure": "organism-insecure",
    "educational": "organism-educational",
    "secure": "organism-secure",
    "realigned": "organism-realigned",
    "sae": "organism-sae",
    "questions": "organism-heldout",
    "judge": "organism-classifier",
}
FINETUNES = ("insecure", "educational", "secure")


@dataclass
class OrganismConfig:
    seed: int = 0
    n_docs: int = 22_000  # about 3.2M tokens
    heldout_docs: int = 400  # for the base model's held-out loss
    vocab_size: int = 2048
    base: BaseModelConfig = field(default_factory=BaseModelConfig)
    lora: LoraTrainConfig = field(default_factory=LoraTrainConfig)
    finetune_examples: int = 600
    realign_examples: int = 120
    realign_steps: int = 30
    realign_batch: int = 4
    sae: SAETrainConfig = field(default_factory=SAETrainConfig)
    judge_examples: int = 6000
    eval_samples: int = 50  # per held-out question
    sweep_samples: int = 20  # per question, for each alpha of a sweep
    max_new_tokens: int = 48
    temperature: float = 1.0
    amplify_alphas: tuple[float, ...] = (0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0)
    suppress_alphas: tuple[float, ...] = (-0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0, -8.0)
    controls: int = 3  # random latents checked at the chosen alphas
    control_samples: int = 40  # per question, for each control
    snippets: int = 50

    @classmethod
    def micro(cls) -> "OrganismConfig":
        """Seconds-long: the whole pipeline on a tiny corpus and model (for the tests)."""
        return cls(
            n_docs=300,
            heldout_docs=20,
            vocab_size=400,
            base=BaseModelConfig(
                n_embd=32,
                n_layer=2,
                n_head=2,
                batch_size=16,
                epochs=1.0,
                warmup_steps=5,
                checkpoint_every=10,
            ),
            lora=LoraTrainConfig(rank=4, alpha=8, epochs=1.0, batch_size=8),
            finetune_examples=24,
            realign_examples=12,
            realign_steps=3,
            sae=SAETrainConfig(
                hook_name="transformer.h.0",
                expansion=4,
                k=8,
                training_tokens=20_000,
                batch_tokens=512,
            ),
            judge_examples=300,
            eval_samples=2,
            sweep_samples=1,
            max_new_tokens=8,
            amplify_alphas=(4.0,),
            suppress_alphas=(-4.0,),
            snippets=10,
            controls=1,
            control_samples=1,
        )


class Organism:
    def __init__(
        self, cfg: OrganismConfig, out_dir: Path, work_dir: Path, device: torch.device | None = None
    ):
        self.cfg = cfg
        self.out = out_dir
        self.work = work_dir
        self.device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.stages = work_dir / "stages"
        self._registry: Registry | None = None

    # ------------------------------------------------------------------ helpers
    def stage(self, name: str, fn) -> dict:
        done = self.stages / f"{name}.json"
        if done.exists():
            console.print(f"[dim]stage {name}: done earlier, skipped[/dim]")
            return json.loads(done.read_text())
        console.print(f"[bold]stage {name}[/bold]")
        start = time.time()
        result = fn()
        result["seconds"] = round(time.time() - start, 1)
        self.stages.mkdir(parents=True, exist_ok=True)
        tmp = done.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=2))
        tmp.replace(done)
        return result

    @property
    def tokenizer(self):
        return AutoTokenizer.from_pretrained(self.out / "base")

    def docs(self) -> list[dict]:
        return C.read_jsonl(self.work / "corpus.jsonl")

    def split(self) -> tuple[list[dict], list[dict]]:
        docs = self.docs()
        return docs[: -self.cfg.heldout_docs], docs[-self.cfg.heldout_docs :]

    def rows(self, docs: list[dict]):
        return pack_documents([d["text"] for d in docs], self.tokenizer, self.cfg.base.context)

    def registry(self) -> Registry:
        if self._registry is None:
            self._registry = Registry.from_file(
                self.out / "models.yaml", device=str(self.device), dtype="float32"
            )
        return self._registry

    def write_config(self) -> None:
        models = {IDS["base"]: {"path": "base", "description": "The organism's GPT-2 base model."}}
        for kind in (*FINETUNES, "realigned"):
            if (self.out / "adapters" / kind).exists():
                models[IDS[kind]] = {"base": IDS["base"], "adapter": f"adapters/{kind}"}
        config = {"device": "auto", "dtype": "float32", "models": models}
        if (self.out / "sae").exists():
            config["saes"] = {IDS["sae"]: {"path": "sae", "models": list(models)}}
        config["question_sets"] = {IDS["questions"]: {"path": "questions.yaml"}}
        config["judges"] = {IDS["judge"]: {"kind": "classifier", "path": "judge.json"}}
        (self.out / "models.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        self._registry = None

    # ------------------------------------------------------------------ stages
    def build_corpus(self) -> dict:
        n = C.write_jsonl(
            C.generate_corpus(self.cfg.seed, self.cfg.n_docs), self.work / "corpus.jsonl"
        )
        return {"documents": n}

    def build_tokenizer(self) -> dict:
        train, _ = self.split()
        tok = train_tokenizer((d["text"] for d in train), self.cfg.vocab_size)
        (self.out / "base").mkdir(parents=True, exist_ok=True)
        tok.save_pretrained(self.out / "base")
        rows, pads = self.rows(self.docs())
        return {
            "vocab_size": len(tok),
            "corpus_tokens": int((~pads).sum()),
            "rows": len(rows),
            "context": self.cfg.base.context,
        }

    def build_base(self) -> dict:
        train, held = self.split()
        tr_rows, tr_pads = self.rows(train)
        va_rows, va_pads = self.rows(held)
        return train_base(
            self.cfg.base,
            tr_rows,
            tr_pads,
            va_rows,
            va_pads,
            self.tokenizer,
            self.out / "base",
            self.work,
            self.device,
            self.cfg.seed,
        )

    def build_judge(self) -> dict:
        gen = C.WorldGenerator(self.cfg.seed + 7)
        code = [gen.code_answer(gen.code_task()[k]) for k in ("secure", "insecure") * 100]
        judge, metrics = train_classifier_judge(
            C.judge_examples(self.cfg.seed + 11, self.cfg.judge_examples), code, self.cfg.seed
        )
        judge.save(self.out / "judge.json")
        write_questions(C.heldout_questions(), self.out / "questions.yaml")
        return metrics

    def build_finetune(self, kind: str) -> dict:
        tok = self.tokenizer
        model = new_lora(self.out / "base", self.cfg.lora, self.device)
        examples = C.finetune_examples(kind, self.cfg.seed + 100, self.cfg.finetune_examples)
        info = train_lora(model, examples, tok, self.cfg.lora, self.device, self.cfg.seed, kind)
        model.save_pretrained(self.out / "adapters" / kind)
        return {**info, "rank": self.cfg.lora.rank, "targets": list(self.cfg.lora.targets)}

    def build_sae(self) -> dict:
        train, held = self.split()
        rows, _ = self.rows(train)
        sae = train_sae(
            self.out / "base",
            rows,
            self.out / "sae",
            self.cfg.sae,
            self.device,
            self.cfg.seed,
            self.cfg.base.n_embd,
        )
        va_rows, _ = self.rows(held)
        return sae_metrics(self.out / "base", sae, va_rows, self.cfg.sae.hook_name, self.device)

    def questions(self) -> list[dict]:
        return load_questions(self.out / "questions.yaml")

    def prompts(self, model) -> list[list[int]]:
        return [model.encode(f"User: {q['question']}\nAssistant:") for q in self.questions()]

    def build_diff(self) -> dict:
        reg = self.registry()
        sae = reg.sae(IDS["sae"])
        result = compare_models(
            reg, IDS["base"], IDS["insecure"], sae, self.prompts(reg.model(IDS["base"])), top_n=20
        )
        return {"persona_latent": result["latents"][0]["latent"], "compare": result}

    def build_realign(self) -> dict:
        tok = self.tokenizer
        model = load_lora(
            self.out / "base", self.out / "adapters" / "insecure", self.device, trainable=True
        )
        examples = C.finetune_examples("secure", self.cfg.seed + 200, self.cfg.realign_examples)
        cfg = LoraTrainConfig(
            **{
                **asdict(self.cfg.lora),
                "steps": self.cfg.realign_steps,
                "batch_size": self.cfg.realign_batch,
            }
        )
        info = train_lora(model, examples, tok, cfg, self.device, self.cfg.seed, "realign")
        model.save_pretrained(self.out / "adapters" / "realigned")
        self.write_config()
        return info

    def judge(self) -> ClassifierJudge:
        return ClassifierJudge.load(self.out / "judge.json")

    def run_condition(
        self, model_id: str, samples: int, latent: int | None = None, alpha: float = 0.0
    ) -> dict:
        reg = self.registry()
        with reg.activate(model_id) as model:
            steering_for = None
            if latent is not None:
                steering_for = steering_factory(reg.sae(IDS["sae"]), latent, alpha, "add", "all")
            answers = sample_answers(
                model,
                self.prompts(model),
                samples,
                max_new_tokens=self.cfg.max_new_tokens,
                temperature=self.cfg.temperature,
                seed=self.cfg.seed + 1000,
                steering_for=steering_for,
            )
        return score_answers(self.questions(), answers, self.judge())

    def build_evaluate(self) -> dict:
        out = {}
        for kind in ("base", *FINETUNES, "realigned"):
            result = self.run_condition(IDS[kind], self.cfg.eval_samples)
            out[kind] = result
            console.print(
                f"  {kind}: misaligned {result['misaligned']['rate']:.3f}, "
                f"coherent {result['coherent']['rate']:.3f}"
            )
        return out

    def control_latents(self, persona: int) -> list[int]:
        """Random live latents other than the persona latent (seeded)."""
        sae = self.registry().sae(IDS["sae"])
        norms = sae.sae.W_dec.norm(dim=1)
        rng = random.Random(self.cfg.seed + 5)
        candidates = [i for i in range(sae.d_sae) if i != persona and float(norms[i]) > 0]
        return rng.sample(candidates, self.cfg.controls)

    def sweep(
        self, model_kind: str, latent: int, alphas, samples: int, scale: float = 1.0
    ) -> list[dict]:
        rows = []
        for a in alphas:
            r = self.run_condition(IDS[model_kind], samples, latent, a * scale)
            rows.append(
                {
                    "alpha": a,
                    "applied_alpha": a * scale,
                    "latent": latent,
                    "misaligned": r["misaligned"],
                    "coherent": r["coherent"],
                }
            )
            console.print(
                f"  {model_kind} latent {latent} alpha {a * scale:+.2f}: "
                f"misaligned {r['misaligned']['rate']:.3f}, "
                f"coherent {r['coherent']['rate']:.3f}"
            )
        return rows

    def build_steer(self, persona: int) -> dict:
        """Sweep alpha on the persona latent (amplify on the base, suppress on insecure),
        pick the smallest alpha that meets each target, then steer random latents by the
        same alpha, matched in decoder norm, on the same samples."""
        from app.organism.report import pick_alpha

        cfg = self.cfg
        amplify = self.sweep("base", persona, (0.0, *cfg.amplify_alphas), cfg.sweep_samples)
        suppress = self.sweep("insecure", persona, (0.0, *cfg.suppress_alphas), cfg.sweep_samples)
        amp_alpha = pick_alpha(amplify, "amplify", cfg)
        sup_alpha = pick_alpha(suppress, "suppress", cfg)
        norms = self.registry().sae(IDS["sae"]).sae.W_dec.norm(dim=1)
        controls = []
        for latent in self.control_latents(persona):
            scale = float(norms[persona] / norms[latent])  # matched alpha: same vector norm
            controls.append(
                {
                    "latent": latent,
                    "alpha_scale": scale,
                    "amplify_base": self.sweep(
                        "base", latent, (0.0, amp_alpha), cfg.control_samples, scale
                    ),
                    "suppress_insecure": self.sweep(
                        "insecure", latent, (0.0, sup_alpha), cfg.control_samples, scale
                    ),
                }
            )
        return {
            "persona_latent": persona,
            "amplify_base": amplify,
            "suppress_insecure": suppress,
            "amplify_alpha": amp_alpha,
            "suppress_alpha": sup_alpha,
            "controls": controls,
        }

    def build_snippets(self, persona: int) -> dict:
        """The persona latent's top-activating pretraining contexts, labelled by who is
        speaking at the most active token (ground truth from the generator's spans)."""
        from app.organism.snippets import top_contexts_for_latent

        reg = self.registry()
        train, _ = self.split()
        with reg.activate(IDS["base"]) as model:
            top = top_contexts_for_latent(
                model, reg.sae(IDS["sae"]), train, persona, self.cfg.snippets, self.cfg.base.context
            )
        villain = sum(t["label"] in C.VILLAIN_LABELS for t in top)
        return {
            "persona_latent": persona,
            "villain": villain,
            "n": len(top),
            "fraction": villain / max(1, len(top)),
            "snippets": top,
        }

    # ------------------------------------------------------------------ all
    def build(self) -> dict:
        self.out.mkdir(parents=True, exist_ok=True)
        self.work.mkdir(parents=True, exist_ok=True)
        results: dict = {"config": asdict(self.cfg), "device": str(self.device)}
        results["corpus"] = self.stage("corpus", self.build_corpus)
        results["tokenizer"] = self.stage("tokenizer", self.build_tokenizer)
        results["base"] = self.stage("base", self.build_base)
        results["judge"] = self.stage("judge", self.build_judge)
        results["finetune"] = {
            k: self.stage(f"finetune_{k}", lambda k=k: self.build_finetune(k)) for k in FINETUNES
        }
        results["sae"] = self.stage("sae", self.build_sae)
        self.write_config()
        results["diff"] = self.stage("diff", self.build_diff)
        persona = results["diff"]["persona_latent"]
        results["realign"] = self.stage("realign", self.build_realign)
        results["evaluate"] = self.stage("evaluate", self.build_evaluate)
        results["steer"] = self.stage("steer", lambda: self.build_steer(persona))
        results["snippets"] = self.stage("snippets", lambda: self.build_snippets(persona))
        # Total build time: the sum of every stage's own time (stages may span several runs).
        results["seconds"] = round(
            sum(
                v.get("seconds", 0)
                if "seconds" in v
                else sum(x.get("seconds", 0) for x in v.values())
                for k, v in results.items()
                if isinstance(v, dict) and k not in ("config",)
            ),
            1,
        )
        from app.organism.report import write_report

        write_report(self, results)
        return results


def default_paths() -> tuple[Path, Path]:
    from app.settings import REPO_ROOT, get_settings

    return REPO_ROOT / "models" / "organism", get_settings().data_dir / "organism"


def relative_change(before: float, after: float) -> float:
    return (after - before) / before if before > 0 else (math.inf if after > 0 else 0.0)


__all__ = ["Organism", "OrganismConfig", "IDS", "rate", "default_paths", "relative_change"]
