"""Uncertainty axes as registry entries (kind ``axis``): the built-in three register from their
scorer modules (`udasa/scorers/semantic.py`, `factual.py`, `value.py`); a plugin adds one with

    register_axis(Axis("len", field="length", default_scorer="chars", label="U_len"))

plus a scorer registered for it. Its scorer is configured under `scoring.extra.<field>` (the
built-in axes keep their own sections, `scoring.semantic` ...), and it is fused once it is named
in `fusion.axes` (with a weight in `fusion.weights` for fixed weights).
"""

from __future__ import annotations

from dataclasses import dataclass

from udasa.registry import lookup, names, register


@dataclass(frozen=True)
class Axis:
    """One uncertainty axis."""

    key: str  # its name in the store's score rows, in fusion weights and `fusion.axes`
    field: str  # the config section naming its scorer: `scoring.<field>` / `scoring.extra.<field>`
    default_scorer: str  # the scorer when the config names none
    label: str  # how tables and the app name it (U_sem)
    order: int = 100  # its place among the axes (the built-ins: 0, 1, 2)


def register_axis(axis: Axis) -> Axis:
    """Make `axis` known (registry kind ``axis``, under its key)."""
    return register("axis", axis.key)(axis)


def axes() -> list[Axis]:
    """Every registered axis, built-ins first, in order."""
    return sorted((lookup("axis", n) for n in names("axis")), key=lambda a: (a.order, a.key))


def axis_keys() -> tuple[str, ...]:
    """The keys of every registered axis, in order (the built-ins: sem, fact, val)."""
    return tuple(a.key for a in axes())


def axis_of(key: str, what: str = "axis") -> Axis:
    """The registered axis `key`; an unknown one is a ConfigError naming `what`."""
    return lookup("axis", key, what)
