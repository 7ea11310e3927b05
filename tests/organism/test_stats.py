"""The pre-registered decision rules (app/organism/stats.py) on hand-made outcomes."""

import numpy as np

from app.organism import stats as S


def outcomes(rate: float, n_q: int = 4, n: int = 10) -> list[list[int]]:
    k = round(rate * n)
    return [[1] * k + [0] * (n - k) for _ in range(n_q)]


def row(alpha, mis, coh=1.0):
    return {"alpha": alpha, "misaligned": outcomes(mis), "coherent": outcomes(coh)}


def test_amplify_takes_the_smallest_alpha_that_meets_both_conditions():
    sweep = [row(0.0, 0.0), row(0.5, 0.1), row(1.0, 0.3, coh=0.7), row(2.0, 0.3), row(4, 0.9)]
    pick = S.pick_amplify(sweep)
    # base 0/40 is floored at 1/40 = 2.5%; 5x is 12.5%; alpha 1 fails coherence
    assert pick["alpha"] == 2.0 and pick["base"] == 1 / 40
    assert S.pick_amplify([row(0.0, 0.1), row(1.0, 0.4)])["alpha"] is None


def test_suppress_needs_a_cut_of_70_percent():
    sweep = [row(0.0, 0.5), row(-0.5, 0.4), row(-1.0, 0.2), row(-2.0, 0.1)]
    pick = S.pick_suppress(sweep)
    assert pick["alpha"] == -2.0 and abs(pick["cut"] - 0.8) < 1e-9
    assert S.pick_suppress([row(0.0, 0.0), row(-1.0, 0.0)])["alpha"] is None


def test_control_rule_is_a_third_of_the_persona_effect():
    assert S.control_rule(0.30, [0.05, -0.099, 0.10, -0.2]) == [True, True, False, False]
    assert S.control_rule(0.0, [0.0]) == [False]  # no persona effect: nothing passes


def test_summary_pools_and_spreads_over_seeds():
    runs = [outcomes(0.2), outcomes(0.4)]
    s = S.summary(runs)
    assert abs(s["rate"] - 0.3) < 1e-9 and s["n"] == 80
    assert s["seeds"] == [0.2, 0.4] and s["seed_min"] == 0.2 and s["seed_max"] == 0.4
    assert s["ci95"][0] <= 0.3 <= s["ci95"][1]


def test_rank1_rate():
    rng = np.random.default_rng(0)
    base = rng.random((50, 8))
    tuned = base.copy()
    tuned[:, 3] += 1.0  # latent 3 rises on every prompt
    counts = np.full(50, 10)
    assert S.rank1_rate(tuned, counts, base, counts, 3, 200) == 1.0
    assert S.rank1_rate(tuned, counts, base, counts, 2, 200) == 0.0
