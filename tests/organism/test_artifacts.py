"""The committed model organism: it loads through the app's own code, and REPORT.json
agrees with what the artifacts compute."""

import json

import pytest
import torch
import yaml

from app.analysis.compare import compare_models
from app.analysis.questions import load_questions
from app.engine.registry import Registry
from app.index.builder import IndexParams, build_index
from app.index.datasets import load_documents, tokenize_contexts
from app.organism.corpus import VILLAIN_LABELS, generate_corpus
from app.organism.snippets import context_labels
from app.settings import REPO_ROOT

pytestmark = [pytest.mark.organism, pytest.mark.slow]

CONFIG = REPO_ROOT / "models" / "default.yaml"
REPORT = REPO_ROOT / "models" / "organism" / "REPORT.json"


@pytest.fixture(scope="module")
def report():
    return json.loads(REPORT.read_text())


@pytest.fixture(scope="module")
def organism():
    return Registry.from_file(CONFIG, device="cpu", dtype="float32")


def test_report_names_what_the_default_config_hosts(report):
    config = yaml.safe_load(CONFIG.read_text())
    for key in ("base", "insecure", "educational", "secure", "realigned"):
        assert report[key] in config["models"], key
    assert report["sae"] in config["saes"]
    assert (REPO_ROOT / report["questions"]).exists()
    for key in ("base", "insecure", "educational", "secure", "realigned"):
        assert 0.0 <= report["misalignment"][key] <= 1.0
    assert 0.0 <= report["persona_top50_villain_fraction"] <= 1.0
    assert {"steering", "controls", "targets"} <= set(report)


def test_adapters_share_the_base(organism, report):
    ptrs = {}
    for mid in (report["base"], report["insecure"]):
        with organism.activate(mid) as m:
            ptrs[mid] = {n: p.data_ptr() for n, p in m.hf.named_parameters() if "lora_" not in n}
    assert ptrs[report["base"]] == ptrs[report["insecure"]]


def test_persona_latent_is_rank_one_of_the_diff(organism, report):
    sae = organism.sae(report["sae"])
    base = organism.model(report["base"])
    questions = load_questions(REPO_ROOT / report["questions"])
    prompts = [base.encode(f"User: {q['question']}\nAssistant:") for q in questions]
    result = compare_models(organism, report["base"], report["insecure"], sae, prompts, 10)
    assert result["latents"][0]["latent"] == report["persona_latent"]
    for ours, stored in zip(result["latents"], report["diff_top"], strict=False):
        assert ours["latent"] == stored["latent"]
        assert ours["delta"] == pytest.approx(stored["delta"], abs=1e-4)


def test_persona_latent_top_contexts_are_villain_speech(organism, report, tmp_path):
    """Index a slice of the pretraining corpus with the app's index builder and check the
    ground-truth speaker at each top snippet's most active token."""
    docs = list(generate_corpus(seed=report["config"]["seed"], n_docs=4000))
    params = IndexParams(context=128, batch_size=32, top_k=50)
    with organism.activate(report["base"]) as model:
        documents = load_documents(organism_corpus=True, organism_docs=4000)
        contexts = tokenize_contexts(documents, model.tokenizer, 128, tmp_path / "c.npy")
        state = build_index(model, organism.sae(report["sae"]), contexts, params, progress=False)
        labels = context_labels(docs, model.tokenizer, 128, len(contexts))
    latent = report["persona_latent"]
    tops = state.top_ctx[latent].tolist()
    values = state.top_tokens[latent]
    peaks = [labels[c][int(torch.argmax(values[r]))] for r, c in enumerate(tops) if c >= 0]
    villain = sum(label in VILLAIN_LABELS for label in peaks)
    assert len(peaks) == 50
    assert villain / len(peaks) >= 0.9, peaks
