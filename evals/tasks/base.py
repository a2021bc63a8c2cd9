"""The task protocol and its registration: a task = a dataset, a solver and a scorer.

In the spirit of Inspect's Task(dataset, solver, scorer), without depending on it: the harness
runs every task on every model the same way (`run_task`): load the samples, let the task's
solver make the model answer them, let the task's scorer turn the answers into metrics. A task
registers itself (`register`, registry kind ``task``). See docs/tasks.md.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from evals.stats import Estimate
from udasa import registry
from udasa.data import load_prompts

if TYPE_CHECKING:
    from evals.judges.base import Judge
    from evals.models import EvalModel
    from udasa.store import Store


@dataclass
class Sample:
    id: str
    prompt: str  # what the model is asked
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Output:
    """What a solver produced for one sample: the model's reply (`text`, the `output` of
    samples.jsonl; empty when the solver does not ask for one reply) and whatever else the
    task's scorer reads (`data`: option log-likelihoods, attacked turns and their replies)."""

    text: str = ""
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Solution:
    """A solver's work on one model: one Output per sample, in the samples' order, or none
    when the model could not be put to the task (`notes` then say why)."""

    outputs: list[Output]
    notes: list[str] = field(default_factory=list)

    @classmethod
    def of_texts(cls, texts: list[str]) -> Solution:
        """The solution of a solver that generated one reply per sample."""
        return cls([Output(t) for t in texts])

    @property
    def texts(self) -> list[str]:
        return [o.text for o in self.outputs]


@dataclass
class TaskRun:
    """One task on one model: what the harness hands the task's solver and its scorer."""

    task: str  # the task's registered name
    model: EvalModel
    judge: Judge | None = None  # the judge of `udasa-eval run --judge`
    store: Store | None = None  # caches generations, judge calls and attack suffixes
    source: str | None = None  # the task's data file or task config (`--data TASK=...`)


@dataclass
class TaskResult:
    """Metrics with CIs, per-sample scores, and the number of samples the judge failed on.

    Each per-sample row carries `metrics`: the sample's value of every metric, on the metric's
    own scale (a rate in % is 100 or 0 per sample), None where the scorer failed on it, so that
    each metric's mean is the mean of its samples (the harness checks it). `paired_metrics`
    names the metrics the paired tests between methods compare."""

    metrics: dict[str, Estimate]
    per_sample: list[dict[str, Any]]
    failures: int = 0
    judge: str = ""
    notes: str = ""
    paired_metrics: list[str] = field(default_factory=list)


class Solver(Protocol):
    """How the model answers a task's samples. Kinds: `generate` (one reply per prompt through
    the model's own decoder: greedy, sampled, or RAIN's inference-time search),
    `loglikelihood` (the model's log-likelihoods of answer options) and `attack` (adversarial
    turns built first, then generated)."""

    @property
    def kind(self) -> str: ...

    @property
    def max_new_tokens(self) -> int:
        """The generation length (results.json records it per task); 0 when nothing is
        generated."""
        ...

    def solve(self, samples: list[Sample], run: TaskRun) -> Solution: ...


class Task(Protocol):
    """An evaluation task: its dataset (`samples`), its solver and its scorer (`score`).

    `source` is the task's `--data` value (a data file, or a task config for robustness);
    None means the task's default data. A scorer calls the judge only through its public
    methods (`judge`, `label_for`, `judges_truthfulness`), never its config or backend."""

    name: str

    def samples(self, limit: int | None, seed: int, source: str | None) -> list[Sample]: ...

    def solver(self, source: str | None) -> Solver: ...

    def score(self, samples: list[Sample], solution: Solution, run: TaskRun) -> TaskResult: ...


def run_task(task: Task, samples: list[Sample], run: TaskRun,
             solver: Solver | None = None) -> tuple[Solution, TaskResult]:
    """The harness' one path for a task on a model: the task's solver on `samples` (`solver`:
    one already built for `run.source`), then the task's scorer on what it produced."""
    solution = (solver or task.solver(run.source)).solve(samples, run)
    return solution, task.score(samples, solution, run)


def register(name: str):
    """Class decorator: make a task available as `udasa-eval run --tasks <name>` (registry kind
    ``task``)."""
    def wrap(cls):
        cls.name = name
        return registry.register("task", name)(cls)
    return wrap


def task_names() -> list[str]:
    """Every registered task, built-ins and plugins."""
    return registry.names("task")


def get_task(name: str, what: str = "--tasks") -> Task:
    return registry.lookup("task", name, what)()


def load_samples(default: str, source: str | None, limit: int | None, seed: int,
                 **kwargs: Any) -> list[Sample]:
    """Prompts from `source`, else the task's default data set (a name or mirror path that
    `udasa.datasets` resolves: the offline mirror, else the hub); a seeded subset of `limit`."""
    prompts = load_prompts(source or default, **kwargs).prompts
    random.Random(seed).shuffle(prompts)
    if limit is not None:
        prompts = prompts[:limit]
    return [Sample(p.id, p.text, p.meta) for p in prompts]
