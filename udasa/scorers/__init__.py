"""Uncertainty scorers (docs/method.md §2), one module per axis, registered by name."""

from udasa.scorers import factual, semantic, value  # noqa: F401  (registration)
from udasa.scorers.base import Group, Scored, Scorer, available, make_scorer

__all__ = ["Group", "Scored", "Scorer", "available", "make_scorer"]
