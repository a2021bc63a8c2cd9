"""`udasa-eval tables`: the paper's tables in its layout, ours (with CI and n) beside its numbers.

The paper's published numbers are data (`evals/paper/results.yaml`, each table naming its
source). Our cells come from the workspace's leaderboard: for each row's method label and
each column's task metric, the latest evaluation stored in the column's setting (data, sample
limit, seed, judge; the one holding most of the table's methods), so a column never mixes
settings. Every table names each column's setting and the others stored.
Writes `tables.md`, one CSV and one PNG per table, and Figure 2's heatmap under the workspace.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from evals.leaderboard import latest_rows, with_settings
from evals.stats import is_missing
from evals.store_tables import eval_run_times_and_configs, leaderboard
from udasa.errors import ConfigError
from udasa.files import atomic_write, save_figure, write_text
from udasa.store_schema import as_rows

PAPER_RESULTS = Path(__file__).resolve().parent / "paper" / "results.yaml"
MISSING = "—"


@dataclass(frozen=True)
class Column:
    """One of our columns: a task and its metric (the first of `metrics` that is stored)."""

    label: str
    task: str
    metrics: tuple[str, ...]


@dataclass(frozen=True)
class Row:
    """One method row: the leaderboard labels it may carry and the paper's cells."""

    label: str
    methods: tuple[str, ...]
    paper: tuple[str, ...]


@dataclass(frozen=True)
class PaperTable:
    id: str
    title: str
    source: str
    columns: tuple[Column, ...]
    paper_columns: tuple[str, ...]
    rows: tuple[Row, ...]


@dataclass(frozen=True)
class Figure2:
    title: str
    method_pattern: str
    task: str
    metrics: tuple[str, ...]
    paper_best: tuple[float, float]


def load_paper_results(path: Path = PAPER_RESULTS) -> tuple[list[PaperTable], Figure2]:
    """The paper's tables and Figure 2's settings from the shipped data file."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    tables = []
    for t in raw["tables"]:
        rows = tuple(Row(r["label"], tuple(r["methods"]), tuple(str(v) for v in r["paper"]))
                     for r in t["rows"])
        bad = [r.label for r in rows if len(r.paper) != len(t["paper_columns"])]
        if bad:
            raise ConfigError(f"{path}: table {t['id']}: rows {bad} do not have one paper value "
                              f"per paper column")
        tables.append(PaperTable(
            t["id"], t["title"], t["source"],
            tuple(Column(c["label"], c["task"], tuple(c["metrics"])) for c in t["columns"]),
            tuple(t["paper_columns"]), rows))
    f = raw["figure2"]
    return tables, Figure2(f["title"], f["method_pattern"], f["task"], tuple(f["metrics"]),
                           (float(f["paper_best"][0]), float(f["paper_best"][1])))


Key = tuple[str, str, str, "str | None"]  # (model label lower-cased, task, metric, setting)


@dataclass
class ResultIndex:
    """The latest leaderboard row per (model label, task, metric, setting), and when each
    was evaluated (so a column can take its newest setting)."""

    rows: dict[Key, dict]
    times: Mapping[str, str]

    def when(self, row: Mapping) -> str:
        return str(row.get("created_at") or self.times.get(row.get("eval_id", ""), "") or "")

    def column_setting(self, rows: Sequence[Row], task: str, metrics: Sequence[str]
                       ) -> tuple[str | None, list[str]]:
        """The setting a column's cells come from (the one holding most of the table's methods,
        the newest among equals) and the other settings stored for the same task metrics."""
        labels = {m.strip().lower() for row in rows for m in row.methods}
        score: dict[str | None, tuple[int, str]] = {}
        for (model, t, metric, setting), r in self.rows.items():
            if t == task and metric in metrics and not is_missing(r.get("value")):
                count, when = score.get(setting, (0, ""))
                score[setting] = (count + (model in labels), max(when, self.when(r)))
        if not score:
            return None, []
        ranked = sorted(score, key=lambda k: score[k], reverse=True)
        return ranked[0], [str(k) for k in ranked[1:]]


def index_rows(rows: Sequence[Mapping], run_times: Mapping[str, str] | None = None,
               configs: Mapping[str, Mapping] | None = None) -> ResultIndex:
    """The latest leaderboard row per (model label lower-cased, task, metric, setting);
    `configs` (eval_id -> the eval run's config) tells settings apart (`setting_label`)."""
    kept = latest_rows(with_settings(rows, configs), run_times)
    return ResultIndex({(r["model"].strip().lower(), r["task"], r["metric"], r["setting"]): r
                        for r in kept}, run_times or {})


def find_cell(index: ResultIndex, row: Row, col: Column, setting: str | None) -> dict | None:
    """Our stored result for a row's method on a column in `setting`: first matching label,
    first metric."""
    for metric in col.metrics:
        for method in row.methods:
            hit = index.rows.get((method.strip().lower(), col.task, metric, setting))
            if hit is not None and not is_missing(hit.get("value")):
                return hit
    return None


def fmt_cell(cell: dict | None) -> str:
    """`7.9 [7.5, 8.3] n=50` (one decimal), or a dash where nothing is stored."""
    if cell is None:
        return MISSING
    ci = "" if is_missing(cell.get("ci_low")) else f" [{cell['ci_low']:.1f}, {cell['ci_high']:.1f}]"
    return f"{cell['value']:.1f}{ci} n={cell['n']}"


@dataclass
class BuiltTable:
    """A paper table filled with our cells; `frame` is what the markdown and CSV show."""

    spec: PaperTable
    cells: list[list[dict | None]]  # [row][our column]
    frame: pd.DataFrame
    notes: list[str]


def build_table(spec: PaperTable, index: ResultIndex) -> BuiltTable:
    """Each column's cells from one setting (`ResultIndex.column_setting`): like with like."""
    settings = [index.column_setting(spec.rows, col.task, col.metrics) for col in spec.columns]
    cells = [[find_cell(index, row, col, chosen) for col, (chosen, _) in
              zip(spec.columns, settings)] for row in spec.rows]
    records = []
    for row, found in zip(spec.rows, cells):
        rec = {"method": row.label}
        rec |= {f"ours: {c.label}": fmt_cell(cell) for c, cell in zip(spec.columns, found)}
        rec |= {f"paper: {p}": v for p, v in zip(spec.paper_columns, row.paper)}
        records.append(rec)
    return BuiltTable(spec, cells, pd.DataFrame(records),
                      column_notes(spec, cells, [others for _, others in settings]))


def column_notes(spec: PaperTable, cells: list[list[dict | None]],
                 others: Sequence[Sequence[str]] | None = None) -> list[str]:
    """Per column: the setting (data, limit, seed, judge) and metric behind its cells, the
    other settings stored for it, and a flag where its cells still differ in metric or n."""
    notes = []
    for j, col in enumerate(spec.columns):
        found = [row[j] for row in cells if row[j] is not None]
        if not found:
            notes.append(f"{col.label}: nothing stored yet ({col.task}: "
                         f"{' or '.join(col.metrics)})")
            continue
        setting = found[0].get("setting") or f"judge: {found[0].get('judge') or 'unknown'}"
        metrics = sorted({c["metric"] for c in found})
        sizes = sorted({int(c["n"]) for c in found})
        line = f"{col.label}: {col.task} / {', '.join(metrics)}; {setting}"
        if len(metrics) > 1 or len(sizes) > 1:
            line += f" (cells differ in metric or n: n = {', '.join(map(str, sizes))})"
        if others and others[j]:
            line += (f"; also stored in {len(others[j])} other setting(s), not mixed in "
                     f"(leaderboard.md has a table each): {' | '.join(others[j])}")
        notes.append(line)
    return notes


def to_markdown(table: BuiltTable) -> str:
    spec = table.spec
    lines = [f"## {spec.title}", "", f"Paper: {spec.source}. Ours: mean [95% CI] n.", ""]
    lines.append(table.frame.to_markdown(index=False, disable_numparse=True))
    lines += ["", *[f"- {n}" for n in table.notes], ""]
    return "\n".join(lines)


def plot_table(table: BuiltTable, path: Path) -> Path | None:
    """One panel per column: our value per method with its CI (no PNG when nothing is stored)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = [j for j in range(len(table.spec.columns)) if any(r[j] for r in table.cells)]
    if not cols:
        return None
    fig, axes = plt.subplots(1, len(cols), figsize=(3.4 * len(cols) + 0.6, 3.6), dpi=120,
                             squeeze=False)
    for ax, j in zip(axes[0], cols):
        pts = [(row.label, cells[j]) for row, cells in zip(table.spec.rows, table.cells)
               if cells[j] is not None]
        values = [c["value"] for _, c in pts]
        err = [[max(v - _or(c.get("ci_low"), v), 0.0) for v, (_, c) in zip(values, pts)],
               [max(_or(c.get("ci_high"), v) - v, 0.0) for v, (_, c) in zip(values, pts)]]
        ax.bar(range(len(pts)), values, yerr=err, capsize=4, color="#4C72B0")
        ax.set_xticks(range(len(pts)), [label for label, _ in pts], rotation=25, ha="right",
                      fontsize=8)
        ax.set_title(table.spec.columns[j].label, fontsize=9)
    fig.suptitle(table.spec.title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
    return path


def _or(v: Any, default: float) -> float:
    return default if is_missing(v) else float(v)


def figure2_grid(spec: Figure2, index: ResultIndex) -> pd.DataFrame:
    """tau1 x tau2 grid of the metric for methods named like `UDASA tau=0.4/0.7`, from the
    setting holding most of them (newest among equals)."""
    pattern = re.compile(spec.method_pattern, re.IGNORECASE)
    found: dict[str | None, dict[tuple[float, float], tuple[float, str]]] = {}
    for metric in reversed(spec.metrics):  # earlier metrics take precedence
        for (model, task, m, setting), row in index.rows.items():
            hit = pattern.match(model)
            if hit and task == spec.task and m == metric and not is_missing(row.get("value")):
                found.setdefault(setting, {})[(float(hit["t1"]), float(hit["t2"]))] = (
                    float(row["value"]), index.when(row))
    if not found:
        return pd.DataFrame()
    best = max(found.values(), key=lambda c: (len(c), max(w for _, w in c.values())))
    grid = pd.Series({k: v for k, (v, _) in best.items()}).unstack()
    grid.index.name, grid.columns.name = "tau1", "tau2"
    return grid


def plot_figure2(spec: Figure2, grid: pd.DataFrame, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.8, 4.0), dpi=120)
    im = ax.imshow(grid.to_numpy(dtype=float), cmap="viridis", origin="lower")
    ax.set_xticks(range(len(grid.columns)), [f"{v:g}" for v in grid.columns])
    ax.set_yticks(range(len(grid.index)), [f"{v:g}" for v in grid.index])
    ax.set_xlabel("tau2")
    ax.set_ylabel("tau1")
    mid = (im.norm.vmin + im.norm.vmax) / 2
    for (i, j), v in pd.DataFrame(grid.to_numpy()).stack().items():
        ax.annotate(f"{v:.2f}", (j, i), ha="center", va="center", fontsize=8,
                    color="white" if v < mid else "black")
    fig.colorbar(im, ax=ax, label=f"{spec.task} {spec.metrics[0]}")
    ax.set_title(spec.title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
    return path


def figure2_markdown(spec: Figure2, grid: pd.DataFrame, png: str | None) -> str:
    lines = [f"## {spec.title}", "",
             (f"Paper: a picture; its best setting is tau1 = {spec.paper_best[0]:g}, "
             f"tau2 = {spec.paper_best[1]:g}. Ours: {spec.task} "
             f"({' or '.join(spec.metrics)}) of methods named `UDASA tau=<tau1>/<tau2>`."), ""]
    if grid.empty:
        return "\n".join([*lines, "Nothing stored yet (run the threshold sweep).", ""])
    best = grid.stack().idxmax()
    shown = grid.map(lambda v: MISSING if is_missing(v) else f"{v:.2f}")
    shown.columns = [f"tau2={c:g}" for c in shown.columns]
    shown.index = [f"tau1={i:g}" for i in shown.index]
    lines += [shown.to_markdown(disable_numparse=True), "", f"Ours is best at tau1 = {best[0]:g}, tau2 = {best[1]:g}.",
              ""]
    if png:
        lines += [f"![{spec.title}]({png})", ""]
    return "\n".join(lines)


def write_tables(store, workspace: Path) -> dict[str, Any]:
    """Write `tables.md`, `tables/<id>.csv` and `.png` for every paper table; return the paths."""
    from evals.premise import premise_with_figure, read_premises

    specs, fig2 = load_paper_results()
    index = index_rows(as_rows(leaderboard(store)), *eval_run_times_and_configs(store))
    out = workspace / "tables"
    parts = ["# The paper's tables: ours beside the paper's", "",
             ("Ours: mean [95% CI] n from this workspace's latest evaluation of each method, each column "
             "from one setting (data, sample limit, seed, judge: named under the table); the "
             "paper's cells are its GPT-4 / human scores on its own models (7B-30B), so compare "
             "the ordering of methods, not the levels."), ""]
    paths: dict[str, Any] = {"csv": [], "png": []}
    for spec in specs:
        built = build_table(spec, index)
        csv = out / f"{spec.id}.csv"
        with atomic_write(csv, newline="") as f:
            built.frame.to_csv(f, index=False)
        png = plot_table(built, out / f"{spec.id}.png")
        paths["csv"].append(str(csv))
        parts.append(to_markdown(built))
        if png:
            paths["png"].append(str(png))
            parts += [f"![{spec.title}](tables/{png.name})", ""]
    grid = figure2_grid(fig2, index)
    fig_png = None
    if not grid.empty:
        with atomic_write(out / "figure2.csv", newline="") as f:
            grid.to_csv(f)
        fig_png = plot_figure2(fig2, grid, out / "figure2.png")
        paths["png"].append(str(fig_png))
    parts.append(figure2_markdown(fig2, grid, f"tables/{fig_png.name}" if fig_png else None))
    premises = read_premises(workspace)
    parts += ["## Premise: does lower uncertainty mean a better reply?", ""]
    for result in premises:
        text, png = premise_with_figure(result, out)
        parts.append(text)
        paths["png"].append(str(png))
    if not premises:
        parts += ["Nothing stored yet (`udasa-eval premise --workspace DIR --run RUN`).", ""]
    md = workspace / "tables.md"
    write_text(md, "\n".join(parts))
    return {"tables_md": str(md)} | paths
