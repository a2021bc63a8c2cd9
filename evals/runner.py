"""`udasa-eval run`: every model through every task, judged, with CIs, paired tests, leaderboards.

Writes, under the workspace: `evals/<eval_id>/results.json` (config, versions, seeds, judge,
metric ± CI, n, failures, paired tests) and `samples.jsonl` (per sample), the store's
eval tables, and `leaderboard.md` / `leaderboard.csv` / `plots/eval_*.png` across all runs.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from evals.judges.base import Judge, make_judge
from evals.leaderboard import write_leaderboard
from evals.models import EvalModel, default_models
from evals.plots import setting_charts
from evals.results import (
    FORMAT,
    check_sample_means,
    created_now,
    load_results,
    stored_evaluation,
    write_evaluation,
)
from evals.stats import paired_comparison
from evals.store_tables import EvalSample, LeaderboardRow, add_eval_run, ratings
from evals.tasks.base import Sample, Task, TaskResult, TaskRun, get_task, run_task
from udasa.errors import ConfigError
from udasa.keys import package_versions
from udasa.records import content_key
from udasa.store import Store
from udasa.store_schema import as_rows

log = logging.getLogger(__name__)


@dataclass
class EvalConfig:
    workspace: Path
    models: list[EvalModel] = field(default_factory=list)  # empty: base + final stages
    tasks: list[str] = field(default_factory=lambda: ["harmlessness", "helpfulness",
                                                      "truthfulness", "sentiment"])
    limit: int | None = 50
    seed: int = 0
    judge: str | None = None  # None: gpt4 with $OPENAI_API_KEY, else the local stand-in
    judge_base_url: str | None = None  # an OpenAI-compatible judge server
    judge_model: str | None = None  # the model name that judge server serves
    judge_set: list[str] = field(default_factory=list)  # field=value on the judge's config
    data: dict[str, str] = field(default_factory=dict)  # task -> data file override
    experiment: str = ""  # the experiment's name (part of every result's identity)
    data_given: dict[str, str] = field(default_factory=dict)  # task -> data as the user wrote it
    all_stages: bool = False  # with no models: every stage checkpoint, not each final one

    def setting(self, task: str, judge: Judge) -> dict[str, Any]:
        """A task's setting as given: data, sample limit, seed and the judge's id."""
        data = self.data_given.get(task) or self.data.get(task) or "default"
        return {"data": data, "limit": self.limit, "seed": self.seed, "judge": judge_id(judge)}


def judge_id(judge: Judge) -> str:
    """The judge's identity in a setting: its name, and the model it asks where it names one."""
    c = judge.config
    return ":".join(p for p in (c.name, c.model) if p)


def paired_tests(per_model: dict[str, dict[str, dict]], metrics: list[str]) -> list[dict]:
    """Each model against the first on each paired metric, paired by sample id
    (`evals.stats.paired_comparison`; samples a scorer failed on are left out, `excluded`)."""
    names = list(per_model)
    out = []
    for metric in metrics:
        first = {sid: m.get(metric) for sid, m in per_model[names[0]].items()}
        for other in names[1:]:
            theirs = {sid: m.get(metric) for sid, m in per_model[other].items()}
            c = paired_comparison(theirs, first)
            if c is not None:
                out.append({"model": other, "baseline": names[0], "metric": metric} | asdict(c))
    return out


def eval_key(cfg: EvalConfig, models: list[EvalModel], judge) -> str:
    """An evaluation is its settings: rerunning the same one (after a kill, say) replaces its
    rows instead of adding a second copy of every leaderboard row."""
    return content_key(json.dumps({
        "tasks": cfg.tasks, "limit": cfg.limit, "seed": cfg.seed, "data": cfg.data,
        "models": [[m.name, m.identity(), m.limit] for m in models],
        "judge": [judge.config.name, judge.config.model, judge.config.backend,
                  judge.config.base_url]} | ({"experiment": cfg.experiment} if cfg.experiment
                                             else {}), sort_keys=True, default=str))


def run_eval(cfg: EvalConfig, progress=print) -> dict[str, Any]:
    """Evaluate every model on every task; returns the results dict (also written to disk)."""
    store = Store(cfg.workspace)
    models = cfg.models or default_models(store, cfg.all_stages)
    tasks = [get_task(t) for t in cfg.tasks]  # unknown task names fail before any work
    if unknown := set(cfg.data) - set(cfg.tasks):
        raise ConfigError(f"--data: {sorted(unknown)} not among the tasks run ({cfg.tasks})")
    overrides = {"base_url": cfg.judge_base_url, "model": cfg.judge_model}
    judge = make_judge(cfg.judge, store, cfg.judge_set,
                       **{k: v for k, v in overrides.items() if v})
    # every task's data is read (and checked) before any model runs: a bad file changes nothing
    task_samples = {t.name: t.samples(cfg.limit, cfg.seed, cfg.data.get(t.name)) for t in tasks}
    eval_id = eval_key(cfg, models, judge)
    results: dict[str, Any] = {
        "format": FORMAT, "eval_id": eval_id, "experiment": cfg.experiment,
        "config": {"tasks": cfg.tasks, "limit": cfg.limit, "seed": cfg.seed,
                   "models": [asdict(m) for m in models], "data": cfg.data},
        "judge": {"name": judge.config.name, "label": judge.label, "model": judge.config.model,
                  "backend": judge.config.backend},
        "versions": package_versions(), "tasks": {}}
    samples_out = []
    for task in tasks:
        samples = task_samples[task.name]
        progress(f"{task.name}: {len(samples)} samples x {len(models)} models")
        outcome = evaluate_task(task, samples, models, judge, store, cfg.data.get(task.name),
                                progress)
        results["tasks"][task.name] = {"setting": cfg.setting(task.name, judge)} | outcome.summary
        samples_out += outcome.samples
    results["judge"]["stats"] = judge.stats.as_dict()
    results["judge"]["agreement"] = judge.agreements()  # learned judges: vs human labels
    results["created_at"] = created_now()
    path = record_evaluation(store, cfg.workspace, results, samples_out)
    results["paths"] = write_outputs(store, cfg.workspace)
    results["paths"]["results"] = str(path)
    return results


def record_evaluation(store: Store, workspace: Path, results: dict[str, Any],
                      samples: list[dict[str, Any]]) -> Path:
    """An evaluation's record: `evals/<id>/results.json` and `samples.jsonl` (what every view
    reads), and the store's eval rows (the app's rating pool); returns results.json's path.
    A rerun that finds every result as stored keeps the stored record (`stored_evaluation`)."""
    folder = workspace / "evals" / results["eval_id"]
    kept = stored_evaluation(folder, results, samples)
    if kept is None:
        write_evaluation(folder, results, samples)
    else:
        log.info("evaluation %s: every result as stored; its record is kept", results["eval_id"])
        results = kept
    board = [LeaderboardRow(model=name, task=task, metric=metric, value=e["mean"],
                            ci_low=e["low"], ci_high=e["high"], n=e["n"],
                            failures=m.get("failures", 0), judge=m.get("judge", ""))
             for task, summary in results["tasks"].items()
             for name, m in summary["models"].items() for metric, e in m["metrics"].items()]
    add_eval_run(store, results["eval_id"], results["config"], results,
                 [EvalSample(**s) for s in samples], board)
    return folder / "results.json"


@dataclass
class TaskOutcome:
    """One task on every model: its results.json entry and samples.jsonl rows."""

    summary: dict[str, Any]
    samples: list[dict[str, Any]] = field(default_factory=list)


def evaluate_task(task: Task, samples: list[Sample], models: list[EvalModel], judge: Judge,
                  store: Store, source: str | None, progress=print) -> TaskOutcome:
    """The one path for every task: its solver (built once for `source`, the task's `--data`)
    and its scorer on each model in turn, then paired tests between the models."""
    solver = task.solver(source)
    per_model, task_out, out = {}, {}, TaskOutcome({})
    paired: list[str] = []
    for model in models:
        start = time.perf_counter()
        mine = samples[:model.limit] if model.limit is not None else samples
        solution, res = run_task(task, mine, TaskRun(task.name, model, judge, store, source),
                                 solver)
        per_sample = sample_metrics(task.name, model.name, res)
        per_model[model.name] = dict(zip((r["id"] for r in res.per_sample), per_sample))
        label = res.judge or judge.label
        task_out[model.name] = {
            "metrics": {k: asdict(v) for k, v in res.metrics.items()},
            "n": len(mine), "failures": res.failures, "judge": label,
            "model": {"spec": model.spec, "key": model_key(model, task.name)},
            "paper_rows": list(model.paper_rows),
            "notes": res.notes, "seconds": round(time.perf_counter() - start, 1)}
        if res.notes:
            progress(f"{task.name} / {model.name}: {res.notes}")
        for i, (s, text, row) in enumerate(zip(mine, solution.texts, res.per_sample)):
            out.samples.append({"model": model.name, "task": task.name, "idx": i,
                                "prompt": s.prompt, "output": text, "scores": row})
        paired = list(dict.fromkeys(paired + [m for m in res.paired_metrics if m in res.metrics]))
    out.summary = {"max_new_tokens": solver.max_new_tokens, "decoding": "greedy",
                   "paired_metrics": paired, "models": task_out,
                   "paired_tests": paired_tests(per_model, paired)}
    return out


def sample_metrics(task: str, model: str, res: TaskResult) -> list[dict[str, float | None]]:
    """Each sample's metric values, checked against the task's metrics (their means and n)."""
    if any("metrics" not in row for row in res.per_sample):
        raise ConfigError(f"task {task}: its scorer's per-sample rows need a `metrics` dict "
                          "(each metric's value per sample; docs/tasks.md)")
    values = [row["metrics"] for row in res.per_sample]
    check_sample_means(task, model, res.metrics, values)
    return values


def model_key(model: EvalModel, task: str) -> str:
    """The model's identity (weights, decoder and its settings for `task`) as one key."""
    return content_key(json.dumps(model.identity(task), sort_keys=True, default=str))


def write_outputs(store: Store, workspace: Path) -> dict[str, Any]:
    """Leaderboard (markdown, CSV) over every current result of the workspace, plus a bar
    chart per task, setting and metric."""
    results = load_results(workspace)
    if not results.current:
        return {}
    md, csv = write_leaderboard(results, workspace, as_rows(ratings(store)))
    charts = [str(p) for p in setting_charts(results, workspace / "plots")]
    return {"leaderboard_md": str(md), "leaderboard_csv": str(csv), "charts": charts}
