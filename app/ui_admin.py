"""The Annotation tab (admins): hand out rating pools with an overlap, and follow each
annotator's progress, their agreement with the others, flags and comments, and the win rates
of the A/B votes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gradio as gr

from app import annotation, pools, votes
from app.render import esc, html_table
from app.state import PRIVATE, AppState
from udasa.errors import UdasaError


def annotation_tab() -> dict[str, Any]:
    c: dict[str, Any] = {}
    c["notice"] = gr.HTML(elem_id="pool-notice")
    gr.Markdown("### New rating pool\nEach item goes to *overlap* annotators, so agreement "
                "can be measured; the items are drawn at random (seeded by the pool's name) "
                "from the chosen runs, evaluations and tasks (none chosen: all).")
    with gr.Row():
        c["name"] = gr.Textbox(label="Pool name", elem_id="pool-name")
        c["kind"] = gr.Radio([(v, k) for k, v in annotation.OPEN.items()], value="single",
                             label="Kind", elem_id="pool-kind")
        c["size"] = gr.Number(value=20, precision=0, minimum=1, label="Items",
                              elem_id="pool-size")
        c["overlap"] = gr.Number(value=2, precision=0, minimum=1,
                                 label="Overlap k (annotators per item)", elem_id="pool-overlap")
    with gr.Row():
        c["sources"] = gr.Dropdown(label="Runs and evaluations", choices=[], multiselect=True,
                                   elem_id="pool-sources")
        c["tasks"] = gr.Dropdown(label="Tasks", choices=[], multiselect=True,
                                 elem_id="pool-tasks")
        c["annotators"] = gr.Dropdown(label="Annotators", choices=[], multiselect=True,
                                      elem_id="pool-annotators")
    c["create"] = gr.Button("Create pool", variant="primary", elem_id="pool-create")
    c["status"] = gr.HTML(elem_id="pool-status")
    c["refresh"] = gr.Button("Refresh", size="sm", elem_id="pool-refresh")
    gr.Markdown("### Pools")
    c["pools"] = gr.HTML(elem_id="pool-list")
    gr.Markdown("### Progress per annotator")
    c["progress"] = gr.HTML(elem_id="pool-progress")
    gr.Markdown("### Win rates from A/B votes (a tie or both bad counts half to each side)")
    c["wins"] = gr.HTML(elem_id="win-rates")
    gr.Markdown("### Flags and comments")
    c["flags"] = gr.HTML(elem_id="pool-flags")
    return c


def overview(store, admins: frozenset[str] = frozenset()) -> list:
    """Pools, progress, win rates, flags (TABLE_KEYS order)."""
    return [html_table(pools.pool_table(store)), html_table(pools.progress(store, admins)),
            html_table(votes.labelled_win_rates(store)),
            html_table(pools.flagged(store), text_columns=("comment",))]


TABLE_KEYS = ("pools", "progress", "wins", "flags")


def _load(state: AppState) -> Callable:
    def load(request: gr.Request):
        blank = [gr.update(choices=[])] * 3 + [""] * len(TABLE_KEYS)
        if lock := state.locked(request):
            return [lock, *blank]
        with state.ws.read() as store:
            if store is None:
                return [state.no_store(), *blank]
            sources, tasks = pools.source_choices(store), pools.task_choices(store)
            tables = overview(store, state.admins)
        return ["", gr.update(choices=sources), gr.update(choices=tasks),
                gr.update(choices=sorted(state.users)), *tables]
    return load


def _create(state: AppState) -> Callable:
    def create(name, kind, size, overlap, sources, tasks, annotators, request: gr.Request):
        if state.locked(request):
            raise gr.Error("pools are for admins")
        if not state.ws.exists():
            raise gr.Error("no store yet")
        req = pools.PoolRequest(str(name or ""), kind, tuple(sources or ()), tuple(tasks or ()),
                                int(size or 0), int(overlap or 0), tuple(annotators or ()))
        try:
            def make(store):
                pool, n = pools.make_pool(store, req, state.user(request) or "admin")
                return pool, n, overview(store, state.admins)
            pool, n, tables = state.ws.write(make)
        except UdasaError as exc:
            return [f"<b>Not created:</b> {esc(exc)}", *[gr.skip()] * len(TABLE_KEYS)]
        people = len(set(req.annotators))
        done = (f"Created pool <b>{esc(pool.name)}</b>: {n} items, each to {req.overlap} of "
                f"{people} annotators (about {n * req.overlap / people:.0f} items each).")
        return [done, *tables]
    return create


def _tables(state: AppState) -> Callable:
    def tables(request: gr.Request):
        if state.locked(request):
            return [""] * len(TABLE_KEYS)
        with state.ws.read() as store:
            return [""] * len(TABLE_KEYS) if store is None else overview(store, state.admins)
    return tables


def bind_annotation(state: AppState, c: dict[str, Any]) -> None:
    tables = [c[k] for k in TABLE_KEYS]
    c["_load"] = lambda demo: demo.load(
        _load(state), None, [c["notice"], c["sources"], c["tasks"], c["annotators"], *tables],
        **PRIVATE)
    c["create"].click(_create(state), [c["name"], c["kind"], c["size"], c["overlap"],
                                       c["sources"], c["tasks"], c["annotators"]],
                      [c["status"], *tables], **PRIVATE)
    c["refresh"].click(_tables(state), None, tables, **PRIVATE)
