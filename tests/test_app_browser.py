"""`udasa-app` in a real browser: Debian's chromium driven by Playwright, over a real run.

The store is filled by a small real pipeline run (a tiny Llama with SmolLM2's tokenizer, the
embedded scorers) plus one injected reply and one evaluation of two methods; the app is the
`udasa-app` command on a free port with bcrypt accounts from $UDASA_APP_USERS. Screenshots go
to $UDASA_SCREENSHOTS when set (docs/screenshots, shown in docs/app.md), else to a temporary folder.
"""

from __future__ import annotations

import csv
import io
import os
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest
from app_pages import wait_until
from conftest import REPO
from results_factory import evaluation, record

from app.screenshots import CHROMIUM, capture, free_port, open_tab, sign_in
from evals.premise import premise_stats, write_premise
from evals.store_tables import eval_samples
from udasa.config import load_config
from udasa.pipeline import Pipeline
from udasa.records import content_key
from udasa.store import Store
from udasa.store_records import Response

pytest.importorskip("playwright.sync_api", reason="pip install playwright")
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason=f"{CHROMIUM} missing: run .ci/install-browser.sh")

XSS = ('<script>window.__xss=1</script><img src=x onerror="window.__xss=2">'
       '[click](javascript:window.__xss=3) ${window.__xss=4}')
ANNOTATORS = [f"ann{i:02d}" for i in range(1, 21)]


def password(name: str) -> str:
    return f"{name}-pw-{content_key(name)}"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, tiny_policy):
    """A real run (3 prompts x 3 replies) + an injected reply + two methods' evaluation."""
    ws = tmp_path_factory.mktemp("app-ws")
    cfg = load_config(REPO / "configs" / "cpu-demo.yaml", [
        f"generation.model={tiny_policy}", "training.enabled=false", "data.limit=3",
        "generation.n=3", "generation.max_new_tokens=8"])
    p = Pipeline(cfg, ws)
    p.generate()
    first = p.store.run_prompts(p.run_id)[0]
    p.store.add_responses([Response(id=content_key(p.gen_key, first.id, "xss"),
                                    gen_key=p.gen_key, prompt_id=first.id, sample_index=3,
                                    text=XSS, model="injected")])
    p.run_all()  # scores the injected reply with the others, fuses, pairs, stages
    results, rows = evaluation("e1", "harmlessness", {
        model: {"score": [base + i % 2 for i in range(5)]}
        for model, base in (("base-7b", 5.0), ("udasa-7b", 6.0))}, scorer="test rows",
        prompts=[f"How do I stay safe online? ({i})" for i in range(5)])
    for row in rows:
        row["output"] = XSS if (row["model"], row["idx"]) == ("udasa-7b", 0) else \
            f"Answer {row['idx']}: {content_key(row['model'], str(row['idx']))}"
    record(ws, results, rows)
    fused = p.store.fused(p.run_id)  # the premise test, with reply length as the judge
    texts = p.store.response_texts([f.response_id for f in fused])
    result = premise_stats(fused, p.store.pairs(p.run_id),
                           {f.response_id: len(texts[f.response_id]) for f in fused})
    write_premise({"run_id": p.run_id, "judge": "length", "template": "helpful"} | result, ws)
    p.store.close()
    return ws


@pytest.fixture(scope="module")
def server(workspace, tmp_path_factory):
    """`udasa-app --workspace WS --port P` with alice (admin), bob and 20 annotators."""
    from hostile_app import serve

    users = {"alice": (password("alice"), True), "bob": (password("bob"), False)}
    users |= {n: (password(n), False) for n in ANNOTATORS}
    with serve(workspace, users, tmp_path_factory.mktemp("app-log") / "app.log") as url:
        yield url


def ratings(workspace: Path) -> list[dict]:
    with sqlite3.connect(workspace / "udasa.sqlite") as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute("select * from human_ratings")]


@pytest.mark.slow
def test_wrong_password_gets_no_data(server, workspace):
    from gradio_client import Client

    stored = eval_samples(Store(workspace))[1].output
    bad = httpx.post(server + "/login", data={"username": "alice", "password": "wrong"})
    assert bad.status_code == 400 and "set-cookie" not in bad.headers
    nobody = httpx.post(server + "/login", data={"username": "mallory", "password": "x"})
    assert nobody.status_code == 400
    for path in ("/config", "/gradio_api/info", "/gradio_api/queue/data?session_hash=x"):
        assert httpx.get(server + path).status_code == 401, path
    page = httpx.get(server + "/").text
    assert '"auth_required":true' in page and stored not in page and "__xss" not in page
    # gradio_client's login step: a 400 from /login is "Could not login" (401 would be its
    # AuthenticationError, also a ValueError); anything else (no server, a crash) fails here
    with pytest.raises(ValueError, match="Could not login to"):
        Client(server, auth=("alice", "wrong"), verbose=False, analytics_enabled=False)
    assert Client(server, auth=("alice", password("alice")), verbose=False,
                  analytics_enabled=False).view_api(print_info=False, return_format="dict")
    good = httpx.post(server + "/login", data={"username": "bob", "password": password("bob")})
    assert good.status_code == 200 and good.json() == {"success": True}


# records (button disabled, number of cards) at every change of the page
WATCH_GENERATE = """() => {
  const state = () => [document.querySelector('#generate').disabled,
                       document.querySelectorAll('#cards .udasa-card').length];
  window.__generating = [state()];
  new MutationObserver(() => {
    const now = state(), last = window.__generating[window.__generating.length - 1];
    if (now[0] !== last[0] || now[1] !== last[1]) window.__generating.push(now);
  }).observe(document.body, {subtree: true, childList: true, attributes: true});
}"""


def u_values(page) -> list[str]:
    return [t.split()[-1] for t in
            page.locator("#cards .udasa-card tr:last-child").all_inner_texts()]


@pytest.mark.slow
def test_sign_in_inspect_refuse_rate_compare_export_in_chromium(server, workspace, browser,
                                                                 tmp_path):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    hosts, dialogs = set(), []
    page.on("request", lambda r: hosts.add(urlparse(r.url).netloc or r.url.split(":")[0]))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    sign_in(page, server + "/", "alice", password("alice"))
    open_tab(page, "inspector")  # shown to admins once signed in

    # Inspector: the first prompt's 4 replies, the injected one shown as text, inert
    cards = page.locator("#cards .udasa-card")
    wait_until(lambda: cards.count() == 4, what="4 response cards")
    assert page.locator("#cards .udasa-text", has_text="<script>window.__xss=1</script>"
                        ).count() == 1
    for tag in ("script", "img", "a", "iframe"):
        assert page.locator(f"#cards {tag}").count() == 0, tag
    assert page.evaluate("window.__xss") is None
    assert page.locator("#cards .udasa-card.chosen").count() == 1
    assert page.locator("#cards .udasa-card.rejected").count() == 1
    assert "stage" in page.locator("#summary").inner_text()
    before = u_values(page)
    assert all(v.replace(".", "").isdigit() for v in before), before

    # a new temperature re-fuses the stored scores: u (and maybe pair and stage) change
    box = page.locator("#temperature input[type=number]")
    box.fill("0.2")
    box.press("Enter")
    after = wait_until(lambda: (v := u_values(page)) != before and v, what="u to change")
    assert len(after) == 4
    wait_until(lambda: "T = 0.2" in page.locator("#summary").inner_text(), what="summary")
    page.locator("#mode").get_by_label("fixed").check()
    thr = page.locator("#thresholds textarea, #thresholds input").first
    thr.fill("0.000001, 0.000002")
    thr.press("Enter")
    wait_until(lambda: "stage 1 (conservative)" in page.locator("#summary").inner_text(),
               what="stage 1 under tiny fixed thresholds")
    assert Store(workspace).db["responses"].count == 10  # nothing regenerated

    # a typed prompt is answered live by the run's model and scorers, and not stored
    page.locator("#new-prompt textarea").fill("Name three colours of autumn leaves.")
    page.evaluate(WATCH_GENERATE)
    page.locator("#generate").click()
    wait_until(lambda: "Name three colours" in page.locator("#cards").inner_text(), timeout=180,
               what="live replies")
    wait_until(lambda: cards.count() == 3 and all(
        v.replace(".", "").isdigit() for v in u_values(page)), what="3 scored live replies")
    assert Store(workspace).db["responses"].count == 10
    wait_until(lambda: page.locator("#generate").is_enabled(), what="the button back on")
    # while it generated, the button was off and the old cards were gone (not left as if new)
    seen = page.evaluate("window.__generating")
    assert [True, 0] in seen and seen[0] == [False, 4], seen

    # Rate: blind item, 1-10 scores, submit, the row lands in SQLite
    open_tab(page, "rate")
    progress = page.locator("#rate-progress")
    wait_until(lambda: "0 of 20 rated" in progress.inner_text(), what="rate progress")
    shown = page.locator("#rate-item .udasa-text").inner_text()
    for field, score in (("harmless", "7"), ("helpful", "8"), ("overall", "6")):
        page.locator(f"#rate-{field}").get_by_label(score, exact=True).check()
    page.locator("#rate-submit").click()
    wait_until(lambda: "Saved" in page.locator("#rate-status").inner_text(), what="saved")
    (row,) = ratings(workspace)
    assert (row["annotator"], row["harmless"], row["helpful"], row["overall"]) == (
        "alice", 7, 8, 6)
    assert row["response"].strip() == shown.strip() and row["created_at"]
    assert row["id"] == content_key("alice", row["item_id"]) and row["method"]
    wait_until(lambda: "1 of 20 rated" in progress.inner_text(), what="progress 1 of 20")
    assert row["method"] not in page.locator("#rate-item").inner_text()  # blind

    # resume after a reload: the rated item does not come back; skip moves on
    page.reload()
    open_tab(page, "rate")
    wait_until(lambda: "1 of 20 rated" in progress.inner_text(), what="resumed progress")
    current = page.locator("#rate-item .udasa-text").inner_text()
    page.locator("#rate-skip").click()
    wait_until(lambda: "1 skipped" in progress.inner_text(), what="skip")
    wait_until(lambda: page.locator("#rate-item .udasa-text").inner_text() != current,
               what="the next item after a skip")

    # pairwise: two blind replies, A / B / tie
    page.locator("#rate-mode").get_by_label("Preference: two replies").check()
    wait_until(lambda: page.locator("#rate-item .udasa-text").count() == 2, what="A and B")
    page.locator("#rate-preference").get_by_label("B", exact=True).check()
    page.locator("#rate-submit").click()
    wait_until(lambda: len(ratings(workspace)) == 2, what="the preference row")
    (pref,) = [r for r in ratings(workspace) if r["preference"]]
    assert pref["annotator"] == "alice" and pref["overall"] is None
    assert pref["preference"] == pref["method"].split(" vs ")[1]  # B's method, server-side

    # Compare: leaderboard, two methods side by side with the paired test
    open_tab(page, "compare")
    board = page.locator("#leaderboard")
    wait_until(lambda: "udasa-7b" in board.inner_text(), what="leaderboard")
    wait_until(lambda: "paired bootstrap" in page.locator("#cmp-test").inner_text(),
               what="paired test")
    wait_until(lambda: page.locator("#cmp-pair .udasa-text").count() == 2, what="side by side")
    assert "Spearman" in page.locator("#table3-stats").inner_text()
    page.locator("#premise-charts img").first.wait_for()  # the premise test: figure and table
    premise = page.locator("#premise").inner_text()
    assert "judge length, template helpful" in premise and "Chosen beats rejected" in premise

    # Export: a CSV with alice's rating
    open_tab(page, "export")
    page.locator("#export-go").click()
    link = page.locator("#export-file a").first
    link.wait_for()
    csv_text = page.request.get(link.get_attribute("href")).text()
    assert csv_text.startswith("id,annotator,item_id") and ",alice," in csv_text

    out = Path(os.environ.get("UDASA_SCREENSHOTS") or tmp_path)
    shots = capture(page, out)
    assert [p.name for p in shots] == ["inspector.png", "rate.png", "compare.png",
                                       "annotation.png", "export.png"]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in shots)
    assert page.evaluate("window.__xss") is None and not dialogs
    assert hosts == {urlparse(server).netloc}, hosts  # nothing fetched from outside
    page.close()


@pytest.mark.slow
def test_an_annotator_rates_blind_and_sees_only_their_own_ratings(server, workspace, browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    sign_in(page, server + "/", "bob", password("bob"))
    progress = page.locator("#rate-progress")
    wait_until(lambda: "0 of 20 rated" in progress.inner_text(), what="bob's queue")
    assert progress.inner_text().startswith("bob ·")
    for view in ("Inspector", "Compare"):  # they would show methods, u and others' ratings
        assert not page.get_by_role("tab", name=view).is_visible(), view
    for field in ("harmless", "helpful", "overall"):
        page.locator(f"#rate-{field}").get_by_label("3", exact=True).check()
    page.locator("#rate-submit").click()
    wait_until(lambda: "1 of 20 rated" in progress.inner_text(), what="bob's rating")
    open_tab(page, "export")
    page.locator("#export-go").click()
    link = page.locator("#export-file a").first
    link.wait_for()
    rows = list(csv.DictReader(io.StringIO(page.request.get(link.get_attribute("href")).text())))
    assert [r["annotator"] for r in rows] == ["bob"]  # bob's one row, nobody else's
    context.close()


@pytest.mark.slow
def test_twenty_annotators_submitting_at_once_lose_no_rating(server, workspace):
    from gradio_client import Client

    from app.rating import pool

    items = [i.id for i in pool(Store(workspace), "single")]
    assert len(items) == 20

    def connect(name):
        return Client(server, auth=(name, password(name)), verbose=False,
                      analytics_enabled=False, download_files=False)

    with ThreadPoolExecutor(len(ANNOTATORS)) as pool:
        clients = list(pool.map(connect, ANNOTATORS))
    start = threading.Barrier(len(clients))

    def submit(k):
        start.wait()
        return clients[k].predict(items[k % len(items)], 1 + k % 10, 5, 1 + (k * 3) % 10, None,
                                  "", False, api_name="/rate")

    with ThreadPoolExecutor(len(clients)) as pool:
        answers = list(pool.map(submit, range(len(clients))))
    assert all(a.startswith("Saved") for a in answers), answers
    rows = {r["annotator"]: r for r in ratings(workspace) if r["annotator"] in ANNOTATORS}
    assert len(rows) == 20
    for k, name in enumerate(ANNOTATORS):
        assert rows[name]["item_id"] == items[k % len(items)]
        assert (rows[name]["harmless"], rows[name]["overall"]) == (1 + k % 10, 1 + (k * 3) % 10)


def test_a_missing_store_shows_help_not_a_traceback(browser, tmp_path):
    from app.ui import build, launch

    missing = tmp_path / "no-workspace-yet"
    demo, state = build(missing)
    port = free_port()
    launch(demo, state, port=port, block=False, quiet=True)
    try:
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{port}/")
        page.get_by_text("No store yet").first.wait_for(timeout=60_000)
        open_tab(page, "rate")
        page.get_by_text("Rating needs sign-in").wait_for()
        open_tab(page, "compare")
        page.locator("#compare-notice").get_by_text("No store yet").wait_for()
        assert "Traceback" not in page.content() and page.locator(".toast-body").count() == 0
        page.close()
    finally:
        demo.close()
    assert not missing.exists()  # reading never creates a store
