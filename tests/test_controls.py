"""The controls of configs/experiments/cpu-medium.yaml (issue 25), built by configuration:
random pairs (`pairs.selection: random`), no curriculum (one stage of UDASA's pairs) and each
uncertainty axis alone, each sharing UDASA's prompts, replies and scores."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from conftest import REPO

from evals.experiment import load_experiment
from evals.experiment_record import training_facts
from evals.report import cut_text
from evals.suite import BuildContext, check_method_configs, udasa_config
from udasa.baselines.common import TrainedBaseline
from udasa.config import load_config, to_dict
from udasa.errors import ConfigError
from udasa.keys import gen_key_of, run_id_of
from udasa.pairs import FusedResponse, build_pairs, random_pair
from udasa.pipeline import Pipeline

MEDIUM = REPO / "configs" / "experiments" / "cpu-medium.yaml"
AXES = REPO / "configs" / "experiments" / "cpu-medium-axes.yaml"
# a few built-in prompts, short replies, no training: the controls up to their stages
TINY = ["data.source=builtin", "data.limit=6", "generation.n=3",
        "generation.max_new_tokens=8", "training.enabled=false"]
CONTROLS = ("UDASA random pairs", "UDASA no curriculum", "UDASA sem alone")


def candidates(k: int, n: int = 5) -> list[FusedResponse]:
    return [FusedResponse(f"p{k}-r{i}", f"reply {i} to {k}", u=(i * 7 + k) % n / n)
            for i in range(n)]


def test_random_pairs_are_seeded_and_blind_to_u():
    draws = {k: random_pair(f"p{k}", candidates(k)) for k in range(60)}
    assert draws == {k: random_pair(f"p{k}", candidates(k)) for k in range(60)}  # same seed
    assert draws != {k: random_pair(f"p{k}", candidates(k), seed=1) for k in range(60)}
    (first,) = draws[0]
    assert first.chosen.response_id != first.rejected.response_id
    argmin = {k: min(candidates(k), key=lambda c: c.u).response_id for k in range(60)}
    picked = Counter(draws[k][0].chosen.response_id == argmin[k] for k in range(60))
    assert 3 < picked[True] < 30  # about 1 in 5, as chance would have it, not always
    assert any(p.delta < 0 for (p,) in draws.values())  # the rejected reply may be the surer
    ours = {k: build_pairs(f"p{k}", candidates(k)) for k in range(60)}
    assert all(p.delta > 0 and p.chosen.response_id == argmin[k] for k, (p,) in ours.items())


def test_random_pairs_drop_identical_and_empty_replies():
    drops: Counter[str] = Counter()
    same = [FusedResponse("a", "same", 0.1), FusedResponse("b", "same ", 0.5),
            FusedResponse("c", " ", 0.2)]
    assert random_pair("p", same, drops=drops) == []
    assert drops == {"empty response": 1, "identical text": 1}


def test_selection_random_keeps_rejected_random():
    with pytest.raises(ConfigError, match="pairs.rejected: selection: random draws both"):
        load_config(None, ["pairs.selection=random", "pairs.rejected=max"])


def medium_context(workspace: Path, policy: str | None = None, extra=()) -> BuildContext:
    """cpu-medium.yaml's methods and cpu-medium-axes.yaml's (UDASA once), with `extra`
    overrides on each."""
    exp = load_experiment(MEDIUM)
    axes = load_experiment(AXES)
    assert {m.name: m for m in axes.methods}["UDASA"] == {m.name: m for m in exp.methods}["UDASA"]
    exp.methods += [m for m in axes.methods if m.name != "UDASA"]
    if policy:
        exp.policy = policy
    for spec in exp.methods:
        spec.overrides = [*spec.overrides, *extra]
    return BuildContext(workspace, exp, progress=lambda _: None)


def test_cpu_medium_loads_and_every_method_builds_from_configuration(tmp_path):
    ctx = medium_context(tmp_path)
    check_method_configs(ctx)  # every method's own config file, read and checked
    specs = {m.name: m for m in ctx.exp.methods}
    udasa = to_dict(udasa_config(specs["UDASA"], ctx))
    changed = {"UDASA random pairs": {("pairs", "selection"), ("curriculum", "thresholds")},
               "UDASA no curriculum": {("curriculum", "thresholds")},
               "UDASA sem alone": {("fusion", "axes")}, "UDASA fact alone": {("fusion", "axes")},
               "UDASA val alone": {("fusion", "axes")}}
    for name, fields in changed.items():
        other = to_dict(udasa_config(specs[name], ctx))
        diff = {(s, f) for s in udasa if isinstance(udasa[s], dict)
                for f in udasa[s] if udasa[s][f] != other[s][f]}
        assert diff == fields, name  # one thing changed (names apart), training settings too
    for kind in ("rlaif", "rlcd"):
        spec = next(m for m in ctx.exp.methods if m.kind == kind)
        from udasa import registry

        base = registry.lookup("method", kind)
        assert isinstance(base, TrainedBaseline)
        cfg = base.config(spec, ctx)
        assert to_dict(cfg.data) == udasa["data"] and cfg.seed == udasa["seed"]
        assert {k: v for k, v in to_dict(cfg.training).items() if k != "enabled"} == \
            {k: v for k, v in udasa["training"].items() if k != "enabled"}


def test_cpu_medium_sizes_meet_the_issue():
    axes = load_experiment(AXES)
    exp = load_experiment(MEDIUM)
    assert [(t.name, t.limit, t.data) for t in axes.tasks] == \
        [(t.name, t.limit, t.data) for t in exp.tasks]  # the same evaluation
    limits = {t.name: t.limit for t in exp.tasks}
    assert limits["truthfulness"] >= 767 and limits["sentiment"] >= 500
    assert limits["harmlessness"] >= 300 and limits["helpfulness"] >= 300
    assert limits["robustness"] == 100 and limits["truthfulqa_mc"] >= 200
    mc = next(t for t in exp.tasks if t.name == "truthfulqa_mc")
    assert "vanilla" not in mc.methods and "RAIN" not in mc.methods  # the base weights again
    assert next(m for m in exp.methods if m.kind == "rain").limit >= 100
    cfg = load_config(REPO / "configs" / "medium" / "udasa.yaml")
    assert cfg.data.source == "alpaca" and cfg.data.limit >= 1000 and cfg.data.sample == "seeded"
    assert cfg.generation.n == 5
    tr = cfg.training
    assert tr.epochs >= 1 and tr.max_steps * tr.batch_size >= cfg.data.limit  # a full epoch
    assert tr.saturation > 1 and tr.patience * tr.eval_steps * tr.batch_size > cfg.data.limit


def test_controls_share_udasa_replies_and_differ_only_in_what_they_control(tmp_path,
                                                                           tiny_policy):
    ctx = medium_context(tmp_path / "ws", tiny_policy, TINY)
    specs = {m.name: m for m in ctx.exp.methods}
    pipes, reports = {}, {}
    for name in ("UDASA", *CONTROLS):
        pipes[name] = Pipeline(udasa_config(specs[name], ctx), ctx.workspace)
        reports[name] = pipes[name].run_all()
    assert len({p.gen_key for p in pipes.values()}) == 1
    assert len({p.run_id for p in pipes.values()}) == len(pipes)
    for name in CONTROLS:  # the replies and their scores are UDASA's, reused, not made again
        assert (reports[name]["generate"].done, reports[name]["generate"].reused) == (0, 6)
        assert reports[name]["score"].done == 0

    def pairs(name):
        return {(p.chosen_id, p.rejected_id) for p in pipes[name].store.pairs(pipes[name].run_id)}

    udasa = pairs("UDASA")
    assert udasa and pairs("UDASA random pairs") != udasa
    # no curriculum: UDASA's very pairs, all in one stage
    assert pairs("UDASA no curriculum") == udasa
    (stage,) = pipes["UDASA no curriculum"].store.stages(pipes["UDASA no curriculum"].run_id)
    assert stage.count == len(udasa)
    assert {p.stage for p in pipes["UDASA no curriculum"].store.pairs(
        pipes["UDASA no curriculum"].run_id)} == {1}
    stages = pipes["UDASA"].store.stages(pipes["UDASA"].run_id)
    assert len(stages) == 3
    # the record names the delta values the quantile mode cut at (the stages' inner bounds)
    facts = training_facts(pipes["UDASA"].store, pipes["UDASA"].run_id,
                           udasa_config(specs["UDASA"], ctx))
    inner = sorted({b for s in stages for b in (s.lo, s.hi) if abs(b) != float("inf")})
    assert facts["cuts"] == pytest.approx(inner) and len(inner) == 2
    assert cut_text(facts) == ("cut at the delta quantiles 1/3, 2/3: delta "
                               f"{inner[0]:.4g}, {inner[1]:.4g}")
    # an axis alone: u is that axis' uncertainty
    for f in pipes["UDASA sem alone"].store.fused(pipes["UDASA sem alone"].run_id):
        assert f.u == pytest.approx(f.components["sem"])
    # random pairs: seeded, so the same seed gives the same pairs in a fresh workspace
    again = medium_context(tmp_path / "ws2", tiny_policy, TINY)
    cfg = udasa_config(next(m for m in again.exp.methods if m.name == "UDASA random pairs"),
                       again)
    fresh = Pipeline(cfg, again.workspace)
    fresh.run_all()
    texts = [(p.chosen, p.rejected) for p in fresh.store.pairs(fresh.run_id)]
    assert texts == [(p.chosen, p.rejected) for p in
                     pipes["UDASA random pairs"].store.pairs(pipes["UDASA random pairs"].run_id)]
    assert run_id_of(cfg) == pipes["UDASA random pairs"].run_id
    assert gen_key_of(cfg) == pipes["UDASA"].gen_key


def test_methods_option_keeps_the_named_methods_for_a_split_run():
    """`udasa-eval run --experiment cpu-medium.yaml --methods RLAIF --tasks robustness` builds
    one method in a run of its own (the estimate's split, bench/results/medium-estimate.md)."""
    from evals.cli import _experiment, build_parser

    args = build_parser().parse_args(["run", "--experiment", str(MEDIUM), "--methods", "RLAIF",
                                      "UDASA", "--tasks", "truthfulqa_mc"])
    exp = _experiment(args)
    assert [m.name for m in exp.methods] == ["RLAIF", "UDASA"]
    assert [(t.name, t.methods) for t in exp.tasks] == [("truthfulqa_mc", ["RLAIF", "UDASA"])]
    args = build_parser().parse_args(["run", "--experiment", str(MEDIUM), "--methods", "ghost"])
    with pytest.raises(ConfigError, match=r"--methods: no method named \['ghost'\]"):
        _experiment(args)
