"""GCG loss curves as PNG: target loss of the best candidate against the optimisation step."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from udasa.files import save_figure


def loss_curves(curves: Mapping[str, Sequence[float]], path: str | Path, title: str = "GCG",
                marks: Mapping[str, Sequence[int]] | None = None) -> Path:
    """One line per suffix (label -> loss per step, step 1 first); `marks` puts dots at steps
    (e.g. where a goal or model was added in a progressive attack). Writes a PNG."""
    if not curves:
        raise ValueError("loss_curves: no curves")
    path = Path(path)
    fig, ax = plt.subplots(figsize=(6.4, 3.8), dpi=120)
    for label, losses in curves.items():
        steps = range(1, len(losses) + 1)
        (line,) = ax.plot(steps, list(losses), label=label[:48], linewidth=1.4)
        for s in (marks or {}).get(label, []):
            if 1 <= s <= len(losses):
                ax.plot([s], [losses[s - 1]], "o", color=line.get_color(), markersize=4)
    ax.set_xlabel("GCG step")
    ax.set_ylabel("target loss (mean CE, best candidate)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    if len(curves) <= 12:
        ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
    return path
