"""`udasa-eval tables`: the paper's tables in its layout, ours (with CI and n) beside its numbers.

The paper's published numbers are data (`evals/paper/results.yaml`, each table naming its
source and each row its id). Our cells are current results (`evals.results.load_results`): a
row holds the method whose experiment names the row in its `paper_rows`, a column a task metric
in one setting (data, sample limit, seed, judge; the one holding most of the table's rows, by
`evals.results.pick_setting`), so a column never mixes settings. Every table names each
column's setting, the methods in its cells, and the other settings stored.
Writes `tables.md`, one CSV and one PNG per table, and Figure 2's heatmap.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from evals.results import Result, ResultSet, Setting, pick_setting
from evals.stats import Estimate, is_missing
from udasa.errors import ConfigError
from udasa.files import atomic_write, save_figure, write_text

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
    """One method row: its id (what an experiment's `paper_rows` names) and the paper's cells."""

    label: str
    id: str
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
    row_pattern: str
    task: str
    metrics: tuple[str, ...]
    paper_best: tuple[float, float]


def load_paper_results(path: Path = PAPER_RESULTS) -> tuple[list[PaperTable], Figure2]:
    """The paper's tables and Figure 2's settings from the shipped data file."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    tables = []
    for t in raw["tables"]:
        rows = tuple(Row(r["label"], str(r["id"]), tuple(str(v) for v in r["paper"]))
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
    return tables, Figure2(f["title"], f["row_pattern"], f["task"], tuple(f["metrics"]),
                           (float(f["paper_best"][0]), float(f["paper_best"][1])))


@dataclass(frozen=True)
class Cell:
    """One of our cells: a result and the metric it shows."""

    result: Result
    metric: str

    @property
    def estimate(self) -> Estimate:
        return self.result.metrics[self.metric]


def fills(result: Result, row_id: str) -> bool:
    """Whether `result`'s method fills the paper row `row_id` (its experiment says so)."""
    return row_id.strip().lower() in {p.strip().lower() for p in result.paper_rows}


def column_setting(results: ResultSet, rows: Sequence[Row], col: Column
                   ) -> tuple[Setting | None, list[Setting]]:
    """The setting a column's cells come from (`evals.results.pick_setting` among the settings
    that have one of its metrics) and the others stored for them."""
    having = ResultSet([r for r in results.where(task=col.task)
                        if any(m in r.metrics for m in col.metrics)])
    chosen = pick_setting(having, col.task, [row.id for row in rows])
    return chosen, [s for s in having.settings(col.task) if s != chosen]


def find_cell(results: ResultSet, row: Row, col: Column, setting: Setting | None
              ) -> Cell | None:
    """Our result for a row on a column in `setting`: the newest result filling the row, its
    first metric stored."""
    hits = [r for r in results.where(task=col.task, setting=setting) if fills(r, row.id)]
    for metric in col.metrics:
        for r in reversed(hits):
            if metric in r.metrics:
                return Cell(r, metric)
    return None


def fmt_cell(cell: Cell | None) -> str:
    """`7.9 [7.5, 8.3] n=50` (one decimal), or a dash where nothing is stored."""
    if cell is None:
        return MISSING
    e = cell.estimate
    return f"{e.mean:.1f} [{e.low:.1f}, {e.high:.1f}] n={e.n}"


@dataclass
class BuiltTable:
    """A paper table filled with our cells; `frame` is what the markdown and CSV show."""

    spec: PaperTable
    cells: list[list[Cell | None]]  # [row][our column]
    frame: pd.DataFrame
    notes: list[str]


def build_table(spec: PaperTable, results: ResultSet) -> BuiltTable:
    """Each column's cells from one setting (`column_setting`): like with like."""
    settings = [column_setting(results, spec.rows, col) for col in spec.columns]
    cells = [[find_cell(results, row, col, chosen) for col, (chosen, _) in
              zip(spec.columns, settings)] for row in spec.rows]
    records = []
    for row, found in zip(spec.rows, cells):
        rec = {"method": row.label}
        rec |= {f"ours: {c.label}": fmt_cell(cell) for c, cell in zip(spec.columns, found)}
        rec |= {f"paper: {p}": v for p, v in zip(spec.paper_columns, row.paper)}
        records.append(rec)
    return BuiltTable(spec, cells, pd.DataFrame(records),
                      column_notes(spec, cells, [others for _, others in settings]))


def column_notes(spec: PaperTable, cells: list[list[Cell | None]],
                 others: Sequence[Sequence[Setting]] = ()) -> list[str]:
    """Per column: the setting and metric behind its cells and the methods that fill them, the
    other settings stored for it, and a flag where its cells differ in metric or n."""
    notes = []
    for j, col in enumerate(spec.columns):
        found = [(row, r[j]) for row, r in zip(spec.rows, cells) if r[j] is not None]
        if not found:
            notes.append(f"{col.label}: nothing stored yet ({col.task}: "
                         f"{' or '.join(col.metrics)})")
            continue
        first = found[0][1]
        metrics = sorted({c.metric for _, c in found})
        sizes = sorted({c.estimate.n for _, c in found})
        methods = ", ".join(f"{row.label} = {c.result.method}"
                            + (f" [{c.result.identity.experiment}]"
                               if c.result.identity.experiment else "") for row, c in found)
        line = (f"{col.label}: {col.task} / {', '.join(metrics)}; "
                f"{first.result.setting.label()}; {methods}")
        if len(metrics) > 1 or len(sizes) > 1:
            line += f" (cells differ in metric or n: n = {', '.join(map(str, sizes))})"
        if others and others[j]:
            line += (f"; also stored in {len(others[j])} other setting(s), not mixed in "
                     f"(leaderboard.md has a table each): "
                     f"{' | '.join(s.label() for s in others[j])}")
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
        ests = [c.estimate for _, c in pts]
        values = [e.mean for e in ests]
        err = [[max(e.mean - e.low, 0.0) for e in ests], [max(e.high - e.mean, 0.0) for e in ests]]
        ax.bar(range(len(pts)), values, yerr=err, capsize=4, color="#4C72B0")
        ax.set_xticks(range(len(pts)), [label for label, _ in pts], rotation=25, ha="right",
                      fontsize=8)
        ax.set_title(table.spec.columns[j].label, fontsize=9)
    fig.suptitle(table.spec.title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
    return path


def figure2_grid(spec: Figure2, results: ResultSet) -> pd.DataFrame:
    """tau1 x tau2 grid of the metric for methods whose paper rows name `tau=0.4/0.7`, from the
    setting holding most of them (`evals.results.pick_setting`)."""
    pattern = re.compile(spec.row_pattern, re.IGNORECASE)
    grid_rows = {p: (float(m["t1"]), float(m["t2"])) for res in results.where(task=spec.task)
                 for p in res.paper_rows if (m := pattern.match(p))}
    setting = pick_setting(results, spec.task, grid_rows)
    cells: dict[tuple[float, float], float] = {}
    for r in results.where(task=spec.task, setting=setting):
        metric = next((m for m in spec.metrics if m in r.metrics), None)
        for row in r.paper_rows:
            if metric and row in grid_rows:
                cells[grid_rows[row]] = r.metrics[metric].mean
    if not cells:
        return pd.DataFrame()
    grid = pd.Series(cells).unstack()
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
             f"({' or '.join(spec.metrics)}) of methods whose paper_rows name "
             "`tau=<tau1>/<tau2>`."), ""]
    if grid.empty:
        return "\n".join([*lines, "Nothing stored yet (run the threshold sweep).", ""])
    shown = grid.map(lambda v: MISSING if is_missing(v) else f"{v:.2f}")
    shown.columns = [f"tau2={c:g}" for c in shown.columns]
    shown.index = [f"tau1={i:g}" for i in shown.index]
    lines += [shown.to_markdown(disable_numparse=True), "", best_text(grid), ""]
    if png:
        lines += [f"![{spec.title}]({png})", ""]
    return "\n".join(lines)


def best_text(grid: pd.DataFrame) -> str:
    """Where our grid is highest; cells with the same highest value are called a tie."""
    cells = grid.stack()
    top = cells[cells == cells.max()]
    where = [f"tau1 = {t1:g}, tau2 = {t2:g}" for t1, t2 in top.index]
    if len(where) == 1:
        return f"Ours is highest at {where[0]} ({cells.max():.2f})."
    return f"Ours ties for highest ({cells.max():.2f}) at {' and '.join(where)}."


def write_tables(results: ResultSet, folder: Path, premises: Sequence[Mapping] = ()
                 ) -> dict[str, Any]:
    """Write `tables.md`, `tables/<id>.csv` and `.png` for every paper table and the premise
    results into `folder`; return the paths."""
    from evals.premise import premise_with_figure

    specs, fig2 = load_paper_results()
    out = folder / "tables"
    parts = ["# The paper's tables: ours beside the paper's", "",
             ("Ours: mean [95% CI] n of the current result of the method that fills each row "
              "(its experiment's `paper_rows`), each column from one setting (data, sample "
              "limit, seed, judge: named under the table); the paper's cells are its GPT-4 / "
              "human scores on its own models (7B-30B), so compare the ordering of methods, "
              "not the levels."), ""]
    paths: dict[str, Any] = {"csv": [], "png": []}
    for spec in specs:
        built = build_table(spec, results)
        csv = out / f"{spec.id}.csv"
        with atomic_write(csv, newline="") as f:
            built.frame.to_csv(f, index=False)
        png = plot_table(built, out / f"{spec.id}.png")
        paths["csv"].append(str(csv))
        parts.append(to_markdown(built))
        if png:
            paths["png"].append(str(png))
            parts += [f"![{spec.title}](tables/{png.name})", ""]
    grid = figure2_grid(fig2, results)
    fig_png = None
    if not grid.empty:
        with atomic_write(out / "figure2.csv", newline="") as f:
            grid.to_csv(f)
        fig_png = plot_figure2(fig2, grid, out / "figure2.png")
        paths["png"].append(str(fig_png))
    parts.append(figure2_markdown(fig2, grid, f"tables/{fig_png.name}" if fig_png else None))
    parts += ["## Premise: does lower uncertainty mean a better reply?", ""]
    for result in premises:
        text, png = premise_with_figure(result, out)
        parts.append(text)
        paths["png"].append(str(png))
    if not premises:
        parts += ["Nothing stored yet (`udasa-eval premise --workspace DIR --run RUN`).", ""]
    md = folder / "tables.md"
    write_text(md, "\n".join(parts))
    return {"tables_md": str(md)} | paths
