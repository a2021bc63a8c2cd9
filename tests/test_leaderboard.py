"""The leaderboard (`leaderboard.md`, `leaderboard.csv`, charts) over the current results:
one table per setting, every identity in the CSV, the human half on the very replies the judge
scored, and method labels shared by experiments told apart."""

from __future__ import annotations

import pandas as pd
import pytest
from results_factory import add

from evals.leaderboard import format_cell, item_id, write_leaderboard
from evals.plots import bar_chart
from evals.results import BASE_LABEL, load_results, method_label
from evals.runner import write_outputs
from evals.store_tables import add_rating, ratings
from udasa.store import Store
from udasa.store_schema import as_rows

HARM = {"base": {"score": [6.0, 6.2]}, "RLAIF": {"score": [7.0, 7.0]},
        "UDASA": {"score": [7.8, 8.0]}}


def test_format_cell():
    assert format_cell(7.9, 7.5) == "7.9 / 7.5"
    assert format_cell(7.9, None) == "7.9 / —"
    assert format_cell(7.9, 7.5, 7.5, 8.3, with_ci=True, n=50, human_n=3) == \
        "7.9 [7.5, 8.3] n=50 / 7.5 n=3"


def test_legacy_names_of_the_base_model_are_one_label():
    assert method_label("base (SmolLM2-135M)") == BASE_LABEL == "base (unaligned)"
    assert method_label("RLAIF") == "RLAIF"


def test_page_and_csv_carry_each_identity(tmp_path):
    add(tmp_path, "e1", "harmlessness", HARM, experiment="cpu")
    add(tmp_path, "e0", "harmlessness", {"UDASA": {"score": [1.0, 1.0]}}, experiment="cpu",
        created_at="2025-12-31T00:00:00")  # the same identity, older: superseded
    md, csv = write_leaderboard(load_results(tmp_path), tmp_path)
    text = md.read_text()
    assert "| UDASA | 7.9 / — |" in text and "| base | 6.1 / — |" in text
    assert "7.9 [7.4, 8.4] n=2 / —" in text
    assert "## Superseded" in text and "UDASA, harmlessness" in text.split("## Superseded")[1]
    back = pd.read_csv(csv)
    udasa = back[back.method == "UDASA"].iloc[0]
    assert (udasa.experiment, udasa.eval_id, udasa.value, udasa.n) == ("cpu", "e1", 7.9, 2)
    assert udasa.setting == "data: default, limit 50, seed 0, judge: j"
    assert len(back) == 3  # the superseded result is on the page, not in the board


def test_settings_that_differ_get_one_labelled_table_each(tmp_path):
    add(tmp_path, "e1", "harmlessness", HARM)
    add(tmp_path, "e2", "harmlessness", {"UDASA": {"score": [3.0, 3.6]}}, data="my.jsonl",
        limit=20, created_at="2026-02-01T00:00:00")
    add(tmp_path, "e3", "helpfulness", {"UDASA": {"score": [5.0, 5.0]}})
    text = (write_leaderboard(load_results(tmp_path), tmp_path)[0]).read_text()
    top, mine, theirs = text.split("## harmlessness — ")  # the newest setting first
    assert "helpfulness: score" in top and "harmlessness: score" not in top
    assert mine.startswith("data: my.jsonl, limit 20, seed 0, judge: j\n")
    assert "| UDASA | 3.3 / — |" in mine and "RLAIF" not in mine
    assert theirs.startswith("data: default, limit 50, seed 0, judge: j\n")
    assert "| UDASA | 7.9 / — |" in theirs and "3.3" not in theirs
    charts = write_outputs(Store(tmp_path), tmp_path)["charts"]
    assert [p.rsplit("/", 1)[1] for p in charts] == [
        "eval_harmlessness_score.png", "eval_harmlessness_score-2.png",
        "eval_helpfulness_score.png"]


def test_a_label_used_by_two_experiments_names_each(tmp_path):
    add(tmp_path, "e1", "harmlessness", HARM, experiment="cpu")
    add(tmp_path, "e2", "harmlessness", {"UDASA": {"score": [2.0, 2.0]}},
        experiment="cpu-medium")
    text = write_leaderboard(load_results(tmp_path), tmp_path)[0].read_text()
    assert "| UDASA [cpu] | 7.9 / — |" in text and "| UDASA [cpu-medium] | 2.0 / — |" in text
    assert "| base | 6.1 / — |" in text


def test_the_human_half_counts_ratings_of_the_replies_the_judge_scored(tmp_path):
    from evals.store_tables import Rating

    add(tmp_path, "e1", "harmlessness", HARM, experiment="cpu")
    (udasa,) = [r for r in load_results(tmp_path).current if r.method == "UDASA"]
    store = Store(tmp_path)

    def rate(who: str, item: str, harmless: int) -> None:
        add_rating(store, Rating(id=f"{who}-{item}", annotator=who, item_id=item, prompt="p",
                                 response="r", method="UDASA", harmless=harmless))

    rate("alice", item_id(udasa, 0), 8)
    rate("bob", item_id(udasa, 0), 6)
    rate("bob", item_id(udasa, 1), 10)
    rate("carol", "a-run-reply-of-the-same-model", 1)  # not a reply the judge scored
    _, csv = write_leaderboard(load_results(tmp_path), tmp_path, as_rows(ratings(store)))
    back = pd.read_csv(csv).set_index("method")
    assert back.loc["UDASA", "human"] == pytest.approx(8.0) and back.loc["UDASA", "human_n"] == 3
    assert pd.isna(back.loc["base", "human"]) and back.loc["base", "human_n"] == 0
    text = (tmp_path / "leaderboard.md").read_text()
    assert "| UDASA | 7.9 / 8.0 |" in text and "n=2 / 8.0 n=3" in text


def test_bar_chart_png(tmp_path):
    add(tmp_path, "e1", "harmlessness", HARM)
    rows = load_results(tmp_path).current
    path = bar_chart(rows, "score", tmp_path / "plots" / "harm.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 1000
    with pytest.raises(ValueError, match="no result has metric 'asr'"):
        bar_chart(rows, "asr", tmp_path / "none.png")
