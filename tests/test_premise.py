"""The premise's statistics: the within-prompt headline and the pooled rho whose CI and p
resample whole prompts, against values computed here independently."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from evals.premise import premise_stats, rank_correlation, within_prompt
from udasa.store_records import FusedScore


def test_within_prompt_mean_rho_by_hand():
    # prompt 0: x 1 2 3, y 3 2 1 -> rho -1; prompt 1: x 1 2 3, y 1 3 2 -> rho 0.5;
    # prompt 2: y constant -> undefined, left out; mean of (-1, 0.5) = -0.25
    groups = [0, 0, 0, 1, 1, 1, 2, 2, 2]
    x = [1, 2, 3, 1, 2, 3, 1, 2, 3]
    y = [3, 2, 1, 1, 3, 2, 5, 5, 5]
    out = within_prompt(groups, x, y)
    assert out["mean_rho"] == pytest.approx(-0.25)
    assert (out["prompts"], out["undefined"], out["n"]) == (2, 1, 9)
    # the CI resamples the two prompt-level rhos: every resample's mean is -1, -0.25 or 0.5
    assert out["low"] == pytest.approx(-1.0) and out["high"] == pytest.approx(0.5)


def test_premise_stats_report_the_within_prompt_headline():
    fused = [FusedScore(run_id="r", response_id=f"{p}{k}", prompt_id=p, u=0.1 * k,
                        weights={}, components={}) for p in "ab" for k in range(3)]
    scores = {"a0": 9, "a1": 5, "a2": 1, "b0": 2, "b1": 8, "b2": 4}
    out = premise_stats(fused, [], scores)
    # a: u up, score down -> -1; b: u 0 1 2, score 2 8 4 -> ranks 1 3 2 -> 0.5
    assert out["within_prompt"]["u"]["mean_rho"] == pytest.approx(-0.25)
    assert out["correlations"]["u"]["rho"] == pytest.approx(
        sps.spearmanr([0, .1, .2, 0, .1, .2], [9, 5, 1, 2, 8, 4]).statistic)


def clustered(n_prompts: int = 30, per: int = 5, seed: int = 3):
    """Replies that correlate within each prompt (x and y share a per-reply term) while the
    prompt levels of x and y are independent and large."""
    rng = np.random.default_rng(seed)
    groups, x, y = [], [], []
    for g in range(n_prompts):
        level_x, level_y = rng.normal(0, 5), rng.normal(0, 5)
        for _ in range(per):
            shared = rng.normal()
            groups.append(g)
            x.append(level_x + shared)
            y.append(level_y + shared + 0.3 * rng.normal())
    return np.array(groups), np.array(x), np.array(y)


def test_the_pooled_ci_resamples_prompts_not_replies():
    groups, x, y = clustered()
    got = rank_correlation(groups, x, y, n_boot=400, seed=0)
    ids = np.unique(groups)
    rng = np.random.default_rng(7)

    def rho(rows):
        return sps.spearmanr(x[rows], y[rows]).statistic

    members = [np.flatnonzero(groups == g) for g in ids]
    by_prompt = [rho(np.concatenate([members[k] for k in rng.integers(0, len(ids), len(ids))]))
                 for _ in range(400)]
    by_reply = [rho(rng.integers(0, len(x), len(x))) for _ in range(400)]
    low, high = np.percentile(by_prompt, [2.5, 97.5])
    assert got["low"] == pytest.approx(low, abs=0.08) and got["high"] == pytest.approx(
        high, abs=0.08)
    reply_width = np.subtract(*np.percentile(by_reply, [97.5, 2.5]))
    assert got["high"] - got["low"] > 1.5 * reply_width
    assert got["prompts"] == 30 and got["n"] == 150
    assert 0 < got["p"] <= 1
