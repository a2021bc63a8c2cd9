"""Plots of a run: the delta histogram with the curriculum thresholds."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def delta_histogram(deltas: Sequence[float], thresholds: Sequence[float], path: Path,
                    title: str = "") -> Path:
    """Histogram of pair deltas (Eq. 7) with the stage thresholds drawn as vertical lines."""
    path.parent.mkdir(parents=True, exist_ok=True)
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
    fig.savefig(path)
    plt.close(fig)
    return path
