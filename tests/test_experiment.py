"""Experiments as data: an experiment file runs end to end through `udasa-eval run`."""

from __future__ import annotations

import json
import re

import pytest
import yaml
from conftest import REPO
from openai_server import FakeOpenAIServer

from evals.cli import main
from evals.experiment import load_experiment
from evals.suite import suite_experiment
from udasa.data import data_dir
from udasa.errors import ConfigError

needs_hh = pytest.mark.skipif(
    not (data_dir() / "hh-rlhf" / "harmless-base" / "test.jsonl.gz").exists(),
    reason=f"shared data folder {data_dir()} lacks hh-rlhf (set UDASA_DATA_DIR)")

TINY_UDASA = ["data.limit=4", "generation.n=3", "generation.max_new_tokens=8",
              "training.warmup_steps=0", "training.epochs=1", "training.batch_size=2",
              "training.eval_fraction=0.0", "training.max_length=96",
              "training.last_stage_beta=null", "curriculum.mode=quantile"]


def write_experiment(path, policy: str, base_url: str) -> None:
    path.write_text(yaml.safe_dump({
        "name": "tiny", "policy": policy, "judge": "gpt4", "judge_base_url": base_url,
        "premise": ["harmless"],
        "methods": [{"name": "base (unaligned)", "kind": "base", "paper_rows": ["base"]},
                    {"name": "UDASA", "kind": "udasa", "config": "configs/cpu-demo.yaml",
                     "overrides": TINY_UDASA, "paper_rows": ["UDASA"]}],
        "tasks": [{"name": "harmlessness", "limit": 3}]}))


def length_judge(body: dict) -> str:
    """Scores a reply by its length, so every number below can be recomputed."""
    reply = body["messages"][-1]["content"].split("[Assistant reply]")[1]
    return str(1 + len(reply.split("How harmless")[0].split()) % 10)


@needs_hh
def test_experiment_with_two_methods_runs_end_to_end(tmp_path, tiny_policy):
    exp_file = tmp_path / "exp.yaml"
    ws = tmp_path / "ws"
    with FakeOpenAIServer(length_judge) as server:
        write_experiment(exp_file, tiny_policy, server.base_url)
        assert main(["run", "--experiment", str(exp_file), "--workspace", str(ws)]) == 0
    results = [json.loads(p.read_text()) for p in (ws / "evals").glob("*/results.json")]
    (res,) = results
    models = res["tasks"]["harmlessness"]["models"]
    assert list(models) == ["base (unaligned)", "UDASA"]
    assert all(m["n"] == 3 and m["failures"] == 0 for m in models.values())
    (test,) = res["tasks"]["harmlessness"]["paired_tests"]
    assert (test["model"], test["baseline"], test["n"]) == ("UDASA", "base (unaligned)", 3)
    md = (ws / "tables.md").read_text()
    table2 = md.split("## Table 2")[1].split("\n## ")[0]
    udasa_mean = models["UDASA"]["metrics"]["score"]["mean"]
    row = next(line for line in table2.splitlines() if line.startswith("| UDASA "))
    assert re.search(rf"\| {udasa_mean:.1f} \[[0-9.]+, [0-9.]+\] n=3 +\| — ", row)
    assert "7.9 / 7.9" in row
    assert re.search(r"Harmless: harmlessness / score; data: default, limit 3, seed 0, "
                     r"judge: gpt4:gpt-4-0613; base \(unaligned\) = base \(unaligned\) \[tiny\], "
                     r"UDASA = UDASA \[tiny\]", table2)
    assert res["experiment"] == "tiny" and models["UDASA"]["paper_rows"] == ["UDASA"]
    record = json.loads((ws / "experiments" / "tiny.json").read_text())["methods"]["UDASA"]
    assert record["pairs"] == sum(s["pairs"] for s in record["stages"]) == 4
    assert [s["pairs"] for s in record["stages"]] == [2, 1, 1]
    assert json.loads((ws / "table3" / "table3.json").read_text())["rows"]
    (premise,) = (ws / "premise").glob("*.json")
    out = json.loads(premise.read_text())
    assert out["method"] == "UDASA" and out["judged"] == 12 and out["failures"] == 0
    assert "### UDASA (run " in md.split("## Premise")[1]  # named by its method


def test_suite_paper_is_the_shipped_cpu_experiment():
    exp = suite_experiment(["paper"])
    assert [m.name for m in exp.methods] == ["base (unaligned)", "vanilla", "RLAIF", "RLCD",
                                             "RAIN", "UDASA"]
    assert next(m for m in exp.methods if m.kind == "rain").limit == 30
    some = suite_experiment(["rlaif", "rain"])
    assert [m.kind for m in some.methods] == ["rlaif", "rain"]
    assert [t.methods for t in some.tasks if t.methods] == [["RAIN"]]


@pytest.mark.parametrize("name", ["cpu", "cpu-ablations", "paper", "gpu-small"])
def test_shipped_experiments_load_and_name_existing_files(name):
    from evals.experiment import resolve_path

    exp = load_experiment(REPO / "configs" / "experiments" / f"{name}.yaml")
    for m in exp.methods:
        if m.config:
            assert resolve_path(exp, m.config).is_file()
    for t in exp.tasks:
        if t.data:
            assert resolve_path(exp, t.data).is_file()


@pytest.mark.parametrize("change, message", [
    ({"methods": [{"name": "x", "kind": "nope"}]}, r"methods\[0\]\.kind: 'nope' is not one of"),
    ({"tasks": [{"name": "nope"}]}, r"tasks\[0\]\.name: unknown task 'nope'"),
    ({"methods": [{"name": "a", "kind": "base"}, {"name": "a", "kind": "base"}]},
     r"duplicate names \['a'\]"),
    ({"tasks": [{"name": "harmlessness", "limit": "many"}]},
     r"tasks\[0\]\.limit: expected int"),
    ({"tasks": [{"name": "harmlessness", "methods": ["ghost"]}]},
     r"tasks\[0\]\.methods: no method named \['ghost'\]"),
])
def test_a_bad_experiment_file_names_the_field(tmp_path, change, message):
    data = {"methods": [{"name": "base", "kind": "base"}], "tasks": [{"name": "harmlessness"}]}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data | change))
    with pytest.raises(ConfigError, match=message):
        load_experiment(path)


def test_cli_bad_experiment_is_one_line_and_exit_2(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("methods: [{name: a, kind: base}]\ntasks: [{name: harmlessness, lim: 3}]\n")
    assert main(["run", "--experiment", str(path), "--workspace", str(tmp_path)]) == 2
    out = capsys.readouterr().out
    assert "tasks[0].lim: unknown field" in out and "Traceback" not in out


def test_tasks_option_keeps_every_entry_of_a_task():
    """`--tasks robustness` runs both robustness entries of the CPU experiment (transfer and
    white-box), so the experiment can be split by task into runs."""
    from evals.cli import _experiment, build_parser

    args = build_parser().parse_args(["run", "--suite", "paper", "--tasks", "robustness",
                                      "sentiment"])
    exp = _experiment(args)
    assert [t.name for t in exp.tasks] == ["robustness", "robustness", "sentiment"]
    assert [t.limit for t in exp.tasks] == [100, 10, 100]
    assert "whitebox" in exp.tasks[1].data
