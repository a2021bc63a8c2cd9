"""Inspector logic: a run's replies with their stored uncertainties, re-fused on demand.

Re-fusion with another temperature, weights, axes or thresholds uses the stored per-axis
scores (`udasa.pairs.fuse_and_pair`, the code of `udasa pairs`, and `udasa.curriculum`):
nothing is generated again. A typed prompt is answered live by the run's generator and
scorers (loaded once per process) and is not written to the store, so it never changes a
run's pairs.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from app.render import plain
from udasa.axes import axis_keys
from udasa.config import CurriculumConfig, FusionConfig, RunConfig, from_dict
from udasa.curriculum import Stage, assign_stage, make_stages, resolve_thresholds
from udasa.errors import ConfigError, UdasaError
from udasa.pairs import Pair, ScoredResponse, fuse_and_pair
from udasa.plots import delta_histogram
from udasa.records import content_key
from udasa.store import Store
from udasa.store_records import Run

log = logging.getLogger(__name__)


@dataclass
class RunData:
    run_id: str
    name: str
    cfg: RunConfig
    prompts: dict[str, str]  # prompt id -> text, in run order
    replies: dict[str, list[ScoredResponse]]  # prompt id -> its responses
    thresholds: list[float] | None = None  # what `udasa stages` resolved, when it ran


@dataclass
class RunFusion:
    """A run (or one prompt) fused again under some settings, from its stored scores."""

    u: dict[str, float]
    weights: dict[str, dict[str, float]]
    pairs: dict[str, list[Pair]]
    drops: dict[str, Counter[str]]  # per prompt: why replies or pairs were left out

    @property
    def deltas(self) -> list[float]:
        return [p.delta for ps in self.pairs.values() for p in ps]


def run_choices(store: Store) -> list[tuple[str, str]]:
    """(label, run id) of every UDASA run, newest first. A baseline's run (or any run whose
    config is not a UDASA run config) has no uncertainty scores to inspect: its replies are in
    Rate and Compare."""
    return [(plain(f"{r.name} · {r.id} · {r.status} · {r.updated_at}"), r.id)
            for r in store.runs() if _is_udasa_run(r)]


def _is_udasa_run(run: Run) -> bool:
    from udasa.baselines.common import BASELINE_RUN_PREFIX

    return not run.name.startswith(BASELINE_RUN_PREFIX) and readable_config(run) is not None


def run_config(run: Run) -> RunConfig:
    return from_dict(RunConfig, run.config)


def readable_config(run: Run) -> RunConfig | None:
    """The run's config as a UDASA run config; None when it is not one (a baseline's, a
    foreign tool's), logged at debug level."""
    try:
        return run_config(run)
    except ConfigError as exc:
        log.debug("run %s: not a UDASA run config (%s)", run.id, exc)
        return None


def load_run(store: Store, run_id: str) -> RunData:
    """The run's prompts and responses with the per-axis scores its scorers stored."""
    from udasa.keys import gen_key_of
    from udasa.pipeline import stored_scores

    run = store.get_run(run_id)
    if run is None:
        raise UdasaError(f"run {run_id} is not in this store")
    cfg = run_config(run)
    prompts = {p.id: p.text for p in store.run_prompts(run_id)}
    rows = store.responses(gen_key_of(cfg), list(prompts))
    scores = stored_scores(store, run, [r.id for r in rows])
    replies: dict[str, list[ScoredResponse]] = {pid: [] for pid in prompts}
    for r in rows:
        replies[r.prompt_id].append(ScoredResponse(r.id, r.text, scores[r.id], r.sample_index))
    return RunData(run_id, run.name, cfg, prompts, replies, run.summary.get("thresholds"))


def settings(cfg: RunConfig, method: str, temperature: float, weights: dict[str, float],
             axes: list[str], mode: str, thresholds: list[float], stages: int = 3) -> RunConfig:
    """The run's config with other fusion / curriculum settings, validated (ConfigError).

    `thresholds` are used in fixed mode; quantile mode cuts the run's deltas into `stages`
    stages at the quantiles i/K (`udasa.curriculum.resolve_thresholds` reads only how many
    thresholds there are, so they are written as those quantile levels)."""
    chosen = [a for a in axis_keys() if a in axes]
    if mode == "quantile":
        k = int(stages)
        if not 1 <= k <= 10:
            raise ConfigError(f"stages: 1 to 10 in quantile mode, got {stages}")
        thresholds = [i / k for i in range(1, k)]
    fusion = FusionConfig(method=method, temperature=float(temperature),
                          weights={a: float(w) for a, w in weights.items()}, axes=chosen)
    curriculum = dataclasses.replace(cfg.curriculum, mode=mode,
                                     thresholds=[float(t) for t in thresholds])
    return dataclasses.replace(cfg, fusion=fusion, curriculum=curriculum).validate()


def fuse_again(replies: dict[str, list[ScoredResponse]], cfg: RunConfig) -> RunFusion:
    """Eq. 5-7 over stored scores: u and weights per reply, then the pairs of each prompt."""
    out = RunFusion({}, {}, {}, {})
    for pid, rs in replies.items():
        fused = fuse_and_pair(pid, rs, cfg.fusion, cfg.pairs.rejected, cfg.seed,
                              out.drops.setdefault(pid, Counter()), cfg.pairs.selection)
        out.u |= fused.u
        out.weights |= fused.weights
        out.pairs[pid] = fused.pairs
    return out


def stages_for(deltas: list[float], curriculum: CurriculumConfig) -> tuple[list[float],
                                                                          list[Stage]]:
    thresholds = resolve_thresholds(curriculum, deltas)
    return thresholds, make_stages(thresholds)


@dataclass
class View:
    """Everything the inspector shows for one prompt under one setting."""

    prompt: str
    cards: list[dict[str, Any]]
    chosen: set[str]
    rejected: set[str]
    pairs: list[tuple[Pair, Stage]]
    thresholds: list[float]
    run_deltas: list[float]
    notes: list[str]


def view(run: RunData, cfg: RunConfig, prompt_id: str | None = None,
         live: tuple[str, list[ScoredResponse]] | None = None) -> View:
    """One stored prompt (`prompt_id`) or a live one (`live` = (text, replies)) of `run`.

    Thresholds come from the whole run's deltas under `cfg` (quantile mode moves them), so a
    live prompt's pair is staged as it would be among the run's pairs.
    """
    fused = fuse_again(run.replies, cfg)
    thresholds, stages = stages_for(fused.deltas, cfg.curriculum)
    if live is not None:
        prompt, replies = live
        one, key = fuse_again({"live": replies}, cfg), "live"
    elif prompt_id in run.prompts:
        prompt, replies = run.prompts[prompt_id], run.replies[prompt_id]
        one, key = fused, prompt_id
    else:
        raise UdasaError("pick a prompt of this run")
    pairs, u, weights, drops = one.pairs[key], one.u, one.weights, one.drops[key]
    cards = [{"response_id": r.response_id, "index": r.index, "text": r.text,
              "scores": r.scores, "weights": weights.get(r.response_id, {}),
              "u": u.get(r.response_id)} for r in sorted(replies, key=lambda r: r.index)]
    notes = [f"{n} × {why}" for why, n in drops.items()]
    return View(prompt, cards, {p.chosen.response_id for p in pairs},
                {p.rejected.response_id for p in pairs},
                [(p, stages[assign_stage(p.delta, stages) - 1]) for p in pairs],
                thresholds, fused.deltas, notes)


def _fusion_text(f: FusionConfig) -> str:
    if f.method == "softmax":
        return f"softmax, T = {f.temperature:g} (Eq. 5: weights differ per reply)"
    if f.method == "mean":
        return "mean (each axis 1/" + str(len(f.axes)) + ")"
    total = sum(f.weights.get(a, 0.0) for a in f.axes) or 1.0
    return "fixed weights " + ", ".join(f"{a} {f.weights.get(a, 0.0) / total:.3f}"
                                        for a in f.axes) + " (normalised to sum 1)"


REJECTED = {"random": "the rejected reply is drawn at random from the other replies "
                      "(pairs.rejected: random, seeded by the run's seed and the prompt), so "
                      "it need not have the highest u",
            "max": "the rejected reply is the one with the highest u (pairs.rejected: max)",
            "all": "every other reply is rejected against the chosen one (pairs.rejected: all)"}


def summary_markdown(v: View, cfg: RunConfig) -> str:
    """Fusion (with the weights the cards use), the thresholds, how pairs are drawn, and each
    pair's delta and stage."""
    lines = [f"**Fusion:** {_fusion_text(cfg.fusion)} over {', '.join(cfg.fusion.axes)} · "
             f"**thresholds** ({cfg.curriculum.mode}): " + (", ".join(
                 f"τ{i} = {t:.3f}" for i, t in enumerate(v.thresholds, 1)) or "none"),
             f"**Pairs:** the chosen reply has the lowest u; {REJECTED[cfg.pairs.rejected]}."]
    if not v.pairs:
        lines.append("**No pair** for this prompt" + (f" ({'; '.join(v.notes)})" if v.notes
                                                       else "") + ".")
    for pair, stage in v.pairs:
        lines.append(f"**Δu = {pair.delta:.4f}** (u chosen {pair.chosen.u:.4f}, rejected "
                     f"{pair.rejected.u:.4f}) → **stage {stage.index} ({stage.name})**")
    return "\n\n".join(lines)


def threshold_meaning(mode: str, thresholds: list[float], run_mode: str,
                      n_deltas: int) -> str:
    """What the thresholds mean in `mode`, and which mode the run itself was staged in."""
    stages = make_stages(thresholds)
    cuts = ", ".join(f"τ{i} = {t:.3f}" for i, t in enumerate(thresholds, 1)) or "none"
    if mode == "quantile":
        head = (f"**Quantile mode:** the {len(stages)} stages cut the run's {n_deltas} Δu "
                f"values at their quantiles {', '.join(f'{i}/{len(stages)}' for i in range(1, len(stages)))} "
                f"(each stage gets about as many pairs): {cuts}. Only the number of stages "
                "is chosen; the thresholds follow from the run's Δu.")
    else:
        head = (f"**Fixed mode:** the typed thresholds split Δu (u rejected − u chosen) into "
                f"{len(stages)} stages: {cuts}.")
    order = "; ".join(f"stage {s.index} ({s.name}): {_bounds(s)}" for s in stages)
    run = (f" This run was staged in **{run_mode}** mode." if run_mode else "")
    return f"{head} {order}; training goes from stage 1 to stage {len(stages)}.{run}"


def _bounds(stage: Stage) -> str:
    lo, hi = stage.lo, stage.hi
    if lo == float("-inf") and hi == float("inf"):
        return "every pair"
    if lo == float("-inf"):
        return f"Δu < {hi:.3f}"
    if hi == float("inf"):
        return f"Δu ≥ {lo:.3f}"
    return f"{lo:.3f} ≤ Δu < {hi:.3f}"


def axes_figure(v: View) -> Figure:
    """Grouped bars of U_sem, U_fact, U_val per reply, u as a black marker."""
    fig, ax = plt.subplots(figsize=(6.4, 3.2), dpi=100)
    n, width = len(v.cards), 0.25
    colours = {"sem": "#4C72B0", "fact": "#DD8452", "val": "#55A868"}  # others: the cycle
    for k, axis in enumerate(axis_keys()):
        ax.bar([i + (k - 1) * width for i in range(n)],
               [c["scores"].get(axis, 0.0) for c in v.cards], width, label=f"U_{axis}",
               color=colours.get(axis))
    us = [(i, c["u"]) for i, c in enumerate(v.cards) if c["u"] is not None]
    if us:
        ax.scatter([i for i, _ in us], [x for _, x in us], color="black", marker="D", zorder=3,
                   label="u")
    labels = []
    for c in v.cards:
        tag = (" ✓" if c["response_id"] in v.chosen else
               " ✗" if c["response_id"] in v.rejected else "")
        labels.append(f"#{c['index'] + 1}{tag}")
    ax.set_xticks(range(n), labels)
    ax.set_ylim(0, 1.25)
    ax.set_yticks([0, 0.25, 0.5, 0.75, 1.0])
    ax.set_ylabel("uncertainty")
    ax.legend(fontsize=8, ncol=4, loc="upper center", frameon=False)
    fig.tight_layout()
    plt.close(fig)
    return fig


def histogram_png(v: View, out_dir: Path, run_name: str) -> Path | None:
    """The run's Δu histogram with the current thresholds (udasa.plots), content-keyed."""
    if not v.run_deltas:
        return None
    key = content_key(json.dumps([run_name, v.run_deltas, v.thresholds]))
    path = out_dir / f"delta_{key}.png"
    if not path.exists():
        with matplotlib.rc_context({"text.parse_math": False}):  # a `$` in a name is text
            delta_histogram(v.run_deltas, v.thresholds, path,
                            title=f"{plain(run_name)}: Δu over {len(v.run_deltas)} pairs")
    return path


# live generation ------------------------------------------------------------------------
_models: dict[str, Any] = {}
_lock = threading.Lock()


def _cached(key: str, make):
    with _lock:
        if key not in _models:
            _models[key] = make()
        return _models[key]


def generate_live(cfg: RunConfig, prompt: str) -> list[ScoredResponse]:
    """N responses from the run's generator, scored by the run's three scorers (not stored)."""
    from udasa.generators import make_generator
    from udasa.keys import prompt_seed
    from udasa.pipeline import make_scorers

    prompt = prompt.strip()
    if not prompt:
        raise UdasaError("type a prompt first")
    gen_cfg = cfg.generation
    generator = _cached("gen:" + json.dumps(dataclasses.asdict(gen_cfg), sort_keys=True),
                        lambda: make_generator(gen_cfg))
    with _lock:  # one generation at a time: the model is shared
        texts = generator.generate(prompt, gen_cfg.n, prompt_seed(cfg.seed, content_key(prompt)))
    scores: list[dict[str, float]] = [{} for _ in texts]
    scorers = _cached("score:" + json.dumps(dataclasses.asdict(cfg.scoring), sort_keys=True),
                      lambda: make_scorers(cfg.scoring))
    for axis, scorer in scorers.items():
        with _lock:
            (scored,) = scorer.score([(prompt, texts)])
        for s, one in zip(scores, scored):
            s[axis] = one.value
    return [ScoredResponse(content_key("live", prompt, str(i), t), t, s, i)
            for i, (t, s) in enumerate(zip(texts, scores))]
