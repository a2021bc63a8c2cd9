"""Evaluation tasks (docs/method.md §7), one module each, each registering itself
(`evals.tasks.base.register`; the registry imports every module of this package); each is a
dataset, a solver and a scorer (`evals.tasks.base`, docs/tasks.md)."""

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
