"""lm-evaluation-harness task configs (our own, not copied from lm-eval) for TruthfulQA MC1/MC2.

The YAMLs hold a placeholder for the data file; `evals.tasks.truthfulqa_mc.render_tasks`
writes copies with the real path of `mc_task.json` into a temporary include dir, which
`lm_eval.tasks.TaskManager(include_path=...)` then loads. The `!function` hooks live in
`evals.lm_eval_tasks.utils` and are imported by module name, so the rendered YAMLs need no
copy of this package beside them.
"""
