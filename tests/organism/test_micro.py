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
