"""Uncertainty scorers (docs/method.md §2), one module per axis, each registering itself
(`udasa.scorers.base.register`; the registry imports every module of this package)."""

from udasa.scorers.base import AxisScore, Group, Scorer, available, make_scorer

__all__ = ["AxisScore", "Group", "Scorer", "available", "make_scorer"]
