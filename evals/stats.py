"""Statistics for the evaluation tables (docs/method.md §7): confidence intervals, paired tests, agreement.

Small pure functions over plain numbers, each checking its input and calling a library
(scipy's bootstrap and tests, scikit-learn's kappa); results are
frozen dataclasses. Nothing here drops data silently: a missing value (None or NaN) is an
error, because the caller has to exclude failed samples itself and report how many it excluded
(the `failures` column of the leaderboard). Randomness (the bootstrap) is seeded, so the same
inputs give the same interval.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy import stats as sps

Numbers = Sequence[float] | np.ndarray

# Bootstrap resamples are drawn in chunks of at most this many indices (rows x n), so memory
# stays bounded for long evaluations (n_boot x n would be 80 MB at n_boot=10000, n=1000).
_CHUNK_CELLS = 2_000_000


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its confidence interval over `n` samples."""

    mean: float
    low: float
    high: float
    n: int

    def fmt(self, digits: int = 1) -> str:
        """`7.9 [7.5, 8.3]`."""
        return f"{self.mean:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


@dataclass(frozen=True)
class PairedTest:
    """Mean of a - b over paired samples, its bootstrap CI and a two-sided p-value."""

    mean_diff: float
    low: float
    high: float
    p_value: float
    n: int


@dataclass(frozen=True)
class SignTest:
    """Wins (a > b), losses (a < b) and ties over paired samples; exact binomial p on wins."""

    wins: int
    losses: int
    ties: int
    p_value: float
    n: int


@dataclass(frozen=True)
class Correlation:
    """A rank correlation and its two-sided p-value over `n` pairs."""

    rho: float
    p_value: float
    n: int


def _finite(values: Numbers, name: str = "values") -> np.ndarray:
    """`values` as a float array; raises on None/NaN/inf instead of dropping them."""
    try:
        x = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name}: not numbers ({e}); exclude missing values first") from e
    if x.ndim != 1:
        raise ValueError(f"{name}: expected a flat sequence, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name}: {int(np.sum(~np.isfinite(x)))} missing or non-finite values; "
                         "exclude them (and count them as failures) before calling")
    return x


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


def bootstrap_mean(x: np.ndarray, n_boot: int, seed: int, confidence: float = 0.95) -> Any:
    """scipy's percentile bootstrap of the mean of `x` (`n_boot` resamples, seeded), its
    resamples drawn in batches so memory stays bounded for long evaluations."""
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    return sps.bootstrap((x,), np.mean, n_resamples=n_boot, batch=max(1, _CHUNK_CELLS // len(x)),
                         vectorized=True, axis=-1, confidence_level=confidence,
                         method="percentile", rng=np.random.default_rng(seed))


def mean_ci(values: Numbers, confidence: float = 0.95, n_boot: int = 2000,
            seed: int = 0) -> Estimate:
    """Mean with a percentile-bootstrap confidence interval.

    `values` must be complete: exclude None/NaN (e.g. judge replies that did not parse) before
    calling and report their count separately; they raise ValueError here. n = 0 raises
    ValueError; n = 1 gives the degenerate interval (v, v).
    """
    _check_confidence(confidence)
    x = _finite(values)
    if len(x) == 0:
        raise ValueError("mean_ci: no values")
    mean = float(x.mean())
    if len(x) == 1:
        return Estimate(mean, mean, mean, 1)
    ci = bootstrap_mean(x, n_boot, seed, confidence).confidence_interval
    return Estimate(mean, float(ci.low), float(ci.high), len(x))


def proportion_ci(successes: Sequence[bool], confidence: float = 0.95,
                  method: Literal["wilson", "bootstrap"] = "wilson", n_boot: int = 2000,
                  seed: int = 0) -> Estimate:
    """Percentage of successes (0-100) with a confidence interval, Wilson score by default.

    Wilson (scipy's `binomtest(...).proportion_ci(method="wilson")`) rather than the bootstrap
    because it stays informative at 0% and 100% (an ASR of 0/25 gets [0, 13.3], where the
    bootstrap would give [0, 0]); `method="bootstrap"` gives the percentile bootstrap instead.
    Missing outcomes must be excluded by the caller, as for `mean_ci`.
    """
    _check_confidence(confidence)
    flags = list(successes)
    if any(f is None for f in flags):
        raise ValueError("proportion_ci: None among the outcomes; exclude failures first")
    n = len(flags)
    if n == 0:
        raise ValueError("proportion_ci: no outcomes")
    k = sum(bool(f) for f in flags)
    if method == "bootstrap":
        est = mean_ci([100.0 * bool(f) for f in flags], confidence, n_boot, seed)
        return est
    if method != "wilson":
        raise ValueError(f"proportion_ci: unknown method {method!r} (wilson, bootstrap)")
    ci = sps.binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    return Estimate(100.0 * k / n, 100.0 * float(ci.low), 100.0 * float(ci.high), n)


def _paired(a: Numbers, b: Numbers) -> tuple[np.ndarray, np.ndarray]:
    x, y = _finite(a, "a"), _finite(b, "b")
    if len(x) != len(y):
        raise ValueError(f"paired samples differ in length: {len(x)} vs {len(y)}")
    if len(x) == 0:
        raise ValueError("paired test: no pairs")
    return x, y


def paired_bootstrap(a: Numbers, b: Numbers, n_boot: int = 10000, seed: int = 0,
                     confidence: float = 0.95) -> PairedTest:
    """Paired bootstrap on per-prompt scores of two systems: is mean(a - b) different from 0?

    Resamples prompts (the differences d = a - b) with replacement. The CI is the percentile
    interval of the resampled mean difference; the two-sided p-value is
    2 * min(P*(mean d <= 0), P*(mean d >= 0)) under the bootstrap distribution, with the +1
    correction ((count + 1) / (n_boot + 1)), so the smallest reportable p is about
    2 / n_boot, and capped at 1. With one pair there is no evidence: p = 1. With very few pairs
    the bootstrap is anti-conservative; prefer `sign_test` there.
    """
    _check_confidence(confidence)
    x, y = _paired(a, b)
    d = x - y
    mean = float(d.mean())
    if len(d) == 1:
        return PairedTest(mean, mean, mean, 1.0, 1)
    res = bootstrap_mean(d, n_boot, seed, confidence)
    boot = res.bootstrap_distribution
    low, high = res.confidence_interval
    tail = min(int(np.sum(boot <= 0.0)), int(np.sum(boot >= 0.0)))
    p = min(1.0, 2.0 * (tail + 1) / (n_boot + 1))
    return PairedTest(mean, float(low), float(high), p, len(d))


def sign_test(a: Numbers, b: Numbers) -> SignTest:
    """Sign test on paired scores: wins (a > b) against losses (a < b), ties dropped.

    p is scipy's exact two-sided `binomtest(wins, wins + losses, 0.5)`; 1.0 when every pair
    ties.
    """
    x, y = _paired(a, b)
    wins, losses = int(np.sum(x > y)), int(np.sum(x < y))
    ties = len(x) - wins - losses
    p = float(sps.binomtest(wins, wins + losses, 0.5).pvalue) if wins + losses else 1.0
    return SignTest(wins, losses, ties, p, len(x))


def spearman(x: Numbers, y: Numbers) -> Correlation:
    """Spearman's rank correlation (scipy; ties get average ranks) with its two-sided p.

    rho is NaN when either side is constant (no ranking to correlate).
    """
    u, v = _paired(x, y)
    if len(u) < 2:
        raise ValueError("spearman: need at least 2 pairs")
    if np.all(u == u[0]) or np.all(v == v[0]):
        return Correlation(math.nan, math.nan, len(u))
    res = sps.spearmanr(u, v)
    return Correlation(float(res.statistic), float(res.pvalue), len(u))


def cohen_kappa(a: Sequence[Hashable], b: Sequence[Hashable]) -> float:
    """Cohen's kappa for two raters' categorical labels of the same items (scikit-learn).

    kappa = (p_o - p_e) / (1 - p_e), p_o the observed agreement and p_e the agreement expected
    from each rater's own label frequencies. NaN when p_e = 1 (both raters used one and the
    same label throughout: agreement is not measurable).
    """
    from sklearn.metrics import cohen_kappa_score

    if len(a) != len(b):
        raise ValueError(f"cohen_kappa: label lists differ in length: {len(a)} vs {len(b)}")
    if len(a) == 0:
        raise ValueError("cohen_kappa: no items")
    if len({*a, *b}) == 1:
        return math.nan
    return float(cohen_kappa_score(list(a), list(b)))


def is_missing(v: object) -> bool:
    """None or NaN: a cell or rating with no value (numbers of any kind; strings are values)."""
    if v is None:
        return True
    try:
        return not isinstance(v, str) and math.isnan(float(v))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def _disagreement(values: list, metric: str) -> float:
    """Sum over ordered pairs (i != j) of delta^2(v_i, v_j), in closed form.

    nominal: delta = [v_i != v_j], so the sum is m^2 - sum_c m_c^2;
    interval: delta^2 = (v_i - v_j)^2, so the sum is 2 m sum v^2 - 2 (sum v)^2.
    """
    m = len(values)
    if metric == "nominal":
        return float(m * m - sum(c * c for c in Counter(values).values()))
    x = np.asarray(values, dtype=float)
    return float(2.0 * m * np.sum(x * x) - 2.0 * np.sum(x) ** 2)


def krippendorff_alpha(ratings: Mapping[Hashable, Mapping[Hashable, object]],
                       metric: Literal["nominal", "interval"] = "nominal") -> float:
    """Krippendorff's alpha = 1 - D_o / D_e over items rated by any subset of annotators.

    `ratings` is {item: {annotator: value}}; None/NaN values are missing. Only "pairable"
    values count: those of items with at least two values (n of them in all). Following
    Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability":
      D_o = (1/n) sum_u [ (1/(m_u - 1)) sum_{i != j in u} delta^2(v_ui, v_uj) ]
      D_e = (1/(n (n - 1))) sum_{i != j over all n pairable values} delta^2(v_i, v_j)
    with delta^2 = [c != k] (nominal) or (c - k)^2 (interval). NaN when D_e = 0 (every value
    the same: no variation to be reliable about); ValueError when no item has two values.

    Written here rather than taken from the `krippendorff` package because that package is
    GPL-3.0-or-later and UDASA is Apache-2.0; on 300 random rating sets with missing values the
    two agree to 7e-16, and the published example gives 0.743 / 0.849 (tests/test_eval_stats.py).
    """
    if metric not in ("nominal", "interval"):
        raise ValueError(f"krippendorff_alpha: unknown metric {metric!r} (nominal, interval)")
    units = [[v for v in row.values() if not is_missing(v)] for row in ratings.values()]
    units = [u for u in units if len(u) >= 2]
    if not units:
        raise ValueError("krippendorff_alpha: no item has two or more ratings")
    if metric == "interval":
        units = [[float(_finite([v], "ratings")[0]) for v in u] for u in units]
    n = sum(len(u) for u in units)
    d_o = sum(_disagreement(u, metric) / (len(u) - 1) for u in units) / n
    d_e = _disagreement([v for u in units for v in u], metric) / (n * (n - 1))
    if d_e == 0.0:
        return math.nan
    return 1.0 - d_o / d_e


def krippendorff_alpha_nominal(ratings: Mapping[Hashable, Mapping[Hashable, object]]) -> float:
    """Krippendorff's alpha with the nominal metric (labels are unordered categories)."""
    return krippendorff_alpha(ratings, "nominal")


def krippendorff_alpha_interval(ratings: Mapping[Hashable, Mapping[Hashable, float]]) -> float:
    """Krippendorff's alpha with the interval metric, delta^2 = (c - k)^2 (e.g. 1-10 scores)."""
    return krippendorff_alpha(ratings, "interval")


@dataclass(frozen=True)
class Comparison:
    """Method a against method b on the samples both have a value for (paired by sample id):
    mean difference a - b with its bootstrap CI and p, the standardised effect d_z (mean
    difference / SD of the differences), the sign test, the samples left out because one side
    had no value (a scorer failure), and `p`, the p a decision uses (`test` names it)."""

    n: int
    mean_diff: float
    low: float
    high: float
    d_z: float
    sd_diff: float
    wins: int
    losses: int
    ties: int
    p_boot: float
    p_sign: float
    excluded: int
    p: float
    test: str


def paired_comparison(a: Mapping[Hashable, float | None], b: Mapping[Hashable, float | None]
                      ) -> Comparison | None:
    """The one paired test of the harness: `a` and `b` map sample ids to values; the samples
    both scored are compared (`paired_bootstrap`, `sign_test`); None under two pairs.

    Where every value is one of two (a success or not, as an attack success rate), the
    decision p is the sign test's, which on such data is McNemar's exact test on the discordant
    pairs (`test` "exact"): the bootstrap is anti-conservative when few pairs differ. Otherwise
    it is the bootstrap p (`test` "bootstrap")."""
    shared = [k for k in a if k in b]
    both = [k for k in shared if not is_missing(a[k]) and not is_missing(b[k])]
    if len(both) < 2:
        return None
    x = np.array([float(a[k]) for k in both])  # type: ignore[arg-type]
    y = np.array([float(b[k]) for k in both])  # type: ignore[arg-type]
    boot, sign = paired_bootstrap(x, y), sign_test(x, y)
    sd = float((x - y).std(ddof=1))
    exact = len(np.unique(np.concatenate([x, y]))) <= 2
    return Comparison(len(both), boot.mean_diff, boot.low, boot.high,
                      boot.mean_diff / sd if sd > 0 else 0.0, sd, sign.wins, sign.losses,
                      sign.ties, boot.p_value, sign.p_value, len(shared) - len(both),
                      sign.p_value if exact else boot.p_value, "exact" if exact else "bootstrap")


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1)."""
    order = np.argsort(p_values, kind="stable")
    adjusted, running = [0.0] * len(p_values), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * float(p_values[i])))
        adjusted[i] = running
    return adjusted


def min_detectable_difference(sd_diff: float, n: int, alpha: float = 0.05,
                              power: float = 0.8) -> float:
    """The smallest true mean difference a two-sided paired test at level `alpha` detects with
    probability `power` on `n` pairs whose differences have SD `sd_diff` (normal
    approximation: (z_{1-alpha/2} + z_power) * sd / sqrt(n))."""
    if n < 2:
        return math.nan
    z = sps.norm.ppf(1 - alpha / 2) + sps.norm.ppf(power)
    return float(z * sd_diff / math.sqrt(n))
