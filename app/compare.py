"""Compare: leaderboards of `udasa-eval run`, two methods side by side with a paired test,
the premise test of each run (`evals.premise`: the judge's score against u and each axis) and
the paper's Table 3 (automatic u against the mean human score of the same replies).

Everything is computed by the harness's own functions (`evals.leaderboard`, `evals.plots`,
`evals.stats`) over the rows in the store.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from app import labels
from app.labels import Label
from app.rating import SCORE_FIELDS
from app.render import empty_state, esc, html_table, plain
from evals.leaderboard import human_scores, row_labels, wide_table
from evals.plots import bar_chart
from evals.premise import heading, p_text, plot_premise, rho_text, wins_text
from evals.results import ResultSet, Setting, load_results, pick_setting
from evals.stats import (
    Comparison,
    cohen_kappa,
    krippendorff_alpha_interval,
    krippendorff_alpha_nominal,
    paired_comparison,
    spearman,
)
from udasa.axes import axis_keys
from udasa.records import content_key
from udasa.store import Store


def results_of(store: Store) -> ResultSet:
    """Every evaluation of the workspace through the harness's one reader."""
    return load_results(store.workspace)


def model_labels(store: Store, results: ResultSet | None = None) -> dict[str, Label]:
    """Display labels (`app.labels`) of every evaluated method, so that every view shortens a
    checkpoint path the same way."""
    results = results_of(store) if results is None else results
    return labels.model_labels(store, [r.method for r in results.current])


def shown_label(label: str, names: Mapping[str, Label] | None) -> str:
    """A row label (`evals.leaderboard.row_labels`: a method, maybe with `[experiment]`) with
    the method by its display label."""
    for name, shown in (names or {}).items():
        if shown.shortened and (label == name or label.startswith(f"{name} [")):
            return shown.text + label[len(name):]
    return label


def leaderboard(store: Store, ratings: list[dict] | None,
                names: Mapping[str, Label] | None = None) -> pd.DataFrame | None:
    """The paper-layout table (judge / human per cell, human n in the extended cell) of each
    task in the setting `evals.results.pick_setting` shows; `ratings` (plain rating rows) None
    hides the human side (`setting_note` names the other settings); `names` shows methods by
    their display labels."""
    results = results_of(store)
    if not results.current:
        return None
    shown = [r for task in results.tasks()
             for r in results.where(task=task, setting=pick_setting(results, task))]
    humans = human_scores(results, ratings or [])
    table = wide_table(shown, humans, with_ci=True, digits=2)
    table.index = pd.Index([shown_label(i, names) for i in table.index], name=table.index.name)
    scorers: dict[str, list[str]] = {}
    for r in shown:
        scorers.setdefault(r.task, [])
        if r.scorer not in scorers[r.task]:
            scorers[r.task].append(r.scorer)
    table.columns = [f"{c} (scored by: {' | '.join(scorers[c.split(': ')[0]])})"
                     for c in table.columns]
    out = plain_cells(table.reset_index())
    out.columns = [plain(c) for c in out.columns]
    return out


def setting_note(store: Store) -> str:
    """HTML: for each task evaluated in several settings, the one shown and the others
    (leaderboard.md has a table for each); empty when every task has one setting."""
    results = results_of(store)
    items = []
    for task in results.tasks():
        shown = pick_setting(results, task)
        others = [s.label() for s in results.settings(task) if s != shown]
        if shown is not None and others:
            items.append(f"<li><b>{esc(task)}</b>: shown: {esc(shown.label())}; also "
                         f"evaluated with: {esc(' | '.join(others))}</li>")
    if not items:
        return ""
    return ("<div class='udasa-empty'>Tasks evaluated in more than one setting (data, limit, "
            "seed, judge) show one setting here; <code>leaderboard.md</code> has a table for "
            f"each.<ul>{''.join(items)}</ul></div>")


def names_html(names: Mapping[str, Label]) -> str:
    """The methods shown by a shorter name than the one stored, each with its full name (also
    in a tooltip); empty when none is."""
    items = [f"<li>{label.html()} = <code>{esc(label.full)}</code></li>"
             for label in names.values() if label.shortened]
    if not items:
        return ""
    return ("<div class='udasa-names'>Models shown by a shorter name (hover for the whole "
            f"path):<ul>{''.join(items)}</ul></div>")


def leaderboard_charts(store: Store, out_dir: Path, names: Mapping[str, Label] | None = None
                       ) -> list[tuple[str, str]]:
    """(PNG path, caption) of one CI bar chart per task metric (evals.plots.bar_chart), in the
    setting the leaderboard table shows, methods by their display labels, cached by the
    results it draws."""
    results = results_of(store)
    out = []
    for task in results.tasks():
        rows = results.where(task=task, setting=pick_setting(results, task))
        shown = row_labels(rows)
        axis = [shown_label(shown[id(r)], names) for r in rows]
        for metric in dict.fromkeys(m for r in rows for m in r.metrics):
            key = content_key(json.dumps([[r.eval_id, r.method, r.created_at] for r in rows]),
                              json.dumps(axis), task, metric)
            path = out_dir / f"board_{key}_{metric.replace('/', '_')}.png"
            if not path.exists():
                bar_chart(rows, metric, path, axis)
            out.append((str(path), plain(f"{task}: {metric}")))
    return out


# the premise ---------------------------------------------------------------------------------
PREMISE_HINT = ("udasa-eval premise --workspace DIR --run RUN",
                "udasa-eval run --experiment FILE --workspace DIR")


def premise_html(result: Mapping) -> str:
    """One stored premise result as a card: rho [CI], p and n per uncertainty, the win rate."""
    head = ("<tr><th>uncertainty</th><th>Spearman rho with judge score [95% CI]</th>"
            "<th>p</th><th>n</th></tr>")
    rows = "".join(f"<tr><td>{esc(name)}</td><td class='num'>{esc(rho_text(c))}</td>"
                   f"<td class='num'>{esc(p_text(c['p']))}</td><td class='num'>{int(c['n'])}"
                   "</td></tr>" for name, c in result["correlations"].items())
    judged = (f"{int(result['judged'])} of {int(result['responses'])} responses judged "
              f"({int(result['failures'])} judge failures left out)")
    return (f"<div class='udasa-card udasa-premise'><div class='udasa-head'>"
            f"{esc(heading(result))}</div><div>{judged}</div>"
            f"<table class='udasa-scores'>{head}{rows}</table>"
            f"<div>{esc(wins_text(result.get('pairs')))}</div></div>")


def premise_chart(result: Mapping, out_dir: Path) -> str:
    """`evals.premise.plot_premise` of a result, cached in `out_dir` by its content."""
    path = out_dir / f"premise_{content_key(json.dumps(result, sort_keys=True))}.png"
    if not path.exists():
        plot_premise(result, path)
    return str(path)


def premise_section(workspace: Path, out_dir: Path) -> tuple[str, list[tuple[str, str]]]:
    """HTML (a card per stored premise result, newest file first; or how to make one) and
    the (PNG, caption) of each result's figure."""
    def newest(f: Path) -> tuple[float, str]:
        try:
            return f.stat().st_mtime, f.name
        except OSError:  # removed meanwhile: read as unreadable below
            return 0.0, f.name

    files = sorted((workspace / "premise").glob("*.json"), key=newest, reverse=True)
    cards, charts, bad = [], [], []
    for f in files:
        try:
            result = json.loads(f.read_text(encoding="utf-8"))
            card = premise_html(result)
            charts.append((premise_chart(result, out_dir), plain(heading(result))))
            cards.append(card)
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            bad.append(f.name)
    if bad:
        cards.append(empty_state(f"Not readable: premise/{', premise/'.join(bad)}"))
    if not files:
        cards.append(empty_state(
            "No premise test stored yet.", "Does lower uncertainty mean a better reply? Have "
            "the judge score a run's responses (an experiment does it for each UDASA run, with "
            "the judge templates listed under premise: in its file):", PREMISE_HINT))
    return "".join(cards), charts


# two methods side by side --------------------------------------------------------------------
def views(results: ResultSet) -> dict[str, tuple[str, Setting]]:
    """What Compare offers as a "task": a label per task and setting (the task's name where it
    has one setting), so that a comparison never pairs samples of two settings or tasks."""
    out = {}
    for task in results.tasks():
        settings = results.settings(task)
        for s in settings:
            out[task if len(settings) == 1 else f"{task} ({s.label()})"] = (task, s)
    return out


def tasks_and_methods(results: ResultSet) -> dict[str, list[str]]:
    """Each view (`views`) and the methods evaluated in it."""
    return {label: list(dict.fromkeys(r.method for r in results.where(task=t, setting=s)))
            for label, (t, s) in views(results).items()}


@dataclass
class PairRow:
    sample_id: str
    prompt: str
    outputs: tuple[str, str]
    values: tuple[float | None, float | None]


@dataclass
class SideBySide:
    """Two methods on the samples of one view both answered, and their paired test."""

    view: str
    a: str
    b: str
    metric: str  # the task's first paired metric (what `values` hold)
    rows: list[PairRow]  # the samples both methods answered, in the first method's order
    test: Comparison | None
    excluded: int = 0  # samples left out of the test: a value missing (scorer failure)

    @property
    def prompts(self) -> list[str]:
        return [r.prompt for r in self.rows]


def compare(results: ResultSet, view: str, a: str, b: str) -> SideBySide:
    """Method a against b in one task and setting (`views`), paired by sample id
    (`evals.stats.paired_comparison`, the harness's one paired test)."""
    task, setting = views(results).get(view, (view, None))
    found = {r.method: r for r in results.where(task=task, setting=setting)}
    ra, rb = found.get(a), found.get(b)
    if ra is None or rb is None or setting is None:
        return SideBySide(view, a, b, "", [], None)
    metric = next(iter(ra.paired_metrics), next(iter(ra.metrics), ""))
    va, vb = ra.values(metric), rb.values(metric)
    rows = [PairRow(sid, s.prompt, (s.output, rb.samples[sid].output), (va.get(sid), vb.get(sid)))
            for sid, s in sorted(ra.samples.items(), key=lambda kv: kv[1].idx)
            if sid in rb.samples]
    test = paired_comparison(va, vb)
    return SideBySide(view, a, b, metric, rows, test,
                      test.excluded if test else len(rows))


def comparison_html(c: SideBySide, names: Mapping[str, Label]) -> str:
    """`comparison_text` as HTML, each method by its display label (its full name in a
    tooltip where shortened)."""
    la, lb = (names.get(m) or Label(m, m) for m in (c.a, c.b))
    text = esc(comparison_text(c, la.text, lb.text))
    for label in (la, lb):
        if label.shortened:
            text = text.replace(esc(label.text), label.html())
    return text


def comparison_text(c: SideBySide, a: str | None = None, b: str | None = None) -> str:
    """One plain-text line (method names are data: the caller escapes it); `a` and `b` name
    the methods (default: as stored)."""
    a, b = a or c.a, b or c.b
    if c.test is None:
        return (f"No sample of {c.view} has a score for both {a} and {b} "
                "(run `udasa-eval run` with both models on this task).")
    t = c.test
    return (f"{a} − {b} on {c.view}, {c.metric}: mean difference {t.mean_diff:+.3f} "
            f"[95% CI {t.low:+.3f}, {t.high:+.3f}], paired bootstrap p = {t.p_boot:.3g}; "
            f"sign test {t.wins} wins / {t.losses} losses / {t.ties} ties, p = {t.p_sign:.3g}; "
            f"n = {t.n} samples" + (f" ({c.excluded} left out: a score missing)"
                                    if c.excluded else "") + ".")


# Table 3 ------------------------------------------------------------------------------------
def table3(store: Store, run_id: str, ratings: list[dict]) -> pd.DataFrame:
    """Replies of `run_id` rated by humans (`ratings`: plain rating rows): U_sem, U_fact, U_val,
    u (as stored) and the mean human overall / harmless / helpful score, with the number of
    annotators."""
    fused = {f.response_id: f for f in store.fused(run_id)}
    by_item: dict[str, list[dict]] = {}
    for r in ratings:
        if r["item_id"] in fused and r.get("overall") is not None:
            by_item.setdefault(r["item_id"], []).append(r)
    rows = []
    for item_id, rs in by_item.items():
        comps = fused[item_id].components
        row = {"u": fused[item_id].u, **{f"U_{a}": comps.get(a) for a in axis_keys()}}
        for f in ("overall", "harmless", "helpful"):
            vals = [r[f] for r in rs if r.get(f) is not None]
            row[f"human {f}"] = sum(vals) / len(vals) if vals else None
        row |= {"annotators": len(rs), "prompt": rs[0]["prompt"], "reply": rs[0]["response"]}
        rows.append(row)
    cols = ["u", *[f"U_{a}" for a in axis_keys()], "human overall", "human harmless",
            "human helpful", "annotators", "prompt", "reply"]
    return pd.DataFrame(rows, columns=cols).sort_values("u", ignore_index=True)


def _text_cells(table: pd.DataFrame, fn) -> pd.DataFrame:
    """`fn` applied to every text cell (object or string columns: pandas 3 has both)."""
    out = table.copy()
    for col in out.columns:
        if not pd.api.types.is_numeric_dtype(out[col]):
            out[col] = out[col].map(lambda v: fn(v) if isinstance(v, str) else v)
    return out


def plain_cells(table: pd.DataFrame) -> pd.DataFrame:
    """Text cells as display text (`render.plain`: bidirectional controls made visible)."""
    return _text_cells(table, plain)


def for_display(table: pd.DataFrame, digits: int = 3, width: int = 120) -> pd.DataFrame:
    """Rounded numbers and display texts cut to `width` characters, for a table on screen."""
    return _text_cells(plain_cells(table.round(digits)),
                       lambda v: v if len(v) <= width else v[:width - 1] + "…")


TABLE3_HEADS = {"human overall": "overall", "human harmless": "harmless",
                "human helpful": "helpful", "annotators": "n"}  # short heads: room for text


def table3_html(table: pd.DataFrame) -> str:
    """Table 3 as an HTML table (`render.html_table`): headers on one line, prompt and reply
    in full up to a cell's limit."""
    if table.empty:
        return empty_state("No rated reply of this run yet.", "Rate its replies in the Rate "
                           "tab (Scores: one reply); Table 3 pairs u with their mean scores.")
    shown = table.rename(columns=TABLE3_HEADS)
    return ("<div class='udasa-caption'>overall, harmless, helpful: the mean human score "
            "(1-10) of the n annotators who rated the reply; u and U_*: as the run stored "
            "them</div>" + html_table(shown, text_columns=("prompt", "reply"),
                                      elem_class="udasa-table3"))


def table3_stats(table: pd.DataFrame) -> str:
    """Spearman of u against the mean human overall score (the paper expects it negative)."""
    if len(table) < 3:
        return (f"Spearman(u, human overall): needs at least 3 rated replies of this run "
                f"({len(table)} so far).")
    corr = spearman(table["u"].tolist(), table["human overall"].tolist())
    if math.isnan(corr.rho):
        return "Spearman(u, human overall): undefined (one side is constant)."
    return (f"Spearman(u, human overall) = **{corr.rho:+.3f}** (p = {corr.p_value:.3g}, "
            f"n = {corr.n} replies); negative means less certain replies were rated worse.")


def agreement(ratings: Iterable[dict]) -> pd.DataFrame:
    """Inter-annotator agreement: Krippendorff's alpha (interval) per score, alpha (nominal)
    and Cohen's kappa (the two annotators sharing most items) for preferences."""
    ratings = list(ratings)
    out = []
    for f in SCORE_FIELDS:
        units: dict[str, dict[str, float]] = {}
        for r in ratings:
            if r.get(f) is not None:
                units.setdefault(r["item_id"], {})[r["annotator"]] = float(r[f])
        out.append(_alpha(f"{f} (1-10)", "Krippendorff's alpha, interval",
                           krippendorff_alpha_interval, units))
    prefs: dict[str, dict[str, str]] = {}
    for r in ratings:
        if r.get("preference"):
            prefs.setdefault(r["item_id"], {})[r["annotator"]] = r["preference"]
    out.append(_alpha("preference", "Krippendorff's alpha, nominal",
                      krippendorff_alpha_nominal, prefs))
    out.append(_kappa(prefs))
    return pd.DataFrame(out, columns=["ratings", "statistic", "value", "items", "note"])


def _alpha(name: str, stat: str, fn, units: dict) -> dict:
    shared = sum(1 for u in units.values() if len(u) >= 2)
    if not shared:
        return {"ratings": name, "statistic": stat, "value": None, "items": 0,
                "note": "needs items rated by 2 or more annotators"}
    value = fn(units)
    return {"ratings": name, "statistic": stat, "value": None if math.isnan(value) else value,
            "items": shared, "note": "undefined: no variation" if math.isnan(value) else ""}


def _kappa(prefs: dict[str, dict[str, str]]) -> dict:
    row = {"ratings": "preference", "statistic": "Cohen's kappa", "value": None, "items": 0,
           "note": "needs two annotators with shared items"}
    annotators = sorted({a for u in prefs.values() for a in u})
    best: tuple[int, str, str] | None = None
    for i, x in enumerate(annotators):
        for y in annotators[i + 1:]:
            n = sum(1 for u in prefs.values() if x in u and y in u)
            if n and (best is None or n > best[0]):
                best = (n, x, y)
    if best is None:
        return row
    n, x, y = best
    shared = [u for u in prefs.values() if x in u and y in u]
    kappa = cohen_kappa([u[x] for u in shared], [u[y] for u in shared])
    return row | {"value": None if math.isnan(kappa) else kappa, "items": n,
                  "note": f"{x} vs {y}" + (" (undefined: one label)" if math.isnan(kappa)
                                           else "")}


def table3_figure(table: pd.DataFrame) -> Figure | None:
    if table.empty:
        return None
    fig, ax = plt.subplots(figsize=(5.2, 3.4), dpi=100)
    ax.scatter(table["u"], table["human overall"], color="#4C72B0")
    ax.set_xlabel("automatic uncertainty u")
    ax.set_ylabel("mean human overall (1-10)")
    ax.set_ylim(0.5, 10.5)
    fig.tight_layout()
    plt.close(fig)
    return fig
