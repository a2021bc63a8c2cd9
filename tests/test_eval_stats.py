"""Statistics, leaderboard and plots of the evaluation harness (docs/method.md §7).

Expected numbers are worked out by hand in the comments, or taken from a published example
(Krippendorff 2011), so each test reads as "the textbook says X; the code gives X".
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binomtest

from evals.stats import (
    Estimate,
    cohen_kappa,
    krippendorff_alpha_interval,
    krippendorff_alpha_nominal,
    mean_ci,
    paired_bootstrap,
    proportion_ci,
    sign_test,
    spearman,
)

# ---------------------------------------------------------------------------------- mean_ci


def test_mean_ci_mean_and_interval():
    est = mean_ci([1, 2, 3, 4, 5])
    assert est.mean == 3.0 and est.n == 5  # (1+2+3+4+5) / 5
    assert 1.0 <= est.low < 3.0 < est.high <= 5.0  # the CI holds the mean, inside the data range


def test_mean_ci_shrinks_with_n():
    pattern = list(range(1, 11))  # same spread, 10x and 100x the samples
    w10 = (e := mean_ci(pattern)).high - e.low
    w100 = (e := mean_ci(pattern * 10)).high - e.low
    w1000 = (e := mean_ci(pattern * 100)).high - e.low
    # width ~ 1/sqrt(n): each 10x cuts it by ~3.16
    assert w1000 < w100 / 2 < w10 / 4


def test_mean_ci_reproducible_with_seed():
    values = [3.0, 7.5, 8.0, 2.0, 9.0, 6.5, 5.0]
    assert mean_ci(values, seed=1) == mean_ci(values, seed=1)
    assert mean_ci(values, seed=1) != mean_ci(values, seed=2)


def test_mean_ci_edge_cases():
    assert mean_ci([7.0]) == Estimate(7.0, 7.0, 7.0, 1)
    with pytest.raises(ValueError):
        mean_ci([])
    with pytest.raises(ValueError, match="missing"):
        mean_ci([1.0, float("nan")])  # the caller excludes failures and counts them
    with pytest.raises(ValueError):
        mean_ci([1.0, None])  # type: ignore[list-item]


def test_mean_ci_wider_at_higher_confidence():
    values = list(range(20))
    e90, e99 = mean_ci(values, confidence=0.90), mean_ci(values, confidence=0.99)
    assert e99.low < e90.low and e99.high > e90.high


def test_estimate_fmt():
    assert Estimate(7.91, 7.49, 8.26, 50).fmt() == "7.9 [7.5, 8.3]"


# ---------------------------------------------------------------------------- proportion_ci


def test_proportion_ci_wilson_by_hand():
    # 3 of 10, z = 1.959964: centre = (0.3 + z^2/20) / (1 + z^2/10) = 0.355506,
    # half = z sqrt(0.3*0.7/10 + z^2/400) / (1 + z^2/10) = 0.247716 -> [10.78%, 60.32%]
    est = proportion_ci([True] * 3 + [False] * 7)
    assert est.mean == pytest.approx(30.0) and est.n == 10
    assert est.low == pytest.approx(10.779, abs=1e-3)
    assert est.high == pytest.approx(60.322, abs=1e-3)


def test_proportion_ci_zero_successes_still_has_width():
    # 0 of 25: Wilson upper = 2 * (z^2/50) / (1 + z^2/25) = 0.133192 -> 13.32%
    est = proportion_ci([False] * 25)
    assert (est.mean, est.low) == (0.0, 0.0)
    assert est.high == pytest.approx(13.319, abs=1e-3)


def test_proportion_ci_bootstrap_variant():
    est = proportion_ci([True] * 30 + [False] * 70, method="bootstrap")
    assert est.mean == pytest.approx(30.0) and est.low < 30.0 < est.high
    with pytest.raises(ValueError):
        proportion_ci([])


# ------------------------------------------------------------------------ paired tests

BASE = np.array([5, 6, 7, 4, 5, 6, 7, 5, 6, 4] * 3, dtype=float)
GAIN = np.array([1, 2, 1, 0, 2, 1, 1, 2, 1, 1] * 3, dtype=float)  # a >= b everywhere
NOISE = np.array([1, -1, 2, -2, 0, 1, -1, 3, -3, 0] * 3, dtype=float)  # mean exactly 0


def test_paired_bootstrap_detects_clear_difference():
    res = paired_bootstrap(BASE + GAIN, BASE)
    assert res.mean_diff == pytest.approx(1.2)  # sum(GAIN) / 10 = 12 / 10
    assert res.low > 0 and res.p_value < 0.01 and res.n == 30


def test_paired_bootstrap_no_difference_on_null():
    res = paired_bootstrap(BASE + NOISE, BASE)
    assert res.mean_diff == pytest.approx(0.0)
    assert res.low < 0 < res.high and res.p_value > 0.05


def test_paired_bootstrap_is_seeded_and_checks_lengths():
    assert paired_bootstrap(BASE + NOISE, BASE, seed=3) == paired_bootstrap(BASE + NOISE, BASE,
                                                                            seed=3)
    with pytest.raises(ValueError):
        paired_bootstrap([1.0, 2.0], [1.0])


def test_sign_test_by_hand():
    # 8 wins, 2 losses, 1 tie: ties dropped, n = 10; two-sided p = 2 P(X >= 8) =
    # 2 (C(10,8) + C(10,9) + C(10,10)) / 2^10 = 2 (45 + 10 + 1) / 1024 = 0.109375
    a = [5, 6, 7, 8, 9, 5, 6, 7, 1, 2, 4]
    b = [4, 5, 6, 7, 8, 4, 5, 6, 2, 3, 4]
    res = sign_test(a, b)
    assert (res.wins, res.losses, res.ties, res.n) == (8, 2, 1, 11)
    assert res.p_value == pytest.approx(0.109375)
    assert res.p_value == pytest.approx(binomtest(8, 10, 0.5).pvalue)


def test_sign_test_all_ties():
    assert sign_test([1, 2], [1, 2]).p_value == 1.0


# ----------------------------------------------------------------------- agreement


def test_spearman_known_ranks():
    # no ties: rho = 1 - 6 sum d^2 / (n (n^2 - 1)); d = (-1, 1, -1, 1, 0): 1 - 6*4/120 = 0.8
    assert spearman([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]).rho == pytest.approx(0.8)
    assert spearman([1, 2, 3, 4], [1, 8, 27, 64]).rho == pytest.approx(1.0)  # monotone
    assert spearman([1, 2, 3, 4], [9, 7, 5, 1]).rho == pytest.approx(-1.0)
    assert math.isnan(spearman([1, 2, 3], [4, 4, 4]).rho)  # a constant side has no ranking


def test_cohen_kappa_two_by_two():
    # yes/yes 20, yes/no 5, no/yes 10, no/no 15 (n = 50): p_o = 35/50 = 0.7;
    # A says yes 25/50, B says yes 30/50: p_e = 0.5*0.6 + 0.5*0.4 = 0.5; kappa = 0.2/0.5 = 0.4
    a = ["yes"] * 25 + ["no"] * 25
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4)
    assert cohen_kappa(a, a) == pytest.approx(1.0)
    assert math.isnan(cohen_kappa(["x", "x"], ["x", "x"]))


# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", example C: 4 observers,
# 12 units, values 1-5, missing data (None); unit 12 has one value and is not pairable.
_K = None
KRIPPENDORFF_2011 = {
    "A": [1, 2, 3, 3, 2, 1, 4, 1, 2, _K, _K, _K],
    "B": [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, _K, 3],
    "C": [_K, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, _K],
    "D": [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, _K],
}
UNITS = {u: {obs: vals[u] for obs, vals in KRIPPENDORFF_2011.items()} for u in range(12)}


def test_krippendorff_nominal_published_example():
    assert round(krippendorff_alpha_nominal(UNITS), 3) == 0.743  # published: 0.743


def test_krippendorff_interval_published_example():
    assert round(krippendorff_alpha_interval(UNITS), 3) == 0.849  # published: 0.849


def test_krippendorff_edge_cases():
    perfect = {i: {"a": v, "b": v} for i, v in enumerate([1, 2, 3, 4])}
    assert krippendorff_alpha_interval(perfect) == pytest.approx(1.0)
    assert math.isnan(krippendorff_alpha_nominal({0: {"a": 1, "b": 1}, 1: {"a": 1, "b": 1}}))
    with pytest.raises(ValueError):
        krippendorff_alpha_interval({0: {"a": 1, "b": None}})
