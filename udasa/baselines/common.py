"""What the training baselines share: a config, storing their pairs as a one-stage run, and
training that run with the same phased-DPO trainer as UDASA (one stage).

The originals (RLAIF, RLCD) trained a reward model and ran PPO; here their preference pairs
train the policy with DPO in a single stage, the same trainer UDASA uses (RLAIF's soft labels
through the conservative DPO loss, udasa/training.py `SoftLabelDPOTrainer`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from udasa import dist, registry
from udasa.config import DataConfig, GenerationConfig, RunConfig, TrainingConfig, to_dict
from udasa.configfile import check_choices, load_config_file, require
from udasa.data import load_prompts
from udasa.errors import ConfigError
from udasa.keys import SCHEDULING, drop_added_defaults, train_key_of
from udasa.records import Prompt, content_key
from udasa.store import Store
from udasa.store_records import PreferencePair, Response, RunStage

BASELINE_RUN_PREFIX = "baseline:"  # a baseline run's name: this prefix and its method


@dataclass
class RlcdOptions:
    task: str = "harmless"  # descriptor pairs: resources/baselines/rlcd/<task>.yaml


@dataclass
class RlaifOptions:
    labeler: str = ""  # model spec of the AI labeller (path, hub id, embedded); "" = the policy
    constitution: str = "harmless"  # resources/baselines/rlaif/<name>.txt, or a file path
    chain_of_thought: bool = False  # the labeller reasons before its label
    cot_tokens: int = 96  # greedy reasoning tokens at most
    hard_labels: bool = False  # train on 0/1 labels instead of each pair's probability
    clamp_cot: bool = False  # chain-of-thought labels clamped into [0.4, 0.6] (Constitutional AI)


@dataclass
class BaselineConfig:
    """A training baseline: prompts, the policy's generation settings, DPO settings."""

    method: str = "rlaif"  # a registered trained baseline: rlaif, rlcd, or a plugin's
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    generation: GenerationConfig = field(default_factory=lambda: GenerationConfig(n=2))
    training: TrainingConfig = field(default_factory=TrainingConfig)
    rlcd: RlcdOptions = field(default_factory=RlcdOptions)
    rlaif: RlaifOptions = field(default_factory=RlaifOptions)

    def validate(self) -> BaselineConfig:
        """Raise ConfigError naming the first invalid field (the run config's checks)."""
        check_choices(self)
        kinds = trained_baseline_kinds()
        require(self.method in kinds, "method",
                f"{self.method!r} is not one of {', '.join(map(repr, kinds))}")
        require(self.rlaif.chain_of_thought or not self.rlaif.clamp_cot, "rlaif.clamp_cot",
                "clamps chain-of-thought labels: needs rlaif.chain_of_thought: true")
        RunConfig(generation=self.generation, training=self.training).validate()
        return self


def trained_baseline_kinds() -> list[str]:
    """The method kinds registered as a `TrainedBaseline` (rlaif, rlcd, a plugin's)."""
    return [n for n in registry.names("method")
            if isinstance(registry.lookup("method", n), TrainedBaseline)]


def load_baseline_config(path: str | Path, overrides: Sequence[str] | None = None,
                         overrides_from: str | None = None) -> BaselineConfig:
    """A baseline config file (`base:` and `key.sub=value` overrides as for run configs)."""
    return load_config_file(BaselineConfig, path, overrides or (), "baseline config",
                            overrides_from)


@dataclass
class BaselinePair:
    prompt: Prompt
    chosen: str
    rejected: str
    soft_label: float = 1.0  # P(chosen preferred); 1.0 for hard labels
    meta: dict = field(default_factory=dict)


def baseline_run_id(cfg: BaselineConfig) -> str:
    """The baseline's pairs are keyed by its settings up to the pairs (as `run_id_of`) and, once
    raised, by its method's `pairs_version` (stored pairs of an older sampler are not reused)."""
    data = drop_added_defaults(to_dict(cfg))
    version = getattr(registry.lookup("method", cfg.method, "method"), "pairs_version", 0)
    if version:  # absent at 0: keys made before versions existed stay as they were
        data["pairs_version"] = version
    data.pop("training")
    data["rlaif"].pop("hard_labels")  # a training choice: it keys the checkpoints instead
    if not cfg.rlaif.clamp_cot:  # absent when off: keys made before the option stay as they were
        data["rlaif"].pop("clamp_cot")
    data.pop("rlcd" if cfg.method == "rlaif" else "rlaif")
    for name in SCHEDULING:  # batch size and concurrency do not change what is generated
        data["generation"].pop(name)
    return content_key("baseline", json.dumps(data, sort_keys=True))


def baseline_gen_key(run_id: str) -> str:
    """The generation key a baseline run's replies are stored under (see `store_pairs`)."""
    return content_key(run_id, "responses")


def soft_labels_of(cfg: BaselineConfig) -> bool:
    """Whether DPO trains on each pair's own label (RLAIF unless hard labels are asked for)."""
    return cfg.method == "rlaif" and not cfg.rlaif.hard_labels


def prompts_of(cfg: BaselineConfig) -> list[Prompt]:
    d = cfg.data
    return load_prompts(d.source, limit=d.limit, column=d.column, split=d.split,
                        sample=d.sample, seed=cfg.seed).prompts


def store_pairs(store: Store, cfg: BaselineConfig, pairs: list[BaselinePair],
                manifest: dict) -> str:
    """Record the baseline's pairs as a one-stage run (trainable by CurriculumTrainer)."""
    run_id = baseline_run_id(cfg)
    gen_key = baseline_gen_key(run_id)
    store.upsert_run(run_id, f"{BASELINE_RUN_PREFIX}{cfg.method}", to_dict(cfg), manifest)
    store.add_prompts(run_id, [p.prompt for p in pairs])
    responses, rows = [], []
    for pair in pairs:
        chosen, rejected = (Response.sampled(gen_key, pair.prompt.id, i, text, cfg.method)
                            for i, text in enumerate((pair.chosen, pair.rejected)))
        responses += [chosen, rejected]
        rows.append(PreferencePair(run_id=run_id, prompt_id=pair.prompt.id,
                                   chosen_id=chosen.id, rejected_id=rejected.id,
                                   delta=abs(2 * pair.soft_label - 1), stage=1,
                                   soft_label=pair.soft_label))
    store.add_responses(responses)
    store.replace_pairs(run_id, [], rows)
    store.replace_stages(run_id, {r.key: 1 for r in rows}, [RunStage(
        run_id=run_id, stage=1, name="all", lo=float("-inf"), hi=float("inf"),
        count=len(rows))])
    store.set_run_status(run_id, "pairs-ready")
    return run_id


def train_baseline(store: Store, cfg: BaselineConfig, workspace: Path) -> str | None:
    """One-stage DPO on the stored pairs; returns the checkpoint path."""
    from udasa.training import CurriculumTrainer

    run_id = baseline_run_id(cfg)
    soft = soft_labels_of(cfg)
    train_key = train_key_of(cfg.training, soft_labels=soft)
    trainer = CurriculumTrainer(store, run_id, train_key, cfg.training, cfg.generation.model,
                                "disjoint", cfg.seed,
                                workspace / "checkpoints" / run_id / train_key,
                                soft_labels=soft)
    trainer.train()
    ckpts = dist.from_main(lambda: store.checkpoints(run_id, train_key))
    return ckpts[-1].path if ckpts and ckpts[-1].path else None


@dataclass(frozen=True)
class TrainedBaseline:
    """The method kind of a training baseline (registered from its own module as
    ``register("method", kind)(TrainedBaseline(kind, build_pairs))``): build the preference
    pairs once (stored as a one-stage run), train the policy on them with DPO, evaluate the
    checkpoint. `ctx` is `evals.suite.BuildContext`; `spec` an experiment's `MethodSpec`."""

    kind: str
    build_pairs: Callable[[BaselineConfig], list[BaselinePair]]
    labeler_field: str | None = None  # where an experiment's `labeler:` goes (rlaif.labeler)
    pairs_version: int = 0  # raised when the same config makes other pairs (a new sampler)

    def config(self, spec: Any, ctx: Any) -> BaselineConfig:
        """Its config file (default configs/baselines/<kind>.yaml) with the policy and the
        experiment's overrides, read as this method (`method:` becomes the kind; a file's own
        `method:` must still name a trained baseline)."""
        path = ctx.config_path(spec, f"configs/baselines/{self.kind}.yaml")
        overrides = ctx.trained_overrides(spec, path)
        if spec.labeler and self.labeler_field:
            overrides.append(f"{self.labeler_field}={spec.labeler}")
        cfg = load_baseline_config(path, overrides, ctx.overrides_origin(spec))
        return replace(cfg, method=self.kind)

    def check(self, spec: Any, ctx: Any) -> None:
        self.config(spec, ctx)

    def build(self, spec: Any, ctx: Any) -> Any:
        cfg = self.config(spec, ctx)
        store = ctx.store
        dist.on_main(lambda: store.pairs(baseline_run_id(cfg)) or store_pairs(
            store, cfg, self.build_pairs(cfg), {"method": spec.kind}))  # others wait
        ckpt = train_baseline(store, cfg, ctx.workspace)
        if ckpt is None:
            raise ConfigError(f"{spec.name}: training produced no checkpoint (no usable pairs?)")
        return ctx.model(spec, ckpt)
