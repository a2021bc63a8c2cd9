"""The leaderboard: every current result (`evals.results.load_results`), judge / human per cell.

One row per method, one column per task metric, each cell "judge / human" as in the paper
("7.9 / 7.5"; "—" where nobody rated the replies the judge scored), and an extended variant with
the judge's CI and n and the number of human ratings ("7.9 [7.5, 8.3] n=50 / 7.5 n=3"). The
human half counts only ratings of the very replies the judge scored for that result (the
evaluation's items in the app's rating pool). A task evaluated in several settings gets a table
per setting, so no column mixes settings; a method label used by several experiments is
shown with its experiment. `write_leaderboard` writes `leaderboard.md` and the long format,
every result's identity included, to `leaderboard.csv`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from evals.results import BASE_LABEL, Result, ResultSet, method_label
from evals.stats import is_missing
from udasa.files import atomic_write, write_text
from udasa.records import content_key

__all__ = ["BASE_LABEL", "HUMAN_FIELDS", "long_table", "method_label", "render_markdown",
           "write_leaderboard"]

NONE = "—"  # shown where there is no human score (and for a missing judge score)
# human rating columns (the app's Rate tab) -> the task metric they stand beside
HUMAN_FIELDS = {"harmless": ("harmlessness", "score"), "helpful": ("helpfulness", "score")}
CSV_COLUMNS = ["experiment", "method", "task", "setting", "metric", "value", "ci_low", "ci_high",
               "n", "failures", "scorer", "human", "human_n", "model", "model_spec", "eval_id",
               "created_at"]


@dataclass(frozen=True)
class HumanScore:
    mean: float
    n: int


def item_id(result: Result, idx: int) -> str:
    """The rating pool's id of one evaluation reply (`app.rating`: an eval item)."""
    return content_key("eval", result.eval_id, result.stored_as, result.task, str(idx))


def human_score(result: Result, metric: str, ratings: Sequence[Mapping]) -> HumanScore | None:
    """The mean human rating of the replies this result's judge scored, on the rating column
    that stands beside `metric` (`HUMAN_FIELDS`); None where nobody rated them."""
    columns = [c for c, (task, m) in HUMAN_FIELDS.items() if (task, m) == (result.task, metric)]
    if not columns:
        return None
    items = {item_id(result, s.idx) for s in result.samples.values()}
    values = [float(r[c]) for r in ratings if r.get("item_id") in items for c in columns
              if not is_missing(r.get(c))]
    return HumanScore(sum(values) / len(values), len(values)) if values else None


Humans = Mapping[tuple[int, str], HumanScore]  # (id of a result, metric) -> its human score


def human_scores(results: ResultSet, ratings: Sequence[Mapping] = ()) -> dict:
    """Every current result's human score per metric (`human_score`), where there is one."""
    out = {}
    for r in results.current:
        for metric in r.metrics:
            if (h := human_score(r, metric, ratings)) is not None:
                out[id(r), metric] = h
    return out


def row_labels(results: Iterable[Result]) -> dict[int, str]:
    """A row label per result: its method, with its experiment where the method's label is
    used by more than one experiment among `results`."""
    results = list(results)
    experiments: dict[str, set[str]] = {}
    for r in results:
        experiments.setdefault(r.method, set()).add(r.identity.experiment)
    return {id(r): r.method if len(experiments[r.method]) == 1
            else f"{r.method} [{r.identity.experiment or 'no experiment'}]" for r in results}


def long_table(results: ResultSet, humans: Humans | None = None) -> pd.DataFrame:
    """One row per current result and metric (CSV_COLUMNS), with its human score and n."""
    out, humans = [], humans or {}
    for r in results.current:
        for metric, est in r.metrics.items():
            human = humans.get((id(r), metric))
            out.append({"experiment": r.identity.experiment, "method": r.method, "task": r.task,
                        "setting": r.setting.label(), "metric": metric, "value": est.mean,
                        "ci_low": est.low, "ci_high": est.high, "n": est.n,
                        "failures": r.failures, "scorer": r.scorer,
                        "human": human.mean if human else None,
                        "human_n": human.n if human else 0, "model": r.identity.model,
                        "model_spec": r.model_spec, "eval_id": r.eval_id,
                        "created_at": r.created_at})
    df = pd.DataFrame(out, columns=CSV_COLUMNS)
    for c in ("value", "ci_low", "ci_high", "human"):
        df[c] = pd.to_numeric(df[c]).astype(float)
    for c in ("n", "failures", "human_n"):
        df[c] = pd.to_numeric(df[c]).astype("Int64")
    return df


def _num(v: object, digits: int) -> str:
    return NONE if is_missing(v) else f"{float(v):.{digits}f}"


def format_cell(value: float | None, human: float | None = None, ci_low: float | None = None,
                ci_high: float | None = None, with_ci: bool = False, digits: int = 1,
                n: int | None = None, human_n: int = 0) -> str:
    """`7.9 / 7.5`; `7.9 / —` without a human score; with `with_ci`:
    `7.9 [7.5, 8.3] n=50 / 7.5 n=3`."""
    judge, human_part = _num(value, digits), _num(human, digits)
    if with_ci and not is_missing(value):
        if not (is_missing(ci_low) or is_missing(ci_high)):
            judge += f" [{_num(ci_low, digits)}, {_num(ci_high, digits)}]"
        judge += f" n={n}" if n is not None else ""
        human_part += f" n={human_n}" if human_n else ""
    return f"{judge} / {human_part}"


def wide_table(rows: Sequence[Result], humans: Humans | None = None, with_ci: bool = False,
               digits: int = 1) -> pd.DataFrame:
    """The paper's layout for `rows` (results shown together): index the row label, one column
    per task metric (first seen first), cells from `format_cell`; empty: not evaluated."""
    labels = row_labels(rows)
    columns = list(dict.fromkeys(f"{r.task}: {m}" for r in rows for m in r.metrics))
    index = list(dict.fromkeys(labels[id(r)] for r in rows))
    table = pd.DataFrame("", index=pd.Index(index, name="method"), columns=columns)
    for r in rows:
        for metric, est in r.metrics.items():
            human = (humans or {}).get((id(r), metric))
            table.loc[labels[id(r)], f"{r.task}: {metric}"] = format_cell(
                est.mean, human.mean if human else None, est.low, est.high, with_ci, digits,
                est.n, human.n if human else 0)
    return table


def _markdown(table: pd.DataFrame) -> str:
    head = ["method", *table.columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, cells in table.iterrows():
        lines.append("| " + " | ".join([str(label), *cells.tolist()]) + " |")
    return "\n".join(lines)


def table_groups(results: ResultSet) -> list[tuple[str, list[Result]]]:
    """The tables of the page: the tasks evaluated in one setting together, then one table
    per setting of each task evaluated in several; (heading, results) each."""
    single = [t for t in results.tasks() if len(results.settings(t)) == 1]
    groups = []
    if single:
        groups.append(("", [r for r in results.current if r.task in single]))
    for task in results.tasks():
        if task not in single:
            groups += [(f"{task} — {s.label()}", results.where(task=task, setting=s))
                       for s in results.settings(task)]
    return groups


def render_markdown(results: ResultSet, humans: Humans | None = None, digits: int = 1,
                    title: str = "Leaderboard") -> str:
    """The markdown page: each task's setting and scorer, the compact tables, the tables with
    CIs and ns, the failure counts and the superseded evaluations."""
    lines = [f"# {title}", "",
             ("Cells: judge / human (human: the mean rating of the very replies the judge "
              f"scored, `{NONE}` where nobody rated them; empty: not evaluated)."), ""]
    for task in results.tasks():
        for s in results.settings(task):
            scorers = "; ".join(dict.fromkeys(r.scorer for r in results.where(task=task,
                                                                              setting=s)))
            lines.append(f"- {task} ({s.label()}): scored by {scorers}")
    for heading, rows in table_groups(results):
        lines += [*([f"## {heading}"] if heading else []), "",
                  _markdown(wide_table(rows, humans, False, digits)), "",
                  "Judge [95% CI] n / human n:", "",
                  _markdown(wide_table(rows, humans, True, digits)), ""]
    failed = [r for r in results.current if r.failures]
    if failed:
        lines += ["## Failures (excluded from the values above)", ""]
        lines += [f"- {r.method}, {r.task} ({r.setting.label()}): {r.failures} failed"
                  for r in failed] + [""]
    if results.superseded:
        lines += ["## Superseded (a newer evaluation of the same identity is shown)", ""]
        lines += [f"- {r.method}, {r.task} ({r.setting.label()}): evaluation {r.eval_id} of "
                  f"{r.created_at}" for r in results.superseded] + [""]
    return "\n".join(lines)


def write_leaderboard(results: ResultSet, out_dir: str | Path, ratings: Sequence[Mapping] = (),
                      digits: int = 1) -> tuple[Path, Path]:
    """Write `leaderboard.md` and `leaderboard.csv` (long format) into `out_dir`; return both."""
    out = Path(out_dir)
    humans = human_scores(results, ratings)
    md, csv = out / "leaderboard.md", out / "leaderboard.csv"
    write_text(md, render_markdown(results, humans, digits))
    with atomic_write(csv, newline="") as f:
        long_table(results, humans).to_csv(f, index=False)
    return md, csv
