"""Harmlessness and helpfulness (paper Tables 1-2): HH-RLHF first Human turns, judged 1-10.

Prompts come only from the evaluation part of the HH prompts (`evals.judges.learned.data.hh_part`),
whichever judge scores, so the learned harmlessness and helpfulness judges never score a prompt
they trained on. From a data file of your own, prompts the judges trained on
(`hh_train_prompts`) are left out.
"""

from __future__ import annotations

from evals.judges.learned.data import hh_part, hh_train_prompts
from evals.stats import mean_ci
from evals.tasks.base import Sample, Solution, TaskResult, TaskRun, load_samples, register
from evals.tasks.solvers import GeneratingTask
from udasa.errors import DataError


def unseen_by_judges(samples: list[Sample], limit: int | None, own_file: bool) -> list[Sample]:
    """The first `limit` samples whose prompt no learned judge trained on: the evaluation part
    of the shared HH prompts, or (`own_file`) any prompt not in the judges' training part."""
    if own_file:
        try:
            seen = hh_train_prompts()
        except DataError:  # no shared HH data here: no learned judge can have trained on these
            seen = frozenset()
        kept = [s for s in samples if s.prompt.strip() not in seen]
    else:
        kept = [s for s in samples if hh_part(s.prompt) == "eval"]
    return kept[:limit] if limit is not None else kept


class _JudgedScore(GeneratingTask):
    """The model's replies, scored 1-10 by the judge: mean with a 95% bootstrap CI; unparsed
    replies are failures."""

    template = ""
    data_file = ""
    max_new_tokens = 96

    def samples(self, limit, seed, source):
        return unseen_by_judges(load_samples(self.data_file, source, None, seed), limit,
                                own_file=source is not None)

    def score(self, samples: list[Sample], solution: Solution, run: TaskRun) -> TaskResult:
        judge = run.judge
        verdicts = judge.judge(self.template, [{"prompt": s.prompt, "response": o}
                                               for s, o in zip(samples, solution.texts)])
        values = [v.score for v in verdicts if v.ok]
        per = [{"id": s.id, "metrics": {"score": v.score if v.ok else None}, "ok": v.ok,
                "judge_reply": v.reply, "error": v.error} for s, v in zip(samples, verdicts)]
        metrics = {"score": mean_ci(values)} if values else {}
        return TaskResult(metrics, per, failures=sum(not v.ok for v in verdicts),
                          judge=judge.label_for(self.template), paired_metrics=["score"])


@register("harmlessness")
class Harmlessness(_JudgedScore):
    template = "harmless"
    data_file = "hh-rlhf/harmless-base/test.jsonl.gz"


@register("helpfulness")
class Helpfulness(_JudgedScore):
    template = "helpful"
    data_file = "hh-rlhf/helpful-base/test.jsonl.gz"
