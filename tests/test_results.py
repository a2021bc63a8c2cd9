"""The one result model and reader (`evals.results`): identities, the merge rule, per-sample
metrics checked against their means, settings, and legacy results."""

from __future__ import annotations

import json

import pytest
from results_factory import add, evaluation, record

from evals.comparison_plot import panels
from evals.results import Setting, check_sample_means, load_results, pick_setting
from evals.stats import Estimate, holm, min_detectable_difference, paired_comparison


def test_same_identity_newer_wins_and_the_older_is_listed(tmp_path):
    add(tmp_path, "old", "helpfulness", {"UDASA": {"score": [1.0, 2.0]}},
        created_at="2026-01-01T00:00:00")
    add(tmp_path, "new", "helpfulness", {"UDASA": {"score": [5.0, 5.0]}},
        created_at="2026-01-02T00:00:00")
    results = load_results(tmp_path)
    (current,) = results.current
    assert (current.eval_id, current.metrics["score"].mean) == ("new", 5.0)
    assert [r.eval_id for r in results.superseded] == ["old"]


def test_the_creation_time_decides_not_the_file_order_or_mtime(tmp_path):
    import os

    add(tmp_path, "b-newer", "helpfulness", {"UDASA": {"score": [5.0, 5.0]}},
        created_at="2026-03-01T00:00:00")
    add(tmp_path, "a-older", "helpfulness", {"UDASA": {"score": [1.0, 1.0]}},
        created_at="2026-02-01T00:00:00")  # written last, sorts first by name
    os.utime(tmp_path / "evals" / "b-newer" / "results.json", (1, 1))
    assert [r.eval_id for r in load_results(tmp_path).current] == ["b-newer"]


def test_different_identities_never_replace_each_other(tmp_path):
    """The merge that lost the report's main comparisons: a later experiment without UDASA
    evaluated on the same task and data."""
    add(tmp_path / "ws1", "main", "harmlessness",
        {"base": {"score": [1.0, 2.0]}, "UDASA": {"score": [2.0, 3.0]}}, experiment="cpu")
    add(tmp_path / "ws2", "abl", "harmlessness", {"UDASA full": {"score": [4.0, 4.0]}},
        experiment="cpu-ablations", created_at="2026-06-01T00:00:00")
    add(tmp_path / "ws2", "other", "harmlessness", {"UDASA": {"score": [9.0, 9.0]}},
        experiment="cpu", limit=10, created_at="2026-06-02T00:00:00")  # another setting
    results = load_results(tmp_path / "ws1", tmp_path / "ws2")
    got = {(r.identity.experiment, r.method, r.setting.limit) for r in results.current}
    assert got == {("cpu", "base", 50), ("cpu", "UDASA", 50), ("cpu-ablations", "UDASA full", 50),
                   ("cpu", "UDASA", 10)}
    assert results.superseded == []
    assert results.settings("harmlessness") == [Setting("default", 10, 0, "j"),
                                                Setting("default", 50, 0, "j")]


def test_pick_setting_takes_the_one_holding_most_methods_then_the_newest(tmp_path):
    add(tmp_path, "a", "harmlessness", {"base": {"score": [1.0]}, "UDASA": {"score": [2.0]}},
        limit=100, created_at="2026-01-01T00:00:00")
    add(tmp_path, "b", "harmlessness", {"UDASA": {"score": [3.0]}}, limit=5,
        created_at="2026-01-02T00:00:00")
    results = load_results(tmp_path)
    assert pick_setting(results, "harmlessness").limit == 100  # two results against one
    assert pick_setting(results, "harmlessness", ["base", "UDASA"]).limit == 100
    assert pick_setting(results, "harmlessness", ["UDASA"]).limit == 5  # a tie: the newest
    assert pick_setting(results, "sentiment") is None


def test_sample_means_must_equal_the_metric():
    check_sample_means("t", "m", {"score": Estimate(2.0, 1.0, 3.0, 2)},
                       [{"score": 1.0}, {"score": 3.0}, {"score": None}])
    with pytest.raises(RuntimeError, match=r"t / m: metric 'score' is 2.5 over n = 2"):
        check_sample_means("t", "m", {"score": Estimate(2.5, 1.0, 3.0, 2)},
                           [{"score": 1.0}, {"score": 3.0}])
    with pytest.raises(RuntimeError, match="over 1"):  # a rate stored per sample as 0/1
        check_sample_means("t", "m", {"asr": Estimate(100.0, 0, 100, 1)}, [{"asr": 1.0}])


def test_a_results_file_of_the_first_format_is_read_without_paired_metrics(tmp_path):
    folder = tmp_path / "evals" / "e1"
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps({
        "eval_id": "e1", "config": {"limit": 50, "seed": 0, "data": {},
                                    "models": [{"name": "base (SmolLM2-135M)", "spec": "base"}]},
        "judge": {"name": "learned", "label": "judge J"},
        "tasks": {"harmlessness": {"models": {"base (SmolLM2-135M)": {
            "metrics": {"score": {"mean": 5.0, "low": 4.0, "high": 6.0, "n": 2}},
            "failures": 0}}}}}))
    (folder / "samples.jsonl").write_text(json.dumps(
        {"model": "base (SmolLM2-135M)", "task": "harmlessness", "idx": 0, "prompt": "p",
         "output": "o", "scores": {"id": "x", "value": 5.0}}) + "\n")
    (r,) = load_results(tmp_path).current
    assert (r.method, r.legacy, r.model_spec, r.setting) == (
        "base (unaligned)", True, "base", Setting("default", 50, 0, "learned"))
    assert r.values("score") == {} and r.created_at  # no per-sample metrics: no guessing


def test_an_unreadable_evaluation_names_its_folder(tmp_path):
    from udasa.errors import ConfigError

    add(tmp_path, "e1", "harmlessness", {"UDASA": {"score": [1.0, 2.0]}})
    (tmp_path / "evals" / "e1" / "samples.jsonl").write_text("{not json\n")
    with pytest.raises(ConfigError, match=r"e1: unreadable results \(JSONDecodeError"):
        load_results(tmp_path)


def test_recorded_samples_carry_every_metric_and_the_store_rows(tmp_path):
    from evals.store_tables import eval_samples, leaderboard
    from udasa.store import Store

    results, rows = evaluation("e1", "sentiment", {"UDASA": {
        "positive_judge": [100.0, None, 0.0], "positive_vader": [100.0, 100.0, 0.0]}})
    record(tmp_path, results, rows)
    (r,) = load_results(tmp_path).current
    assert r.values("positive_judge") == {"s0": 100.0, "s2": 0.0}
    assert r.values("positive_vader") == {"s0": 100.0, "s1": 100.0, "s2": 0.0}
    store = Store(tmp_path)
    assert len(eval_samples(store)) == 3 and len(leaderboard(store)) == 2


def test_paired_comparison_pairs_by_sample_id_and_counts_the_excluded():
    a = {"x": 3.0, "y": 1.0, "z": None, "w": 2.0}
    b = {"w": 1.0, "x": 1.0, "y": 1.0, "z": 0.0, "only-b": 9.0}
    c = paired_comparison(a, b)
    # pairs (x 3-1, y 1-1, w 2-1): d = 2, 0, 1
    assert (c.n, c.excluded, c.wins, c.losses, c.ties) == (3, 1, 2, 0, 1)
    assert c.mean_diff == pytest.approx(1.0)
    assert c.d_z == pytest.approx(1.0 / 1.0)  # SD of (2, 0, 1) with ddof 1 is 1
    assert paired_comparison({"x": 1.0}, {"x": 2.0}) is None
    assert (c.test, c.p) == ("bootstrap", c.p_boot)  # three values: the bootstrap decides


def test_two_valued_outcomes_are_decided_by_the_exact_test_not_the_bootstrap():
    # attack success 0/100 on 100 behaviours, 5 flipped one way only: McNemar's exact p is
    # 2 * 0.5 ** 5 = 0.0625, where the bootstrap of the mean difference says about 0.01
    a = {f"b{i}": 100.0 for i in range(100)}
    b = a | {f"b{i}": 0.0 for i in range(5)}
    c = paired_comparison(b, a)
    assert (c.wins, c.losses, c.ties, c.test) == (0, 5, 95, "exact")
    assert c.p == c.p_sign == pytest.approx(0.0625) and c.p_boot < 0.05


def test_the_comparison_figure_has_a_panel_per_task_metric_naming_a_second_setting():
    row = {"task": "sentiment", "setting": "s", "metric": "positive_judge", "main": "UDASA",
           "other": "base", "mean_diff": 1.0, "low": 0.0, "high": 2.0, "p_holm": 0.01}
    rows = [row, row | {"other": "RLAIF"}, row | {"metric": "positive_vader"},
            row | {"task": "robustness", "setting": "a", "metric": "asr"},
            row | {"task": "robustness", "setting": "b", "metric": "asr"}]
    by_panel = panels(rows)
    assert list(by_panel) == ["sentiment: positive_judge", "sentiment: positive_vader",
                              "robustness (a): asr", "robustness (b): asr"]
    assert [r["other"] for r in by_panel["sentiment: positive_judge"]] == ["base", "RLAIF"]

def test_holm_and_the_minimum_detectable_difference_by_hand():
    # sorted 0.01, 0.02, 0.04: 3 x 0.01, 2 x 0.02, max(0.04, running) -> monotone
    assert holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])
    # (1.959964 + 0.841621) * 2 / sqrt(16)
    assert min_detectable_difference(2.0, 16) == pytest.approx(1.4007926, rel=1e-6)
    assert min_detectable_difference(2.0, 16, alpha=0.01) > 1.40
