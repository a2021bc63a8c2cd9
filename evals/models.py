"""Models under evaluation: the embedded base, a checkpoint folder, a hub id, or an endpoint.

A model spec is a string: `base` (the embedded SmolLM2 policy), a local path, a hub id, or
`openai:<model>` (an OpenAI-compatible endpoint; `--base-url` and `$OPENAI_API_KEY`, with
`concurrency` requests in flight). Outputs are cached in the store, so a rerun generates
nothing it already has.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from evals.results import BASE_LABEL, method_label
from evals.store_tables import eval_runs
from udasa.config import GenerationConfig
from udasa.configfile import require
from udasa.errors import UdasaError
from udasa.generators import GenerationFailed, generate_many, make_generator
from udasa.keys import prompt_seed
from udasa.models import EMBEDDED, EMBEDDED_POLICY_ID, model_identity
from udasa.progress import StepProgress
from udasa.records import content_key
from udasa.registry import lookup, register
from udasa.store import Store
from udasa.store_records import Response

log = logging.getLogger(__name__)


class Decoder(Protocol):
    """How a model under evaluation decodes (registry kind ``decoder``; `EvalModel.decoder`
    names one: greedy, sample, rain, or a plugin's)."""

    def temperature(self, options: dict) -> float:
        """The sampling temperature of the generation settings."""
        ...

    def options(self, options: dict, task: str) -> dict:
        """The decoder settings for an eval task (part of the outputs' identity)."""
        ...

    def identity_options(self, options: dict) -> dict:
        """The part of the task's settings that identifies the outputs (the eval cache key)."""
        ...

    def generator(self, model: EvalModel, cfg: GenerationConfig, options: dict):
        """A generator (`udasa.generators.Generator`) for `cfg` under these settings."""
        ...

    def settings(self) -> type | None:
        """The dataclass a method's config file for this decoder is checked against (None:
        the options are taken as given)."""
        ...


@register("decoder", "greedy")
class Greedy:
    """Greedy decoding through the model's generator backend."""

    def temperature(self, options: dict) -> float:
        return 0.0

    def options(self, options: dict, task: str) -> dict:
        return options

    def identity_options(self, options: dict) -> dict:
        return options

    def generator(self, model: EvalModel, cfg: GenerationConfig, options: dict):
        return make_generator(cfg)

    def settings(self) -> type | None:
        return None


@dataclass
class VanillaOptions:
    """A vanilla method's decoder settings (plain sampling)."""

    temperature: float = 0.7

    def validate(self) -> VanillaOptions:
        require(self.temperature >= 0, "temperature", "must be >= 0")
        return self


@register("decoder", "sample")
class Sample(Greedy):
    """Sampling (the vanilla baseline) at the `temperature` option (default 0.7)."""

    def temperature(self, options: dict) -> float:
        return float(options.get("temperature", VanillaOptions.temperature))

    def settings(self) -> type | None:
        return VanillaOptions


@register("decoder", "rain")
class Rain(Greedy):
    """RAIN's inference-time search (options: RainConfig fields); it evaluates itself against
    the eval task's own goal."""

    def options(self, options: dict, task: str) -> dict:
        if not task:
            return options
        from udasa.baselines.rain import goal_of

        return options | {"task": goal_of(task, options.get("task", "harmless"))}

    def identity_options(self, options: dict) -> dict:
        """How many prompts search at once changes no answer; the sampler's version does."""
        from udasa.baselines.rain import RUN_SETTINGS, SAMPLER_VERSION

        return {k: v for k, v in options.items() if k not in RUN_SETTINGS} | {
            "sampler_version": SAMPLER_VERSION}

    def settings(self) -> type | None:
        from udasa.baselines.rain import RainConfig

        return RainConfig

    def generator(self, model: EvalModel, cfg: GenerationConfig, options: dict):
        from udasa.baselines.rain import RainConfig, RainGenerator

        return RainGenerator(RainConfig.from_options(
            {"model": cfg.model, "max_new_tokens": cfg.max_new_tokens, **options},
            f"{model.name} (rain)"))


@dataclass
class EvalModel:
    """One model (or method) under evaluation."""

    name: str  # the leaderboard row label
    spec: str
    base_url: str | None = None
    decoder: str = "greedy"  # a registered decoder: greedy | sample (vanilla) | rain | ...
    options: dict = field(default_factory=dict)  # decoder settings (RainConfig fields)
    limit: int | None = None  # at most this many samples per task (not part of the identity)
    concurrency: int = 8  # openai: requests in flight (not part of the identity)
    paper_rows: tuple[str, ...] = ()  # the paper's table rows it fills (not part of the identity)

    def decoding(self) -> Decoder:
        """The registered decoder this model names."""
        return lookup("decoder", self.decoder, f"{self.name}: decoder")()

    def generation_config(self, max_new_tokens: int) -> GenerationConfig:
        temperature = self.decoding().temperature(self.options)
        if self.spec.startswith("openai:"):
            return GenerationConfig(backend="openai", model=self.spec.split(":", 1)[1],
                                    base_url=self.base_url, temperature=temperature, n=1,
                                    max_new_tokens=max_new_tokens,
                                    concurrency=self.concurrency)
        model = EMBEDDED if self.spec == "base" else self.spec
        return GenerationConfig(model=model, temperature=temperature, n=1,
                                max_new_tokens=max_new_tokens)

    def decoder_options(self, task: str = "") -> dict:
        """The decoder settings for eval task `task` (RAIN: against the task's own goal)."""
        return self.decoding().options(self.options, task)

    def identity(self, task: str = "") -> dict:
        cfg = self.generation_config(0)
        ident = ({"id": f"openai:{cfg.model}", "base_url": cfg.base_url}
                 if cfg.backend == "openai" else model_identity(cfg.model))
        options = self.decoding().identity_options(self.decoder_options(task))
        return ident | {"decoder": self.decoder, "options": options}

    def generator(self, max_new_tokens: int, task: str = ""):
        return self.decoding().generator(self, self.generation_config(max_new_tokens),
                                         self.decoder_options(task))

    def generate(self, store: Store, prompts: list[tuple[str, str]], max_new_tokens: int,
                 desc: str = "", task: str = "") -> dict[str, str]:
        """Outputs for (prompt_id, text) pairs, cached in the store by model + settings.

        Every missing prompt goes to the generator at once (batched locally by the engine,
        concurrent over HTTP; RAIN searches `batch_prompts` of them in lockstep), seeded per
        prompt, and is stored as soon as it is done.
        `task` (an eval task name) sets RAIN's self-evaluation goal.
        """
        gen_key = content_key("eval", json.dumps(self.identity(task), sort_keys=True),
                              str(max_new_tokens))
        have = {r.prompt_id: r.text for r in store.responses(gen_key)}
        todo = [(pid, text) for pid, text in prompts if pid not in have]
        if todo:
            generator = self.generator(max_new_tokens, task)
            seeds = [prompt_seed(0, pid) for pid, _ in todo]
            with StepProgress(len(todo), desc or f"generate {self.name}") as bar:
                for i, out in generate_many(generator, [t for _, t in todo], 1, seeds,
                                            bar.tokens):
                    bar.update()
                    pid = todo[i][0]
                    if isinstance(out, GenerationFailed):
                        log.warning("%s: %s", pid, out)  # not stored: a rerun asks again
                        have[pid] = ""
                        continue
                    text = "" if isinstance(out, UdasaError) else out[0]  # too long: empty
                    store.add_responses([Response.single(gen_key, pid, text, self.name)])
                    have[pid] = text
        return {pid: have[pid] for pid, _ in prompts}


def default_models(store: Store, all_stages: bool = False) -> list[EvalModel]:
    """The embedded base model and each stored training's final stage checkpoint (every stage
    with ``all_stages``: the curriculum's intermediate models too)."""
    models = [EvalModel(BASE_LABEL, "base")]
    labels = checkpoint_labels(store)
    stored = [c for c in store.checkpoints() if c.path]
    last: dict[tuple[str, str], int] = {}  # each training's final stage
    for c in stored:
        last[c.run_id, c.train_key] = max(last.get((c.run_id, c.train_key), 0), c.stage)
    for c in stored:
        if all_stages or c.stage == last[c.run_id, c.train_key]:
            models.append(EvalModel(f"{labels[c.run_id, c.train_key]} stage {c.stage} "
                                    f"({c.name})", c.path))
    return models


def generator_name(spec: str) -> str:
    """The `model` a run's responses record for the generator of a model spec (what
    `udasa.generators` names it), without loading or hashing anything."""
    if spec in ("base", EMBEDDED):
        return EMBEDDED_POLICY_ID
    path = Path(spec)
    return str(path.resolve()) if path.is_dir() else spec


def label_aliases(store: Store) -> dict[str, str]:
    """Generator id -> the label its model was evaluated under (greedy methods of the stored
    evaluations, latest last): a run's replies, rated by people, land on the row of the
    method whose model wrote them, beside its judge scores."""
    out: dict[str, str] = {}
    for run in eval_runs(store):
        for m in run.config.get("models", []):
            if m.get("decoder", "greedy") == "greedy" and m.get("spec"):
                out[generator_name(m["spec"])] = method_label(m["name"])
    return out


def _flat(data: object, prefix: str = "") -> dict[str, str]:
    if isinstance(data, dict):
        return {k: v for key, val in data.items() for k, v in _flat(val, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): json.dumps(data)}


def checkpoint_labels(store: Store) -> dict[tuple[str, str], str]:
    """A label per trained (run, training settings): the run's config name (`cpu-demo`,
    `ablation-no-val`); where runs share a name, the config fields that tell them apart
    (`cpu-demo curriculum.thresholds=[0.3, 0.6]`); several trainings of one run add
    `training <key>`."""
    runs = {r.id: r for r in store.runs()}
    trained = list(dict.fromkeys((c.run_id, c.train_key) for c in store.checkpoints()))
    names = {run: runs[run].name if run in runs else run[:6] for run, _ in trained}
    labels = {}
    for run, train in trained:
        same = {r for r, _ in trained if names[r] == names[run]}
        label = names[run]
        if len(same) > 1:
            configs = {r: _flat({k: v for k, v in runs[r].config.items()
                                 if k not in ("training", "name")}) if r in runs else {}
                       for r in same}
            differ = sorted(k for k in set().union(*configs.values())
                            if len({c.get(k) for c in configs.values()}) > 1)
            label += "".join(f" {k}={configs[run].get(k, '-')}" for k in differ) or f" {run[:6]}"
        if sum(1 for r, _ in trained if r == run) > 1:
            label += f" training {train[:6]}"
        labels[run, train] = label
    return labels
