"""Evaluation tasks (SPEC §7), one module each, registered by name."""

from evals.tasks import hh, sentiment, truthfulness, truthfulqa_mc  # noqa: F401  (registration)
from evals.tasks.base import Sample, Task, TaskResult, get_task, register, task_names

__all__ = ["Sample", "Task", "TaskResult", "get_task", "register", "task_names"]
