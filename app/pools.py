"""Rating pools: an admin hands a set of items to annotators, each item to `overlap` of them.

A pool is drawn from the open pool of one kind (scores or preferences), filtered by source
(runs, evaluations) and task, `size` items in a seeded order of (pool name, item id); item j
goes to annotators j*k, j*k+1, ... j*k+k-1 (mod the number of annotators, in name order), so
every annotator gets about size*k/n items and each pair of annotators shares some: the
agreement figures are designed in, not hunted for. Progress per annotator is read back from
their ratings and skips.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from app import annotation, rating, votes
from app.render import plain
from evals.store_tables import (
    Assignment,
    RatingPool,
    add_pool,
    assignments,
    eval_runs,
    pools,
    ratings,
    skips,
)
from udasa.errors import UdasaError
from udasa.records import content_key
from udasa.store import Store


@dataclass(frozen=True)
class PoolRequest:
    """What the admin's form asks for (empty sources or tasks: all of them)."""

    name: str
    mode: str  # single | pair
    sources: tuple[str, ...]
    tasks: tuple[str, ...]
    size: int
    overlap: int
    annotators: tuple[str, ...]


def source_choices(store: Store) -> list[tuple[str, str]]:
    """(label, value) of every run and evaluation with items to rate."""
    runs = {r.id: r.name for r in store.runs()}
    evals = {e.id: e.created_at for e in eval_runs(store)}
    found = dict.fromkeys(i.source for mode in ("single", "pair")
                          for i in rating.pool(store, mode))
    out = []
    for source in found:
        kind, _, key = source.partition(":")
        label = (f"run {runs.get(key, '?')} ({key})" if kind == "run" else
                 f"evaluation {key} ({evals.get(key, '?')[:16]})")
        out.append((plain(label), source))
    return out


def task_choices(store: Store) -> list[str]:
    """Every task an item belongs to ("run replies" for runs' samples)."""
    return sorted({i.task_label for mode in ("single", "pair") for i in rating.pool(store, mode)})


def _check(req: PoolRequest, existing: list[RatingPool]) -> None:
    if not req.name.strip():
        raise UdasaError("pool name: give the pool a name")
    if any(p.name == req.name.strip() for p in existing):
        raise UdasaError(f"pool name: a pool named {req.name.strip()!r} exists already")
    if req.mode not in annotation.OPEN:
        raise UdasaError("kind: scores or preference")
    if not req.annotators:
        raise UdasaError("annotators: choose at least one")
    if req.size < 1:
        raise UdasaError("items: at least 1")
    if not 1 <= req.overlap <= len(req.annotators):
        raise UdasaError(f"overlap: each item goes to 1 to {len(req.annotators)} annotators "
                         f"(the number chosen), got {req.overlap}")


def draw(store: Store, req: PoolRequest) -> list[rating.Item | rating.PairItem]:
    """The pool's items: the matching open-pool items in the pool's seeded order, `size` of
    them."""
    items = [i for i in rating.pool(store, req.mode)
             if (not req.sources or i.source in req.sources)
             and (not req.tasks or i.task_label in req.tasks)]
    if not items:
        raise UdasaError("no item matches these sources and tasks")
    items.sort(key=lambda i: content_key("pool", req.name.strip(), i.id))
    return items[:req.size]


def make_pool(store: Store, req: PoolRequest, created_by: str) -> tuple[RatingPool, int]:
    """Store a pool and its assignments; returns it and how many items it holds."""
    _check(req, pools(store))
    items = draw(store, req)
    people = sorted(set(req.annotators))
    name = req.name.strip()
    pool = RatingPool(id=content_key("pool", name), name=name, mode=req.mode, created_by=created_by,
                      spec={"sources": list(req.sources), "tasks": list(req.tasks),
                            "size": req.size, "overlap": req.overlap, "annotators": people})
    given = [Assignment(pool_id=pool.id, annotator=people[(j * req.overlap + i) % len(people)],
                        item_id=item.id, position=j)
             for j, item in enumerate(items) for i in range(req.overlap)]
    add_pool(store, pool, given)
    return pool, len(items)


def pool_table(store: Store) -> pd.DataFrame:
    """One row per pool: kind, items, overlap, annotators, sources, tasks, created."""
    rows = []
    for p in pools(store):
        items = {a.item_id for a in assignments(store, pool_id=p.id)}
        rows.append({"pool": plain(p.name), "kind": annotation.KIND[p.mode], "items": len(items),
                     "overlap k": p.spec.get("overlap"),
                     "annotators": plain(", ".join(p.spec.get("annotators", []))),
                     "tasks": plain(", ".join(p.spec.get("tasks") or ["all"])),
                     "created": f"{p.created_at[:16]} by {plain(p.created_by)}"})
    return pd.DataFrame(rows, columns=["pool", "kind", "items", "overlap k", "annotators",
                                       "tasks", "created"])


PROGRESS_COLUMNS = ["pool", "annotator", "assigned", "done", "skipped", "remaining", "flagged",
                    "agreement so far"]


def progress(store: Store, admins: frozenset[str] = frozenset()) -> pd.DataFrame:
    """Per pool and annotator: assigned, done, skipped, remaining, flagged, and agreement with
    the others on the items both rated. Open pools list whoever rated or skipped in them and
    may open them (`admins`, and annotators without an assigned pool)."""
    rated = ratings(store)
    skipped = {(s.annotator, s.item_id) for s in skips(store)}
    pooled = {a.annotator for a in assignments(store)} - admins
    groups: list[tuple[str, str, dict[str, list[str]]]] = []
    for p in pools(store):
        given: dict[str, list[str]] = {}
        for a in assignments(store, pool_id=p.id):
            given.setdefault(a.annotator, []).append(a.item_id)
        groups.append((plain(p.name), p.mode, given))
    for mode, label in annotation.OPEN.items():
        ids = [i.id for i in rating.pool(store, mode)]
        people = sorted(({r.annotator for r in rated if r.item_id in set(ids)}
                         | {a for a, i in skipped if i in set(ids)}) - pooled)
        groups.append((f"{label} (open)", mode, {a: ids for a in people}))
    rows = []
    for name, mode, given in groups:
        pool_ids = {i for ids in given.values() for i in ids}
        mine = [r for r in rated if r.item_id in pool_ids]
        for person, ids in sorted(given.items()):
            done = {r.item_id: r for r in mine if r.annotator == person and r.item_id in set(ids)}
            rows.append({"pool": name, "annotator": plain(person), "assigned": len(ids),
                         "done": len(done),
                         "skipped": sum(1 for i in ids if (person, i) in skipped
                                        and i not in done),
                         "remaining": len(ids) - len(done),
                         "flagged": sum(1 for r in done.values() if r.flagged),
                         "agreement so far": votes.agreement_with_others(person, mine, mode)})
    return pd.DataFrame(rows, columns=PROGRESS_COLUMNS)


def flagged(store: Store) -> pd.DataFrame:
    """Every flagged or commented rating: who, what, the comment (admins read these)."""
    rows = [{"annotator": plain(r.annotator), "flagged": "yes" if r.flagged else "",
             "comment": plain(r.comment or ""), "prompt": plain(annotation.short(r.prompt, 80)),
             "when": r.created_at[:16]}
            for r in ratings(store) if r.flagged or r.comment]
    return pd.DataFrame(rows, columns=["annotator", "flagged", "comment", "prompt", "when"])
