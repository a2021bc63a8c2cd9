"""`udasa-eval tables` and `udasa-eval premise` on a real store with known results."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from openai_server import FakeOpenAIServer
from results_factory import add

from evals.cli import main
from evals.premise import (
    _rho_panel,
    plot_premise,
    premise_group_markdown,
    premise_markdown,
    premise_stats,
    same_replies,
)
from evals.tables import load_paper_results
from udasa.errors import ConfigError
from udasa.records import Prompt
from udasa.store import Store
from udasa.store_records import FusedScore, PreferencePair, Response


def test_every_paper_table_has_one_paper_value_per_column():
    tables, fig2 = load_paper_results()
    assert [t.id for t in tables] == ["table1", "table2", "table5", "imdb", "table6", "table7"]
    assert fig2.paper_best == (0.4, 0.7)
    udasa = next(r for r in tables[1].rows if r.id == "UDASA")
    assert udasa.paper == ("7.9 / 7.9", "8.0 / 8.4", "7.7 / 7.5", "7.5 / 7.6")


def test_a_paper_row_with_a_missing_value_names_its_table(tmp_path):
    src = (load_paper_results.__defaults__[0]).read_text(encoding="utf-8")
    bad = tmp_path / "results.yaml"
    bad.write_text(src.replace('paper: ["5.9", "6.1", "64.3", "71.8"]', 'paper: ["5.9"]'))
    with pytest.raises(ConfigError, match=r"table table1: rows \['One-stage'\]"):
        load_paper_results(bad)


def test_tables_show_ours_with_ci_and_n_beside_the_paper(tmp_path, capsys):
    rows = {"base (unaligned)": ["base"], "UDASA": ["UDASA"], "RLAIF": ["RLAIF"],
            "RLCD": ["RLCD"], "UDASA tau=0.3/0.6": ["tau=0.3/0.6"],
            "UDASA tau=0.4/0.7": ["tau=0.4/0.7"], "UDASA tau=0.4/0.6": ["tau=0.4/0.6"]}
    add(tmp_path, "e1", "harmlessness", {
        "base (unaligned)": {"score": [3.0, 3.0]}, "UDASA": {"score": [4.0, 4.4]},
        "UDASA tau=0.3/0.6": {"score": [4.0, 4.0]}, "UDASA tau=0.4/0.7": {"score": [4.6, 4.6]},
        "UDASA tau=0.4/0.6": {"score": [4.6, 4.6]}}, judge="J1", paper_rows=rows)
    add(tmp_path, "e2", "helpfulness", {"RLAIF": {"score": [4.0, 4.0]},
                                        "RLCD": {"score": [4.5, 4.5]}},
        judge="J1", paper_rows=rows)
    add(tmp_path, "e3", "helpfulness", {"UDASA": {"score": [5.0, 5.0]}}, judge="J2",
        paper_rows=rows, created_at="2026-02-01T00:00:00")
    # a method named like a paper row but not filling it (no paper_rows): not in the tables
    add(tmp_path, "e4", "truthfulness", {"UDASA": {"true_x_info": [50.0, 50.0]}})
    assert main(["tables", "--workspace", str(tmp_path)]) == 0
    md = (tmp_path / "tables.md").read_text()
    table2 = md.split("## Table 2")[1].split("\n## ")[0]
    cells = {r[0].strip(): [c.strip() for c in r[1:]] for r in
             (line.strip("| ").split("|") for line in table2.splitlines()) if len(r) == 7}
    # a column takes one setting, the one holding most rows (J1: RLAIF and RLCD), and names
    # the other (UDASA's J2 cell is not mixed in)
    assert cells["UDASA"] == ["4.2 [3.7, 4.7] n=2", "—", "7.9 / 7.9", "8.0 / 8.4",
                              "7.7 / 7.5", "7.5 / 7.6"]
    assert cells["RLCD"][:2] == ["—", "4.5 [4.0, 5.0] n=2"]
    assert cells["base (unaligned)"][:3] == ["3.0 [2.5, 3.5] n=2", "—", "6.1 / 6.3"]
    assert ("Helpful: helpfulness / score; data: default, limit 50, seed 0, judge: J1; "
            "RLAIF = RLAIF, RLCD = RLCD; also stored in 1 other setting(s), not mixed in "
            "(leaderboard.md has a table each): data: default, limit 50, seed 0, judge: J2\n"
            ) in md
    assert "Ours ties for highest (4.60) at tau1 = 0.4, tau2 = 0.6 and tau1 = 0.4, " \
           "tau2 = 0.7." in md
    assert "True + Info: nothing stored yet" in md
    csv = pd.read_csv(tmp_path / "tables" / "table2.csv")
    assert csv.set_index("method").loc["RLAIF", "ours: Helpful"] == "4.0 [3.5, 4.5] n=2"
    assert list(csv.columns) == ["method", "ours: Harmless", "ours: Helpful",
                                 "paper: Harmless 7B", "paper: Harmless 30B",
                                 "paper: Helpful 7B", "paper: Helpful 30B"]
    assert (tmp_path / "tables" / "table2.png").stat().st_size > 1000
    assert (tmp_path / "tables" / "figure2.png").stat().st_size > 1000
    assert not (tmp_path / "tables" / "table6.png").exists()  # nothing stored: no picture
    assert "6 CSVs, 2 PNGs" in capsys.readouterr().out


def fused_row(rid: str, pid: str, u: float, sem: float, run_id: str = "r") -> FusedScore:
    return FusedScore(run_id=run_id, response_id=rid, prompt_id=pid, u=u, weights={},
                      components={"sem": sem})


def test_premise_statistics_equal_hand_values():
    fused = [fused_row("a", "p1", 0.1, 0.4), fused_row("b", "p1", 0.2, 0.3),
             fused_row("c", "p2", 0.3, 0.2), fused_row("d", "p2", 0.4, 0.1),
             fused_row("e", "p2", 0.5, 0.0)]
    scores = {"a": 9, "b": 7, "c": 8, "d": 2, "e": None}  # e: a judge failure
    pairs = [PreferencePair(run_id="r", prompt_id=p, chosen_id=c, rejected_id=r)
             for p, c, r in (("p1", "a", "b"), ("p2", "c", "d"), ("p2", "c", "e"))]
    out = premise_stats(fused, pairs, scores)
    assert (out["responses"], out["judged"], out["failures"]) == (5, 4, 1)
    # u ranks 1 2 3 4, score ranks 4 2 3 1: d = -3 0 0 3, rho = 1 - 6*18 / (4*15) = -0.8
    assert out["correlations"]["u"]["rho"] == pytest.approx(-0.8)
    assert out["correlations"]["sem"]["rho"] == pytest.approx(0.8)
    assert out["correlations"]["u"]["prompts"] == 2
    pw = out["pairs"]
    assert (pw["wins"], pw["losses"], pw["ties"], pw["n"]) == (2, 0, 0, 2)
    assert pw["win_rate"] == 100.0


def test_premise_command_judges_a_stored_run(tmp_path, capsys):
    store = Store(tmp_path)
    prompts = [Prompt(f"question {i}", "test") for i in range(3)]
    store.upsert_run("run1", "t", {}, {})
    store.add_prompts("run1", prompts)
    fused, responses, pairs = [], [], []
    for i, p in enumerate(prompts):
        for k in range(3):  # longer reply, lower u; the judge scores by length
            rid = f"r{i}{k}"
            responses.append(Response(id=rid, gen_key="g", prompt_id=p.id, sample_index=k,
                                      text="word " * (k + 1 + i), model="m"))
            fused.append(fused_row(rid, p.id, 0.9 - 0.3 * k, 0.5, run_id="run1"))
        pairs.append(PreferencePair(run_id="run1", prompt_id=p.id, chosen_id=f"r{i}2",
                                    rejected_id=f"r{i}0", u_chosen=0.3, u_rejected=0.9,
                                    delta=0.6, stage=1, soft_label=1.0))
    store.add_responses(responses)
    store.replace_pairs("run1", fused, pairs)

    def judge(body):
        reply = body["messages"][-1]["content"].split("[Assistant reply]")[1]
        return str(reply.count("word"))

    with FakeOpenAIServer(judge) as server:
        assert main(["premise", "--workspace", str(tmp_path), "--run", "run", "--templates",
                     "helpful", "--judge", "gpt4", "--judge-base-url", server.base_url]) == 0
    (path,) = (tmp_path / "premise").glob("*.json")
    out = json.loads(path.read_text())
    assert out["judged"] == 9 and out["failures"] == 0
    # scores k + 1 + i against u = 0.9 - 0.3 k: scipy's rho on these nine values
    from scipy.stats import spearmanr
    u = [0.9 - 0.3 * k for i in range(3) for k in range(3)]
    s = [k + 1 + i for i in range(3) for k in range(3)]
    assert out["correlations"]["u"]["rho"] == pytest.approx(spearmanr(u, s).statistic)
    assert out["correlations"]["u"]["rho"] < -0.7
    assert out["pairs"]["wins"] == 3 and out["pairs"]["losses"] == 0
    assert main(["tables", "--workspace", str(tmp_path)]) == 0
    md = (tmp_path / "tables.md").read_text()
    assert "Chosen beats rejected by the judge: 100.0%" in md
    png = tmp_path / "tables" / f"premise-{path.stem}.png"  # beside its section, linked
    premise = md.split("## Premise")[1]
    assert f"](tables/{png.name})" in premise and png.read_bytes()[:4] == b"\x89PNG"
    assert "6 CSVs, 1 PNGs" in capsys.readouterr().out  # the premise figure is counted


def test_premise_on_an_unknown_run_is_a_one_line_error(tmp_path, capsys):
    Store(tmp_path)
    assert main(["premise", "--workspace", str(tmp_path), "--run", "nope"]) == 2
    assert "--run: 0 runs match 'nope'" in capsys.readouterr().out


def test_premise_figure_draws_each_uncertainty_and_names_a_constant_one(tmp_path):
    import matplotlib.pyplot as plt

    fused = [FusedScore(run_id="r", response_id=f"{p}{k}", prompt_id=p, u=0.1 * k + 0.05 * i,
                        weights={}, components={"sem": 0.3 * k, "val": 0.2})
             for i, p in enumerate("abc") for k in range(3)]
    scores = {f"{p}{k}": 8 - 3 * k + i for i, p in enumerate("abc") for k in range(3)}
    pairs = [PreferencePair(run_id="r", prompt_id=p, chosen_id=f"{p}0", rejected_id=f"{p}2")
             for p in "abc"]
    result = {"run_id": "0123456789abcdef", "judge": "J $x$", "template": "harmless"} | \
        premise_stats(fused, pairs, scores)
    assert math.isnan(result["correlations"]["val"]["rho"])  # U_val is constant
    png = plot_premise(result, tmp_path / "fig" / "premise.png")
    assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 5000
    fig, ax = plt.subplots()
    _rho_panel(ax, result["correlations"])
    ticks = [t.get_text() for t in ax.get_yticklabels()]
    assert ticks == ["u\nn=9", "sem\nn=9", "val\n(constant: no rho)"]
    assert len(ax.containers) == 2  # an error bar for u and sem, none for val
    plt.close(fig)
    assert ("| val | undefined (one side is constant) | — | 0 (3) | undefined (one side is "
            "constant) | — | 9 |") in premise_markdown(result)



def test_runs_that_score_the_same_replies_share_one_premise_table_and_keep_their_pairs():
    fused = [FusedScore(run_id="r", response_id=f"{p}{k}", prompt_id=p, u=0.1 * k + 0.05 * i,
                        weights={}, components={"sem": 0.3 * k})
             for i, p in enumerate("abc") for k in range(3)]
    scores = {f"{p}{k}": 8 - 3 * k + i for i, p in enumerate("abc") for k in range(3)}

    def result(run, method, chosen, rejected, judged=scores):
        pairs = [PreferencePair(run_id="r", prompt_id=p, chosen_id=f"{p}{chosen}",
                                rejected_id=f"{p}{rejected}") for p in "abc"]
        return {"run_id": run, "judge": "J", "template": "harmless", "method": method} | \
            premise_stats(fused, pairs, judged)

    method = result("aaaaaaaaaaaa01", "UDASA", 0, 2)
    control = result("bbbbbbbbbbbb01", "UDASA random pairs", 2, 0)  # same replies, other pairs
    other = result("cccccccccccc01", "RLAIF", 0, 2, {k: -v for k, v in scores.items()})
    groups = same_replies([control, other, method])
    assert [[r["method"] for r in g] for g in groups] == [["UDASA", "UDASA random pairs"],
                                                          ["RLAIF"]]
    md = premise_group_markdown(groups[0])
    assert md.startswith("### UDASA (run aaaaaaaaaaaa), UDASA random pairs (run bbbbbbbbbbbb): "
                         "judge J, template `harmless`")
    assert md.count("| uncertainty |") == 1  # the shared table once
    assert "| UDASA (run aaaaaaaaaaaa) | 100.0% [43.9, 100.0] | 3 / 0 / 0 | 0.25 |" in md
    assert "| UDASA random pairs (run bbbbbbbbbbbb) | 0.0% [0.0, 56.1] | 0 / 3 / 0 | 0.25 |" in md
    assert premise_group_markdown(groups[1]) == premise_markdown(other)
    assert premise_markdown(other).startswith("### RLAIF (run cccccccccccc): judge J")

METRICS = {"harmlessness": ["score"], "helpfulness": ["score"],
           "truthfulness": ["true_x_info", "true", "info"],
           "sentiment": ["positive_judge", "positive_vader"], "truthfulqa_mc": ["mc1", "mc2"]}
ASR = {"white-box": "asr_whitebox_prefix", "transfer-published": "asr_transfer_prefix",
       "transfer": "asr_transfer_optimised_prefix"}


def synthetic_results(exp, ws) -> None:
    """Each method of an experiment file on each task it is listed for, as `udasa-eval run
    --experiment` would record it (values made up, the identities and paper rows real)."""
    from evals.experiment import resolve_path
    from evals.tasks.robustness import load_robustness_config

    for i, task in enumerate(exp.tasks):
        specs = [m for m in exp.methods if (m.tasks is None or task.name in m.tasks)
                 and (task.methods is None or m.name in task.methods)]
        metrics = METRICS.get(task.name) or [
            ASR[load_robustness_config(str(resolve_path(exp, task.data))).mode]]
        add(ws, f"e{i}", task.name, {m.name: {k: [50.0, 60.0] for k in metrics} for m in specs},
            experiment=exp.name, data=task.data or "default", limit=task.limit,
            paper_rows={m.name: m.paper_rows for m in specs})


# the paper's cells each shipped file has a method for: table -> rows x columns filled
FILLED = {
    "paper": {"table2": 4 * 2, "table5": 3 * 3, "imdb": 3, "table6": 3 * 2},
    "gpu-small": {"table2": 4 * 2, "table5": 3 * 3, "imdb": 3, "table6": 3},  # no white-box
    "cpu": {"table2": 4 * 2, "table5": 3 * 3, "imdb": 3, "table6": 3 * 2},
    "cpu-ablations": {"table1": 4 * 4, "table7": 4 * 4}}


@pytest.mark.parametrize("name", sorted(FILLED))
def test_each_shipped_experiment_fills_every_paper_cell_it_has_a_method_for(name, tmp_path):
    from evals.experiment import load_experiment
    from evals.results import load_results
    from evals.tables import build_table, figure2_grid

    exp = load_experiment(f"configs/experiments/{name}.yaml")
    synthetic_results(exp, tmp_path)
    results = load_results(tmp_path)
    tables, fig2 = load_paper_results()
    got = {spec.id: sum(c is not None for row in build_table(spec, results).cells for c in row)
           for spec in tables}
    assert got == {spec.id: FILLED[name].get(spec.id, 0) for spec in tables}
    assert figure2_grid(fig2, results).size == (4 if name == "cpu-ablations" else 0)
