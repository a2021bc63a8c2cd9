"""The shared solvers: `Generate` (one reply per prompt) and `LogLikelihood` (answer options
scored by the model). The robustness task's `attack` solver lives with it
(`evals.tasks.robustness.AttackSolver`, which runs the registered attack its config names). Inference-time search (RAIN) is not a solver of its own:
it is a decoder the model brings (`EvalModel.decoder`), so `Generate` runs it like greedy or
sampled decoding."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from evals.tasks.base import Output, Sample, Solution, TaskRun
from udasa.records import content_key
from udasa.store_records import Response

if TYPE_CHECKING:
    from evals.models import EvalModel


@dataclass(frozen=True)
class Generate:
    """The model answers each sample's prompt with up to `max_new_tokens` tokens through its
    own decoder, cached in the store (a rerun generates nothing it already has)."""

    max_new_tokens: int
    kind: ClassVar[str] = "generate"

    def solve(self, samples: list[Sample], run: TaskRun) -> Solution:
        outputs = run.model.generate(run.store, [(s.id, s.prompt) for s in samples],
                                     self.max_new_tokens, desc=f"{run.task} / {run.model.name}",
                                     task=run.task)
        return Solution.of_texts([outputs[s.id] for s in samples])


# (model, samples) -> one JSON record per sample, in order: what the scorer needs of its options
OptionScorer = Callable[["EvalModel", list[Sample]], list[dict[str, Any]]]


@dataclass(frozen=True)
class LogLikelihood:
    """The model's log-likelihoods of each sample's answer options, computed by `score_options`.
    They need a local model: an API model returns no log-probabilities, so it gets no outputs
    and `api_note` says why. With a store, each sample's record is kept under the model's
    identity and `cache_id` (what else decides the scores: data file, scorer version), so a
    rerun scores only the samples it has not scored."""

    score_options: OptionScorer
    api_note: str
    cache_id: str = ""
    kind: ClassVar[str] = "loglikelihood"
    max_new_tokens: ClassVar[int] = 0  # nothing is generated

    def solve(self, samples: list[Sample], run: TaskRun) -> Solution:
        if run.model.spec.startswith("openai:"):
            return Solution([], [self.api_note])
        if not samples:  # (lm-eval would take an empty selection for "every question")
            return Solution([], ["no samples selected"])
        if run.store is None:
            return Solution([Output(data=r) for r in self.score_options(run.model, samples)])
        key = content_key(self.kind, json.dumps(run.model.identity(), sort_keys=True),
                          self.cache_id)
        have = {r.prompt_id: json.loads(r.text) for r in run.store.responses(key)}
        todo = [s for s in samples if s.id not in have]
        if todo:
            records = self.score_options(run.model, todo)
            run.store.add_responses([Response.single(key, s.id, json.dumps(r), run.model.name)
                                     for s, r in zip(todo, records)])
            have.update((s.id, r) for s, r in zip(todo, records))
        return Solution([Output(data=have[s.id]) for s in samples])


class GeneratingTask:
    """Base of the tasks whose solver is `Generate(max_new_tokens)`."""

    max_new_tokens: int = 64

    def solver(self, source: str | None) -> Generate:
        return Generate(self.max_new_tokens)
