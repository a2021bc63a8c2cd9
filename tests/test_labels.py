"""Row labels: one label per model everywhere (judge and human cells on one row), and trained
checkpoints labelled by their config name, not a run hash. Real SQLite stores throughout."""

from __future__ import annotations

import re

from app import compare
from app.rating import rating_row, single_items
from evals.leaderboard import BASE_LABEL, canonical_label, long_table, wide_table
from evals.models import checkpoint_labels, default_models
from evals.runner import HUMAN_FIELDS
from udasa.config import RunConfig, to_dict
from udasa.models import EMBEDDED_POLICY_ID
from udasa.records import Prompt
from udasa.store import Store

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


def test_base_model_judge_and_human_cells_share_one_row(tmp_path):
    """An older eval stored the base model as "base (unaligned)"; its replies in the rating
    pool were labelled by the generator id. Both now land on the one base row."""
    assert canonical_label(EMBEDDED_POLICY_ID) == BASE_LABEL
    assert canonical_label("base (unaligned)") == BASE_LABEL == canonical_label(BASE_LABEL)
    assert canonical_label("RLAIF") == "RLAIF"

    store = Store(tmp_path)
    store.add_eval_run("e1", {"tasks": ["harmlessness"]}, {}, [], [
        {"model": "base (unaligned)", "task": "harmlessness", "metric": "score", "value": 6.1,
         "ci_low": 5.8, "ci_high": 6.4, "n": 10, "failures": 0, "judge": "local"},
        {"model": "UDASA", "task": "harmlessness", "metric": "score", "value": 7.9,
         "ci_low": 7.5, "ci_high": 8.3, "n": 10, "failures": 0, "judge": "local"}])
    # a run's sampled reply, written by the embedded policy, rated by a person
    _run(store, "r1", "cpu-demo")
    store.add_prompts("r1", [Prompt("Is water wet?", "builtin", "builtin:line 1")])
    prompt_id = store.run_prompts("r1")[0]["id"]
    from udasa.pipeline import gen_key_of

    gen_key = gen_key_of(RunConfig(name="cpu-demo"))
    store.add_responses([{"id": "resp-1", "gen_key": gen_key, "prompt_id": prompt_id,
                          "sample_index": 0, "text": "Yes, it is.",
                          "model": EMBEDDED_POLICY_ID}])
    [item] = [i for i in single_items(store) if i.id == "resp-1"]
    assert item.method == BASE_LABEL
    store.add_rating(rating_row("alice", item, {"harmless": 7, "helpful": 5, "overall": 6}))
    legacy = dict(rating_row("bob", item, {"harmless": 9, "helpful": 5, "overall": 6}),
                  method=EMBEDDED_POLICY_ID)  # stored before one label
    store.add_rating(legacy)

    board = compare.leaderboard(store, store.ratings())
    assert sorted(board["model"]) == sorted([BASE_LABEL, "UDASA"])  # no human-only row
    cell = board.set_index("model").loc[BASE_LABEL, "harmlessness: score"]
    assert cell == "6.10 [5.80, 6.40] / 8.00"
    from evals.leaderboard import human_means

    long = long_table(store.leaderboard(), human_means(store.ratings(), HUMAN_FIELDS))
    table = wide_table(long, models=["base (unaligned)", "UDASA"])
    assert list(table.index) == [BASE_LABEL, "UDASA"]
