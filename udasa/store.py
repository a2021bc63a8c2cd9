"""The workspace store: one SQLite file (WAL) through sqlite-utils; typed records in and out.

Rows are keyed by content (prompt text, generation settings, sample index, scorer name and
version), so writing the same thing twice is a no-op and a resumed run does only missing work.
Each batch is written in one transaction: a killed run never leaves half a batch behind.

This module holds the core tables (`CORE`); the packages above declare their own beside their
code (`evals.store_tables`, `attacks.store_tables`) and the store applies every declared
schema, each at its version (`udasa.migrations`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import sqlite_utils

from udasa.errors import UdasaError
from udasa.files import writing
from udasa.integrity import damaged, header_problem, read_only, store_errors
from udasa.migrations import apply_schemas, refuse_newer
from udasa.records import Prompt
from udasa.store_records import (
    Checkpoint,
    FusedScore,
    PreferencePair,
    PromptEvent,
    RefLogp,
    Response,
    Run,
    RunPrompt,
    RunStage,
    Score,
    TrainLogEntry,
    TrainResult,
)
from udasa.store_schema import Record, Schema, Table, declare, declared

CORE = declare(Schema("udasa", (
    Table("runs", Run, "id"),
    Table("prompts", Prompt, "id"),
    Table("run_prompts", RunPrompt, ("run_id", "prompt_id")),
    Table("responses", Response, "id", indexes=(("gen_key", "prompt_id"),)),
    Table("prompt_events", PromptEvent, ("gen_key", "prompt_id", "step")),
    Table("scores", Score, ("response_id", "axis", "scorer", "version"),
          indexes=(("response_id",),)),
    Table("fused", FusedScore, ("run_id", "response_id")),
    Table("pairs", PreferencePair, ("run_id", "prompt_id", "chosen_id", "rejected_id")),
    Table("stages", RunStage, ("run_id", "stage")),
    Table("ref_logps", RefLogp, ("ref_key", "pair_key")),
    Table("checkpoints", Checkpoint, ("run_id", "train_key", "stage")),
    Table("train_results", TrainResult, ("run_id", "train_key")),
    Table("train_logs", TrainLogEntry, ("run_id", "train_key", "stage", "idx")),
)))


R = TypeVar("R", bound=Record)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def where_equal(**columns: Any) -> tuple[str | None, list[Any]]:
    """A `where` clause and its arguments matching the columns given a value (empty: any)."""
    given = {c: v for c, v in columns.items() if v}
    return " and ".join(f"{c} = ?" for c in given) or None, list(given.values())


class Store:
    """A workspace's SQLite store. Create with `Store(workspace_dir)`.

    Opening checks the file's header and the schema versions before it writes anything: a
    damaged file (another file type, truncated) or a store written by newer code is a
    DataError and stays as it was; an older one is migrated in one transaction.
    """

    FILENAME = "udasa.sqlite"

    def __init__(self, workspace: str | Path):
        self.workspace = Path(workspace)
        self.path = self.workspace / self.FILENAME
        if problem := header_problem(self.path):  # another file type, truncated: untouched
            raise damaged(self.path, problem)
        schemas = declared()
        with store_errors(self.path):
            if self.path.is_file() and self.path.stat().st_size:  # newer: refused read-only
                with closing(sqlite_utils.Database(read_only(self.path))) as peek:
                    refuse_newer(peek, self.path, schemas)
            with writing(self.workspace):
                self.workspace.mkdir(parents=True, exist_ok=True)
            self.db = sqlite_utils.Database(self.path)
            try:
                self.db.conn.execute("PRAGMA busy_timeout = 30000")
                self.db.enable_wal()
                apply_schemas(self.db, self.path, schemas)
            except BaseException:
                self.db.close()
                raise
        self._applied = {s.package for s in schemas}

    @classmethod
    def existing(cls, workspace: str | Path, first: str = "udasa run") -> Store:
        """The workspace's store when there is one (a command that only reads creates
        nothing); else a UdasaError saying to run `first` first."""
        if not (Path(workspace) / cls.FILENAME).is_file():
            raise UdasaError(f"{workspace}: no store ({cls.FILENAME}) here: run `{first}` "
                             "first (or name the --workspace it wrote to)")
        return cls(workspace)

    @classmethod
    def read_only(cls, workspace: str | Path) -> Store:
        """The workspace's existing store through a connection that cannot write (no schema
        is applied: a table this code declares may be missing from an older store)."""
        store = cls.__new__(cls)
        store.workspace = Path(workspace)
        store.path = store.workspace / cls.FILENAME
        with store_errors(store.path):
            store.db = sqlite_utils.Database(read_only(store.path))
        store._applied = set()
        return store

    def ensure(self, schema: Schema) -> Store:
        """Apply `schema` (declared after this store opened) if not done yet; returns self."""
        if schema.package not in self._applied:
            with store_errors(self.path):
                apply_schemas(self.db, self.path, [schema])
            self._applied.add(schema.package)
        return self

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes inside commit together or not at all; a full or read-only disk is a
        WriteError naming the store (the transaction rolled back)."""
        with store_errors(self.path), self.db.conn:
            yield

    def insert(self, table: str, records: Iterable[Record], replace: bool = False) -> None:
        """Write records in one transaction: an existing key is kept (`replace`: overwritten)."""
        rows = [r.to_row() for r in records]
        if rows:
            with self.transaction():
                self.db[table].insert_all(rows, replace=replace, ignore=not replace)

    def select(self, record: type[R], table: str, where: str | None = None,
               args: Iterable[Any] = (), order_by: str | None = None,
               limit: int | None = None) -> list[R]:
        """The rows of `table` matching `where`, as `record`s."""
        return [record.from_row(r) for r in self.db[table].rows_where(
            where, list(args), order_by=order_by, limit=limit)]

    # runs ------------------------------------------------------------------------------
    def upsert_run(self, run_id: str, name: str, config: dict, manifest: dict) -> None:
        """Record the run's config and manifest (created_at, status and summary are kept)."""
        existing = self.get_run(run_id)
        run = Run(id=run_id, name=name, config=config, manifest=manifest, updated_at=now(),
                  created_at=existing.created_at if existing else now(),
                  status=existing.status if existing else "started",
                  summary=existing.summary if existing else {})
        self.insert("runs", [run], replace=True)

    def set_run_status(self, run_id: str, status: str, summary: dict | None = None) -> None:
        update: dict[str, Any] = {"status": status, "updated_at": now()}
        if summary is not None:
            update |= Run.encode_fields(summary=summary)
        with self.transaction():
            self.db["runs"].update(run_id, update)

    def get_run(self, run_id: str) -> Run | None:
        rows = self.select(Run, "runs", "id = ?", [run_id])
        return rows[0] if rows else None

    def latest_run(self) -> Run | None:
        rows = self.select(Run, "runs", order_by="updated_at desc, rowid desc", limit=1)
        return rows[0] if rows else None

    def runs(self) -> list[Run]:
        return self.select(Run, "runs", order_by="updated_at desc")

    # prompts ---------------------------------------------------------------------------
    def add_prompts(self, run_id: str, prompts: list[Prompt]) -> None:
        """Record the run's prompts (and their order) in one transaction."""
        with self.transaction():
            self.db["prompts"].insert_all((p.to_row() for p in prompts), ignore=True)
            self.db["run_prompts"].insert_all(
                (RunPrompt(run_id=run_id, prompt_id=p.id, position=i).to_row()
                 for i, p in enumerate(prompts)), replace=True)

    def run_prompts(self, run_id: str) -> list[Prompt]:
        """The run's prompts, in the run's order."""
        return [Prompt.from_row(r) for r in self.db.query(
            "select p.* from run_prompts r join prompts p on p.id = r.prompt_id "
            "where r.run_id = ? order by r.position", [run_id])]

    # responses -------------------------------------------------------------------------
    def add_responses(self, responses: list[Response]) -> None:
        """Store replies (one transaction); a reply already stored under its id is kept."""
        self.insert("responses", [r if r.created_at else replace(r, created_at=now())
                                  for r in responses])

    def responses(self, gen_key: str, prompt_ids: list[str] | None = None) -> list[Response]:
        rows = self.select(Response, "responses", "gen_key = ?", [gen_key],
                           order_by="prompt_id, sample_index")
        if prompt_ids is not None:
            keep = set(prompt_ids)
            rows = [r for r in rows if r.prompt_id in keep]
        return rows

    def response_texts(self, ids: list[str]) -> dict[str, str]:
        """The text of each stored response id (ids not stored are left out)."""
        out: dict[str, str] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ", ".join("?" * len(chunk))
            out |= {r["id"]: r["text"] for r in self.db.query(
                f"select id, text from responses where id in ({marks})", chunk)}
        return out

    def generated_prompt_ids(self, gen_key: str) -> set[str]:
        return {r["prompt_id"] for r in self.db.query(
            "select distinct prompt_id from responses where gen_key = ?", [gen_key])}

    # per-prompt events: skips and errors (e.g. prompt too long, unparseable list output) --
    def add_prompt_event(self, gen_key: str, prompt_id: str, step: str, kind: str,
                         reason: str) -> None:
        self.insert("prompt_events", [PromptEvent(
            gen_key=gen_key, prompt_id=prompt_id, step=step, kind=kind, reason=reason,
            created_at=now())], replace=True)

    def prompt_events(self, gen_key: str) -> list[PromptEvent]:
        return self.select(PromptEvent, "prompt_events", "gen_key = ?", [gen_key])

    # scores ----------------------------------------------------------------------------
    def add_scores(self, scores: list[Score]) -> None:
        self.insert("scores", scores)

    def scored_response_ids(self, axis: str, scorer: str, version: str) -> set[str]:
        return {r["response_id"] for r in self.db.query(
            "select response_id from scores where axis = ? and scorer = ? and version = ?",
            [axis, scorer, version])}

    def scores(self, response_ids: list[str], axis: str, scorer: str,
               version: str) -> dict[str, Score]:
        """Each listed response's score on `axis` by this scorer version (if stored)."""
        wanted = set(response_ids)
        rows = self.select(Score, "scores", "axis = ? and scorer = ? and version = ?",
                           [axis, scorer, version])
        return {s.response_id: s for s in rows if s.response_id in wanted}

    # fusion, pairs, stages (derived; cheap to recompute, replaced as a whole per run) ---
    def replace_pairs(self, run_id: str, fused: list[FusedScore],
                      pairs: list[PreferencePair]) -> None:
        """Fused scores and pairs of a run, swapped in one transaction (stages cleared)."""
        with self.transaction():
            for table in ("fused", "pairs", "stages"):
                self.db.execute(f"delete from {table} where run_id = ?", [run_id])
            self.db["fused"].insert_all(f.to_row() for f in fused)
            self.db["pairs"].insert_all(p.to_row() for p in pairs)

    def replace_stages(self, run_id: str, stage_of: dict[tuple[str, str, str], int],
                       stages: list[RunStage]) -> None:
        """Set each pair's stage (keyed by prompt, chosen, rejected) and the stage table."""
        with self.transaction():
            self.db.execute("delete from stages where run_id = ?", [run_id])
            self.db["stages"].insert_all(s.to_row() for s in stages)
            self.db.conn.executemany(
                "update pairs set stage = ? where run_id = ? and prompt_id = ? "
                "and chosen_id = ? and rejected_id = ?",
                [(s, run_id, *key) for key, s in stage_of.items()])

    def fused(self, run_id: str) -> list[FusedScore]:
        return self.select(FusedScore, "fused", "run_id = ?", [run_id])

    def pairs(self, run_id: str, stage: int | None = None) -> list[PreferencePair]:
        """Pairs with prompt and response texts joined in, largest delta first."""
        sql = ("select pa.*, p.text as prompt, c.text as chosen, r.text as rejected "
               "from pairs pa join prompts p on p.id = pa.prompt_id "
               "join responses c on c.id = pa.chosen_id join responses r on r.id = pa.rejected_id "
               "where pa.run_id = ?")
        args: list[Any] = [run_id]
        if stage is not None:
            sql += " and pa.stage = ?"
            args.append(stage)
        return [PreferencePair.from_row(r) for r in
                self.db.query(sql + " order by pa.delta desc, pa.prompt_id", args)]

    def stages(self, run_id: str) -> list[RunStage]:
        return self.select(RunStage, "stages", "run_id = ?", [run_id], order_by="stage")

    # training ----------------------------------------------------------------------------
    def ref_logps(self, ref_key: str, pair_keys: list[str]) -> dict[str, tuple[float, float]]:
        wanted = set(pair_keys)
        return {r.pair_key: (r.chosen, r.rejected) for r in
                self.select(RefLogp, "ref_logps", "ref_key = ?", [ref_key])
                if r.pair_key in wanted}

    def add_ref_logps(self, ref_key: str, rows: dict[str, tuple[float, float]]) -> None:
        self.insert("ref_logps", (RefLogp(ref_key=ref_key, pair_key=k, chosen=c, rejected=r)
                                  for k, (c, r) in rows.items()), replace=True)

    def add_train_logs(self, run_id: str, train_key: str, stage: int,
                       history: list[dict]) -> None:
        """A stage's trainer log history (replacing the stage's earlier one)."""
        with self.transaction():
            self.db.execute("delete from train_logs where run_id = ? and train_key = ? and "
                            "stage = ?", [run_id, train_key, stage])
            self.db["train_logs"].insert_all(
                TrainLogEntry(run_id=run_id, train_key=train_key, stage=stage, idx=i,
                              step=int(h.get("step", 0)), metrics=h).to_row()
                for i, h in enumerate(history))

    def train_logs(self, run_id: str, train_key: str) -> list[TrainLogEntry]:
        return self.select(TrainLogEntry, "train_logs", "run_id = ? and train_key = ?",
                           [run_id, train_key], order_by="stage, idx")

    def add_checkpoint(self, run_id: str, train_key: str, stage: int, name: str, path: str,
                       metrics: dict) -> None:
        self.insert("checkpoints", [Checkpoint(
            run_id=run_id, train_key=train_key, stage=stage, name=name, path=path,
            metrics=metrics, created_at=now())], replace=True)

    def checkpoints(self, run_id: str | None = None,
                    train_key: str | None = None) -> list[Checkpoint]:
        """Stage checkpoints (all, or of one run and training configuration), in stage order."""
        where, args = where_equal(run_id=run_id, train_key=train_key)
        return self.select(Checkpoint, "checkpoints", where, args,
                           order_by="run_id, train_key, stage")

    def set_train_result(self, run_id: str, train_key: str, metrics: dict) -> None:
        self.insert("train_results", [TrainResult(run_id=run_id, train_key=train_key,
                                                  metrics=metrics, created_at=now())],
                    replace=True)

    def train_result(self, run_id: str, train_key: str) -> dict | None:
        """The metrics of a finished training (None: not finished)."""
        rows = self.select(TrainResult, "train_results", "run_id = ? and train_key = ?",
                           [run_id, train_key])
        return rows[0].metrics if rows else None
