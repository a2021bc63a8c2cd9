"""The store: typed records in and out, tables declared per package, schema versions.

`fixtures/workspace-v1.sql` is a workspace written before the store had versions (see its
header): today's code opens it as version 1, reads every row as a typed record, recomputes
the same pairs from it, and creates fresh tables exactly like it.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from attacks.store_tables import AttackSuffix, add_attack_suffix, attack_suffixes
from evals.store_tables import (
    EvalSample,
    JudgeCall,
    LeaderboardRow,
    Rating,
    add_eval_run,
    add_rating,
    eval_runs,
    eval_samples,
    judge_cached,
    leaderboard,
    ratings,
)
from udasa import store_schema
from udasa.cli import main
from udasa.config import RunConfig, from_dict
from udasa.errors import DataError
from udasa.migrations import VERSIONS, recorded_versions
from udasa.pipeline import Pipeline
from udasa.records import Prompt, content_key
from udasa.store import CORE, Store
from udasa.store_records import FusedScore, PreferencePair, Response, Run, Score
from udasa.store_schema import Migration, Record, Schema, Table, declared

FIXTURE = Path(__file__).parent / "fixtures" / "workspace-v1.sql"


def load_v1(workspace: Path) -> Path:
    """The v1 fixture as a real SQLite file in `workspace`; returns its path."""
    workspace.mkdir(parents=True, exist_ok=True)
    path = workspace / Store.FILENAME
    with sqlite3.connect(path) as conn:
        conn.executescript(FIXTURE.read_text(encoding="utf-8"))
    conn.close()
    return path


def raw_rows(path: Path, table: str) -> list[dict]:
    with sqlite3.connect(path) as conn:
        conn.row_factory = sqlite3.Row
        rows = [dict(r) for r in conn.execute(f"select * from {table} order by rowid")]
    conn.close()
    return rows


def ddl(path: Path) -> dict[str, str]:
    with sqlite3.connect(path) as conn:
        out = dict(conn.execute("select name, sql from sqlite_master where sql is not null"))
    conn.close()
    return out


@pytest.fixture
def v1(tmp_path) -> Path:
    return load_v1(tmp_path / "ws")


# the v1 workspace -----------------------------------------------------------------------------
def test_a_v1_workspace_opens_as_version_1_and_evals_migrates_to_2(v1):
    store = Store(v1.parent)
    assert recorded_versions(store.db) == {"udasa": 1, "evals": 2, "attacks": 1}
    assert {s.package for s in declared()} >= {"udasa", "evals", "attacks"}
    for schema in declared():  # every row of every table reads back as its record
        for table in schema.tables:
            for row in raw_rows(v1, table.name):
                record = table.record.from_row(row)
                assert type(record).from_row(record.to_row()) == record, table.name


def test_v1_rows_read_as_typed_records_with_json_decoded(v1):
    store = Store(v1.parent)
    run = next(r for r in store.runs() if r.name == "cpu-demo")
    assert isinstance(run, Run) and run.status == "trained"
    assert run.config["generation"]["n"] == 3 and set(run.manifest["scorers"]) == {
        "sem", "fact", "val"}
    assert set(run.summary["seconds"]) == {"generate", "score", "pairs", "stages", "train"}
    prompts = store.run_prompts(run.id)
    assert [p.text for p in prompts][:2] == ["Name a colour.", "Is water wet?"]
    assert all(isinstance(p, Prompt) and p.meta == {} for p in prompts)
    assert [p.id for p in prompts] == [r["prompt_id"] for r in sorted(
        (r for r in raw_rows(v1, "run_prompts") if r["run_id"] == run.id),
        key=lambda r: r["position"])]
    (event,) = store.prompt_events(Pipeline(from_dict(RunConfig, run.config), v1.parent).gen_key)
    assert event.kind == "skip" and "context" in event.reason
    fused = store.fused(run.id)
    assert len(fused) == 6 and all(set(f.components) == {"sem", "fact", "val"} for f in fused)
    pairs = store.pairs(run.id)
    assert len(pairs) == 2 and all(p.prompt and p.chosen and p.rejected for p in pairs)
    assert [s.count for s in store.stages(run.id)] == [1, 0, 1]
    (ckpt, *_) = store.checkpoints(run.id)
    assert ckpt.metrics["steps"] >= 1 and ckpt.stage == 1
    assert store.train_logs(run.id, ckpt.train_key)[0].metrics
    assert "held_out_pairs" in store.train_result(run.id, ckpt.train_key)
    baseline = next(r for r in store.runs() if r.name == "baseline:rlaif")
    (pair,) = store.pairs(baseline.id)
    assert (pair.soft_label, pair.u_chosen, pair.chosen) == (0.75, None, "Usually.")
    assert [(s.lo, s.hi) for s in store.stages(baseline.id)] == [(float("-inf"), float("inf"))]


def test_v1_eval_rating_and_attack_rows_read_as_records(v1):
    store = Store(v1.parent)
    (run,) = eval_runs(store)
    assert run.config["tasks"] == ["harmlessness"] and "tasks" in run.results
    samples = eval_samples(store, run.id)
    assert len(samples) == 2 and all(s.scores["ok"] in (True, False) for s in samples)
    (row,) = leaderboard(store)
    assert isinstance(row, LeaderboardRow) and (row.task, row.n) == ("harmlessness", 2)
    calls = [judge_cached(store, r["key"]) for r in raw_rows(v1, "judge_cache")]
    assert calls and all(isinstance(c, JudgeCall) and c.ok is True for c in calls)
    single, pair = sorted(ratings(store), key=lambda r: r.preference or "")
    assert (single.harmless, single.helpful, single.overall) == (7, 5, 6)
    assert pair.preference and pair.overall is None
    (suffix,) = attack_suffixes(store)
    assert suffix.success is False and suffix.losses == [1.9, 1.5]
    assert suffix.result["init_loss"] == 2.0 and suffix.behaviours == [{"goal": "g",
                                                                         "target": "t"}]


def test_v1_response_ids_are_what_the_response_factories_make(v1):
    evals_keys = {r["gen_key"] for r in raw_rows(v1, "responses") if r["model"] == "tiny"}
    for r in raw_rows(v1, "responses"):
        made = (Response.single(r["gen_key"], r["prompt_id"], r["text"], r["model"])
                if r["gen_key"] in evals_keys else
                Response.sampled(r["gen_key"], r["prompt_id"], r["sample_index"], r["text"],
                                 r["model"]))
        assert made.id == r["id"] and made.to_row() | {"created_at": r["created_at"]} == r


def test_a_v1_run_recomputes_the_same_pairs(v1):
    store = Store(v1.parent)
    run = next(r for r in store.runs() if r.name == "cpu-demo")
    pipe = Pipeline(from_dict(RunConfig, run.config), v1.parent)
    assert pipe.run_id == run.id
    before = (store.fused(run.id), store.pairs(run.id), store.stages(run.id))
    pipe.pairs()
    pipe.stages()
    assert (store.fused(run.id), store.pairs(run.id), store.stages(run.id)) == before


def columns(path: Path) -> dict[str, list[tuple]]:
    """Each table's columns as (name, type, not null, default, pk), in order."""
    with sqlite3.connect(path) as conn:
        tables = [n for (n,) in conn.execute("select name from sqlite_master where type='table'")]
        out = {t: [tuple(r[1:]) for r in conn.execute(f"pragma table_info('{t}')")]
               for t in tables}
    conn.close()
    return out


MIGRATED = {"human_ratings"}  # evals v2 added columns; its DDL text then reads differently


def test_a_fresh_store_creates_the_v1_tables_exactly_and_a_migrated_one_matches_it(v1, tmp_path):
    Store(tmp_path / "fresh").close()
    fresh = ddl(tmp_path / "fresh" / Store.FILENAME)
    old = ddl(v1)
    assert {k: fresh[k] for k in old if k not in MIGRATED} == {k: v for k, v in old.items()
                                                              if k not in MIGRATED}
    Store(v1.parent).close()  # evals v1 -> v2
    assert columns(v1) == columns(tmp_path / "fresh" / Store.FILENAME)


def test_v1_ratings_survive_evals_v2_and_take_comments_flags_skips_and_pools(v1):
    from evals.store_tables import (
        Assignment,
        RatingPool,
        RatingSkip,
        add_pool,
        add_skip,
        assignments,
        pools,
        skips,
    )

    before = raw_rows(v1, "human_ratings")
    store = Store(v1.parent)
    old = ratings(store)
    assert [r.id for r in old] == [r["id"] for r in before]
    assert all(r.comment is None and r.flagged is None for r in old)  # unknown before v2
    assert [{k: v for k, v in r.items() if k not in ("comment", "flagged")}
            for r in raw_rows(v1, "human_ratings")] == before
    add_rating(store, replace(old[0], overall=2, comment="unclear prompt", flagged=True))
    again = {r.id: r for r in ratings(Store(v1.parent))}
    assert (again[old[0].id].overall, again[old[0].id].comment, again[old[0].id].flagged) == (
        2, "unclear prompt", True)
    add_skip(store, RatingSkip(id="s", annotator="bob", item_id="i"))
    add_pool(store, RatingPool(id="p", name="first", mode="single", spec={"overlap": 2},
                               created_by="alice"),
             [Assignment(pool_id="p", annotator=a, item_id="i", position=0)
              for a in ("bob", "carol")])
    assert [s.item_id for s in skips(store, "bob")] == ["i"] and skips(store, "carol") == []
    assert [p.spec for p in pools(store)] == [{"overlap": 2}]
    assert [a.annotator for a in assignments(store, pool_id="p")] == ["bob", "carol"]


# versions ---------------------------------------------------------------------------------------
def newer(path: Path, package: str = "udasa", version: int = 2) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute(f"create table {VERSIONS} (package text primary key, version integer)")
        conn.execute(f"insert into {VERSIONS} values (?, ?)", [package, version])
    conn.close()


def test_a_newer_workspace_is_refused_and_left_byte_for_byte(v1, capsys):
    newer(v1)
    before = {p.name: p.read_bytes() for p in v1.parent.iterdir()}
    with pytest.raises(DataError, match=f"{v1}: written by a newer UDASA") as err:
        Store(v1.parent)
    assert "\n" not in str(err.value) and "schema version 2" in str(err.value)
    assert main(["export-pairs", "--workspace", str(v1.parent), "--out", str(v1.parent)]) == 2
    assert "written by a newer UDASA" in capsys.readouterr().out
    assert {p.name: p.read_bytes() for p in v1.parent.iterdir()} == before


def test_a_newer_package_of_its_own_is_refused_too(v1):
    newer(v1, "evals", 5)
    before = v1.read_bytes()
    with pytest.raises(DataError, match="evals tables at schema version 5"):
        Store(v1.parent)
    assert v1.read_bytes() == before


@dataclass(frozen=True, kw_only=True)
class ThingV1(Record):
    id: str
    name: str


@dataclass(frozen=True, kw_only=True)
class ThingV3(Record):
    id: str
    name: str
    colour: str | None = None


def probe(calls: list[str], fail_at: int | None = None) -> Schema:
    """v3 of a test package: 2 adds `things.colour`, 3 paints the old rows red."""
    def add_colour(db):
        calls.append("colour")
        db["probe_things"].add_column("colour", str)
        if fail_at == 2:
            raise RuntimeError("killed mid-migration")

    def paint(db):
        calls.append("paint")
        db.execute("update probe_things set colour = 'red' where colour is null")
    return Schema("probe", (Table("probe_things", ThingV3, "id"),),
                  migrations=(Migration(2, add_colour, "things.colour"),
                              Migration(3, paint, "old things are red")))


def things(workspace: Path) -> list[dict]:
    return raw_rows(workspace / Store.FILENAME, "probe_things")


def test_migrations_run_in_order_once_each(tmp_path):
    v1 = Schema("probe", (Table("probe_things", ThingV1, "id"),))
    Store(tmp_path).ensure(v1).insert("probe_things", [ThingV1(id="a", name="apple")])
    calls: list[str] = []
    store = Store(tmp_path).ensure(probe(calls))
    assert calls == ["colour", "paint"] and recorded_versions(store.db)["probe"] == 3
    assert things(tmp_path) == [{"id": "a", "name": "apple", "colour": "red"}]
    store.insert("probe_things", [ThingV3(id="b", name="blue thing", colour="blue")])
    dump = things(tmp_path)
    for _ in range(2):  # opening again changes nothing: the migrations are not run again
        Store(tmp_path).ensure(probe(calls))
    assert calls == ["colour", "paint"] and things(tmp_path) == dump


def test_a_failed_migration_leaves_the_store_as_it_was(tmp_path):
    v1 = Schema("probe", (Table("probe_things", ThingV1, "id"),))
    Store(tmp_path).ensure(v1).insert("probe_things", [ThingV1(id="a", name="apple")])
    with pytest.raises(RuntimeError, match="killed mid-migration"):
        Store(tmp_path).ensure(probe([], fail_at=2))
    assert things(tmp_path) == [{"id": "a", "name": "apple"}]  # no colour column
    assert recorded_versions(Store(tmp_path).db)["probe"] == 1
    calls: list[str] = []
    Store(tmp_path).ensure(probe(calls))  # the next open migrates it after all
    assert calls == ["colour", "paint"] and things(tmp_path)[0]["colour"] == "red"


def test_a_core_migration_runs_on_a_v1_workspace(v1, monkeypatch):
    calls = []

    def index_models(db):
        calls.append(1)
        db["responses"].create_index(["model"])
    v2 = replace(CORE, migrations=(Migration(2, index_models, "responses by model"),))
    monkeypatch.setitem(store_schema._DECLARED, "udasa", v2)
    before = raw_rows(v1, "responses")
    store = Store(v1.parent)
    assert recorded_versions(store.db)["udasa"] == 2 and calls == [1]
    assert "idx_responses_model" in ddl(v1) and raw_rows(v1, "responses") == before
    Store(v1.parent)
    assert calls == [1]


def test_migrations_must_be_numbered_from_2_in_order():
    noop = Migration(3, lambda db: None, "skips 2")
    with pytest.raises(ValueError, match="versions 2, 3"):
        Schema("bad", (), migrations=(noop,))


# records ------------------------------------------------------------------------------------------
def test_records_round_trip_their_json_and_bool_columns(tmp_path):
    nested = {"ünï": ["code", {"x": 1.5, "none": None}], "ok": True}
    records = [
        Run(id="r", name="n", created_at="t", updated_at="t", status="s", config=nested),
        Score(response_id="x", axis="sem", scorer="sbert", version="1", value=0.5,
              details=nested),
        FusedScore(run_id="r", response_id="x", prompt_id="p", u=0.1, weights={"sem": 1.0},
                   components={"sem": 0.1}),
        EvalSample(eval_id="e", model="m", task="t", idx=0, prompt="p", output=None,
                   scores=nested),
        JudgeCall(key="k", judge="j", model="m", prompt="p", params="{}", ok=True),
        AttackSuffix.of("k", "white-box", "tiny", [{"goal": "g"}], {
            "suffix": "! !", "suffix_ids": [1, 2], "best_loss": 0.5, "losses": [0.7, 0.5],
            "success": True, "config": {"seed": 0}}),
    ]
    for record in records:
        row = record.to_row()
        assert all(isinstance(v, str | int | float | type(None)) for v in row.values())
        assert type(record).from_row(row) == record
    assert records[4].to_row()["ok"] == 1 and records[5].to_row()["success"] == 1
    pair = PreferencePair(run_id="r", prompt_id="p", chosen_id="c", rejected_id="x",
                          prompt="joined, not stored")
    assert "prompt" not in pair.to_row() and pair.key == ("p", "c", "x")
    store = Store(tmp_path)
    store.add_scores([records[1]])
    assert store.scores(["x"], "sem", "sbert", "1") == {"x": records[1]}
    add_eval_run(store, "e", nested, {}, [records[3]], [])
    assert eval_samples(store) == [records[3]] and eval_runs(store)[0].config == nested
    add_attack_suffix(store, records[5])
    assert replace(attack_suffixes(store)[0], created_at="") == records[5]


def test_writes_keep_their_insert_or_ignore_and_replace_semantics(tmp_path):
    store = Store(tmp_path)
    first = Response.sampled("g", "p", 0, "first", "m")
    store.add_responses([first])
    store.add_responses([replace(first, text="second")])  # same content key: kept as it was
    assert [r.text for r in store.responses("g")] == ["first"]
    item = Rating(id=content_key("alice", "i"), annotator="alice", item_id="i", prompt="p",
                  response="r", method="m", overall=3)
    add_rating(store, item)
    add_rating(store, replace(item, overall=9))  # a resubmission replaces the rating
    assert [r.overall for r in ratings(store)] == [9]
