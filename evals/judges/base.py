"""Judges: one interface over LLM backends, with caching in the store, stats and costs.

A judge is a folder ``evals/judges/<name>/`` holding ``config.yaml`` and its prompt templates
(AlpacaEval style). ``Judge.judge(template, items)`` renders the template with each item's
fields, answers what the store has cached (only successful calls are cache hits), sends the rest
to the backend its config names (a registered ``judge_backend``: ``openai``, any
OpenAI-compatible server; ``hf``, a local transformers model; ``learned``), and records every call, failures included, in the store's ``judge_cache`` table.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import string
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from evals.judges.parse import Scale
from evals.store_tables import JudgeCall, add_judgement, judge_cached
from udasa import registry
from udasa.configfile import apply_overrides, blamed_on, build, read_config_data, require
from udasa.errors import ConfigError
from udasa.files import read_settings_text
from udasa.records import content_key

if TYPE_CHECKING:
    from udasa.store import Store

log = logging.getLogger("evals.judges")

JUDGES_DIR = Path(__file__).resolve().parent
OPTIONAL_FIELDS = {"references": "(none given)"}  # template fields an item may leave out


@dataclass(frozen=True)
class Template:
    """One prompt file of a judge and the scale its replies are read on."""

    name: str
    path: Path
    scale: Scale
    text: str

    def field_names(self) -> set[str]:
        """The ``{fields}`` the prompt file names (a ConfigError when it is no template)."""
        try:
            return {f for _, f, _, _ in string.Formatter().parse(self.text) if f}
        except ValueError as exc:
            raise ConfigError(f"{self.path}: not a prompt template ({exc}; write a literal "
                              "brace as {{ or }})") from None

    def render(self, item: dict[str, Any]) -> str:
        """The prompt for one item (its keys are the template's ``{fields}``)."""
        fields = self.field_names()
        missing = fields - item.keys() - OPTIONAL_FIELDS.keys()
        if missing:
            raise ConfigError(f"template {self.name!r} ({self.path}) needs fields "
                              f"{sorted(missing)}; the item has {sorted(item)}")
        values = {f: _as_text(item[f]) if item.get(f) not in (None, "", []) else
                  OPTIONAL_FIELDS.get(f, "") for f in fields}
        return self.text.format(**values)


def _as_text(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "; ".join(str(v) for v in value)
    return str(value)


@dataclass
class JudgeConfig:
    """A judge's ``config.yaml``: backend, model, call settings, prices and templates."""

    name: str
    backend: str
    model: str
    label: str
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    temperature: float = 0.0
    max_tokens: int = 16
    concurrency: int = 16
    max_retries: int = 6
    backoff_base_s: float = 0.5
    backoff_max_s: float = 20.0
    timeout_s: float = 60.0
    price_prompt_per_1k: float | None = None
    price_completion_per_1k: float | None = None
    batch_size: int = 8
    templates: dict[str, Template] = field(default_factory=dict)

    def validate(self) -> JudgeConfig:
        """Raise ConfigError naming the first field out of range."""
        require(self.max_tokens >= 1, "max_tokens", "must be >= 1")
        require(self.concurrency >= 1, "concurrency", "must be >= 1")
        require(self.max_retries >= 0, "max_retries", "must be >= 0")
        require(self.batch_size >= 1, "batch_size", "must be >= 1")
        require(self.timeout_s > 0, "timeout_s", "must be > 0")
        require(self.temperature >= 0, "temperature", "must be >= 0")
        return self

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float | None:
        """USD for one call, or None when no price is configured."""
        if self.price_prompt_per_1k is None and self.price_completion_per_1k is None:
            return None
        return (prompt_tokens * (self.price_prompt_per_1k or 0.0)
                + completion_tokens * (self.price_completion_per_1k or 0.0)) / 1000


def available_judges() -> list[str]:
    return sorted(p.parent.name for p in JUDGES_DIR.glob("*/config.yaml"))


@dataclass
class TemplateSpec:
    """One entry of a judge config's ``templates``: its prompt file and reply scale."""

    file: str  # relative to the config file that names it
    scale: Scale


def judge_config_path(name_or_path: str | Path) -> Path:
    """The config file of a shipped judge (``gpt4``, ``local``), a judge folder or a file."""
    path = Path(name_or_path)
    if not path.exists():
        path = JUDGES_DIR / str(name_or_path)
        if not path.is_dir():
            raise ConfigError(f"unknown judge {str(name_or_path)!r}: not a path, and not one of "
                              f"{available_judges()}")
    return path / "config.yaml" if path.is_dir() else path


def load_judge_config(name_or_path: str | Path, overrides: Sequence[str] = ()) -> JudgeConfig:
    """Load a shipped judge by name (``gpt4``, ``local``) or any judge folder / config file,
    with `base:` inheritance and ``field=value`` overrides.

    A bad file is a ConfigError naming the file and the line or field at fault."""
    path = judge_config_path(name_or_path)
    raw = read_config_data(path, "judge config", prepare=_absolute_prompt_files)
    data = apply_overrides(raw, overrides)
    with blamed_on(path, overrides):
        specs = build(dict[str, TemplateSpec], data.pop("templates", None) or {}, "templates")
        config = build(JudgeConfig, data).validate()
    templates = {}
    for tname, spec in specs.items():
        text = read_settings_text(spec.file, f"prompt file of template {tname!r} ({path})")
        templates[tname] = Template(tname, Path(spec.file), spec.scale, text)
        templates[tname].field_names()  # a prompt file that is no template fails here
    return dataclasses.replace(config, templates=templates)


def _absolute_prompt_files(data: dict[str, Any], path: Path) -> dict[str, Any]:
    """Each template's `file` made absolute against the folder of the config naming it (so
    that a judge built on another with `base:` keeps that one's prompt files)."""
    specs = data.get("templates")
    for spec in specs.values() if isinstance(specs, dict) else ():
        if isinstance(spec, dict) and isinstance(spec.get("file"), str):
            spec["file"] = str((path.parent / spec["file"]).resolve())
    return data


@dataclass
class Judgement:
    """One judged item. ``score`` is None whenever ``ok`` is False (never a stand-in 0)."""

    score: float | None
    ok: bool
    reply: str
    error: str = ""
    cached: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None
    attempts: int = 1
    key: str = ""


@dataclass
class JudgeStats:
    """What a judge spent in this process (cache hits cost nothing). Thread-safe."""

    calls: int = 0          # requests sent (each retry counts) / items scored locally
    cache_hits: int = 0
    retries: int = 0
    failures: int = 0       # items that ended without a score
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **amounts: float) -> None:
        with self._lock:
            for name, amount in amounts.items():
                setattr(self, name, getattr(self, name) + amount)

    def as_dict(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if not f.name.startswith("_")}


class Backend(Protocol):
    """What a judge backend provides; built with ``(config, stats)``. Optional: ``label(template)``
    and ``agreements()`` (see :class:`Judge`), ``run_items`` (judges the items' fields rather
    than rendered prompts) and ``judges_truthfulness = False`` (its verdicts on truthfulness are
    not to be trusted)."""

    model_name: str  # the judge model as the cache key and the store record it

    def params(self, template: Template) -> dict[str, Any]:
        """The call settings that change a reply (part of the cache key; never secrets)."""
        ...

    def run(self, prompts: list[str], template: Template) -> Iterator[tuple[int, Judgement]]:
        """Judge `prompts`, yielding (index, judgement) as each finishes, in any order."""
        ...


def _backend(config: JudgeConfig, stats: JudgeStats) -> Backend:
    """The backend the config names, from the registry (each backend module registers itself
    as ``judge_backend``: openai, hf, learned, or a plugin's)."""
    backend = registry.lookup("judge_backend", config.backend, f"judge {config.name!r}: backend")
    return backend(config, stats)


class Judge:
    """A judge over one backend, cached in `store` (None: no caching)."""

    def __init__(self, config: JudgeConfig, store: Store | None = None):
        self.config = config
        self.store = store
        self.stats = JudgeStats()
        self.backend = _backend(config, self.stats)

    @property
    def label(self) -> str:
        """How tables name this judge (the local one says it stands in for GPT-4)."""
        return self.config.label

    def label_for(self, template: str) -> str:
        """How tables name this judge's verdicts on `template` (a learned judge adds its
        measured agreement with human labels)."""
        label = getattr(self.backend, "label", None)
        return label(template) if callable(label) else self.config.label

    @property
    def judges_truthfulness(self) -> bool:
        """Whether this judge can tell a true answer from a false one (its `truthful` and
        `informative` verdicts are to be trusted); False for the small local stand-in, and tasks
        then judge truthfulness against the dataset's reference answers."""
        return bool(getattr(self.backend, "judges_truthfulness", True))

    def agreements(self) -> list[dict[str, Any]]:
        """Measured agreement with human labels of the judges used so far (learned only)."""
        found = getattr(self.backend, "agreements", None)
        return found() if callable(found) else []

    def template(self, name: str) -> Template:
        if name not in self.config.templates:
            raise ConfigError(f"judge {self.config.name!r} has no template {name!r}; it has "
                             f"{sorted(self.config.templates)}")
        return self.config.templates[name]

    def judge(self, template: str, items: list[dict[str, Any]]) -> list[Judgement]:
        """Judge each item (its template fields) with `template`; results in item order."""
        tpl = self.template(template)
        prompts = [tpl.render(item) for item in items]
        params = json.dumps(self.backend.params(tpl), sort_keys=True)
        keys = [content_key(self.backend.model_name, p, params) for p in prompts]
        results: list[Judgement | None] = [None] * len(items)
        todo: dict[str, list[int]] = {}  # key -> item positions (identical prompts: one call)
        for i, key in enumerate(keys):
            call = judge_cached(self.store, key) if self.store is not None else None
            if call is not None and call.ok:
                results[i] = _from_call(call)
                self.stats.add(cache_hits=1)
            else:
                todo.setdefault(key, []).append(i)
        pending = list(todo)
        by_items = getattr(self.backend, "run_items", None)  # backends that read the fields
        runs = (by_items([items[todo[k][0]] for k in pending], tpl) if by_items else
                self.backend.run([prompts[todo[k][0]] for k in pending], tpl))
        for j, judgement in runs:
            key = pending[j]
            judgement.key = key
            if not judgement.ok:
                self.stats.add(failures=1)
            if self.store is not None:  # written as each call finishes: a killed run keeps them
                add_judgement(self.store, _to_call(judgement, self.config.name,
                                                   self.backend.model_name,
                                                   prompts[todo[key][0]], params))
            for i in todo[key]:
                results[i] = judgement
        assert all(r is not None for r in results)
        return results  # type: ignore[return-value]


def _to_call(j: Judgement, judge: str, model: str, prompt: str, params: str) -> JudgeCall:
    return JudgeCall(key=j.key, judge=judge, model=model, prompt=prompt, params=params,
                     reply=j.reply, score=j.score, ok=j.ok, error=j.error,
                     prompt_tokens=j.prompt_tokens, completion_tokens=j.completion_tokens,
                     cost_usd=j.cost_usd)


def _from_call(call: JudgeCall) -> Judgement:
    return Judgement(score=call.score, ok=call.ok, reply=call.reply or "",
                     error=call.error or "", cached=True, prompt_tokens=call.prompt_tokens or 0,
                     completion_tokens=call.completion_tokens or 0, cost_usd=call.cost_usd,
                     attempts=0, key=call.key)


def summarize(judgements: list[Judgement]) -> dict[str, Any]:
    """Mean score over the parsed judgements only; failures are counted, never averaged in."""
    scores = [j.score for j in judgements if j.ok and j.score is not None]
    return {"mean": sum(scores) / len(scores) if scores else None, "n": len(scores),
            "failures": len(judgements) - len(scores)}


def default_judge_name() -> str:
    """``gpt4`` when OPENAI_API_KEY is set, else the ``learned`` judges (trained on human
    labels; the SmolLM2 stand-in ``local`` stays selectable by name)."""
    return "gpt4" if os.environ.get("OPENAI_API_KEY") else "learned"


def make_judge(name_or_path: str | Path | None = None, store: Store | None = None,
               settings: Sequence[str] = (), **overrides: Any) -> Judge:
    """The named judge (None: :func:`default_judge_name`), with ``field=value`` `settings`
    (``--judge-set``) and then `overrides` (field values) applied, both checked."""
    items = [*settings, *(f"{k}={json.dumps(v)}" for k, v in overrides.items())]
    return Judge(load_judge_config(name_or_path or default_judge_name(), items), store)
