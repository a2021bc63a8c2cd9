"""Method kinds: how each experiment method becomes a model to evaluate.

A kind is one registered :class:`Method` (registry kind ``method``): ``check(spec, ctx)`` reads
and checks its own config file before any method is built, ``build(spec, ctx) -> EvalModel``
trains what the method needs first (resumably: generation, pairs and checkpoints are
content-keyed in the store). ``@method(kind)`` registers a plain builder function, a
:class:`DecodingMethod` is the policy under a registered decoder (vanilla, rain), and a training
baseline registers itself from its own module (``udasa.baselines.common.TrainedBaseline``).
`udasa-eval run --suite paper` is the shipped CPU experiment (`configs/experiments/cpu.yaml`);
`--suite rlaif rain` keeps the methods of those kinds from it. `run_experiment` builds every
method of an experiment file and evaluates it on the file's tasks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from evals.experiment import (
    ExperimentConfig,
    MethodSpec,
    judge_overrides,
    load_experiment,
    resolve_path,
)
from evals.models import EvalModel
from udasa import dist, registry
from udasa.configfile import apply_overrides, check_config, read_config_data
from udasa.errors import ConfigError
from udasa.store import Store

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
CPU_EXPERIMENT = CONFIGS / "experiments" / "cpu.yaml"
PAPER_SUITE = ["base", "vanilla", "rlaif", "rlcd", "rain", "udasa"]


@dataclass
class BuildContext:
    """What a method may use; `runs` collects each UDASA method's run id (for the premise),
    `trained` its run config and training facts (for the experiment's record)."""

    workspace: Path
    exp: ExperimentConfig
    progress: Callable[[str], None] = print
    runs: dict[str, str] = field(default_factory=dict)
    trained: dict[str, tuple[Any, dict]] = field(default_factory=dict)

    @property
    def store(self) -> Store:
        return Store(self.workspace)

    def config_path(self, spec: MethodSpec, default: str) -> Path:
        """The method's own config file (`spec.config`, else `default`), found beside the
        experiment, in the working folder or in the repository."""
        return resolve_path(self.exp, spec.config or default)

    def overrides_origin(self, spec: MethodSpec) -> str:
        """Where a method's overrides were written, for the errors they cause
        (``exp.yaml: methods[1].overrides``; the method's name for one outside the
        experiment)."""
        for i, listed in enumerate(self.exp.methods):
            if listed is spec:
                return f"{self.exp.path or 'experiment'}: methods[{i}].overrides"
        return spec.name

    def trained_overrides(self, spec: MethodSpec, path: Path) -> list[str]:
        """See :func:`trained_overrides`."""
        return trained_overrides(spec, self, path)

    def options(self, spec: MethodSpec, decoder: str) -> dict:
        """See :func:`decoder_options`."""
        return decoder_options(spec, self, decoder)

    def model(self, spec: MethodSpec, model: str | None = None, **kw) -> EvalModel:
        """The model to evaluate for `spec`: `model` (a checkpoint folder), else its policy."""
        rows = tuple(spec.paper_rows)
        if model is not None:
            return EvalModel(spec.name, model, limit=spec.limit, paper_rows=rows, **kw)
        return EvalModel(spec.name, policy_of(spec, self), spec.base_url, limit=spec.limit,
                         concurrency=spec.concurrency, paper_rows=rows, **kw)


class Method(Protocol):
    """A registered method kind."""

    def check(self, spec: MethodSpec, ctx: BuildContext) -> None:
        """Read and check the method's own config (nothing is built or stored)."""
        ...

    def build(self, spec: MethodSpec, ctx: BuildContext) -> EvalModel:
        """Train what the method needs (resumably) and return the model to evaluate."""
        ...


Builder = Callable[["MethodSpec", BuildContext], EvalModel]
Check = Callable[["MethodSpec", BuildContext], object]


def no_check(spec: MethodSpec, ctx: BuildContext) -> None:
    """A method without a config file of its own."""


@dataclass(frozen=True)
class FunctionMethod:
    """A method kind made of a builder function and a config check."""

    build: Builder
    check: Check = no_check


def method(kind: str, check: Check = no_check):
    """Decorator: register a builder ``fn(spec, ctx) -> EvalModel`` as the method kind `kind`;
    ``check(spec, ctx)`` reads its config file before any method is built."""
    def wrap(fn: Builder) -> Builder:
        registry.register("method", kind)(FunctionMethod(fn, check))
        return fn
    return wrap


def method_kinds() -> list[str]:
    """Every registered method kind, built-ins and plugins."""
    return registry.names("method")


def method_of(kind: str, what: str = "method kind") -> Method:
    return registry.lookup("method", kind, what)


def check_method_configs(ctx: BuildContext) -> None:
    """Every method's own config file read and checked before any method is built, so a bad
    file stops the experiment before anything is trained or stored."""
    for spec in ctx.exp.methods:
        method_of(spec.kind, f"{spec.name}: kind").check(spec, ctx)


def build_methods(ctx: BuildContext) -> list[EvalModel]:
    """Every method's model, in the experiment's order, each built in turn with its time."""
    check_method_configs(ctx)
    models = []
    for spec in ctx.exp.methods:
        start = time.perf_counter()
        models.append(method_of(spec.kind, f"{spec.name}: kind").build(spec, ctx))
        ctx.progress(f"{spec.name} ({spec.kind}) ready in {time.perf_counter() - start:.0f} s")
    return models


def suite_experiment(names: list[str]) -> ExperimentConfig:
    """`--suite paper` (every method of the CPU experiment) or the methods of the named kinds."""
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


def decoder_options(spec: MethodSpec, ctx: BuildContext, decoder: str) -> dict:
    """The settings of the registered `decoder` for a method: its config file (`base:`
    allowed) plus `key=value` overrides, checked against the decoder's settings class (its
    `settings()`: RainConfig for rain, VanillaOptions for sample) and returned as given (they
    key the method's cached outputs)."""
    path = ctx.config_path(spec, "") if spec.config else None
    data = read_config_data(path, "method config") if path else {}
    settings = registry.lookup("decoder", decoder, f"{spec.name}: decoder")().settings()
    if settings is not None:
        check_config(settings, data, path, spec.overrides, ctx.overrides_origin(spec))
    return apply_overrides(data, spec.overrides)


@dataclass(frozen=True)
class DecodingMethod:
    """A method kind that is the policy under a registered decoder, with the decoder's
    settings from the method's config file and overrides."""

    decoder: str

    def check(self, spec: MethodSpec, ctx: BuildContext) -> None:
        decoder_options(spec, ctx, self.decoder)

    def build(self, spec: MethodSpec, ctx: BuildContext) -> EvalModel:
        return ctx.model(spec, decoder=self.decoder,
                         options=decoder_options(spec, ctx, self.decoder))


registry.register("method", "vanilla")(DecodingMethod("sample"))
registry.register("method", "rain")(DecodingMethod("rain"))


@method("base")
def base(spec: MethodSpec, ctx: BuildContext) -> EvalModel:
    return ctx.model(spec)


def udasa_config(spec: MethodSpec, ctx: BuildContext):
    """A UDASA method's run config: its file (default the CPU demo's) plus overrides."""
    from udasa.config import load_config

    path = ctx.config_path(spec, "configs/cpu-demo.yaml")
    return load_config(path, trained_overrides(spec, ctx, path),
                       overrides_from=ctx.overrides_origin(spec))


@method("udasa", check=udasa_config)
def udasa_method(spec: MethodSpec, ctx: BuildContext) -> EvalModel:
    from evals.experiment_record import training_facts
    from udasa.keys import train_key_of
    from udasa.pipeline import Pipeline

    cfg = udasa_config(spec, ctx)
    pipe = Pipeline(cfg, ctx.workspace)
    pipe.run_all()
    ctx.runs[spec.name] = pipe.run_id
    ctx.trained[spec.name] = (cfg, training_facts(pipe.store, pipe.run_id, cfg))
    ckpts = [c for c in pipe.store.checkpoints(pipe.run_id, train_key_of(cfg.training))
             if c.path]
    if not ckpts:
        raise ConfigError(f"{spec.name}: the UDASA run produced no checkpoint")
    return ctx.model(spec, ckpts[-1].path)


def record_experiment(ctx: BuildContext) -> None:
    """The experiment's record for its report: each UDASA-kind method's training facts, and
    Table 3 scored as the main one (the first filling the paper's UDASA row, else the first)."""
    from evals.experiment_record import write_record, write_table3

    if not ctx.trained:
        return
    write_record(ctx.workspace, ctx.exp.name, {n: f for n, (_, f) in ctx.trained.items()})
    rows = {s.name: [r.lower() for r in s.paper_rows] for s in ctx.exp.methods}
    main = next((n for n in ctx.trained if "udasa" in rows.get(n, [])), next(iter(ctx.trained)))
    write_table3(ctx.workspace, ctx.trained[main][0])


def run_experiment(exp: ExperimentConfig, workspace: Path,
                   progress: Callable[[str], None] = print) -> dict[str, Any]:
    """Build every method, evaluate each task, test the premise, write the tables."""
    from evals.premise import read_premises, run_premise, write_premise
    from evals.results import load_results
    from evals.runner import EvalConfig, run_eval
    from evals.tables import write_tables

    ctx = BuildContext(workspace, exp, progress)
    models = build_methods(ctx)
    if not dist.finish():  # several processes trained together; the main one evaluates
        return {"evals": [], "premise": [], "tables": None}
    record_experiment(ctx)
    results = []
    for task in exp.tasks:
        listed = [m for spec, m in zip(exp.methods, models)
                  if (spec.tasks is None or task.name in spec.tasks)
                  and (task.methods is None or spec.name in task.methods)]
        if not listed:
            continue
        data = {task.name: str(resolve_path(exp, task.data))} if task.data else {}
        cfg = EvalConfig(workspace, listed, [task.name], limit=task.limit, seed=exp.seed,
                         judge=exp.judge, judge_base_url=exp.judge_base_url,
                         judge_model=exp.judge_model, judge_set=exp.judge_set, data=data,
                         experiment=exp.name,
                         data_given={task.name: task.data} if task.data else {})
        results.append(run_eval(cfg, progress=progress))
    premises = []
    if exp.premise and ctx.runs:
        from evals.judges.base import make_judge

        judge = make_judge(exp.judge, ctx.store, exp.judge_set, **judge_overrides(exp))
        for name, run_id in ctx.runs.items():
            for template in exp.premise:
                result = run_premise(ctx.store, run_id, judge, template) | {"method": name}
                premises.append(str(write_premise(result, workspace)))
    return {"evals": results, "premise": premises,
            "tables": write_tables(load_results(workspace), workspace, read_premises(workspace))}
