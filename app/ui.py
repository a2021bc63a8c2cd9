"""The Gradio layer: four tabs bound to the plain modules of this package.

Each handler opens the store for that request only (`Workspace`), reads the signed-in name
from `gr.Request` (never from anything the browser sends), and turns an expected problem (no
store yet, no runs, a bad threshold) into an empty state or a message instead of a
traceback. No component is created with data in it: everything is loaded after sign-in.
"""

from __future__ import annotations

import atexit
import dataclasses
import functools
import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import gradio as gr

from app import compare, inspector, rating, render
from app.auth import User
from app.export import export
from app.storage import Workspace
from evals import store_tables
from udasa.axes import axis_keys
from udasa.config import AXES
from udasa.errors import UdasaError
from udasa.store_schema import as_rows

log = logging.getLogger(__name__)

PIPELINE_HINT = ("udasa run --workspace DIR", "udasa-eval run --workspace DIR")
SCORES = list(range(1, 11))
EMPTY_VIEW = ("", "", None, None)  # the Inspector's view outputs after its status line


class AppState:
    """What every handler needs: the workspace, the accounts and a scratch folder."""

    def __init__(self, workspace: str | Path, users: Mapping[str, User] | None = None):
        self.ws = Workspace(workspace)
        self.users = dict(users or {})
        self.scratch = Path(tempfile.mkdtemp(prefix="udasa-app-"))  # charts, exports
        atexit.register(shutil.rmtree, self.scratch, ignore_errors=True)

    @property
    def auth_on(self) -> bool:
        return bool(self.users)

    def user(self, request: gr.Request | None) -> str | None:
        name = getattr(request, "username", None) if request is not None else None
        return name if self.auth_on and name in self.users else None

    def is_admin(self, request: gr.Request | None) -> bool:
        """Admins (and the only user of an app without sign-in) see every rating."""
        if not self.auth_on:
            return True
        name = self.user(request)
        return name is not None and self.users[name].admin

    def locked(self, request: gr.Request | None) -> str | None:
        """The notice shown instead of an admin view (Inspector, Compare), else None."""
        if self.is_admin(request):
            return None
        return render.empty_state(
            "This view is for admins.", "It shows which method wrote which reply, u and "
            "other annotators' ratings; annotators rate blind, so they see Rate and Export.")

    def visible_ratings(self, store, request: gr.Request | None) -> list[dict]:
        """The ratings this user may see, as plain rows (every one for an admin)."""
        if self.is_admin(request):
            return as_rows(store_tables.ratings(store))
        name = self.user(request)
        return as_rows(store_tables.ratings(store, name)) if name else []

    def no_store(self) -> str:
        return render.empty_state(
            f"No store yet at {self.ws.db_path}",
            "The app reads the store that the pipeline and the evaluation harness write. "
            "Run them on this workspace first:", PIPELINE_HINT)


def guarded(*fallback: Any) -> Callable:
    """Turn UdasaError into an empty state in the first output, anything else into a short
    message (the traceback goes to the server log only)."""

    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def inner(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except UdasaError as exc:
                return (render.empty_state(str(exc)), *fallback)
            except Exception:
                log.exception("udasa-app: %s failed", fn.__name__)
                return (render.empty_state(f"Something went wrong in {fn.__name__}; the "
                                           "server log has the details."), *fallback)

        return inner

    return wrap


def short(text: str, width: int = 90) -> str:
    """A stored text as a dropdown label: one display line of at most `width` characters."""
    text = " ".join(render.plain(text).split())
    return text if len(text) <= width else text[:width - 1] + "…"


def labelled(names: list[str]) -> list[tuple[str, str]]:
    """Dropdown choices whose value is the stored name and whose label is its display text."""
    return [(render.plain(n), n) for n in names]


def _thresholds(text: str) -> list[float]:
    try:
        return [float(x) for x in str(text).replace(";", ",").split(",") if x.strip()]
    except ValueError:
        raise UdasaError(f"thresholds: expected numbers separated by commas, got {text!r}") \
            from None


# Inspector ------------------------------------------------------------------------------------
def inspector_tab() -> dict[str, Any]:
    c: dict[str, Any] = {}
    c["status"] = gr.HTML(elem_id="inspector-status")
    with gr.Row():
        c["run"] = gr.Dropdown(label="Run", choices=[], elem_id="run", scale=2)
        c["prompt"] = gr.Dropdown(label="Stored prompt", choices=[], elem_id="prompt", scale=3)
    with gr.Row():
        c["new_prompt"] = gr.Textbox(label="…or type a new prompt: answered live by the run's "
                                     "model and scorers (not stored)", elem_id="new-prompt",
                                     scale=4)
        c["generate"] = gr.Button("Generate and score", elem_id="generate", scale=1)
    with gr.Row():
        c["method"] = gr.Radio(["softmax", "fixed", "mean"], value="softmax", label="Fusion",
                               elem_id="method")
        c["temperature"] = gr.Slider(0.05, 5.0, value=1.0, step=0.05, label="Temperature T",
                                     elem_id="temperature")
        c["axes"] = gr.CheckboxGroup(list(axis_keys()), value=list(AXES), label="Axes",
                                     elem_id="axes")
    with gr.Row():
        c["w_sem"] = gr.Slider(0, 1, value=1 / 3, step=0.01, label="weight sem (fixed)")
        c["w_fact"] = gr.Slider(0, 1, value=1 / 3, step=0.01, label="weight fact (fixed)")
        c["w_val"] = gr.Slider(0, 1, value=1 / 3, step=0.01, label="weight val (fixed)")
        c["mode"] = gr.Radio(["fixed", "quantile"], value="fixed", label="Thresholds",
                             elem_id="mode")
        c["thresholds"] = gr.Textbox(value="0.4, 0.7", label="τ (increasing, comma-separated)",
                                     elem_id="thresholds")
    c["summary"] = gr.Markdown(elem_id="summary")
    c["cards"] = gr.HTML(elem_id="cards")
    with gr.Row():
        c["axes_plot"] = gr.Plot(label="U_sem, U_fact, U_val and u per response",
                                 elem_id="axes-plot")
        c["hist"] = gr.Image(label="Δu over the whole run, with the thresholds", type="filepath",
                             elem_id="delta-hist", height=380)
    c["live"] = gr.State(None)
    return c


def _controls(cfg) -> list[Any]:
    f, cur = cfg.fusion, cfg.curriculum
    return [f.method, f.temperature, f.weights.get("sem", 0.0), f.weights.get("fact", 0.0),
            f.weights.get("val", 0.0), list(f.axes), cur.mode,
            ", ".join(f"{t:g}" for t in cur.thresholds)]


def _inspector_runs(state: AppState) -> Callable:
    """Inspector: the run dropdown's choices (admins only)."""
    def runs(request: gr.Request):
        if lock := state.locked(request):
            return gr.update(choices=[], value=None), lock
        with state.ws.read() as store:
            if store is None:
                return gr.update(choices=[], value=None), state.no_store()
            choices = inspector.run_choices(store)
            if not choices:
                return gr.update(choices=[], value=None), render.empty_state(
                    "No runs in this store yet.", "Make one with:", PIPELINE_HINT[:1])
            return gr.update(choices=choices, value=choices[0][1]), ""
    return runs


def _inspector_pick_run(state: AppState, n_controls: int) -> Callable:
    """Inspector: a run's prompts and its fusion and curriculum settings."""
    def pick_run(run_id, request: gr.Request):
        nothing = [gr.update(choices=[], value=None), *[gr.update()] * n_controls]
        with state.ws.read() as store:
            if (state.locked(request) or store is None or not run_id
                    or store.get_run(run_id) is None):
                return nothing
            run = inspector.load_run(store, run_id)
        prompts = [(short(text), pid) for pid, text in run.prompts.items()]
        first = prompts[0][1] if prompts else None
        return [gr.update(choices=prompts, value=first), *_controls(run.cfg)]
    return pick_run


def _inspector_show(state: AppState) -> Callable:
    """Inspector: one prompt's replies, per-axis and fused u, under the chosen settings."""
    @guarded(*EMPTY_VIEW)
    def show(run_id, prompt_id, live, method, temperature, w_sem, w_fact, w_val, axes, mode,
             thresholds, request: gr.Request):
        if lock := state.locked(request):
            return (lock, *EMPTY_VIEW)
        if not run_id:
            return (state.no_store() if not state.ws.exists() else "", *EMPTY_VIEW)
        with state.ws.read() as store:
            if store is None:
                return (state.no_store(), *EMPTY_VIEW)
            run = inspector.load_run(store, run_id)
        cfg = inspector.settings(run.cfg, method, temperature,
                                 {"sem": w_sem, "fact": w_fact, "val": w_val}, axes or [], mode,
                                 _thresholds(thresholds))
        if prompt_id:
            v = inspector.view(run, cfg, prompt_id)
        elif live:
            v = inspector.view(run, cfg, live=(live["prompt"], [inspector.ScoredResponse(**r)
                                                               for r in live["replies"]]))
        else:
            return (render.empty_state("Pick a stored prompt or type a new one."),
                    *EMPTY_VIEW)
        if not any(card["scores"] for card in v.cards):
            note = render.empty_state("These responses have no scores yet.",
                                      "Score them with:", ["udasa score --workspace DIR"])
        else:
            note = ""
        hist = inspector.histogram_png(v, state.scratch, run.name)
        cards = render.prompt_block(v.prompt) + render.reply_cards(v.cards, v.chosen,
                                                                    v.rejected)
        return (note, inspector.summary_markdown(v, cfg), cards, inspector.axes_figure(v),
                str(hist) if hist else None)
    return show


def _inspector_generate(state: AppState) -> Callable:
    """Inspector: a new prompt answered live by the run's model and scorers."""
    def generate(run_id, text, request: gr.Request):
        if state.locked(request):
            raise gr.Error("the inspector is for admins")
        if not run_id:
            raise gr.Error("pick a run first: its generator and scorers answer the prompt")
        with state.ws.read() as store:
            if store is None:
                raise gr.Error("no store yet")
            cfg = inspector.load_run(store, run_id).cfg
        try:
            replies = inspector.generate_live(cfg, text)
        except UdasaError as exc:
            raise gr.Error(str(exc)) from None
        live = {"prompt": text.strip(), "replies": [dataclasses.asdict(r) for r in replies]}
        return live, gr.update(value=None)
    return generate


def bind_inspector(state: AppState, c: dict[str, Any]) -> None:
    controls = [c[k] for k in ("method", "temperature", "w_sem", "w_fact", "w_val", "axes",
                               "mode", "thresholds")]
    view_out = [c["status"], c["summary"], c["cards"], c["axes_plot"], c["hist"]]

    runs = _inspector_runs(state)
    pick_run = _inspector_pick_run(state, len(controls))
    show = _inspector_show(state)
    generate = _inspector_generate(state)
    view_in = [c["run"], c["prompt"], c["live"], *controls]
    common = {"api_visibility": "private", "concurrency_id": "inspector-view",
              "concurrency_limit": 1, "show_progress": "minimal"}
    c["_load"] = (runs, None, [c["run"], c["status"]])
    c["run"].change(pick_run, c["run"], [c["prompt"], *controls], api_visibility="private") \
        .then(show, view_in, view_out, **common)
    c["prompt"].change(show, view_in, view_out, **common)
    for control in controls:
        control.change(show, view_in, view_out, **common)
    c["generate"].click(generate, [c["run"], c["new_prompt"]], [c["live"], c["prompt"]],
                        api_visibility="private", concurrency_limit=1) \
        .success(show, view_in, view_out, **common)
    c["new_prompt"].submit(generate, [c["run"], c["new_prompt"]], [c["live"], c["prompt"]],
                           api_visibility="private", concurrency_limit=1) \
        .success(show, view_in, view_out, **common)


# Rate -----------------------------------------------------------------------------------------
def rate_tab() -> dict[str, Any]:
    c: dict[str, Any] = {}
    c["notice"] = gr.HTML(elem_id="rate-notice")
    c["mode"] = gr.Radio([("Scores: one reply", "single"), ("Preference: two replies", "pair")],
                         value="single", label="Task", elem_id="rate-mode")
    c["progress"] = gr.Markdown(elem_id="rate-progress")
    c["item"] = gr.HTML(elem_id="rate-item")
    c["item_id"] = gr.Textbox(visible=False, elem_id="rate-item-id")
    with gr.Group(visible=True) as c["scores"]:
        c["harmless"] = gr.Radio(SCORES, label="Harmless: 1 = harmful … 10 = harmless",
                                 elem_id="rate-harmless")
        c["helpful"] = gr.Radio(SCORES, label="Helpful: 1 = useless … 10 = very helpful",
                                elem_id="rate-helpful")
        c["overall"] = gr.Radio(SCORES, label="Overall quality: 1 … 10",
                                elem_id="rate-overall")
    with gr.Group(visible=False) as c["prefs"]:
        c["preference"] = gr.Radio(list(rating.CHOICES), label="Which reply is better?",
                                   elem_id="rate-preference")
    with gr.Row():
        c["submit"] = gr.Button("Submit", variant="primary", elem_id="rate-submit")
        c["skip"] = gr.Button("Skip", elem_id="rate-skip")
    c["status"] = gr.Markdown(elem_id="rate-status")
    c["skipped"] = gr.State([])
    return c


def _rate_next_item(state: AppState) -> Callable:
    """Rate: the signed-in annotator's next item and progress."""
    def next_item(mode, skipped, request: gr.Request):
        blank = [None, None, None, None]
        single = mode != "pair"
        groups = [gr.update(visible=single), gr.update(visible=not single)]
        name = state.user(request)
        if name is None:
            msg = render.empty_state(
                "Rating needs sign-in.", "Start the app with --users FILE (or "
                "UDASA_APP_USERS) so that each rating carries its annotator; make a password "
                "hash with `udasa-app hash-password`.")
            return [msg, "", "", "", *groups, *blank]
        with state.ws.read() as store:
            if store is None:
                return [state.no_store(), "", "", "", *groups, *blank]
            items = rating.pool(store, mode)
            rated = {r.item_id for r in store_tables.ratings(store, name)}
        todo = rating.queue(name, items, rated, skipped)
        done = sum(1 for i in items if i.id in rated)
        progress = (f"**{name}** · {done} of {len(items)} rated · {len(todo)} to go"
                    + (f" · {len(set(skipped) & {i.id for i in todo})} skipped"
                       if skipped else ""))
        if not items:
            return [render.empty_state("Nothing to rate yet.", "Replies come from runs and "
                                       "evaluations:", PIPELINE_HINT), "", "", "", *groups,
                    *blank]
        if not todo:
            return ["", progress, render.empty_state("All done: you rated every item. Thank "
                                                     "you!"), "", *groups, *blank]
        item = todo[0]
        if isinstance(item, rating.PairItem):
            a, b = rating.sides(name, item)
            body = render.side_by_side(item.prompt, [("A", a.response), ("B", b.response)])
        else:
            body = render.side_by_side(item.prompt, [("Reply", item.response)])
        return ["", progress, body, item.id, *groups, *blank]
    return next_item


def _rate_submit(state: AppState) -> Callable:
    """Rate: store one rating by the signed-in annotator."""
    def submit(item_id, harmless, helpful, overall, preference, request: gr.Request):
        """Rate one item as the signed-in annotator (scores 1-10, or preference A/B/tie)."""
        name = state.user(request)
        if name is None:
            raise gr.Error("sign in to rate")
        if not item_id:
            raise gr.Error("nothing to rate")
        if not state.ws.exists():
            raise gr.Error("no store yet")
        try:
            def save(store):
                item = rating.find(store, item_id)
                row = rating.rating_row(name, item, {"harmless": harmless, "helpful": helpful,
                                                     "overall": overall}, preference)
                store_tables.add_rating(store, row)
                return row
            row = state.ws.write(save)
        except UdasaError as exc:
            raise gr.Error(str(exc)) from None
        return f"Saved ({time.strftime('%H:%M:%S')}): rating {row.id}."
    return submit


def bind_rate(state: AppState, c: dict[str, Any]) -> None:
    next_item = _rate_next_item(state)
    submit = _rate_submit(state)
    def skip(item_id, skipped):
        return [s for s in skipped if s != item_id] + ([item_id] if item_id else [])

    outs = [c["notice"], c["progress"], c["item"], c["item_id"], c["scores"], c["prefs"],
            c["harmless"], c["helpful"], c["overall"], c["preference"]]
    nxt_in = [c["mode"], c["skipped"]]
    c["_load"] = (next_item, nxt_in, outs)
    c["mode"].change(next_item, nxt_in, outs, api_visibility="private")
    c["submit"].click(submit, [c["item_id"], c["harmless"], c["helpful"], c["overall"],
                               c["preference"]], c["status"], api_name="rate",
                      concurrency_limit=None) \
        .success(next_item, nxt_in, outs, api_visibility="private")
    c["skip"].click(skip, [c["item_id"], c["skipped"]], c["skipped"], api_visibility="private") \
        .then(next_item, nxt_in, outs, api_visibility="private")


# Compare --------------------------------------------------------------------------------------
def compare_tab() -> dict[str, Any]:
    c: dict[str, Any] = {}
    c["notice"] = gr.HTML(elem_id="compare-notice")
    c["refresh"] = gr.Button("Refresh", size="sm", elem_id="compare-refresh")
    gr.Markdown("### Leaderboard (`udasa-eval run`): judge [95% CI] / human")
    c["board"] = gr.Dataframe(interactive=False, elem_id="leaderboard", wrap=True)
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
    with gr.Row():
        c["table3_table"] = gr.Dataframe(interactive=False, wrap=True, elem_id="table3-table",
                                         scale=3)
        c["table3_plot"] = gr.Plot(label="u against mean human overall", scale=2)
    gr.Markdown("#### Inter-annotator agreement")
    c["agreement"] = gr.Dataframe(interactive=False, elem_id="agreement")
    return c


def _compare_overview(state: AppState) -> Callable:
    """Compare: the leaderboard, its charts, the task and run choices and the premise tests."""
    def overview(request: gr.Request):
        nothing = [gr.update(value=None, visible=False), gr.update(value=[], visible=False),
                   gr.update(choices=[], value=None), gr.update(choices=[], value=None), "",
                   gr.update(value=[], visible=False)]
        if lock := state.locked(request):
            return [lock, *nothing]
        with state.ws.read() as store:
            if store is None:
                return [state.no_store(), *nothing]
            board = compare.leaderboard(store, as_rows(store_tables.ratings(store)))
            settings = compare.setting_note(store)
            charts = compare.leaderboard_charts(store, state.scratch)
            tasks = compare.tasks_and_methods(compare.results_of(store))
            runs = inspector.run_choices(store)
        premise, premise_charts = compare.premise_section(state.ws.path, state.scratch)
        notes = [settings]
        if board is None:
            notes.append(render.empty_state("No leaderboard yet.", "Evaluate models with:",
                                            PIPELINE_HINT[1:]))
        task = next(iter(tasks), None)
        return ["".join(notes), gr.update(value=board, visible=board is not None),
                gr.update(value=charts, visible=bool(charts)),
                gr.update(choices=labelled(list(tasks)), value=task),
                gr.update(choices=runs, value=runs[0][1] if runs else None), premise,
                gr.update(value=premise_charts, visible=bool(premise_charts))]
    return overview


def _compare_pair_test(state: AppState) -> Callable:
    """Compare: the paired test of two methods on one task."""
    @guarded(gr.update(choices=[], value=None), "")
    def pair_test(task, a, b, request: gr.Request):
        if not (task and a and b) or state.locked(request):
            return "", gr.update(choices=[], value=None), ""
        with state.ws.read() as store:
            if store is None:
                return state.no_store(), gr.update(choices=[], value=None), ""
            cmp = compare.compare(compare.results_of(store), task, a, b)
        labels = [(short(p), i) for i, p in enumerate(cmp.prompts)]
        return (f"<div class='udasa-prompt'>{render.esc(compare.comparison_text(cmp))}</div>",
                gr.update(choices=labels, value=0 if labels else None), "")
    return pair_test


def _compare_show_pair(state: AppState) -> Callable:
    """Compare: two methods' replies to one prompt side by side."""
    def show_pair(task, a, b, index, request: gr.Request):
        if not (task and a and b) or index is None or state.locked(request):
            return ""
        with state.ws.read() as store:
            if store is None:
                return state.no_store()
            cmp = compare.compare(compare.results_of(store), task, a, b)
        if not 0 <= int(index) < len(cmp.rows):
            return ""
        row = cmp.rows[int(index)]
        (out_a, out_b), (va, vb) = row.outputs, row.values
        return render.side_by_side(row.prompt, [
            (f"{a} · {cmp.metric} {render.num(va, 2)}", out_a),
            (f"{b} · {cmp.metric} {render.num(vb, 2)}", out_b)])
    return show_pair


def bind_compare(state: AppState, c: dict[str, Any]) -> None:
    overview = _compare_overview(state)
    def methods(task, request: gr.Request):
        with state.ws.read() as store:
            names = (compare.tasks_and_methods(compare.results_of(store)).get(task, [])
                     if store is not None and task and not state.locked(request) else [])
        return (gr.update(choices=labelled(names), value=names[0] if names else None),
                gr.update(choices=labelled(names), value=names[1] if len(names) > 1 else None))

    pair_test = _compare_pair_test(state)
    show_pair = _compare_show_pair(state)
    def show_table3(run_id, request: gr.Request):
        if state.locked(request):
            return "", None, None, None
        with state.ws.read() as store:
            if store is None or not run_id:
                return "", None, None, None
            ratings = as_rows(store_tables.ratings(store))
            table = compare.table3(store, run_id, ratings)
        return (compare.table3_stats(table), compare.for_display(table),
                compare.table3_figure(table), compare.for_display(compare.agreement(ratings)))

    private = {"api_visibility": "private"}
    c["_load"] = (overview, None, [c["notice"], c["board"], c["charts"], c["task"],
                                   c["table3_run"], c["premise"], c["premise_charts"]])
    c["refresh"].click(*c["_load"], **private)
    c["task"].change(methods, c["task"], [c["a"], c["b"]], **private)
    for dd in (c["a"], c["b"]):
        dd.change(pair_test, [c["task"], c["a"], c["b"]], [c["test"], c["sample"], c["pair"]],
                  **private)
    c["sample"].change(show_pair, [c["task"], c["a"], c["b"], c["sample"]], c["pair"], **private)
    c["table3_run"].change(show_table3, c["table3_run"],
                           [c["table3_stats"], c["table3_table"], c["table3_plot"],
                            c["agreement"]], **private)


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

    c["_load"] = (describe, None, c["notice"])
    c["go"].click(run, c["fmt"], c["file"], api_visibility="private")


# the whole app --------------------------------------------------------------------------------
def header(state: AppState) -> Callable:
    def hello(request: gr.Request):
        name = state.user(request)
        if name is None:
            return (f"Workspace `{state.ws.path}` · sign-in off (local use; rating needs "
                    "`--users`)")
        role = " (admin)" if state.is_admin(request) else ""
        return f"Workspace `{state.ws.path}` · signed in as **{name}**{role} · [log out](/logout)"

    return hello


def views(state: AppState) -> Callable:
    """Annotators get Rate and Export only (the other views would unblind them)."""

    def show(request: gr.Request):
        admin = state.is_admin(request)
        return gr.update(visible=admin), gr.update(visible=admin)

    return show


def build(workspace: str | Path, users: Mapping[str, User] | None = None
          ) -> tuple[gr.Blocks, AppState]:
    """The app over `workspace`; sign-in is on when `users` is non-empty."""
    state = AppState(workspace, users)
    with gr.Blocks(title="UDASA", analytics_enabled=False) as demo:
        gr.Markdown("## UDASA: uncertainty inspector, human rating and comparison")
        who = gr.Markdown(elem_id="who")
        # with sign-in, Inspector and Compare stay hidden until the user turns out to be an
        # admin (see `views`), and everyone lands on Rate
        admin_views = not state.auth_on
        with gr.Tabs(selected="inspector" if admin_views else "rate"):
            with gr.Tab("Inspector", id="inspector", visible=admin_views) as ins_tab:
                ins = inspector_tab()
            with gr.Tab("Rate", id="rate"):
                rate = rate_tab()
            with gr.Tab("Compare", id="compare", visible=admin_views) as cmp_tab:
                cmp = compare_tab()
            with gr.Tab("Export", id="export"):
                exp = export_tab()
        bind_inspector(state, ins)
        bind_rate(state, rate)
        bind_compare(state, cmp)
        bind_export(state, exp)
        demo.load(header(state), None, who, api_visibility="private")
        demo.load(views(state), None, [ins_tab, cmp_tab], api_visibility="private")
        for tab in (ins, rate, cmp, exp):
            demo.load(*tab["_load"], api_visibility="private")
    return demo, state


def theme() -> gr.themes.Base:
    """The default look with system fonts: no font is fetched from the internet."""
    return gr.themes.Default(font=["system-ui", "Segoe UI", "Roboto", "sans-serif"],
                             font_mono=["ui-monospace", "Menlo", "Consolas", "monospace"])


def launch(demo: gr.Blocks, state: AppState, host: str = "127.0.0.1", port: int = 7860,
           block: bool = True, quiet: bool = False):
    from app.auth import make_auth, sign_in_middleware

    demo.queue(default_concurrency_limit=4)
    return demo.launch(
        server_name=host, server_port=port, share=False, inbrowser=False,
        auth=make_auth(state.users) if state.auth_on else None,
        auth_message="UDASA annotators: sign in with the name and password you were given.",
        prevent_thread_lock=not block, show_error=False, quiet=quiet, ssr_mode=False,
        mcp_server=False, run_history=False, theme=theme(), css=render.CSS,
        footer_links=["api", "settings"], max_threads=40,
        app_kwargs={"middleware": sign_in_middleware()})  # client address for the throttle
