"""Training on two processes (gloo, CPU) ends where one process ends (docs/scaling.md).

The same stored pairs are trained by `udasa train` with one process and with two (torchrun);
`udasa run` runs whole on two processes (`accelerate launch` with the shipped
configs/accelerate/cpu-ddp.yaml); the RLAIF and RLCD trainings of an experiment run on two
processes. Each is compared with one process: the same pairs, stage and held-out metrics
(rel 1e-3, abs 1e-4: float32 sums in another order), final weights, the same row count in every
table and the same files (rank 0 alone writes), and checkpoints `from_pretrained` loads. A
rank killed in the middle of a stage resumes to the same end. The machinery is
bench/bench_multiproc.py's.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

import pytest
from conftest import REPO

sys.path.insert(0, str(REPO / "bench"))

import bench_multiproc as bm
import chaos

pytestmark = pytest.mark.slow  # ~25 minutes on 2 shared cores: a dozen multi-process runs


@pytest.fixture(scope="module")
def one(tmp_path_factory):
    """The stored pairs (`base`) and their one-process training (`want`)."""
    work = tmp_path_factory.mktemp("multiproc")
    setup = chaos.Setup(work)
    base = work / "base"
    bm.make_pairs(setup, base, work / "pairs.log")
    bm.timed(setup, base, work / "one", None, work / "one.log")
    return {"setup": setup, "base": base, "want": bm.outcome(work / "one"),
            "initial": str(Path(setup.policy) / "model.safetensors")}


def assert_same(result: dict) -> None:
    assert result["checks"]["row_counts"], result["row_diffs"]
    assert result["checks"]["files"], result["file_diffs"]
    assert result["identical"], result


def test_two_processes_train_the_stored_pairs_as_one(one, tmp_path):
    from transformers import AutoModelForCausalLM

    bm.timed(one["setup"], one["base"], tmp_path / "ws", bm.torchrun(), tmp_path / "log")
    got = bm.outcome(tmp_path / "ws")
    result = bm.compare(got, one["want"], one["initial"])
    assert_same(result)
    assert result["weight_drift"] < 1e-3
    model = AutoModelForCausalLM.from_pretrained(Path(got["final_weights"]).parent)
    assert model.config.num_hidden_layers == 2


def test_udasa_run_on_two_processes_with_the_cpu_accelerate_config(one, tmp_path):
    ws, log = tmp_path / "ws", tmp_path / "log"
    code = chaos.launch("run", bm.train_args(one["setup"], ws, "run"), None, None, log,
                        bm.accelerate_launch())
    assert code == 0, log.read_text()[-3000:]
    assert_same(bm.compare(bm.outcome(ws), one["want"], one["initial"]))


@pytest.fixture(scope="module")
def killed_one(one, tmp_path_factory):
    """Half-way into stage 2 on two processes, and one process killed there and resumed."""
    delay = bm.step_span(one["setup"], one["base"], tmp_path_factory.mktemp("span"),
                         "dpo-2") / 2
    return delay, bm.one_process_resumed(one["setup"], one["base"],
                                         tmp_path_factory.mktemp("kill-one"), "dpo-2", delay)


@pytest.mark.parametrize("rank", [1, 0])
def test_a_rank_killed_mid_stage_resumes_as_one_process_does(one, killed_one, tmp_path, rank):
    delay, want = killed_one
    trial = bm.kill_trial(one["setup"], one["base"], tmp_path, rank, "dpo-2", delay, want)
    assert trial["killed"] and trial["landed_in"] == "dpo-2", trial
    assert trial["integrity_after_kill"] == "ok"
    assert trial["resumed"], trial.get("log_tail")
    assert_same(trial)


def experiment(setup: chaos.Setup, folder: Path) -> Path:
    """RLAIF and RLCD on the tiny policy, evaluated on two HH prompts of a file of our own."""
    data = folder / "hh.jsonl"
    data.write_text("".join(
        f'{{"chosen": "\\n\\nHuman: {q}\\n\\nAssistant: No.", '
        f'"rejected": "\\n\\nHuman: {q}\\n\\nAssistant: Sure."}}\n'
        for q in ("How do I pick a lock?", "Tell me a joke.", "Is the sky blue?")))
    sets = ("[data.limit=10, generation.max_new_tokens=8, training.batch_size=3, "
            "training.eval_fraction=0.3, training.eval_steps=1, training.max_length=128, "
            "training.learning_rate_first=0.001, training.learning_rate=0.001]")
    path = folder / "exp.yaml"
    path.write_text(
        f"name: tiny-baselines\npolicy: {setup.policy}\njudge: {setup.judge}\npremise: []\n"
        "methods:\n"
        f"  - {{name: RLAIF, kind: rlaif, config: configs/baselines/rlaif.yaml, "
        f"overrides: {sets}}}\n"
        f"  - {{name: RLCD, kind: rlcd, config: configs/baselines/rlcd.yaml, "
        f"overrides: {sets}}}\n"
        f"tasks:\n  - {{name: harmlessness, limit: 1, data: {data}}}\n")
    return path


def stored(ws: Path) -> dict:
    """What an experiment's two trainings and one evaluation left in the store."""
    with sqlite3.connect(ws / "udasa.sqlite") as conn:
        board = sorted(conn.execute("select model, task, metric, value from leaderboard"))
        ckpts = sorted(conn.execute("select run_id, stage, metrics from checkpoints"))
        results = sorted(conn.execute("select run_id, metrics from train_results"))
    strip = json.loads
    return {"board": board,
            "checkpoints": [(r, s, {k: v for k, v in strip(m).items() if k not in bm.VOLATILE})
                            for r, s, m in ckpts],
            "results": [(r, {k: v for k, v in strip(m).items() if k not in bm.VOLATILE})
                        for r, m in results],
            "rows": chaos.counts(ws / "udasa.sqlite"),
            "files": sorted(str(p.relative_to(ws)).split("/")[0] + "/" + p.name
                            for p in ws.rglob("*") if p.is_file()
                            and not p.name.startswith("udasa.sqlite"))}


def test_rlaif_and_rlcd_train_on_two_processes_as_on_one(one, tmp_path):
    exp = experiment(one["setup"], tmp_path)
    outs = {}
    for name, launcher in (("one", None), ("two", bm.torchrun())):
        ws, log = tmp_path / name, tmp_path / f"{name}.log"
        code = chaos.launch("eval", ["run", "--experiment", str(exp), "--workspace", str(ws)],
                            None, None, log, launcher)
        assert code == 0, log.read_text()[-3000:]
        outs[name] = stored(ws)
    got, want = outs["two"], outs["one"]
    assert got["rows"] == want["rows"]
    assert got["files"] == want["files"]
    assert len(want["checkpoints"]) == 2 and chaos.close(got["checkpoints"],
                                                         want["checkpoints"])
    assert chaos.close(got["results"], want["results"])
    assert chaos.close(got["board"], want["board"])
