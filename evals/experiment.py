"""Experiments as data: methods, tasks, judge and seed in one YAML file (`configs/experiments/`).

`udasa-eval run --experiment FILE` builds whatever each method still lacks (generation, pairs
and training; content-keyed and resumable), evaluates every method on every task it is listed
for, tests the method's premise on each UDASA run, and writes the paper's tables
(`tables.md`). A method is a registered kind (`evals/suite.py`: base, vanilla, rain, udasa;
`udasa/baselines/`: rlaif, rlcd; or a plugin's) with its policy model, its own config file and
`key.sub=value` overrides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from udasa import registry
from udasa.configfile import load_config_file
from udasa.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


@dataclass
class MethodSpec:
    """One row of the tables: a registered method kind on a policy model."""

    name: str  # the leaderboard label
    kind: str  # a registered method kind: base | vanilla | rain | rlaif | rlcd | udasa | ...
    policy: str | None = None  # model spec; default: the experiment's policy
    base_url: str | None = None  # for an `openai:<model>` policy
    config: str | None = None  # the method's own config file (kind-specific)
    overrides: list[str] = field(default_factory=list)  # key.sub=value on that config
    labeler: str | None = None  # rlaif: the AI labeler (default: the policy)
    limit: int | None = None  # at most this many samples per task (e.g. RAIN: slow)
    tasks: list[str] | None = None  # evaluated on these tasks only (default: all)
    concurrency: int = 8  # an `openai:<model>` policy: requests in flight at once
    paper_rows: list[str] = field(default_factory=list)  # the paper's table rows it fills


@dataclass
class TaskSpec:
    name: str
    limit: int | None = 50
    data: str | None = None  # a data file or task config (default: the resolver's dataset)
    methods: list[str] | None = None  # only these methods (by name); default: every method


@dataclass
class ExperimentConfig:
    """The whole experiment (the YAML file's top level)."""

    name: str = "experiment"
    seed: int = 0
    policy: str = "embedded"  # every method's policy unless it names its own
    judge: str | None = None  # None: gpt4 with $OPENAI_API_KEY, else the offline default
    judge_base_url: str | None = None  # an OpenAI-compatible judge server (vLLM, ...)
    judge_model: str | None = None  # the model that server serves
    judge_set: list[str] = field(default_factory=list)  # field=value on the judge's config
    premise: list[str] = field(default_factory=lambda: ["harmless", "helpful"])
    methods: list[MethodSpec] = field(default_factory=list)
    tasks: list[TaskSpec] = field(default_factory=list)
    path: str = ""  # where it was read from (set by the loader)


def load_experiment(path: str | Path, overrides: Sequence[str] | None = None) -> ExperimentConfig:
    """Read and check an experiment file (`base:` inheritance; `--set key.sub=value`
    overrides, a number indexing a list: `tasks.0.limit=5`)."""
    exp = load_config_file(ExperimentConfig, path, overrides or (), "experiment file")
    exp.path = str(path)
    return check_experiment(exp)


def check_experiment(exp: ExperimentConfig) -> ExperimentConfig:
    where = exp.path or "experiment"
    if not exp.methods or not exp.tasks:
        raise ConfigError(f"{where}: needs at least one method and one task")
    names = [m.name for m in exp.methods]
    if dup := sorted({n for n in names if names.count(n) > 1}):
        raise ConfigError(f"{where}: methods: duplicate names {dup}")
    known_tasks, kinds = set(registry.names("task")), registry.names("method")
    for i, m in enumerate(exp.methods):
        if m.kind not in kinds:
            raise ConfigError(f"{where}: methods[{i}].kind: {m.kind!r} is not one of {kinds}")
        if bad := sorted(set(m.tasks or []) - known_tasks):
            raise ConfigError(f"{where}: methods[{i}].tasks: unknown {bad}")
    for i, t in enumerate(exp.tasks):
        registry.lookup("task", t.name, f"{where}: tasks[{i}].name")
        if bad := sorted(set(t.methods or []) - set(names)):
            raise ConfigError(f"{where}: tasks[{i}].methods: no method named {bad}")
    return exp


def resolve_path(exp: ExperimentConfig, value: str) -> Path:
    """A file named in the experiment: beside it, else from the working folder or the repo."""
    here = Path(exp.path).parent if exp.path else Path.cwd()
    for base in (here, Path.cwd(), REPO):
        if (base / value).exists():
            return base / value
    raise ConfigError(f"{exp.path or 'experiment'}: file {value!r} not found beside it, in the "
                      f"working folder or in the repository")


def judge_overrides(exp: ExperimentConfig) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if exp.judge_base_url:
        out["base_url"] = exp.judge_base_url
    if exp.judge_model:
        out["model"] = exp.judge_model
    return out
