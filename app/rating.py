"""Human rating: the item pool, each annotator's blind order, and the rating rows.

Pool: every stored response of every run (method = the generator that wrote it) and every
non-empty output of `udasa-eval run` (method = the model or method label of the leaderboard).
An item's id is a content key (a run response keeps its response id); a pairwise item pairs
two replies to the same prompt: a run's chosen and rejected (by u), or two methods' outputs
for one evaluation sample. The method never leaves the server: an annotator sees prompt and
text only, in an order of its own (a hash of their name and the item), and A/B sides drawn
the same way. A rating row's id is content_key(annotator, item id), so a resubmission replaces
the earlier rating instead of adding a second one; rated items leave the queue, so an
annotator who comes back resumes where they stopped, and skipped ones (stored) come last.

Each item knows its source (`run:<id>` or `eval:<id>`) and its evaluation task ("" for a
run's replies), so an admin can hand out a pool of some sources and tasks (`app.pools`).
"""

from __future__ import annotations

import itertools
import json
import logging
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from evals.results import method_label
from evals.store_tables import Rating, eval_samples
from udasa.errors import UdasaError
from udasa.records import content_key
from udasa.store import Store
from udasa.store_records import Run

log = logging.getLogger(__name__)
SCORE_FIELDS = ("harmless", "helpful", "overall")
TIE, BOTH_BAD = "tie", "both bad"
CHOICES = ("A", "B", TIE, BOTH_BAD)
RUN_TASK = "run replies"  # the task shown for a run's replies (they have no eval task)


@dataclass(frozen=True)
class Item:
    """One reply to rate (1-10 scores)."""

    id: str
    prompt: str
    response: str
    method: str
    source: str = ""  # run:<run id> | eval:<evaluation id>
    task: str = ""  # the evaluation task; "" for a run's replies

    @property
    def task_label(self) -> str:
        return self.task or RUN_TASK


@dataclass(frozen=True)
class PairItem:
    """Two replies to one prompt (a preference)."""

    id: str
    prompt: str
    first: Item
    second: Item

    @property
    def source(self) -> str:
        return self.first.source

    @property
    def task(self) -> str:
        return self.first.task

    @property
    def task_label(self) -> str:
        return self.first.task_label


def replies_key(run: Run) -> str | None:
    """The generation key a run's replies are stored under: a baseline's (its run id) or a
    UDASA run's (its config); None for a run whose config is neither (left out of the pool)."""
    from app.inspector import readable_config
    from udasa.baselines.common import BASELINE_RUN_PREFIX, baseline_gen_key
    from udasa.keys import gen_key_of

    if run.name.startswith(BASELINE_RUN_PREFIX) and "method" in run.config:
        return baseline_gen_key(run.id)
    cfg = readable_config(run)
    if cfg is None:
        log.warning("rating pool: run %s left out (its config is not a run config)", run.id)
        return None
    return gen_key_of(cfg)


def single_items(store: Store) -> list[Item]:
    """Every stored run response (baseline runs' too) and evaluation output, once each."""
    from evals.models import label_aliases

    aliases = label_aliases(store)  # a reply is labelled by the method its model was run as
    items: dict[str, Item] = {}
    for run in store.runs():
        gen_key = replies_key(run)
        if gen_key is None:
            continue
        prompts = {p.id: p.text for p in store.run_prompts(run.id)}
        for r in store.responses(gen_key, list(prompts)):
            if r.text.strip():
                items.setdefault(r.id, Item(r.id, prompts[r.prompt_id], r.text,
                                            method_label(r.model, aliases), f"run:{run.id}"))
    for item in _eval_items(store).values():
        items.setdefault(item.id, item)
    return list(items.values())


def _eval_items(store: Store) -> dict[tuple[str, str, int, str], Item]:
    """Non-empty evaluation outputs keyed by (eval id, task, sample index, model)."""
    return {(s.eval_id, s.task, s.idx, s.model): Item(
        content_key("eval", s.eval_id, s.model, s.task, str(s.idx)), s.prompt, s.output,
        method_label(s.model), f"eval:{s.eval_id}", s.task)
        for s in eval_samples(store) if (s.output or "").strip()}


def _pair(a: Item, b: Item) -> PairItem:
    first, second = sorted((a, b), key=lambda i: i.id)
    return PairItem(content_key("pair", first.id, second.id), a.prompt, first, second)


def pair_items(store: Store) -> list[PairItem]:
    """Each run pair (chosen vs rejected by u) and each two methods' outputs for one sample."""
    pairs: dict[str, PairItem] = {}
    for run in store.runs():
        for p in store.pairs(run.id):
            label = f"{run.name} ({run.id})"
            source = f"run:{run.id}"
            one = _pair(Item(p.chosen_id, p.prompt, p.chosen, f"{label}: lower u", source),
                        Item(p.rejected_id, p.prompt, p.rejected, f"{label}: higher u", source))
            pairs.setdefault(one.id, one)
    groups: dict[tuple, list[Item]] = {}
    for (eval_id, task, idx, _), item in _eval_items(store).items():
        groups.setdefault((eval_id, task, idx), []).append(item)
    for group in groups.values():
        for a, b in itertools.combinations(group, 2):
            if a.response.strip() != b.response.strip():
                one = _pair(a, b)
                pairs.setdefault(one.id, one)
    return list(pairs.values())


def pool(store: Store, mode: str) -> Sequence[Item | PairItem]:
    if mode not in ("single", "pair"):
        raise UdasaError(f"unknown rating mode {mode!r} (single, pair)")
    return single_items(store) if mode == "single" else pair_items(store)


def queue(annotator: str, items: Iterable[Item | PairItem], rated: set[str],
          skipped: Sequence[str] = ()) -> list[Item | PairItem]:
    """The annotator's unrated items in their own random order; `skipped` ids go last, in
    the order given (oldest skip first).

    The order sorts by a hash of (annotator, item id): random-looking, different for each
    annotator, and stable while items are rated or added (an item never jumps the queue).
    """
    later = {s: k for k, s in enumerate(skipped)}
    todo = [i for i in items if i.id not in rated]
    return sorted(todo, key=lambda i: (i.id in later, later.get(i.id, 0),
                                       content_key("order", annotator, i.id)))


def sides(annotator: str, pair: PairItem) -> tuple[Item, Item]:
    """(A, B) as this annotator sees them: a coin seeded by annotator and pair."""
    flip = random.Random(content_key("sides", annotator, pair.id)).random() < 0.5
    return (pair.second, pair.first) if flip else (pair.first, pair.second)


def _score(name: str, value: object) -> int:
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        v = float("nan")
    if not (v.is_integer() and 1 <= v <= 10):
        raise UdasaError(f"{name}: choose a score from 1 to 10")
    return int(v)


MAX_COMMENT = 2000


def rating_id(annotator: str, item_id: str) -> str:
    """One rating per (annotator, item): a resubmission replaces it."""
    return content_key(annotator, item_id)


def rating_row(annotator: str, item: Item | PairItem, scores: dict[str, object] | None = None,
               choice: str | None = None, comment: str | None = None,
               flagged: bool = False) -> Rating:
    """The rating of one judgement (scores for an Item, a choice for a PairItem), with the
    annotator's comment and flag."""
    comment = (comment or "").strip()
    if len(comment) > MAX_COMMENT:
        raise UdasaError(f"comment: at most {MAX_COMMENT} characters")
    key = {"id": rating_id(annotator, item.id), "annotator": annotator, "item_id": item.id,
           "prompt": item.prompt, "comment": comment or None, "flagged": bool(flagged)}
    if isinstance(item, Item):
        scores = scores or {}
        return Rating(**key, response=item.response, method=item.method,
                      **{f: _score(f, scores.get(f)) for f in SCORE_FIELDS})
    if choice not in CHOICES:
        raise UdasaError("preference: choose A, B, tie or both bad")
    a, b = sides(annotator, item)
    return Rating(**key, response=json.dumps({"A": a.response, "B": b.response},
                                             ensure_ascii=False),
                  method=f"{a.method} vs {b.method}",
                  preference={"A": a.method, "B": b.method, TIE: TIE, BOTH_BAD: BOTH_BAD}[choice])


def choice_of(annotator: str, item: PairItem, preference: str | None) -> str | None:
    """The side (A, B, tie, both bad) that a stored preference stands for, as `annotator`
    saw the pair."""
    if preference in (TIE, BOTH_BAD) or preference is None:
        return preference
    a, b = sides(annotator, item)
    return "A" if preference == a.method else "B" if preference == b.method else None


def find(store: Store, item_id: str) -> Item | PairItem:
    """The pool item with this id (single or pair); UdasaError when there is none."""
    for mode in ("single", "pair"):
        for item in pool(store, mode):
            if item.id == item_id:
                return item
    raise UdasaError("unknown item: reload the page")
