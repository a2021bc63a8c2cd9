"""`udasa-eval report`: a results report from a workspace's stored evaluations.

For each task (and each data setting of it, e.g. robustness transfer and white-box), the
newest stored evaluation: every method's metrics with 95% CIs, then the main method (default
UDASA) against every other method paired by sample: mean difference with its bootstrap CI,
the standardised effect d_z (mean difference / SD of the differences), wins / losses / ties,
bootstrap and sign-test p-values, and Holm's adjustment over every comparison in the report,
which decides the plain "significant / not significant" statement. The runs that made the
workspace are listed with their command and wall time (from each log's `$ command` first line
and `experiment finished in N s` line), and the paper tables (`tables.md`, its PNGs copied
beside the report) follow.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from evals.leaderboard import shown_path
from evals.stats import paired_bootstrap, sign_test
from udasa.errors import ConfigError
from udasa.files import atomic_write, write_text

ALPHA = 0.05


@dataclass
class TaskResult:
    """One task's newest evaluation in one data setting: results.json's entry, its samples."""

    task: str
    data: str
    judge: str
    summary: dict[str, Any]
    values: dict[str, dict[int, float]]  # method -> sample index -> per-sample value


def _newest_evals(workspaces: Sequence[Path]) -> list[tuple[dict, list[dict]]]:
    runs = []
    for path in (p for ws in workspaces for p in (ws / "evals").glob("*/results.json")):
        samples = path.with_name("samples.jsonl")
        try:
            rows = [json.loads(line) for line in samples.read_text(encoding="utf-8")
                    .splitlines() if line.strip()] if samples.exists() else []
            results = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ConfigError(f"{path.parent}: unreadable results ({e})") from None
        runs.append((path.stat().st_mtime, results, rows))
    return [(r, s) for _, r, s in sorted(runs, key=lambda t: t[0], reverse=True)]


def task_results(*workspaces: Path) -> list[TaskResult]:
    """The newest evaluation of each (task, data setting) in any of the workspaces (the
    experiment split into runs on several machines), in the order first evaluated."""
    seen: dict[tuple[str, str], TaskResult] = {}
    for results, samples in _newest_evals(workspaces):
        data = results["config"].get("data") or {}
        for task, summary in results["tasks"].items():
            key = (task, shown_path(data.get(task)))
            if key in seen:
                continue
            values: dict[str, dict[int, float]] = {}
            for row in samples:
                value = (row.get("scores") or {}).get("value")
                if row["task"] == task and value is not None:
                    values.setdefault(row["model"], {})[int(row["idx"])] = float(value)
            seen[key] = TaskResult(task, key[1], task_judge(results, summary), summary, values)
    return list(reversed(seen.values()))


def task_judge(results: dict[str, Any], summary: dict[str, Any]) -> str:
    """Who scored the task: its rows' own judge labels (a learned judge with its measured
    agreement; "no judge" for log-likelihoods and refusal prefixes), else the run's judge."""
    labels = dict.fromkeys(m.get("judge") for m in summary.get("models", {}).values())
    labels.pop(None, None)
    return "; ".join(labels) if labels else results["judge"]["label"]


def holm(p_values: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1)."""
    order = np.argsort(p_values)
    adjusted, running = [0.0] * len(p_values), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def value_metric(result: TaskResult, method: str) -> str:
    """The metric the per-sample values of `method` average to (what the paired tests
    compare), or "value" when none matches."""
    values = list(result.values.get(method, {}).values())
    metrics = result.summary["models"].get(method, {}).get("metrics", {})
    for name, est in metrics.items():
        for scale in (1.0, 100.0):  # rates are stored per sample as 0/1, reported in %
            mean = scale * float(np.mean(values)) if values else float("nan")
            if abs(mean - est["mean"]) < 1e-6 * max(1.0, abs(est["mean"])):
                return name if scale == 1.0 else f"{name} / 100"
    return "value"


def comparisons(result: TaskResult, main: str) -> list[dict[str, Any]]:
    """`main` minus each other method on the samples both have a value for."""
    mine = result.values.get(main, {})
    metric = value_metric(result, main)  # the same for every comparison of `main`
    out = []
    for other, theirs in result.values.items():
        shared = sorted(set(mine) & set(theirs))
        if other == main or len(shared) < 2:
            continue
        a, b = [mine[i] for i in shared], [theirs[i] for i in shared]
        diff = np.subtract(a, b)
        boot, sign = paired_bootstrap(a, b), sign_test(a, b)
        sd = float(diff.std(ddof=1))
        out.append({"task": result.task, "data": result.data, "other": other,
                    "metric": metric,
                    "n": len(shared), "diff": boot.mean_diff, "low": boot.low,
                    "high": boot.high, "d_z": float(diff.mean()) / sd if sd > 0 else 0.0,
                    "wins": sign.wins, "losses": sign.losses, "ties": sign.ties,
                    "p_boot": boot.p_value, "p_sign": sign.p_value})
    return out


def run_lines(logs: list[Path]) -> list[str]:
    """One line per run: its command and the wall time the command printed."""
    lines = ["| run | command | wall time |", "|---|---|---|"]
    for i, log in enumerate(logs, 1):
        text = log.read_text(encoding="utf-8", errors="replace")
        command = next((ln[2:] for ln in text.splitlines() if ln.startswith("$ ")), "?")
        done = re.findall(r"experiment finished in (\d+) s", text)
        took = f"{int(done[-1])} s ({int(done[-1]) / 60:.0f} min)" if done else "not finished"
        lines.append(f"| {i} | `{command}` | {took} |")
    return lines


def metric_lines(result: TaskResult) -> list[str]:
    lines = ["| method | metric | mean [95% CI] | n | failures | s (this run; 0: cached) |",
             "|---|---|---|---|---|---|"]
    for method, m in result.summary["models"].items():
        for metric, est in m["metrics"].items():
            lines.append(f"| {method} | {metric} | {est['mean']:.3f} [{est['low']:.3f}, "
                         f"{est['high']:.3f}] | {est['n']} | {m['failures']} | "
                         f"{m.get('seconds', '')} |")
    return lines


def comparison_lines(rows: list[dict[str, Any]]) -> list[str]:
    lines = [("| task (data): metric | main - method | n | mean diff [95% CI] | d_z | W/L/T | "
              "p boot | p sign | p Holm | significant |"), "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['task']} ({r['data']}): {r['metric']} | {r['other']} | {r['n']} | {r['diff']:+.3f} "
            f"[{r['low']:+.3f}, {r['high']:+.3f}] | {r['d_z']:+.2f} | "
            f"{r['wins']}/{r['losses']}/{r['ties']} | {r['p_boot']:.3g} | {r['p_sign']:.3g} | "
            f"{r['p_holm']:.3g} | {'yes' if r['p_holm'] < ALPHA else 'no'} |")
    return lines


def statement(rows: list[dict[str, Any]], main: str) -> list[str]:
    """The plain-language verdict: which differences survive Holm's correction."""
    sig = [r for r in rows if r["p_holm"] < ALPHA]
    lines = [(f"{len(sig)} of {len(rows)} comparisons of {main} with another method are "
             f"significant at {ALPHA} after Holm's correction over all {len(rows)}:")]
    lines += [f"- {r['task']} ({r['data']}): {main} {'above' if r['diff'] > 0 else 'below'} "
              f"{r['other']} by {abs(r['diff']):.3f} [{r['low']:+.3f}, {r['high']:+.3f}]"
              for r in sig] or ["- none."]
    lines += ["", (f"{'No other' if sig else 'No'} difference in the comparison table is "
              "distinguishable from zero at this sample size: its Holm-adjusted p is at least "
              f"{ALPHA}.")]
    return lines


def tables_section(workspace: Path, assets: Path, link: str) -> list[str]:
    """`tables.md` of the workspace, its PNGs copied to `assets` (linked as `link/`)."""
    md = workspace / "tables.md"
    if not md.exists():
        return [f"(no tables.md in {workspace}: run `udasa-eval tables`)"]
    for png in (workspace / "tables").glob("*.png"):
        with atomic_write(assets / png.name, "wb") as f:
            f.write(png.read_bytes())
    text = md.read_text(encoding="utf-8").replace("](tables/", f"]({link}/")
    lines = text.splitlines()
    if lines and lines[0].startswith("# "):  # its title: the report's section heading says it
        lines = lines[1:]
    return [re.sub(r"^(#+) ", r"#\1 ", line) for line in lines]


def all_tables(workspaces: Sequence[Path], out: Path) -> list[str]:
    """Each workspace's paper tables; PNGs under `<report stem>/` (`ws<i>/` for several)."""
    folder = out.with_suffix("")
    if len(workspaces) == 1:
        return tables_section(workspaces[0], folder, folder.name)
    parts = []
    for i, ws in enumerate(workspaces, 1):
        parts += [f"### Workspace {i}", "",
                  *tables_section(ws, folder / f"ws{i}", f"{folder.name}/ws{i}"), ""]
    return parts


def write_report(workspaces: Sequence[Path], out: Path, logs: list[Path], main: str = "UDASA",
                 preamble: str = "") -> Path:
    """Write the markdown report to `out` from one or more workspaces; returns it."""
    results = task_results(*workspaces)
    rows = [c for r in results for c in comparisons(r, main)]
    for r, p in zip(rows, holm([r["p_boot"] for r in rows])):
        r["p_holm"] = p
    parts = [preamble, "## Runs", "", *run_lines(logs), "", "## Results by task", ""]
    for r in results:
        parts += [f"### {r.task} (data: {r.data}; judge: {r.judge})", "", *metric_lines(r), ""]
    parts += [f"## {main} against each method, paired by sample", "",
              *comparison_lines(rows), "", *statement(rows, main), "",
              "## The paper's tables", "", *all_tables(workspaces, out)]
    return write_text(out, "\n".join(parts) + "\n")
