"""The attack interface of the `robustness` task: an attack turns each test behaviour into the
user turns to try (registry kind ``attack``; `robustness.mode` names one).

A new attack is one module that registers itself::

    @register("attack", "my-attack")
    class MyAttack(BaseAttack):
        def run(self, ctx, test, train):
            return AttackRun({"mine": {b.id: b.goal + " please" for b in test}})

The task then generates every user turn with the model under test, applies the success
criteria and reports `asr_<name>_<criterion>` per attack name with Wilson CIs.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from attacks.gcg import Behaviour, GCGConfig, GCGResult, load_gcg_config
from attacks.store_tables import AttackSuffix, add_attack_suffix, attack_suffix
from udasa.models import EMBEDDED

if TYPE_CHECKING:
    from evals.models import EvalModel
    from evals.tasks.robustness import RobustnessConfig
    from udasa.store import Store

REPO = Path(__file__).resolve().parents[1]


@dataclass
class AttackRun:
    """What an attack made of the test behaviours (or why it could not attack this model)."""

    prompts: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> id -> user turn
    extra: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> per-sample fields
    notes: list[str] = field(default_factory=list)
    skipped: str = ""  # non-empty: no metrics for this model, and why


@dataclass
class AttackContext:
    """What an attack may use: the task's settings, the model under test, the store."""

    cfg: RobustnessConfig
    model: EvalModel
    store: Store

    @property
    def workspace(self) -> Path:
        return Path(self.store.workspace)


class Attack(Protocol):
    """A registered attack."""

    holds_out_train: bool  # the first `n_train` behaviours are its training set, not tested

    def check(self, cfg: RobustnessConfig) -> None:
        """Check the task settings it needs (no files read): `udasa.configfile.require`, so the
        error names the file and the field."""
        ...

    def check_files(self, cfg: RobustnessConfig) -> None:
        """Read the files it will need, before any model runs."""
        ...

    def run(self, ctx: AttackContext, test: list[Behaviour], train: list[Behaviour]
            ) -> AttackRun:
        """The user turns to try on `ctx.model`, per attack name and behaviour id."""
        ...


class BaseAttack:
    """Defaults for an attack: no settings of its own, no files, nothing held out."""

    holds_out_train = False

    def check(self, cfg: RobustnessConfig) -> None:
        return None

    def check_files(self, cfg: RobustnessConfig) -> None:
        return None


def resolve(path: str) -> Path:
    """A file named in a task config: as given (cwd), else relative to the repository."""
    p = Path(path).expanduser()
    return p if p.is_absolute() or p.exists() else REPO / p


def slug(text: str) -> str:
    keep = "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")
    return "-".join(p for p in keep.split("-") if p)[:40] or "model"


def local_lm(spec: str):
    """A local model and tokenizer for a model spec (`base`: the embedded policy)."""
    from udasa.models import load_causal_lm

    return load_causal_lm(EMBEDDED if spec == "base" else spec)


def gcg_config(cfg: RobustnessConfig) -> GCGConfig:
    """The task's GCG config; the in-loop success test uses the task's criterion, so both
    agree."""
    gcfg = load_gcg_config(resolve(cfg.gcg),
                           [f"{k}={json.dumps(v)}" for k, v in cfg.gcg_overrides.items()])
    return dataclasses.replace(gcfg, prefix_list=cfg.prefix_list,
                               max_new_tokens=cfg.max_new_tokens)


def gcg_note(gcfg: GCGConfig) -> str:
    return (f"GCG num_steps={gcfg.num_steps}, search_width={gcfg.search_width}, "
            f"topk={gcfg.topk}, init={gcfg.init!r}, seed={gcfg.seed}, "
            f"early_stop={gcfg.early_stop}")


def cached_gcg(store: Store, key: str, mode: str, target: str, behaviours: list[Behaviour],
               run) -> dict[str, Any]:
    """A suffix from the store's `attack_suffixes` table, or run GCG and store it."""
    row = attack_suffix(store, key)
    if row is None:
        result: GCGResult = run()
        add_attack_suffix(store, AttackSuffix.of(
            key, mode, target, [dataclasses.asdict(b) for b in behaviours], result.to_dict()))
        row = attack_suffix(store, key)
    return row.result


def plot(curves: dict[str, list[float]], path: Path, title: str,
         marks: dict[str, list[int]]) -> None:
    """Loss curves (those that are not empty) under WORKSPACE/plots/."""
    from attacks.plots import loss_curves

    curves = {k: v for k, v in curves.items() if v}
    if curves:
        loss_curves(curves, path, title, marks)
