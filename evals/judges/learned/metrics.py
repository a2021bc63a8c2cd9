"""Agreement of a judge with human labels: accuracy, AUROC and pairwise, each with a 95% CI."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from evals.stats import mean_ci, proportion_ci


@dataclass(frozen=True)
class Agreement:
    """One row of the validation table. Values are fractions (0-1); CIs are 95%."""

    judge: str
    check: str
    metric: str            # accuracy | pairwise
    value: float
    low: float
    high: float
    n: int
    auroc: float | None = None
    auroc_low: float | None = None
    auroc_high: float | None = None
    baseline: str = ""     # what to compare with (a floor, a published figure)

    def as_dict(self) -> dict:
        return asdict(self)


def accuracy(judge: str, check: str, p_yes: Sequence[float], labels: Sequence[int],
             baseline: str = "", n_boot: int = 1000, seed: int = 0) -> Agreement:
    """Accuracy of ``p_yes >= 0.5`` (Wilson CI) and AUROC (bootstrap CI) against ``labels``."""
    p, y = np.asarray(p_yes, float), np.asarray(labels, int)
    hit = ((p >= 0.5).astype(int) == y).tolist()
    acc = proportion_ci(hit)
    auc, lo, hi = auroc_ci(p, y, n_boot, seed)
    return Agreement(judge, check, "accuracy", acc.mean / 100, acc.low / 100, acc.high / 100,
                     len(y), auc, lo, hi, baseline)


def auroc(p: np.ndarray, y: np.ndarray) -> float | None:
    """Probability that a random positive outranks a random negative (ties count half)."""
    pos, neg = p[y == 1], p[y == 0]
    if not len(pos) or not len(neg):
        return None
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


def auroc_ci(p: np.ndarray, y: np.ndarray, n_boot: int, seed: int
             ) -> tuple[float | None, float | None, float | None]:
    from sklearn.metrics import roc_auc_score

    point = auroc(p, y) if len(p) <= 4000 else (float(roc_auc_score(y, p))
                                               if 0 < y.sum() < len(y) else None)
    if point is None or len(p) < 2:
        return point, None, None
    rng = np.random.default_rng(seed)
    stats = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(p), len(p))
        if 0 < y[idx].sum() < len(idx):
            stats.append(roc_auc_score(y[idx], p[idx]))
    lo, hi = np.quantile(stats, [0.025, 0.975]) if stats else (None, None)
    return point, float(lo), float(hi)


def pairwise(judge: str, check: str, good: Sequence[float], bad: Sequence[float],
             baseline: str = "") -> Agreement:
    """Share of pairs where the human-preferred item scores higher (ties half), bootstrap CI."""
    g, b = np.asarray(good, float), np.asarray(bad, float)
    wins = np.where(g > b, 1.0, np.where(g == b, 0.5, 0.0))
    est = mean_ci(wins)
    return Agreement(judge, check, "pairwise", est.mean, est.low, est.high, len(wins),
                     baseline=baseline)


__all__ = ["Agreement", "accuracy", "auroc", "pairwise"]
