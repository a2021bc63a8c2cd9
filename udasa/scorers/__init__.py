"""Uncertainty scorers (docs/method.md §2), one module per axis, registered by name."""

from udasa.scorers import factual, semantic, value  # noqa: F401  (registration)
from udasa.scorers.base import AxisScore, Group, Scorer, available, make_scorer

__all__ = ["AxisScore", "Group", "Scorer", "available", "make_scorer"]
