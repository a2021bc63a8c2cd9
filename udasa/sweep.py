"""`udasa sweep`: run a grid of configs over one workspace and tabulate a metric.

Generation and scores are shared by every grid point (content-keyed in the store), so a sweep
over fusion, curriculum or training settings only re-does pairs, stages and training.
"""

from __future__ import annotations

import csv
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from udasa.config import load_config
from udasa.configfile import parse_value
from udasa.errors import ConfigError
from udasa.files import atomic_write, write_text
from udasa.keys import train_key_of
from udasa.pipeline import Pipeline


@dataclass
class SweepPoint:
    overrides: dict[str, object]
    run_id: str
    metrics: dict[str, float]


def parse_grid(items: list[str]) -> dict[str, list]:
    """`key=[v1, v2, ...]` strings -> {key: values}."""
    grid = {}
    for item in items:
        key, sep, raw = item.partition("=")
        values = parse_value(raw, item, "--grid") if sep else None
        if not key or not isinstance(values, list) or not values:
            raise ConfigError(f"--grid {item!r}: expected key=[value, value, ...]")
        grid[key] = values
    if not grid:
        raise ConfigError("--grid: give at least one key=[values]")
    return grid


def run_sweep(config: Path | None, workspace: Path, grid: dict[str, list],
              base_overrides: list[str], progress: Callable[[str], None] = print
              ) -> list[SweepPoint]:
    """Run every grid point (pipeline + training) and collect its final held-out metrics."""
    combos = [dict(zip(grid, values)) for values in itertools.product(*grid.values())]
    cfgs = [load_config(config, base_overrides + [f"{k}={json.dumps(v)}" for k, v in c.items()])
            for c in combos]  # every grid point validated before any work starts
    points = []
    for i, (combo, cfg) in enumerate(zip(combos, cfgs), start=1):
        progress(f"[{i}/{len(combos)}] {combo}")
        pipe = Pipeline(cfg, workspace)
        pipe.run_all()
        metrics = pipe.store.train_result(pipe.run_id, train_key_of(cfg.training)) or {}
        points.append(SweepPoint(combo, pipe.run_id, metrics))
    return points


def write_table(points: list[SweepPoint], metric: str, out_dir: Path) -> tuple[Path, Path]:
    keys = list(points[0].overrides)
    csv_path, md_path = out_dir / "sweep.csv", out_dir / "sweep.md"
    with atomic_write(csv_path, newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*keys, "run_id", metric])
        for p in points:
            writer.writerow([*(json.dumps(p.overrides[k]) for k in keys), p.run_id,
                             p.metrics.get(metric, "")])
    lines = ["| " + " | ".join([*keys, metric]) + " |", "|" + "---|" * (len(keys) + 1)]
    for p in points:
        value = p.metrics.get(metric)
        lines.append("| " + " | ".join([*(json.dumps(p.overrides[k]) for k in keys),
                                        "—" if value is None else f"{value:.4f}"]) + " |")
    write_text(md_path, "\n".join(lines) + "\n")
    return csv_path, md_path


def heatmap_axes(points: list[SweepPoint]) -> tuple[str, str, Callable[[SweepPoint], tuple]]:
    """Which two quantities span the heatmap: a threshold pair (tau1, tau2) or two grid keys."""
    keys = list(points[0].overrides)
    if len(keys) == 1 and all(isinstance(p.overrides[keys[0]], list) and
                              len(p.overrides[keys[0]]) == 2 for p in points):
        return "τ1", "τ2", lambda p: tuple(p.overrides[keys[0]])
    if len(keys) == 2:
        return keys[0], keys[1], lambda p: (json.dumps(p.overrides[keys[0]]),
                                            json.dumps(p.overrides[keys[1]]))
    return keys[0], "", lambda p: (json.dumps(p.overrides[keys[0]]), "")


def plot_heatmap(points: list[SweepPoint], metric: str, path: Path) -> Path:
    """A heatmap of `metric` over the grid (one row for a one-key grid)."""
    from udasa.plots import heatmap

    xlabel, ylabel, coords = heatmap_axes(points)
    cells = {coords(p): p.metrics.get(metric) for p in points}
    return heatmap(cells, xlabel, ylabel, metric, path)
