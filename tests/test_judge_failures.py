"""Judge failures are excluded from every metric and every paired test, and counted, per task.

The judge is the real `openai` backend talking over TCP to the scripted server in
tests/openai_server.py: a reply the parser cannot read is a failure, and so is an item whose
every attempt times out (the server sleeps past the client's timeout on each retry).
"""

from __future__ import annotations

import time

import pytest
from openai_server import FakeOpenAIServer

from evals.judges.base import make_judge
from evals.models import EvalModel
from evals.results import check_sample_means
from evals.runner import paired_tests
from evals.tasks.base import Sample, Solution, TaskRun, run_task
from evals.tasks.hh import Harmlessness, Helpfulness
from evals.tasks.sentiment import ControlledSentiment
from evals.tasks.truthfulness import Truthfulness
from udasa.data import data_dir
from udasa.store import Store

KEY_ENV = "UDASA_TEST_JUDGE_KEY"
HANG_S = 1.5  # > the client timeout below, on every attempt


def scripted(body: dict) -> str:
    """Reads the output under judgement: `score-7` -> "Score: 7/10"; `T-yes I-no` -> yes to
    the truthful template, no to the informative one (`S-` for sentiment); `GARBLED-X` -> an
    unreadable reply; `HANG-X` -> sleeps past the client's timeout. Other 1-10 prompts get 3."""
    text = body["messages"][-1]["content"]
    if "HANG-X" in text:
        time.sleep(HANG_S)
        return "Score: 5"
    if "GARBLED-X" in text:
        return "I would rather not say."
    if "score-" in text:
        return f"Score: {text.split('score-')[1].split()[0]}/10"
    if "Rate" in text:
        return "Score: 3/10"
    tag = "I-" if "is informative" in text else "T-" if "is true" in text else "S-"
    if f"{tag}GARBLED" in text:  # this template only
        return "Perhaps."
    return "Yes." if f"{tag}yes" in text else "No."


@pytest.fixture
def judge(tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "sk-test")
    with FakeOpenAIServer(scripted) as server:
        store = Store(tmp_path / "ws")
        j = make_judge("gpt4", store, base_url=server.base_url, api_key_env=KEY_ENV,
                       max_retries=2, backoff_base_s=0.01, backoff_max_s=0.02, timeout_s=0.5)
        j.server = server
        yield j
        store.close()


def samples(n: int, **meta) -> list[Sample]:
    return [Sample(f"s{i}", f"question {i}", dict(meta)) for i in range(n)]


def scored(task, samples: list[Sample], outputs: list[str], judge):
    """The task's scorer on `outputs` as if its solver had generated them."""
    return task.score(samples, Solution.of_texts(outputs),
                      TaskRun(task.name, EvalModel("m", "base"), judge, judge.store))


@pytest.mark.parametrize("task", [Harmlessness, Helpfulness])
def test_hh_scores_exclude_unparseable_and_timed_out_replies(task, judge):
    outputs = ["score-3", "score-9", "GARBLED-X", "HANG-X", "score-6"]
    res = scored(task(), samples(5), outputs, judge)
    est = res.metrics["score"]
    assert (est.n, est.mean, res.failures) == (3, pytest.approx(6.0), 2)
    assert [r["metrics"]["score"] for r in res.per_sample] == [3.0, 9.0, None, None, 6.0]
    assert [r["ok"] for r in res.per_sample] == [True, True, False, False, True]
    assert "unparseable" in res.per_sample[2]["error"]
    assert "gave up after 3 attempts" in res.per_sample[3]["error"]
    assert "Timeout" in res.per_sample[3]["error"]
    # three tries of the hanging item, each answered only after the client gave up
    hung = [r for r in judge.server.requests_to("/chat/completions")
            if "HANG-X" in r["body"]["messages"][-1]["content"]]
    assert len(hung) == 3
    failed = [r for r in judge.store.db["judge_cache"].rows if not r["ok"]]
    assert len(failed) == 2 and all(r["score"] is None for r in failed)


def test_truthfulness_counts_no_as_zero_and_failures_as_missing(judge):
    outputs = ["T-yes I-yes", "T-no I-yes", "T-yes I-no", "T-no I-no", "GARBLED-X", "HANG-X",
               "T-yes I-GARBLED"]
    res = scored(Truthfulness(), samples(7, correct_answers=["a"]), outputs, judge)
    assert res.failures == 3  # garbled, timed out, one template of two unreadable
    true, info, both = (res.metrics[k] for k in ("true", "info", "true_x_info"))
    assert true.n == info.n == both.n == 4
    assert true.mean == pytest.approx(50.0) and info.mean == pytest.approx(50.0)
    assert both.mean == pytest.approx(25.0)
    values = [r["metrics"]["true_x_info"] for r in res.per_sample]
    assert values == [100.0, 0.0, 0.0, 0.0, None, None, None]  # a "no" is 0, a failure None
    check_sample_means("truthfulness", "m", res.metrics, [r["metrics"] for r in res.per_sample])


def test_sentiment_judge_column_excludes_failures_and_keeps_no(judge):
    outputs = ["S-yes great", "S-no awful", "S-no dull", "GARBLED-X", "HANG-X"]
    res = scored(ControlledSentiment(), samples(5, opening="The film"), outputs, judge)
    judged = res.metrics["positive_judge"]
    assert (judged.n, res.failures) == (3, 2)
    assert judged.mean == pytest.approx(100 / 3)
    assert res.metrics["positive_vader"].n == 5  # the lexicon needs no judge
    assert [r["judge_score"] for r in res.per_sample] == [1.0, 0.0, 0.0, None, None]
    assert [r["ok"] for r in res.per_sample] == [True, True, True, False, False]


def test_paired_test_drops_samples_a_judge_failed_on_either_side(judge):
    task = Harmlessness()
    a = scored(task, samples(6), ["score-2", "GARBLED-X", "score-4", "score-5", "score-6",
                                  "score-7"], judge)
    b = scored(task, samples(6), ["score-3", "score-9", "HANG-X", "score-8", "score-8",
                                  "score-9"], judge)
    per = {name: {r["id"]: r["metrics"] for r in res.per_sample}
           for name, res in (("a", a), ("b", b))}
    (test,) = paired_tests(per, ["score"])
    # samples 1 (a failed) and 2 (b failed) are out; differences 1, 3, 2, 2 remain
    assert test["n"] == 4 and test["excluded"] == 2
    assert test["mean_diff"] == pytest.approx(2.0)
    assert (test["wins"], test["losses"], test["ties"]) == (4, 0, 0)
    assert test["p_sign"] == pytest.approx(0.125)


GCG_DATA = ("gcg/refusal_prefixes.json", "gcg/universal_suffixes.json")


@pytest.mark.skipif(not all((data_dir() / f).is_file() for f in GCG_DATA),
                    reason=f"shared data folder {data_dir()} lacks {GCG_DATA} (set UDASA_DATA_DIR)")
def test_robustness_judge_criterion_excludes_failures(judge, tmp_path, tiny_policy):
    """`judge: harness`: a behaviour the judge fails on leaves the *_judge ASR (n and
    failures), never the refusal-prefix ASR."""
    import yaml

    from evals.tasks.robustness import Robustness

    behaviours = tmp_path / "behaviours.csv"
    behaviours.write_text("goal,target\nWrite a poem GARBLED-X,Sure\nWrite a song,Sure\n"
                          "Write a joke,Sure\n")
    source = tmp_path / "task.yaml"
    source.write_text(yaml.safe_dump({"behaviours": str(behaviours), "judge": "harness",
                                      "max_new_tokens": 4, "no_suffix_baseline": True}))
    task = Robustness()
    _, res = run_task(task, task.samples(None, 0, str(source)),
                      TaskRun(task.name, EvalModel("tiny", tiny_policy), judge, judge.store,
                              str(source)))
    # the judge prompt carries the goal: "GARBLED-X" -> unreadable on every attack of row 1
    attacks = [k.removeprefix("asr_").removesuffix("_prefix") for k in res.metrics
               if k.endswith("_prefix")]
    assert attacks and all(res.metrics[f"asr_{a}_prefix"].n == 3 for a in attacks)
    judged = [k for k in res.metrics if k.endswith("_judge")]
    assert judged and all(res.metrics[k].n == 2 for k in judged)
    n_attack_kinds = len({n for r in res.per_sample for n in r["attacks"]})
    assert res.failures == n_attack_kinds  # one failed behaviour x every attack
    row = next(r for r in res.per_sample if "GARBLED-X" in r["goal"])
    assert all(v["jailbroken_judge"] is None for v in row["attacks"].values())
    assert all(row["metrics"][k] is None for k in judged)  # undecided: no value
    assert all(row["metrics"][f"asr_{a}_prefix"] in (0.0, 100.0) for a in attacks
               if f"asr_{a}_prefix" in row["metrics"])
    check_sample_means("robustness", "m", res.metrics, [r["metrics"] for r in res.per_sample])
    assert set(res.paired_metrics) <= set(res.metrics)
