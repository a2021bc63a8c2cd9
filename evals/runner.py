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
from evals.leaderboard import human_means, with_settings, write_leaderboard
from evals.models import EvalModel, default_models, label_aliases
from evals.plots import bar_chart
from evals.stats import paired_bootstrap, sign_test
from evals.store_tables import (
    EvalRun,
    EvalSample,
    LeaderboardRow,
    add_eval_run,
    eval_run_times_and_configs,
    eval_runs,
    leaderboard,
    ratings,
)
from evals.tasks.base import Sample, Task, TaskRun, get_task, run_task
from udasa.errors import ConfigError
from udasa.files import write_json, write_jsonl
from udasa.keys import package_versions
from udasa.records import content_key
from udasa.store import Store
from udasa.store_schema import as_rows

log = logging.getLogger(__name__)

# human rating columns (app) -> the leaderboard cell they fill
HUMAN_FIELDS = {"harmless": ("harmlessness", "score"), "helpful": ("helpfulness", "score")}


@dataclass
class EvalConfig:
    workspace: Path
    models: list[EvalModel] = field(default_factory=list)  # empty: base + stored checkpoints
    tasks: list[str] = field(default_factory=lambda: ["harmlessness", "helpfulness",
                                                      "truthfulness", "sentiment"])
    limit: int | None = 50
    seed: int = 0
    judge: str | None = None  # None: gpt4 with $OPENAI_API_KEY, else the local stand-in
    judge_base_url: str | None = None  # an OpenAI-compatible judge server
    judge_model: str | None = None  # the model name that judge server serves
    judge_set: list[str] = field(default_factory=list)  # field=value on the judge's config
    data: dict[str, str] = field(default_factory=dict)  # task -> data file override


def paired_tests(per_model: dict[str, list[dict]]) -> list[dict]:
    """Each model against the first on the same samples (per-sample `value`). A sample whose
    value is missing on either side (a judge failure) is left out and counted in `excluded`."""
    names = list(per_model)
    out = []
    for other in names[1:]:
        base = {r["id"]: r.get("value") for r in per_model[names[0]]}
        shared = [r for r in per_model[other] if r["id"] in base]
        pairs = [(base[r["id"]], r.get("value")) for r in shared
                 if base[r["id"]] is not None and r.get("value") is not None]
        if len(pairs) < 2:
            continue
        a, b = [p[1] for p in pairs], [p[0] for p in pairs]
        boot, sign = paired_bootstrap(a, b), sign_test(a, b)
        out.append({"model": other, "baseline": names[0], "n": len(pairs),
                    "excluded": len(shared) - len(pairs),
                    "mean_diff": boot.mean_diff, "ci": [boot.low, boot.high],
                    "p_bootstrap": boot.p_value, "sign_wins": sign.wins,
                    "sign_losses": sign.losses, "sign_ties": sign.ties, "p_sign": sign.p_value})
    return out


def eval_key(cfg: EvalConfig, models: list[EvalModel], judge) -> str:
    """An evaluation is its settings: rerunning the same one (after a kill, say) replaces its
    rows instead of adding a second copy of every leaderboard row."""
    return content_key(json.dumps({
        "tasks": cfg.tasks, "limit": cfg.limit, "seed": cfg.seed, "data": cfg.data,
        "models": [[m.name, m.identity(), m.limit] for m in models],
        "judge": [judge.config.name, judge.config.model, judge.config.backend,
                  judge.config.base_url]}, sort_keys=True, default=str))


def run_eval(cfg: EvalConfig, progress=print) -> dict[str, Any]:
    """Evaluate every model on every task; returns the results dict (also written to disk)."""
    store = Store(cfg.workspace)
    models = cfg.models or default_models(store)
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
        "eval_id": eval_id, "config": {"tasks": cfg.tasks, "limit": cfg.limit, "seed": cfg.seed,
                                       "models": [asdict(m) for m in models],
                                       "data": cfg.data},
        "judge": {"name": judge.config.name, "label": judge.label, "model": judge.config.model,
                  "backend": judge.config.backend},
        "versions": package_versions(), "tasks": {}}
    samples_out, board = [], []
    for task in tasks:
        samples = task_samples[task.name]
        progress(f"{task.name}: {len(samples)} samples x {len(models)} models")
        outcome = evaluate_task(task, samples, models, judge, store, cfg.data.get(task.name),
                                progress)
        results["tasks"][task.name] = outcome.summary
        samples_out += outcome.samples
        board += outcome.board
    results["judge"]["stats"] = judge.stats.as_dict()
    results["judge"]["agreement"] = judge.agreements()  # learned judges: vs human labels
    out_dir = cfg.workspace / "evals" / eval_id
    write_json(out_dir / "results.json", results, default=str)
    write_jsonl(out_dir / "samples.jsonl", samples_out)
    add_eval_run(store, eval_id, results["config"], results,
                 [EvalSample(**s) for s in samples_out], [LeaderboardRow(**b) for b in board])
    results["paths"] = write_outputs(store, cfg.workspace)
    results["paths"]["results"] = str(out_dir / "results.json")
    return results


@dataclass
class TaskOutcome:
    """One task on every model: its results.json entry, samples.jsonl rows, leaderboard rows."""

    summary: dict[str, Any]
    samples: list[dict[str, Any]] = field(default_factory=list)
    board: list[dict[str, Any]] = field(default_factory=list)


def evaluate_task(task: Task, samples: list[Sample], models: list[EvalModel], judge: Judge,
                  store: Store, source: str | None, progress=print) -> TaskOutcome:
    """The one path for every task: its solver (built once for `source`, the task's `--data`)
    and its scorer on each model in turn, then paired tests between the models."""
    solver = task.solver(source)
    per_model, task_out, out = {}, {}, TaskOutcome({})
    for model in models:
        start = time.perf_counter()
        mine = samples[:model.limit] if model.limit is not None else samples
        solution, res = run_task(task, mine, TaskRun(task.name, model, judge, store, source),
                                 solver)
        per_model[model.name] = res.per_sample
        label = res.judge or judge.label
        task_out[model.name] = {
            "metrics": {k: asdict(v) for k, v in res.metrics.items()},
            "n": len(mine), "failures": res.failures, "judge": label,
            "notes": res.notes, "seconds": round(time.perf_counter() - start, 1)}
        if res.notes:
            progress(f"{task.name} / {model.name}: {res.notes}")
        for k, est in res.metrics.items():
            out.board.append({"model": model.name, "task": task.name, "metric": k,
                              "value": est.mean, "ci_low": est.low, "ci_high": est.high,
                              "n": est.n, "failures": res.failures, "judge": label})
        for i, (s, text, row) in enumerate(zip(mine, solution.texts, res.per_sample)):
            out.samples.append({"model": model.name, "task": task.name, "idx": i,
                                "prompt": s.prompt, "output": text, "scores": row})
    out.summary = {"max_new_tokens": solver.max_new_tokens, "decoding": "greedy",
                   "models": task_out, "paired_tests": paired_tests(per_model)}
    return out


def model_order(runs: list[EvalRun]) -> list[str]:
    """Model names in the order they were given to `udasa-eval run`, oldest run first (the
    suite's order puts the baselines first and UDASA last, as the paper's tables do)."""
    return list(dict.fromkeys(m["name"] for r in runs for m in r.config.get("models", [])))


def write_outputs(store: Store, workspace: Path) -> dict[str, Any]:
    """Leaderboard (markdown, CSV) over every stored eval run, plus a bar chart per metric."""
    rows = as_rows(leaderboard(store))
    if not rows:
        return {}
    times, configs = eval_run_times_and_configs(store)
    human = human_means(as_rows(ratings(store)), HUMAN_FIELDS, label_aliases(store))
    md, csv = write_leaderboard(rows, workspace, human=human, run_times=times,
                                models=model_order(eval_runs(store)), configs=configs)
    charts = [str(p) for p in setting_charts(with_settings(rows, configs), workspace / "plots",
                                             times)]
    return {"leaderboard_md": str(md), "leaderboard_csv": str(csv), "charts": charts}


def setting_charts(rows: list[dict], out: Path, times: dict[str, str]) -> list[Path]:
    """One bar chart per task metric and comparison setting (rows from `with_settings`):
    `eval_<task>_<metric>.png`, numbered `-2`, `-3`... for a task's further settings, oldest
    first, so the usual one-setting workspace keeps its file names."""
    by_task: dict[str, list[str]] = {}
    for r in sorted(rows, key=lambda r: times.get(r.get("eval_id", ""), "")):
        by_task.setdefault(r["task"], [])
        if r["setting"] not in by_task[r["task"]]:
            by_task[r["task"]].append(r["setting"])
    charts = []
    for task, metric in sorted({(r["task"], r["metric"]) for r in rows}):
        for i, setting in enumerate(by_task[task]):
            name = f"eval_{task}_{metric}{f'-{i + 1}' if i else ''}.png"
            try:
                charts.append(bar_chart(rows, task, metric, out / name, run_times=times,
                                        setting=setting))
            except ValueError:  # this metric has no row in this setting
                continue
    return charts
