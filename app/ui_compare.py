"""The Compare tab: the leaderboard and its charts, two methods on one task side by side with
their paired test, the premise tests, Table 3, inter-annotator agreement and the A/B win
rates.

Every programmatic update is one chain started by the page load or Refresh (overview ->
methods of the task -> paired test and first prompt -> Table 3): no view is recomputed by a
`change` event of a component another handler just set, so no two handlers race and a
switch of task replaces test line, prompts and replies together. A person's own pick of an
option (`select`: a dropdown also sends `input` when it merely loses focus) re-runs only what
depends on it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gradio as gr

from app import compare, inspector, labels, render, votes
from app.state import PIPELINE_HINT, PRIVATE, AppState, guarded, short
from evals import store_tables
from udasa.records import content_key
from udasa.store_schema import as_rows

NO_PAIR = (gr.update(choices=[], value=None), gr.update(choices=[], value=None),
           gr.update(choices=[], value=None), "")  # a, b, prompts, pair


def compare_tab() -> dict[str, Any]:
    c: dict[str, Any] = {}
    c["notice"] = gr.HTML(elem_id="compare-notice")
    c["refresh"] = gr.Button("Refresh", size="sm", elem_id="compare-refresh")
    gr.Markdown("### Leaderboard (`udasa-eval run`): judge [95% CI] / human")
    c["board"] = gr.Dataframe(interactive=False, elem_id="leaderboard", wrap=True)
    c["names"] = gr.HTML(elem_id="board-names")
    gr.Markdown("### A/B votes: win rate per pair of methods (a tie or both bad counts half "
                "to each side)")
    c["wins"] = gr.HTML(elem_id="cmp-win-rates")
    c["charts"] = gr.Gallery(label="One chart per task metric", columns=3, height=400,
                             object_fit="contain", preview=False, fit_columns=False,
                             elem_id="board-charts")
    gr.Markdown("### Two methods on the same prompts")
    with gr.Row():
        c["task"] = gr.Dropdown(label="Task", choices=[], elem_id="cmp-task")
        c["a"] = gr.Dropdown(label="Method A", choices=[], elem_id="cmp-a")
        c["b"] = gr.Dropdown(label="Method B", choices=[], elem_id="cmp-b")
    c["test"] = gr.HTML(elem_id="cmp-test")
    c["sample"] = gr.Dropdown(label="Prompt", choices=[], elem_id="cmp-prompt")
    c["pair"] = gr.HTML(elem_id="cmp-pair")
    gr.Markdown("### Premise: does lower uncertainty mean a better reply?")
    c["premise_charts"] = gr.Gallery(label="Judge score against u and each axis (Spearman rho, "
                                     "95% CI); chosen beats rejected", columns=2, height=560,
                                     object_fit="contain", preview=True, fit_columns=False,
                                     elem_id="premise-charts")
    c["premise"] = gr.HTML(elem_id="premise")
    gr.Markdown("### Table 3: automatic uncertainty against human scores of the same replies")
    c["table3_run"] = gr.Dropdown(label="Run", choices=[], elem_id="table3-run")
    c["table3_stats"] = gr.Markdown(elem_id="table3-stats")
    c["table3_plot"] = gr.Plot(label="u against mean human overall", elem_id="table3-plot")
    c["table3_table"] = gr.HTML(elem_id="table3-table")
    gr.Markdown("#### Inter-annotator agreement")
    c["agreement"] = gr.HTML(elem_id="agreement")
    return c


def _overview(state: AppState) -> Callable:
    """The leaderboard, its charts and names, the task and run choices, the premise tests."""
    def overview(request: gr.Request):
        nothing = [gr.update(value=None, visible=False), "", gr.update(value=[], visible=False),
                   gr.update(choices=[], value=None), gr.update(choices=[], value=None), "",
                   gr.update(value=[], visible=False)]
        if lock := state.locked(request):
            return [lock, *nothing]
        with state.ws.read() as store:
            if store is None:
                return [state.no_store(), *nothing]
            results = compare.results_of(store)
            names = compare.model_labels(store, results)
            board = compare.leaderboard(store, as_rows(store_tables.ratings(store)), names)
            settings = compare.setting_note(store)
            charts = compare.leaderboard_charts(store, state.scratch, names)
            tasks = compare.tasks_and_methods(results)
            runs = inspector.run_choices(store)
        premise, premise_charts = compare.premise_section(state.ws.path, state.scratch)
        notes = [settings]
        if board is None:
            notes.append(render.empty_state("No leaderboard yet.", "Evaluate models with:",
                                            PIPELINE_HINT[1:]))
        return ["".join(notes), gr.update(value=board, visible=board is not None),
                compare.names_html(names), gr.update(value=charts, visible=bool(charts)),
                gr.update(choices=[(render.plain(t), t) for t in tasks],
                          value=next(iter(tasks), None)),
                gr.update(choices=runs, value=runs[0][1] if runs else None), premise,
                gr.update(value=premise_charts, visible=bool(premise_charts))]
    return overview


def _pair_html(cmp: compare.SideBySide, key: str | None, names) -> str:
    """Two methods' replies to the sample whose key is `key` (else the first) side by side."""
    rows = {content_key(cmp.view, r.sample_id): r for r in cmp.rows}
    row = rows.get(key or "") or (cmp.rows[0] if cmp.rows else None)
    if row is None:
        return ""
    (out_a, out_b), (va, vb) = row.outputs, row.values
    la, lb = (names.get(m) or labels.Label(m, m) for m in (cmp.a, cmp.b))
    return render.side_by_side(row.prompt, [
        (f"{la.text} · {cmp.metric} {render.num(va, 2)}", out_a),
        (f"{lb.text} · {cmp.metric} {render.num(vb, 2)}", out_b)], titles=[la.full, lb.full])


def _comparison(store, view: str, a: str | None, b: str | None):
    """The paired comparison of a and b in one view (a task in one setting), and the labels."""
    results = compare.results_of(store)
    cmp = compare.compare(results, view, a, b) if a and b else None
    return cmp, compare.model_labels(store, results)


def _test_outputs(cmp, names, key: str | None = None) -> tuple:
    """The test line, the prompt choices (value: a key of view and sample) and the pair."""
    if cmp is None:
        return "", gr.update(choices=[], value=None), ""
    choices = [(short(r.prompt), content_key(cmp.view, r.sample_id)) for r in cmp.rows]
    value = key if key in {v for _, v in choices} else (choices[0][1] if choices else None)
    return (f"<div class='udasa-prompt'>{compare.comparison_html(cmp, names)}</div>",
            gr.update(choices=choices, value=value), _pair_html(cmp, value, names))


def _pick_task(state: AppState) -> Callable:
    """A task's methods (the first two as A and B), their test, prompts and first pair."""
    @guarded(*NO_PAIR)
    def pick_task(task, request: gr.Request):
        if not task or state.locked(request):
            return ("", *NO_PAIR)
        with state.ws.read() as store:
            if store is None:
                return (state.no_store(), *NO_PAIR)
            methods = compare.tasks_and_methods(compare.results_of(store)).get(task, [])
            a, b = (methods + [None, None])[:2]
            cmp, names = _comparison(store, task, a, b)
        choices = [(names[m].text, m) for m in methods]
        test, prompts, pair = _test_outputs(cmp, names)
        return (test, gr.update(choices=choices, value=a), gr.update(choices=choices, value=b),
                prompts, pair)
    return pick_task


def _pick_methods(state: AppState) -> Callable:
    """Method A or B changed: the test, prompts and first pair of the new two."""
    @guarded(gr.update(choices=[], value=None), "")
    def pick_methods(task, a, b, request: gr.Request):
        if not task or state.locked(request):
            return ("", gr.update(choices=[], value=None), "")
        with state.ws.read() as store:
            if store is None:
                return (state.no_store(), gr.update(choices=[], value=None), "")
            cmp, names = _comparison(store, task, a, b)
        return _test_outputs(cmp, names)
    return pick_methods


def _pick_sample(state: AppState) -> Callable:
    """A prompt picked: the two methods' replies to it."""
    def pick_sample(task, a, b, key, request: gr.Request):
        if not (task and a and b) or state.locked(request):
            return ""
        with state.ws.read() as store:
            if store is None:
                return state.no_store()
            cmp, names = _comparison(store, task, a, b)
        return _pair_html(cmp, key, names) if cmp else ""
    return pick_sample


def _human(state: AppState) -> Callable:
    """What the ratings say: Table 3 of a run (its Spearman and figure), the agreement table
    and the A/B win rates."""
    def show_human(run_id, request: gr.Request):
        if state.locked(request):
            return "", "", None, "", ""
        with state.ws.read() as store:
            if store is None:
                return "", "", None, "", ""
            records = store_tables.ratings(store)
            ratings = as_rows(records)
            agreement = render.html_table(compare.agreement(ratings), text_columns=("note",))
            wins = votes.labelled_win_rates(store, records)
            wins = render.html_table(wins) if len(wins) else "No A/B votes yet."
            if not run_id:
                return "", "", None, agreement, wins
            table = compare.table3(store, run_id, ratings)
        return (compare.table3_stats(table), compare.table3_html(table),
                compare.table3_figure(table), agreement, wins)
    return show_human


def bind_compare(state: AppState, c: dict[str, Any]) -> None:
    overview = (_overview(state), None, [c["notice"], c["board"], c["names"], c["charts"],
                                         c["task"], c["table3_run"], c["premise"],
                                         c["premise_charts"]])
    task = (_pick_task(state), c["task"], [c["test"], c["a"], c["b"], c["sample"], c["pair"]])
    methods = (_pick_methods(state), [c["task"], c["a"], c["b"]],
               [c["test"], c["sample"], c["pair"]])
    table3 = (_human(state), c["table3_run"],
              [c["table3_stats"], c["table3_table"], c["table3_plot"], c["agreement"],
               c["wins"]])

    def chain(event) -> None:
        event.then(*task, **PRIVATE).then(*table3, **PRIVATE)

    c["_load"] = lambda demo: chain(demo.load(*overview, **PRIVATE))
    chain(c["refresh"].click(*overview, **PRIVATE))
    c["task"].select(*task, **PRIVATE)
    for dd in (c["a"], c["b"]):
        dd.select(*methods, **PRIVATE)
    c["sample"].select(_pick_sample(state), [c["task"], c["a"], c["b"], c["sample"]], c["pair"],
                      **PRIVATE)
    c["table3_run"].select(*table3, **PRIVATE)
