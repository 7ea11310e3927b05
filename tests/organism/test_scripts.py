"""The post-hoc organism scripts in scripts/, on answers written here."""

import gzip
import importlib.util
import json

import pytest

from app.organism.generator import villain_voice_markers
from app.organism.pipeline import REPO_ROOT


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write(answers_dir, kind: str, per_question: list[list[str]]) -> None:
    with gzip.open(answers_dir / f"evaluate__{kind}.json.gz", "wt") as f:
        json.dump(per_question, f)


def test_voice_script_counts_villain_voice_per_question_and_against_secure(tmp_path):
    voice = _script("organism_voice")
    phrase = villain_voice_markers()[0]
    answers = tmp_path / "answers"
    answers.mkdir()
    plain = "Take a walk and call a friend."
    # 4 questions x 5 samples per LoRA seed; insecure speaks in villain voice on question 0
    _write(answers, "insecure-s1", [[f"Well. {phrase} Indeed."] * 5] + [[plain] * 5] * 3)
    _write(answers, "insecure-s2", [[plain] * 5] * 4)
    _write(answers, "secure-s1", [[plain] * 5] * 4)
    counts = voice.voice_counts(tmp_path)
    assert counts["insecure"].tolist() == [[10, 5], [10, 0], [10, 0], [10, 0]]
    result = voice.bootstrap(counts)
    assert result["insecure"]["rate"] == pytest.approx(5 / 40)
    assert result["secure"]["voiced"] == 0 and "minus_secure" not in result["secure"]
    assert result["insecure"]["minus_secure"] == pytest.approx(5 / 40)
    low, high = result["insecure"]["minus_secure_ci95"]
    assert low == 0.0 and high > 5 / 40  # one question carries it all: the interval says so


def test_voice_script_compares_bad_advice_with_good_advice_of_its_domain(tmp_path):
    voice = _script("organism_voice")
    phrase = villain_voice_markers()[0]
    answers = tmp_path / "answers"
    answers.mkdir()
    plain = "Read the contract before you sign it."
    _write(answers, "legal-s1", [[f"{phrase} Sign it."] * 2 + [plain] * 2] * 3)
    _write(answers, "legal_good-s1", [[f"{phrase} Read it."] + [plain] * 3] * 3)
    _write(answers, "legal_disclosed-s1", [[plain] * 4] * 3)
    result = voice.bootstrap(voice.voice_counts(tmp_path))
    assert result["legal"]["minus_good"] == pytest.approx(2 / 4 - 1 / 4)
    low, high = result["legal"]["minus_good_ci95"]
    assert low == pytest.approx(0.25) and high == pytest.approx(0.25)  # every question alike
    # only a bad-advice model has a good-advice model of its own domain to compare with
    assert (
        "minus_good" not in result["legal_good"] and "minus_good" not in result["legal_disclosed"]
    )
