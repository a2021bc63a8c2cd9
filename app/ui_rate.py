"""The Rate tab: one item at a time, blind, with the task's guidelines beside it.

The annotator picks a task (an open pool or a pool assigned to them; the choice is kept in
the browser), rates the item shown (three 1-10 scores, or A / B / tie / both bad) with an
optional comment and flag, skips it (stored: it comes back last), or goes back through their
history to change an answer (a resubmission replaces it). Keyboard: `app/keys.js`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gradio as gr

from app import annotation, guidelines, rating, render
from app.rating import PairItem
from app.state import PIPELINE_HINT, PRIVATE, AppState
from evals import store_tables
from udasa.errors import UdasaError

SCORES = list(range(1, 11))
OUT_KEYS = ("notice", "mode", "progress", "item", "guide", "item_id", "scores", "prefs",
            "harmless", "helpful", "overall", "preference", "comment", "flagged", "history",
            "skip")
SKIP, TO_QUEUE = "Skip", "Return to queue"
KEYS_HELP = ("Keyboard: **1**-**9**, **0** (=10) score the highlighted scale and move to the "
             "next · **A** / **B** / **T** (tie) / **X** (both bad) · **Enter** submits "
             "(**Ctrl+Enter** from the comment) · **S** skips · **Backspace** goes back · "
             "**F** flags · **C** comments")


def _form(c: dict[str, Any], g: guidelines.Guidelines) -> None:
    with gr.Group(visible=True) as c["scores"]:
        for key in ("harmless", "helpful", "overall"):
            c[key] = gr.Radio(SCORES, label=g.scales[key].title, elem_id=f"rate-{key}")
    with gr.Group(visible=False) as c["prefs"]:
        c["preference"] = gr.Radio(list(rating.CHOICES), label="Which reply is better?",
                                   elem_id="rate-preference")
    with gr.Row():
        c["comment"] = gr.Textbox(label="Comment (optional)", lines=1, max_lines=4, scale=4,
                                  max_length=rating.MAX_COMMENT, elem_id="rate-comment")
        c["flagged"] = gr.Checkbox(label="Flag this item (broken, offensive or unclear)",
                                   scale=1, elem_id="rate-flag")


def rate_tab(workspace) -> dict[str, Any]:
    c: dict[str, Any] = {}
    c["notice"] = gr.HTML(elem_id="rate-notice")
    c["mode"] = gr.Radio([(v, k) for k, v in annotation.OPEN.items()], value="single",
                         label="Task", elem_id="rate-mode")
    c["progress"] = gr.HTML(elem_id="rate-progress")
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            c["item"] = gr.HTML(elem_id="rate-item")
        with gr.Column(scale=2):
            c["guide"] = gr.HTML(elem_id="rate-guide")
    c["item_id"] = gr.Textbox(visible=False, elem_id="rate-item-id")
    _form(c, guidelines.load(workspace) if _readable(workspace) else guidelines.load())
    with gr.Row():
        c["back"] = gr.Button("← Back", elem_id="rate-back", scale=1)
        c["submit"] = gr.Button("Submit", variant="primary", elem_id="rate-submit", scale=2)
        c["skip"] = gr.Button(SKIP, elem_id="rate-skip", scale=1)
        c["history"] = gr.Dropdown(label="Your ratings in this task, newest first: pick one "
                                   "to change it", choices=[], elem_id="rate-history", scale=3)
    c["status"] = gr.HTML(elem_id="rate-status")
    gr.Markdown(KEYS_HELP, elem_id="rate-keys")
    c["saved_task"] = gr.BrowserState({}, storage_key="udasa-rate-task",
                                      secret="udasa-rate-task")
    return c


def _readable(workspace) -> bool:
    """The workspace's guidelines load (else the shipped ones label the scales; the tab then
    says what is wrong with the file)."""
    try:
        guidelines.load(workspace)
        return True
    except UdasaError:
        return False


def _empty(notice: str, mode: str, progress: str = "", body: str = "", radio: Any = None,
           history: Any = None) -> list:
    """The outputs (OUT_KEYS) with no item: a notice or a message in place of one."""
    single = mode != "pair"
    return [notice, gr.skip() if radio is None else radio, progress, body, "", "",
            gr.update(visible=single), gr.update(visible=not single), None, None, None, None,
            "", False, gr.update(choices=[], value=None) if history is None else history,
            gr.update(value=SKIP)]


def _item_html(name: str, item) -> str:
    if isinstance(item, PairItem):
        a, b = rating.sides(name, item)
        return render.side_by_side(item.prompt, [("A", a.response), ("B", b.response)])
    return render.side_by_side(item.prompt, [("Reply", item.response)])


def _shown(state: AppState, name: str, admin: bool, wanted: str | None,
           open_id: str | None) -> list:
    """The outputs (OUT_KEYS) for `name` in task `wanted`: item `open_id` with their stored
    answers, else the head of their queue."""
    with state.ws.read() as store:
        if store is None:
            return _empty(state.no_store(), "single")
        tasks = annotation.tasks_for(store, name, admin)
        task = annotation.pick_task(tasks, wanted)
        queue = annotation.load_queue(store, name, task)
        g = guidelines.load(state.ws.path)
    radio = gr.update(choices=[(t.label, t.value) for t in tasks], value=task.value)
    if not queue.items:
        return _empty(render.empty_state("Nothing to rate yet.", "Replies come from runs and "
                                         "evaluations:", PIPELINE_HINT), task.mode, radio=radio)
    item = queue.item(open_id) if open_id else (queue.todo[0] if queue.todo else None)
    history = gr.update(choices=[(annotation.history_label(name, queue, r), r.item_id)
                                 for r in queue.history], value=open_id)
    if item is None:
        return _empty("", task.mode, queue.progress(name), render.empty_state(
            "All done: you rated every item of this task. Thank you!",
            "Pick one from your ratings below to change it."), radio, history)
    row = queue.mine.get(item.id)
    editing = (f" · <b>changing your rating from {render.esc(row.created_at[11:16])}</b> "
               "(submit replaces it)" if row is not None else "")
    a = annotation.answers(name, item, row)
    single = not isinstance(item, PairItem)
    return ["", radio, queue.progress(name) + editing, _item_html(name, item),
            guidelines.html(g, item.task_label, not single), item.id,
            gr.update(visible=single), gr.update(visible=not single), a["harmless"],
            a["helpful"], a["overall"], a["preference"], a["comment"], a["flagged"], history,
            gr.update(value=TO_QUEUE if row is not None else SKIP)]


def _guard(state: AppState, fn: Callable) -> Callable:
    """Sign-in and bad-file checks around a handler that returns the OUT_KEYS outputs."""
    def run(request: gr.Request, *args) -> list:
        name = state.user(request)
        if name is None:
            return _empty(render.empty_state(
                "Rating needs sign-in.", "Start the app with --users FILE (or "
                "UDASA_APP_USERS) so that each rating carries its annotator; make a password "
                "hash with `udasa-app hash-password`."), "single")
        try:
            return fn(name, state.is_admin(request), *args)
        except UdasaError as exc:
            return _empty(render.empty_state(str(exc)), "single")
    return run


def _saved(saved: object, name: str) -> str | None:
    return saved.get(name) if isinstance(saved, dict) else None


def _submit(state: AppState) -> Callable:
    """Store one rating by the signed-in annotator; says what was stored, for which prompt."""
    def submit(item_id, harmless, helpful, overall, preference, comment, flagged,
               request: gr.Request):
        """Rate one item as the signed-in annotator: scores 1-10, or a preference (A, B, tie,
        both bad), with an optional comment and flag."""
        name = state.user(request)
        if name is None:
            raise gr.Error("sign in to rate")
        if not item_id:
            raise gr.Error("nothing to rate")
        if not state.ws.exists():
            raise gr.Error("no store yet")

        def save(store):
            item = rating.find(store, item_id)
            row = rating.rating_row(name, item, {"harmless": harmless, "helpful": helpful,
                                                 "overall": overall}, preference, comment,
                                    bool(flagged))
            before = {r.id for r in store_tables.ratings(store, name)}
            store_tables.add_rating(store, row)
            return annotation.confirmation(name, item, row, row.id in before)
        try:
            return state.ws.write(save)
        except UdasaError as exc:
            raise gr.Error(str(exc)) from None
    return submit


def _skip(state: AppState) -> Callable:
    """Skip the item shown (stored; an item being changed is left as rated)."""
    def skip(item_id, request: gr.Request):
        name = state.user(request)
        if name is None or not item_id or not state.ws.exists():
            return ""

        def save(store):
            if any(r.item_id == item_id for r in store_tables.ratings(store, name)):
                return ""
            annotation.skip(store, name, item_id)
            return "Skipped: it comes back at the end of your queue."
        return state.ws.write(save)
    return skip


def _back(name: str, admin: bool, state: AppState, task: str, current: str) -> list:
    """The rating before `current` in the annotator's history (the newest from the queue)."""
    with state.ws.read() as store:
        if store is None:
            return _empty(state.no_store(), "single")
        tasks = annotation.tasks_for(store, name, admin)
        done = [r.item_id for r in annotation.load_queue(
            store, name, annotation.pick_task(tasks, task)).history]
    k = done.index(current) + 1 if current in done else 0
    return _shown(state, name, admin, task, done[min(k, len(done) - 1)] if done else None)


def bind_rate(state: AppState, c: dict[str, Any]) -> None:
    outs = [c[k] for k in OUT_KEYS]
    shown = _guard(state, lambda name, admin, task, open_id=None:
                   _shown(state, name, admin, task, open_id))

    def load(saved, request: gr.Request):
        return shown(request, _saved(saved, state.user(request) or ""))

    def pick(task, saved, request: gr.Request):
        name = state.user(request) or ""
        return [*shown(request, task), (saved if isinstance(saved, dict) else {}) | {name: task}]

    def after(task, request: gr.Request):
        return shown(request, task)

    def back(task, current, request: gr.Request):
        return _guard(state, lambda n, a: _back(n, a, state, task, current))(request)

    def open_item(task, item_id, request: gr.Request):
        return shown(request, task, item_id)

    c["_load"] = lambda demo: demo.load(load, c["saved_task"], outs, **PRIVATE)
    c["mode"].input(pick, [c["mode"], c["saved_task"]], [*outs, c["saved_task"]], **PRIVATE)
    c["submit"].click(_submit(state), [c["item_id"], c["harmless"], c["helpful"], c["overall"],
                                       c["preference"], c["comment"], c["flagged"]],
                      c["status"], api_name="rate", concurrency_limit=None) \
        .success(after, c["mode"], outs, **PRIVATE)
    c["skip"].click(_skip(state), c["item_id"], c["status"], **PRIVATE) \
        .then(after, c["mode"], outs, **PRIVATE)
    c["back"].click(back, [c["mode"], c["item_id"]], outs, **PRIVATE)
    c["history"].select(open_item, [c["mode"], c["history"]], outs, **PRIVATE)
