"""Method kinds: how each experiment method becomes a model to evaluate.

A kind is one registered builder `fn(spec, ctx) -> EvalModel` that trains what the method
needs first (resumably: generation, pairs and checkpoints are content-keyed in the store).
`udasa-eval run --suite paper` is the shipped CPU experiment (`configs/experiments/cpu.yaml`);
`--suite rlaif rain` keeps the methods of those kinds from it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from evals.models import EvalModel
from udasa.configfile import apply_overrides, check_config, read_config_data, require
from udasa.errors import ConfigError
from udasa.store import Store

if TYPE_CHECKING:
    from evals.experiment import ExperimentConfig, MethodSpec

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
CPU_EXPERIMENT = CONFIGS / "experiments" / "cpu.yaml"
PAPER_SUITE = ["base", "vanilla", "rlaif", "rlcd", "rain", "udasa"]


@dataclass
class BuildContext:
    """What a builder may use; `runs` collects each UDASA method's run id (for the premise)."""

    workspace: Path
    exp: ExperimentConfig
    progress: Callable[[str], None] = print
    runs: dict[str, str] = field(default_factory=dict)

    @property
    def store(self) -> Store:
        return Store(self.workspace)


Builder = Callable[["MethodSpec", BuildContext], EvalModel]
_KINDS: dict[str, Builder] = {}


def method(kind: str):
    """Decorator: register a method kind's builder."""
    def wrap(fn: Builder) -> Builder:
        _KINDS[kind] = fn
        return fn
    return wrap


def method_kinds() -> list[str]:
    return list(_KINDS)


def check_method_configs(ctx: BuildContext) -> None:
    """Every method's own config file read and checked before any method is built, so a bad
    file stops the experiment before anything is trained or stored."""
    from evals.experiment import resolve_path
    from udasa.baselines.common import load_baseline_config
    from udasa.config import load_config

    for i, spec in enumerate(ctx.exp.methods):
        origin = f"{ctx.exp.path or 'experiment'}: methods[{i}].overrides"
        if spec.kind in ("vanilla", "rain"):
            _options(spec, ctx, origin)
        elif spec.kind in ("rlaif", "rlcd", "udasa"):
            default = ("configs/cpu-demo.yaml" if spec.kind == "udasa"
                       else f"configs/baselines/{spec.kind}.yaml")
            path = resolve_path(ctx.exp, spec.config or default)
            loader = load_config if spec.kind == "udasa" else load_baseline_config
            loader(path, trained_overrides(spec, ctx, path), overrides_from=origin)


def build_methods(ctx: BuildContext) -> list[EvalModel]:
    """Every method's model, in the experiment's order, each built in turn with its time."""
    check_method_configs(ctx)
    models = []
    for spec in ctx.exp.methods:
        start = time.perf_counter()
        models.append(_KINDS[spec.kind](spec, ctx))
        ctx.progress(f"{spec.name} ({spec.kind}) ready in {time.perf_counter() - start:.0f} s")
    return models


def suite_experiment(names: list[str]) -> ExperimentConfig:
    """`--suite paper` (every method of the CPU experiment) or the methods of the named kinds."""
    from evals.experiment import load_experiment

    exp = load_experiment(CPU_EXPERIMENT)
    if names == ["paper"]:
        return exp
    unknown = sorted(set(names) - set(method_kinds()))
    if unknown:
        raise ConfigError(f"--suite: unknown method(s) {unknown} (known: {method_kinds()})")
    exp.methods = [m for m in exp.methods if m.kind in names]
    kept = {m.name for m in exp.methods}
    for task in exp.tasks:
        task.methods = None if task.methods is None else [m for m in task.methods if m in kept]
    exp.tasks = [t for t in exp.tasks if t.methods is None or t.methods]
    return exp


def policy_of(spec: MethodSpec, ctx: BuildContext) -> str:
    return spec.policy or ctx.exp.policy


def trained_overrides(spec: MethodSpec, ctx: BuildContext, path: Path) -> list[str]:
    """The policy as the model to generate from (local backend) and to train, then overrides.

    A config whose generation goes through an OpenAI-compatible server (vLLM) keeps its own
    `generation.model` (the served name); the policy is then the local weights to train.
    """
    from udasa.configfile import read_config_data

    raw = read_config_data(path)
    policy = policy_of(spec, ctx)
    served = ((raw.get("generation") or {}).get("backend") == "openai")
    if policy.startswith("openai:"):
        raise ConfigError(f"{spec.name}: a {spec.kind} method trains its policy, so it needs "
                          f"local or hub weights, not {policy!r}")
    if not served:
        out = [f"generation.model={policy}"]
    else:  # UDASA trains `training.model`; the baselines train their generation model
        out = [f"training.model={policy}"] if spec.kind == "udasa" else []
    return [*out, *spec.overrides]


def _model(spec: MethodSpec, ctx: BuildContext, **kw) -> EvalModel:
    return EvalModel(spec.name, policy_of(spec, ctx), spec.base_url, limit=spec.limit,
                     concurrency=spec.concurrency, **kw)


@dataclass
class VanillaOptions:
    """A vanilla method's decoder settings (plain sampling)."""

    temperature: float = 0.7

    def validate(self) -> VanillaOptions:
        require(self.temperature >= 0, "temperature", "must be >= 0")
        return self


def _options_class(kind: str) -> type:
    """The settings class of a decoding method's options (RainConfig for RAIN)."""
    if kind == "rain":
        from udasa.baselines.rain import RainConfig

        return RainConfig
    return VanillaOptions


def _options(spec: MethodSpec, ctx: BuildContext, origin: str | None = None) -> dict:
    """The decoder settings of a vanilla or RAIN method: its config file (`base:` allowed)
    plus `key=value` overrides, checked against the decoder's settings class and returned as
    given (they key the method's cached outputs)."""
    from evals.experiment import resolve_path

    path = resolve_path(ctx.exp, spec.config) if spec.config else None
    data = read_config_data(path, "method config") if path else {}
    check_config(_options_class(spec.kind), data, path, spec.overrides, origin or spec.name)
    return apply_overrides(data, spec.overrides)


@method("base")
def base(spec: MethodSpec, ctx: BuildContext) -> EvalModel:
    return _model(spec, ctx)


@method("vanilla")
def vanilla(spec: MethodSpec, ctx: BuildContext) -> EvalModel:
    return _model(spec, ctx, decoder="sample", options=_options(spec, ctx))


@method("rain")
def rain(spec: MethodSpec, ctx: BuildContext) -> EvalModel:
    return _model(spec, ctx, decoder="rain", options=_options(spec, ctx))


def _trained(spec: MethodSpec, ctx: BuildContext) -> EvalModel:
    from evals.experiment import resolve_path
    from udasa.baselines import rlaif, rlcd
    from udasa.baselines.common import (
        baseline_run_id,
        load_baseline_config,
        store_pairs,
        train_baseline,
    )

    path = resolve_path(ctx.exp, spec.config or f"configs/baselines/{spec.kind}.yaml")
    overrides = trained_overrides(spec, ctx, path)
    if spec.labeler:
        overrides.append(f"rlaif.labeler={spec.labeler}")
    cfg = load_baseline_config(path, overrides)
    store = ctx.store
    if not store.pairs(baseline_run_id(cfg)):
        builder = rlaif.build_pairs if spec.kind == "rlaif" else rlcd.build_pairs
        store_pairs(store, cfg, builder(cfg), {"method": spec.kind})
    ckpt = train_baseline(store, cfg, ctx.workspace)
    if ckpt is None:
        raise ConfigError(f"{spec.name}: training produced no checkpoint (no usable pairs?)")
    return EvalModel(spec.name, ckpt, limit=spec.limit)


method("rlaif")(_trained)
method("rlcd")(_trained)


@method("udasa")
def udasa_method(spec: MethodSpec, ctx: BuildContext) -> EvalModel:
    from evals.experiment import resolve_path
    from udasa.config import load_config
    from udasa.keys import train_key_of
    from udasa.pipeline import Pipeline

    path = resolve_path(ctx.exp, spec.config or "configs/cpu-demo.yaml")
    cfg = load_config(path, trained_overrides(spec, ctx, path))
    pipe = Pipeline(cfg, ctx.workspace)
    pipe.run_all()
    ctx.runs[spec.name] = pipe.run_id
    ckpts = [c for c in pipe.store.checkpoints(pipe.run_id, train_key_of(cfg.training))
             if c.path]
    if not ckpts:
        raise ConfigError(f"{spec.name}: the UDASA run produced no checkpoint")
    return EvalModel(spec.name, ckpts[-1].path, limit=spec.limit)
