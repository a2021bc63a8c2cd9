"""Uncertainty fusion, docs/method.md §3 (paper Eq. 5-6)."""

from __future__ import annotations

import math
from collections.abc import Mapping

from udasa.config import FusionConfig


def softmax_weights(scores: Mapping[str, float], temperature: float = 1.0) -> dict[str, float]:
    """Eq. 5: w_k = exp(U_k / T) / sum_m exp(U_m / T), over the axes present in `scores`."""
    top = max(scores.values())
    exps = {k: math.exp((v - top) / temperature) for k, v in scores.items()}
    total = sum(exps.values())
    return {k: e / total for k, e in exps.items()}


def fusion_weights(scores: Mapping[str, float], cfg: FusionConfig) -> dict[str, float]:
    """The weights for one response under `cfg` (softmax, fixed, or mean), restricted to cfg.axes."""
    picked = {axis: scores[axis] for axis in cfg.axes}
    if cfg.method == "softmax":
        return softmax_weights(picked, cfg.temperature)
    if cfg.method == "mean":
        return {axis: 1 / len(picked) for axis in picked}
    raw = {axis: cfg.weights.get(axis, 0.0) for axis in picked}
    total = sum(raw.values())
    if total <= 0:
        raise ValueError(f"fusion.weights for axes {list(picked)} sum to {total}; need > 0")
    return {axis: w / total for axis, w in raw.items()}


def fuse(scores: Mapping[str, float], cfg: FusionConfig) -> tuple[float, dict[str, float]]:
    """Eq. 6: u(r) = sum_k w_k U_k. Returns (u, weights)."""
    weights = fusion_weights(scores, cfg)
    return sum(weights[a] * scores[a] for a in weights), weights
