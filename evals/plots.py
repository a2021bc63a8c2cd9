"""Plots of evaluation results: one bar per model with its confidence interval."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from evals.leaderboard import latest_rows
from udasa.files import save_figure


def _f(v: Any) -> float:
    return math.nan if v is None else float(v)


def bar_chart(rows: Iterable[Mapping], task: str, metric: str, path: str | Path,
              run_times: Mapping[str, str] | None = None,
              models: Sequence[str] | None = None, setting: str | None = None) -> Path:
    """Bar chart of `metric` on `task` across models from leaderboard rows, CI error bars.

    The latest row per model is used (`evals.leaderboard.latest_rows`); a missing CI draws no
    error bar. `setting` keeps the rows of that comparison setting only (rows carry one after
    `evals.leaderboard.with_settings`) and titles the chart with it. `models` fixes the bar
    order (others follow, first seen first). The title names the task, the metric and the
    judge label(s). Writes a PNG.
    """
    picked = [r for r in latest_rows(rows, run_times)
              if r["task"] == task and r["metric"] == metric and not math.isnan(_f(r["value"]))
              and (setting is None or r.get("setting") == setting)]
    if not picked:
        raise ValueError(f"bar_chart: no leaderboard rows for task {task!r}, metric {metric!r}")
    order = {m: i for i, m in enumerate(models or [])}
    picked.sort(key=lambda r: order.get(r["model"], len(order)))
    path = Path(path)
    values = [_f(r["value"]) for r in picked]
    lows = [v - _f(r.get("ci_low")) for v, r in zip(values, picked)]
    highs = [_f(r.get("ci_high")) - v for v, r in zip(values, picked)]
    err = [[0.0 if math.isnan(e) else max(e, 0.0) for e in side] for side in (lows, highs)]
    judges = list(dict.fromkeys(str(r.get("judge") or "") for r in picked if r.get("judge")))

    fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(picked) + 2), 3.8), dpi=120)
    x = range(len(picked))
    ax.bar(x, values, yerr=err, capsize=4, color="#4C72B0", edgecolor="white",
           error_kw={"ecolor": "#333333", "linewidth": 1.2})
    for i, v in enumerate(values):
        ax.annotate(f"{v:.1f}", (i, v), xytext=(6, 3), textcoords="offset points", fontsize=8)
    ax.set_xticks(list(x), [str(r["model"]) for r in picked], rotation=20, ha="right")
    ax.set_ylabel(metric)
    title = f"{task}: {metric}\n" + (setting or f"judge: {'; '.join(judges) or 'unknown'}")
    ax.set_title(title, fontsize=9 if setting else 10, wrap=True)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
    return path
