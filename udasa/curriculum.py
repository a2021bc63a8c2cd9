"""Curriculum stages, docs/method.md §5 (Algorithm 1, lines 23-30), generalised to K stages."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from udasa.config import CurriculumConfig
from udasa.errors import ConfigError

log = logging.getLogger(__name__)

THREE_STAGE_NAMES = ("conservative", "moderate", "exploratory")


@dataclass(frozen=True)
class Stage:
    """Stage `index` (1 = trained first) holds pairs with lo <= delta < hi."""

    index: int
    name: str
    lo: float
    hi: float


def stage_names(k: int) -> list[str]:
    if k == 3:
        return list(THREE_STAGE_NAMES)
    if k == 1:
        return ["all"]
    return [f"stage-{i}" for i in range(1, k + 1)]


def resolve_thresholds(cfg: CurriculumConfig, deltas: Sequence[float]) -> list[float]:
    """Fixed thresholds as given; `quantile` mode puts K-1 cuts at delta quantiles i/K."""
    if cfg.mode == "fixed":
        return list(cfg.thresholds)
    k = len(cfg.thresholds) + 1
    if not deltas:
        return [0.0] * (k - 1)
    qs = np.quantile(np.asarray(deltas, dtype=float), [i / k for i in range(1, k)])
    return [float(q) for q in qs]


def make_stages(thresholds: Sequence[float]) -> list[Stage]:
    """K-1 thresholds -> K stages, largest delta first (conservative -> exploratory).

    Equal neighbours (quantile cuts of tied deltas) give an empty stage, which is skipped.
    """
    t = list(thresholds)
    if any(a > b for a, b in itertools.pairwise(t)):
        raise ConfigError(f"curriculum.thresholds: must be increasing, got {t}")
    bounds = [float("-inf"), *t, float("inf")]
    names = stage_names(len(t) + 1)
    return [
        Stage(i + 1, names[i], bounds[len(t) - i], bounds[len(t) + 1 - i])
        for i in range(len(t) + 1)
    ]


def assign_stage(delta: float, stages: Sequence[Stage]) -> int:
    """The 1-based index of the stage whose [lo, hi) holds delta."""
    for stage in stages:
        if stage.lo <= delta < stage.hi:
            return stage.index
    raise ValueError(f"delta {delta} falls in no stage")


def stage_members(stage_of: Sequence[int], stage: Stage, schedule: str) -> list[int]:
    """Positions of the pairs trained in `stage`: its own (disjoint) or stages 1..k (cumulative)."""
    if schedule == "cumulative":
        return [i for i, s in enumerate(stage_of) if s <= stage.index]
    return [i for i, s in enumerate(stage_of) if s == stage.index]


def warn_empty(stages: Sequence[Stage], stage_of: Sequence[int]) -> list[str]:
    """One warning line (never an error) naming every stage with no pairs; return a message
    per empty stage (the step's notes)."""
    empty = [f"stage {stage.index} ({stage.name}, {stage.lo:.3g} <= delta < {stage.hi:.3g})"
             for stage in stages if stage.index not in stage_of]
    if empty:
        log.warning("%d of %d curriculum stages have no pairs and will be skipped: %s "
                    "(try curriculum.mode=quantile)", len(empty), len(stages), "; ".join(empty))
    return [f"{name} has no pairs; it will be skipped" for name in empty]
