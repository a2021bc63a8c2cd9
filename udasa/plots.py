"""Plots of a run: the delta histogram with the curriculum thresholds."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

if TYPE_CHECKING:
    from udasa.store_records import TrainLogEntry

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from udasa.files import save_figure


def delta_histogram(deltas: Sequence[float], thresholds: Sequence[float], path: Path,
                    title: str = "") -> Path:
    """Histogram of pair deltas (Eq. 7) with the stage thresholds drawn as vertical lines."""
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=120)
    ax.hist(list(deltas), bins=min(30, max(5, len(deltas) // 2)), color="#4C72B0",
            edgecolor="white")
    for i, t in enumerate(thresholds, start=1):
        ax.axvline(t, color="#C44E52", linestyle="--", linewidth=1.5)
        ax.annotate(f"τ{i} = {t:.2f}", (t, ax.get_ylim()[1] * 0.92), xytext=(4, 0),
                    textcoords="offset points", color="#C44E52", fontsize=9)
    ax.set_xlabel("Δu = u(rejected) − u(chosen)")
    ax.set_ylabel("pairs")
    ax.set_title(title or f"Preference clarity over {len(deltas)} pairs")
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
    return path


CURVES = (("loss", "DPO loss"), ("rewards/margins", "reward margin"),
          ("rewards/accuracies", "reward accuracy"))


def training_curves(logs: Sequence[TrainLogEntry], stage_names: dict[int, str],
                    path: Path) -> Path:
    """Loss, reward margin and reward accuracy per step across stages; boundaries marked.

    Each log entry holds `stage`, `step` and a `metrics` dict (a TRL log-history entry).
    """
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), dpi=110)
    offset, boundaries = 0, []
    series: dict[str, list[tuple[float, float, bool]]] = {key: [] for key, _ in CURVES}
    for stage in sorted({r.stage for r in logs}):
        rows = [r for r in logs if r.stage == stage]
        for r in rows:
            m = r.metrics
            for key, _ in CURVES:
                if key in m:
                    series[key].append((offset + r.step, m[key], False))
                if f"eval_{key}" in m:
                    series[key].append((offset + r.step, m[f"eval_{key}"], True))
        offset += max(r.step for r in rows)
        boundaries.append((offset, stage_names.get(stage, str(stage))))
    for ax, (key, label) in zip(axes, CURVES):
        train = [(x, y) for x, y, ev in series[key] if not ev]
        held = [(x, y) for x, y, ev in series[key] if ev]
        if train:
            ax.plot(*zip(*train), color="#4C72B0", linewidth=1.2, label="train")
        if held:
            ax.plot(*zip(*held), "o-", color="#DD8452", markersize=3, label="held-out")
        start = 0
        for end, name in boundaries:
            ax.axvline(end, color="grey", linestyle=":", linewidth=1)
            ax.text((start + end) / 2, 1.0, name, transform=ax.get_xaxis_transform(),
                    ha="center", va="bottom", fontsize=8, color="dimgrey")
            start = end
        ax.set_xlabel("step (all stages)")
        ax.set_title(label, pad=14)
        if train or held:
            ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
    return path


def heatmap(cells: dict[tuple, float | None], xlabel: str, ylabel: str, title: str,
            path: Path) -> Path:
    """Values on an (x, y) grid; missing cells are left blank and numbers are printed."""
    import numpy as np

    xs = sorted({x for x, _ in cells}, key=str)
    ys = sorted({y for _, y in cells}, key=str)
    grid = np.full((len(ys), len(xs)), np.nan)
    for (x, y), v in cells.items():
        if v is not None:
            grid[ys.index(y), xs.index(x)] = v
    fig, ax = plt.subplots(figsize=(1.4 * len(xs) + 2.5, 1.0 * len(ys) + 2), dpi=110)
    im = ax.imshow(grid, cmap="viridis", origin="lower", aspect="auto")
    for i in range(len(ys)):
        for j in range(len(xs)):
            if not np.isnan(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.3f}", ha="center", va="center", color="white",
                        fontsize=9)
    ax.set_xticks(range(len(xs)), [str(x) for x in xs])
    ax.set_yticks(range(len(ys)), [str(y) for y in ys])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
    return path
