"""Controlled sentiment (paper Table 6): continue IMDB review openings; % positive.

Scored by the embedded VADER lexicon (compound >= 0.05 is positive, its authors' cut-off)
and, as a second column, by the judge's yes/no "is this continuation positive?".
"""

from __future__ import annotations

from evals.stats import proportion_ci
from evals.tasks.base import Sample, Solution, TaskResult, TaskRun, load_samples, register
from evals.tasks.solvers import GeneratingTask

INSTRUCTION = "Continue this movie review: {opening}"


def vader_positive(texts: list[str]) -> list[bool]:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    return [analyzer.polarity_scores(t)["compound"] >= 0.05 for t in texts]


@register("sentiment")
class ControlledSentiment(GeneratingTask):
    max_new_tokens = 48
    data_file = "imdb/aclImdb_subset5k.tar.gz"

    def samples(self, limit, seed, source):
        rows = load_samples(self.data_file, source, limit, seed, split="test")
        return [Sample(s.id, INSTRUCTION.format(opening=s.prompt), s.meta | {"opening": s.prompt})
                for s in rows]

    def score(self, samples: list[Sample], solution: Solution, run: TaskRun) -> TaskResult:
        judge, outputs = run.judge, solution.texts
        lexicon = vader_positive(outputs)
        verdicts = judge.judge("sentiment", [{"prompt": s.meta.get("opening", s.prompt),
                                              "response": o} for s, o in zip(samples, outputs)])
        judged = [v.score >= 0.5 for v in verdicts if v.ok]
        metrics = {"positive_vader": proportion_ci(lexicon)}
        if judged:
            metrics["positive_judge"] = proportion_ci(judged)
        per = [{"id": s.id, "metrics": {"positive_vader": 100.0 * lx,
                                        "positive_judge": 100.0 * (v.score >= 0.5) if v.ok
                                        else None},
                "judge_score": v.score, "ok": v.ok, "judge_reply": v.reply}
               for s, lx, v in zip(samples, lexicon, verdicts)]
        return TaskResult(metrics, per, failures=sum(not v.ok for v in verdicts),
                          judge=f"VADER; {judge.label_for('sentiment')}",
                          paired_metrics=["positive_judge", "positive_vader"])
