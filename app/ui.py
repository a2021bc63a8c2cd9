"""The Gradio layer: the app's tabs bound to the plain modules of this package.

Inspector (`ui_inspector`), Rate (`ui_rate`), Compare (`ui_compare`), Annotation
(`ui_admin`) and Export (here). Annotators see Rate and Export only; an admin lands on the
Inspector. No component is created with data in it: everything is loaded after sign-in. The
page's script (`keys.js`: accessible radio groups, the Rate tab's shortcuts) comes in through
`launch(head=...)`.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import gradio as gr

from app import render
from app.auth import User
from app.export import export
from app.state import PRIVATE, AppState
from app.ui_admin import annotation_tab, bind_annotation
from app.ui_compare import bind_compare, compare_tab
from app.ui_inspector import bind_inspector, inspector_tab
from app.ui_rate import bind_rate, rate_tab

KEYS_JS = Path(__file__).with_name("keys.js")
ADMIN_TABS = ("inspector", "compare", "annotation")


# Export ---------------------------------------------------------------------------------------
def export_tab() -> dict[str, Any]:
    c: dict[str, Any] = {}
    c["notice"] = gr.Markdown(elem_id="export-notice")
    with gr.Row():
        c["fmt"] = gr.Radio(["csv", "jsonl"], value="csv", label="Format", elem_id="export-fmt")
        c["go"] = gr.Button("Export ratings", variant="primary", elem_id="export-go")
    c["file"] = gr.File(label="Download", elem_id="export-file", interactive=False)
    return c


def bind_export(state: AppState, c: dict[str, Any]) -> None:
    def describe(request: gr.Request):
        who = ("every annotator's ratings" if state.is_admin(request) else
               "your own ratings (blind: without the method that wrote each reply)")
        return f"Exports {who} from `{state.ws.db_path}`."

    def run(fmt, request: gr.Request):
        with state.ws.read() as store:
            if store is None:
                raise gr.Error("no store yet: nothing to export")
            rows = state.visible_ratings(store, request)
        if not rows:
            raise gr.Error("no ratings to export yet")
        folder = Path(tempfile.mkdtemp(dir=state.scratch))
        return str(export(rows, fmt, folder / f"udasa-ratings.{fmt}",
                          blinded=not state.is_admin(request)))

    c["_load"] = lambda demo: demo.load(describe, None, c["notice"], **PRIVATE)
    c["go"].click(run, c["fmt"], c["file"], **PRIVATE)


# the whole app --------------------------------------------------------------------------------
def header(state: AppState) -> Callable:
    def hello(request: gr.Request):
        name = state.user(request)
        if name is None:
            return (f"Workspace `{state.ws.path}` · sign-in off (local use; rating needs "
                    "`--users`)"), gr.update(visible=False)
        role = " (admin)" if state.is_admin(request) else ""
        return (f"Workspace `{state.ws.path}` · signed in as **{name}**{role}",
                gr.update(visible=True))

    return hello


# Gradio's /logout deletes the sign-in cookie and the user's sessions, then redirects to the
# sign-in form: going there in this tab (not a new one) signs this tab out.
LOGOUT_JS = "() => { window.location.assign('logout'); }"


def views(state: AppState) -> Callable:
    """Annotators get Rate and Export only (the other views would unblind them); the role
    goes to LAND_JS, which opens the Inspector for an admin."""

    def show(request: gr.Request):
        admin = state.is_admin(request)
        return (*[gr.update(visible=admin)] * len(ADMIN_TABS), "admin" if admin else "")

    return show


# An admin lands on the Inspector, unless they picked a tab themselves while the page loaded
# (keys.js notes a person's click on a tab), so a quick click is never undone.
LAND_JS = """(role) => {
  if (role !== "admin") return;
  const land = (tries) => {  // the tab appears once the page has drawn the update
    if (window.udasaTabChosen) return;
    const tab = [...document.querySelectorAll("button[role=tab]")]
      .find((b) => b.textContent.trim() === "Inspector");
    if (tab) tab.click();
    else if (tries > 0) setTimeout(() => land(tries - 1), 100);
  };
  land(50);
}"""


def build(workspace: str | Path, users: Mapping[str, User] | None = None
          ) -> tuple[gr.Blocks, AppState]:
    """The app over `workspace`; sign-in is on when `users` is non-empty."""
    state = AppState(workspace, users)
    with gr.Blocks(title="UDASA", analytics_enabled=False) as demo:
        gr.Markdown("## UDASA: uncertainty inspector, human rating and comparison")
        with gr.Row(equal_height=True):
            who = gr.Markdown(elem_id="who")
            logout = gr.Button("Log out", size="sm", visible=False, scale=0, min_width=90,
                               elem_id="logout")
        # with sign-in, the admin views stay hidden until the user turns out to be an admin
        # (see `views`), and everyone starts on Rate
        admin_views = not state.auth_on
        role = gr.Textbox(visible=False, elem_id="role")
        with gr.Tabs(selected="inspector" if admin_views else "rate"):
            with gr.Tab("Inspector", id="inspector", visible=admin_views) as ins_tab:
                ins = inspector_tab()
            with gr.Tab("Rate", id="rate"):
                rate = rate_tab(workspace)
            with gr.Tab("Compare", id="compare", visible=admin_views) as cmp_tab:
                cmp = compare_tab()
            with gr.Tab("Annotation", id="annotation", visible=admin_views) as ann_tab:
                ann = annotation_tab()
            with gr.Tab("Export", id="export"):
                exp = export_tab()
        bind_inspector(state, ins)
        bind_rate(state, rate)
        bind_compare(state, cmp)
        bind_annotation(state, ann)
        bind_export(state, exp)
        logout.click(None, js=LOGOUT_JS)
        demo.load(header(state), None, [who, logout], **PRIVATE)
        demo.load(views(state), None, [ins_tab, cmp_tab, ann_tab, role], **PRIVATE) \
            .then(None, role, None, js=LAND_JS, **PRIVATE)
        for tab in (ins, rate, cmp, ann, exp):
            tab["_load"](demo)
    return demo, state


def theme() -> gr.themes.Base:
    """The default look with system fonts: no font is fetched from the internet."""
    return gr.themes.Default(font=["system-ui", "Segoe UI", "Roboto", "sans-serif"],
                             font_mono=["ui-monospace", "Menlo", "Consolas", "monospace"])


def head() -> str:
    """The page's own script (no outside file is loaded)."""
    import os
    if os.environ.get("UDASA_NOKEYS"):
        return ""
    return f"<script>{KEYS_JS.read_text(encoding='utf-8')}</script>"


def launch(demo: gr.Blocks, state: AppState, host: str = "127.0.0.1", port: int = 7860,
           block: bool = True, quiet: bool = False):
    from app.auth import make_auth, sign_in_middleware

    demo.queue(default_concurrency_limit=4)
    return demo.launch(
        server_name=host, server_port=port, share=False, inbrowser=False,
        auth=make_auth(state.users) if state.auth_on else None,
        auth_message="UDASA annotators: sign in with the name and password you were given.",
        prevent_thread_lock=not block, show_error=False, quiet=quiet, ssr_mode=False,
        mcp_server=False, run_history=False, theme=theme(), css=render.CSS, head=head(),
        footer_links=["api", "settings"], max_threads=40,
        app_kwargs={"middleware": sign_in_middleware()})  # client address for the throttle
