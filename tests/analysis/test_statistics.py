"""The evaluation's statistics: independent noise per (question, sample), pooled seeds,
cluster-bootstrap intervals, answers cut only at the model's end of turn."""

from types import SimpleNamespace

import numpy as np
import pytest

from app.analysis import evaluate as E
from app.analysis.judges import Score


def test_cluster_bootstrap_is_wider_than_wilson_when_questions_differ():
    # 4 questions x 100 answers: two always misaligned, two never
    groups = [[1] * 100, [1] * 100, [0] * 100, [0] * 100]
    low, high = E.cluster_bootstrap(groups)
    w_low, w_high = E.wilson(200, 400)
    assert high - low > 4 * (w_high - w_low)
    assert low < 0.5 < high


def test_cluster_bootstrap_is_narrow_when_questions_agree():
    rng = np.random.default_rng(1)
    groups = [list(rng.random(200) < 0.3) for _ in range(16)]
    low, high = E.cluster_bootstrap(groups)
    assert 0.22 < low < 0.3 < high < 0.38


def test_cluster_bootstrap_of_one_question_is_wilson():
    assert E.cluster_bootstrap([[1, 0, 0, 0]]) == E.wilson(1, 4)


def test_paired_bootstrap_of_a_cut():
    before = [[1] * 10, [1] * 10, [0, 1] * 5]
    after = [[0] * 10, [0] * 10, [0] * 10]
    low, high = E.paired_cluster_bootstrap(before, after, lambda b, a: 1 - a / b)
    assert low == pytest.approx(1.0) and high == pytest.approx(1.0)


def test_noise_streams_are_distinct_and_stable():
    prompts = [[1, 2, 3], [1, 2, 4], [9]]
    streams = {E.noise_stream(p, k) for p in prompts for k in range(50)}
    assert len(streams) == 150
    assert E.noise_stream([1, 2, 3], 7) == E.noise_stream([1, 2, 3], 7)


class FakeTokenizer:
    def decode(self, row, skip_special_tokens=True):
        return " ".join(str(t) for t in row) + "\nUser: and then"


def fake_generate(model, prompts, *, max_new_tokens, temperature, seed, streams, steering):
    model.calls.append({"seed": seed, "streams": list(streams)})
    return [[seed % 97, s % 1000] for s in streams]


def test_sample_answers_uses_one_stream_per_question_and_sample(monkeypatch):
    monkeypatch.setattr(E, "generate", fake_generate)
    model = SimpleNamespace(tokenizer=FakeTokenizer(), calls=[])
    prompts = [[5, 6], [7, 8], [9]]
    answers = E.sample_answers(
        model, prompts, 4, max_new_tokens=3, temperature=1.0, seed=11, batch_size=5
    )
    streams = [s for c in model.calls for s in c["streams"]]
    assert len(streams) == len(set(streams)) == 12
    # the answer is the decoded text: nothing is cut at a "User:" marker
    assert all(a.endswith("User: and then") for g in answers for a in g)
    # the same seed reuses the same streams (common random numbers for paired conditions)
    again = E.sample_answers(model, prompts, 4, max_new_tokens=3, temperature=1.0, seed=11)
    assert again == answers


def test_pooled_seeds(monkeypatch):
    monkeypatch.setattr(E, "generate", fake_generate)
    model = SimpleNamespace(tokenizer=FakeTokenizer(), calls=[])
    pooled = E.sample_answers_pooled(
        model, [[1], [2]], 3, seeds=[1000, 2000, 3000], max_new_tokens=2, temperature=1.0
    )
    assert [len(g) for g in pooled] == [9, 9]
    assert sorted({c["seed"] for c in model.calls}) == [1000, 2000, 3000]


class CountingJudge:
    name = "fake"

    def score(self, pairs):
        return [Score(aligned=0.0 if "bad" in a else 100.0, coherent=90.0) for _, a in pairs]


def test_score_answers_reports_the_cluster_interval():
    questions = [{"id": f"q{i}", "question": f"q{i}"} for i in range(4)]
    answers = [["bad"] * 20, ["bad"] * 20, ["good"] * 20, ["good"] * 20]
    result = E.score_answers(questions, answers, CountingJudge())
    m = result["misaligned"]
    assert m["rate"] == 0.5 and m["n"] == 80 and m["count"] == 40
    assert m["ci95"] == list(E.cluster_bootstrap([[1] * 20, [1] * 20, [0] * 20, [0] * 20]))
    assert m["ci95"][1] - m["ci95"][0] > 0.5  # Wilson on 80 answers would give ~0.2
    assert "cluster bootstrap" in result["intervals"]["overall"]
    assert result["questions"][0]["misaligned"]["ci95"] == list(E.wilson(20, 20))
