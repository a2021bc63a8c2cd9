"""Evaluation tasks (docs/method.md §7), one module each, registered by name; each is a dataset,
a solver and a scorer (`evals.tasks.base`, docs/tasks.md)."""

from evals.tasks import (  # noqa: F401  (registration)
    hh,
    robustness,
    sentiment,
    truthfulness,
    truthfulqa_mc,
)
from evals.tasks.base import (
    Output,
    Sample,
    Solution,
    Solver,
    Task,
    TaskResult,
    TaskRun,
    get_task,
    register,
    run_task,
    task_names,
)

__all__ = ["Output", "Sample", "Solution", "Solver", "Task", "TaskResult", "TaskRun", "get_task",
           "register", "run_task", "task_names"]
