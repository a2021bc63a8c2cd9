"""Row labels: one label per method (the rating pool labels a run's replies by the method their
model was evaluated as), and trained checkpoints labelled by their config name, not a run
hash. Real SQLite stores throughout."""

from __future__ import annotations

import re
from dataclasses import replace

from app.rating import rating_row, single_items
from evals.models import checkpoint_labels, default_models, generator_name, label_aliases
from evals.results import BASE_LABEL, method_label
from evals.store_tables import add_eval_run, add_rating
from udasa.config import RunConfig, to_dict
from udasa.models import EMBEDDED_POLICY_ID
from udasa.records import Prompt
from udasa.store import Store
from udasa.store_records import Response

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


def test_a_workspace_is_evaluated_at_each_trainings_final_stage_unless_all_stages(tmp_path):
    store = Store(tmp_path)
    _run(store, "a1b2c3d4e5", "cpu-demo")
    for stage, name in ((1, "conservative"), (2, "moderate"), (3, "exploratory")):
        store.add_checkpoint("a1b2c3d4e5", "77aa88bb99", stage, name, str(tmp_path / name), {})
    store.add_checkpoint("a1b2c3d4e5", "12ab34cd56", 1, "conservative", str(tmp_path / "t"), {})
    labels = checkpoint_labels(store)
    first, second = labels["a1b2c3d4e5", "77aa88bb99"], labels["a1b2c3d4e5", "12ab34cd56"]
    final = [m.name for m in default_models(store)]
    assert final[0] == BASE_LABEL and sorted(final[1:]) == sorted(
        [f"{first} stage 3 (exploratory)", f"{second} stage 1 (conservative)"])
    every = [m.name for m in default_models(store, all_stages=True)]
    assert len(every) == 5 and set(final) <= set(every)
    assert f"{first} stage 2 (moderate)" in every


def test_all_stages_is_refused_beside_models_it_would_not_choose(tmp_path, capsys):
    from evals.cli import main as eval_main

    assert eval_main(["run", "--all-stages", "--models", "base", "--workspace",
                      str(tmp_path)]) == 2
    out = capsys.readouterr()
    assert "--all-stages chooses the workspace's models" in out.out + out.err


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


def test_rated_run_replies_are_labelled_by_the_method_their_model_was_evaluated_as(tmp_path):
    """A run's replies in the rating pool carry the generator id; the pool labels them with the
    method label the same model was evaluated under (the base policy's legacy names too)."""
    store = Store(tmp_path)
    add_eval_run(store, "e1", {"tasks": ["harmlessness"], "models": [
        {"name": "base (unaligned)", "spec": "base", "decoder": "greedy"},
        {"name": "vanilla", "spec": "base", "decoder": "sample"}]}, {}, [], [])
    _rated_run_reply(store, EMBEDDED_POLICY_ID)
    assert single_items(store)[0].method == BASE_LABEL
    assert method_label(EMBEDDED_POLICY_ID, label_aliases(store)) == BASE_LABEL


def test_any_policy_gets_the_label_it_was_evaluated_under(tmp_path):
    """An experiment on another policy (served through an OpenAI-compatible endpoint): the
    run's replies carry the generator id, the evaluation the experiment's method name."""
    served = "openai:Qwen/Qwen2.5-0.5B-Instruct"
    assert generator_name(served) == served and generator_name("base") == EMBEDDED_POLICY_ID
    store = Store(tmp_path)
    add_eval_run(store, "e1", {"tasks": ["harmlessness"], "models": [
        {"name": "Qwen base", "spec": served, "decoder": "greedy"}]}, {}, [], [])
    _rated_run_reply(store, served)
    assert label_aliases(store) == {served: "Qwen base"}
    assert single_items(store)[0].method == "Qwen base"
