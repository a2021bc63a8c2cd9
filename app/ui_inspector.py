"""The Inspector tab: a run's replies with their per-axis and fused uncertainty, re-fused under
other settings, and a typed prompt answered live by the run's model and scorers.

Programmatic updates run as one chain (pick a run -> its settings -> the view); only a
person's own input on a control (`select` of a dropdown's option: a dropdown also sends
`input` when it merely loses focus) re-runs the view, so no two views race. A setting that does
not validate leaves the cards as they were and says why in the status line.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import gradio as gr

from app import inspector, render
from app.state import PIPELINE_HINT, PRIVATE, AppState, short
from udasa.axes import axis_keys
from udasa.config import AXES
from udasa.errors import UdasaError

VIEW_KEYS = ("status", "meaning", "summary", "cards", "axes_plot", "hist")
CONTROL_KEYS = ("method", "temperature", "w_sem", "w_fact", "w_val", "axes", "mode",
                "thresholds", "stages")
GENERATE = "Generate and score"


def _settings_row(c: dict[str, Any]) -> None:
    with gr.Row():
        c["method"] = gr.Radio(["softmax", "fixed", "mean"], value="softmax", label="Fusion",
                               elem_id="method")
        c["temperature"] = gr.Slider(0.05, 5.0, value=1.0, step=0.05,
                                     label="Temperature T (softmax)", elem_id="temperature")
        c["axes"] = gr.CheckboxGroup(list(axis_keys()), value=list(AXES), label="Axes",
                                     elem_id="axes")
    with gr.Row():
        for axis in ("sem", "fact", "val"):
            c[f"w_{axis}"] = gr.Slider(0, 1, value=1 / 3, step=0.01, interactive=False,
                                       label=f"weight {axis} (fixed fusion only)",
                                       elem_id=f"w-{axis}")
        c["mode"] = gr.Radio(["fixed", "quantile"], value="fixed", label="Thresholds",
                             elem_id="mode")
        c["thresholds"] = gr.Textbox(value="0.4, 0.7", label="τ (fixed mode: increasing, "
                                     "comma-separated, in [0, 1])", elem_id="thresholds")
        c["stages"] = gr.Number(value=3, minimum=1, maximum=10, precision=0, visible=False,
                                label="Stages K (quantile mode: cuts at the Δu quantiles)",
                                elem_id="stages")
    c["meaning"] = gr.Markdown(elem_id="thresholds-meaning")


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
        c["generate"] = gr.Button(GENERATE, elem_id="generate", scale=1)
    _settings_row(c)
    c["summary"] = gr.Markdown(elem_id="summary")
    c["cards"] = gr.HTML(elem_id="cards")
    with gr.Row():
        c["axes_plot"] = gr.Plot(label="U_sem, U_fact, U_val and u per response",
                                 elem_id="axes-plot")
        c["hist"] = gr.Image(label="Δu over the whole run, with the thresholds", type="filepath",
                             elem_id="delta-hist", height=380)
    c["live"] = gr.State(None)
    return c


def controls_of(cfg) -> list[Any]:
    """The controls' values for a run's config (CONTROL_KEYS order)."""
    f, cur = cfg.fusion, cfg.curriculum
    return [f.method, f.temperature, f.weights.get("sem", 0.0), f.weights.get("fact", 0.0),
            f.weights.get("val", 0.0), list(f.axes), cur.mode,
            ", ".join(f"{t:g}" for t in cur.thresholds), len(cur.thresholds) + 1]


def enabled(method: str, mode: str) -> list[Any]:
    """Which controls apply: T under softmax, weights under fixed, τ or K by threshold mode."""
    weights = gr.update(interactive=method == "fixed")
    return [gr.update(interactive=method == "softmax"), weights, weights, weights,
            gr.update(visible=mode != "quantile"), gr.update(visible=mode == "quantile")]


def parse_thresholds(text: str) -> list[float]:
    try:
        return [float(x) for x in str(text).replace(";", ",").split(",") if x.strip()]
    except ValueError:
        raise UdasaError(f"thresholds: expected numbers separated by commas, got {text!r}") \
            from None


def _runs(state: AppState) -> Callable:
    """The run dropdown's choices (admins only)."""
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


def _pick_run(state: AppState) -> Callable:
    """A run's prompts and its fusion and curriculum settings."""
    def pick_run(run_id, request: gr.Request):
        nothing = [gr.update(choices=[], value=None), *[gr.skip()] * len(CONTROL_KEYS),
                   *[gr.skip()] * 6]
        with state.ws.read() as store:
            if (state.locked(request) or store is None or not run_id
                    or store.get_run(run_id) is None):
                return nothing
            run = inspector.load_run(store, run_id)
        prompts = [(short(text), pid) for pid, text in run.prompts.items()]
        first = prompts[0][1] if prompts else None
        return [gr.update(choices=prompts, value=first), *controls_of(run.cfg),
                *enabled(run.cfg.fusion.method, run.cfg.curriculum.mode)]
    return pick_run


def _view(state: AppState, run_id, prompt_id, live, values: list) -> tuple:
    """The view's outputs (VIEW_KEYS) for one prompt under the controls' values."""
    method, temperature, w_sem, w_fact, w_val, axes, mode, thresholds, stages = values
    with state.ws.read() as store:
        if store is None:
            return (state.no_store(), *[""] * 3, None, None)
        run = inspector.load_run(store, run_id)
    cfg = inspector.settings(run.cfg, method, temperature,
                             {"sem": w_sem, "fact": w_fact, "val": w_val}, axes or [], mode,
                             parse_thresholds(thresholds), stages or 0)
    if prompt_id:
        v = inspector.view(run, cfg, prompt_id)
    elif live:
        v = inspector.view(run, cfg, live=(live["prompt"], [inspector.ScoredResponse(**r)
                                                           for r in live["replies"]]))
    else:
        return (render.empty_state("Pick a stored prompt or type a new one."), "", "", "",
                None, None)
    note = "" if any(card["scores"] for card in v.cards) else render.empty_state(
        "These responses have no scores yet.", "Score them with:",
        ["udasa score --workspace DIR"])
    hist = inspector.histogram_png(v, state.scratch, run.name)
    cards = render.prompt_block(v.prompt) + render.reply_cards(v.cards, v.chosen, v.rejected)
    meaning = inspector.threshold_meaning(mode, v.thresholds, run.cfg.curriculum.mode,
                                          len(v.run_deltas))
    return (note, meaning, inspector.summary_markdown(v, cfg), cards, inspector.axes_figure(v),
            str(hist) if hist else None)


def _show(state: AppState) -> Callable:
    """One prompt's replies, per-axis and fused u, under the chosen settings; a setting that
    does not validate keeps the view and says why."""
    def show(run_id, prompt_id, live, method, temperature, w_sem, w_fact, w_val, axes, mode,
             thresholds, stages, request: gr.Request):
        values = [method, temperature, w_sem, w_fact, w_val, axes, mode, thresholds, stages]
        if lock := state.locked(request):
            return (lock, "", "", "", None, None)
        if not run_id:
            return (state.no_store() if not state.ws.exists() else "", "", "", "", None, None)
        try:
            return _view(state, run_id, prompt_id, live, values)
        except UdasaError as exc:
            return (render.empty_state(f"Not applied: {exc}",
                                       "The cards below still show the last valid settings."),
                    *[gr.skip()] * 5)
    return show


def _generate(state: AppState) -> Callable:
    """A new prompt answered live by the run's model and scorers."""
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


def _busy():
    """While a typed prompt is answered: the button off, the old view cleared."""
    return (gr.update(interactive=False, value="Generating…"),
            render.empty_state("Generating replies with the run's model, then scoring them…"),
            "", "", "", None, None)


def bind_inspector(state: AppState, c: dict[str, Any]) -> None:
    controls = [c[k] for k in CONTROL_KEYS]
    view_out = [c[k] for k in VIEW_KEYS]
    toggled = [c["temperature"], c["w_sem"], c["w_fact"], c["w_val"], c["thresholds"],
               c["stages"]]
    show = _show(state)
    view_in = [c["run"], c["prompt"], c["live"], *controls]
    common = {**PRIVATE, "concurrency_id": "inspector-view", "concurrency_limit": 1,
              "show_progress": "minimal"}
    pick = (_pick_run(state), c["run"], [c["prompt"], *controls, *toggled])
    c["_load"] = lambda demo: demo.load(_runs(state), None, [c["run"], c["status"]], **PRIVATE) \
        .then(*pick, **PRIVATE).then(show, view_in, view_out, **common)
    c["run"].select(*pick, **PRIVATE).then(show, view_in, view_out, **common)
    c["prompt"].select(show, view_in, view_out, **common)
    for key in ("method", "mode"):
        c[key].input(enabled, [c["method"], c["mode"]], toggled, **PRIVATE)
    for key in ("method", "temperature", "w_sem", "w_fact", "w_val", "axes", "mode", "stages"):
        c[key].input(show, view_in, view_out, **common)
    for event in (c["thresholds"].submit, c["thresholds"].blur):
        event(show, view_in, view_out, **common)
    for event in (c["generate"].click, c["new_prompt"].submit):
        started = event(_busy, None, [c["generate"], c["status"], c["meaning"], c["summary"],
                                      c["cards"], c["axes_plot"], c["hist"]], **PRIVATE)
        answered = started.then(_generate(state), [c["run"], c["new_prompt"]],
                                [c["live"], c["prompt"]], concurrency_limit=1, **PRIVATE)
        answered.success(show, view_in, view_out, **common)
        answered.failure(show, view_in, view_out, **common)  # the stored prompt's view again
        answered.then(lambda: gr.update(interactive=True, value=GENERATE), None,
                      c["generate"], **PRIVATE)
