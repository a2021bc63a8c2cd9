"""SIGKILL, then resume: the short version of bench/chaos.py.

In the default suite: `udasa train` killed inside DPO stage 2 (after its first of two optimizer
steps), resumed in this process: the stage is rerun from stage 1's checkpoint and the training
ends with the uninterrupted one's checkpoint metrics, rows and weights (drift below
`MAX_DRIFT`). Marked slow (fresh processes for every run): two kills of `udasa run` (during
scoring, and at a random moment of DPO stage 2) and one of `udasa-eval run` while it judges,
each compared with an uninterrupted run: same pairs, checkpoint metrics, weights, results; same
row counts; integrity_check ok.
"""

from __future__ import annotations

import random
import shutil
import signal
import sys
from pathlib import Path

import pytest
from conftest import REPO, TINY_TRAINING, tiny_run_args

from udasa.cli import main
from udasa.data import data_dir
from udasa.store import Store

sys.path.insert(0, str(REPO / "bench"))

import chaos

# ||resumed final weights - uninterrupted|| / ||uninterrupted - initial||: how far apart the
# two trainings end, relative to how far training moved the weights. bench/results/chaos.md
# measured 0 to 0.013 over 20 kills (last-bit float differences that Adam carries on); a
# stage skipped or trained twice ends a whole stage's movement apart (about 1/3 here).
MAX_DRIFT = 0.05


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    return chaos.Setup(tmp_path_factory.mktemp("chaos"))


def check(trial: dict, target: str) -> None:
    assert trial["killed"], trial
    assert trial["landed_in"] == target, trial
    assert not trial["at_end_of_step"], trial  # the kill landed inside the step
    assert trial["integrity_after_kill"] == "ok"
    assert trial["resumed"], trial.get("log_tail")
    assert trial["integrity_after_resume"] == "ok"
    assert trial["checks"] and all(trial["checks"].values()), trial["checks"]
    assert trial["row_counts_equal"], trial["row_count_diffs"]
    if trial["kind"] == "run":
        assert trial["weight_drift"] is not None and trial["weight_drift"] < MAX_DRIFT, trial


def kills_half_way(kind: str, setup, work: Path, targets) -> list[dict]:
    """The uninterrupted run, then one kill half-way through each step `targets(spans)` names
    (its clean duration halved: a random delay near a step's end lets a step that runs faster
    this time end first, and the kill lands at its end instead of inside it)."""
    ctx = chaos.prepare(kind, setup, 0, random.Random(0), work)
    spans = ctx["out"]["step_seconds"]
    ctx["todo"] = [(step, spans[step] / 2) for step in targets(spans)]
    return [chaos.run_trial(ctx, i, setup, work) for i in range(len(ctx["todo"]))]


def test_train_killed_inside_stage_2_resumes_to_the_uninterrupted_end(
        tiny_run, tiny_trained, tiny_policy, tmp_path):
    ws = shutil.copytree(tiny_run, tmp_path / "ws")
    train = tiny_run_args("train", ws, tiny_policy, *TINY_TRAINING)
    timeline, log = tmp_path / "timeline.jsonl", tmp_path / "log.txt"
    code = chaos.launch("run", train, timeline, {"step": "dpo-2", "after_steps": 1}, log)
    assert code == -signal.SIGKILL, log.read_text()[-3000:]
    events = chaos.read_timeline(timeline)
    assert chaos.landed(events) == "dpo-2"
    (kill,) = [e for e in events if "killed after step" in e]
    assert kill["killed after step"] == 1 < kill["of"]  # inside the stage, not at its end
    db = ws / Store.FILENAME
    assert chaos.integrity(db) == "ok"
    assert [c.stage for c in Store(ws).checkpoints()] == [1]
    assert main(train) == 0  # the resume
    got, want = chaos.run_outcome(ws), chaos.run_outcome(tiny_trained)
    checks = chaos.compare("run", got, want)
    assert all(checks.values()), {k: chaos.first_difference(got, want, k)
                                  for k, ok in checks.items() if not ok}
    assert chaos.counts(db) == chaos.counts(tiny_trained / Store.FILENAME)
    drift = chaos.weight_drift(got["final_weights"], want["final_weights"],
                               str(Path(tiny_policy) / "model.safetensors"))
    assert drift < MAX_DRIFT, drift


@pytest.mark.slow  # ~4-8 minutes: fresh processes that import torch
def test_udasa_run_killed_in_scoring_and_mid_stage_resumes_to_the_same_end(setup, tmp_path):
    for t in kills_half_way("run", setup, tmp_path, lambda spans: ["score", "dpo-2"]):
        check(t, t["target"])


EVAL_DATA = ("hh-rlhf/harmless-base/test.jsonl.gz", "hh-rlhf/helpful-base/test.jsonl.gz",
             "imdb/aclImdb_subset5k.tar.gz", "truthfulqa/TruthfulQA.csv",
             "advbench/harmful_behaviors.csv", "gcg/refusal_prefixes.json",
             "gcg/universal_suffixes.json")


@pytest.mark.slow
@pytest.mark.skipif(not all((data_dir() / f).is_file() for f in EVAL_DATA),
                    reason=f"shared data folder {data_dir()} incomplete (set UDASA_DATA_DIR)")
def test_udasa_eval_killed_while_judging_resumes_to_the_same_results(setup, tmp_path):
    # the longest judge call of the clean run (the first, which loads the judge: ~0.5 s where a
    # later one takes ~0.02 s, too short for a timer to land inside)
    def longest_judge(spans):
        return [max((s for s in spans if s.startswith("judge#")), key=spans.get)]
    (t,) = kills_half_way("eval", setup, tmp_path, longest_judge)
    check(t, t["target"])
