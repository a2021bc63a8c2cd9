"""The workspace store: one SQLite file (WAL) through sqlite-utils; the only module that speaks SQL.

Rows are keyed by content (prompt text, generation settings, sample index, scorer name and
version), so writing the same thing twice is a no-op and a resumed run does only missing work.
Each batch is written in one transaction: a killed run never leaves half a batch behind.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlite_utils

from udasa.records import Prompt

SCHEMA: dict[str, tuple[dict[str, type], str | tuple[str, ...]]] = {
    "runs": ({"id": str, "name": str, "created_at": str, "updated_at": str, "status": str,
              "config": str, "manifest": str, "summary": str}, "id"),
    "prompts": ({"id": str, "text": str, "source": str, "origin": str, "category": str,
                 "meta": str}, "id"),
    "run_prompts": ({"run_id": str, "prompt_id": str, "position": int},
                    ("run_id", "prompt_id")),
    "responses": ({"id": str, "gen_key": str, "prompt_id": str, "sample_index": int,
                   "text": str, "model": str, "created_at": str}, "id"),
    "prompt_events": ({"gen_key": str, "prompt_id": str, "step": str, "kind": str,
                       "reason": str, "created_at": str}, ("gen_key", "prompt_id", "step")),
    "scores": ({"response_id": str, "axis": str, "scorer": str, "version": str,
                "value": float, "details": str}, ("response_id", "axis", "scorer", "version")),
    "fused": ({"run_id": str, "response_id": str, "prompt_id": str, "u": float,
               "weights": str, "components": str}, ("run_id", "response_id")),
    "pairs": ({"run_id": str, "prompt_id": str, "chosen_id": str, "rejected_id": str,
               "u_chosen": float, "u_rejected": float, "delta": float, "stage": int,
               "soft_label": float},
              ("run_id", "prompt_id", "chosen_id", "rejected_id")),
    "stages": ({"run_id": str, "stage": int, "name": str, "lo": float, "hi": float,
                "count": int}, ("run_id", "stage")),
    "ref_logps": ({"ref_key": str, "pair_key": str, "chosen": float, "rejected": float},
                  ("ref_key", "pair_key")),
    "checkpoints": ({"run_id": str, "train_key": str, "stage": int, "name": str, "path": str,
                     "metrics": str, "created_at": str}, ("run_id", "train_key", "stage")),
    "train_results": ({"run_id": str, "train_key": str, "metrics": str, "created_at": str},
                      ("run_id", "train_key")),
    "judge_cache": ({"key": str, "judge": str, "model": str, "prompt": str, "params": str,
                     "reply": str, "score": float, "ok": int, "error": str,
                     "prompt_tokens": int, "completion_tokens": int, "cost_usd": float,
                     "created_at": str}, "key"),
    "eval_runs": ({"id": str, "created_at": str, "config": str, "results": str}, "id"),
    "eval_samples": ({"eval_id": str, "model": str, "task": str, "idx": int, "prompt": str,
                      "output": str, "scores": str}, ("eval_id", "model", "task", "idx")),
    "leaderboard": ({"eval_id": str, "model": str, "task": str, "metric": str, "value": float,
                     "ci_low": float, "ci_high": float, "n": int, "failures": int,
                     "judge": str}, ("eval_id", "model", "task", "metric")),
    "human_ratings": ({"id": str, "annotator": str, "item_id": str, "prompt": str,
                       "response": str, "method": str, "harmless": int, "helpful": int,
                       "overall": int, "preference": str, "created_at": str}, "id"),
    "train_logs": ({"run_id": str, "train_key": str, "stage": int, "idx": int, "step": int,
                    "metrics": str}, ("run_id", "train_key", "stage", "idx")),
    "attack_suffixes": ({"key": str, "mode": str, "target": str, "behaviours": str,
                         "suffix": str, "suffix_ids": str, "best_loss": float, "losses": str,
                         "success": int, "config": str, "result": str, "created_at": str},
                        "key"),
}


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Store:
    """A workspace's SQLite store. Create with `Store(workspace_dir)`."""

    FILENAME = "udasa.sqlite"

    def __init__(self, workspace: str | Path):
        self.workspace = Path(workspace)
        self.workspace.mkdir(parents=True, exist_ok=True)
        self.path = self.workspace / self.FILENAME
        self.db = sqlite_utils.Database(self.path)
        self.db.conn.execute("PRAGMA busy_timeout = 30000")
        self.db.enable_wal()
        for name, (columns, pk) in SCHEMA.items():
            self.db[name].create(columns, pk=pk, if_not_exists=True)
        self.db["responses"].create_index(["gen_key", "prompt_id"], if_not_exists=True)
        self.db["scores"].create_index(["response_id"], if_not_exists=True)

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes inside commit together or not at all."""
        with self.db.conn:
            yield

    def _insert(self, table: str, rows: Iterable[dict[str, Any]], replace: bool = False) -> None:
        rows = list(rows)
        if rows:
            with self.transaction():
                self.db[table].insert_all(rows, replace=replace, ignore=not replace)

    # runs ------------------------------------------------------------------------------
    def upsert_run(self, run_id: str, name: str, config: dict, manifest: dict) -> None:
        existing = self.get_run(run_id)
        row = {"id": run_id, "name": name, "config": json.dumps(config, sort_keys=True),
               "manifest": json.dumps(manifest, sort_keys=True), "updated_at": now(),
               "created_at": existing["created_at"] if existing else now(),
               "status": existing["status"] if existing else "started",
               "summary": existing["summary"] if existing else "{}"}
        self._insert("runs", [row], replace=True)

    def set_run_status(self, run_id: str, status: str, summary: dict | None = None) -> None:
        update: dict[str, Any] = {"status": status, "updated_at": now()}
        if summary is not None:
            update["summary"] = json.dumps(summary, sort_keys=True)
        with self.transaction():
            self.db["runs"].update(run_id, update)

    def get_run(self, run_id: str) -> dict | None:
        rows = list(self.db["runs"].rows_where("id = ?", [run_id]))
        return rows[0] if rows else None

    def latest_run(self) -> dict | None:
        rows = list(self.db["runs"].rows_where(order_by="updated_at desc, rowid desc", limit=1))
        return rows[0] if rows else None

    def runs(self) -> list[dict]:
        return list(self.db["runs"].rows_where(order_by="updated_at desc"))

    # prompts ---------------------------------------------------------------------------
    def add_prompts(self, run_id: str, prompts: list[Prompt]) -> None:
        """Record the run's prompts (and their order) in one transaction."""
        with self.transaction():
            self.db["prompts"].insert_all(
                ({"id": p.id, "text": p.text, "source": p.source, "origin": p.origin,
                  "category": p.category, "meta": json.dumps(p.meta)} for p in prompts),
                ignore=True)
            self.db["run_prompts"].insert_all(
                ({"run_id": run_id, "prompt_id": p.id, "position": i}
                 for i, p in enumerate(prompts)), replace=True)

    def run_prompts(self, run_id: str) -> list[dict]:
        return list(self.db.query(
            "select p.* from run_prompts r join prompts p on p.id = r.prompt_id "
            "where r.run_id = ? order by r.position", [run_id]))

    # responses -------------------------------------------------------------------------
    def add_responses(self, rows: list[dict]) -> None:
        for row in rows:
            row.setdefault("created_at", now())
        self._insert("responses", rows)

    def responses(self, gen_key: str, prompt_ids: list[str] | None = None) -> list[dict]:
        sql = "select * from responses where gen_key = ?"
        rows = list(self.db.query(sql + " order by prompt_id, sample_index", [gen_key]))
        if prompt_ids is not None:
            keep = set(prompt_ids)
            rows = [r for r in rows if r["prompt_id"] in keep]
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
        self._insert("prompt_events", [{"gen_key": gen_key, "prompt_id": prompt_id, "step": step,
                                        "kind": kind, "reason": reason, "created_at": now()}],
                     replace=True)

    def prompt_events(self, gen_key: str) -> list[dict]:
        return list(self.db["prompt_events"].rows_where("gen_key = ?", [gen_key]))

    # scores ----------------------------------------------------------------------------
    def add_scores(self, rows: list[dict]) -> None:
        for row in rows:
            row["details"] = json.dumps(row.get("details") or {})
        self._insert("scores", rows)

    def scored_response_ids(self, axis: str, scorer: str, version: str) -> set[str]:
        return {r["response_id"] for r in self.db.query(
            "select response_id from scores where axis = ? and scorer = ? and version = ?",
            [axis, scorer, version])}

    def scores(self, response_ids: list[str], axis: str, scorer: str,
               version: str) -> dict[str, dict]:
        wanted = set(response_ids)
        return {r["response_id"]: r for r in self.db.query(
            "select * from scores where axis = ? and scorer = ? and version = ?",
            [axis, scorer, version]) if r["response_id"] in wanted}

    # fusion, pairs, stages (derived; cheap to recompute, replaced as a whole per run) ---
    def replace_pairs(self, run_id: str, fused: list[dict], pairs: list[dict]) -> None:
        """Fused scores and pairs of a run, swapped in one transaction (stages cleared)."""
        with self.transaction():
            for table in ("fused", "pairs", "stages"):
                self.db.execute(f"delete from {table} where run_id = ?", [run_id])
            self.db["fused"].insert_all(fused)
            self.db["pairs"].insert_all(pairs)

    def replace_stages(self, run_id: str, stage_of: dict[tuple[str, str, str], int],
                       stages: list[dict]) -> None:
        """Set each pair's stage (keyed by prompt, chosen, rejected) and the stage table."""
        with self.transaction():
            self.db.execute("delete from stages where run_id = ?", [run_id])
            self.db["stages"].insert_all(stages)
            self.db.conn.executemany(
                "update pairs set stage = ? where run_id = ? and prompt_id = ? "
                "and chosen_id = ? and rejected_id = ?",
                [(s, run_id, *key) for key, s in stage_of.items()])

    def fused(self, run_id: str) -> list[dict]:
        return list(self.db["fused"].rows_where("run_id = ?", [run_id]))

    def pairs(self, run_id: str, stage: int | None = None) -> list[dict]:
        """Pairs joined with prompt and response texts, largest delta first."""
        sql = ("select pa.*, p.text as prompt, c.text as chosen, r.text as rejected "
               "from pairs pa join prompts p on p.id = pa.prompt_id "
               "join responses c on c.id = pa.chosen_id join responses r on r.id = pa.rejected_id "
               "where pa.run_id = ?")
        args: list[Any] = [run_id]
        if stage is not None:
            sql += " and pa.stage = ?"
            args.append(stage)
        return list(self.db.query(sql + " order by pa.delta desc, pa.prompt_id", args))

    def stages(self, run_id: str) -> list[dict]:
        return list(self.db["stages"].rows_where("run_id = ?", [run_id], order_by="stage"))

    # training ----------------------------------------------------------------------------
    def ref_logps(self, ref_key: str, pair_keys: list[str]) -> dict[str, tuple[float, float]]:
        wanted = set(pair_keys)
        return {r["pair_key"]: (r["chosen"], r["rejected"]) for r in
                self.db["ref_logps"].rows_where("ref_key = ?", [ref_key])
                if r["pair_key"] in wanted}

    def add_ref_logps(self, ref_key: str, rows: dict[str, tuple[float, float]]) -> None:
        self._insert("ref_logps", ({"ref_key": ref_key, "pair_key": k, "chosen": c,
                                    "rejected": r} for k, (c, r) in rows.items()), replace=True)

    def add_train_logs(self, run_id: str, train_key: str, stage: int,
                       history: list[dict]) -> None:
        with self.transaction():
            self.db.execute("delete from train_logs where run_id = ? and train_key = ? and "
                            "stage = ?", [run_id, train_key, stage])
            self.db["train_logs"].insert_all(
                {"run_id": run_id, "train_key": train_key, "stage": stage, "idx": i,
                 "step": int(h.get("step", 0)), "metrics": json.dumps(h)}
                for i, h in enumerate(history))

    def train_logs(self, run_id: str, train_key: str) -> list[dict]:
        rows = self.db["train_logs"].rows_where("run_id = ? and train_key = ?",
                                                [run_id, train_key], order_by="stage, idx")
        return [r | {"metrics": json.loads(r["metrics"])} for r in rows]

    def add_checkpoint(self, run_id: str, train_key: str, stage: int, name: str, path: str,
                       metrics: dict) -> None:
        self._insert("checkpoints", [{"run_id": run_id, "train_key": train_key, "stage": stage,
                                      "name": name, "path": path, "metrics": json.dumps(metrics),
                                      "created_at": now()}], replace=True)

    def checkpoints(self, run_id: str | None = None, train_key: str | None = None) -> list[dict]:
        """Stage checkpoints (all, or of one run and training configuration), in stage order."""
        clauses = [(c, v) for c, v in (("run_id = ?", run_id), ("train_key = ?", train_key)) if v]
        where = " and ".join(c for c, _ in clauses) or None
        rows = self.db["checkpoints"].rows_where(where, [v for _, v in clauses],
                                                 order_by="run_id, train_key, stage")
        return [r | {"metrics": json.loads(r["metrics"])} for r in rows]

    def set_train_result(self, run_id: str, train_key: str, metrics: dict) -> None:
        self._insert("train_results", [{"run_id": run_id, "train_key": train_key,
                                        "metrics": json.dumps(metrics), "created_at": now()}],
                     replace=True)

    def train_result(self, run_id: str, train_key: str) -> dict | None:
        rows = list(self.db["train_results"].rows_where("run_id = ? and train_key = ?",
                                                        [run_id, train_key]))
        return json.loads(rows[0]["metrics"]) if rows else None

    # judges and evaluation -----------------------------------------------------------------
    def judge_cached(self, key: str) -> dict | None:
        rows = list(self.db["judge_cache"].rows_where("key = ?", [key]))
        return rows[0] if rows else None

    def add_judgement(self, row: dict) -> None:
        """Cache one judge call (replies that failed to parse are kept, with ok = 0)."""
        self._insert("judge_cache", [row | {"created_at": now()}], replace=True)

    def add_eval_run(self, eval_id: str, config: dict, results: dict,
                     samples: list[dict], board: list[dict]) -> None:
        """One `udasa-eval run`: its config and results, per-sample rows and leaderboard rows."""
        with self.transaction():
            self.db["eval_runs"].insert({"id": eval_id, "created_at": now(),
                                         "config": json.dumps(config),
                                         "results": json.dumps(results)}, replace=True)
            self.db["eval_samples"].insert_all(
                (s | {"eval_id": eval_id, "scores": json.dumps(s.get("scores", {}))}
                 for s in samples), replace=True)
            self.db["leaderboard"].insert_all((b | {"eval_id": eval_id} for b in board),
                                              replace=True)

    def leaderboard(self) -> list[dict]:
        return list(self.db["leaderboard"].rows_where(order_by="task, metric, value desc"))

    def eval_samples(self, eval_id: str | None = None) -> list[dict]:
        where, args = ("eval_id = ?", [eval_id]) if eval_id else (None, [])
        return [r | {"scores": json.loads(r["scores"])}
                for r in self.db["eval_samples"].rows_where(where, args, order_by="task, idx")]

    def add_rating(self, row: dict) -> None:
        self._insert("human_ratings", [row | {"created_at": now()}], replace=True)

    def ratings(self, annotator: str | None = None) -> list[dict]:
        where, args = ("annotator = ?", [annotator]) if annotator else (None, [])
        return list(self.db["human_ratings"].rows_where(where, args, order_by="created_at"))

    # attacks -----------------------------------------------------------------------------
    def attack_suffix(self, key: str) -> dict | None:
        """A stored GCG suffix (`result` decoded: the full GCGResult dict), or None."""
        rows = list(self.db["attack_suffixes"].rows_where("key = ?", [key]))
        return _decode_attack(rows[0]) if rows else None

    def add_attack_suffix(self, key: str, mode: str, target: str, behaviours: list[dict],
                          result: dict) -> None:
        """Keep one optimised suffix with its loss curve; `target` names the model (white-box)
        or the ensemble (transfer), `result` is `GCGResult.to_dict()`."""
        self._insert("attack_suffixes", [{
            "key": key, "mode": mode, "target": target, "behaviours": json.dumps(behaviours),
            "suffix": result["suffix"], "suffix_ids": json.dumps(result["suffix_ids"]),
            "best_loss": result["best_loss"], "losses": json.dumps(result["losses"]),
            "success": int(result["success"]), "config": json.dumps(result["config"]),
            "result": json.dumps(result, ensure_ascii=False), "created_at": now()}],
            replace=True)

    def attack_suffixes(self, mode: str | None = None) -> list[dict]:
        """Every stored suffix (of one mode), oldest first, JSON columns decoded."""
        where, args = ("mode = ?", [mode]) if mode else (None, [])
        return [_decode_attack(r) for r in
                self.db["attack_suffixes"].rows_where(where, args, order_by="created_at, rowid")]

    # app ---------------------------------------------------------------------------------
    def eval_runs(self) -> list[dict]:
        """Every `udasa-eval run` (id, created_at, config, results as JSON text), oldest first."""
        return list(self.db["eval_runs"].rows_where(order_by="created_at, rowid"))


def _decode_attack(row: dict) -> dict:
    return row | {k: json.loads(row[k]) for k in ("behaviours", "suffix_ids", "losses", "config",
                                                  "result")} | {"success": bool(row["success"])}
