"""`udasa-eval report`: the results report, regenerated from the evidence committed beside it.

`udasa-eval report --workspace WS [--workspace WS2] --out docs/x.md --log run.log ...` first
copies what the page reads into an evidence folder (`docs/x/evidence/`: every evaluation's
results.json and gzipped samples, the premise results, each experiment's training record,
Table 3 and the logs of the runs), then renders the page from that folder alone;
`udasa-eval report --evidence docs/x/evidence --out docs/x.md` renders it again without the
workspaces. Every number on the page comes from there, through `evals.results.load_results`:

- the runs, each with its command and wall time (its log's `$ command` line and the
  command's own `... finished in N s` line);
- each task in each setting: every current result's metrics with 95% CIs, n, failures, its
  scorer and the evaluation it comes from;
- the main method (default UDASA) against each other method of its experiment in the same
  task and setting, paired by sample id, on each metric the task declares for paired tests:
  mean difference with its bootstrap CI, d_z (mean difference / SD of the differences),
  wins / losses / ties, bootstrap and sign-test p, Holm's adjustment over the experiment's
  comparisons, and the smallest difference the test could detect (80% power at the
  Bonferroni level of Holm's first step); ablation variants of other experiments are not in
  that family;
- what the UDASA-kind methods trained on (empty stages; variants with identical pairs or
  identical stage plans), the premise test, Table 3, the paper's tables, and the superseded
  evaluations.
"""

from __future__ import annotations

import gzip
import re
import shutil
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from evals.comparison_plot import first_is_better, plot_comparisons
from evals.experiment_record import read_records
from evals.premise import premise_group_markdown, same_replies
from evals.results import Result, ResultSet, evaluation_folders, load_results
from evals.stats import holm, min_detectable_difference, paired_comparison
from evals.tables import write_tables
from udasa.errors import ConfigError
from udasa.files import copy_file, write_bytes, write_text
from udasa.progress import FINISHED

ALPHA = 0.05
POWER = 0.8


# the evidence folder -------------------------------------------------------------------------
def export_evidence(workspaces: Sequence[Path], dest: Path, logs: Sequence[Path] = ()) -> Path:
    """Copy what the report reads from `workspaces` into `dest` (replacing what it held):
    `ws<i>/evals/<id>/{results.json, samples.jsonl.gz}`, `ws<i>/premise/`,
    `ws<i>/premise-human/`, `ws<i>/experiments/`, `ws<i>/table3/` and `logs/<nn>-<name>`."""
    if dest.exists():
        shutil.rmtree(dest)
    for i, ws in enumerate(workspaces, 1):
        here = dest / f"ws{i}"
        for folder in evaluation_folders(ws):
            target = here / "evals" / folder.name
            copy_file(folder / "results.json", target / "results.json")
            samples = folder / "samples.jsonl"
            if samples.exists():
                write_bytes(target / "samples.jsonl.gz",
                            gzip.compress(samples.read_bytes(), mtime=0))
        for sub in ("premise", "premise-human", "experiments", "table3"):
            if (ws / sub).is_dir():
                shutil.copytree(ws / sub, here / sub, copy_function=copy_file,
                                ignore=shutil.ignore_patterns("*.tmp"))
    for i, log in enumerate(logs, 1):
        copy_file(log, dest / "logs" / f"{i:02d}-{log.name}")
    return dest


def evidence_logs(evidence: Path) -> list[Path]:
    return sorted((evidence / "logs").glob("*")) if (evidence / "logs").is_dir() else []


# the runs ------------------------------------------------------------------------------------
def run_lines(logs: Sequence[Path]) -> list[str]:
    """One line per run: its command and the wall time the command printed."""
    lines = ["| run | command | wall time | log |", "|---|---|---|---|"]
    for i, log in enumerate(logs, 1):
        text = log.read_text(encoding="utf-8", errors="replace")
        command = next((ln[2:] for ln in text.splitlines() if ln.startswith("$ ")), "?")
        done = FINISHED.findall(text)
        took = f"{int(done[-1])} s ({int(done[-1]) / 60:.0f} min)" if done else "not finished"
        lines.append(f"| {i} | `{command}` | {took} | {log.name} |")
    return lines


# results by task -----------------------------------------------------------------------------
def metric_lines(rows: Sequence[Result]) -> list[str]:
    lines = ["| method | experiment | metric | mean [95% CI] | n | failures | evaluation |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        for metric, est in r.metrics.items():
            lines.append(f"| {r.method} | {r.identity.experiment or '—'} | {metric} | "
                         f"{est.mean:.3f} [{est.low:.3f}, {est.high:.3f}] | {est.n} | "
                         f"{r.failures} | {r.eval_id} ({r.created_at[:19]}) |")
    return lines


def results_section(results: ResultSet) -> list[str]:
    parts = []
    for task in results.tasks():
        for setting in results.settings(task):
            rows = results.where(task=task, setting=setting)
            scorers = "; ".join(dict.fromkeys(r.scorer for r in rows))
            parts += [f"### {task} ({setting.label()})", "", f"Scored by: {scorers}.", "",
                      *metric_lines(rows), ""]
    return parts


# paired comparisons --------------------------------------------------------------------------
def main_experiment(results: ResultSet, main: str, chosen: str | None) -> str | None:
    """The experiment whose comparisons the report tests: `chosen`, else the one holding the
    most results of `main` (the newest among equals); None when `main` has no result."""
    if chosen is not None:
        if chosen not in results.experiments():
            raise ConfigError(f"--experiment: no result of experiment {chosen!r} "
                              f"(stored: {results.experiments()})")
        return chosen
    mine = [r for r in results.current if r.method == main]
    if not mine:
        return None
    counts = {e: (sum(r.identity.experiment == e for r in mine),
                  max(r.created_at for r in mine if r.identity.experiment == e))
              for e in dict.fromkeys(r.identity.experiment for r in mine)}
    return max(counts, key=lambda e: counts[e])


def comparisons(results: ResultSet, main: str, experiment: str,
                extra: Sequence[tuple[str, str]] = ()) -> list[dict[str, Any]]:
    """`main` minus each other method of `experiment`, then each `extra` (first, second) pair
    first minus second, in the same task and setting, on each paired metric of the task,
    paired by sample id; Holm's adjustment over all of them."""
    pairs = [(main, None), *extra]
    out = []
    for first, second in pairs:
        for r in results.current:
            if r.method != first or r.identity.experiment != experiment or r.legacy:
                continue
            for other in results.where(task=r.task, setting=r.setting, experiment=experiment):
                if other.legacy or other.method == first or second not in (None, other.method):
                    continue
                for metric in r.paired_metrics:
                    c = paired_comparison(r.values(metric), other.values(metric))
                    if c is not None:
                        out.append({"task": r.task, "setting": r.setting.label(),
                                    "metric": metric, "main": first,
                                    "other": other.method} | asdict(c))
    for row, p in zip(out, holm([row["p"] for row in out])):
        row["p_holm"] = p
        row["mdd"] = min_detectable_difference(row["sd_diff"], row["n"], ALPHA / len(out),
                                               POWER)
    return out


def comparison_lines(rows: Sequence[dict[str, Any]], pairs_named: bool = False) -> list[str]:
    """The paired table; `pairs_named`: the second column names both methods (first - second)
    instead of the one compared with the main method."""
    lines = [(f"| task (setting): metric | {'first - second' if pairs_named else 'main - method'}"
              " | n | mean diff [95% CI] | d_z | W/L/T | p boot | p sign | test | p Holm |"
              " significant | detectable |"),
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        pair = f"{r['main']} - {r['other']}" if pairs_named else r["other"]
        lines.append(
            f"| {r['task']} ({r['setting']}): {r['metric']} | {pair} | {r['n']} | "
            f"{r['mean_diff']:+.3f} [{r['low']:+.3f}, {r['high']:+.3f}] | {r['d_z']:+.2f} | "
            f"{r['wins']}/{r['losses']}/{r['ties']} | {r['p_boot']:.3g} | {r['p_sign']:.3g} | "
            f"{r['test']} | {r['p_holm']:.3g} | {'yes' if r['p_holm'] < ALPHA else 'no'} | "
            f"{r['mdd']:.3g} |")
    return lines


def statement(rows: Sequence[dict[str, Any]], main: str) -> list[str]:
    """The plain-language verdict: which differences survive Holm's correction, and how large a
    difference the others could have shown."""
    sig = [r for r in rows if r["p_holm"] < ALPHA]
    further = sum(r["main"] != main for r in rows)
    what = (f"comparisons of {main} with another method" if not further else
            f"comparisons ({main} with each other method, and {further} asked for with "
            "`--compare`)")
    lines = [(f"{len(sig)} of {len(rows)} {what} are significant at {ALPHA} after Holm's "
              f"correction over all {len(rows)}:")]
    lines += [f"- {r['task']} ({r['setting']}), {r['metric']}: {r['main']} "
              f"{'above' if r['mean_diff'] > 0 else 'below'} {r['other']} by "
              f"{abs(r['mean_diff']):.3f} [{r['low']:+.3f}, {r['high']:+.3f}]"
              for r in sig] or ["- none."]
    lines += ["", (f"{'No other' if sig else 'No'} difference in the comparison table is "
                   f"distinguishable from zero at this sample size: its Holm-adjusted p is at "
                   f"least {ALPHA}.")]
    rest = [r for r in rows if r["p_holm"] >= ALPHA]
    by_metric: dict[tuple[str, str, str], list[float]] = {}
    for r in rest:
        by_metric.setdefault((r["task"], r["setting"], r["metric"]), []).append(r["mdd"])
    if by_metric:
        lines += ["", (f"How large a difference the tests could have detected (80% power at "
                       f"level {ALPHA}/{len(rows)}, Holm's first step, from each comparison's n "
                       "and observed SD of the differences); a \"no difference\" above reads "
                       "as \"none larger than this\":")]
        lines += [f"- {task} ({setting}), {metric}: {min(v):.3g} to {max(v):.3g}"
                  if len(v) > 1 else f"- {task} ({setting}), {metric}: {v[0]:.3g}"
                  for (task, setting, metric), v in by_metric.items()]
    return lines


def verdict_lines(rows: Sequence[dict[str, Any]], main: str) -> list[str]:
    """Per compared method: on how many metrics `main` is significantly better, worse, or not
    distinguishable (how large a difference each could have shown is listed per metric under
    the paired table: metrics on different scales do not share one bound)."""
    lines = [(f"| {main} against | metrics | {main} better | {main} worse | not distinguishable |"),
             "|---|---|---|---|---|"]
    for other in dict.fromkeys(r["other"] for r in rows):
        mine = [r for r in rows if r["other"] == other]
        better = [r for r in mine if r["p_holm"] < ALPHA and first_is_better(r)]
        worse = [r for r in mine if r["p_holm"] < ALPHA and r not in better]
        rest = [r for r in mine if r["p_holm"] >= ALPHA]
        lines.append(f"| {other} | {len(mine)} | {_names(better)} | {_names(worse)} | "
                     f"{len(rest)} |")
    return [*lines, "", ("Better and worse are per metric: a higher score, a lower attack "
                        "success rate (`asr_*`). How large a difference the undistinguished "
                        "comparisons could have shown is listed per metric under the paired "
                        "table. Its `test` names the p that Holm's correction adjusts: `exact`, "
                        "McNemar's exact test (the sign test on the samples that differ), where "
                        "every value is one of two, as an attack's success; `bootstrap`, the "
                        "paired bootstrap, otherwise.")]


def _names(rows: Sequence[dict[str, Any]]) -> str:
    return f"{len(rows)}: " + ", ".join(f"{r['task']} {r['metric']}" for r in rows) \
        if rows else "0"


def comparisons_section(results: ResultSet, main: str, chosen: str | None,
                        extra: Sequence[tuple[str, str]] = (), figures: Path | None = None
                        ) -> list[str]:
    """The paired comparisons: verdict, table, further comparisons, statement, and (with
    `figures`, a folder beside the page) their forest plot `comparisons.png`."""
    experiment = main_experiment(results, main, chosen)
    if experiment is None:
        return [f"No result of a method named {main} (`--main` names the method compared).", ""]
    known = {r.method for r in results.current}
    for first, second in extra:
        if main in (first, second) or first == second:
            raise ConfigError(f"--compare {first!r} {second!r}: give two other methods "
                              f"({main} is compared with every method already)")
    if unknown := sorted({m for pair in extra for m in pair} - known):
        raise ConfigError(f"--compare: no result of {', '.join(map(repr, unknown))} "
                          f"(methods: {', '.join(sorted(known))})")
    rows = comparisons(results, main, experiment, extra)
    others = [e for e in results.experiments() if e != experiment
              and any(r.method == main for r in results.where(experiment=e))]
    head = [(f"Experiment `{experiment or '(none)'}`: {main} against every other method of it "
            "evaluated on the same task in the same setting, paired by sample id, on each "
            "metric the task declares for paired tests.")]
    if others:
        head.append(f"{main} also has results in experiment(s) {', '.join(others)}, tested "
                    "separately with `--experiment NAME`.")
    legacy = sorted({f"{r.method} on {r.task}" for r in results.current if r.legacy})
    if legacy:
        head.append("Evaluated before per-sample metrics were stored, so not compared: "
                    + ", ".join(legacy) + ".")
    if not rows:
        return [*head, "", "No paired comparison: nothing else was evaluated beside it.", ""]
    ours = [r for r in rows if r["main"] == main]
    further = [r for r in rows if r["main"] != main]
    png = plot_comparisons(rows, figures / "comparisons.png", ALPHA) if figures else None
    return [*head, "", *verdict_lines(ours, main), "", *comparison_lines(ours), "",
            *further_lines(further, extra), *statement(rows, main), "",
            *([f"![Paired differences]({figures.name}/{png.name})", ""] if png else [])]


def further_lines(rows: Sequence[dict[str, Any]], extra: Sequence[tuple[str, str]]) -> list[str]:
    """The `--compare FIRST SECOND` comparisons (in the same Holm family as the main ones)."""
    if not extra:
        return []
    asked = ", ".join(f"{a} - {b}" for a, b in extra)
    if not rows:
        return [(f"Further comparisons asked for ({asked}): none evaluated on the same task "
                 "and setting."), ""]
    return [f"Further comparisons ({asked}), first minus second, in the same Holm family:", "",
            *comparison_lines(rows, pairs_named=True), ""]


# what was trained ----------------------------------------------------------------------------
def stage_text(facts: dict[str, Any]) -> str:
    stages = facts["stages"]
    filled = [f"stage {s['stage']} ({s['name']}): {s['pairs']} pairs at learning rate "
              f"{s['learning_rate']:g}, beta {s['beta']:g}" for s in stages if s["pairs"]]
    empty = [str(s["stage"]) for s in stages if not s["pairs"]]
    text = f"{facts['pairs']} pairs; " + "; ".join(filled or ["no pairs"])
    if empty:
        text += f"; empty: stage{'s' if len(empty) > 1 else ''} {', '.join(empty)}"
    return text + (f" ({cut_text(facts)})" if facts.get("thresholds") else "")


def cut_text(facts: dict[str, Any]) -> str:
    """Where the stages were cut: fixed delta thresholds, or delta quantiles i/K (quantile mode
    uses only the number of configured thresholds), with the delta values where recorded."""
    if facts["curriculum"] != "quantile":
        return f"fixed cut-offs {facts['thresholds']}"
    k = len(facts["thresholds"]) + 1
    text = "cut at the delta quantiles " + ", ".join(f"{i}/{k}" for i in range(1, k))
    cuts = facts.get("cuts")
    return text + (": delta " + ", ".join(f"{c:.4g}" for c in cuts) if cuts else "")


def same_groups(methods: dict[str, dict[str, Any]], key: str) -> list[list[str]]:
    groups: dict[str, list[str]] = {}
    for name, facts in methods.items():
        groups.setdefault(facts[key], []).append(name)
    return [g for g in groups.values() if len(g) > 1]


def training_section(records: Sequence[dict[str, Any]]) -> list[str]:
    """Each UDASA-kind method's pairs and stages, from the experiments' records."""
    if not records:
        return ["No training record stored (an experiment writes one per run).", ""]
    parts = []
    for rec in records:
        methods = rec["methods"]
        parts += [f"Experiment `{rec['experiment']}`:", ""]
        parts += [f"- {name}: {stage_text(f)}" for name, f in methods.items()]
        plans = same_groups(methods, "plan_key")
        for group in plans:
            parts.append(f"- Identical stage plans (same pairs, stages, learning rates and "
                         f"beta; run `{methods[group[0]]['run_id'][:12]}`…): "
                         f"{', '.join(group)}: they are one training, their differences are "
                         "evaluation noise only.")
        for group in same_groups(methods, "pairs_key"):
            if not any(set(group) <= set(p) for p in plans):
                parts.append(f"- Identical pairs, different stage plans: {', '.join(group)}.")
        parts.append("")
    return parts + [("Pair counts are every pair a stage holds, including the pairs held out "
                     "by prompt for DPO's evaluation loss (`training.eval_fraction`) and any "
                     "dropped as too long; each run's log names the pairs it trained on."), ""]


# Table 3 -------------------------------------------------------------------------------------
def table3_section(evidence: Path) -> list[str]:
    from udasa.table3 import read_table3, to_markdown

    found = sorted(evidence.glob("**/table3/table3.json"))
    if not found:
        return ["Not stored (an experiment with a UDASA method writes it; `udasa table3`).", ""]
    text = to_markdown(read_table3(found[-1]))
    return [re.sub(r"^# .*", "", text, count=1).strip(), ""]


# the page ------------------------------------------------------------------------------------
def tables_part(results: ResultSet, premises: list[dict], out: Path) -> list[str]:
    """The paper's tables rendered into `<out stem>/`, linked from the page."""
    folder = out.with_suffix("")
    write_tables(results, folder, premises)
    text = (folder / "tables.md").read_text(encoding="utf-8")
    text = text.replace("](tables/", f"]({folder.name}/tables/")
    lines = text.split("\n## Premise")[0].splitlines()[1:]  # premise: its own section
    return [re.sub(r"^(#+) ", r"#\1 ", line) for line in lines]


def human_premise_section(evidence: Path) -> list[str]:
    """The premise against human labels (`udasa scorers --human`), where it was run."""
    found = sorted(evidence.glob("**/premise-human/premise_human.md"))
    if not found:
        return ["Not run (`udasa scorers --human --workspace DIR`, docs/premise.md).", ""]
    text = found[-1].read_text(encoding="utf-8")
    return [re.sub(r"^# .*\n", "", text, count=1).strip(), ""]


def read_premise_files(evidence: Path) -> list[dict]:
    import json

    return [json.loads(p.read_text(encoding="utf-8"))
            for p in sorted(evidence.glob("**/premise/*.json"))]


def superseded_lines(results: ResultSet) -> list[str]:
    if not results.superseded:
        return ["None: every stored evaluation is current.", ""]
    return [f"- {r.method} on {r.task} ({r.setting.label()}), experiment "
            f"`{r.identity.experiment or '(none)'}`: evaluation {r.eval_id} of "
            f"{r.created_at[:19]}" for r in results.superseded] + [""]


def write_report(evidence: Path, out: Path, main: str = "UDASA", preamble: str = "",
                 experiment: str | None = None,
                 compare: Sequence[tuple[str, str]] = (), command: str = "") -> Path:
    """Render the report from an evidence folder (`export_evidence`) into `out`; `command`,
    the `udasa-eval report` line that renders it again, closes the page."""
    results = load_results(evidence)
    if not results.current:
        raise ConfigError(f"{evidence}: no stored evaluations")
    premises = read_premise_files(evidence)
    premise = ([premise_group_markdown(g) for g in same_replies(premises)]
               or ["No premise test stored.", ""])
    parts = [preamble, "## Runs", "", *run_lines(evidence_logs(evidence)), "",
             "## Results by task", "", *results_section(results),
             f"## {main} against each method, paired by sample", "",
             *comparisons_section(results, main, experiment, compare, out.with_suffix("")),
             "## What the UDASA runs trained on", "", *training_section(read_records(evidence)),
             "## Premise: does lower uncertainty mean a better reply?", "",
             "### By the judge, on each UDASA run's replies", "",
             *[re.sub(r"^### ", "#### ", p, flags=re.MULTILINE) for p in premise],
             "### Against human labels, independent of any judge", "",
             *human_premise_section(evidence),
             "## Table 3: the paper's replies scored here", "", *table3_section(evidence),
             "## The paper's tables", "", *tables_part(results, premises, out), "",
             "## Superseded evaluations", "", *superseded_lines(results),
             *(["## This page", "", "Rendered from the evidence folder alone by", "",
                f"    {command}", ""] if command else [])]
    return write_text(out, "\n".join(parts) + "\n")
