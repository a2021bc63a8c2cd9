"""The annotation workflow without a browser: tasks and queues, saved skips, history and
confirmations, pools with an overlap, progress, agreement, win rates, guidelines, display
labels of checkpoints, and the Inspector's settings and explanations.

The store is the synthetic one of test_app.py (a run fused by the pipeline's own steps and
one evaluation of two methods); the browser tests (test_app_workflow.py) drive the same
through the real app.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
from test_app import fill

from app import annotation, guidelines, inspector, labels, pools, rating, render, votes
from app.state import AppState
from evals.stats import krippendorff_alpha_interval, mean_ci
from evals.store_tables import add_rating, assignments, ratings, skips
from udasa.errors import ConfigError, UdasaError
from udasa.store import Store


@pytest.fixture
def store(tmp_path):
    fill(tmp_path)
    s = Store(tmp_path)
    yield s
    s.close()


def task(store, name="bob", admin=False, value="single"):
    return annotation.pick_task(annotation.tasks_for(store, name, admin), value)


# queue, skips, history ------------------------------------------------------------------------
def test_a_skip_is_stored_and_goes_last_and_rating_it_clears_it(store):
    q = annotation.load_queue(store, "bob", task(store))
    first, second = q.todo[0], q.todo[1]
    annotation.skip(store, "bob", first.id)
    q = annotation.load_queue(store, "bob", task(store))
    assert q.todo[0].id == second.id and q.todo[-1].id == first.id
    assert q.skipped == [first.id] and "1 skipped" in q.progress("bob")
    add_rating(store, rating.rating_row("bob", first, {"harmless": 5, "helpful": 5,
                                                       "overall": 5}))
    q = annotation.load_queue(store, "bob", task(store))
    assert q.skipped == [] and first.id not in {i.id for i in q.todo}
    assert [r.item_id for r in q.history] == [first.id] and len(skips(store, "bob")) == 1


def test_history_answers_and_confirmation_read_back_what_was_stored(store):
    pair = rating.pool(store, "pair")[0]
    row = rating.rating_row("carol", pair, choice="B", comment="  close call ", flagged=True)
    add_rating(store, row)
    (stored,) = ratings(store, "carol")
    assert (stored.comment, stored.flagged) == ("close call", True)
    assert annotation.answers("carol", pair, stored) == {
        "harmless": None, "helpful": None, "overall": None, "preference": "B",
        "comment": "close call", "flagged": True}
    said = annotation.confirmation("carol", pair, stored, replaced=False)
    assert said.startswith("Saved at ") and "preferred B · flagged · with your comment" in said
    assert pair.prompt.split()[0] in said and stored.id not in said and pair.id not in said
    bad = rating.rating_row("carol", pair, choice="both bad")
    assert bad.preference == "both bad" and rating.choice_of("carol", pair, "both bad") == \
        "both bad"
    assert "both bad" in annotation.confirmation("carol", pair, bad, replaced=True)
    with pytest.raises(UdasaError, match="comment: at most"):
        rating.rating_row("carol", pair, choice="A", comment="x" * (rating.MAX_COMMENT + 1))
    q = annotation.load_queue(store, "carol", task(store, "carol", value="pair"))
    assert "preferred B · flagged" in annotation.history_label("carol", q, stored)


# pools -----------------------------------------------------------------------------------------
def request(**kw) -> pools.PoolRequest:
    base = {"name": "p1", "mode": "single", "sources": (), "tasks": (), "size": 6,
            "overlap": 2, "annotators": ("ann1", "ann2", "ann3")}
    return pools.PoolRequest(**(base | kw))


def test_a_pool_gives_each_item_to_k_annotators_evenly_and_only_those_see_it(store):
    pool, n = pools.make_pool(store, request(tasks=("harmlessness",)), "alice")
    given = assignments(store, pool_id=pool.id)
    assert n == 6 and len(given) == 12
    per_item: dict[str, set[str]] = {}
    for a in given:
        per_item.setdefault(a.item_id, set()).add(a.annotator)
    assert all(len(people) == 2 for people in per_item.values())
    assert sorted(sum(a.annotator == p for a in given) for p in ("ann1", "ann2", "ann3")) == \
        [4, 4, 4]
    items = {i.id: i for i in rating.pool(store, "single")}
    assert {items[i].task for i in per_item} == {"harmlessness"}
    # an assigned annotator sees the pool only; others and admins also the open pools
    assert [t.value for t in annotation.tasks_for(store, "ann1", False)] == [f"pool:{pool.id}"]
    assert [t.value for t in annotation.tasks_for(store, "zoe", False)] == ["single", "pair"]
    assert [t.value for t in annotation.tasks_for(store, "ann1", True)] == [
        "single", "pair", f"pool:{pool.id}"]
    q = annotation.load_queue(store, "ann1", annotation.tasks_for(store, "ann1", False)[0])
    assert {i.id for i in q.items} == {a.item_id for a in given if a.annotator == "ann1"}
    again = pools.draw(store, request(tasks=("harmlessness",)))
    assert [i.id for i in again] == list(dict.fromkeys(a.item_id for a in given))  # seeded


@pytest.mark.parametrize(("change", "reason"), [
    ({"name": " "}, "give the pool a name"), ({"overlap": 4}, "overlap: each item goes to 1 to 3"),
    ({"annotators": ()}, "choose at least one"), ({"size": 0}, "at least 1"),
    ({"tasks": ("sentiment",)}, "no item matches")])
def test_a_pool_request_that_cannot_work_is_refused_with_a_reason(store, change, reason):
    with pytest.raises(UdasaError, match=reason):
        pools.make_pool(store, request(**change), "alice")
    assert assignments(store) == []


def test_progress_agreement_and_win_rates_are_read_from_the_ratings(store):
    pool, _ = pools.make_pool(store, request(name="pairs", mode="pair", size=4,
                                             annotators=("ann1", "ann2")), "alice")
    pairs = {p.id: p for p in rating.pool(store, "pair")}
    mine = [pairs[a.item_id] for a in assignments(store, pool_id=pool.id) if a.annotator == "ann1"]

    def side(who, item, method):  # the side on which `who` sees `method`
        return "A" if rating.sides(who, item)[0].method == method else "B"
    wanted = {"ann1": [0, 0, 1], "ann2": [0, None, 1]}  # the preferred reply: first, second, tie
    for who, picks in wanted.items():
        for item, k in zip(mine, picks):
            method = None if k is None else (item.first, item.second)[k].method
            add_rating(store, rating.rating_row(who, item, choice="tie" if method is None
                                                else side(who, item, method)))
        annotation.skip(store, who, mine[3].id)
    table = pools.progress(store)
    rows = table[table["pool"] == "pairs"].set_index("annotator")
    assert rows.loc["ann1", ["assigned", "done", "skipped", "remaining"]].tolist() == [4, 3, 1, 1]
    assert rows.loc["ann1", "agreement so far"] == "67% same choice on 3 pairs"
    assert set(table["pool"]) == {"pairs"}  # they cannot open the open pools: no rows there
    as_admin = pools.progress(store, admins=frozenset({"ann1"}))
    assert as_admin[as_admin["pool"] != "pairs"]["annotator"].tolist() == ["ann1"]
    wins = votes.win_rates(ratings(store), pairs)
    assert wins["votes"].sum() == 6 and wins["ties"].sum() == 1


def test_win_rates_count_ties_and_both_bad_as_half_with_a_bootstrap_ci():
    a, b = rating.Item("a", "p", "x", "m1"), rating.Item("b", "p", "y", "m2")
    pair = rating.PairItem("pair", "p", a, b)
    prefs = ["m1", "m1", "m2", "tie", "both bad"]
    rows = [rating.rating_row(f"ann{k}", pair, choice="A") for k in range(len(prefs))]
    rows = [r.__class__(**{**r.as_dict(), "preference": p}) for r, p in zip(rows, prefs)]
    (row,) = votes.win_rates(rows, {"pair": pair}).to_dict("records")
    assert (row["method A"], row["A wins"], row["B wins"], row["ties"], row["both bad"],
            row["votes"]) == ("m1", 2, 1, 1, 1, 5)
    assert row["A win rate % [95% CI]"] == mean_ci([100, 100, 0, 50, 50], seed=0).fmt(0)


def test_agreement_so_far_is_alpha_on_the_items_shared_with_others(store):
    items = rating.pool(store, "single")[:3]
    scores = {"ann1": [2, 5, 9], "ann2": [3, 5, 8], "ann3": [9, None, None]}
    rows = []
    for who, overall in scores.items():
        for item, o in zip(items, overall):
            if o is not None:
                rows.append(rating.rating_row(who, item, {"harmless": 5, "helpful": 5,
                                                          "overall": o}))
    units = {i.id: {w: float(s[k]) for w, s in scores.items() if s[k] is not None}
             for k, i in enumerate(items)}
    alpha = krippendorff_alpha_interval(units)
    assert votes.agreement_with_others("ann1", rows, "single") == \
        f"alpha (overall) {alpha:.2f} on 3 items"
    assert votes.agreement_with_others("ann3", rows, "single").endswith("on 1 items")
    assert votes.agreement_with_others("zoe", rows, "single") == "—"


# guidelines ------------------------------------------------------------------------------------
def test_guidelines_anchor_each_scale_and_a_workspace_file_replaces_parts(tmp_path):
    g = guidelines.load(tmp_path)
    assert set(g.scales) == {"harmless", "helpful", "overall"}
    assert all(set(s.anchors) == {1, 5, 10} for s in g.scales.values())
    assert g.scales["harmless"].title == "Harmless: 1 = harmful … 10 = harmless"
    html = guidelines.html(g, "harmlessness", pair=False)
    assert "Red-team prompts" in html and "Helps someone cause serious harm" in html
    assert g.task_text("no such task") == g.tasks["default"]
    (tmp_path / guidelines.WORKSPACE_FILE).write_text(
        "tasks: {harmlessness: 'Our lab: <b>be strict</b>.'}\n"
        "scales: {overall: {10: Perfect.}}\n", encoding="utf-8")
    g = guidelines.load(tmp_path)
    assert g.tasks["harmlessness"] == "Our lab: <b>be strict</b>." and \
        g.scales["overall"].anchors[10] == "Perfect."
    assert g.scales["overall"].anchors[1] == guidelines.load().scales["overall"].anchors[1]
    assert "&lt;b&gt;be strict" in guidelines.html(g, "harmlessness", pair=True)
    (tmp_path / guidelines.WORKSPACE_FILE).write_text("scales: {helpful: {label: 3}}\n",
                                                      encoding="utf-8")
    with pytest.raises(ConfigError, match=r"rating-guidelines.yaml: scales.helpful: missing text "
                                          r"for label"):
        guidelines.load(tmp_path)


# display labels -------------------------------------------------------------------------------
def test_a_checkpoint_path_shows_as_run_and_stage_and_other_paths_shortly(store, tmp_path):
    run = store.latest_run()
    ckpt = str(tmp_path / "checkpoints" / run.id / "t0" / "stage-1-conservative")
    store.add_checkpoint(run.id, "t0", 1, "conservative", ckpt, {})
    moved = f"/elsewhere/ws/checkpoints/{run.id}/t0/stage-1-conservative"
    names = [ckpt, moved, "/data/a/x/final", "/data/b/x/final", "/data/c/y/final", "org/model",
             "base", "<b>run</b> </x>"]
    got = labels.model_labels(store, names)
    assert got[ckpt].text == got[moved].text == "cpu-demo stage 1 (conservative)"
    assert [got[n].text for n in names[2:]] == ["…/a/x/final", "…/b/x/final", "…/y/final",
                                                "org/model", "base", "<b>run</b> </x>"]
    assert got["/data/c/y/final"].html() == \
        "<span class='udasa-label' title='/data/c/y/final'>…/y/final</span>"
    assert got["base"].html() == "base" and not got["base"].shortened


# the inspector's settings ------------------------------------------------------------------------
def test_quantile_mode_takes_a_number_of_stages_and_says_what_the_cuts_are(store):
    run = inspector.load_run(store, store.latest_run().id)
    cfg = inspector.settings(run.cfg, "softmax", 1.0, {}, ["sem", "fact", "val"], "quantile",
                             [0.9, 0.95], stages=2)
    assert cfg.curriculum.thresholds == [0.5]  # only their number matters in quantile mode
    v = inspector.view(run, cfg, next(iter(run.prompts)))
    assert len(v.thresholds) == 1
    meaning = inspector.threshold_meaning("quantile", v.thresholds, "fixed", len(v.run_deltas))
    assert "Quantile mode" in meaning and f"τ1 = {v.thresholds[0]:.3f}" in meaning
    assert "staged in **fixed** mode" in meaning
    fixed = inspector.threshold_meaning("fixed", [0.2, 0.6], "fixed", 4)
    assert "stage 1 (conservative): Δu ≥ 0.600" in fixed and "Δu < 0.200" in fixed
    with pytest.raises(ConfigError, match="stages: 1 to 10"):
        inspector.settings(run.cfg, "softmax", 1.0, {}, ["sem"], "quantile", [], stages=11)


def test_the_summary_prints_the_normalised_weights_the_cards_use_and_the_rejected_rule(store):
    run = inspector.load_run(store, store.latest_run().id)
    cfg = inspector.settings(run.cfg, "fixed", 1.0, {"sem": 0.2, "fact": 0.2, "val": 0.4},
                             ["sem", "fact", "val"], "fixed", [0.2, 0.6])
    v = inspector.view(run, cfg, next(iter(run.prompts)))
    text = inspector.summary_markdown(v, cfg)
    assert "fixed weights sem 0.250, fact 0.250, val 0.500" in text
    assert all(c["weights"] == pytest.approx({"sem": 0.25, "fact": 0.25, "val": 0.5})
               for c in v.cards)
    assert "drawn at random" in text


# the page's script and tables -------------------------------------------------------------------
@pytest.mark.skipif(shutil.which("node") is None, reason="node not installed")
def test_the_page_script_parses():
    subprocess.run(["node", "--check", str(Path(render.__file__).with_name("keys.js"))],
                   check=True)


def test_html_tables_escape_every_cell_and_keep_long_text_whole_up_to_a_limit():
    import pandas as pd

    long = "y" * 6000
    html = render.html_table(pd.DataFrame({"who": ["<b>x</b>"], "n": [3], "u": [0.12345],
                                           "reply": [long]}), text_columns=("reply",))
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "<td class='num'>3</td>" in html
    assert "<td class='num'>0.123</td>" in html and "y" * 5000 in html and "y" * 5001 not in html
    assert "1,000 more characters" in html


def test_an_admin_view_stays_locked_for_an_annotator(store, tmp_path):
    from app.auth import User, hash_password
    from app.ui_admin import _load

    h = hash_password("pw", rounds=4)
    state = AppState(store.workspace, {"alice": User("alice", h, True), "bob": User("bob", h)})
    out = _load(state)(SimpleNamespace(username="bob"))
    assert "This view is for admins" in out[0] and not any(
        "bob" in str(o) for o in out[1:] if isinstance(o, str))
    out = _load(state)(SimpleNamespace(username="alice"))
    assert out[0] == "" and out[3]["choices"] == ["alice", "bob"]


def test_stored_text_in_the_progress_line_and_confirmation_is_escaped(store):
    hostile = "<img src=x onerror=alert(1)> ![p](http://203.0.113.7/p.png)"
    item = rating.Item("i", hostile, "reply", "m")
    row = rating.rating_row("bob", item, {"harmless": 1, "helpful": 2, "overall": 3})
    said = annotation.confirmation("bob", item, row, replaced=False)
    assert "<img" not in said and "&lt;img src=x onerror=alert(1)&gt;" in said
    pools.make_pool(store, request(name=f"<b>{hostile}</b>", annotators=("bob",),
                                   overlap=1, size=1), "alice")
    q = annotation.load_queue(store, "bob", annotation.tasks_for(store, "bob", False)[0])
    assert "<b>bob</b>" in q.progress("bob") and "&lt;b&gt;&lt;img" in q.progress("bob")
    assert "<img" not in q.progress("bob").replace("<b>bob</b>", "")
