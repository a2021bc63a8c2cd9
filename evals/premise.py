"""The method's premise, tested on a run: does lower uncertainty mean a better reply?

For every response of a UDASA run, the judge scores it (templates such as `harmless` and
`helpful`); we then report Spearman's rho between the judge score and the fused uncertainty u
and each axis (a negative rho supports the premise), with a 95% CI from a bootstrap over
prompts (responses to one prompt move together), and how often the chosen reply of each
preference pair beats the rejected one by the judge (Wilson CI, sign test). Judge failures are
left out and counted. Results go to `WORKSPACE/premise/<run>-<judge>.json`, which
`udasa-eval tables` and the app's Compare view read; `plot_premise` draws one as a figure.
"""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats as sps

from evals.stats import is_missing, proportion_ci, sign_test
from udasa.errors import ConfigError
from udasa.files import save_figure, write_json
from udasa.store import Store
from udasa.store_records import FusedScore, PreferencePair


def rank_correlation(groups: Sequence[int], x: Sequence[float], y: Sequence[float],
                     n_boot: int = 1000, seed: int = 0) -> dict[str, float]:
    """Spearman rho of x and y, its p-value, and a percentile CI resampling whole groups."""
    g, xs, ys = np.asarray(groups), np.asarray(x, float), np.asarray(y, float)
    if np.ptp(xs) == 0 or np.ptp(ys) == 0:  # a constant side ranks nothing
        nan = float("nan")
        return {"rho": nan, "low": nan, "high": nan, "p": nan, "n": len(xs),
                "prompts": len(np.unique(g))}
    rho, p = sps.spearmanr(xs, ys)
    ids = np.unique(g)
    members = [np.flatnonzero(g == i) for i in ids]

    def resampled(picks: np.ndarray) -> float:
        rows = np.concatenate([members[int(k)] for k in picks])
        return float(sps.spearmanr(xs[rows], ys[rows]).statistic)

    if len(ids) < 2:
        low = high = float("nan")
    else:
        ci = sps.bootstrap((np.arange(len(ids)),), resampled, vectorized=False,
                           n_resamples=n_boot, method="percentile",
                           random_state=np.random.default_rng(seed)).confidence_interval
        low, high = float(ci.low), float(ci.high)
    return {"rho": float(rho), "low": low, "high": high, "p": float(p), "n": len(xs),
            "prompts": len(ids)}


def pair_wins(chosen: Sequence[float], rejected: Sequence[float]) -> dict[str, Any]:
    """How often the judge scores the chosen reply above the rejected one (ties apart)."""
    test = sign_test(list(chosen), list(rejected))
    decided = [c > r for c, r in zip(chosen, rejected) if c != r]
    est = proportion_ci(decided) if decided else None
    return {"wins": test.wins, "losses": test.losses, "ties": test.ties, "n": len(chosen),
            "win_rate": est.mean if est else None, "low": est.low if est else None,
            "high": est.high if est else None, "p_sign": test.p_value}


def premise_stats(fused: Sequence[FusedScore], pairs: Sequence[PreferencePair],
                  scores: Mapping[str, float | None]) -> dict[str, Any]:
    """Correlations and pair wins from a run's fused rows, its pairs and judge scores by id."""
    kept = [f for f in fused if scores.get(f.response_id) is not None]
    groups = [f.prompt_id for f in kept]
    codes = {p: i for i, p in enumerate(dict.fromkeys(groups))}
    judged = [float(scores[f.response_id]) for f in kept]
    axes = {"u": [float(f.u) for f in kept]}
    for f in kept:
        for axis, value in f.components.items():
            axes.setdefault(axis, []).append(float(value))
    corr = {name: rank_correlation([codes[g] for g in groups], vals, judged)
            for name, vals in axes.items() if len(vals) == len(kept) and len(kept) >= 3}
    both = [(scores[p.chosen_id], scores[p.rejected_id]) for p in pairs
            if scores.get(p.chosen_id) is not None and scores.get(p.rejected_id) is not None]
    return {"responses": len(fused), "judged": len(kept), "failures": len(fused) - len(kept),
            "correlations": corr,
            "pairs": pair_wins([c for c, _ in both], [r for _, r in both]) if both else None}


def run_premise(store: Store, run_id: str, judge, template: str) -> dict[str, Any]:
    """Judge every response of `run_id` with `template` and compute :func:`premise_stats`."""
    fused = store.fused(run_id)
    if not fused:
        raise ConfigError(f"run {run_id}: no fused scores stored (run `udasa pairs` first)")
    prompts = {p.id: p.text for p in store.run_prompts(run_id)}
    texts = store.response_texts([f.response_id for f in fused])
    items = [{"prompt": prompts.get(f.prompt_id, ""), "response": texts[f.response_id]}
             for f in fused]
    verdicts = judge.judge(template, items)
    scores = {f.response_id: (v.score if v.ok else None) for f, v in zip(fused, verdicts)}
    result = premise_stats(fused, store.pairs(run_id), scores)
    return {"run_id": run_id, "judge": judge.label, "template": template} | result


def premise_stem(result: Mapping[str, Any]) -> str:
    """`<run12>-<judge>-<template>`: the file name of a result, without its suffix."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", f"{result['judge']}-{result['template']}").strip("-")
    return f"{str(result['run_id'])[:12]}-{slug}"


def write_premise(result: Mapping[str, Any], workspace: Path) -> Path:
    return write_json(workspace / "premise" / f"{premise_stem(result)}.json", result)


def read_premises(workspace: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text(encoding="utf-8"))
            for p in sorted((workspace / "premise").glob("*.json"))]


def rho_text(c: Mapping[str, Any]) -> str:
    """`-0.800 [-0.950, -0.400]`, or why there is no rho or no CI."""
    if is_missing(c["rho"]):
        return "undefined (one side is constant)"
    if is_missing(c["low"]) or is_missing(c["high"]):
        return f"{float(c['rho']):+.3f} [no CI]"
    return f"{float(c['rho']):+.3f} [{float(c['low']):+.3f}, {float(c['high']):+.3f}]"


def p_text(p: Any) -> str:
    return "—" if is_missing(p) else f"{float(p):.3g}"


def heading(result: Mapping[str, Any]) -> str:
    """`run 1a2b3c4d5e6f (UDASA), judge J, template harmless` (a data text: escape it)."""
    method = f" ({result['method']})" if result.get("method") else ""
    return (f"run {str(result['run_id'])[:12]}{method}, judge {result['judge']}, "
            f"template {result['template']}")


def wins_text(pw: Mapping[str, Any] | None) -> str:
    """The chosen-beats-rejected sentence of a result's `pairs`."""
    if not pw:
        return "Chosen beats rejected by the judge: no pair with both replies judged."
    rate = (f"{pw['win_rate']:.1f}% [{pw['low']:.1f}, {pw['high']:.1f}]"
            if pw["win_rate"] is not None else "undefined (all ties)")
    return (f"Chosen beats rejected by the judge: {rate} of decided pairs "
            f"({pw['wins']} wins, {pw['losses']} losses, {pw['ties']} ties; "
            f"sign test p = {p_text(pw['p_sign'])}).")


def premise_markdown(result: Mapping[str, Any], png: str | None = None) -> str:
    """One run's premise test as a markdown section (`png`: its figure, linked below it)."""
    lines = [(f"### Run {result['run_id'][:12]}: judge {result['judge']}, "
             f"template `{result['template']}`"), "",
             (f"{result['judged']} of {result['responses']} responses judged "
             f"({result['failures']} judge failures left out)."), "",
             "| uncertainty | Spearman rho with judge score [95% CI] | p | n |",
             "|---|---|---|---|"]
    for name, c in result["correlations"].items():
        lines.append(f"| {name} | {rho_text(c)} | {p_text(c['p'])} | {c['n']} |")
    if result.get("pairs"):
        lines += ["", wins_text(result["pairs"])]
    lines += ["", "A negative rho supports the premise (lower uncertainty, better reply).", ""]
    if png:
        lines += [f"![Premise: {heading(result)}]({png})", ""]
    return "\n".join(lines)


def premise_with_figure(result: Mapping[str, Any], out: Path) -> tuple[str, Path]:
    """Markdown and figure of a result for `tables.md`: the PNG is
    `<out>/premise-<run12>-<judge>-<template>.png`, linked as `<out name>/<png name>`."""
    png = plot_premise(result, out / f"premise-{premise_stem(result)}.png")
    return premise_markdown(result, f"{out.name}/{png.name}"), png


def _rho_panel(ax, corr: Mapping[str, Mapping[str, Any]]) -> None:
    """One row per uncertainty: rho as a point with its 95% CI; NaN rho drawn as nothing."""
    names, labels = list(corr), []
    ax.axvline(0, color="#57606a", linewidth=1, linestyle="--")
    ax.set_xlim(-1.05, 1.05)
    ax.set_xlabel("Spearman rho with the judge score [95% CI]\n"
                  "< 0: lower uncertainty, better reply (the premise)", fontsize=8)
    if not names:
        ax.set_yticks([])
        ax.text(0, 0.5, "fewer than 3 judged responses", ha="center", va="center",
                backgroundcolor="white")
        return
    for y, name in enumerate(names):
        c = corr[name]
        if is_missing(c["rho"]):
            labels.append(f"{name}\n(constant: no rho)")
            continue
        rho, ci = float(c["rho"]), not (is_missing(c["low"]) or is_missing(c["high"]))
        err = [[max(rho - float(c["low"]), 0.0)], [max(float(c["high"]) - rho, 0.0)]] \
            if ci else None
        color = "#1a7f37" if ci and float(c["high"]) < 0 else \
            "#cf222e" if ci and float(c["low"]) > 0 else "#4C72B0"
        ax.errorbar([rho], [y], xerr=err, fmt="o", color=color, ecolor="#333333",
                    capsize=4, markersize=7)
        ax.annotate(f"{rho:+.2f}", (rho, y), xytext=(0, 7), textcoords="offset points",
                    ha="center", fontsize=8)
        labels.append(f"{name}\nn={c['n']}" + ("" if ci else ", no CI"))
    ax.set_yticks(range(len(names)), labels, fontsize=8)
    ax.set_ylim(len(names) - 0.5, -0.5)


def _win_panel(ax, pw: Mapping[str, Any] | None) -> None:
    """The chosen reply's win rate over decided pairs, with its CI, against 50%."""
    ax.axhline(50, color="#57606a", linewidth=1, linestyle="--")
    ax.set_ylim(0, 105)
    ax.set_xticks([])
    ax.set_ylabel("chosen beats rejected (%)", fontsize=8)
    if not pw or pw["win_rate"] is None:
        ax.text(0, 50, "no decided\npair" if pw else "no judged\npair", ha="center",
                va="center", fontsize=8, backgroundcolor="white")
        ax.set_xlim(-1, 1)
        return
    rate = float(pw["win_rate"])
    err = [[rate - float(pw["low"])], [float(pw["high"]) - rate]]
    ax.bar([0], [rate], yerr=err, capsize=4, color="#4C72B0", width=0.6,
           error_kw={"ecolor": "#333333", "linewidth": 1.2})
    ax.set_xlim(-1, 1)
    ax.set_xlabel(f"{rate:.0f}% [{float(pw['low']):.0f}, {float(pw['high']):.0f}]\n"
                  f"of {pw['wins'] + pw['losses']} decided\n{pw['ties']} ties", fontsize=8)


def plot_premise(result: Mapping[str, Any], path: str | Path) -> Path:
    """The premise test as a PNG: rho per uncertainty with CI, and the pairs' win rate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    corr = result["correlations"]
    with matplotlib.rc_context({"text.parse_math": False}):  # names are data, not mathtext
        fig, (left, right) = plt.subplots(
            1, 2, figsize=(7.2, 1.6 + 0.55 * max(len(corr), 2)), dpi=120,
            gridspec_kw={"width_ratios": [5, 1]})
        try:
            _rho_panel(left, corr)
            _win_panel(right, result.get("pairs"))
            fig.suptitle(f"Does lower uncertainty mean a better reply?\n"
                         f"{textwrap.shorten(heading(result), 110, placeholder=' …')}\n"
                         f"{result['judged']} of {result['responses']} responses judged",
                         fontsize=9)
            fig.tight_layout()
            save_figure(fig, path)
        finally:
            plt.close(fig)
    return path
