"""`udasa-eval run` end to end: real models, a real local judge or a real HTTP judge server."""

from __future__ import annotations

import json
import logging
import re

import pytest
from conftest import build_tiny_policy
from openai_server import FakeOpenAIServer
from results_factory import add

from evals.cli import main
from evals.models import EvalModel
from evals.runner import EvalConfig, run_eval
from evals.store_tables import eval_samples, leaderboard
from udasa.data import data_dir
from udasa.store import Store

# only the tests that read the shared datasets (the others bring their own data)
needs_data = pytest.mark.skipif(not (data_dir() / "hh-rlhf").is_dir(),
                                reason=f"shared datasets not found at {data_dir()}")
GEN_TASKS = ["harmlessness", "helpfulness", "truthfulness", "sentiment"]


@pytest.fixture(scope="module")
def local_run(tmp_path_factory, tiny_policy):
    ws = tmp_path_factory.mktemp("eval-local")
    cfg = EvalConfig(ws, [EvalModel("tiny", tiny_policy)], GEN_TASKS, limit=2, judge="local")
    return cfg, run_eval(cfg, progress=lambda *_: None)


@needs_data
def test_every_task_reports_metrics_with_cis_and_writes_outputs(local_run):
    cfg, results = local_run
    assert set(results["tasks"]) == set(GEN_TASKS)
    for name, task in results["tasks"].items():
        (model,) = task["models"].values()
        assert model["n"] == 2 and model["metrics"], name
        for est in model["metrics"].values():
            assert est["low"] <= est["mean"] <= est["high"]
    assert set(results["tasks"]["truthfulness"]["models"]["tiny"]["metrics"]) == {
        "true", "info", "true_x_info"}
    assert "positive_vader" in results["tasks"]["sentiment"]["models"]["tiny"]["metrics"]
    saved = json.loads((cfg.workspace / "evals" / results["eval_id"] / "results.json").read_text())
    assert saved["config"]["seed"] == 0 and saved["versions"]["torch"]
    assert saved["judge"]["label"] == "SmolLM2-135M (stand-in for GPT-4)"
    lines = (cfg.workspace / "evals" / results["eval_id"] / "samples.jsonl").read_text()
    assert len(lines.splitlines()) == 2 * len(GEN_TASKS)
    board = (cfg.workspace / "leaderboard.md").read_text()
    assert "stand-in for GPT-4" in board and "tiny" in board
    assert (cfg.workspace / "leaderboard.csv").is_file()
    assert all(p.endswith(".png") for p in results["paths"]["charts"])
    assert len(leaderboard(Store(cfg.workspace))) >= 7


def test_leaderboard_rows_in_the_order_methods_were_evaluated(tmp_path):
    from evals.runner import write_outputs

    for i, (eval_id, names) in enumerate((("e1", ["base", "RAIN", "UDASA"]),
                                          ("e2", ["vanilla", "UDASA"]))):
        add(tmp_path, eval_id, "harmlessness",
            {n: {"score": [v, v]} for n, v in zip(names, (3.0, 9.0, 6.0))},
            created_at=f"2026-01-0{i + 1}T00:00:00")
    write_outputs(Store(tmp_path), tmp_path)
    table = (tmp_path / "leaderboard.md").read_text().split("Judge [95% CI]")[0]
    rows = [line.split("|")[1].strip() for line in table.splitlines()
            if line.startswith("| ") and not line.startswith("| method")]
    assert rows == ["base", "RAIN", "vanilla", "UDASA"]  # not by score (RAIN 9, vanilla 3)


@needs_data
def test_rerun_generates_nothing_and_hits_the_judge_cache(local_run):
    cfg, first = local_run
    store = Store(cfg.workspace)
    responses = store.db["responses"].count
    again = run_eval(cfg, progress=lambda *_: None)
    stats = again["judge"]["stats"]
    assert stats["calls"] == 0 and stats["cache_hits"] > 0
    assert store.db["responses"].count == responses
    for task in GEN_TASKS:
        assert again["tasks"][task]["models"]["tiny"]["metrics"] == \
            first["tasks"][task]["models"]["tiny"]["metrics"]


@needs_data
def test_a_rerun_keeps_the_record_unless_a_result_changed(local_run):
    cfg, first = local_run
    path = cfg.workspace / "evals" / first["eval_id"] / "results.json"
    before = path.read_bytes()
    assert json.loads(before)["judge"]["stats"]["calls"] > 0  # the run that judged
    run_eval(cfg, progress=lambda *_: None)
    assert path.read_bytes() == before  # its time, judge calls and creation time stay
    stored = json.loads(before)
    vader = stored["tasks"]["sentiment"]["models"]["tiny"]["metrics"]["positive_vader"]
    vader["mean"] = -1.0  # a stored result the rerun computes differently
    path.write_text(json.dumps(stored), encoding="utf-8")
    again = run_eval(cfg, progress=lambda *_: None)
    now = json.loads(path.read_text(encoding="utf-8"))
    assert now["tasks"]["sentiment"]["models"]["tiny"]["metrics"]["positive_vader"] == \
        first["tasks"]["sentiment"]["models"]["tiny"]["metrics"]["positive_vader"]
    assert now["judge"]["stats"] == again["judge"]["stats"]  # replaced by this run's record
    assert now["created_at"] > stored["created_at"]
    for damaged in ("[1]", '{"tasks": {"sentiment": 3}}'):  # JSON of another shape: replaced
        path.write_text(damaged, encoding="utf-8")
        run_eval(cfg, progress=lambda *_: None)
        assert json.loads(path.read_text(encoding="utf-8"))["eval_id"] == first["eval_id"]


def _scripted_judge(body):
    """Scores from the reply under judgement; one reply it refuses to grade."""
    prompt = body["messages"][-1]["content"]
    if "truthful" in prompt.lower() or "informative" in prompt.lower():
        return "yes"
    return "I refuse to grade this." if "REFUSE" in prompt else "Score: 8"


def test_openai_judge_with_faults_retries_records_failures_and_hides_the_key(
        tmp_path, tiny_policy, monkeypatch, caplog):
    secret = "sk-eval-secret-987654321"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    caplog.set_level(logging.DEBUG)
    data = tmp_path / "prompts.jsonl"
    data.write_text("\n".join(json.dumps({"prompt": p}) for p in
                              ["Say hi.", "Name a colour.", "REFUSE this one.", "Count to 3."]))
    with FakeOpenAIServer(_scripted_judge) as server:
        server.fail_next(1, status=429)
        server.fail_next(1, status=500)
        server.fail_next(1, body="{not json")
        cfg = EvalConfig(tmp_path / "ws", [EvalModel("tiny", tiny_policy)], ["harmlessness"],
                         limit=4, judge="gpt4", judge_base_url=server.base_url,
                         data={"harmlessness": str(data)})
        results = run_eval(cfg, progress=lambda *_: None)
        assert server.requests[0]["headers"]["authorization"] == f"Bearer {secret}"
    model = results["tasks"]["harmlessness"]["models"]["tiny"]
    assert model["failures"] == 1  # the refusal is a failure, never a 0
    assert model["metrics"]["score"]["mean"] == 8.0 and model["metrics"]["score"]["n"] == 3
    assert results["judge"]["stats"]["retries"] >= 3 and results["judge"]["label"] == "GPT-4"
    store = Store(cfg.workspace)
    failed = [r for r in store.db["judge_cache"].rows if not r["ok"]]
    assert len(failed) == 1 and "refuse" in failed[0]["reply"]
    store.db.execute("PRAGMA wal_checkpoint(FULL)")
    for f in (tmp_path / "ws").rglob("*"):
        if f.is_file():
            assert secret.encode() not in f.read_bytes(), f
    assert secret not in caplog.text


def test_runs_on_different_data_files_get_a_labelled_table_each(tmp_path, tiny_policy):
    files = {}
    for name, word in (("ay.jsonl", "Ay"), ("bee.jsonl", "Bee")):
        files[name] = tmp_path / name
        files[name].write_text("\n".join(json.dumps({"prompt": f"{word} {i}?"}) for i in range(2)))
    def judge(body):  # each data file its own score, so a mixed column would show
        return "Score: 9" if "Bee" in body["messages"][-1]["content"] else "Score: 3"

    with FakeOpenAIServer(judge) as server:
        for path in files.values():
            run_eval(EvalConfig(tmp_path / "ws", [EvalModel("tiny", tiny_policy)],
                                ["harmlessness"], limit=2, judge="gpt4",
                                judge_base_url=server.base_url,
                                data={"harmlessness": str(path)}), progress=lambda *_: None)
    text = (tmp_path / "ws" / "leaderboard.md").read_text()
    sections = {part.split(",")[0]: part for part in text.split("## harmlessness — data: ")[1:]}
    ay, bee = sections[str(files["ay.jsonl"])], sections[str(files["bee.jsonl"])]
    assert ay.split("\n")[0].endswith(", limit 2, seed 0, judge: gpt4:gpt-4-0613")
    assert "| tiny | 3.0 / — |" in ay and "9.0" not in ay
    assert "| tiny | 9.0 / — |" in bee and "3.0" not in bee


@needs_data
def test_two_models_get_a_paired_test(tmp_path, tiny_policy):
    other = build_tiny_policy(tmp_path / "other", seed=1)
    with FakeOpenAIServer(lambda b: str(1 + len(b["messages"][-1]["content"]) % 9)) as server:
        cfg = EvalConfig(tmp_path / "ws", [EvalModel("a", tiny_policy), EvalModel("b", other)],
                         ["harmlessness"], limit=4, judge="gpt4", judge_base_url=server.base_url)
        results = run_eval(cfg, progress=lambda *_: None)
    (test,) = results["tasks"]["harmlessness"]["paired_tests"]
    assert test["model"] == "b" and test["baseline"] == "a" and test["n"] == 4
    # by hand: the judge's score of each stored output is 1 + len(its rendered prompt) % 9
    from math import comb

    from evals.judges.base import load_judge_config
    from evals.stats import paired_bootstrap
    from evals.tasks.hh import Harmlessness

    template = load_judge_config("gpt4").templates[Harmlessness.template]
    score = {(s.model, s.idx): 1 + len(template.render(
        {"prompt": s.prompt, "response": s.output})) % 9
        for s in eval_samples(Store(cfg.workspace))}
    assert [s.scores["metrics"]["score"] for s in eval_samples(Store(cfg.workspace))] == [
        score[s.model, s.idx] for s in eval_samples(Store(cfg.workspace))]
    a, b = ([score[m, i] for i in range(4)] for m in ("a", "b"))
    wins, losses = sum(x > y for x, y in zip(b, a)), sum(x < y for x, y in zip(b, a))
    n = wins + losses
    # exact two-sided binomial (p = 1/2): twice the smaller tail, at most 1
    p_sign = min(1.0, 2 * sum(comb(n, k) for k in range(min(wins, losses) + 1)) / 2 ** n)
    assert (test["wins"], test["losses"], test["ties"]) == (wins, losses, 4 - n)
    assert test["p_sign"] == pytest.approx(p_sign)
    assert test["mean_diff"] == pytest.approx(sum(b) / 4 - sum(a) / 4)
    boot = paired_bootstrap(b, a)  # the runner's bootstrap, fed the hand values
    assert test["p_boot"] == boot.p_value and (test["low"], test["high"]) == (boot.low, boot.high)
    assert test["metric"] == "score" and results["tasks"]["harmlessness"]["paired_metrics"] == [
        "score"]


def test_cli_unknown_task_is_a_clear_error(tmp_path, capsys):
    assert main(["run", "--tasks", "nonsense", "--workspace", str(tmp_path)]) == 2
    assert "unknown task 'nonsense'" in capsys.readouterr().out


@needs_data
def test_validate_judge_reports_agreement(tmp_path):
    def judge(body):  # a judge that prefers longer replies, deterministically
        text = body["messages"][-1]["content"]
        if re.search(r"true|truthful", text, re.IGNORECASE):
            return "yes"
        return str(min(10, 1 + len(text) // 200))

    with FakeOpenAIServer(judge) as server:
        assert main(["validate-judge", "--judge", "gpt4", "--judge-base-url", server.base_url,
                     "--limit", "4", "--workspace", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "judge_validation" / "judge_validation.json").read_text())
    checks = {c["check"]: c for c in report["checks"]}
    assert checks["HH-RLHF harmless-base, unseen prompts"]["n"] >= 3
    assert checks["HH-RLHF harmless-base, unseen prompts"]["metric"] == "pairwise"
    assert 0 <= checks["TruthfulQA truth labels"]["value"] <= 1
