"""Plots of evaluation results: one bar per method with its confidence interval."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from evals.results import Result, ResultSet
from udasa.files import save_figure


def bar_chart(results: Sequence[Result], metric: str, path: str | Path,
              labels: Sequence[str] | None = None) -> Path:
    """Bar chart of `metric` over `results` (one task in one setting: the caller picks them),
    CI error bars, bars labelled by `labels` (default: the methods). The title names the task,
    the metric, the setting and the scorer(s). Writes a PNG; ValueError when no result has
    the metric."""
    picked = [(label, r) for label, r in zip(labels or [r.method for r in results], results)
              if metric in r.metrics]
    if not picked:
        raise ValueError(f"bar_chart: no result has metric {metric!r}")
    path = Path(path)
    ests = [r.metrics[metric] for _, r in picked]
    values = [e.mean for e in ests]
    err = [[max(e.mean - e.low, 0.0) for e in ests], [max(e.high - e.mean, 0.0) for e in ests]]
    first = picked[0][1]
    scorers = "; ".join(dict.fromkeys(r.scorer for _, r in picked))
    with matplotlib.rc_context({"text.parse_math": False}):  # labels are data, not mathtext
        fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(picked) + 2), 3.8), dpi=120)
        x = range(len(picked))
        ax.bar(x, values, yerr=err, capsize=4, color="#4C72B0", edgecolor="white",
               error_kw={"ecolor": "#333333", "linewidth": 1.2})
        for i, v in enumerate(values):
            ax.annotate(f"{v:.1f}", (i, v), xytext=(6, 3), textcoords="offset points",
                        fontsize=8)
        ax.set_xticks(list(x), [label for label, _ in picked], rotation=20, ha="right")
        ax.set_ylabel(metric)
        ax.set_title(f"{first.task}: {metric}\n{first.setting.label()}\nscored by {scorers}",
                     fontsize=8, wrap=True)
        fig.tight_layout()
        save_figure(fig, path)
        plt.close(fig)
    return path


def setting_charts(results: ResultSet, out: Path) -> list[Path]:
    """One bar chart per task, setting and metric: `eval_<task>_<metric>.png`, numbered `-2`,
    `-3`... for a task's further settings (newest first)."""
    from evals.leaderboard import row_labels

    charts = []
    for task in results.tasks():
        for i, setting in enumerate(results.settings(task)):
            rows = results.where(task=task, setting=setting)
            labels = row_labels(rows)
            for metric in dict.fromkeys(m for r in rows for m in r.metrics):
                name = f"eval_{task}_{metric}{f'-{i + 1}' if i else ''}.png"
                charts.append(bar_chart(rows, metric, out / name, [labels[id(r)] for r in rows]))
    return charts
