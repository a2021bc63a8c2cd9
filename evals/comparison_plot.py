"""The report's paired comparisons as one figure: a panel per task metric, a row per pair of
methods, the mean difference with its 95% CI against zero, filled where Holm's correction
keeps it significant."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from udasa.files import save_figure


def first_is_better(row: dict[str, Any]) -> bool:
    """The first method of a comparison row is better: a higher score, or a lower attack
    success rate (`asr_*`)."""
    return (row["mean_diff"] > 0) != str(row["metric"]).startswith("asr_")


def panels(rows: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The rows by panel title, `task: metric`, in first-seen order; a task evaluated in
    several settings names the setting too."""
    settings: dict[str, set[str]] = {}
    for r in rows:
        settings.setdefault(r["task"], set()).add(r["setting"])
    out: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        where = f" ({r['setting']})" if len(settings[r["task"]]) > 1 else ""
        out.setdefault(f"{r['task']}{where}: {r['metric']}", []).append(r)
    return out


def _draw_panel(ax, title: str, rows: Sequence[dict[str, Any]], alpha: float) -> None:
    """One task metric: a row per comparison, named `first − second`."""
    ax.axvline(0, color="#57606a", linewidth=1, linestyle="--")
    for y, r in enumerate(rows):
        significant = r["p_holm"] < alpha
        color = ("#1a7f37" if first_is_better(r) else "#cf222e") if significant else "#4C72B0"
        err = [[max(r["mean_diff"] - r["low"], 0.0)], [max(r["high"] - r["mean_diff"], 0.0)]]
        ax.errorbar([r["mean_diff"]], [y], xerr=err, fmt="o", color=color, ecolor="#333333",
                    capsize=3, markersize=6, markerfacecolor=color if significant else "white")
    labels = [textwrap.shorten(f"{r['main']} − {r['other']}", 48, placeholder="…")
              for r in rows]
    ax.set_yticks(range(len(rows)), labels, fontsize=8)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_title(textwrap.fill(title, 60), fontsize=8)
    ax.tick_params(axis="x", labelsize=8)


def plot_comparisons(rows: Sequence[dict[str, Any]], path: Path, alpha: float = 0.05
                     ) -> Path | None:
    """The comparisons (`evals.report.comparisons` rows) as a forest plot in `path`; None when
    there are none. Filled: Holm-adjusted p below `alpha` (green where the first method is
    better, `first_is_better`)."""
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_panel = panels(rows)
    cols = min(3, len(by_panel))
    grid = math.ceil(len(by_panel) / cols)
    height = max(len(p) for p in by_panel.values()) * 0.32 + 1.1
    with matplotlib.rc_context({"text.parse_math": False}):  # method names are data
        fig, axes = plt.subplots(grid, cols, figsize=(4.6 * cols, height * grid + 0.8),
                                 dpi=110, squeeze=False)
        try:
            for ax, (title, members) in zip(axes.flat, by_panel.items()):
                _draw_panel(ax, title, members, alpha)
            for ax in list(axes.flat)[len(by_panel):]:
                ax.set_visible(False)
            title = ("Paired differences, first minus second [95% CI]; filled: significant "
                     "after Holm's correction (green: the first is better)")
            fig.suptitle(textwrap.fill(title, 20 * cols + 30), fontsize=9)
            fig.tight_layout()
            save_figure(fig, path)
        finally:
            plt.close(fig)
    return path
