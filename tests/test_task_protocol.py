"""The task protocol: a task written as a dataset + a solver + a scorer runs through the
runner's one path and produces its metric; tasks use only the judge's public interface."""

from __future__ import annotations

import pytest

from evals.judges.base import Judgement, make_judge
from evals.models import EvalModel
from evals.runner import evaluate_task
from evals.stats import mean_ci
from evals.tasks.base import Sample, Solution, TaskResult, TaskRun
from evals.tasks.solvers import Generate
from udasa.store import Store

PROMPTS = ["Say hello.", "Name a colour.", "Count to three."]


class WordCount:
    """A toy task: three fixed prompts (dataset), greedy replies of at most 4 tokens (solver),
    the mean number of words per reply (scorer)."""

    name = "word_count"

    def samples(self, limit: int | None, seed: int, source: str | None) -> list[Sample]:
        return [Sample(f"p{i}", text) for i, text in enumerate(PROMPTS)][:limit]

    def solver(self, source: str | None) -> Generate:
        return Generate(max_new_tokens=4)

    def score(self, samples: list[Sample], solution: Solution, run: TaskRun) -> TaskResult:
        counts = [len(text.split()) for text in solution.texts]
        return TaskResult({"words": mean_ci(counts)},
                          [{"id": s.id, "metrics": {"words": float(c)}}
                           for s, c in zip(samples, counts)],
                          judge="word count (no judge)", notes=f"model {run.model.name}",
                          paired_metrics=["words"])


def test_a_toy_task_runs_through_the_runner(tmp_path, tiny_policy):
    store = Store(tmp_path / "ws")
    task, judge = WordCount(), make_judge("local", store)  # the local judge loads nothing here
    models = [EvalModel("a", tiny_policy), EvalModel("b", tiny_policy, limit=2)]
    out = evaluate_task(task, task.samples(None, 0, None), models, judge, store, None,
                        progress=lambda *_: None)
    assert out.summary["max_new_tokens"] == 4 and out.summary["decoding"] == "greedy"
    a = out.summary["models"]["a"]
    assert a["n"] == 3 and a["metrics"]["words"]["n"] == 3 and a["failures"] == 0
    assert a["judge"] == "word count (no judge)" and a["notes"] == "model a"
    assert out.summary["models"]["b"]["n"] == 2  # a model's own limit
    (paired,) = out.summary["paired_tests"]
    assert (paired["model"], paired["metric"], paired["n"]) == ("b", "words", 2)
    assert out.summary["paired_metrics"] == ["words"]
    rows = [r for r in out.samples if r["model"] == "a"]
    assert [r["prompt"] for r in rows] == PROMPTS
    # the sample rows hold the solver's replies, which the store cached for the next run
    cached = {r["prompt_id"]: r["text"] for r in store.db["responses"].rows}
    assert [r["output"] for r in rows] == [cached[f"p{i}"] for i in range(3)]
    assert [r["scores"]["metrics"]["words"] for r in rows] == [
        float(len(r["output"].split())) for r in rows]


class PublicJudge:
    """A judge with only the public interface tasks may use (no config, no backend)."""

    label = "public judge"

    def __init__(self, judges_truthfulness: bool):
        self.judges_truthfulness = judges_truthfulness
        self.templates: list[str] = []

    def label_for(self, template: str) -> str:
        return f"public judge ({template})" if template == "truthful" else self.label

    def judge(self, template: str, items: list[dict]) -> list[Judgement]:
        self.templates.append(template)
        score = 7.0 if template in ("harmless", "helpful") else 1.0  # 1-10 or yes (1) / no (0)
        return [Judgement(score=score, ok=True, reply=str(score)) for _ in items]


@pytest.mark.parametrize("name", ["harmlessness", "helpfulness", "sentiment", "truthfulness"])
def test_tasks_use_only_the_judges_public_interface(name):
    from evals.tasks import get_task

    task, judge = get_task(name), PublicJudge(judges_truthfulness=True)
    samples = [Sample("s0", "Is the sky blue?", {"correct_answers": ["yes"], "opening": "A"})]
    res = task.score(samples, Solution.of_texts(["Yes, it is blue."]),
                     TaskRun(name, EvalModel("m", "base"), judge))
    assert res.metrics and res.failures == 0
    if name == "truthfulness":  # one label per distinct judge, in template order
        assert judge.templates == ["truthful", "informative"]
        assert res.judge == "public judge (truthful); public judge"


def test_truthfulness_asks_the_judge_whether_it_can_judge_truth():
    """A judge that cannot tell true from false is not asked; reference answers decide."""
    from evals.tasks.truthfulness import Truthfulness

    judge = PublicJudge(judges_truthfulness=False)
    samples = [Sample("s0", "What colour is the sky?", {"correct_answers": ["The sky is blue"],
                                                        "incorrect_answers": ["It is green"]})]
    res = Truthfulness().score(samples, Solution.of_texts(["The sky is blue on a clear day."]),
                               TaskRun("truthfulness", EvalModel("m", "base"), judge))
    assert judge.templates == [] and res.judge.startswith("reference answers")
    assert res.per_sample[0]["true"] is True
    assert not make_judge("local").judges_truthfulness  # the SmolLM2 stand-in
    assert make_judge("gpt4", base_url="http://127.0.0.1:9").judges_truthfulness
    assert make_judge("learned").judges_truthfulness
