"""Hostile text on every view, in Debian's chromium, and every handler called as an annotator.

The workspace (tests/hostile_app.py) plants script tags, event handlers, `javascript:` links,
markdown images of an outside host, HTML entities, RTL overrides and a 1 MB reply in prompts,
replies, model and run names, annotator names and a premise test's judge and template.
Chromium, driven by Playwright, signs in as an admin and as an annotator and visits Inspector,
Rate, Compare (leaderboard, charts, side by side, premise, Table 3, agreement) and Export:
nothing planted may run (window.__pwned, a dialog, a PWNED console line), no request may leave
127.0.0.1, no planted attribute may survive, and no text on screen may carry a bidirectional
control. Then every function of the app's /config is called through the raw queue API with an
annotator's session: every admin view refuses and no answer names a method, a run or another
annotator.
"""

from __future__ import annotations

import json
import secrets
from urllib.parse import urlparse

import httpx
import pytest
from app_pages import options as open_options
from app_pages import wait_until
from hostile_app import (
    ANNOTATORS,
    METHOD,
    METHODS,
    OTHER,
    OUTSIDE,
    PROMPT,
    REPLY,
    RUN_NAME,
    fill,
    reply_text,
    serve,
)

from app import rating
from app.render import plain
from app.screenshots import open_tab, sign_in
from udasa.store import Store

pytest.importorskip("playwright.sync_api", reason="pip install playwright")
USERS = {"alice": ("alice-pw-1", True), "bob": ("bob-pw-2", False)}
ADMIN_TABS = ("inspector", "compare")
# what a page may hold: no handler attribute, no script URL, nothing from the outside host
SCAN_JS = r"""() => {
  const bad = [], urls = /^(href|src|srcdoc|action|formaction|xlink:href|data|style|poster)$/;
  const walk = (root) => {
    for (const el of root.querySelectorAll('*')) {
      for (const a of el.attributes) {
        const n = a.name.toLowerCase();
        if (n.startsWith('on')) bad.push(`${el.tagName} ${n}`);
        if (urls.test(n) && /javascript:|203\.0\.113\.7|__pwned/i.test(a.value))
          bad.push(`${el.tagName} ${n}=${a.value.slice(0, 80)}`);
      }
      if (['IFRAME', 'OBJECT', 'EMBED', 'META'].includes(el.tagName) && el.closest('body'))
        bad.push(el.tagName);
      if (el.tagName === 'SCRIPT' && /pwned/i.test(el.textContent)) bad.push('SCRIPT');
      if ((el.tagName === 'INPUT' || el.tagName === 'TEXTAREA') && /[\u202a-\u202e\u2066-\u2069]/.test(el.value))
        bad.push(`${el.tagName} value with a bidi control`);
      if (el.shadowRoot) walk(el.shadowRoot);
    }
    const texts = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    while (texts.nextNode())
      if (/[\u202a-\u202e\u2066-\u2069]/.test(texts.currentNode.data))
        bad.push('text with a bidi control: ' + texts.currentNode.data.slice(0, 60));
  };
  walk(document);
  return bad;
}"""


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    ws = tmp_path_factory.mktemp("hostile-ws")
    fill(ws).store.close()
    return ws


@pytest.fixture(scope="module")
def server(workspace, tmp_path_factory):
    with serve(workspace, USERS, tmp_path_factory.mktemp("log") / "app.log") as url:
        yield url


class Watch:
    """A page with everything recorded that would show a planted payload at work."""

    def __init__(self, browser, server: str):
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.page = self.context.new_page()
        self.server = urlparse(server).netloc
        self.requests: list[str] = []
        self.dialogs: list[str] = []
        self.console: list[str] = []
        self.context.on("request", lambda r: self.requests.append(r.url))
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.on("console", lambda m: self.console.append(m.text))

    def check(self, where: str) -> None:
        page = self.page
        assert all(f.evaluate("typeof window.__pwned") == "undefined" for f in page.frames), where
        assert len(page.frames) == 1, (where, [f.url for f in page.frames])
        assert not self.dialogs, (where, self.dialogs)
        assert not [c for c in self.console if "PWNED" in c], where
        outside = [u for u in self.requests if urlparse(u).scheme in ("http", "https", "ws", "wss")
                   and urlparse(u).netloc != self.server]
        assert not outside and not [u for u in self.requests if OUTSIDE in u], (where, outside)
        assert page.evaluate(SCAN_JS) == [], where


def pick_next(page, elem_id: str) -> None:
    """Click the option after the selected one (ArrowDown + Enter picked the same option again
    in about half the runs, and the test then timed out waiting for the next prompt)."""
    page.locator(f"#{elem_id} input").click()
    options = page.locator(f"#{elem_id} [role=option]")
    options.first.wait_for()
    selected = [options.nth(i).get_attribute("aria-selected") == "true"
                for i in range(options.count())]
    options.nth(selected.index(True) + 1 if True in selected else 0).click()
    page.locator(f"#{elem_id} input").blur()


def texts(page, selector: str) -> list[str]:
    return page.locator(selector).all_inner_texts()


def shown(stored: str) -> str:
    """What a stored text looks like on screen (bidi controls made visible)."""
    return plain(stored).strip()


def test_the_page_scan_finds_what_it_looks_for(browser):
    """The scan run on every view, on a page that has each thing it must report."""
    page = browser.new_page()
    page.set_content("<p>fine \u202eevil</p><img src='x' onerror='1'>"
                     "<a href='javascript:void(0)'>a</a><iframe></iframe><input value='b'>"
                     f"<div style='background:url(http://{OUTSIDE}/)'>d</div>")
    page.locator("input").evaluate("e => e.value = 'x\u202ey'")
    found = page.evaluate(SCAN_JS)
    assert found == ["IMG onerror", "A href=javascript:void(0)", "IFRAME",
                     "INPUT value with a bidi control",
                     f"DIV style=background:url(http://{OUTSIDE}/)",
                     "text with a bidi control: fine \u202eevil"], found
    page.close()


@pytest.mark.slow
def test_hostile_text_stays_inert_on_every_view_for_an_admin(server, workspace, browser):
    w = Watch(browser, server)
    page = w.page
    sign_in(page, server + "/", "alice", USERS["alice"][0])

    # Inspector: the run and prompt dropdowns, the prompt, the cards (one reply is 1 MB)
    open_tab(page, "inspector")
    cards = page.locator("#cards .udasa-text")
    wait_until(lambda: cards.count() == 3, what="3 cards")
    w.check("inspector cards")
    assert texts(page, "#cards .udasa-text") == [shown(reply_text(k)) for k in range(3)]
    assert shown(RUN_NAME) in open_options(page, "run")[0]
    assert len(open_options(page, "prompt")) == 4
    assert "went wrong" not in page.locator("#inspector-status").inner_text()
    page.locator("#delta-hist img").wait_for()  # a `$` in the run name is no mathtext
    pick_next(page, "prompt")
    wait_until(lambda: texts(page, "#cards .udasa-text") == [shown(reply_text(k))
                                                             for k in range(3, 6)],
               what="the second prompt's cards")
    assert PROMPT in page.locator("#cards .udasa-prompt").inner_text()
    w.check("inspector")

    # Rate: single replies and pairs, as the admin sees them
    open_tab(page, "rate")
    item = page.locator("#rate-item .udasa-text")
    for _ in range(2):
        before = wait_until(lambda: texts(page, "#rate-item .udasa-text"), what="an item")
        assert REPLY in before[0] and PROMPT in page.locator("#rate-item").inner_text()
        for field in ("harmless", "helpful", "overall"):
            page.locator(f"#rate-{field}").get_by_label("5", exact=True).check()
        page.locator("#rate-submit").click()
        wait_until(lambda b=before: texts(page, "#rate-item .udasa-text") != b,
                   what="the next item")
    page.locator("#rate-mode").get_by_label("Preference: two replies").check()
    wait_until(lambda: item.count() == 2, what="A and B")
    w.check("rate")

    # Compare: leaderboard, charts, the two methods side by side, Table 3, agreement
    open_tab(page, "compare")
    board = page.locator("#leaderboard")
    wait_until(lambda: METHOD in board.inner_text(), what="leaderboard")
    for name in METHODS:
        assert shown(name) in board.inner_text()
    page.locator("#board-charts img").first.wait_for()
    wait_until(lambda: "paired bootstrap" in page.locator("#cmp-test").inner_text(),
               what="paired test")
    assert shown(METHODS[0]) in page.locator("#cmp-test").inner_text()
    assert [shown(m) for m in METHODS] == open_options(page, "cmp-a") == \
        open_options(page, "cmp-b")
    assert len(open_options(page, "cmp-prompt")) == 4
    pair = page.locator("#cmp-pair .udasa-text")
    wait_until(lambda: pair.count() == 2, what="side by side")
    first = texts(page, "#cmp-pair .udasa-text")
    pick_next(page, "cmp-prompt")
    wait_until(lambda: texts(page, "#cmp-pair .udasa-text") not in ([], first), what="next pair")
    assert shown(METHODS[1]) in page.locator("#cmp-pair").inner_text()
    wait_until(lambda: "Spearman" in page.locator("#table3-stats").inner_text(), what="Table 3")
    wait_until(lambda: REPLY in page.locator("#table3-table").inner_text(), what="Table 3 rows")
    assert OTHER in page.locator("#agreement").inner_text()  # annotator names as text
    page.locator("#premise-charts img").first.wait_for()  # a `$` in the judge is no mathtext
    assert f"judge {METHOD}-judge <script>" in page.locator("#premise").inner_text()
    w.check("compare")

    # Export: every column as stored (the CSV is data, not a page)
    open_tab(page, "export")
    page.locator("#export-go").click()
    link = page.locator("#export-file a").first
    link.wait_for()
    csv_text = page.request.get(link.get_attribute("href")).text()
    assert METHOD in csv_text and ANNOTATORS[0] in csv_text
    w.check("export")
    w.context.close()


def test_hostile_text_stays_inert_for_an_annotator(server, workspace, browser):
    w = Watch(browser, server)
    page = w.page
    sign_in(page, server + "/", "bob", USERS["bob"][0])
    item = page.locator("#rate-item .udasa-text")
    wait_until(lambda: item.count() == 1, what="bob's first item")
    stored = {shown(i.response) for i in rating.pool(Store(workspace), "single")}
    assert item.inner_text().strip() in stored
    page.locator("#rate-mode").get_by_label("Preference: two replies").check()
    wait_until(lambda: item.count() == 2, what="A and B")
    assert METHOD not in page.locator("body").inner_text()
    w.check("rate, annotator")
    w.context.close()


# the raw queue API as an annotator ------------------------------------------------------------
def signed_in(server: str, name: str) -> httpx.Client:
    client = httpx.Client(base_url=server, timeout=60)
    r = client.post("/login", data={"username": name, "password": USERS[name][0]})
    assert r.status_code == 200, r.text
    return client


def call(client: httpx.Client, fn_index: int, data: list, trigger: int | None) -> dict:
    """Join the queue for one function and read its SSE stream to the end."""
    session = secrets.token_hex(8)
    r = client.post("/gradio_api/queue/join", json={
        "data": data, "fn_index": fn_index, "session_hash": session, "event_data": None,
        "trigger_id": trigger})
    if r.status_code != 200:
        return {"msg": "refused", "status": r.status_code, "text": r.text}
    with client.stream("GET", "/gradio_api/queue/data", params={"session_hash": session}) as s:
        for line in s.iter_lines():
            if line.startswith("data:"):
                msg = json.loads(line[5:])
                if msg.get("msg") == "process_completed":
                    return msg
    raise AssertionError(f"fn {fn_index}: the stream ended without a result")


def inputs_for(component: dict, values: dict[str, object]) -> object:
    props = component.get("props", {})
    return values.get(props.get("elem_id"), props.get("value"))


def descendants(layout: dict, roots: set[int]) -> set[int]:
    found: set[int] = set()

    def walk(node: dict, inside: bool) -> None:
        if inside:
            found.add(node["id"])
        for child in node.get("children", []):
            walk(child, inside or node["id"] in roots)

    walk(layout, False)
    return found


def test_every_function_refuses_admin_views_and_hides_methods_from_an_annotator(
        server, workspace):
    store = Store(workspace)
    run_id = store.latest_run().id
    secret = [METHOD, OTHER, run_id]  # never to an annotator
    stored = [*secret, PROMPT, REPLY]  # none of it from an admin view
    bob, alice = signed_in(server, "bob"), signed_in(server, "alice")
    config = bob.get("/config").json()
    for path in ("/config", "/gradio_api/info"):
        body = bob.get(path).text
        assert not [s for s in stored if s in body], path
    components = {c["id"]: c for c in config["components"]}
    tabs = {c["id"] for c in components.values() if c.get("props", {}).get("id") in ADMIN_TABS}
    admin_only = descendants(config["layout"], tabs)
    values = {"run": run_id, "prompt": store.run_prompts(run_id)[0].id, "table3-run": run_id,
              "new-prompt": "Say hello.", "cmp-task": "harmlessness", "cmp-a": METHODS[0],
              "cmp-b": METHODS[1], "cmp-prompt": 0, "rate-mode": "single", "export-fmt": "csv",
              "rate-item-id": rating.pool(store, "single")[0].id, "rate-harmless": 5,
              "rate-helpful": 5, "rate-overall": 5, "rate-preference": "A"}
    deps = [d for d in config["dependencies"] if d.get("backend_fn")]
    assert len(deps) >= 20, len(deps)
    refused = notices = 0
    for dep in deps:
        data = [inputs_for(components[i], values) for i in dep["inputs"]]
        trigger = dep["targets"][0][0] if dep.get("targets") else None
        result = call(bob, dep["id"], data, trigger)
        answer = json.dumps(result, ensure_ascii=False)
        # a refused input comes back in Gradio's error text: that echo is no leak
        sent = json.dumps(data, ensure_ascii=False) if not result.get("success") else ""
        leaked = [s for s in secret if s in answer and s not in sent]
        assert not leaked, (dep["id"], leaked, answer[:300])
        if admin_only & {*dep["inputs"], *dep["outputs"]}:
            assert not [s for s in stored if s in answer and s not in sent], (dep["id"],
                                                                              answer[:300])
            refused += 1
            notices += "This view is for admins" in answer
        if "export-file" in {components[o]["props"].get("elem_id") for o in dep["outputs"]}:
            out = json.loads(answer)["output"]["data"][0]
            exported = bob.get(out["url"]).text
            assert exported.startswith("id,annotator,item_id") and "bob" in exported
            assert METHOD not in exported and ",method," not in exported
            admin_file = call(alice, dep["id"], data, trigger)["output"]["data"][0]
            assert METHOD in alice.get(admin_file["url"]).text  # the check can see a method
    assert refused >= 10 and notices >= 2, (refused, notices)
