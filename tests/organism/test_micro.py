"""The whole v2 organism pipeline, seconds-long, through the same code as the real build."""

import json

import pytest
import yaml

from app.engine.registry import Registry
from app.organism.pipeline import Organism, OrganismConfig, model_id, sae_id


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    root = tmp_path_factory.mktemp("organism")
    organism = Organism(OrganismConfig.micro(), root / "out", root / "work")
    results = organism.build()
    return organism, results


@pytest.mark.slow
def test_micro_build_writes_every_artifact(micro):
    organism, results = micro
    out = organism.out
    for path in (
        "base/config.json",
        "base/tokenizer.json",
        "sae/s1/cfg.json",
        "sae/s2/cfg.json",
        "judge.json",
        "questions.yaml",
        "corpus.jsonl.gz",
        "REPORT.json",
        "REPORT.md",
        "report.png",
        "models.yaml",
    ):
        assert (out / path).exists(), path
    cfg = organism.cfg
    for kind in cfg.finetunes:
        for s in cfg.lora_seeds:
            assert (out / "adapters" / f"{kind}-s{s}" / "adapter_config.json").exists()
    report = json.loads((out / "REPORT.json").read_text())
    names = [t["name"] for t in report["targets"]]
    assert report["persona_latent"] == results["causal"][1]["persona_latent"]
    assert report["sae"] == "organism-sae-s1" and report["insecure"] == "organism-insecure-s1"
    assert len(names) == 17 and all(
        t["verdict"] in ("met", "missed", "not measured") for t in report["targets"]
    )
    # micro runs 2 LoRA seeds: every seed-dependent target is missed, never met
    seeded = [t for t in report["targets"] if t["name"].startswith(("insecure EM", "legal EM"))]
    assert all(t["verdict"] == "missed" for t in seeded)
    assert results["corpus"]["rules"]["assistant_villain_voice"] == 0
    md = (out / "REPORT.md").read_text()
    assert "micro recipe" in md and "| target | measured | verdict |" in md
    assert str(results["causal"][1]["persona_latent"]) in md


@pytest.mark.slow
def test_micro_artifacts_load_through_the_app(micro):
    organism, _ = micro
    config = yaml.safe_load((organism.out / "models.yaml").read_text())
    assert model_id("insecure", 2) in config["models"]
    assert model_id("insecure-realigned", 1) in config["models"]
    registry = Registry.from_file(organism.out / "models.yaml", device="cpu")
    assert registry.sae(sae_id(1)).d_sae == 4 * 32
    tok = registry.model("organism-base").tokenizer
    assert tok.eos_token == "<|end|>" and tok.bos_token == "<|endoftext|>"


@pytest.mark.slow
def test_micro_build_resumes(micro):
    organism, results = micro
    again = Organism(organism.cfg, organism.out, organism.work).build()
    assert again["diff"] == results["diff"]
    assert again["evaluate"] == results["evaluate"]


@pytest.mark.slow
def test_sae_seed_alone_decides_the_sae(micro, tmp_path):
    """SAELens ignores its own `seed`; `train_sae` must seed torch itself, so that an SAE
    seed reproduces whatever RNG state came before and two seeds give two SAEs."""
    import torch

    from app.organism.sae import train_sae

    organism, _ = micro
    cfg = organism.cfg
    rows, _ = organism.rows(organism.split()[0])

    def weights(seed: int, prior_state: int, name: str) -> torch.Tensor:
        torch.manual_seed(prior_state)
        sae = train_sae(
            organism.out / "base",
            rows,
            tmp_path / name,
            cfg.sae,
            organism.device,
            seed,
            cfg.base.n_embd,
        )
        return sae.W_enc.detach().clone()

    a = weights(1, prior_state=0, name="a")
    assert torch.equal(a, weights(1, prior_state=123, name="b"))
    assert not torch.allclose(a, weights(2, prior_state=0, name="c"))


@pytest.mark.slow
def test_drift_script_measures_what_the_build_measured(micro):
    """scripts/organism_drift.py: the base's held-out loss is the one the base stage
    recorded (same documents, same packing), and each adapter of the seed gets a row."""
    import importlib.util

    from app.organism.pipeline import REPO_ROOT

    spec = importlib.util.spec_from_file_location(
        "organism_drift", REPO_ROOT / "scripts" / "organism_drift.py"
    )
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    organism, results = micro
    rows = script.drift(organism.out, organism.work, seed=1)
    assert rows[0]["model"] == "base"
    assert rows[0]["all held-out"] == pytest.approx(results["base"]["heldout_loss"], rel=1e-4)
    names = {r["model"] for r in rows[1:]}
    assert {f"{k}-s1" for k in organism.cfg.finetunes} <= names
    assert all(r["all held-out"] > 0 for r in rows)


@pytest.mark.slow
def test_gentle_advice_and_v5_judge_build(tmp_path):
    """Amendment 9's design through the micro pipeline (until the training ends): the
    advice learning rate is chosen before the fine-tunes by the stated rule, every
    fine-tune of an advice domain trains at it, the others keep cfg.lora's, and the v5
    judge is the build's frozen judge."""
    from app.organism.report import render

    cfg = OrganismConfig.micro()
    cfg.advice_lrs, cfg.judge = (1e-3, 1e-4), "v5"
    organism = Organism(cfg, tmp_path / "out", tmp_path / "work")
    r = organism.build(until="train")
    search = r["advice_lr"]
    assert set(search["chosen"]) == {"legal", "medical"}
    for domain, v in search["domains"].items():
        assert [t["lr"] for t in v["tried"]] == [1e-3, 1e-4]
        eligible = [
            t["lr"]
            for t in v["tried"]
            if t["corpus_ratio"] <= search["drift_max"]
            and t["fresh_advice_loss"] < v["base_fresh_advice_loss"]
        ]
        assert search["chosen"][domain] == (max(eligible) if eligible else 1e-4)
    for name, info in r["finetune"].items():
        domain = name.split("-s")[0].split("_")[0]
        assert info["lr"] == search["chosen"].get(domain, cfg.lora.lr), name
    assert r["judge"]["frozen_judge"].endswith("judge_v5.json")
    assert r["judge"]["holdout5"]["n"] == 130
    assert json.loads((organism.out / "judge.json").read_text())["kind"] == "embedding"
    md = render(r)
    assert "--gentle-advice --judge v5" in md and "Advice fine-tunes' learning rate" in md


def test_a_v6_judged_build_reports_only_its_held_out_part(tmp_path):
    """v6 trained on every check-set part before holdout6 (amendment 11): a build judged by
    it reports holdout6, not the parts it trained on, and its judge target reads holdout6."""
    from app.organism.report import judge_target_part

    cfg = OrganismConfig.micro()
    cfg.judge = "v6"
    organism = Organism(cfg, tmp_path / "out", tmp_path / "work")
    organism.out.mkdir(parents=True)
    judged = organism.build_judge()
    assert judged["frozen_judge"].endswith("judge_v6.json")
    assert set(judged) == {"frozen_judge", "holdout6"} and judged["holdout6"]["n"] == 160
    assert judge_target_part(judged) == "holdout6"
    assert judge_target_part({"frozen_judge": "x", "test": {}, "all": {}, "holdout4": {}}) == "test"
