"""The task interface and its registration: a task = data + generation settings + scoring."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Protocol

from evals.stats import Estimate
from udasa import registry
from udasa.data import load_prompts


@dataclass
class Sample:
    id: str
    prompt: str  # what the model is asked
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class TaskResult:
    """Metrics with CIs, per-sample scores, and the number of samples the judge failed on."""

    metrics: dict[str, Estimate]
    per_sample: list[dict[str, Any]]
    failures: int = 0
    judge: str = ""
    notes: str = ""


class Task(Protocol):
    name: str
    max_new_tokens: int

    def samples(self, limit: int | None, seed: int, source: str | None) -> list[Sample]: ...

    def score(self, samples: list[Sample], outputs: list[str], judge, ctx: dict) -> TaskResult: ...


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
