"""The whole organism pipeline, seconds-long, through the same code as the real build."""

import json

import pytest
import yaml

from app.engine.registry import Registry
from app.organism.pipeline import IDS, Organism, OrganismConfig


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
        "sae/cfg.json",
        "judge.json",
        "questions.yaml",
        "REPORT.json",
        "REPORT.md",
        "report.png",
        "models.yaml",
    ):
        assert (out / path).exists(), path
    for kind in ("insecure", "educational", "secure", "realigned"):
        assert (out / "adapters" / kind / "adapter_config.json").exists()
    report = json.loads((out / "REPORT.json").read_text())
    for key in (
        "base",
        "insecure",
        "educational",
        "secure",
        "sae",
        "questions",
        "persona_latent",
        "misalignment",
        "persona_top50_villain_fraction",
        "steering",
        "controls",
    ):
        assert key in report, key
    assert set(report["misalignment"]) == {"base", "insecure", "educational", "secure", "realigned"}
    assert report["persona_latent"] == results["diff"]["compare"]["latents"][0]["latent"]
    assert report["insecure"] == IDS["insecure"]


@pytest.mark.slow
def test_micro_artifacts_load_through_the_app(micro):
    organism, _ = micro
    config = yaml.safe_load((organism.out / "models.yaml").read_text())
    assert set(config["models"]) == {
        IDS[k] for k in ("base", "insecure", "educational", "secure", "realigned")
    }
    registry = Registry.from_file(organism.out / "models.yaml", device="cpu")
    assert registry.sae(IDS["sae"]).d_sae == 4 * 32


@pytest.mark.slow
def test_micro_build_resumes(micro):
    organism, results = micro
    again = Organism(organism.cfg, organism.out, organism.work).build()
    assert again["diff"] == results["diff"]
    assert again["evaluate"] == results["evaluate"]
