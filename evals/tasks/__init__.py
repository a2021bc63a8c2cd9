"""Evaluation tasks (docs/method.md §7), one module each, each registering itself
(`evals.tasks.base.register`; the registry imports every module of this package)."""

from evals.tasks.base import Sample, Task, TaskResult, get_task, register, task_names

__all__ = ["Sample", "Task", "TaskResult", "get_task", "register", "task_names"]
