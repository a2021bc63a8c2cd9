"""The scorer interface: a scorer maps groups (prompt, N responses) to per-response scores."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import version as pkg_version
from typing import Any, Protocol

from udasa.config import ScorerConfig

Group = tuple[str, list[str]]  # (prompt, responses)


@dataclass
class AxisScore:
    """What a scorer returns per response: its uncertainty on the scorer's one axis, in
    [0, 1], with scorer-specific details (stored as one `scores` row)."""

    value: float
    details: dict[str, Any] = field(default_factory=dict)


class Scorer(Protocol):
    axis: str  # "sem" | "fact" | "val"
    name: str
    version: str  # changes whenever the model or options change (part of the store key)

    def score(self, groups: Sequence[Group]) -> list[list[AxisScore]]: ...


class ItemScorer:
    """Base for scorers that judge each (prompt, response) alone: flattens groups, batches items."""

    axis = ""
    name = ""
    version = ""

    def __init__(self, cfg: ScorerConfig):
        self.cfg = cfg

    def score_items(self, prompts: list[str], responses: list[str]) -> list[AxisScore]:
        raise NotImplementedError

    def score(self, groups: Sequence[Group]) -> list[list[AxisScore]]:
        prompts = [p for p, rs in groups for _ in rs]
        responses = [r for _, rs in groups for r in rs]
        flat = self.score_items(prompts, responses)
        out, i = [], 0
        for _, rs in groups:
            out.append(flat[i:i + len(rs)])
            i += len(rs)
        return out


_REGISTRY: dict[tuple[str, str], Callable[[ScorerConfig], Scorer]] = {}


def register(axis: str, name: str):
    """Class decorator: make a scorer available to configs as `scoring.<axis>.name: <name>`."""
    def wrap(cls):
        _REGISTRY[(axis, name)] = cls
        cls.axis, cls.name = axis, name
        return cls
    return wrap


def available(axis: str) -> list[str]:
    return sorted(n for a, n in _REGISTRY if a == axis)


def make_scorer(axis: str, cfg: ScorerConfig) -> Scorer:
    from udasa.errors import ConfigError

    if (axis, cfg.name) not in _REGISTRY:
        raise ConfigError(f"scorer {cfg.name!r} for axis {axis!r} is unknown "
                          f"(available: {', '.join(available(axis))})")
    return _REGISTRY[(axis, cfg.name)](cfg)


def version_of(*parts: str) -> str:
    """A scorer version string from package versions and model ids."""
    return "|".join(parts)


def dist_version(name: str) -> str:
    try:
        return f"{name}=={pkg_version(name)}"
    except Exception:  # noqa: BLE001 - not installed: still a valid identity string
        return f"{name}==?"
