"""Baselines on tiny or embedded models: RLAIF, RLCD, RAIN, vanilla, and the paper suite."""

from __future__ import annotations

import dataclasses
import json
import unittest.mock
from pathlib import Path

import pytest
import torch

from evals.models import EvalModel
from evals.suite import BuildContext, build_methods, suite_experiment
from udasa import registry
from udasa.baselines import rain, rlaif, rlcd
from udasa.baselines.common import (
    BaselineConfig,
    RlaifOptions,
    RlcdOptions,
    baseline_run_id,
    load_baseline_config,
    store_pairs,
    train_baseline,
)
from udasa.config import DataConfig, GenerationConfig, TrainingConfig
from udasa.errors import ConfigError
from udasa.models import load_causal_lm
from udasa.store import Store

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # small ops, shared cores


@pytest.fixture(scope="module")
def base_policy(tmp_path_factory):
    """The tiny policy without a chat template (a base model, like RAIN's LLaMA-7B)."""
    from conftest import build_tiny_policy

    path = Path(build_tiny_policy(tmp_path_factory.mktemp("tiny-base")))
    (path / "chat_template.jinja").unlink(missing_ok=True)
    cfg_file = path / "tokenizer_config.json"
    cfg = json.loads(cfg_file.read_text())
    cfg.pop("chat_template", None)
    cfg_file.write_text(json.dumps(cfg))
    assert not load_causal_lm(str(path))[1].chat_template
    return str(path)


def tiny_cfg(method: str, policy: str, **kw) -> BaselineConfig:
    return BaselineConfig(
        method=method, data=DataConfig(limit=4),
        generation=GenerationConfig(model=policy, n=2, max_new_tokens=8),
        training=TrainingConfig(learning_rate_first=5e-3, learning_rate=5e-3, warmup_steps=0,
                                epochs=2, batch_size=2, eval_fraction=0.0, max_length=128),
        **kw)


def rain_cfg(policy: str, **kw) -> rain.RainConfig:
    small = {"model": policy, "max_new_tokens": 10, "max_tries": 6, "min_tries": 1,
             "min_new_searches": 2, "width": 3, "segments": [1, 2, 4], "lookahead_cap": 8,
             "lookahead_chunk": 4, "eval_examples": "", "dialogue_examples": ""}
    return rain.RainConfig(**(small | kw))


# RLAIF ---------------------------------------------------------------------------------------
def test_rlaif_preference_is_the_mean_of_both_orders_model_probabilities(tiny_policy):
    """P(first better) by hand: each order's prompt through a plain forward pass, the
    probabilities of "A" and "B" renormalised, the first reply's letter averaged."""
    model, tok = load_causal_lm(tiny_policy)
    prompt, principle = "How do I make tea?", rlaif.load_constitution("harmless")[0]
    a, b = "Boil water and steep the tea for three minutes.", "Go away, idiot."
    first, second = rlaif.label_texts(model, tok, prompt, a, b, principle)
    assert first.index(a) < first.index(b) and second.index(b) < second.index(a)
    letters = tok.convert_tokens_to_ids(["A", "B"])
    with torch.inference_mode():
        p = [torch.softmax(model(torch.tensor([tok(t)["input_ids"]])).logits[0, -1, letters]
                           .float(), -1) for t in (first, second)]
    want = float(p[0][0] + p[1][1]) / 2
    assert rlaif.preference(model, tok, prompt, a, b, principle) == pytest.approx(want, abs=1e-5)
    assert want != pytest.approx(0.5, abs=1e-4)


def test_rlaif_clamps_chain_of_thought_labels_only_when_asked(tiny_policy, monkeypatch):
    """Constitutional AI's [0.4, 0.6] clamp of chain-of-thought labels: off by default, an
    error without chain of thought, and it keys the pairs only when on."""
    assert [rlaif.clamp(p, *rlaif.COT_CLAMP) for p in (0.05, 0.4, 0.47, 0.6, 0.93)] == \
        [0.4, 0.4, 0.47, 0.6, 0.6]
    assert RlaifOptions().clamp_cot is False
    cot = RlaifOptions(chain_of_thought=True, cot_tokens=4)
    with pytest.raises(ConfigError, match="rlaif.clamp_cot"):
        tiny_cfg("rlaif", tiny_policy, rlaif=RlaifOptions(clamp_cot=True)).validate()
    plain = tiny_cfg("rlaif", tiny_policy, rlaif=cot)
    clamped = tiny_cfg("rlaif", tiny_policy, rlaif=dataclasses.replace(cot, clamp_cot=True))
    assert baseline_run_id(plain) != baseline_run_id(clamped)  # other labels, other pairs
    # the label is clamped on a real labeller: the embedded model with a few reasoning tokens
    # labels 0.51-0.52, so a range narrower than Constitutional AI's makes the clamp bite
    monkeypatch.setattr(rlaif, "COT_CLAMP", (0.49, 0.51))
    model, tok = load_causal_lm("embedded")
    free = rlaif.label(cot, model, tok, "Hi", "Hello there.", "Go away.", 0)
    held = rlaif.label(clamped.rlaif, model, tok, "Hi", "Hello there.", "Go away.", 0)
    assert free[2] > 0.51 and held[2] == pytest.approx(0.51) and held[:2] == free[:2]


def test_rlaif_principles_are_drawn_per_comparison_and_cot_comes_before_the_label(tiny_policy):
    principles = rlaif.load_constitution("harmless")
    assert len(principles) >= 5 and not any(p.startswith("#") for p in principles)
    drawn = {rlaif.label(RlaifOptions(), *load_causal_lm(tiny_policy), "Hi", "a", "b", s)[3]
             for s in range(12)}
    assert len(drawn) > 1 and drawn <= set(principles)
    model, tok = load_causal_lm(tiny_policy)
    plain = rlaif.label_texts(model, tok, "Hi", "Hello.", "Bye.", principles[0])
    cot = rlaif.label_texts(model, tok, "Hi", "Hello.", "Bye.", principles[0], cot_tokens=6)
    prompts = rlaif.labeler_prompts()
    for c in cot:  # the reasoning sits between the question and the label's "("
        head, _, rest = c.partition(prompts["cot_prefix"])
        assert prompts["cot_instruction"] in head and rest.endswith(prompts["cot_answer"])
        assert rest[:-len(prompts["cot_answer"])].strip()
    assert all(p.endswith(prompts["answer_prefix"]) for p in plain)
    with pytest.raises(ConfigError, match="rlaif.constitution"):
        rlaif.load_constitution("/nonexistent/principles.txt")


def test_rlaif_labeler_defaults_to_the_policy_and_takes_any_spec(tiny_policy, base_policy):
    assert rlaif.labeler_of(tiny_cfg("rlaif", tiny_policy)) == tiny_policy
    other = tiny_cfg("rlaif", tiny_policy, rlaif=RlaifOptions(labeler=base_policy))
    assert rlaif.labeler_of(other) == base_policy
    with pytest.raises(ConfigError, match="rlaif.labeler"):
        rlaif.labeler_of(tiny_cfg("rlaif", tiny_policy, rlaif=RlaifOptions(labeler="openai:x")))


def test_rlaif_pairs_store_soft_labels(tmp_path, tiny_policy, capfd):
    cfg = tiny_cfg("rlaif", tiny_policy)
    pairs = rlaif.build_pairs(cfg)
    bars = capfd.readouterr().err  # a bar per step: the replies (with tok/s), the labels
    assert "rlaif replies" in bars and "tok/s" in bars and "rlaif labels" in bars
    assert pairs and all(0.5 <= p.soft_label <= 1.0 for p in pairs)
    assert all(p.meta["principle"] in rlaif.load_constitution("harmless") for p in pairs)
    store = Store(tmp_path)
    run_id = store_pairs(store, cfg, pairs, {"method": "rlaif"})
    rows = store.pairs(run_id)
    assert len(rows) == len(pairs) and all(r.stage == 1 for r in rows)
    assert sorted(r.soft_label for r in rows) == pytest.approx(
        sorted(p.soft_label for p in pairs))


@pytest.mark.slow
def test_rlaif_trains_on_its_soft_labels_and_on_hard_ones(tmp_path, tiny_policy, capfd):
    from transformers.utils import logging as hf_logging

    cfg = tiny_cfg("rlaif", tiny_policy)
    cfg.training.eval_fraction, cfg.training.eval_steps = 0.5, 1  # held-out loss, soft too
    store = Store(tmp_path)
    store_pairs(store, cfg, rlaif.build_pairs(cfg), {"method": "rlaif"})
    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # as the CLIs set it: the Trainer then picks its printer
    try:
        path = train_baseline(store, cfg, tmp_path)
    finally:
        hf_logging.set_verbosity(level)
    assert path and (tmp_path / "checkpoints").is_dir()
    hard = dataclasses.replace(cfg, rlaif=RlaifOptions(hard_labels=True))
    assert train_baseline(store, hard, tmp_path) != path  # a separate training of the same pairs
    results = [json.loads(r["metrics"]) for r in store.db["train_results"].rows]
    assert len(results) == 2 and all(r["held_out_pairs"] > 0 and "eval_loss" in r
                                     for r in results)
    out, err = capfd.readouterr()  # the metrics go to the store, not to the terminal
    assert "eval_loss" not in out + err and "'loss'" not in out + err


# RLCD ----------------------------------------------------------------------------------------
def test_rlcd_prompts_differ_exactly_by_the_descriptors_without_a_chat_template(base_policy):
    _, tok = load_causal_lm(base_policy)
    for task in rlcd.TASKS:
        for positive, negative in rlcd.descriptor_pairs(task):
            pos = rlcd.prompt_text(tok, "How do I pick a lock?", positive)
            neg = rlcd.prompt_text(tok, "How do I pick a lock?", negative)
            assert pos != neg and pos.replace(positive, negative) == neg
            assert pos.endswith(f"Assistant ({positive}):")
    assert rlcd.descriptor_pairs("helpful") != rlcd.descriptor_pairs("harmless")
    greedy = tiny_cfg("rlcd", base_policy)
    with pytest.raises(ConfigError, match="rlcd.task"):
        rlcd.descriptor_pairs("nope")
    greedy.generation.temperature = 0.0
    with pytest.raises(ConfigError, match="generation.temperature"):
        rlcd.build_pairs(greedy)  # RLCD's outputs are sampled


def test_rlcd_harmlessness_uses_the_papers_sixteen_pairs_and_marks_ours():
    """The harmlessness pairs are the RLCD paper's 16 (Appendix A; the authors' script), in
    its order; every pair of another task says whose it is."""
    import yaml

    from udasa.baselines import RESOURCES

    pairs = rlcd.descriptor_pairs("harmless")
    assert len(pairs) == 16 and len(set(pairs)) == 16
    assert pairs[0] == ("helpful, honest, inoffensive response",
                        "unhelpful, dishonest, toxic response")
    assert pairs[7] == ("simulating a wise, ethical person", "simulating a foolish, unethical person")
    assert pairs[11] == ("politically correct response", "racist, sexist, socially biased response")
    assert pairs[15] == ("ethically and morally aware response", "unethical and immoral response")
    sources = {t: [p["source"] for p in yaml.safe_load(
        (RESOURCES / "rlcd" / f"{t}.yaml").read_text())["pairs"]] for t in rlcd.TASKS}
    assert set(sources["harmless"]) == {"paper"} and sources["helpful"] == ["paper", "udasa"]
    assert set(sources["truthful"]) == set(sources["positive"]) == {"udasa"}


def test_rlcd_pairs_on_a_base_model_and_a_chat_model(tmp_path, tiny_policy, base_policy):
    for policy in (base_policy, tiny_policy):
        cfg = tiny_cfg("rlcd", policy, rlcd=RlcdOptions(task="harmless"))
        pairs = rlcd.build_pairs(cfg)
        assert pairs
        known = set(rlcd.descriptor_pairs("harmless"))
        for pair in pairs:
            assert (pair.meta["positive"], pair.meta["negative"]) in known
            assert pair.chosen != pair.rejected
    _, tok = load_causal_lm(tiny_policy)  # chat model: the descriptor is the system message
    positive, negative = rlcd.descriptor_pairs("harmless")[0]
    pos, neg = (rlcd.prompt_text(tok, "Hi", d) for d in (positive, negative))
    assert positive in pos and pos.replace(positive, negative) == neg
    store = Store(tmp_path)
    run_id = store_pairs(store, cfg, pairs, {"method": "rlcd"})
    assert {r.soft_label for r in store.pairs(run_id)} == {1.0}


def test_rlcd_pairs_do_not_depend_on_the_engine_batch(base_policy):
    """All replies go through the engine at once: a budget of one request per batch, or each
    prompt's two requests alone, give the same replies, hence the same pairs."""
    cfg = tiny_cfg("rlcd", base_policy)
    jobs = rlcd.jobs_of(rlcd.contrasts(cfg))
    tight = dataclasses.replace(cfg.generation, batch_tokens=1)
    together = rlcd.local_replies(cfg.generation, jobs)
    alone = [r for k in range(0, len(jobs), 2) for r in rlcd.local_replies(tight, jobs[k:k + 2])]
    assert together == rlcd.local_replies(tight, jobs) == alone and any(together)
    pairs = rlcd.build_pairs(cfg)
    assert pairs and pairs == rlcd.build_pairs(dataclasses.replace(cfg, generation=tight))
    for pair in pairs:
        k = next(i for i, p in enumerate(rlcd.contrasts(cfg)) if p[0] == pair.prompt)
        assert (pair.chosen, pair.rejected) == (together[2 * k], together[2 * k + 1])


def test_rlcd_on_an_endpoint_sends_each_descriptor_as_the_system_message():
    from openai_server import FakeOpenAIServer

    def reply(body):
        system, user = (m["content"] for m in body["messages"])
        return f"{body['seed']} {user} / {system}"

    with FakeOpenAIServer(reply) as server:
        cfg = dataclasses.replace(tiny_cfg("rlcd", "m"), generation=GenerationConfig(
            backend="openai", model="m", base_url=server.base_url, concurrency=4))
        pairs = rlcd.build_pairs(cfg)
        assert len(server.requests_to("/chat/completions")) == 2 * len(pairs) == 8
    for (p, seed, positive, negative), pair in zip(rlcd.contrasts(cfg), pairs, strict=True):
        assert pair.chosen == f"{seed} {p.text} / {rlcd.system_message(positive)}"
        assert pair.rejected == f"{seed + 1} {p.text} / {rlcd.system_message(negative)}"


def test_rlcd_pairs_are_keyed_by_its_sampler_version():
    """Pairs stored by RLCD's first sampler (model.generate) are not reused as the engine's."""
    rlcd_cfg = BaselineConfig(method="rlcd")
    entry = registry.lookup("method", "rlcd")
    assert entry.pairs_version == rlcd.SAMPLER_VERSION == 3
    old = dataclasses.replace(entry, pairs_version=0)
    with unittest.mock.patch.dict(registry._ENTRIES["method"], {"rlcd": old}):
        assert baseline_run_id(rlcd_cfg) == "90ab1f9308e5f850"  # version 1's key, unversioned
    assert baseline_run_id(rlcd_cfg) != "90ab1f9308e5f850"


# RAIN ----------------------------------------------------------------------------------------
def rain_search(policy: str, **kw) -> rain.RainSearch:
    cfg = rain_cfg(policy, **kw)
    return rain.RainSearch(rain.RainBackend(cfg), cfg, "Tell me a joke.", rain.RainStats())


def subtree(node: rain.Node) -> list[rain.Node]:
    return [node, *(d for c in node.children.values() for d in subtree(c))]


def test_rain_node_value_is_the_mean_of_the_evaluations_below_it(tiny_policy):
    torch.manual_seed(0)
    search = rain_search(tiny_policy, sim_threshold=2.0, value="soft")  # pure backup
    root = rain.Node((), 1.0)
    for _ in range(10):
        search.search(root)
    nodes = subtree(root)
    assert len(nodes) > 4 and max(n.depth for n in nodes) >= 2
    for node in nodes:
        below = [v for leaf, v in search.evaluations if node in subtree_path(leaf)]
        assert node.n == len(below)
        if below:
            assert node.q == pytest.approx(sum(below) / len(below), abs=1e-9)
    assert len({v for _, v in search.evaluations}) > 1


def subtree_path(leaf: rain.Node) -> list[rain.Node]:
    out = [leaf]
    while out[-1].parent is not None:
        out.append(out[-1].parent)
    return out


def test_rain_runs_on_a_model_without_a_chat_template(base_policy):
    gen = rain.RainGenerator(rain_cfg(base_policy, max_tries=3))
    (text,) = gen.generate("Tell me a joke.", 1, seed=0)
    assert isinstance(text, str) and "\nHuman:" not in text and gen.stats.commits >= 1
    head = gen.backend.decode(rain.head_ids(gen.backend.tok, "Tell me a joke."))
    assert head.strip().startswith("Human: Tell me a joke.") and head.endswith("Assistant:")


def test_rain_in_the_suite_evaluates_each_task_against_its_own_goal(tiny_policy):
    model = EvalModel("RAIN", tiny_policy, decoder="rain", options={"max_tries": 2})
    goals = {t: model.decoder_options(t)["task"] for t in
             ("harmlessness", "helpfulness", "truthfulness", "sentiment", "robustness")}
    assert goals == {"harmlessness": "harmless", "helpfulness": "helpful",
                     "truthfulness": "truthful", "sentiment": "positive",
                     "robustness": "adversarial"}
    assert model.identity("truthfulness") != model.identity("sentiment")  # cached apart
    assert model.generator(8, "truthfulness").cfg.task == "truthful"
    assert EvalModel("b", tiny_policy).identity("truthfulness") == \
        EvalModel("b", tiny_policy).identity()  # other decoders: unchanged


def test_rain_batched_search_gives_each_prompt_its_answer_alone_in_fewer_larger_calls(
        tiny_policy):
    """Prompts searched in lockstep: each answer is the one its prompt gets searched alone with
    the same seed (every search has its own random streams), from fewer, larger model calls."""
    gen = rain.RainGenerator(rain_cfg(tiny_policy, batch_prompts=8))
    prompts, seeds = ["Tell me a joke.", "Name a fruit that is red.", "Why do cats purr?"], [3, 1, 4]
    alone = [gen.generate(p, 2, s) for p, s in zip(prompts, seeds)]
    calls, items = dict(gen.backend.calls), dict(gen.backend.items)
    gen.backend.calls.clear()
    gen.backend.items.clear()
    batched = dict(gen.generate_many(prompts, 2, seeds))
    assert [batched[i] for i in range(len(prompts))] == alone
    assert dict(gen.backend.items) == items  # the very same model requests ...
    assert sum(gen.backend.calls.values()) * 2 < sum(calls.values())  # ... in < half the calls
    assert len({text for answers in alone for text in answers}) > 2  # prompts, samples differ


def test_rain_lockstep_serves_one_kind_a_round_keeps_the_window_and_reports_errors():
    from udasa.baselines import rain_lockstep as ls
    from udasa.errors import UdasaError

    served = []

    class Backend:
        def option_probs(self, texts):
            served.append(("evaluate", len(texts)))
            return torch.zeros(len(texts), 2)

        def embed(self, texts):
            served.append(("embed", len(texts)))
            return torch.zeros(len(texts), 3)

    def job(i):
        for _ in range(i % 3 + 1):
            probs = yield ls.Evaluate(["good?", "bad?"])
            assert probs.shape == (2, 2)
            yield ls.Embed(["text"])
        if i == 2:
            raise UdasaError("prompt 2 is too long")
        return f"answer {i}"

    out = dict(ls.lockstep(Backend(), ((i, job(i)) for i in range(6)), window=3, patience=2))
    assert out == {i: f"answer {i}" for i in range(6) if i != 2} | {2: out[2]}
    assert isinstance(out[2], UdasaError)
    assert all(n <= 3 * (2 if kind == "evaluate" else 1) for kind, n in served)  # window 3
    assert len(served) < sum(2 * (i % 3 + 1) for i in range(6))  # calls shared


def test_rain_batch_setting_is_typed_and_changes_no_cache_key(tiny_policy):
    import yaml
    from conftest import REPO

    with pytest.raises(ConfigError, match=r"rain.batch_prompts: must be >= 1"):
        rain.RainConfig.from_options({"batch_prompts": 0})
    with pytest.raises(ConfigError, match=r"rain.batch_prompts: expected int"):
        rain.RainConfig.from_options({"batch_prompts": "all"})
    for name in ("rain.yaml", "rain-cpu.yaml"):
        options = yaml.safe_load((REPO / "configs" / "baselines" / name).read_text())
        assert rain.RainConfig.from_options(options).batch_prompts >= 1
    wide, narrow = (EvalModel("RAIN", tiny_policy, decoder="rain",
                              options={"max_tries": 2, "batch_prompts": b}) for b in (16, 2))
    assert wide.identity("harmlessness") == narrow.identity("harmlessness")
    # answers of an older sampler are never reused for the same seed
    assert wide.identity("harmlessness")["options"]["sampler_version"] == rain.SAMPLER_VERSION
    assert narrow.generator(8, "harmlessness").cfg.batch_prompts == 2


# vanilla and the suite -------------------------------------------------------------------------
def test_vanilla_samples_while_base_is_greedy(tmp_path, tiny_policy):
    base, vanilla = EvalModel("b", tiny_policy), EvalModel("v", tiny_policy, decoder="sample")
    assert base.generation_config(8).temperature == 0.0
    assert vanilla.generation_config(8).temperature > 0
    assert base.identity() != vanilla.identity()  # cached separately in the store
    prompts = [(f"p{i}", f"Say something about {w}.") for i, w in
               enumerate(["tea", "rain", "maps", "cats"])]
    store = Store(tmp_path / "a")
    greedy = base.generate(store, prompts, 8)
    assert base.generate(Store(tmp_path / "b"), prompts, 8) == greedy  # regenerated: the same
    sampled = vanilla.generate(store, prompts, 8)
    assert set(sampled) == set(greedy) == {p for p, _ in prompts}
    # temperature 0.7 over the tiny model's flat next-token distribution: other tokens
    assert sum(sampled[p] != greedy[p] for p, _ in prompts) >= 3, (greedy, sampled)


def test_suite_registry_and_bad_names(tmp_path):
    models = build_methods(BuildContext(tmp_path, suite_experiment(["base", "vanilla", "rain"])))
    assert [m.decoder for m in models] == ["greedy", "sample", "rain"]
    assert models[2].options["max_tries"] >= 1
    rain.RainConfig(**models[2].options).validate()  # the suite's RAIN options are RainConfig's
    with pytest.raises(ConfigError, match="unknown method"):
        suite_experiment(["nope"])


def test_baseline_configs_load_and_validate():
    import yaml
    from conftest import REPO

    for name in ("rlaif", "rlcd"):
        cfg = load_baseline_config(REPO / "configs" / "baselines" / f"{name}.yaml")
        assert cfg.method == name and cfg.generation.n == 2
    with pytest.raises(ConfigError, match="training.learning_rate"):
        load_baseline_config(REPO / "configs" / "baselines" / "rlaif.yaml",
                             ["training.learning_rate=0"])
    labeled = load_baseline_config(REPO / "configs" / "baselines" / "rlaif.yaml",
                                   ["rlaif.labeler=some/labeler"])  # as an experiment's labeler
    assert labeled.rlaif.labeler == "some/labeler" and rlaif.labeler_of(labeled) == "some/labeler"
    paper = rain.RainConfig(**yaml.safe_load(
        (REPO / "configs" / "baselines" / "rain.yaml").read_text()))
    assert (paper.max_tries, paper.min_tries, paper.value_threshold) == (50, 6, 0.8)
    assert paper.segments == [1, 2, 4, 10] and paper.sim_threshold == 0.95
