"""An annotator's work: which tasks they may open, their queue, history and confirmations.

A task is an open pool (`single`: every reply, `pair`: every pair) or a pool an admin
assigned (`pool:<id>`, `app.pools`). An annotator with assigned pools sees those only; an
annotator without any, and every admin, also sees the two open pools. Within a task the
queue holds the unrated items in the annotator's own order, skipped ones (stored, oldest
skip first) last; the history lists their ratings of the task's items, newest first, and
opening one shows the stored answers so that a resubmission replaces it.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from app import rating
from app.rating import Item, PairItem
from app.render import esc, plain
from evals.store_tables import Rating, RatingSkip, add_skip, assignments, pools, ratings, skips
from udasa.errors import UdasaError
from udasa.store import Store

OPEN = {"single": "Scores: one reply", "pair": "Preference: two replies"}
KIND = {"single": "scores", "pair": "preference"}
POOL_PREFIX = "pool:"


@dataclass(frozen=True)
class Task:
    value: str  # single | pair | pool:<id>
    label: str
    mode: str  # single | pair
    pool_id: str | None = None


def tasks_for(store: Store, name: str, admin: bool) -> list[Task]:
    """The tasks `name` may open: their assigned pools, then the open pools where allowed."""
    mine = Counter(a.pool_id for a in assignments(store, annotator=name))
    assigned = [Task(f"{POOL_PREFIX}{p.id}", f"{p.name} ({KIND[p.mode]}, {mine[p.id]} items)",
                     p.mode, p.id) for p in pools(store) if p.id in mine]
    open_ = [Task(mode, label, mode) for mode, label in OPEN.items()]
    return open_ + assigned if admin or not assigned else assigned


def pick_task(tasks: list[Task], wanted: str | None) -> Task | None:
    """The task `wanted` names when it is offered, else the first."""
    return next((t for t in tasks if t.value == wanted), tasks[0] if tasks else None)


@dataclass
class Queue:
    """One annotator's state in one task."""

    task: Task
    items: list[Item | PairItem]  # the task's items
    todo: list[Item | PairItem]  # what is left, in the annotator's order
    mine: dict[str, Rating]  # item id -> their rating
    skipped: list[str] = field(default_factory=list)  # skipped, not rated, oldest first

    @property
    def history(self) -> list[Rating]:
        """Their ratings of this task's items, newest first."""
        return sorted(self.mine.values(), key=lambda r: r.created_at, reverse=True)

    def item(self, item_id: str) -> Item | PairItem:
        found = next((i for i in self.items if i.id == item_id), None)
        if found is None:
            raise UdasaError("this item is not in your current task: reload the page")
        return found

    def progress(self, name: str) -> str:
        """HTML: who, which task, how far (every stored text escaped)."""
        done = len(self.mine)
        return (f"<b>{esc(name)}</b> · {esc(self.task.label)} · {done} of {len(self.items)} "
                f"rated · {len(self.todo)} to go" + (f" · {len(self.skipped)} skipped"
                                                     if self.skipped else ""))


def task_items(store: Store, name: str, task: Task) -> list[Item | PairItem]:
    """Every item of the task (an assigned pool: `name`'s items of it, in pool order)."""
    everything = rating.pool(store, task.mode)
    if task.pool_id is None:
        return list(everything)
    mine = [a.item_id for a in assignments(store, annotator=name, pool_id=task.pool_id)]
    by_id = {i.id: i for i in everything}
    return [by_id[i] for i in mine if i in by_id]  # an item whose data went is left out


def load_queue(store: Store, name: str, task: Task) -> Queue:
    items = task_items(store, name, task)
    ids = {i.id for i in items}
    mine = {r.item_id: r for r in ratings(store, name) if r.item_id in ids}
    skipped = [s.item_id for s in skips(store, name) if s.item_id in ids
               and s.item_id not in mine]
    return Queue(task, items, rating.queue(name, items, set(mine), skipped), mine, skipped)


def skip(store: Store, name: str, item_id: str) -> None:
    """Store a skip of `item_id` by `name` (the item goes to the end of their queue)."""
    add_skip(store, RatingSkip(id=rating.rating_id(name, item_id), annotator=name,
                               item_id=item_id))


def answers(name: str, item: Item | PairItem, row: Rating | None) -> dict:
    """The form's values for `item`: a stored rating's, else empty."""
    if row is None:
        return {"harmless": None, "helpful": None, "overall": None, "preference": None,
                "comment": "", "flagged": False}
    choice = rating.choice_of(name, item, row.preference) if isinstance(item, PairItem) else None
    return {"harmless": row.harmless, "helpful": row.helpful, "overall": row.overall,
            "preference": choice, "comment": row.comment or "", "flagged": bool(row.flagged)}


def short(text: str, width: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 1] + "…"


def what(row: Rating, choice: str | None = None) -> str:
    """A rating in words: `harmless 7, helpful 8, overall 6` or `preferred B`."""
    if row.preference is not None:
        return {"tie": "a tie", "both bad": "both bad"}.get(choice or "", f"preferred {choice}")
    return ", ".join(f"{f} {getattr(row, f)}" for f in rating.SCORE_FIELDS)


def history_label(name: str, queue: Queue, row: Rating) -> str:
    """One history entry: when, what, the prompt's start (and a flag), as display text."""
    item = queue.item(row.item_id)
    choice = rating.choice_of(name, item, row.preference) if isinstance(item, PairItem) else None
    when = row.created_at[11:16] if len(row.created_at) >= 16 else row.created_at
    return plain(f"{when} · {what(row, choice)}{' · flagged' if row.flagged else ''} · "
                 f"{short(item.prompt, 50)}")


def confirmation(name: str, item: Item | PairItem, row: Rating, replaced: bool) -> str:
    """What the annotator reads after a submit: what was stored, for which prompt (HTML, the
    prompt escaped)."""
    choice = rating.choice_of(name, item, row.preference) if isinstance(item, PairItem) else None
    extra = "".join([" · flagged" if row.flagged else "",
                     " · with your comment" if row.comment else ""])
    verb = "Updated" if replaced else "Saved"
    return esc(f"{verb} at {time.strftime('%H:%M:%S')}: {what(row, choice)}{extra} for "
               f"“{short(item.prompt)}”. Back (or the history list) opens it again to change it.")
