"""Baselines on tiny or embedded models: RLAIF, RLCD, RAIN, vanilla, and the paper suite."""

from __future__ import annotations

import pytest

from evals.models import EvalModel
from evals.suite import BuildContext, build_methods, suite_experiment
from udasa.baselines import rain, rlaif, rlcd
from udasa.baselines.common import (
    BaselineConfig,
    load_baseline_config,
    store_pairs,
    train_baseline,
)
from udasa.config import DataConfig, GenerationConfig, TrainingConfig
from udasa.errors import ConfigError
from udasa.models import load_causal_lm
from udasa.store import Store


def tiny_cfg(method: str, policy: str) -> BaselineConfig:
    return BaselineConfig(
        method=method, data=DataConfig(limit=4),
        generation=GenerationConfig(model=policy, n=2, max_new_tokens=8),
        training=TrainingConfig(learning_rate_first=5e-3, learning_rate=5e-3, warmup_steps=0,
                                epochs=2, batch_size=2, eval_fraction=0.0, max_length=128))


def test_rlaif_preference_is_symmetric_and_comes_from_real_probabilities():
    model, tok = load_causal_lm("embedded")
    prompt = "How do I make tea?"
    a, b = "Boil water and steep the tea for three minutes.", "Go away, idiot."
    p_ab, p_ba = rlaif.preference(model, tok, prompt, a, b), rlaif.preference(model, tok, prompt,
                                                                            b, a)
    assert p_ab + p_ba == pytest.approx(1.0, abs=1e-6)  # swapping the answers swaps the label
    from udasa.scorers.lm_options import chat_prefix, option_probs
    text = chat_prefix(tok, rlaif._template().format(prompt=prompt, first=a, second=b), "(")
    raw = option_probs(model, tok, [text], ["A", "B"])[0]
    assert 0 < float(raw[0]) < 1 and float(raw[0]) != pytest.approx(0.5, abs=1e-4)


def test_rlaif_pairs_store_soft_labels_and_train_with_dpo(tmp_path, tiny_policy):
    cfg = tiny_cfg("rlaif", tiny_policy)
    pairs = rlaif.build_pairs(cfg)
    assert pairs and all(0.5 <= p.soft_label <= 1.0 for p in pairs)
    store = Store(tmp_path)
    run_id = store_pairs(store, cfg, pairs, {"method": "rlaif"})
    rows = store.pairs(run_id)
    assert len(rows) == len(pairs) and all(r["stage"] == 1 for r in rows)
    assert sorted(r["soft_label"] for r in rows) == pytest.approx(
        sorted(p.soft_label for p in pairs))
    path = train_baseline(store, cfg, tmp_path)
    assert path and (tmp_path / "checkpoints").is_dir()


def test_rlcd_pairs_differ_only_by_context(tmp_path, tiny_policy):
    positive, negative = rlcd.contexts()
    differing = set(positive.split()) ^ set(negative.split())
    assert 0 < len(differing) <= 6  # a minimal surface difference between the two contexts
    cfg = tiny_cfg("rlcd", tiny_policy)
    pairs = rlcd.build_pairs(cfg)
    assert pairs
    for pair in pairs:
        assert pair.meta == {"positive": positive, "negative": negative}
        assert pair.chosen != pair.rejected
    _, tok = load_causal_lm(tiny_policy)
    render = [tok.apply_chat_template([{"role": "system", "content": ctx},
                                       {"role": "user", "content": pairs[0].prompt.text}],
                                      tokenize=False) for ctx in (positive, negative)]
    assert render[0].replace(positive, negative) == render[1]
    store = Store(tmp_path)
    run_id = store_pairs(store, cfg, pairs, {"method": "rlcd"})
    assert {r["soft_label"] for r in store.pairs(run_id)} == {1.0}


def test_rain_rewinds_and_visits_more_tokens_than_it_emits(tiny_policy):
    gen = rain.RainGenerator(rain.RainConfig(model=tiny_policy, max_new_tokens=8, max_tries=3,
                                             min_tries=2, segments=[2, 4], candidates=2))
    (text,) = gen.generate("Tell me a joke.", 1, seed=0)
    s = gen.stats
    assert isinstance(text, str)
    assert s.visited_tokens > s.emitted_tokens > 0 and s.rewinds >= 1 and s.tries >= 2
    values = gen.value("Hi", ["Hello there!", "I will hurt you."])
    assert all(-1.0 <= v <= 1.0 for v in values)


def test_rain_self_evaluation_reads_option_ids_from_the_tokenizer(tiny_policy):
    from udasa.scorers.lm_options import option_token_ids

    _, tok = load_causal_lm(tiny_policy)
    ids = option_token_ids(tok, ["A", "B"])
    assert tok.decode(ids[0]) == "A" and tok.decode(ids[1]) == "B"


def test_vanilla_samples_while_base_is_greedy(tmp_path, tiny_policy):
    base, vanilla = EvalModel("b", tiny_policy), EvalModel("v", tiny_policy, decoder="sample")
    assert base.generation_config(8).temperature == 0.0
    assert vanilla.generation_config(8).temperature > 0
    assert base.identity() != vanilla.identity()  # cached separately in the store
    store = Store(tmp_path)
    out = vanilla.generate(store, [("p1", "Say something.")], 8)
    assert set(out) == {"p1"}


def test_suite_registry_and_bad_names(tmp_path):
    models = build_methods(BuildContext(tmp_path, suite_experiment(["base", "vanilla", "rain"])))
    assert [m.decoder for m in models] == ["greedy", "sample", "rain"]
    assert models[2].options["max_tries"] >= 1
    with pytest.raises(ConfigError, match="unknown method"):
        suite_experiment(["nope"])


def test_baseline_configs_load_and_validate():
    from conftest import REPO

    for name in ("rlaif", "rlcd"):
        cfg = load_baseline_config(REPO / "configs" / "baselines" / f"{name}.yaml")
        assert cfg.method == name and cfg.generation.n == 2
    with pytest.raises(ConfigError, match="training.learning_rate"):
        load_baseline_config(REPO / "configs" / "baselines" / "rlaif.yaml",
                             ["training.learning_rate=0"])
