"""The evaluation tables of the workspace store: judge calls, eval runs, samples, the
leaderboard, and human ratings (written by `udasa-app`, read by the leaderboard's human side).

Declared here, beside the code that writes them; every Store opened after this module is
imported holds them (`udasa.store_schema.declare`), and each function below makes sure the
store it is handed does (`Store.ensure`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from udasa.store import Store, now, where_equal
from udasa.store_schema import (
    Migration,
    Record,
    Schema,
    Table,
    bool_field,
    declare,
    json_field,
)


@dataclass(frozen=True, kw_only=True)
class JudgeCall(Record):
    """One judge call, kept whether or not its reply parsed (`ok`)."""

    key: str
    judge: str
    model: str
    prompt: str
    params: str  # the backend's parameters as JSON text (part of `key`)
    reply: str | None = ""
    score: float | None = None
    ok: bool = bool_field(False)
    error: str | None = ""
    prompt_tokens: int | None = 0
    completion_tokens: int | None = 0
    cost_usd: float | None = None
    created_at: str = ""


@dataclass(frozen=True, kw_only=True)
class EvalRun(Record):
    """One `udasa-eval run`: its config and results."""

    id: str
    created_at: str = ""
    config: dict = json_field()
    results: dict = json_field()


@dataclass(frozen=True, kw_only=True)
class EvalSample(Record):
    """One model's output for one task sample, with its per-sample scores."""

    eval_id: str = ""  # set by add_eval_run
    model: str
    task: str
    idx: int
    prompt: str
    output: str | None
    scores: dict = json_field()


@dataclass(frozen=True, kw_only=True)
class LeaderboardRow(Record):
    """One metric of one model on one task in one evaluation, with its CI."""

    eval_id: str = ""  # set by add_eval_run
    model: str
    task: str
    metric: str
    value: float | None
    ci_low: float | None
    ci_high: float | None
    n: int
    failures: int
    judge: str


@dataclass(frozen=True, kw_only=True)
class Rating(Record):
    """One annotator's judgement of an item: 1-10 scores, or a preference between two."""

    id: str
    annotator: str
    item_id: str
    prompt: str
    response: str
    method: str
    harmless: int | None = None
    helpful: int | None = None
    overall: int | None = None
    preference: str | None = None
    created_at: str = ""
    comment: str | None = None  # schema version 2
    flagged: bool | None = bool_field(False)  # schema version 2: "this item is broken"


@dataclass(frozen=True, kw_only=True)
class RatingSkip(Record):
    """An item an annotator skipped (it returns at the end of their queue)."""

    id: str  # content_key(annotator, item id), as the rating it stands in for
    annotator: str
    item_id: str
    created_at: str = ""


@dataclass(frozen=True, kw_only=True)
class RatingPool(Record):
    """A set of items an admin handed to annotators, each item to `spec["overlap"]` of them."""

    id: str
    name: str
    mode: str  # single (1-10 scores) | pair (a preference)
    spec: dict = json_field(sort_keys=True)  # sources, tasks, size, overlap, annotators
    created_by: str
    created_at: str = ""


@dataclass(frozen=True, kw_only=True)
class Assignment(Record):
    """One item of a pool given to one annotator."""

    pool_id: str
    annotator: str
    item_id: str
    position: int  # the item's place in the pool


def _rating_comments_and_flags(db) -> None:
    """Version 2: a comment and a flag per rating (older rows: none, not flagged)."""
    if "human_ratings" in db.table_names():
        db["human_ratings"].add_column("comment", str)
        db["human_ratings"].add_column("flagged", int)


EVALS = declare(Schema("evals", (
    Table("judge_cache", JudgeCall, "key"),
    Table("eval_runs", EvalRun, "id"),
    Table("eval_samples", EvalSample, ("eval_id", "model", "task", "idx")),
    Table("leaderboard", LeaderboardRow, ("eval_id", "model", "task", "metric")),
    Table("human_ratings", Rating, "id"),
    Table("rating_skips", RatingSkip, "id"),
    Table("rating_pools", RatingPool, "id"),
    Table("rating_assignments", Assignment, ("pool_id", "annotator", "item_id"),
          indexes=(("annotator",),)),
), migrations=(Migration(2, _rating_comments_and_flags, "human_ratings.comment and .flagged; "
                         "rating skips, pools and assignments"),)))


# judges ---------------------------------------------------------------------------------------
def judge_cached(store: Store, key: str) -> JudgeCall | None:
    rows = store.ensure(EVALS).select(JudgeCall, "judge_cache", "key = ?", [key])
    return rows[0] if rows else None


def add_judgement(store: Store, call: JudgeCall) -> None:
    """Cache one judge call (replies that failed to parse are kept, with ok = False)."""
    store.ensure(EVALS).insert("judge_cache", [replace(call, created_at=now())], replace=True)


# evaluations ----------------------------------------------------------------------------------
def add_eval_run(store: Store, eval_id: str, config: dict, results: dict,
                 samples: list[EvalSample], board: list[LeaderboardRow]) -> None:
    """One `udasa-eval run`: its config and results, per-sample rows and leaderboard rows,
    all stored under `eval_id` in one transaction."""
    store.ensure(EVALS)
    run = EvalRun(id=eval_id, created_at=now(), config=config, results=results)
    with store.transaction():
        store.db["eval_runs"].insert(run.to_row(), replace=True)
        store.db["eval_samples"].insert_all(
            (replace(s, eval_id=eval_id).to_row() for s in samples), replace=True)
        store.db["leaderboard"].insert_all(
            (replace(b, eval_id=eval_id).to_row() for b in board), replace=True)


def leaderboard(store: Store) -> list[LeaderboardRow]:
    return store.ensure(EVALS).select(LeaderboardRow, "leaderboard",
                                      order_by="task, metric, value desc")


def eval_samples(store: Store, eval_id: str | None = None) -> list[EvalSample]:
    return store.ensure(EVALS).select(EvalSample, "eval_samples", *where_equal(eval_id=eval_id),
                                      order_by="task, idx")


def eval_runs(store: Store) -> list[EvalRun]:
    """Every `udasa-eval run`, oldest first."""
    return store.ensure(EVALS).select(EvalRun, "eval_runs", order_by="created_at, rowid")


def eval_run_times_and_configs(store: Store) -> tuple[dict[str, str], dict[str, dict]]:
    """Each eval run's creation time and config, by run id: what a leaderboard row's setting
    and recency are read from."""
    runs = eval_runs(store)
    return {r.id: r.created_at for r in runs}, {r.id: r.config for r in runs}


# human ratings ---------------------------------------------------------------------------------
def add_rating(store: Store, rating: Rating) -> None:
    """Store a rating; a resubmission (same id) replaces the earlier one."""
    store.ensure(EVALS).insert("human_ratings", [replace(rating, created_at=now())],
                               replace=True)


def ratings(store: Store, annotator: str | None = None) -> list[Rating]:
    """Every rating (of one annotator), oldest first."""
    return store.ensure(EVALS).select(Rating, "human_ratings", *where_equal(annotator=annotator),
                                      order_by="created_at")


def add_skip(store: Store, skip: RatingSkip) -> None:
    """Record a skip (skipping again moves it to the end of the queue)."""
    store.ensure(EVALS).insert("rating_skips", [replace(skip, created_at=now())], replace=True)


def skips(store: Store, annotator: str | None = None) -> list[RatingSkip]:
    """Every skip (of one annotator), oldest first."""
    return store.ensure(EVALS).select(RatingSkip, "rating_skips",
                                      *where_equal(annotator=annotator), order_by="created_at")


def add_pool(store: Store, pool: RatingPool, assignments: list[Assignment]) -> None:
    """A new rating pool and its assignments, in one transaction."""
    store.ensure(EVALS)
    with store.transaction():
        store.db["rating_pools"].insert(replace(pool, created_at=now()).to_row())
        store.db["rating_assignments"].insert_all(a.to_row() for a in assignments)


def pools(store: Store) -> list[RatingPool]:
    """Every rating pool, oldest first."""
    return store.ensure(EVALS).select(RatingPool, "rating_pools", order_by="created_at, rowid")


def assignments(store: Store, annotator: str | None = None,
                pool_id: str | None = None) -> list[Assignment]:
    """The assignments (of one annotator, of one pool), in pool order."""
    return store.ensure(EVALS).select(Assignment, "rating_assignments",
                                      *where_equal(annotator=annotator, pool_id=pool_id),
                                      order_by="pool_id, position")

