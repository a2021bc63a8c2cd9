"""The whole loop on the embedded models: run, resume, idempotence, bad input, export."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, small_overrides

from udasa.cli import main
from udasa.config import load_config
from udasa.pipeline import Pipeline
from udasa.store import Store

CONFIG = REPO / "configs" / "cpu-demo.yaml"


def dump(path: Path) -> dict[str, list]:
    """Every row of every table of a store, for before/after comparisons."""
    with sqlite3.connect(path) as conn:
        tables = [r[0] for r in conn.execute("select name from sqlite_master where type='table'")]
        return {t: sorted(map(repr, conn.execute(f"select * from {t}"))) for t in tables}


def pair_texts(workspace: Path) -> list[tuple]:
    store = Store(workspace)
    run = store.latest_run()
    return [(p.prompt, p.chosen, p.rejected, round(p.delta, 9), p.stage)
            for p in store.pairs(run.id)]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One small real run through the CLI, shared by the tests that only read it."""
    ws = tmp_path_factory.mktemp("ws")
    args = ["run", "--config", str(CONFIG), "--workspace", str(ws)]
    for item in small_overrides(limit=4):
        args += ["--set", item]
    assert main(args) == 0
    return ws


@pytest.mark.slow
def test_run_fills_every_table_and_draws_the_histogram(finished):
    store = Store(finished)
    run = store.latest_run()
    assert run.status == "pairs-ready"
    cfg = run.config
    manifest = run.manifest
    assert cfg["generation"]["n"] == 5 and manifest["seed"] == 0
    assert manifest["versions"]["torch"] and manifest["policy"]["sha256"]
    assert set(manifest["scorers"]) == {"sem", "fact", "val"}
    prompts = store.run_prompts(run.id)
    assert len(prompts) == 4
    responses = store.db["responses"].count
    assert responses == 4 * 5
    assert store.db["scores"].count == 3 * responses
    fused = store.fused(run.id)
    assert len(fused) == responses and all(0 <= f.u <= 1 for f in fused)
    pairs = store.pairs(run.id)
    assert 1 <= len(pairs) <= 4
    for p in pairs:
        assert p.delta == pytest.approx(p.u_rejected - p.u_chosen) and p.delta > 0
        assert p.stage in (1, 2, 3) and p.chosen != p.rejected
    stages = store.stages(run.id)
    assert [s.name for s in stages] == ["conservative", "moderate", "exploratory"]
    assert sum(s.count for s in stages) == len(pairs)
    png = finished / "plots" / f"delta_hist_{run.id}.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_scores_record_scorer_name_and_version(finished):
    rows = list(Store(finished).db["scores"].rows)
    assert {(r["axis"], r["scorer"]) for r in rows} == {
        ("sem", "sbert"), ("fact", "nli-lr"), ("val", "profanity")}
    assert all(r["version"] for r in rows)
    sem = [json.loads(r["details"]) for r in rows if r["axis"] == "sem"]
    assert all("prompt_level" in d for d in sem)


@pytest.mark.slow
def test_rerun_does_no_work_and_changes_nothing(finished):
    before = dump(finished / Store.FILENAME)
    cfg = load_config(CONFIG, small_overrides(limit=4))
    reports = Pipeline(cfg, finished).run_all()
    assert reports["generate"].done == 0 and reports["score"].done == 0
    after = dump(finished / Store.FILENAME)
    for table in ("prompts", "responses", "scores", "pairs", "fused", "stages"):
        assert before[table] == after[table]


@pytest.mark.slow
def test_changing_fusion_reuses_generation_and_scores(finished):
    cfg = load_config(CONFIG, small_overrides(limit=4) + ["fusion.method=mean"])
    reports = Pipeline(cfg, finished).run_all()
    assert reports["generate"].done == 0 and reports["score"].done == 0
    assert reports["pairs"].done >= 1
    assert len(Store(finished).runs()) == 2
    # each step's wall time, in the report and in the run's stored summary
    assert all(r.seconds is not None and r.seconds >= 0 for r in reports.values())
    run = Store(finished).get_run(Pipeline(cfg, finished).run_id)
    assert set(run.summary["seconds"]) == set(reports)


@pytest.mark.slow
def test_export_pairs_loads_into_trl_dpo_trainer(finished, tmp_path):
    """The exported JSONL trains a (tiny) policy with TRL's DPOTrainer as-is."""
    from datasets import load_dataset
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM
    from trl import DPOConfig, DPOTrainer

    from udasa.models import resolve_model

    out = tmp_path / "pairs"
    assert main(["export-pairs", "--workspace", str(finished), "--out", str(out)]) == 0
    files = sorted(out.glob("stage-*.jsonl"))
    assert [f.name.split("-", 2)[2] for f in files] == [
        "conservative.jsonl", "moderate.jsonl", "exploratory.jsonl"]
    rows = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    assert rows and rows[0]["prompt"][0]["role"] == "user"  # SmolLM2 has a chat template
    assert rows[0]["chosen"][0]["role"] == "assistant"
    data = load_dataset("json", data_files=[str(f) for f in files if f.stat().st_size],
                        split="train")
    tok = AutoTokenizer.from_pretrained(resolve_model("embedded"))
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32,
                                         intermediate_size=64, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=2,
                                         max_position_embeddings=1024))
    ref = LlamaForCausalLM(model.config)
    ref.load_state_dict(model.state_dict())
    args = DPOConfig(output_dir=str(tmp_path / "dpo"), max_steps=1, per_device_train_batch_size=2,
                     use_cpu=True, bf16=False, activation_checkpointing=False, report_to=[],
                     max_length=256, logging_steps=1, save_strategy="no")
    trainer = DPOTrainer(model=model, ref_model=ref, args=args, train_dataset=data,
                         processing_class=tok)
    result = trainer.train()
    assert result.global_step == 1


@pytest.mark.slow
def test_each_step_runs_alone_in_order(tmp_path):
    base = ["--config", str(CONFIG), "--workspace", str(tmp_path)]
    sets = [a for item in small_overrides(limit=2) for a in ("--set", item)]
    assert main(["pairs", *base, *sets]) == 2  # nothing generated yet: a clear error
    for step in ("generate", "score", "pairs", "stages"):
        assert main([step, *base, *sets]) == 0
    store = Store(tmp_path)
    assert len(store.pairs(store.latest_run().id)) >= 1


@pytest.mark.slow
def test_resume_after_kill_gives_the_same_pairs(tmp_path):
    """Kill `udasa run` mid-generation, start it again: same pairs as an uninterrupted run.

    The killed run packs one prompt per batch (a small generation.batch_tokens), the resumed
    and the clean runs the default: sampled outputs depend on neither batch size nor batch
    companions, and the batch size is not part of any key."""
    sets = [a for item in small_overrides(limit=5) for a in ("--set", item)]
    cmd = [sys.executable, "-m", "udasa.cli", "run", "--config", str(CONFIG), *sets]
    env = os.environ | {"PYTHONUNBUFFERED": "1"}
    killed = tmp_path / "killed"
    proc = subprocess.Popen([*cmd, "--workspace", str(killed), "--set",
                             "generation.batch_tokens=200"], env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = killed / Store.FILENAME
    deadline = time.time() + 300
    count = 0
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
        if db.exists():
            try:
                with sqlite3.connect(db, timeout=1) as conn:
                    count = conn.execute("select count(*) from responses").fetchone()[0]
            except sqlite3.OperationalError:
                continue
            if count >= 5:
                break
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with sqlite3.connect(db) as conn:
        partial = conn.execute("select count(*) from responses").fetchone()[0]
        assert conn.execute("select count(*) from pairs").fetchone()[0] == 0
    assert 5 <= partial < 25 and partial % 5 == 0  # whole prompts only, never half a prompt
    resumed = subprocess.run([*cmd, "--workspace", str(killed)], check=False, env=env, cwd=REPO,
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"{partial // 5} reused" in resumed.stdout
    clean = tmp_path / "clean"
    assert main(["run", "--config", str(CONFIG), "--workspace", str(clean), *sets]) == 0
    assert pair_texts(killed) == pair_texts(clean)
