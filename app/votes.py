"""What the human ratings say: each annotator's agreement with the others, and the win rates of
A/B votes per pair of methods.

Agreement so far, per annotator, on the items they and at least one other annotator rated:
for scores, Krippendorff's alpha (interval) of the overall score over those items; for
preferences, the share of (their vote, another's vote) pairs on the same item that name the
same method (or both tie, or both "both bad"). Win rates count a tie and "both bad" as half a
win for each side (as Chatbot Arena counts ties); the CI is a percentile bootstrap over votes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import pandas as pd

from app import labels
from app.rating import BOTH_BAD, TIE, PairItem, pool
from app.render import plain
from evals import store_tables
from evals.stats import krippendorff_alpha_interval, mean_ci
from evals.store_tables import Rating


def agreement_with_others(person: str, rows: Iterable[Rating], mode: str) -> str:
    """`alpha 0.62 on 6 items` / `71% same choice on 7 pairs` / `—` (nothing shared yet)."""
    by_item: dict[str, dict[str, Rating]] = {}
    for r in rows:
        by_item.setdefault(r.item_id, {})[r.annotator] = r
    shared = {i: rs for i, rs in by_item.items() if person in rs and len(rs) >= 2}
    if not shared:
        return "—"
    if mode == "pair":
        same = total = 0
        for rs in shared.values():
            for other, r in rs.items():
                if other != person:
                    total += 1
                    same += r.preference == rs[person].preference
        return f"{100 * same / total:.0f}% same choice on {len(shared)} pairs"
    units = {i: {a: float(r.overall) for a, r in rs.items() if r.overall is not None}
             for i, rs in shared.items()}
    alpha = krippendorff_alpha_interval(units)
    value = "undefined (no variation)" if math.isnan(alpha) else f"{alpha:.2f}"
    return f"alpha (overall) {value} on {len(shared)} items"


WIN_COLUMNS = ["method A", "method B", "A wins", "B wins", "ties", "both bad", "votes",
               "A win rate % [95% CI]"]


def _methods(r: Rating, items: Mapping[str, PairItem]) -> tuple[str, str] | None:
    item = items.get(r.item_id)
    if item is not None:
        return item.first.method, item.second.method
    parts = r.method.split(" vs ")  # the item is gone: its methods as the row recorded them
    return (parts[0], parts[1]) if len(parts) == 2 else None


def win_rates(rows: Iterable[Rating], items: Mapping[str, PairItem]) -> pd.DataFrame:
    """One row per pair of methods that met in A/B votes (`items`: the pair items by id)."""
    votes: dict[tuple[str, str], list[str]] = {}
    for r in rows:
        pair = _methods(r, items) if r.preference else None
        if pair is None or pair[0] == pair[1]:
            continue
        a, b = sorted(pair)
        votes.setdefault((a, b), []).append(
            "a" if r.preference == a else "b" if r.preference == b else
            BOTH_BAD if r.preference == BOTH_BAD else TIE)
    out = []
    for (a, b), vs in sorted(votes.items()):
        points = [100.0 if v == "a" else 0.0 if v == "b" else 50.0 for v in vs]
        est = mean_ci(points, seed=0)
        out.append({"method A": plain(a), "method B": plain(b), "A wins": vs.count("a"),
                    "B wins": vs.count("b"), "ties": vs.count(TIE),
                    "both bad": vs.count(BOTH_BAD), "votes": len(vs),
                    "A win rate % [95% CI]": est.fmt(0)})
    return pd.DataFrame(out, columns=WIN_COLUMNS)


def labelled_win_rates(store, rows: Iterable[Rating] | None = None) -> pd.DataFrame:
    """`win_rates` of every A/B vote in the store (`rows`: its ratings, when already read),
    methods by their display labels."""
    pairs = {p.id: p for p in pool(store, "pair")}
    wins = win_rates(store_tables.ratings(store) if rows is None else rows, pairs)
    names = labels.model_labels(store, [*wins["method A"], *wins["method B"]])
    for col in ("method A", "method B"):
        wins[col] = labels.relabel(wins[col], names)
    return wins
