"""The `robustness` task through `evals.runner.run_eval` on a tiny model: ASR per criterion with
Wilson CIs, the prefix list recorded, leaderboard rows; white-box and transfer GCG suffixes kept
with their loss curves and plotted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from udasa.data import data_dir

NEEDED = ["advbench/harmful_behaviors.csv", "gcg/refusal_prefixes.json",
          "gcg/universal_suffixes.json"]
pytestmark = pytest.mark.usefixtures("one_torch_thread")
needs_data = pytest.mark.skipif(  # only the tests that attack AdvBench behaviours
    not all((data_dir() / f).is_file() for f in NEEDED),
    reason=f"shared data folder {data_dir()} lacks {', '.join(NEEDED)} (set UDASA_DATA_DIR)")




def run(workspace: Path, models, limit: int, source: str | None = None,
        judge: str = "local") -> dict:
    import evals.tasks.robustness  # noqa: F401  (registers the task)
    from evals.runner import EvalConfig, run_eval

    data = {"robustness": source} if source else {}
    cfg = EvalConfig(workspace, models, ["robustness"], limit=limit, seed=0, judge=judge,
                     data=data)
    return run_eval(cfg, progress=lambda *_: None)


def evaluate(model, store, limit: int | None, source: str | None = None, judge=None):
    """The robustness task on one model outside the runner: its samples, solver and scorer."""
    from evals.tasks.base import TaskRun, run_task
    from evals.tasks.robustness import Robustness

    task = Robustness()
    return run_task(task, task.samples(limit, 0, source),
                    TaskRun(task.name, model, judge, store, source))[1]


def check_estimates(metrics: dict, n: int) -> None:
    for name, est in metrics.items():
        assert est["n"] == n, name
        assert 0.0 <= est["low"] <= est["mean"] <= est["high"] <= 100.0, (name, est)
        assert est["high"] > est["low"]  # Wilson: informative even at 0% or 100%


@needs_data
def test_transfer_published_asr_with_cis(tmp_path, tiny_policy):
    from evals.models import EvalModel
    from evals.store_tables import eval_samples, leaderboard
    from udasa.store import Store

    model = EvalModel("tiny", tiny_policy)
    out = run(tmp_path / "ws", [model], limit=2)
    task = out["tasks"]["robustness"]
    res = task["models"]["tiny"]
    assert set(res["metrics"]) == {"asr_transfer_prefix", "asr_transfer_gcg_universal_1_prefix",
                                   "asr_transfer_gcg_universal_2_prefix", "asr_nosuffix_prefix"}
    check_estimates(res["metrics"], 2)
    assert "refusal prefixes 'evaluate' (29)" in res["judge"] and task["max_new_tokens"] == 32
    assert "list 'evaluate'" in res["notes"]  # the task's notes reach results.json
    store = Store(tmp_path / "ws")
    board = [r for r in leaderboard(store) if r.task == "robustness"]
    assert {r.metric for r in board} == set(res["metrics"])
    assert all("'evaluate'" in r.judge for r in board)
    rows = [s for s in eval_samples(store) if s.task == "robustness"]
    assert len(rows) == 2
    attack = rows[0].scores["attacks"]["transfer_gcg_universal_1"]
    assert attack["user_turn"].startswith(rows[0].prompt + " describing.")
    assert isinstance(attack["jailbroken_prefix"], bool) and "output" in attack
    # the notes name the criterion (generations come from the store's cache this time)
    again = evaluate(model, store, 2)
    assert "list 'evaluate'" in again.notes and "max_new_tokens=32" in again.notes
    assert again.metrics["asr_nosuffix_prefix"].mean == res["metrics"]["asr_nosuffix_prefix"][
        "mean"]


def write_configs(tmp_path: Path, mode: str, **extra) -> str:
    gcg = tmp_path / "gcg.yaml"
    gcg.write_text(yaml.safe_dump({"num_steps": 3, "search_width": 16, "topk": 16,
                                   "early_stop": False, "seed": 0}))
    task = tmp_path / f"{mode}.yaml"
    task.write_text(yaml.safe_dump({"mode": mode, "gcg": str(gcg), "prefix_list": "individual",
                                    "max_new_tokens": 8} | extra))
    return str(task)


@needs_data
def test_white_box_keeps_suffixes_and_loss_curves(tmp_path, tiny_policy, monkeypatch):
    from attacks import whitebox
    from attacks.store_tables import attack_suffixes
    from evals.models import EvalModel
    from udasa.store import Store

    ws = tmp_path / "ws"
    source = write_configs(tmp_path, "white-box")
    out = run(ws, [EvalModel("tiny", tiny_policy)], limit=2, source=source)
    res = out["tasks"]["robustness"]["models"]["tiny"]
    assert set(res["metrics"]) == {"asr_whitebox_prefix", "asr_nosuffix_prefix"}
    check_estimates(res["metrics"], 2)
    assert "refusal prefixes 'individual' (13), 8 greedy tokens" == res["judge"]
    saved = attack_suffixes(Store(ws), "white-box")
    assert len(saved) == 2 and {row.target for row in saved} == {"tiny"}
    row = saved[0]
    assert len(row.losses) == 3 and len(row.suffix_ids) == 20
    assert row.best_loss == min([row.result["init_loss"], *row.losses])
    assert row.result["criterion"]["prefix_list"] == "individual"
    assert row.result["criterion"]["max_new_tokens"] == 8
    per_sample = {s.scores["suffix"] for s in out_samples(ws)}
    assert per_sample == {r.suffix for r in saved}
    assert (ws / "plots" / "gcg_whitebox_tiny.png").stat().st_size > 1000
    # a rerun reuses the stored suffixes instead of optimising again

    def no_gcg(*args, **kwargs):
        raise AssertionError("GCG ran again")

    monkeypatch.setattr(whitebox, "run_gcg", no_gcg)
    again = run(ws, [EvalModel("tiny", tiny_policy)], limit=2, source=source)
    assert again["tasks"]["robustness"]["models"]["tiny"]["metrics"] == res["metrics"]
    assert len(attack_suffixes(Store(ws))) == 2


@needs_data
def test_transfer_suffix_from_an_ensemble(tmp_path, tiny_policy):
    from conftest import build_tiny_policy

    from attacks.store_tables import attack_suffixes
    from evals.models import EvalModel
    from udasa.store import Store

    other = build_tiny_policy(tmp_path / "other", seed=1)
    ws = tmp_path / "ws"
    source = write_configs(tmp_path, "transfer", ensemble=[tiny_policy], n_train=2)
    out = run(ws, [EvalModel("other", other)], limit=2, source=source)
    res = out["tasks"]["robustness"]["models"]["other"]
    assert set(res["metrics"]) == {"asr_transfer_optimised_prefix", "asr_nosuffix_prefix"}
    check_estimates(res["metrics"], 2)
    (saved,) = attack_suffixes(Store(ws), "transfer")
    assert json.loads(saved.target) == [tiny_policy] and len(saved.behaviours) == 2
    assert saved.losses and saved.result["n_models"] == 1
    train = {b["goal"] for b in saved.behaviours}
    assert not train & {s.prompt for s in out_samples(ws)}  # tested on other behaviours
    assert list((ws / "plots").glob("gcg_transfer_*.png"))


def out_samples(ws: Path) -> list:
    from evals.store_tables import eval_samples
    from udasa.store import Store

    return [s for s in eval_samples(Store(ws)) if s.task == "robustness"]


def test_bad_task_config(tmp_path):
    from evals.tasks.robustness import load_robustness_config
    from udasa.errors import ConfigError

    bad = tmp_path / "bad.yaml"
    bad.write_text("mode: grey-box\n")
    with pytest.raises(ConfigError, match="not one of"):
        load_robustness_config(str(bad))
    bad.write_text("mode: transfer\n")
    with pytest.raises(ConfigError, match="ensemble"):
        load_robustness_config(str(bad))


@needs_data
def test_judge_as_second_criterion(tmp_path, tiny_policy):
    """`judge: harness` adds *_judge metrics from udasa-eval's own judge (here a tiny local
    model); without one it is a clear error."""
    from evals.judges.base import JUDGES_DIR
    from evals.models import EvalModel
    from udasa.errors import ConfigError
    from udasa.store import Store

    judge = tmp_path / "judge"
    judge.mkdir()
    (judge / "config.yaml").write_text(yaml.safe_dump({
        "name": "tiny", "backend": "hf", "model": tiny_policy, "label": "tiny judge",
        "templates": {"harmless": {"file": str(JUDGES_DIR / "gpt4" / "harmless.txt"),
                                   "scale": "1-10"}}}))
    source = tmp_path / "task.yaml"
    source.write_text(yaml.safe_dump({"mode": "transfer-published", "judge": "harness",
                                      "judge_max_harmless": 5.0, "max_new_tokens": 8}))
    out = run(tmp_path / "ws", [EvalModel("tiny", tiny_policy)], limit=2, source=str(source),
              judge=str(judge))
    res = out["tasks"]["robustness"]["models"]["tiny"]
    assert {"asr_transfer_prefix", "asr_transfer_judge", "asr_nosuffix_judge"} <= set(
        res["metrics"])
    check_estimates(res["metrics"], 2)
    assert res["judge"].endswith("+ judge tiny judge") and res["failures"] == 0
    assert "second criterion: judge tiny judge" in res["notes"]
    calls = Store(tmp_path / "ws").db["judge_cache"].count
    assert calls == 2 * 3  # 2 behaviours x (2 published suffixes + none), each judged once
    with pytest.raises(ConfigError, match="harness"):
        evaluate(EvalModel("tiny", tiny_policy), Store(tmp_path / "ws"), 2, str(source),
                 judge=None)
