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
from dataclasses import dataclass, replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from app import labels
from app.labels import Label, relabel
from app.rating import SCORE_FIELDS
from app.render import empty_state, esc, html_table, plain
from evals import store_tables
from evals.leaderboard import (
    canonical_label,
    human_means,
    judges_by_task,
    long_table,
    wide_table,
)
from evals.plots import bar_chart
from evals.premise import heading, p_text, plot_premise, rho_text, wins_text
from evals.stats import (
    PairedTest,
    SignTest,
    cohen_kappa,
    krippendorff_alpha_interval,
    krippendorff_alpha_nominal,
    paired_bootstrap,
    sign_test,
    spearman,
)
from evals.store_tables import EvalSample
from udasa.axes import axis_keys
from udasa.records import content_key
from udasa.store import Store
from udasa.store_schema import as_rows


def _run_times(store: Store) -> dict[str, str]:
    return store_tables.eval_run_times_and_configs(store)[0]


def human_fields() -> dict[str, tuple[str, str]]:
    from evals.runner import HUMAN_FIELDS  # the harness's mapping: rating column -> cell

    return HUMAN_FIELDS


def _board(store: Store, ratings: list[dict] | None) -> pd.DataFrame | None:
    """The long leaderboard (`evals.leaderboard.long_table`) with each row's setting."""
    rows = as_rows(store_tables.leaderboard(store))
    if not rows:
        return None
    from evals.models import label_aliases

    human = human_means(ratings, human_fields(), label_aliases(store)) if ratings else None
    return long_table(rows, human, *store_tables.eval_run_times_and_configs(store))


def settings_newest_first(long: pd.DataFrame, run_times: Mapping[str, str]
                          ) -> dict[str, list[str]]:
    """Each task's comparison settings, the one of its latest evaluation first."""
    when: dict[tuple[str, str], str] = {}
    for task, setting, eval_id in zip(long["task"], long["setting"], long["eval_id"]):
        if isinstance(setting, str):
            key = (task, setting)
            when[key] = max(when.get(key, ""), run_times.get(eval_id, ""))
    out: dict[str, list[str]] = {}
    for (task, setting), _ in sorted(when.items(), key=lambda kv: kv[1], reverse=True):
        out.setdefault(task, []).append(setting)
    return out


def board_models(store: Store) -> list[str]:
    """The model labels of the leaderboard's rows."""
    long = _board(store, None)
    return [] if long is None else list(dict.fromkeys(long["model"]))


def model_labels(store: Store, samples: Mapping | None = None) -> dict[str, Label]:
    """Display labels (`app.labels`) of every model on the leaderboard or in the samples, so
    every view shortens a path the same way."""
    samples = latest_samples(store) if samples is None else samples
    return labels.model_labels(store, board_models(store) + [m for _, m, _ in samples])


def _relabelled(long: pd.DataFrame, names: Mapping[str, Label] | None) -> pd.DataFrame:
    """The long table with each model shown by its display label (`app.labels`)."""
    if not names:
        return long
    out = long.copy()
    out["model"] = relabel(out["model"], names)
    return out


def leaderboard(store: Store, ratings: list[dict] | None,
                names: Mapping[str, Label] | None = None) -> pd.DataFrame | None:
    """The paper-layout table (judge / human per cell); `ratings` (plain rating rows) None
    hides the human side; `names` shows models by their display labels. A task evaluated in
    several settings shows its newest one only (`setting_note` says which others exist)."""
    long = _board(store, ratings)
    if long is None:
        return None
    long = _relabelled(long, names)
    newest = {t: s[0] for t, s in settings_newest_first(long, _run_times(store)).items()}
    long = long[long["setting"].isna() | (long["setting"] == long["task"].map(newest))]
    table = wide_table(long, with_ci=True, digits=2)
    judges = judges_by_task(long)  # each header names its judge (a learned one: its agreement)
    table.columns = [f"{c} (judge: {' | '.join(judges[t])})" if judges.get(t := c.split(": ")[0])
                     else c for c in table.columns]
    out = plain_cells(table.reset_index())
    out.columns = [plain(c) for c in out.columns]
    return out


def setting_note(store: Store) -> str:
    """HTML: for each task evaluated in several settings, the one shown and the others
    (leaderboard.md has a table for each); empty when every task has one setting."""
    long = _board(store, None)
    if long is None:
        return ""
    items = [f"<li><b>{esc(task)}</b>: shown: {esc(shown)}; also evaluated with: "
             f"{esc(' | '.join(others))}</li>"
             for task, (shown, *others) in settings_newest_first(long, _run_times(store)).items()
             if others]
    if not items:
        return ""
    return ("<div class='udasa-empty'>Tasks evaluated in more than one setting (data, limit, "
            "seed, judge) show their newest setting only; <code>leaderboard.md</code> has a "
            f"table for each.<ul>{''.join(items)}</ul></div>")


def names_html(names: Mapping[str, Label]) -> str:
    """The models shown by a shorter name than the one stored, each with its full name (also
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
    task's newest setting as the leaderboard table shows it, models by their display labels."""
    long = _board(store, None)
    if long is None:
        return []
    long = _relabelled(long, names)
    times = _run_times(store)
    newest = {t: s[0] for t, s in settings_newest_first(long, times).items()}
    rows = long.astype(object).where(long.notna(), None).to_dict("records")
    out = []
    for task, metric in sorted({(r["task"], r["metric"]) for r in rows}):
        setting = newest[task]
        key = content_key(json.dumps([r for r in rows if r["task"] == task], default=str),
                          json.dumps(times))
        path = out_dir / f"board_{key}_{metric.replace('/', '_')}.png"
        if not path.exists():
            try:  # model names are data: a `$` in one is text, not mathtext
                with matplotlib.rc_context({"text.parse_math": False}):
                    bar_chart(rows, task, metric, path, run_times=times, setting=setting)
            except ValueError:  # no numeric row for this metric
                continue
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
def latest_samples(store: Store) -> dict[tuple[str, str, str], EvalSample]:
    """The latest evaluation sample per (task, model, prompt)."""
    times = _run_times(store)
    best: dict[tuple[str, str, str], EvalSample] = {}
    for s in store_tables.eval_samples(store):
        s = replace(s, model=canonical_label(s.model))
        key = (s.task, s.model, s.prompt)
        if key not in best or times.get(s.eval_id, "") >= times.get(best[key].eval_id, ""):
            best[key] = s
    return best


def tasks_and_methods(samples: Mapping[tuple[str, str, str], EvalSample]
                      ) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for task, model, _ in samples:
        if model not in out.setdefault(task, []):
            out[task].append(model)
    return out


def _value(sample: EvalSample) -> float | None:
    s = sample.scores or {}
    v = s.get("value")
    if s.get("ok") is False or v is None or isinstance(v, bool):
        return None
    v = float(v)
    return None if math.isnan(v) else v


@dataclass
class Comparison:
    task: str
    a: str
    b: str
    prompts: list[str]  # prompts both methods answered, in the first method's order
    outputs: dict[str, tuple[str, str]]  # prompt -> (a's output, b's output)
    values: dict[str, tuple[float | None, float | None]]
    test: PairedTest | None
    sign: SignTest | None
    excluded: int  # prompts left out of the test: a value missing (judge failure)


def compare(samples: Mapping[tuple[str, str, str], EvalSample], task: str, a: str,
            b: str) -> Comparison:
    """Method a against b on the prompts of `task` both answered; paired bootstrap + sign test."""
    mine = [(p, s) for (t, m, p), s in samples.items() if t == task and m == a]
    mine.sort(key=lambda x: x[1].idx)
    prompts, outputs, values = [], {}, {}
    for prompt, sa in mine:
        sb = samples.get((task, b, prompt))
        if sb is None:
            continue
        prompts.append(prompt)
        outputs[prompt] = (sa.output or "", sb.output or "")
        values[prompt] = (_value(sa), _value(sb))
    both = [(x, y) for x, y in values.values() if x is not None and y is not None]
    test = sign = None
    if both:
        xs, ys = [x for x, _ in both], [y for _, y in both]
        test, sign = paired_bootstrap(xs, ys), sign_test(xs, ys)
    return Comparison(task, a, b, prompts, outputs, values, test, sign,
                      len(values) - len(both))


def comparison_html(c: Comparison, names: Mapping[str, Label]) -> str:
    """`comparison_text` as HTML, each method by its display label (its full name in a
    tooltip where shortened)."""
    la, lb = (names.get(m) or Label(m, m) for m in (c.a, c.b))
    text = esc(comparison_text(c, la.text, lb.text))
    for label in (la, lb):
        if label.shortened:
            text = text.replace(esc(label.text), label.html())
    return text


def comparison_text(c: Comparison, a: str | None = None, b: str | None = None) -> str:
    """One plain-text line (method names are data: the caller escapes it); `a` and `b` name
    the methods (default: as stored)."""
    a, b = a or c.a, b or c.b
    if c.test is None or c.sign is None:
        return (f"No prompt of {c.task} has a score for both {a} and {b} "
                "(run `udasa-eval run` with both models on this task).")
    t, s = c.test, c.sign
    return (f"{a} − {b} on {c.task}: mean difference {t.mean_diff:+.3f} "
            f"[95% CI {t.low:+.3f}, {t.high:+.3f}], paired bootstrap p = {t.p_value:.3g}; "
            f"sign test {s.wins} wins / {s.losses} losses / {s.ties} ties, p = {s.p_value:.3g}; "
            f"n = {t.n} prompts" + (f" ({c.excluded} left out: a score missing)"
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


def table3_html(table: pd.DataFrame) -> str:
    """Table 3 as an HTML table (`render.html_table`): headers on one line, prompt and reply
    in full up to a cell's limit."""
    if table.empty:
        return empty_state("No rated reply of this run yet.", "Rate its replies in the Rate "
                           "tab (Scores: one reply); Table 3 pairs u with their mean scores.")
    return html_table(table, text_columns=("prompt", "reply"), elem_class="udasa-table3")


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
