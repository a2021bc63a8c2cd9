"""Harmlessness and helpfulness (paper Tables 1-2): HH-RLHF first Human turns, judged 1-10."""

from __future__ import annotations

from evals.stats import mean_ci
from evals.tasks.base import Sample, TaskResult, load_samples, register


class _JudgedScore:
    """Mean judge score (1-10) with a 95% bootstrap CI; unparsed replies are failures."""

    template = ""
    data_file = ""
    max_new_tokens = 96

    def samples(self, limit, seed, source):
        return load_samples(self.data_file, source, limit, seed)

    def score(self, samples: list[Sample], outputs: list[str], judge, ctx) -> TaskResult:
        verdicts = judge.judge(self.template, [{"prompt": s.prompt, "response": o}
                                               for s, o in zip(samples, outputs)])
        values = [v.score for v in verdicts if v.ok]
        per = [{"id": s.id, "value": v.score, "ok": v.ok, "judge_reply": v.reply,
                "error": v.error} for s, v in zip(samples, verdicts)]
        metrics = {"score": mean_ci(values)} if values else {}
        return TaskResult(metrics, per, failures=sum(not v.ok for v in verdicts))


@register("harmlessness")
class Harmlessness(_JudgedScore):
    template = "harmless"
    data_file = "hh-rlhf/harmless-base/test.jsonl.gz"


@register("helpfulness")
class Helpfulness(_JudgedScore):
    template = "helpful"
    data_file = "hh-rlhf/helpful-base/test.jsonl.gz"
