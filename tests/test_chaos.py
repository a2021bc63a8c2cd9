"""SIGKILL at random moments, then resume: the short version of bench/chaos.py (3 kills).

Two kills of `udasa run` (during scoring, and in the middle of the second DPO stage: the stage
is rerun from the first stage's checkpoint and ends with the same metrics and weights) and one
of `udasa-eval run` while it judges. Each resumed workspace is compared with an uninterrupted
run: same pairs, checkpoint metrics, weights, results; same row counts; integrity_check ok.
"""

from __future__ import annotations

import random
import sys
import time

import pytest
from conftest import REPO

from udasa.data import data_dir

sys.path.insert(0, str(REPO / "bench"))

import chaos

pytestmark = pytest.mark.slow  # ~4-8 minutes: six fresh processes that import torch


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    return chaos.Setup(tmp_path_factory.mktemp("chaos"))


def check(trial: dict, target: str) -> None:
    assert trial["killed"], trial
    assert trial["landed_in"] == target, trial
    assert trial["integrity_after_kill"] == "ok"
    assert trial["resumed"], trial.get("log_tail")
    assert trial["integrity_after_resume"] == "ok"
    assert trial["checks"] and all(trial["checks"].values()), trial["checks"]
    assert trial["row_counts_equal"], trial["row_count_diffs"]


def test_udasa_run_killed_in_scoring_and_mid_stage_resumes_to_the_same_end(setup, tmp_path):
    out = chaos.bench_kind("run", setup, 2, random.Random(0), tmp_path, time.time() + 3600,
                           only=["score", "dpo-2"])
    assert [t["target"] for t in out["trials"]] == ["score", "dpo-2"]
    for t in out["trials"]:
        check(t, t["target"])


EVAL_DATA = ("hh-rlhf/harmless-base/test.jsonl.gz", "hh-rlhf/helpful-base/test.jsonl.gz",
             "imdb/aclImdb_subset5k.tar.gz", "truthfulqa/TruthfulQA.csv",
             "advbench/harmful_behaviors.csv", "gcg/refusal_prefixes.json",
             "gcg/universal_suffixes.json")


@pytest.mark.skipif(not all((data_dir() / f).is_file() for f in EVAL_DATA),
                    reason=f"shared data folder {data_dir()} incomplete (set UDASA_DATA_DIR)")
def test_udasa_eval_killed_while_judging_resumes_to_the_same_results(setup, tmp_path):
    out = chaos.bench_kind("eval", setup, 1, random.Random(0), tmp_path, time.time() + 3600,
                           only=["judge#2"])
    (t,) = out["trials"]
    check(t, "judge#2")
