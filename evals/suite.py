"""Methods for `udasa-eval run --suite paper`: UDASA and every baseline, as models to evaluate.

A method is one registered function that returns an `EvalModel` (training what it needs first,
resumably); the suite evaluates them all with the same tasks, judge and samples.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from evals.models import EvalModel
from udasa.errors import ConfigError
from udasa.store import Store

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
_METHODS: dict[str, Callable[[Path, Store], EvalModel]] = {}
PAPER_SUITE = ["base", "vanilla", "rlaif", "rlcd", "rain", "udasa"]


def method(name: str):
    """Decorator: register a method builder `fn(workspace, store) -> EvalModel`."""
    def wrap(fn):
        _METHODS[name] = fn
        return fn
    return wrap


def build(names: list[str], workspace: Path, store: Store,
          progress: Callable[[str], None] = print) -> list[EvalModel]:
    """The methods' models, each built (trained where needed) in turn, with its build time."""
    unknown = [n for n in names if n not in _METHODS]
    if unknown:
        raise ConfigError(f"--suite: unknown method(s) {unknown} (known: {list(_METHODS)})")
    models = []
    for n in names:
        start = time.perf_counter()
        models.append(_METHODS[n](workspace, store))
        progress(f"suite: {n} ready in {time.perf_counter() - start:.0f} s")
    return models


def _yaml(name: str) -> dict:
    from udasa.files import read_settings_mapping

    return read_settings_mapping(CONFIGS / "baselines" / name, "baseline config")


@method("base")
def base(workspace: Path, store: Store) -> EvalModel:
    return EvalModel("base (unaligned)", "base")


@method("vanilla")
def vanilla(workspace: Path, store: Store) -> EvalModel:
    return EvalModel("vanilla", "base", decoder="sample", options=_yaml("vanilla.yaml"))


@method("rain")
def rain(workspace: Path, store: Store) -> EvalModel:
    return EvalModel("RAIN", "base", decoder="rain", options=_yaml("rain-cpu.yaml"))


def _trained(name: str, workspace: Path, store: Store) -> EvalModel:
    from udasa.baselines import rlaif, rlcd
    from udasa.baselines.common import (
        baseline_run_id,
        load_baseline_config,
        store_pairs,
        train_baseline,
    )

    cfg = load_baseline_config(CONFIGS / "baselines" / f"{name}.yaml")
    if not store.pairs(baseline_run_id(cfg)):
        pairs = (rlaif.build_pairs(cfg) if name == "rlaif" else rlcd.build_pairs(cfg))
        store_pairs(store, cfg, pairs, {"method": name})
    path = train_baseline(store, cfg, workspace)
    if path is None:
        raise ConfigError(f"{name}: training produced no checkpoint (no usable pairs?)")
    return EvalModel(name.upper(), path)


@method("rlaif")
def rlaif_method(workspace: Path, store: Store) -> EvalModel:
    return _trained("rlaif", workspace, store)


@method("rlcd")
def rlcd_method(workspace: Path, store: Store) -> EvalModel:
    return _trained("rlcd", workspace, store)


@method("udasa")
def udasa_method(workspace: Path, store: Store) -> EvalModel:
    from udasa.config import load_config
    from udasa.pipeline import Pipeline, train_key_of

    cfg = load_config(CONFIGS / "cpu-demo.yaml")
    pipe = Pipeline(cfg, workspace)
    pipe.run_all()
    ckpts = [c for c in store.checkpoints(pipe.run_id, train_key_of(cfg)) if c["path"]]
    if not ckpts:
        raise ConfigError("udasa: the cpu-demo run produced no checkpoint")
    return EvalModel("UDASA", ckpts[-1]["path"])
