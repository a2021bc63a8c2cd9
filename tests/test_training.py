"""Phased DPO (docs/method.md §6) on a tiny Llama built in-process with the real SmolLM2 tokenizer."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import REPO
from transformers import AutoModelForCausalLM, AutoTokenizer

from udasa.config import load_config
from udasa.errors import ConfigError, UdasaError
from udasa.keys import train_key_of
from udasa.pipeline import Pipeline
from udasa.training import stage_lr_lambda

CONFIG = REPO / "configs" / "cpu-demo.yaml"


def overrides(policy: str, **extra) -> list[str]:
    base = {"data.limit": 8, "generation.model": policy, "generation.n": 4,
            "generation.max_new_tokens": 8, "training.learning_rate_first": 5e-3,
            "training.learning_rate": 5e-3, "training.warmup_steps": 0,
            "training.decay_fraction": 0.0, "training.epochs": 6, "training.batch_size": 2,
            "training.eval_fraction": 0.0, "training.max_length": 128,
            "training.last_stage_beta": "null"}
    return [f"{k}={v}" for k, v in (base | extra).items()]


@pytest.fixture(scope="module")
def trained(tiny_policy, tmp_path_factory):
    ws = tmp_path_factory.mktemp("train-ws")
    cfg = load_config(CONFIG, overrides(tiny_policy))
    pipe = Pipeline(cfg, ws)
    reports = pipe.run_all()
    return pipe, reports


@torch.inference_mode()
def margins(model, tok, pairs) -> float:
    """Mean log P(chosen) - log P(rejected) over pairs, responses scored after the chat prompt."""
    def logp(prompt: str, reply: str) -> float:
        head = tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=True,
                                       add_generation_prompt=True, return_dict=True)["input_ids"]
        full = tok.apply_chat_template([{"role": "user", "content": prompt},
                                        {"role": "assistant", "content": reply}],
                                       tokenize=True, return_dict=True)["input_ids"]
        ids = torch.tensor([full])
        logits = model(ids).logits[0, :-1].log_softmax(-1)
        picked = logits.gather(1, ids[0, 1:, None])[:, 0]
        return float(picked[len(head) - 1:].sum())
    return sum(logp(p.prompt, p.chosen) - logp(p.prompt, p.rejected)
               for p in pairs) / len(pairs)


def test_lr_shape_warms_up_holds_and_decays_at_the_end():
    f = stage_lr_lambda(total_steps=20, warmup_steps=5, decay_fraction=0.25)
    assert [f(s) for s in (0, 1, 4)] == [0.0, 0.2, 0.8]
    assert f(5) == f(14) == 1.0
    assert f(15) == pytest.approx(1.0) and f(19) == pytest.approx(0.2)
    clamped = stage_lr_lambda(total_steps=3, warmup_steps=500, decay_fraction=0.1)
    assert [clamped(s) for s in range(3)] == pytest.approx([0.0, 1 / 3, 2 / 3])


def test_training_moves_the_policy_toward_chosen(trained, tiny_policy):
    pipe, reports = trained
    store = pipe.store
    checkpoints = store.checkpoints(pipe.run_id, train_key_of(pipe.cfg.training))
    assert checkpoints and reports["train"].done == len(checkpoints)
    final = AutoModelForCausalLM.from_pretrained(checkpoints[-1].path)
    initial = AutoModelForCausalLM.from_pretrained(tiny_policy)
    tok = AutoTokenizer.from_pretrained(tiny_policy)
    pairs = store.pairs(pipe.run_id)
    assert margins(final, tok, pairs) > margins(initial, tok, pairs) + 0.5
    changed = [n for n, p in final.state_dict().items()
               if not torch.equal(p, initial.state_dict()[n])]
    assert len(changed) > 10


def test_every_stage_is_checkpointed_logged_and_plotted(trained):
    pipe, _ = trained
    store = pipe.store
    key = train_key_of(pipe.cfg.training)
    stages = [s for s in store.stages(pipe.run_id) if s.count]
    checkpoints = store.checkpoints(pipe.run_id, key)
    assert [c.stage for c in checkpoints] == [s.stage for s in stages]
    for c in checkpoints:
        assert c.metrics["steps"] >= 1 and Path(c.path).is_dir()
        assert AutoModelForCausalLM.from_pretrained(c.path).config.num_hidden_layers == 2
    logs = store.train_logs(pipe.run_id, key)
    assert {r.stage for r in logs} == {s.stage for s in stages}
    assert any("rewards/margins" in r.metrics for r in logs)
    png = pipe.workspace / "plots" / f"training_{pipe.run_id}_{key}.png"
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_rerun_resumes_after_the_last_finished_stage(trained):
    pipe, _ = trained
    report = pipe.train()
    assert report.done == 0  # every stage already has its checkpoint


@pytest.mark.slow
def test_reference_logps_are_computed_once_per_pair(trained, tiny_policy):
    pipe, _ = trained
    computed = [c.metrics["ref_logps_computed"] for c in
                pipe.store.checkpoints(pipe.run_id, train_key_of(pipe.cfg.training))]
    assert sum(computed) == len(pipe.store.pairs(pipe.run_id))
    # other training settings, same reference: every reference log-prob comes from the store
    cfg = load_config(CONFIG, overrides(tiny_policy, **{"training.learning_rate": 1e-3,
                                                        "training.save_checkpoints": False}))
    other = Pipeline(cfg, pipe.workspace)
    assert other.run_id == pipe.run_id
    other.train()
    again = [c.metrics["ref_logps_computed"] for c in
             other.store.checkpoints(other.run_id, train_key_of(cfg.training))]
    assert again and sum(again) == 0


@pytest.mark.slow
def test_precomputed_reference_trains_like_recomputed_without_holding_a_reference(
        tiny_policy, tmp_path, monkeypatch):
    """Stored reference log-probs (one pass on the initial model, then no reference model in
    any stage trainer) give the same training as a reference model run at every step."""
    from udasa import training

    seen: list[tuple[object, bool]] = []
    original = training.CurriculumDPOTrainer.__init__

    def spy(self, *args, **kwargs):
        seen.append((kwargs.get("ref_model"), kwargs.get("policy_is_reference", False)))
        original(self, *args, **kwargs)

    monkeypatch.setattr(training.CurriculumDPOTrainer, "__init__", spy)
    losses, trainers = {}, {}
    for flag in ("true", "false"):
        seen.clear()
        cfg = load_config(CONFIG, overrides(tiny_policy, **{
            "training.precompute_ref": flag, "training.epochs": 2,
            "training.eval_fraction": 0.3, "training.save_checkpoints": False}))
        pipe = Pipeline(cfg, tmp_path)  # same pairs, another training key
        pipe.run_all()
        logs = pipe.store.train_logs(pipe.run_id, train_key_of(cfg.training))
        losses[flag] = [r.metrics["loss"] for r in logs if "loss" in r.metrics]
        trainers[flag] = list(seen)
    # precomputed: one pass with the initial policy as its own reference, then none at all
    assert trainers["true"][0] == (None, True)
    assert len(trainers["true"]) >= 3 and all(r is None for r, _ in trainers["true"][1:])
    # recomputed: a reference model in every trainer
    assert all(r is not None for r, _ in trainers["false"])
    assert len(losses["true"]) == len(losses["false"]) >= 3
    assert losses["true"] == pytest.approx(losses["false"], rel=1e-3)


@pytest.mark.slow
def test_previous_stage_policy_as_reference(tiny_policy, tmp_path, monkeypatch):
    from udasa import training

    refs: list[object] = []
    original = training.CurriculumDPOTrainer.__init__

    def spy(self, *args, **kwargs):
        refs.append(kwargs.get("ref_model"))
        original(self, *args, **kwargs)

    monkeypatch.setattr(training.CurriculumDPOTrainer, "__init__", spy)
    cfg = load_config(CONFIG, overrides(tiny_policy, **{
        "training.reference": "previous", "training.epochs": 1,
        "training.save_checkpoints": False}))
    pipe = Pipeline(cfg, tmp_path)
    report = pipe.run_all()["train"]
    # each stage against a copy of the policy it starts from, never the policy object itself
    assert len(refs) == report.done >= 2 and all(r is not None for r in refs)
    assert len({id(r) for r in refs}) == len(refs)
    # reference log-probs kept per reference: one set per stage
    ref_keys = {r["ref_key"] for r in pipe.store.db["ref_logps"].rows}
    assert len(ref_keys) == report.done


def test_previous_reference_key_holds_the_run_and_the_training_settings(tiny_policy,
                                                                         tmp_path):
    """With `reference: previous`, stage k's reference is the policy after stage k - 1 of this
    run trained this way: another run's (or another training's) stage-k log-probs must not be
    reused. The initial policy's log-probs stay shared across runs and trainings."""
    from udasa.store import Store
    from udasa.training import CurriculumTrainer

    def key(reference: str, run: str, stage: int, **training) -> str:
        cfg = load_config(CONFIG, overrides(tiny_policy, **{"training.reference": reference}
                                            | {f"training.{k}": v for k, v in training.items()}))
        trainer = CurriculumTrainer(Store(tmp_path), run, train_key_of(cfg.training),
                                    cfg.training, tiny_policy, "disjoint", 0, tmp_path)
        return trainer.ref_key(stage)

    prev = key("previous", "run-a", 2)
    assert key("previous", "run-b", 2) != prev  # another run's pairs and stages
    assert key("previous", "run-a", 2, learning_rate=1e-4) != prev  # other training settings
    assert key("previous", "run-a", 2, beta=0.3) != prev
    assert key("previous", "run-a", 3) != prev  # another stage
    assert key("previous", "run-a", 2) == prev  # the same run and training: reused (resume)
    # the initial policy is one reference for every run, training and stage
    initial = key("initial", "run-a", 2)
    assert initial == key("initial", "run-b", 3, learning_rate=1e-4) == key("previous", "run-b", 1)


@pytest.mark.slow
def test_cumulative_schedule_and_empty_stage(tiny_policy, tmp_path, capfd, caplog):
    cfg = load_config(CONFIG, overrides(tiny_policy, **{
        "curriculum.mode": "fixed", "curriculum.thresholds": "[0.98, 0.99]",
        "curriculum.schedule": "cumulative", "training.save_checkpoints": False,
        "training.epochs": 1}))
    pipe = Pipeline(cfg, tmp_path)
    reports = pipe.run_all()
    notes = " ".join(reports["train"].notes)
    assert "stage 1 (conservative): 0 pairs, 0 steps" in notes
    assert reports["train"].skipped == 2 and reports["train"].done == 1
    bars = capfd.readouterr().err
    assert "dpo stage 3 (exploratory)" in bars and ("step/s" in bars or "s/step" in bars)
    empty = [r.getMessage() for r in caplog.records if "have no pairs" in r.getMessage()]
    assert len(empty) == 1 and empty[0].startswith("2 of 3 curriculum stages")


def test_too_long_pairs_are_dropped_and_counted(trained, tiny_policy):
    from collections import Counter

    from udasa.training import token_length

    pipe, _ = trained
    tok = AutoTokenizer.from_pretrained(tiny_policy)
    stages = {s.stage for s in pipe.store.stages(pipe.run_id)}
    pairs = [p for p in pipe.store.pairs(pipe.run_id) if p.stage in stages]
    lengths = [token_length(tok, p, conversational=True) for p in pairs]
    limit = sorted(lengths)[len(lengths) // 2]  # about half the pairs are longer
    too_long = Counter(p.stage for p, n in zip(pairs, lengths) if n > limit)
    kept = Counter(p.stage for p, n in zip(pairs, lengths) if n <= limit)
    assert sum(too_long.values()) and sum(kept.values())
    cfg = load_config(CONFIG, overrides(tiny_policy, **{
        "training.max_length": limit, "training.too_long": "drop", "training.epochs": 1,
        "training.save_checkpoints": False}))
    report = Pipeline(cfg, pipe.workspace).train()
    stored = {c.stage: c.metrics for c in
              pipe.store.checkpoints(pipe.run_id, train_key_of(cfg.training))}
    for stage in sorted(too_long | kept):
        if kept[stage]:  # trained on the rest; the count of dropped pairs is stored
            assert stored[stage]["dropped_too_long"] == too_long[stage], stage
            assert stored[stage]["pairs"] == kept[stage], stage
        else:  # nothing left: the stage is skipped and says why
            assert stage not in stored
            assert f"stage {stage} " in " ".join(n for n in report.notes if "longer" in n)
    assert report.done == sum(1 for stage in kept if kept[stage])


@pytest.mark.parametrize(("item", "field"), [
    ("training.learning_rate=0", "training.learning_rate"),
    ("training.learning_rate_first=-1e-5", "training.learning_rate_first"),
    ("curriculum.thresholds=[0.7, 0.4]", "curriculum.thresholds"),
    ("training.too_long=cut", "training.too_long"),
])
def test_bad_training_config_fails_before_training(item, field):
    with pytest.raises(ConfigError, match=field):
        load_config(CONFIG, [item])


def test_empty_pair_text_is_an_error_before_training(trained, tiny_policy):
    pipe, _ = trained
    pair = pipe.store.pairs(pipe.run_id)[0]
    pipe.store.db.execute("update responses set text = '' where id = ?", [pair.chosen_id])
    pipe.store.db.conn.commit()
    cfg = load_config(CONFIG, overrides(tiny_policy, **{"training.learning_rate": 2e-3}))
    with pytest.raises(UdasaError, match="empty 'chosen'"):
        Pipeline(cfg, pipe.workspace).train()


def test_sweep_over_thresholds_writes_a_table_and_heatmap(tiny_policy, tmp_path):
    from udasa.cli import main

    args = ["sweep", "--config", str(CONFIG), "--workspace", str(tmp_path), "--name", "tau",
            "--grid", "curriculum.thresholds=[[0.3, 0.6], [0.4, 0.7]]"]
    for item in overrides(tiny_policy, **{"training.eval_fraction": 0.5,
                                          "training.save_checkpoints": False,
                                          "training.epochs": 1}):
        args += ["--set", item]
    assert main(args) == 0
    out = tmp_path / "sweeps" / "tau"
    rows = (out / "sweep.csv").read_text().splitlines()
    assert rows[0] == "curriculum.thresholds,run_id,eval_rewards/accuracies"
    assert len(rows) == 3 and all(r.split(",")[-1] for r in rows[1:])  # both points measured
    assert (out / "heatmap_eval_rewards_accuracies.png").read_bytes()[:4] == b"\x89PNG"
