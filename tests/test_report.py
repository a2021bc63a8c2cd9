"""`udasa-eval report`: paired comparisons within one experiment, task and setting, Holm's
correction, effect sizes, the evidence folder the page is rendered from, and the generated
facts, checked against values computed here by hand."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO
from results_factory import add
from scipy import stats as sps

from evals.cli import main

# three UDASA - base differences whose raw paired-bootstrap p lies between 0.02 and 0.04:
# significant alone, not after Holm's correction over the three
D1 = [0.7, 0.0, 0.1, -1.9, 2.3, 1.6, 0.2, 1.3, 0.8, -0.1, 1.5, 0.2, 0.2, -0.3, 1.0, 0.4, 1.0,
      -0.1, 0.6, -0.4]
D2 = [0.1, 1.7, 1.9, 0.8, 0.9, 0.0, -0.4, -0.4, -0.5, 1.4, 0.4, 0.6, -0.1, -0.6, -0.7, -0.3,
      1.1, 0.5, 0.0, 0.3]
D3 = [-0.6, 0.2, 0.2, 0.3, 1.6, 0.6, 0.9, 0.5, -0.4, 0.7, 1.2, 0.6, 0.0, -0.7, 2.1, -0.3,
      -0.3, -0.8, 0.8, 0.6]


def table_rows(text: str) -> dict[tuple[str, str], list[str]]:
    """The comparison table: (task-metric cell, other method) -> the remaining cells: n, mean
    diff [CI], d_z, W/L/T, p boot, p sign, test, p Holm, significant, detectable."""
    part = text.split("paired by sample\n")[1].split("\n## ")[0]
    rows = {}
    for line in part.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 12 and cells[1] not in ("main - method", "first - second", "---"):
            rows[cells[0], cells[1]] = cells[2:]
    return rows


def render(tmp_path, *workspaces, extra=()) -> str:
    out = tmp_path / "docs" / "report.md"
    args = ["report", "--out", str(out), *extra]
    for ws in workspaces:
        args += ["--workspace", str(ws)]
    assert main(args) == 0
    return out.read_text()


def test_holm_decides_significance_and_d_z_is_mean_over_sd(tmp_path):
    ws = tmp_path / "ws"
    base = [5.0] * 20
    for i, (task, d) in enumerate((("harmlessness", D1), ("helpfulness", D2),
                                   ("truthfulness", D3))):
        add(ws, f"e{i}", task, {"base": {"score": base},
                                "UDASA": {"score": [b + x for b, x in zip(base, d)]}},
            experiment="cpu")
    text = render(tmp_path, ws)
    rows = table_rows(text)
    assert len(rows) == 3
    raw = {task: float(rows[f"{task} (data: default, limit 50, seed 0, judge: j): score",
                            "base"][4]) for task in ("harmlessness", "helpfulness",
                                                     "truthfulness")}
    assert all(0.02 < p < 0.04 for p in raw.values())  # each significant alone
    order = sorted(raw, key=raw.get)
    by_hand, running = {}, 0.0
    for rank, task in enumerate(order):
        running = max(running, (3 - rank) * raw[task])
        by_hand[task] = running
    for (cell, _), r in rows.items():
        task = cell.split(" ")[0]
        assert r[6] == "bootstrap"  # 1-10 scores
        assert float(r[7]) == pytest.approx(by_hand[task], rel=2e-3)  # p Holm, 3 digits
        assert r[8] == "no"
    d_z = {"harmlessness": np.mean(D1) / np.std(D1, ddof=1),
           "helpfulness": np.mean(D2) / np.std(D2, ddof=1)}
    for task, value in d_z.items():
        cells = rows[f"{task} (data: default, limit 50, seed 0, judge: j): score", "base"]
        assert cells[2] == f"{value:+.2f}" and value > 0
    assert "0 of 3 comparisons of UDASA with another method are significant" in text
    png = tmp_path / "docs" / "report" / "comparisons.png"  # beside the page, linked from it
    assert "![Paired differences](report/comparisons.png)" in text
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert "- none." in text
    assert "No difference in the comparison table is distinguishable from zero" in text


def test_golden_report_from_two_workspaces_keeps_every_main_comparison(tmp_path):
    """The second workspace, evaluated later, holds only ablation variants on the same task
    and data: the main comparisons stay, the variants join no Holm family of UDASA's."""
    one, two = tmp_path / "one", tmp_path / "two"
    base = [4.0, 5.0, 6.0, 5.0, 4.0, 6.0]
    udasa = [5.0, 7.0, 7.0, 6.0, 6.0, 7.0]  # all wins: +1 +2 +1 +1 +2 +1
    rlaif = [5.0, 6.0, 7.0, 7.0, 5.0, 5.0]  # vs UDASA: 0 +1 0 -1 +1 +2
    add(one, "h", "harmlessness", {"base": {"score": base}, "RLAIF": {"score": rlaif},
                                   "UDASA": {"score": udasa}}, experiment="cpu",
        created_at="2026-01-01T00:00:00")
    add(one, "s", "sentiment", {
        "base": {"positive_judge": [0.0] * 6, "positive_vader": [0.0, 100.0] * 3},
        "UDASA": {"positive_judge": [100.0] * 4 + [0.0] * 2,
                  "positive_vader": [100.0, 0.0] * 3}},
        experiment="cpu", created_at="2026-01-01T00:00:01")
    add(two, "abl", "harmlessness", {"UDASA full": {"score": [9.0] * 6},
                                     "UDASA stages-1": {"score": [1.0] * 6}},
        experiment="cpu-ablations", created_at="2026-02-01T00:00:00")
    text = render(tmp_path, one, two)
    rows = table_rows(text)
    setting = "data: default, limit 50, seed 0, judge: j"
    assert set(rows) == {(f"harmlessness ({setting}): score", "base"),
                         (f"harmlessness ({setting}): score", "RLAIF"),
                         (f"sentiment ({setting}): positive_judge", "base"),
                         (f"sentiment ({setting}): positive_vader", "base")}
    expect = {  # by hand: mean difference, W/L/T
        (f"harmlessness ({setting}): score", "base"): (np.subtract(udasa, base), "6/0/0"),
        (f"harmlessness ({setting}): score", "RLAIF"): (np.subtract(udasa, rlaif), "3/1/2"),
        (f"sentiment ({setting}): positive_judge", "base"): (np.array([100.0] * 4 + [0.0] * 2),
                                                            "4/0/2"),
        (f"sentiment ({setting}): positive_vader", "base"): (np.array([100.0, -100.0] * 3),
                                                            "3/3/0")}
    raw = {}
    for key, (d, wlt) in expect.items():
        n, diff, _, w, p_boot, p_sign, test = rows[key][:7]
        assert (int(n), w) == (6, wlt)
        two_valued = set(d) <= {-100.0, 0.0, 100.0}  # 0/100 outcomes: McNemar's exact test
        assert test == ("exact" if two_valued else "bootstrap")
        ci = sps.bootstrap((d,), np.mean, n_resamples=10000, method="percentile",
                           rng=np.random.default_rng(0)).confidence_interval
        assert diff == f"{d.mean():+.3f} [{ci.low:+.3f}, {ci.high:+.3f}]"
        raw[key] = float(p_sign if two_valued else p_boot)
    assert raw[f"harmlessness ({setting}): score", "base"] == pytest.approx(2 / 10001, rel=1e-3)
    assert raw[f"sentiment ({setting}): positive_judge", "base"] == pytest.approx(0.125)  # 4/0
    order = sorted(raw, key=raw.get)
    running = 0.0
    for rank, key in enumerate(order):
        running = max(running, min(1.0, (4 - rank) * raw[key]))
        assert float(rows[key][7]) == pytest.approx(running, rel=2e-3)
    assert "UDASA full" in text.split("## Results by task")[1].split("## UDASA against")[0]
    assert "comparisons of UDASA with another method are significant at 0.05 after Holm's " \
           "correction over all 4" in text


def test_a_task_with_several_metrics_is_compared_on_each_by_name(tmp_path):
    ws = tmp_path / "ws"
    add(ws, "r", "robustness", {
        "vanilla": {"asr_transfer_prefix": [100.0, 100.0, 0.0], "asr_nosuffix_prefix":
                    [100.0, 0.0, 0.0]},
        "UDASA": {"asr_transfer_prefix": [0.0, 100.0, 0.0], "asr_nosuffix_prefix":
                  [0.0, 0.0, 0.0]}},
        experiment="cpu", paired=["asr_transfer_prefix"], data="transfer.yaml")
    rows = table_rows(render(tmp_path, ws))
    ((key, other),) = rows
    assert key.endswith(": asr_transfer_prefix") and other == "vanilla"
    assert rows[key, other][1].startswith("-33.333 [")  # the per-sample values it names


def test_the_report_regenerates_from_its_evidence_without_the_workspace(tmp_path):
    import shutil

    ws = tmp_path / "ws"
    add(ws, "h", "harmlessness", {"base": {"score": [1.0, 2.0, 3.0]},
                                  "UDASA": {"score": [2.0, 2.0, 4.0]}}, experiment="cpu")
    log, human = tmp_path / "run.log", tmp_path / "human.log"
    log.write_text("$ udasa-eval run --experiment cpu.yaml\n"
                   "experiment finished in 600 s (wall time)\n")
    human.write_text("$ udasa scorers --human\n"
                     "premise against human labels finished in 90 s (wall time)\n")
    first = render(tmp_path, ws, extra=["--log", str(log), "--log", str(human)])
    assert "| 1 | `udasa-eval run --experiment cpu.yaml` | 600 s (10 min) | 01-run.log |" in first
    assert "| 2 | `udasa scorers --human` | 90 s (2 min) | 02-human.log |" in first
    evidence = tmp_path / "docs" / "report" / "evidence"
    assert (evidence / "ws1" / "evals" / "h" / "samples.jsonl.gz").is_file()
    shutil.rmtree(ws)
    log.unlink()
    human.unlink()
    out = tmp_path / "docs" / "report.md"
    assert main(["report", "--evidence", str(evidence), "--out", str(out)]) == 0
    assert out.read_text() == first


def test_training_facts_name_empty_stages_and_identical_plans(tmp_path):
    from evals.report import training_section

    stage = {"name": "s", "learning_rate": 1e-5, "beta": 0.1, "pairs_key": "k"}
    plan = [{**stage, "stage": 1, "pairs": 0}, {**stage, "stage": 2, "pairs": 0},
            {**stage, "stage": 3, "pairs": 28, "learning_rate": 2e-5, "beta": 0.2}]
    facts = {"run_id": "abcdef0123456789", "pairs": 28, "pairs_key": "P", "curriculum": "fixed",
             "thresholds": [0.4, 0.7], "stages": plan, "plan_key": "A"}
    record = {"experiment": "abl", "methods": {
        "UDASA tau=0.4/0.6": facts, "UDASA tau=0.4/0.7": facts,
        "UDASA stages-1": {**facts, "stages": [{**stage, "stage": 1, "pairs": 28}],
                           "plan_key": "B", "thresholds": []}}}
    text = "\n".join(training_section([record]))
    assert ("- UDASA tau=0.4/0.6: 28 pairs; stage 3 (s): 28 pairs at learning rate 2e-05, "
            "beta 0.2; empty: stages 1, 2 (fixed cut-offs [0.4, 0.7])") in text
    assert "Identical stage plans" in text and "UDASA tau=0.4/0.6, UDASA tau=0.4/0.7: they " \
                                                 "are one training" in text
    assert re.search(r"Identical pairs, different stage plans: .*UDASA stages-1", text)
    # quantile mode cuts at delta quantiles i/K whatever the configured values; a record made
    # before the cuts were recorded says where, without the values
    quantile = {**facts, "curriculum": "quantile", "thresholds": [0.4, 0.7]}
    assert "(cut at the delta quantiles 1/3, 2/3)" in "\n".join(
        training_section([{"experiment": "m", "methods": {"UDASA": quantile}}]))
    assert "(cut at the delta quantiles 1/3, 2/3: delta 0.01235, 0.04)" in "\n".join(
        training_section([{"experiment": "m", "methods": {
            "UDASA": quantile | {"cuts": [0.012345, 0.04]}}}]))


def test_report_bad_paths_are_one_line_errors(tmp_path, capsys):
    assert main(["report", "--workspace", str(tmp_path), "--out", str(tmp_path / "r.md")]) == 2
    assert "no stored evaluations" in "".join(capsys.readouterr())
    (tmp_path / "evals").mkdir()
    assert main(["report", "--workspace", str(tmp_path), "--log", str(tmp_path / "x.log")]) == 2
    assert "x.log: no such file" in "".join(capsys.readouterr())
    assert main(["report", "--evidence", str(tmp_path / "none"), "--out", "r.md"]) == 2
    assert "--evidence" in "".join(capsys.readouterr())


def test_a_results_file_with_no_paired_tests_is_named(tmp_path):
    folder = tmp_path / "evals" / "old"
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps({
        "eval_id": "old", "config": {}, "judge": {"name": "j", "label": "J"},
        "tasks": {"harmlessness": {"models": {"UDASA": {"metrics": {"score": {
            "mean": 1.0, "low": 0.0, "high": 2.0, "n": 2}}}}}}}))
    text = render(tmp_path, tmp_path)
    assert "Evaluated before per-sample metrics were stored, so not compared: UDASA on " \
           "harmlessness." in text


def test_runs_of_some_methods_add_to_the_experiment_record(tmp_path):
    from evals.experiment_record import read_records, write_record

    write_record(tmp_path, "cpu-medium", {"UDASA": {"pairs": 3}})
    write_record(tmp_path, "cpu-medium", {"UDASA random pairs": {"pairs": 4}})
    write_record(tmp_path, "cpu-medium", {"UDASA": {"pairs": 5}})  # rebuilt: the new facts
    (record,) = read_records(tmp_path)
    assert record["methods"] == {"UDASA": {"pairs": 5}, "UDASA random pairs": {"pairs": 4}}


def test_the_verdict_per_method_counts_better_worse_and_undistinguished(tmp_path):
    from evals.report import verdict_lines

    row = {"task": "t", "mdd": 0.5}
    rows = [row | {"other": "random pairs", "metric": "score", "mean_diff": 1.0, "p_holm": 0.01},
            row | {"other": "random pairs", "metric": "asr_transfer_prefix", "mean_diff": 10.0,
                   "p_holm": 0.02},  # a higher attack success rate: worse
            row | {"other": "random pairs", "metric": "true", "mean_diff": 1.0, "p_holm": 0.2},
            row | {"other": "RLAIF", "metric": "score", "mean_diff": -1.0, "p_holm": 0.5}]
    lines = verdict_lines(rows, "UDASA")
    assert "| random pairs | 3 | 1: t score | 1: t asr_transfer_prefix | 1 |" in lines
    assert "| RLAIF | 1 | 0 | 0 | 1 |" in lines


def test_the_human_label_premise_is_included_where_it_was_run(tmp_path):
    ws = tmp_path / "ws"
    add(ws, "h", "harmlessness", {"UDASA": {"score": [1.0, 2.0]}})
    assert "Not run (`udasa scorers --human" in render(tmp_path, ws)
    (ws / "premise-human").mkdir()
    (ws / "premise-human" / "premise_human.md").write_text(
        "# The premise against human labels\n\n| uncertainty | u |\n|---|---|\n| u | 0.565 |\n")
    text = render(tmp_path, ws)
    part = text.split("### Against human labels")[1].split("\n## ")[0]
    assert "| u | 0.565 |" in part and "# The premise against human labels" not in part


def test_further_comparisons_join_the_holm_family_of_the_main_ones(tmp_path, capsys):
    ws = tmp_path / "ws"
    base = [5.0] * 20
    methods = {"base": {"score": base}, "UDASA": {"score": [b + x for b, x in zip(base, D1)]},
               "no curriculum": {"score": [b + x for b, x in zip(base, D2)]},
               "random pairs": {"score": [b + x for b, x in zip(base, D3)]}}
    add(ws, "e1", "harmlessness", methods, experiment="cpu")
    text = render(tmp_path, ws, extra=["--compare", "no curriculum", "random pairs"])
    rows = table_rows(text)
    cell = "harmlessness (data: default, limit 50, seed 0, judge: j): score"
    assert {other for _, other in rows} == {"base", "no curriculum", "random pairs",
                                            "no curriculum - random pairs"}
    diff = np.subtract(D2, D3)
    assert rows[cell, "no curriculum - random pairs"][1].startswith(f"{diff.mean():+.3f} [")
    raw = sorted(float(r[4]) for r in rows.values())
    by_hand, running = [], 0.0
    for rank, p in enumerate(raw):
        running = max(running, (4 - rank) * p)
        by_hand.append(min(running, 1.0))
    assert sorted(float(r[7]) for r in rows.values()) == pytest.approx(by_hand, rel=2e-3)
    assert ("of 4 comparisons (UDASA with each other method, and 1 asked for with `--compare`)"
            in text)
    assert main(["report", "--out", str(tmp_path / "x.md"), "--workspace", str(ws),
                 "--compare", "no curriculum", "random pair"]) == 2
    assert "--compare: no result of 'random pair' (methods: UDASA, base, no curriculum, " \
           "random pairs)" in capsys.readouterr().out
    assert main(["report", "--out", str(tmp_path / "x.md"), "--workspace", str(ws),
                 "--compare", "UDASA", "random pairs"]) == 2
    assert "UDASA is compared with every method already" in capsys.readouterr().out


@pytest.mark.parametrize("page", sorted(REPO.glob("docs/results*.md")), ids=lambda p: p.name)
def test_each_committed_results_page_is_what_its_evidence_renders(page, tmp_path, monkeypatch):
    """A results page in docs/ is exactly what `udasa-eval report` renders from the evidence
    committed beside it, by the command the page closes with: no hand edit, no drift between
    the page and the code that reads its evidence."""
    text = page.read_text(encoding="utf-8")
    command = text.rstrip().splitlines()[-1].strip()
    assert command.startswith("udasa-eval report --evidence "), f"{page}: no closing command"
    argv = shlex.split(command)[1:]
    at = argv.index("--out") + 1
    committed_out, argv[at] = argv[at], str(tmp_path / Path(argv[at]).name)
    monkeypatch.chdir(REPO)
    assert main(argv) == 0
    again = Path(argv[at]).read_text(encoding="utf-8")
    assert again.replace(argv[at], committed_out) == text
