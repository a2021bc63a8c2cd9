"""Preference pairs, docs/method.md §4 (paper Eq. 7)."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from udasa.config import FusionConfig
from udasa.fusion import fuse


@dataclass(frozen=True)
class FusedResponse:
    """A response with its fused uncertainty u (Eq. 5-6): what pairs are built from."""

    response_id: str
    text: str
    u: float


@dataclass(frozen=True)
class Pair:
    prompt_id: str
    chosen: FusedResponse
    rejected: FusedResponse

    @property
    def delta(self) -> float:
        """Eq. 7: delta = u(r-) - u(r+), the clarity of the preference (>= 0 unless the pair
        was drawn at random, `random_pair`)."""
        return self.rejected.u - self.chosen.u


def build_pairs(
    prompt_id: str, candidates: list[FusedResponse], rejected: str = "random", seed: int = 0,
    drops: Counter[str] | None = None,
) -> list[Pair]:
    """Chosen = argmin u (first on ties); rejected drawn per `rejected` (random | max | all).

    The random draw is seeded by (seed, prompt_id) alone, so the result does not depend on
    the order prompts are processed in (a resumed run gets the same pairs). Empty responses
    are left out; pairs with delta == 0 or identical texts are dropped; all counted in `drops`.
    """
    drops = drops if drops is not None else Counter()
    empty = [c for c in candidates if not c.text.strip()]
    if empty:
        drops["empty response"] += len(empty)
        candidates = [c for c in candidates if c.text.strip()]
    if len(candidates) < 2:
        drops["fewer than 2 responses"] += 1
        return []
    best = min(range(len(candidates)), key=lambda i: (candidates[i].u, i))
    chosen = candidates[best]
    others = [c for i, c in enumerate(candidates) if i != best]
    if rejected == "random":
        picks = [random.Random(f"{seed}:{prompt_id}").choice(others)]
    elif rejected == "max":
        picks = [max(others, key=lambda c: c.u)]
    else:
        picks = others
    pairs = []
    for rej in picks:
        if rej.text.strip() == chosen.text.strip():
            drops["identical text"] += 1
        elif rej.u - chosen.u <= 0:
            drops["tie (delta = 0)"] += 1
        else:
            pairs.append(Pair(prompt_id, chosen, rej))
    return pairs


def random_pair(prompt_id: str, candidates: list[FusedResponse], seed: int = 0,
                drops: Counter[str] | None = None) -> list[Pair]:
    """The random-pairs control: chosen and rejected drawn at random (without replacement)
    from the prompt's responses, whatever their u, seeded by (seed, prompt_id) alone. Empty
    responses are left out and a pair of identical texts is dropped, as in `build_pairs`;
    delta may be negative."""
    drops = drops if drops is not None else Counter()
    kept = [c for c in candidates if c.text.strip()]
    if len(kept) < len(candidates):
        drops["empty response"] += len(candidates) - len(kept)
    if len(kept) < 2:
        drops["fewer than 2 responses"] += 1
        return []
    chosen, rejected = random.Random(f"{seed}:random-pair:{prompt_id}").sample(kept, 2)
    if chosen.text.strip() == rejected.text.strip():
        drops["identical text"] += 1
        return []
    return [Pair(prompt_id, chosen, rejected)]


@dataclass(frozen=True)
class ScoredResponse:
    """A stored response with its per-axis uncertainties (axes not scored yet are absent)."""

    response_id: str
    text: str
    scores: Mapping[str, float]
    index: int = 0  # its sample index among the prompt's N responses


@dataclass
class PromptFusion:
    """One prompt fused and paired: u and fusion weights per response, and its pairs."""

    u: dict[str, float] = field(default_factory=dict)
    weights: dict[str, dict[str, float]] = field(default_factory=dict)
    pairs: list[Pair] = field(default_factory=list)


def fuse_and_pair(prompt_id: str, responses: Iterable[ScoredResponse], fusion: FusionConfig,
                  rejected: str = "random", seed: int = 0,
                  drops: Counter[str] | None = None,
                  selection: str = "uncertainty") -> PromptFusion:
    """Eq. 5-7 for one prompt: fuse each response's scores into u (a response lacking an axis
    the fusion uses is left out and counted), then `build_pairs` (or, with
    `selection="random"`, the control `random_pair`)."""
    drops = drops if drops is not None else Counter()
    out, candidates = PromptFusion(), []
    for r in responses:
        if any(a not in r.scores for a in fusion.axes):
            drops["unscored response"] += 1
            continue
        out.u[r.response_id], out.weights[r.response_id] = fuse(r.scores, fusion)
        candidates.append(FusedResponse(r.response_id, r.text, out.u[r.response_id]))
    out.pairs = (random_pair(prompt_id, candidates, seed, drops) if selection == "random"
                 else build_pairs(prompt_id, candidates, rejected, seed, drops))
    return out
