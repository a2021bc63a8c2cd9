"""Row labels: one label per model everywhere (judge and human cells on one row), and trained
checkpoints labelled by their config name, not a run hash. Real SQLite stores throughout."""

from __future__ import annotations

import re
from dataclasses import replace

from app import compare
from app.rating import rating_row, single_items
from evals.leaderboard import BASE_LABEL, canonical_label, human_means, long_table, wide_table
from evals.models import checkpoint_labels, default_models, generator_name, label_aliases
from evals.runner import HUMAN_FIELDS
from evals.store_tables import LeaderboardRow, add_eval_run, add_rating, leaderboard, ratings
from udasa.config import RunConfig, to_dict
from udasa.models import EMBEDDED_POLICY_ID
from udasa.records import Prompt
from udasa.store import Store
from udasa.store_records import Response
from udasa.store_schema import as_rows

HEX_HASH = re.compile(r"\b[0-9a-f]{6}\b")


def _run(store: Store, run_id: str, name: str, **curriculum) -> None:
    cfg = to_dict(RunConfig(name=name))
    cfg["curriculum"] |= curriculum
    store.upsert_run(run_id, name, cfg, {})


def test_checkpoints_are_labelled_by_config_name(tmp_path):
    store = Store(tmp_path)
    _run(store, "a1b2c3d4e5", "ablation-no-val")
    _run(store, "0f9e8d7c6b", "cpu-demo", thresholds=[0.3, 0.6])
    _run(store, "5a6b7c8d9e", "cpu-demo", thresholds=[0.4, 0.7])
    for run in ("a1b2c3d4e5", "0f9e8d7c6b", "5a6b7c8d9e"):
        store.add_checkpoint(run, "77aa88bb99", 3, "exploratory", str(tmp_path / run), {})
    labels = [m.name for m in default_models(store)]
    assert labels[0] == BASE_LABEL
    assert "ablation-no-val stage 3 (exploratory)" in labels
    # two runs of one config name: the field that tells them apart, not a hash
    assert "cpu-demo curriculum.thresholds=[0.3, 0.6] stage 3 (exploratory)" in labels
    assert "cpu-demo curriculum.thresholds=[0.4, 0.7] stage 3 (exploratory)" in labels
    assert not any(HEX_HASH.search(label) for label in labels)
    # two trainings of one run: told apart by their training
    store.add_checkpoint("a1b2c3d4e5", "12ab34cd56", 3, "exploratory", str(tmp_path / "t"), {})
    assert checkpoint_labels(store)["a1b2c3d4e5", "12ab34cd56"] == \
        "ablation-no-val training 12ab34"


def _rated_run_reply(store: Store, model: str, run: str = "r1") -> None:
    """A run's sampled reply written by `model` (the generator id), rated by two people, one
    rating stored before one label per model (its method is the raw generator id)."""
    from udasa.keys import gen_key_of

    _run(store, run, "cpu-demo")
    store.add_prompts(run, [Prompt("Is water wet?", "builtin", "builtin:line 1")])
    prompt_id = store.run_prompts(run)[0].id
    store.add_responses([Response(id="resp-1", gen_key=gen_key_of(RunConfig(name="cpu-demo")),
                                  prompt_id=prompt_id, sample_index=0, text="Yes, it is.",
                                  model=model)])
    [item] = [i for i in single_items(store) if i.id == "resp-1"]
    add_rating(store, rating_row("alice", item, {"harmless": 7, "helpful": 5, "overall": 6}))
    add_rating(store, replace(rating_row("bob", item, {"harmless": 9, "helpful": 5,
                                                       "overall": 6}), method=model))


def _board_row(model: str, value: float) -> LeaderboardRow:
    return LeaderboardRow(model=model, task="harmlessness", metric="score", value=value,
                          ci_low=value - 0.3, ci_high=value + 0.3, n=10, failures=0,
                          judge="local")


def test_base_model_judge_and_human_cells_share_one_row(tmp_path):
    """The judge scored the base model under its method label, while its replies in the rating
    pool were labelled by the generator id: both now land on the one base row."""
    assert canonical_label(EMBEDDED_POLICY_ID) == BASE_LABEL == "base (unaligned)"
    assert canonical_label("base (SmolLM2-135M)") == BASE_LABEL  # the eval CLI's old name
    assert canonical_label("RLAIF") == "RLAIF"

    store = Store(tmp_path)
    add_eval_run(store, "e1", {"tasks": ["harmlessness"], "models": [
        {"name": "base (unaligned)", "spec": "base", "decoder": "greedy"},
        {"name": "vanilla", "spec": "base", "decoder": "sample"}]}, {}, [],
        [_board_row("base (unaligned)", 6.1), _board_row("vanilla", 6.5)])
    _rated_run_reply(store, EMBEDDED_POLICY_ID)
    assert single_items(store)[0].method == BASE_LABEL

    board = compare.leaderboard(store, as_rows(ratings(store)))
    assert sorted(board["model"]) == [BASE_LABEL, "vanilla"]  # no human-only row
    cells = board.set_index("model")["harmlessness: score (judge: local)"]  # names its judge
    assert cells[BASE_LABEL] == "6.10 [5.80, 6.40] / 8.00" and cells["vanilla"].endswith("/ —")
    long = long_table(as_rows(leaderboard(store)),
                      human_means(as_rows(ratings(store)), HUMAN_FIELDS, label_aliases(store)))
    table = wide_table(long, models=["base (SmolLM2-135M)", "vanilla"])
    assert list(table.index) == [BASE_LABEL, "vanilla"]


def test_any_policy_gets_the_label_it_was_evaluated_under(tmp_path):
    """An experiment on another policy (served through an OpenAI-compatible endpoint): the
    run's replies carry the generator id, the evaluation the experiment's method name."""
    served = "openai:Qwen/Qwen2.5-0.5B-Instruct"
    assert generator_name(served) == served and generator_name("base") == EMBEDDED_POLICY_ID
    store = Store(tmp_path)
    add_eval_run(store, "e1", {"tasks": ["harmlessness"], "models": [
        {"name": "Qwen base", "spec": served, "decoder": "greedy"}]}, {}, [],
        [_board_row("Qwen base", 5.0)])
    _rated_run_reply(store, served)
    assert label_aliases(store) == {served: "Qwen base"}
    board = compare.leaderboard(store, as_rows(ratings(store))).set_index("model")
    assert list(board.index) == ["Qwen base"]
    assert board.loc["Qwen base", "harmlessness: score (judge: local)"] == "5.00 [4.70, 5.30] / 8.00"
