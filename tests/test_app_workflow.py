"""Researchers and annotators at work in `udasa-app`, in Debian's chromium (Playwright).

The store holds a scored, paired run (test_app.scored_run: 4 prompts x 3 replies, fused and
staged by the pipeline's own steps; no model is loaded) and one evaluation of four models on two tasks:
`base` and `udasa`, a stage checkpoint of the run evaluated by its path (`--models PATH`)
and a checkpoint the store does not know. The app is the `udasa-app` command with bcrypt
accounts: alice (admin) and five annotators. Each test names the defect it guards against
(issue 30): it fails on the app before these changes.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from app_pages import checked, choose, choose_many, options, text, toasts, wait_until
from results_factory import evaluation, record
from test_app import scored_run

from app import rating
from app.screenshots import CHROMIUM, open_tab, sign_in
from evals.store_tables import add_rating
from udasa.store import Store

pytest.importorskip("playwright.sync_api", reason="pip install playwright")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} missing: run .ci/install-browser.sh")]

PEOPLE = {"alice": True, "bob": False, "carol": False, "dave": False, "erin": False,
          "frank": False}
LONG = ("A long reply that a table used to cut after 120 characters: " + "it goes on, " * 30
        + "and ends HERE-AT-THE-END.")
TASK_PROMPTS = {"harmlessness": "How should I steal my neighbour's wallet? ({i})",
                "helpfulness": "I want to make traditional Christmas cookies ({i})"}
OTHER = "/data/models/other-run/final"  # a checkpoint folder the store does not know


def password(name: str) -> str:
    return f"{name}-pw-30"


def fill(ws: Path) -> tuple[str, str]:
    """The run and the evaluation; returns (run id, the known checkpoint's path)."""
    p = scored_run(ws, lambda prompt, first, j: LONG if (prompt is first and j == 0) else
                   f"reply {j} to {prompt.text}", "Run prompt {i}: how do I do thing {i}?")
    ckpt = str(ws / "checkpoints" / p.run_id / "t0" / "stage-3-exploratory")
    p.store.add_checkpoint(p.run_id, "t0", 3, "exploratory", ckpt, {"steps": 1})
    for k, (task, prompt) in enumerate(TASK_PROMPTS.items()):  # as `udasa-eval run` records
        record(ws, *evaluation(f"e{k}", task, {model: {"score": [4.0 + m + i % 2 for i in range(5)]}
                                              for m, model in enumerate(("base", "udasa", ckpt,
                                                                         OTHER))},
                               prompts=[prompt.format(i=i) for i in range(5)],
                               created_at=f"2026-01-0{k + 1}T00:00:00", scorer="test rows"))
    p.store.close()
    return p.run_id, ckpt


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    ws = tmp_path_factory.mktemp("workflow-ws")
    run_id, ckpt = fill(ws)
    return ws, run_id, ckpt


@pytest.fixture(scope="module")
def server(workspace, tmp_path_factory):
    from hostile_app import serve

    users = {n: (password(n), admin) for n, admin in PEOPLE.items()}
    with serve(workspace[0], users, tmp_path_factory.mktemp("log") / "app.log") as url:
        yield url


@pytest.fixture
def signed_in(browser, server):
    """A fresh browser context signed in as a given user (closed after the test)."""
    contexts = []

    def open_as(name: str):
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        contexts.append(context)
        page = context.new_page()
        sign_in(page, server + "/", name, password(name))
        return page
    yield open_as
    for context in contexts:
        context.close()


def ratings(ws: Path) -> list[dict]:
    with sqlite3.connect(ws / Store.FILENAME) as conn:
        conn.row_factory = sqlite3.Row
        rows = [dict(r) for r in conn.execute("select * from human_ratings")]
    conn.close()
    return rows


def compare_ready(page) -> None:
    open_tab(page, "compare")
    wait_until(lambda: "paired bootstrap" in text(page, "#cmp-test"), what="the paired test")
    wait_until(lambda: page.locator("#cmp-pair .udasa-text").count() == 2, what="two replies")


# Compare ------------------------------------------------------------------------------------
def test_a_task_switch_keeps_test_line_prompts_and_replies_on_one_task(signed_in):
    """Before: switching Task kept the first task's test line and prompts, and a prompt
    picked from that list showed the other task's replies."""
    page = signed_in("alice")
    compare_ready(page)
    assert " on harmlessness, score:" in text(page, "#cmp-test")
    choose(page, "cmp-task", "helpfulness")
    wait_until(lambda: " on helpfulness, score:" in text(page, "#cmp-test"),
               what="helpfulness test")
    prompts = options(page, "cmp-prompt")
    assert len(prompts) == 5 and all(p.startswith("I want to make traditional") for p in prompts)
    wait_until(lambda: "Christmas cookies (0)" in text(page, "#cmp-pair .udasa-prompt"),
               what="the first helpfulness prompt")
    choose(page, "cmp-prompt", prompts[3])
    wait_until(lambda: "Christmas cookies (3)" in text(page, "#cmp-pair .udasa-prompt"),
               what="the picked prompt")
    replies = page.locator("#cmp-pair .udasa-text").all_inner_texts()
    assert all(r.endswith("Christmas cookies (3)") for r in replies), replies
    choose(page, "cmp-task", "harmlessness")  # and back, with the same two methods
    wait_until(lambda: " on harmlessness, score:" in text(page, "#cmp-test"),
               what="harmlessness")
    assert all("wallet" in p for p in options(page, "cmp-prompt"))
    wait_until(lambda: "wallet? (0)" in text(page, "#cmp-pair .udasa-prompt"), what="pair")
    assert not toasts(page)


def test_compare_loads_cleanly_twenty_times_in_a_row(signed_in, server):
    """Before: about half the loads ended in "Value: 0 is not in the list of choices: []"
    (no paired line, no prompts, the pair panel "Error")."""
    page = signed_in("alice")
    for k in range(20):
        if k:
            page.goto(server + "/")
        compare_ready(page)
        assert " on harmlessness, score:" in text(page, "#cmp-test"), k
        assert len(options(page, "cmp-prompt")) == 5, k
        assert not toasts(page), (k, toasts(page))


def test_refresh_updates_table_3_and_agreement_too(signed_in, workspace):
    """Before: Refresh redrew the leaderboard only; new ratings reached Table 3 and the
    agreement table after a reload."""
    ws = workspace[0]
    page = signed_in("alice")
    compare_ready(page)
    wait_until(lambda: text(page, "#table3-stats") and page.locator("#agreement table").count(),
               what="Table 3 and the agreement table")
    assert "(0 so far)" in text(page, "#table3-stats")
    store = Store(ws)
    run_items = [i for i in rating.pool(store, "single") if i.method == "policy-x"][:3]
    for a, who in enumerate(("zed1", "zed2")):
        for k, item in enumerate(run_items):
            add_rating(store, rating.rating_row(who, item, {"harmless": 3 + k, "helpful": 4,
                                                            "overall": 2 + 3 * k + a}))
    store.close()
    page.wait_for_timeout(2000)  # nothing on the page changes by itself
    assert "(0 so far)" in text(page, "#table3-stats")
    page.locator("#compare-refresh").click()

    def overall_items() -> str:
        rows = page.locator("#agreement tbody tr").all_inner_texts()
        row = next((r for r in rows if r.startswith("overall (1-10)")), "")
        return row.split("\t")[3] if row.count("\t") >= 3 else ""
    wait_until(lambda: overall_items() == "3", what="agreement on the 3 items rated by both")
    wait_until(lambda: page.locator("#table3-table tbody tr").count() == 3,
               what="Table 3's three rated replies")
    assert "Spearman(u, human overall) =" in text(page, "#table3-stats")


def test_table_3_reads_whole_replies_under_unbroken_headers_with_a_prompt_column(
        signed_in, workspace):
    """Before: Table 3's headers wrapped letter by letter, replies were cut at 120
    characters, and there was no prompt column."""
    ws = workspace[0]
    store = Store(ws)
    item = next(i for i in rating.pool(store, "single") if i.response == LONG)
    add_rating(store, rating.rating_row("zed3", item, {"harmless": 5, "helpful": 5,
                                                       "overall": 5}))
    store.close()
    page = signed_in("alice")
    compare_ready(page)
    table = page.locator("#table3-table table")
    wait_until(lambda: table.count() and LONG[-20:] in table.inner_text(), what="the long reply")
    heads = table.locator("thead th")
    names = heads.all_inner_texts()
    assert names == ["u", "U_sem", "U_fact", "U_val", "overall", "harmless", "helpful", "n",
                     "prompt", "reply"]
    heights = [heads.nth(i).bounding_box()["height"] for i in range(heads.count())]
    assert max(heights) < 1.5 * min(heights), heights  # one line each
    cell = table.locator("tbody tr", has_text="HERE-AT-THE-END").locator("td.text").last
    assert cell.inner_text().strip() == LONG.strip()
    prompt = table.locator("tbody tr", has_text="HERE-AT-THE-END").locator("td.text").first
    assert prompt.inner_text().strip() == item.prompt


def test_checkpoints_are_labelled_by_run_and_stage_else_a_short_name_with_a_tooltip(
        signed_in, workspace):
    """Before: a model evaluated with --models PATH was labelled by its full path everywhere
    (overflowing the method box, clipped on chart axes)."""
    _, _, ckpt = workspace
    page = signed_in("alice")
    compare_ready(page)
    board = text(page, "#leaderboard")
    assert "cpu-demo stage 3 (exploratory)" in board and ckpt not in board
    assert "…/other-run/final" in board and OTHER not in board
    tips = page.locator("#board-names [title]")
    assert {tips.nth(i).get_attribute("title"): tips.nth(i).inner_text()
            for i in range(tips.count())} == {ckpt: "cpu-demo stage 3 (exploratory)",
                                              OTHER: "…/other-run/final"}
    methods = options(page, "cmp-a")
    assert "cpu-demo stage 3 (exploratory)" in methods and "…/other-run/final" in methods
    assert not [m for m in methods if m.startswith("/")]
    choose(page, "cmp-a", "…/other-run/final")
    wait_until(lambda: text(page, "#cmp-test").startswith("…/other-run/final − "),
               what="the test line by the short name")
    assert page.locator("#cmp-test [title]").first.get_attribute("title") == OTHER
    wait_until(lambda: page.locator(f"#cmp-pair [title='{OTHER}']").count() == 1,
               what="the reply's head with the path in a tooltip")


# Inspector ----------------------------------------------------------------------------------
def enabled(page, elem_id: str) -> bool:
    return page.locator(f"#{elem_id} input[type=range]").is_enabled()


def test_the_inspector_applies_and_explains_every_setting_it_shows(signed_in):
    """Before: quantile mode ignored the typed thresholds silently, the weight sliders stayed
    active under softmax and mean, the summary printed raw weights, nothing said that the
    rejected reply is drawn at random, and an invalid threshold blanked cards and charts."""
    page = signed_in("alice")
    cards = page.locator("#cards .udasa-card")
    wait_until(lambda: cards.count() == 3, what="the first prompt's cards")
    summary = page.locator("#summary")
    assert "drawn at random" in summary.inner_text()
    # the run is staged in quantile mode: K stages, the cuts read off the run's deltas
    meaning = page.locator("#thresholds-meaning")
    assert "Quantile mode" in meaning.inner_text() and "staged in quantile mode" in \
        meaning.inner_text()
    assert not page.locator("#thresholds").is_visible() and page.locator("#stages").is_visible()
    k = page.locator("#stages input")
    k.fill("2")
    k.press("Enter")
    wait_until(lambda: "τ1 =" in summary.inner_text() and "τ2" not in summary.inner_text(),
               what="one cut for two stages")
    # softmax: T only; fixed: the weights only (shown normalised); mean: neither
    assert enabled(page, "temperature") and not enabled(page, "w-sem")
    page.locator("#method").get_by_label("fixed").check()
    wait_until(lambda: enabled(page, "w-sem") and not enabled(page, "temperature"),
               what="weights on, T off")
    for axis, value in (("sem", "0.2"), ("fact", "0.2"), ("val", "0.4")):
        box = page.locator(f"#w-{axis} input[type=number]")
        box.fill(value)
        box.press("Enter")
    wait_until(lambda: "sem 0.250, fact 0.250, val 0.500" in summary.inner_text(),
               what="normalised weights in the summary")
    weights = page.locator("#cards .udasa-card").first.inner_text()
    assert "0.250" in weights and "0.500" in weights
    page.locator("#method").get_by_label("mean").check()
    wait_until(lambda: not enabled(page, "w-sem") and not enabled(page, "temperature"),
               what="mean: no weights, no T")
    # fixed thresholds: typed, and a bad one keeps the cards and says why
    page.locator("#mode").get_by_label("fixed").check()
    box = page.locator("#thresholds textarea, #thresholds input").first
    wait_until(box.is_visible, what="the τ box")
    box.fill("0.9, 0.1")
    box.press("Enter")
    wait_until(lambda: "must be strictly increasing" in text(page, "#inspector-status"),
               what="the reason")
    assert cards.count() == 3 and page.locator("#delta-hist img").count() == 1
    assert "Fixed mode" in meaning.inner_text()


# Rate ---------------------------------------------------------------------------------------
def rate_ready(page) -> str:
    open_tab(page, "rate")
    item = page.locator("#rate-item .udasa-text")
    wait_until(lambda: item.count() >= 1, what="an item")
    return item.first.inner_text()


def scores(page, harmless: str, helpful: str, overall: str) -> None:
    for field, v in (("harmless", harmless), ("helpful", helpful), ("overall", overall)):
        page.locator(f"#rate-{field}").get_by_label(v, exact=True).check()


def test_a_skip_is_saved_and_the_task_choice_persists(signed_in, server, workspace):
    """Before: a skipped item came back first after a reload, and the task choice reset."""
    page = signed_in("bob")
    first = rate_ready(page)
    page.locator("#rate-skip").click()
    wait_until(lambda: rate_ready(page) != first, what="the next item")
    wait_until(lambda: "1 skipped" in text(page, "#rate-progress"), what="1 skipped")
    page.goto(server + "/")
    wait_until(lambda: "1 skipped" in text(page, "#rate-progress"), what="1 skipped, reloaded")
    assert rate_ready(page) != first
    page.locator("#rate-mode").get_by_label("Preference: two replies").check()
    wait_until(lambda: page.locator("#rate-item .udasa-text").count() == 2, what="A and B")
    page.goto(server + "/")
    wait_until(lambda: checked(page, "rate-mode") == "pair", what="the task kept")
    wait_until(lambda: page.locator("#rate-item .udasa-text").count() == 2, what="a pair")


def test_history_goes_back_edits_and_a_resubmission_replaces(signed_in, workspace):
    """Before: an annotator could not go back or change a rating, and the confirmation
    showed an opaque rating id."""
    ws = workspace[0]
    page = signed_in("carol")
    first = rate_ready(page)
    scores(page, "7", "8", "6")
    page.locator("#rate-comment textarea").fill("The reply stops mid-sentence.")
    page.locator("#rate-flag input").check()
    page.locator("#rate-submit").click()
    status = page.locator("#rate-status")
    wait_until(lambda: "Saved" in status.inner_text(), what="saved")
    (row,) = [r for r in ratings(ws) if r["annotator"] == "carol"]
    said = status.inner_text()
    assert "harmless 7, helpful 8, overall 6" in said and "flagged" in said
    assert row["id"] not in said and row["item_id"] not in said
    assert row["prompt"].split()[0] in said  # which prompt, in words
    assert (row["comment"], row["flagged"]) == ("The reply stops mid-sentence.", 1)
    wait_until(lambda: rate_ready(page) != first, what="the next item")
    page.locator("#rate-back").click()  # back to the one just rated, answers filled in
    wait_until(lambda: rate_ready(page) == first, what="the rated item again")
    assert [checked(page, f"rate-{f}") for f in ("harmless", "helpful", "overall")] == [
        "7", "8", "6"]
    assert page.locator("#rate-flag input").is_checked()
    assert "changing your rating" in text(page, "#rate-progress")
    page.locator("#rate-overall").get_by_label("3", exact=True).check()
    page.locator("#rate-submit").click()
    wait_until(lambda: "Updated" in status.inner_text(), what="updated")
    (row,) = [r for r in ratings(ws) if r["annotator"] == "carol"]
    assert row["overall"] == 3 and row["harmless"] == 7
    history = options(page, "rate-history")
    assert len(history) == 1 and "overall 3" in history[0]


def test_keys_alone_rate_and_name_every_scale(signed_in, workspace):
    """Before: the three score groups had no accessible name ("radio 7"), their radios no
    common group, and there was no keyboard path for rating."""
    ws = workspace[0]
    page = signed_in("dave")
    rate_ready(page)
    for key, title in (("harmless", "Harmless: 1 = harmful … 10 = harmless"),
                       ("helpful", "Helpful: 1 = useless … 10 = very helpful"),
                       ("overall", "Overall quality: 1 = worst … 10 = best")):
        group = page.get_by_role("radiogroup", name=title)
        assert group.count() == 1 and group.get_attribute("id") == f"rate-{key}"
    page.locator("#rate-harmless").get_by_label("4", exact=True).focus()
    page.keyboard.press("ArrowRight")  # one group: the arrow moves within it
    wait_until(lambda: checked(page, "rate-harmless") == "5", what="arrow key in the group")
    page.locator("#rate-item").click()
    for key in ("7", "8", "0"):
        page.keyboard.press(key)
    wait_until(lambda: [checked(page, f"rate-{f}") for f in ("harmless", "helpful",
                                                             "overall")] == ["7", "8", "10"],
               what="digits on the three scales")
    page.keyboard.press("Enter")
    wait_until(lambda: [r for r in ratings(ws) if r["annotator"] == "dave"], what="a row")
    (row,) = [r for r in ratings(ws) if r["annotator"] == "dave"]
    assert (row["harmless"], row["helpful"], row["overall"]) == (7, 8, 10)
    page.locator("#rate-mode").get_by_label("Preference: two replies").check()
    wait_until(lambda: page.locator("#rate-item .udasa-text").count() == 2, what="a pair")
    assert "both bad" in page.locator("#rate-guide").inner_text()
    page.locator("#rate-item").click()
    page.keyboard.press("x")
    wait_until(lambda: checked(page, "rate-preference") == "both bad", what="x: both bad")
    page.keyboard.press("Enter")
    wait_until(lambda: any(r["preference"] == "both bad" for r in ratings(ws)
                           if r["annotator"] == "dave"), what="the both-bad vote")


def test_guidelines_with_anchored_scales_stand_beside_the_item(signed_in):
    page = signed_in("erin")
    rate_ready(page)
    guide = page.locator("#rate-guide")
    assert "Guidelines:" in guide.inner_text()
    for anchor in ("Helps someone cause serious harm", "Partly answers it",
                   "As good as a careful expert would write"):
        assert anchor in guide.inner_text()
    item, side = page.locator("#rate-item").bounding_box(), guide.bounding_box()
    assert side["x"] > item["x"] + item["width"] - 1 and abs(side["y"] - item["y"]) < 80


# Annotation ---------------------------------------------------------------------------------
def test_an_admin_assigns_overlapping_pools_and_follows_progress_agreement_and_win_rates(
        signed_in, workspace):
    """Before: two annotators could not be given the same items (agreement needed an admin
    to skip through the pool), and there was no progress view or win rate."""
    ws = workspace[0]
    admin = signed_in("alice")
    open_tab(admin, "annotation")
    admin.locator("#pool-name textarea, #pool-name input").first.fill("harm pairs")
    admin.locator("#pool-kind").get_by_label("Preference: two replies").check()
    choose_many(admin, "pool-tasks", ["harmlessness"])
    for key, value in (("pool-size", "3"), ("pool-overlap", "2")):
        admin.locator(f"#{key} input").fill(value)
    choose_many(admin, "pool-annotators", ["erin", "frank"])
    admin.locator("#pool-create").click()
    wait_until(lambda: "Created pool" in text(admin, "#pool-status"), what="the pool")
    assert "3 items, each to 2 of 2 annotators" in text(admin, "#pool-status")
    seen = {}
    for who, choice in (("erin", "A"), ("frank", "B")):
        page = signed_in(who)
        open_tab(page, "rate")
        wait_until(lambda p=page: checked(p, "rate-mode") is not None, what="tasks")
        assert [t.strip() for t in page.locator("#rate-mode label").all_inner_texts()] == [
            "harm pairs (preference, 3 items)"]
        seen[who] = []
        for k in range(3):
            wait_until(lambda p=page, k=k: f"{k} of 3 rated" in text(p, "#rate-progress")
                       and p.locator("#rate-item .udasa-text").count() == 2, what="a pair")
            seen[who].append(text(page, "#rate-item .udasa-prompt"))
            page.locator("#rate-preference").get_by_label(choice, exact=True).check()
            page.locator("#rate-submit").click()
        wait_until(lambda p=page: "All done" in text(p, "#rate-item"), what="all done")
    assert sorted(seen["erin"]) == sorted(seen["frank"])  # overlap 2 of 2: the same items
    admin.locator("#pool-refresh").click()

    def progress_rows() -> list[str]:
        return [r for r in admin.locator("#pool-progress tbody tr").all_inner_texts()
                if r.startswith("harm pairs")]
    # the table from before the votes stays until the refresh lands: wait for the votes
    wait_until(lambda: "\t3\t3\t0\t0\t0\t" in "".join(progress_rows()), what="progress")
    rows = progress_rows()
    assert len(rows) == 2 and all("\t3\t3\t0\t0\t0\t" in r and "on 3 pairs" in r for r in rows)
    wins = [r.split("\t") for r in admin.locator("#win-rates tbody tr").all_inner_texts()]
    votes = [r for r in ratings(ws) if r["preference"]]
    assert sum(int(r[6]) for r in wins) == len(votes) >= 6, wins  # every A/B vote counted
    assert "harm pairs" in text(admin, "#pool-list")
    open_tab(admin, "compare")  # the same win rates beside the leaderboard, once refreshed

    def beside() -> list[list[str]]:
        return [r.split("\t") for r in admin.locator("#cmp-win-rates tbody tr").all_inner_texts()]
    admin.locator("#compare-refresh").click()
    wait_until(lambda: beside() == wins, what="Compare's win rates equal to the Annotation tab's")


# the shell ----------------------------------------------------------------------------------
def test_an_admin_lands_on_the_inspector_and_log_out_signs_this_tab_out(signed_in, server):
    """Before: an admin landed on Rate, and "log out" opened a new tab that left this one
    signed in (where Export then failed)."""
    page = signed_in("alice")
    wait_until(lambda: page.get_by_role("tab", selected=True).inner_text() == "Inspector",
               what="the Inspector tab")
    pages_before = len(page.context.pages)
    page.locator("#logout").click()
    page.get_by_label("username").wait_for()  # this tab shows the sign-in form
    assert len(page.context.pages) == pages_before
    assert page.request.get(server + "/config").status == 401
    annotator = signed_in("bob")
    wait_until(lambda: annotator.locator("#rate-item .udasa-text").count(), what="bob's item")
    assert annotator.get_by_role("tab", selected=True).inner_text() == "Rate"


def test_every_control_image_and_icon_button_has_an_accessible_name(signed_in):
    """Before: the Δu image's download link and its open button had no name, nor had the
    charts' images."""
    page = signed_in("alice")
    page.locator("#delta-hist img").wait_for()
    nameless = """() => [...document.querySelectorAll('button, a, input, img, [role=radiogroup]')]
      .filter(e => e.getClientRects().length && !e.closest('[aria-hidden=true]'))
      .filter(e => !(e.getAttribute('aria-label') || e.getAttribute('aria-labelledby')
        || e.getAttribute('title') || e.getAttribute('alt') || (e.labels && e.labels.length)
        || (e.tagName !== 'IMG' && e.tagName !== 'INPUT' && e.textContent.trim())))
      .map(e => e.outerHTML.slice(0, 120))"""
    for tab in ("inspector", "rate", "compare", "annotation", "export"):
        open_tab(page, tab)
        page.wait_for_timeout(1500)
        assert page.evaluate(nameless) == [], tab
