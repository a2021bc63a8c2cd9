"""Evaluation tasks (docs/method.md §7), one module each, registered by name."""

from evals.tasks import (  # noqa: F401  (registration)
    hh,
    robustness,
    sentiment,
    truthfulness,
    truthfulqa_mc,
)
from evals.tasks.base import Sample, Task, TaskResult, get_task, register, task_names

__all__ = ["Sample", "Task", "TaskResult", "get_task", "register", "task_names"]
