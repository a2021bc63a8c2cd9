"""Statistics, leaderboard and plots of the evaluation harness (docs/method.md §7).

Expected numbers are worked out by hand in the comments, or taken from a published example
(Krippendorff 2011), so each test reads as "the textbook says X; the code gives X".
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest

from evals.leaderboard import (
    format_cell,
    human_means,
    latest_rows,
    long_table,
    wide_table,
    write_leaderboard,
)
from evals.plots import bar_chart
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


# --------------------------------------------------------------------------- leaderboard

JUDGE = "SmolLM2-135M (stand-in for GPT-4)"


def _row(model, value, task="harmlessness", metric="score", eval_id="ev2", half=0.4,
         failures=0):
    return {"eval_id": eval_id, "model": model, "task": task, "metric": metric, "value": value,
            "ci_low": value - half, "ci_high": value + half, "n": 50, "failures": failures,
            "judge": JUDGE}


ROWS = [
    _row("UDASA", 6.0, eval_id="ev1"),  # an older run of the same cell: superseded
    _row("base", 6.1), _row("RLAIF", 7.0), _row("RLCD", 7.4), _row("UDASA", 7.9, failures=2),
    _row("base", 5.9, task="helpfulness"), _row("UDASA", 7.7, task="helpfulness"),
]
TIMES = {"ev1": "2025-01-01T00:00:00+00:00", "ev2": "2025-02-01T00:00:00+00:00"}
HUMAN = {("UDASA", "harmlessness", "score"): 7.5, ("RLCD", "harmlessness", "score"): 7.1}


def test_format_cell():
    assert format_cell(7.9, 7.5) == "7.9 / 7.5"
    assert format_cell(7.9, None) == "7.9 / —"
    assert format_cell(7.9, 7.5, 7.5, 8.3, with_ci=True) == "7.9 [7.5, 8.3] / 7.5"


def test_latest_rows_by_time_then_order():
    newest_first = [ROWS[4], ROWS[0]]  # given order would keep 6.0; the timestamps keep 7.9
    kept = latest_rows(newest_first, TIMES)
    assert [r["value"] for r in kept] == [7.9]
    assert [r["value"] for r in latest_rows(ROWS[:5])] == [7.9, 6.1, 7.0, 7.4]  # later wins


def test_leaderboard_paper_layout():
    table = wide_table(long_table(ROWS, HUMAN, TIMES), models=["base", "RLAIF", "RLCD", "UDASA"])
    assert list(table.index) == ["base", "RLAIF", "RLCD", "UDASA"]
    assert table.loc["UDASA", "harmlessness: score"] == "7.9 / 7.5"
    assert table.loc["base", "harmlessness: score"] == "6.1 / —"
    assert table.loc["RLAIF", "helpfulness: score"] == ""  # not evaluated


def test_write_leaderboard_md_and_csv(tmp_path):
    md, csv = write_leaderboard(ROWS, tmp_path, HUMAN, TIMES)
    text = md.read_text(encoding="utf-8")
    assert "7.9 / 7.5" in text and "7.4 / 7.1" in text and "6.1 / —" in text
    assert "7.9 [7.5, 8.3] / 7.5" in text  # the extended table
    assert f"harmlessness: judge: {JUDGE}" in text
    assert "UDASA, harmlessness: score: 2 failed" in text
    assert "6.0" not in text  # the superseded run

    back = pd.read_csv(csv)
    assert list(back.columns[:10]) == ["model", "task", "metric", "value", "ci_low", "ci_high",
                                       "n", "failures", "judge", "human"]
    pd.testing.assert_frame_equal(back, long_table(ROWS, HUMAN, TIMES), check_dtype=False)
    udasa = back[(back.model == "UDASA") & (back.task == "harmlessness")].iloc[0]
    assert (udasa.value, udasa.human, udasa.n, udasa.eval_id) == (7.9, 7.5, 50, "ev2")
    assert back[back.model == "base"].human.isna().all()


def test_human_means_from_ratings():
    ratings = [{"method": "UDASA", "harmless": 8, "helpful": 7},
               {"method": "UDASA", "harmless": 7, "helpful": None},
               {"method": "base", "harmless": 5, "helpful": 6}]
    means = human_means(ratings, {"harmless": ("harmlessness", "score"),
                                  "helpful": ("helpfulness", "score")})
    assert means[("UDASA", "harmlessness", "score")] == 7.5  # (8 + 7) / 2
    assert means[("UDASA", "helpfulness", "score")] == 7.0  # the missing rating is skipped
    assert means[("base", "helpfulness", "score")] == 6.0


def test_leaderboard_from_store(tmp_path):
    from evals.store_tables import LeaderboardRow, add_eval_run, leaderboard
    from udasa.store import Store
    from udasa.store_schema import as_rows

    store = Store(tmp_path / "ws")
    add_eval_run(store, "ev2", {}, {}, [], [LeaderboardRow(**{k: v for k, v in r.items()
                                                              if k != "eval_id"})
                                           for r in ROWS[1:5]])
    md, _ = write_leaderboard(as_rows(leaderboard(store)), tmp_path / "out", HUMAN)
    store.close()
    assert "7.9 / 7.5" in md.read_text(encoding="utf-8")


def test_one_setting_gives_the_same_page_as_before(tmp_path):
    config = {"tasks": ["harmlessness", "helpfulness"], "limit": 50, "seed": 0, "data": {}}
    md, csv = write_leaderboard(ROWS, tmp_path / "a", HUMAN, TIMES,
                                configs={"ev1": config, "ev2": config})
    before, _ = write_leaderboard(ROWS, tmp_path / "b", HUMAN, TIMES)
    assert md.read_text(encoding="utf-8") == before.read_text(encoding="utf-8")
    assert "limit 50" not in md.read_text(encoding="utf-8")
    setting = f"data: default, limit 50, seed 0, judge: {JUDGE}"
    assert set(pd.read_csv(csv)["setting"].dropna()) == {setting}


def test_settings_that_differ_get_one_labelled_table_each(tmp_path):
    own = {"tasks": ["harmlessness"], "limit": 20, "seed": 0, "data": {"harmlessness": "my.jsonl"}}
    default = {"tasks": ["harmlessness", "helpfulness"], "limit": 50, "seed": 0, "data": {}}
    rows = [*ROWS[1:], _row("UDASA", 3.3, eval_id="ev3"), _row("base", 2.2, eval_id="ev3")]
    md, csv = write_leaderboard(rows, tmp_path, HUMAN, TIMES | {"ev3": "2025-03-01"},
                                configs={"ev2": default, "ev3": own})
    text = md.read_text(encoding="utf-8")
    top, theirs, mine = text.split("## harmlessness — ")  # first seen first
    assert "helpfulness: score" in top and "harmlessness" not in top.split("\n\n", 2)[2]
    assert theirs.startswith(f"data: default, limit 50, seed 0, judge: {JUDGE}\n")
    assert mine.startswith(f"data: my.jsonl, limit 20, seed 0, judge: {JUDGE}\n")
    # each section holds its own evaluation's cells, and the human means of its models
    assert "7.9 / 7.5" in theirs and "6.1 / —" in theirs and "3.3" not in theirs
    assert "3.3 / 7.5" in mine and "2.2 / —" in mine and "7.9" not in mine
    assert "RLAIF" not in mine  # a model not evaluated in that setting has no row there
    assert "UDASA, harmlessness: score (data: default, limit 50, seed 0" in text
    back = pd.read_csv(csv)
    harm = back[back.task == "harmlessness"]
    assert len(harm[harm.model == "UDASA"]) == 2
    assert set(harm.setting) == {f"data: default, limit 50, seed 0, judge: {JUDGE}",
                                 f"data: my.jsonl, limit 20, seed 0, judge: {JUDGE}"}


def test_write_outputs_splits_runs_with_different_data_files(tmp_path):
    from evals.runner import write_outputs
    from evals.store_tables import LeaderboardRow, add_eval_run
    from udasa.store import Store

    store = Store(tmp_path)
    for eval_id, data, value in (("e1", {}, 4.0), ("e2", {"harmlessness": "mine.jsonl"}, 8.0)):
        config = {"tasks": ["harmlessness"], "limit": 5, "seed": 0, "data": data,
                  "models": [{"name": "m"}]}
        add_eval_run(store, eval_id, config, {}, [], [LeaderboardRow(
            model="m", task="harmlessness", metric="score", value=value, ci_low=value - 1,
            ci_high=value + 1, n=5, failures=0, judge="j")])
    out = write_outputs(store, tmp_path)
    store.close()
    # one chart per setting too, the older setting keeping the plain name
    assert [p.rsplit("/", 1)[1] for p in out["charts"]] == [
        "eval_harmlessness_score.png", "eval_harmlessness_score-2.png"]
    text = (tmp_path / "leaderboard.md").read_text(encoding="utf-8")
    default, mine = sorted(text.split("## harmlessness — ")[1:])  # "data: d…" < "data: m…"
    assert default.startswith("data: default, limit 5, seed 0, judge: j") and "4.0 / —" in default
    assert mine.startswith("data: mine.jsonl, limit 5, seed 0, judge: j") and "8.0 / —" in mine
    assert "8.0" not in default and "4.0" not in mine


# --------------------------------------------------------------------------------- plots


def test_bar_chart_png(tmp_path):
    path = bar_chart(ROWS, "harmlessness", "score", tmp_path / "plots" / "harm.png", TIMES,
                     models=["base", "RLAIF", "RLCD", "UDASA"])
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 1000
    with pytest.raises(ValueError):
        bar_chart(ROWS, "robustness", "asr", tmp_path / "none.png")
    with pytest.raises(ValueError):  # a setting keeps its own rows only
        bar_chart(ROWS, "harmlessness", "score", tmp_path / "none.png", setting="elsewhere")
