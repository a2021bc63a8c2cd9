"""`udasa-eval report`: paired comparisons, Holm's correction and the runs table, checked
against hand-computed values on a workspace written by hand."""

from __future__ import annotations

import json

import pytest

from evals.cli import main
from evals.report import holm, task_results


def write_eval(ws, eval_id: str, task: str, values: dict[str, list[float]], data=None,
               judge: str | None = None) -> None:
    """`judge`: the task rows' own judge label (else only the run's, "judge J")."""
    folder = ws / "evals" / eval_id
    folder.mkdir(parents=True)
    models = {m: {"metrics": {"score": {"mean": sum(v) / len(v), "low": min(v), "high": max(v),
                                        "n": len(v)}}, "failures": 0, "seconds": 1.0,
                  **({"judge": judge} if judge else {})}
              for m, v in values.items()}
    results = {"eval_id": eval_id, "config": {"data": data or {}},
               "judge": {"label": "judge J"}, "tasks": {task: {"models": models}}}
    (folder / "results.json").write_text(json.dumps(results))
    rows = [{"model": m, "task": task, "idx": i, "scores": {"id": i, "value": x}}
            for m, v in values.items() for i, x in enumerate(v)]
    (folder / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_holm_matches_hand_values():
    # sorted 0.01, 0.02, 0.04: 3 x 0.01, 2 x 0.02, max(0.04, running) -> monotone
    assert holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])


def test_report_compares_the_main_method_with_each_other_one(tmp_path, capsys):
    ws = tmp_path / "ws"
    write_eval(ws, "e1", "harmlessness", {"base": [1.0] * 10, "UDASA": [3.0] * 9 + [1.0],
                                          "RLAIF": [3.0, 1.0] * 5})
    write_eval(ws, "e2", "robustness", {"UDASA": [0.0, 1.0], "RAIN": [0.0, 1.0]},
               data={"robustness": "whitebox.yaml"}, judge="refusal prefixes")
    log = tmp_path / "run.log"
    log.write_text("$ udasa-eval run --experiment cpu.yaml\nstuff\nexperiment finished in 600 s"
                   " (wall time)\n")
    out = tmp_path / "report.md"
    assert main(["report", "--workspace", str(ws), "--out", str(out), "--log", str(log)]) == 0
    text = out.read_text()
    assert "| 1 | `udasa-eval run --experiment cpu.yaml` | 600 s (10 min) |" in text
    assert "### robustness (data: whitebox.yaml; judge: refusal prefixes)" in text
    assert "### harmlessness (data: default; judge: judge J)" in text
    # UDASA - base: +1.8 on 10 samples, 9 wins and 1 tie; UDASA - RLAIF: +0.8, 4 wins 6 ties
    assert "| harmlessness (default): score | base | 10 | +1.800 [" in text
    assert "| 9/0/1 |" in text and "| 4/0/6 |" in text
    assert "| robustness (whitebox.yaml): score | RAIN | 2 | +0.000 [+0.000, +0.000] | +0.00 |" in text
    assert "harmlessness (default): UDASA above base by 1.800" in text
    assert "comparisons of UDASA with another method are significant" in text
    assert "No other difference in the comparison table is distinguishable from zero" in text


def test_results_in_the_order_first_evaluated_newest_kept(tmp_path):
    ws = tmp_path / "ws"
    write_eval(ws, "old", "helpfulness", {"UDASA": [1.0, 2.0]})
    write_eval(ws, "new", "helpfulness", {"UDASA": [5.0, 5.0]})
    import os
    os.utime(ws / "evals" / "old" / "results.json", (1, 1))
    (only,) = task_results(ws)
    assert only.values["UDASA"] == {0: 5.0, 1: 5.0}


def test_report_bad_paths_are_one_line_errors(tmp_path, capsys):
    assert main(["report", "--workspace", str(tmp_path), "--out", str(tmp_path / "r.md")]) == 2
    assert "no stored evaluations" in "".join(capsys.readouterr())
    (tmp_path / "evals").mkdir()
    assert main(["report", "--workspace", str(tmp_path), "--log", str(tmp_path / "x.log")]) == 2
    assert "x.log: no such file" in "".join(capsys.readouterr())


def test_the_paired_metric_is_named_rates_in_percent_included():
    from evals.report import TaskResult, value_metric

    summary = {"models": {"UDASA": {"metrics": {"info": {"mean": 50.0},
                                                "true": {"mean": 25.0}}}}}
    result = TaskResult("truthfulness", "default", "j", summary,
                        {"UDASA": {0: 0.0, 1: 1.0, 2: 0.0, 3: 0.0}})
    assert value_metric(result, "UDASA") == "true / 100"
    result.values["UDASA"] = {0: 7.0}
    assert value_metric(result, "UDASA") == "value"


def test_report_reads_several_workspaces(tmp_path):
    """An experiment split into runs on two machines: each workspace's tasks in one report,
    each workspace's tables and PNGs apart."""
    one, two = tmp_path / "one", tmp_path / "two"
    write_eval(one, "e1", "harmlessness", {"base": [1.0, 2.0], "UDASA": [2.0, 3.0]})
    write_eval(two, "e2", "sentiment", {"base": [0.0, 1.0], "UDASA": [1.0, 1.0]})
    for ws in (one, two):
        (ws / "tables").mkdir()
        (ws / "tables" / "table2.png").write_bytes(b"png of " + ws.name.encode())
        (ws / "tables.md").write_text("# title\n\n## Table 2\n\n![t](tables/table2.png)\n")
    out = tmp_path / "docs" / "report.md"
    assert main(["report", "--workspace", str(one), "--workspace", str(two),
                 "--out", str(out)]) == 0
    text = out.read_text()
    assert "### harmlessness (data: default" in text and "### sentiment (data: default" in text
    assert "### Workspace 2" in text and "![t](report/ws2/table2.png)" in text
    assert (out.parent / "report" / "ws1" / "table2.png").read_bytes() == b"png of one"


def test_an_unreadable_results_file_is_a_one_line_error(tmp_path, capsys):
    write_eval(tmp_path, "e1", "harmlessness", {"UDASA": [1.0, 2.0]})
    (tmp_path / "evals" / "e1" / "samples.jsonl").write_text("{not json\n")
    assert main(["report", "--workspace", str(tmp_path), "--out", str(tmp_path / "r.md")]) == 2
    assert "e1: unreadable results" in "".join(capsys.readouterr())
