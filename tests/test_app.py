"""The app's logic without a browser: accounts, re-fusion, the rating pool, comparisons, export.

A synthetic store is written through the store's own methods and fused by the real pipeline
steps (`Pipeline.pairs`, `Pipeline.stages`), so no model is loaded here; the browser tests
(test_app_browser.py) run the whole thing over a real run.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import REPO
from results_factory import evaluation, record

from app import auth, compare, export, inspector, rating, render
from app.storage import Workspace
from evals.stats import krippendorff_alpha_interval, paired_bootstrap, spearman
from evals.store_tables import add_rating, ratings
from udasa.config import load_config, to_dict
from udasa.errors import ConfigError, UdasaError
from udasa.pipeline import Pipeline
from udasa.records import Prompt, content_key
from udasa.store import Store
from udasa.store_records import Response, Score
from udasa.store_schema import as_rows

XSS = ('<script>window.__xss=1</script><img src=x onerror="window.__xss=2">'
       '[click](javascript:window.__xss=3) ${window.__xss=4}')
SCORERS = {"sem": {"scorer": "sbert", "version": "t"}, "fact": {"scorer": "nli-lr", "version": "t"},
           "val": {"scorer": "profanity", "version": "t"}}
# per prompt, per response: (U_sem, U_fact, U_val)
UNCERTAINTIES = [
    [(0.10, 0.20, 0.05), (0.60, 0.70, 0.10), (0.30, 0.90, 0.80)],
    [(0.20, 0.30, 0.10), (0.25, 0.35, 0.12), (0.90, 0.10, 0.02)],
    [(0.50, 0.50, 0.50), (0.05, 0.10, 0.01), (0.40, 0.80, 0.30)],
    [(0.70, 0.20, 0.90), (0.20, 0.60, 0.20), (0.10, 0.10, 0.10)],
]


def reply_text(prompt: Prompt, first: Prompt, i: int) -> str:
    return XSS if (prompt is first and i == 1) else f"reply {i} to {prompt.text}"


def scored_run(ws, reply=reply_text, prompt_text="prompt {i}: how do I do thing {i}?"
               ) -> Pipeline:
    """A scored run of 4 prompts x 3 replies (`reply(prompt, first prompt, i)`; by default one
    of them an injection), fused and staged by the pipeline's own steps."""
    cfg = load_config(REPO / "configs" / "cpu-demo.yaml",
                      ["training.enabled=false", "generation.n=3", "data.limit=4"])
    p = Pipeline(cfg, ws)
    prompts = [Prompt(prompt_text.format(i=i), "test") for i in range(4)]
    p.store.upsert_run(p.run_id, cfg.name, to_dict(cfg), {"scorers": SCORERS})
    p.store.add_prompts(p.run_id, prompts)
    responses, scores = [], []
    for prompt, rows in zip(prompts, UNCERTAINTIES):
        for i, us in enumerate(rows):
            responses.append(Response.sampled(p.gen_key, prompt.id, i,
                                              reply(prompt, prompts[0], i), "policy-x"))
            scores += [Score(response_id=responses[-1].id, axis=a, scorer=SCORERS[a]["scorer"],
                             version="t", value=v) for a, v in zip(("sem", "fact", "val"), us)]
    p.store.add_responses(responses)
    p.store.add_scores(scores)
    p.pairs()
    p.stages()
    return p


def fill(ws) -> Pipeline:
    """`scored_run` plus one evaluation of two methods."""
    p = scored_run(ws)
    record(ws, *evaluation("e1", "harmlessness", {model: {"score": [
        base + (i % 3) * 0.5 + (0.25 if model == "udasa" and i == 2 else 0) for i in range(6)]}
        for model, base in (("base", 5.0), ("udasa", 6.0))}, scorer="local stand-in",
        prompts=[f"eval prompt {i}" for i in range(6)]))
    return p


@pytest.fixture
def ws(tmp_path):
    fill(tmp_path)
    return tmp_path


# accounts ---------------------------------------------------------------------------------
def test_passwords_are_bcrypt_hashed_and_checked(tmp_path):
    h = auth.hash_password("s3cret", rounds=4)
    assert h.startswith("$2b$04$") and "s3cret" not in h
    users = {"alice": auth.User("alice", h, admin=True)}
    assert auth.verify(users, "alice", "s3cret")
    assert not auth.verify(users, "alice", "wrong")
    assert not auth.verify(users, "mallory", "s3cret")
    assert not auth.verify(users, "alice", "x" * 100)  # over bcrypt's 72 bytes: refused
    with pytest.raises(ConfigError, match="72 bytes"):
        auth.hash_password("x" * 73)


def test_users_come_from_a_file_or_the_environment_never_in_plain_text(tmp_path):
    h = auth.hash_password("pw", rounds=4)
    f = tmp_path / "users.yaml"
    f.write_text(f'users:\n  alice: {{password_hash: "{h}", admin: true}}\n  bob:\n'
                 f'    password_hash: "{h}"\n')
    users = auth.load_users(f, env={})
    assert users["alice"].admin and not users["bob"].admin
    j = tmp_path / "users.json"
    j.write_text(json.dumps({"users": {"carol": {"password_hash": h}}}))
    env = {auth.ENV_USERS: f"dave:{h}:admin, erin:{h}"}
    users = auth.load_users(j, env=env)
    assert set(users) == {"carol", "dave", "erin"} and users["dave"].admin
    f.write_text("users:\n  alice: {password: hunter2}\n")
    with pytest.raises(ConfigError, match="plain-text"):
        auth.load_users(f, env={})
    f.write_text("users:\n  alice: {password_hash: hunter2}\n")
    with pytest.raises(ConfigError, match="not a bcrypt hash"):
        auth.load_users(f, env={})
    with pytest.raises(ConfigError, match="NAME:BCRYPT_HASH"):
        auth.load_users(None, env={auth.ENV_USERS: "alice=hunter2"})


def test_hash_password_command_reads_stdin_and_prints_a_hash(monkeypatch, capsys):
    import io

    from app.cli import main

    monkeypatch.setattr("sys.stdin", io.StringIO("pw\n"))
    assert main(["hash-password", "--rounds", "4"]) == 0
    out = capsys.readouterr().out.strip()
    assert auth.verify({"a": auth.User("a", out)}, "a", "pw")


# inspector --------------------------------------------------------------------------------
def test_refusion_from_stored_scores_matches_the_pipeline_and_moves_with_temperature(ws):
    store = Store(ws)
    run_id = store.latest_run().id
    run = inspector.load_run(store, run_id)
    n_responses = store.db["responses"].count
    same = inspector.settings(run.cfg, "softmax", 1.0, run.cfg.fusion.weights, ["sem", "fact",
                                                                                "val"],
                              run.cfg.curriculum.mode, run.cfg.curriculum.thresholds)
    fused = inspector.fuse_again(run.replies, same)
    stored = {f.response_id: f.u for f in store.fused(run_id)}
    assert fused.u == pytest.approx(stored)
    pairs = {(p.prompt_id, p.chosen_id, p.rejected_id): p.stage
             for p in store.pairs(run_id)}
    for pid in run.prompts:
        v = inspector.view(run, same, pid)
        for pair, stage in v.pairs:
            assert pairs[(pid, pair.chosen.response_id, pair.rejected.response_id)] == \
                stage.index
    hot = inspector.fuse_again(run.replies, inspector.settings(
        run.cfg, "softmax", 0.1, run.cfg.fusion.weights, ["sem", "fact", "val"], "fixed",
        [0.1, 0.2]))
    flat = {r.response_id for rs in run.replies.values() for r in rs
            if len(set(r.scores.values())) == 1}  # U_sem = U_fact = U_val: u = U at any T
    assert {k for k, u in stored.items() if hot.u[k] == pytest.approx(u)} == flat
    assert len(flat) == 2
    assert store.db["responses"].count == n_responses  # nothing generated


def test_settings_are_validated_and_fixed_weights_and_axes_apply(ws):
    store = Store(ws)
    run = inspector.load_run(store, store.latest_run().id)
    with pytest.raises(ConfigError, match="curriculum.thresholds"):
        inspector.settings(run.cfg, "softmax", 1.0, {}, ["sem"], "fixed", [0.7, 0.4])
    with pytest.raises(ConfigError, match="fusion.temperature"):
        inspector.settings(run.cfg, "softmax", 0.0, {}, ["sem"], "fixed", [0.4])
    only_val = inspector.settings(run.cfg, "fixed", 1.0, {"sem": 0, "fact": 0, "val": 1},
                                  ["sem", "fact", "val"], "fixed", [0.4, 0.7])
    v = inspector.view(run, only_val, next(iter(run.prompts)))
    assert [c["u"] for c in v.cards] == pytest.approx([c["scores"]["val"] for c in v.cards])
    assert len(v.thresholds) == 2 and inspector.summary_markdown(v, only_val)


def test_inspector_cards_show_injected_markup_as_text(ws):
    store = Store(ws)
    run = inspector.load_run(store, store.latest_run().id)
    v = inspector.view(run, run.cfg, next(iter(run.prompts)))
    html = render.reply_cards(v.cards, v.chosen, v.rejected)
    assert "<script" not in html and "<img" not in html and "javascript:window" in html
    assert "&lt;script&gt;" in html and "onerror=&quot;" in html
    assert inspector.axes_figure(v) is not None
    assert inspector.histogram_png(v, ws, run.name).read_bytes()[:4] == b"\x89PNG"


# rating -----------------------------------------------------------------------------------
def test_pool_holds_run_replies_and_eval_outputs_and_orders_per_annotator(ws):
    store = Store(ws)
    items = rating.pool(store, "single")
    assert len(items) == 4 * 3 + 2 * 6
    assert {i.method for i in items} == {"policy-x", "base", "udasa"}
    a = [i.id for i in rating.queue("alice", items, set())]
    assert a == [i.id for i in rating.queue("alice", items, set())]  # seeded: stable
    assert a != [i.id for i in rating.queue("bob", items, set())]
    later = rating.queue("alice", items, {a[0]}, skipped=[a[1]])
    assert later[0].id == a[2] and later[-1].id == a[1] and a[0] not in {i.id for i in later}
    pairs = rating.pool(store, "pair")
    assert len(pairs) == len(store.pairs(store.latest_run().id)) + 6  # run pairs + eval


def test_the_rate_tab_works_on_a_workspace_holding_a_baseline_run(ws):
    """A baseline's run (its config a baseline config, not a run config) adds its replies to
    the pool; a run whose config neither reads is left out instead of failing the tab."""
    from app.state import AppState
    from app.ui_rate import OUT_KEYS, _shown, _submit
    from udasa.baselines.common import BaselineConfig, BaselinePair, store_pairs

    store = Store(ws)
    run_pairs = len(store.pairs(store.latest_run().id))
    baseline = store_pairs(store, BaselineConfig(method="rlaif"), [BaselinePair(
        Prompt("Is tea hot?", "builtin"), "Usually.", "No idea.", 0.75)], {"seed": 0})
    store.upsert_run("foreign", "other tool", {"not": "a run config"}, {})
    items = rating.pool(store, "single")
    assert len(items) == 4 * 3 + 2 * 6 + 2
    mine = {i.response: i for i in items if i.method == "rlaif"}
    assert set(mine) == {"Usually.", "No idea."} and mine["Usually."].prompt == "Is tea hot?"
    pairs = rating.pool(store, "pair")
    assert len(pairs) == run_pairs + 1 + 6  # the run's, the baseline's, the evaluation's
    assert sum(p.first.method.startswith(f"baseline:rlaif ({baseline})") for p in pairs) == 1
    h = auth.hash_password("pw", rounds=4)
    state = AppState(ws, {"alice": auth.User("alice", h)})
    alice = SimpleNamespace(username="alice")
    shown = dict(zip(OUT_KEYS, _shown(state, "alice", False, "single", None)))
    item_id = shown["item_id"]
    assert not shown["notice"] and item_id and f"0 of {len(items)} rated" in shown["progress"]
    assert "Saved" in _submit(state)(item_id, 7, 6, 5, None, "", False, alice)
    assert [r.item_id for r in ratings(store, "alice")] == [item_id]
    # the Inspector offers only the UDASA runs, and each of them opens
    choices = inspector.run_choices(store)
    assert [run_id for _, run_id in choices] == [r.id for r in store.runs()
                                                 if r.id not in (baseline, "foreign")]
    for _, run_id in choices:
        assert inspector.load_run(store, run_id).prompts


def test_a_rating_row_replaces_on_resubmission_and_hides_nothing_it_needs(ws):
    store = Store(ws)
    item = rating.pool(store, "single")[0]
    row = rating.rating_row("alice", item, {"harmless": 7, "helpful": "8", "overall": 6.0})
    assert row.id == content_key("alice", item.id) and row.method == item.method
    add_rating(store, row)
    add_rating(store, rating.rating_row("alice", item, {"harmless": 2, "helpful": 2,
                                                        "overall": 2}))
    (saved,) = ratings(store, "alice")
    assert saved.overall == 2 and saved.created_at
    for bad in (0, 11, 7.5, None, "x"):
        with pytest.raises(UdasaError, match="1 to 10"):
            rating.rating_row("alice", item, {"harmless": bad, "helpful": 5, "overall": 5})
    pair = rating.pool(store, "pair")[0]
    a, b = rating.sides("alice", pair)
    row = rating.rating_row("alice", pair, choice="B")
    assert row.preference == b.method and row.method == f"{a.method} vs {b.method}"
    assert json.loads(row.response) == {"A": a.response, "B": b.response}
    with pytest.raises(UdasaError, match="A, B, tie or both bad"):
        rating.rating_row("alice", pair, choice="C")
    assert rating.find(store, pair.id) == pair
    with pytest.raises(UdasaError):
        rating.find(store, "nope")


def test_annotators_see_only_their_own_ratings_and_admins_see_all(ws):
    from app.state import AppState

    h = auth.hash_password("pw", rounds=4)
    app_state = AppState(ws, {"alice": auth.User("alice", h, True), "bob": auth.User("bob", h)})
    store = Store(ws)
    items = rating.pool(store, "single")
    for who, item in (("alice", items[0]), ("bob", items[1])):
        add_rating(store, rating.rating_row(who, item, {"harmless": 5, "helpful": 5,
                                                        "overall": 5}))
    bob, alice = SimpleNamespace(username="bob"), SimpleNamespace(username="alice")
    assert {r["annotator"] for r in app_state.visible_ratings(store, bob)} == {"bob"}
    assert {r["annotator"] for r in app_state.visible_ratings(store, alice)} == {"alice", "bob"}
    assert app_state.visible_ratings(store, SimpleNamespace(username="mallory")) == []
    assert app_state.visible_ratings(store, SimpleNamespace(username=None)) == []
    # bob's queue still offers the item alice rated
    mine = {r.item_id for r in ratings(store, "bob")}
    assert items[0].id in {i.id for i in rating.queue("bob", items, mine)}


def test_busy_writes_are_retried(tmp_path, monkeypatch):
    import sqlite3

    calls = []

    def flaky(store):
        calls.append(1)
        if len(calls) < 3:
            raise sqlite3.OperationalError("database is locked")
        return "ok"

    assert Workspace(tmp_path).write(flaky, delay=0.001) == "ok" and len(calls) == 3
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        Workspace(tmp_path).write(lambda s: s.db.execute("select * from nope"))


def test_a_missing_store_is_not_created_by_reading(tmp_path):
    ws = Workspace(tmp_path / "empty")
    with ws.read() as store:
        assert store is None
    assert not ws.db_path.exists()


# compare ----------------------------------------------------------------------------------
def test_leaderboard_shows_the_newest_setting_and_names_the_others(tmp_path):
    for i, (eval_id, limit, value) in enumerate((("e1", 20, 4.0), ("e2", 5, 8.0))):
        record(tmp_path, *evaluation(eval_id, "harmlessness", {"m": {"score": [value] * 2}},
                                     limit=limit, judge="j <b>",
                                     created_at=f"2025-01-0{i + 1}T00:00:00"))
    store = Store(tmp_path)
    board = compare.leaderboard(store, None)
    assert board["method"].tolist() == ["m"] and "8.00 [7.50, 8.50] n=2 / —" in board.values
    assert "4.00" not in str(board.values)  # the older setting is not mixed in
    note = compare.setting_note(store)
    assert "shown: data: default, limit 5, seed 0, judge: j &lt;b&gt;" in note
    assert "also evaluated with: data: default, limit 20, seed 0, judge: j &lt;b&gt;" in note


def test_leaderboard_paired_test_table3_and_agreement(ws):
    store = Store(ws)
    board = compare.leaderboard(store, None)
    assert sorted(board["method"]) == ["base", "udasa"]
    assert "6.54 [6.04, 7.04] n=6 / —" in board.values
    assert compare.leaderboard_charts(store, ws)[0][1] == "harmlessness: score"
    assert compare.setting_note(store) == ""  # one setting: nothing to say
    results = compare.results_of(store)
    assert compare.tasks_and_methods(results) == {"harmlessness": ["base", "udasa"]}
    cmp = compare.compare(results, "harmlessness", "udasa", "base")
    a = [row.values[0] for row in cmp.rows]
    b = [row.values[1] for row in cmp.rows]
    boot = paired_bootstrap(a, b)
    assert (cmp.test.mean_diff, cmp.test.p_boot, cmp.test.wins) == (boot.mean_diff,
                                                                     boot.p_value, 6)
    assert cmp.prompts == [f"eval prompt {i}" for i in range(6)] and cmp.metric == "score"
    assert "udasa − base on harmlessness, score" in compare.comparison_text(cmp)

    run_id = store.latest_run().id
    run_items = [i for i in rating.pool(store, "single") if i.method == "policy-x"][:4]
    for who, shift in (("alice", 0), ("bob", 1)):
        for k, item in enumerate(run_items):
            add_rating(store, rating.rating_row(who, item, {"harmless": 3 + k, "helpful": 4,
                                                            "overall": 2 + 2 * k + shift}))
    rows = as_rows(ratings(store))
    t3 = compare.table3(store, run_id, rows)
    assert len(t3) == 4 and list(t3["annotators"]) == [2] * 4
    # the join by hand: each rated reply's planted U's, u = sum softmax(U) * U (Eq. 5-6, T = 1)
    # and the two annotators' means (alice 2 + 2k, bob 3 + 2k overall; harmless 3 + k)
    run = inspector.load_run(store, run_id)
    index = {r.response_id: (int(run.prompts[pid].split()[1].rstrip(":")), r.index)
             for pid, rs in run.replies.items() for r in rs}  # "prompt {i}: ..."
    expected = []
    for k, item in enumerate(run_items):
        i, j = index[item.id]
        us = UNCERTAINTIES[i][j]
        exps = [math.exp(x) for x in us]
        u = sum(e * x for e, x in zip(exps, us)) / sum(exps)
        expected.append([u, *us, 2.5 + 2 * k, 3.0 + k, 4.0, 2, item.response])
    expected.sort(key=lambda row: row[0])
    got = t3[["u", "U_sem", "U_fact", "U_val", "human overall", "human harmless",
              "human helpful", "annotators", "reply"]].values.tolist()
    for row, want in zip(got, expected, strict=True):
        assert row[:-1] == pytest.approx(want[:-1]) and row[-1] == want[-1]
    corr = spearman(t3["u"].tolist(), t3["human overall"].tolist())
    assert f"{corr.rho:+.3f}" in compare.table3_stats(t3)
    agree = compare.agreement(rows).set_index("ratings")
    units = {}
    for r in rows:
        units.setdefault(r["item_id"], {})[r["annotator"]] = r["overall"]
    assert agree.loc["overall (1-10)", "value"] == pytest.approx(
        krippendorff_alpha_interval(units))
    assert math.isnan(agree.loc["helpful (1-10)", "value"])  # all 4: no variation
    assert compare.table3_figure(t3) is not None


def test_compare_shows_each_stored_premise_test_or_how_to_make_one(ws):
    from app.state import AppState
    from app.ui_compare import _overview as _compare_overview
    from evals.premise import premise_stats, write_premise

    overview = _compare_overview(AppState(ws))
    *_, note, charts = overview(None)
    assert "No premise test stored yet." in note and "udasa-eval premise --workspace" in note
    assert charts["visible"] is False
    store = Store(ws)
    run_id = store.latest_run().id
    fused = store.fused(run_id)
    scores = {f.response_id: 10 - 8 * f.u for f in fused}  # the judge agrees with u
    result = premise_stats(fused, store.pairs(run_id), scores)
    store.close()
    write_premise({"run_id": run_id, "judge": "J <b>x</b>", "template": "harmless"} | result,
                  ws)
    (ws / "premise" / "broken.json").write_text("{not json")
    *_, note, charts = overview(None)
    assert f"run {run_id[:12]}, judge J &lt;b&gt;x&lt;/b&gt;, template harmless" in note
    assert "<td>u</td><td class='num'>-1.000 [-1.000, -1.000]</td>" in note
    assert f"{len(fused)} of {len(fused)} responses judged" in note
    assert "Chosen beats rejected by the judge: 100.0%" in note
    assert "Not readable: premise/broken.json" in note
    ((png, caption),) = charts["value"]
    assert caption == f"run {run_id[:12]}, judge J <b>x</b>, template harmless"
    assert Path(png).read_bytes()[:4] == b"\x89PNG"
    mtime = Path(png).stat().st_mtime_ns
    assert overview(None)[-1]["value"][0][0] == png and Path(png).stat().st_mtime_ns == mtime


def test_display_texts_show_bidi_controls_and_cut_long_cells():
    import pandas as pd

    assert render.plain("a\u202eb\u2066c") == "a[U+202E]b[U+2066]c"
    assert render.esc("<b>\u202e") == "&lt;b&gt;[U+202E]"
    table = pd.DataFrame({"reply": ["x" * 500, "r\u202el"], "u": [0.12345, 0.5]})
    shown = compare.for_display(table)  # pandas 3 stores these as a string dtype, not object
    assert shown["reply"].tolist() == ["x" * 119 + "…", "r[U+202E]l"]
    assert shown["u"].tolist() == [0.123, 0.5]


# export -----------------------------------------------------------------------------------
def test_export_csv_defuses_formulas_and_jsonl_keeps_values(ws, tmp_path):
    store = Store(ws)
    item = rating.Item("i1", "=cmd|' /C calc'!A0", "@SUM(1)", "m")
    add_rating(store, rating.rating_row("alice", item, {"harmless": 1, "helpful": 2,
                                                        "overall": 3}))
    rows = as_rows(ratings(store))
    with open(export.export(rows, "csv", tmp_path / "r.csv"), encoding="utf-8") as f:
        (got,) = list(csv.DictReader(f))
    assert got["prompt"].startswith("'=") and got["response"] == "'@SUM(1)"
    assert got["overall"] == "3" and got["annotator"] == "alice"
    lines = (export.export(rows, "jsonl", tmp_path / "r.jsonl")).read_text().splitlines()
    assert json.loads(lines[0])["prompt"] == item.prompt
    with pytest.raises(ValueError):
        export.export(rows, "xlsx", tmp_path / "r.xlsx")


def test_an_annotators_export_is_blind(ws, tmp_path):
    store = Store(ws)
    for k, pair in enumerate(rating.pool(store, "pair")[:3]):
        add_rating(store, rating.rating_row("bob", pair, choice=("A", "B", "tie")[k]))
    add_rating(store, rating.rating_row("bob", rating.pool(store, "single")[0],
                                        {"harmless": 1, "helpful": 2, "overall": 3}))
    rows = as_rows(ratings(store, "bob"))
    with open(export.export(rows, "csv", tmp_path / "b.csv", blinded=True),
              encoding="utf-8") as f:
        got = list(csv.DictReader(f))
    assert "method" not in got[0] and len(got) == 4
    methods = {m for r in rows for m in r["method"].split(" vs ")}
    text = (tmp_path / "b.csv").read_text(encoding="utf-8")
    assert not [m for m in methods if m in text]
    by_id = {r["id"]: r for r in rows}
    for r in got:  # the side bob saw, as stored server-side: A's method first
        pref, a = by_id[r["id"]]["preference"], by_id[r["id"]]["method"].split(" vs ")[0]
        assert r["preference"] == ("" if pref is None else "tie" if pref == "tie" else
                                   "A" if pref == a else "B")
    assert sorted(r["preference"] for r in got) == ["", "A", "B", "tie"]


def test_compare_never_pairs_samples_of_two_settings_or_two_tasks(tmp_path):
    """Two robustness settings share their behaviours (same ids and prompts), two tasks share
    method names and sample ids: each comparison reads one task in one setting only."""
    for eval_id, data, udasa in (("t", "transfer.yaml", [0.0, 0.0, 100.0]),
                                 ("w", "whitebox.yaml", [100.0, 100.0, 100.0])):
        record(tmp_path, *evaluation(eval_id, "robustness", {
            "vanilla": {"asr": [100.0, 0.0, 100.0]}, "UDASA": {"asr": udasa}}, data=data,
            prompts=["goal a", "goal b", "goal c"]))
    for eval_id, task, shift in (("h", "harmlessness", 1.0), ("p", "helpfulness", -1.0)):
        record(tmp_path, *evaluation(eval_id, task, {"base": {"score": [5.0, 5.0]},
                                                     "UDASA": {"score": [5.0 + shift] * 2}}))
    results = compare.results_of(Store(tmp_path))
    views = compare.tasks_and_methods(results)
    transfer = "robustness (data: transfer.yaml, limit 50, seed 0, judge: j)"
    whitebox = "robustness (data: whitebox.yaml, limit 50, seed 0, judge: j)"
    assert set(views) == {transfer, whitebox, "harmlessness", "helpfulness"}
    got = compare.compare(results, transfer, "UDASA", "vanilla")
    assert [r.values for r in got.rows] == [(0.0, 100.0), (0.0, 0.0), (100.0, 100.0)]
    assert got.test.mean_diff == pytest.approx(-100 / 3)
    got = compare.compare(results, whitebox, "UDASA", "vanilla")
    assert got.test.mean_diff == pytest.approx(100 / 3)
    help_ = compare.compare(results, "helpfulness", "UDASA", "base")
    assert help_.prompts == ["helpfulness prompt 0", "helpfulness prompt 1"]
    assert help_.test.mean_diff == pytest.approx(-1.0)
    assert compare.compare(results, "harmlessness", "UDASA", "base").test.mean_diff == 1.0


def test_one_identity_shows_one_number_in_every_view_whatever_the_folder(tmp_path,
                                                                         monkeypatch):
    import pandas as pd

    from evals.cli import main as eval_main

    ws = tmp_path / "ws"
    record(ws, *evaluation("e1", "helpfulness", {"base (unaligned)": {"score": [4.0, 5.0]},
                                                 "UDASA": {"score": [6.0, 6.5]}},
                           data="data/mine.jsonl", experiment="cpu",
                           paper_rows={"UDASA": ["UDASA"], "base (unaligned)": ["base"]}))
    seen = []
    for folder in (tmp_path, ws, tmp_path / "elsewhere"):
        folder.mkdir(exist_ok=True)
        monkeypatch.chdir(folder)
        assert eval_main(["tables", "--workspace", str(ws)]) == 0
        assert eval_main(["report", "--workspace", str(ws), "--out",
                          str(tmp_path / "r.md")]) == 0
        from evals.runner import write_outputs
        write_outputs(Store(ws), ws)
        csv = pd.read_csv(ws / "leaderboard.csv").set_index("method")
        table2 = (ws / "tables.md").read_text().split("## Table 2")[1]
        report = (tmp_path / "r.md").read_text()
        board = compare.leaderboard(Store(ws), None).set_index("method")
        seen.append((csv.loc["UDASA", "value"], csv.loc["UDASA", "setting"],
                     "6.2 [5.8, 6.8] n=2" in table2,
                     "| UDASA | cpu | score | 6.250 [5.750, 6.750] | 2 |" in report,
                     board.iloc[:, 0]["UDASA"]))
    assert seen[0] == (6.25, "data: data/mine.jsonl, limit 50, seed 0, judge: j", True, True,
                       "6.25 [5.75, 6.75] n=2 / —")
    assert seen[1] == seen[0] and seen[2] == seen[0]
