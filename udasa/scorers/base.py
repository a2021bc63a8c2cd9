"""The scorer interface: a scorer maps groups (prompt, N responses) to per-response scores."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.metadata import version as pkg_version
from typing import Any, Protocol

from udasa import registry
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


def register(axis: str, name: str):
    """Class decorator: make a scorer available to configs as `scoring.<axis field>.name: <name>`
    (registered in :mod:`udasa.registry` as the scorer ``<axis>/<name>``)."""
    def wrap(cls):
        cls.axis, cls.name = axis, name
        return registry.register("scorer", f"{axis}/{name}")(cls)
    return wrap


def available(axis: str) -> list[str]:
    """The scorer names registered for `axis`."""
    return [n.split("/", 1)[1] for n in registry.names("scorer") if n.startswith(f"{axis}/")]


def make_scorer(axis: str, cfg: ScorerConfig, what: str | None = None) -> Scorer:
    """The scorer `cfg.name` of `axis`; an unknown name is a ConfigError naming `what` (the
    config field, e.g. ``scoring.factual.name``) and the registered scorers."""
    return registry.lookup("scorer", f"{axis}/{cfg.name}", what)(cfg)


def version_of(*parts: str) -> str:
    """A scorer version string from package versions and model ids."""
    return "|".join(parts)


def dist_version(name: str) -> str:
    try:
        return f"{name}=={pkg_version(name)}"
    except Exception:  # noqa: BLE001 - not installed: still a valid identity string
        return f"{name}==?"
