"""The method's premise, tested on a run: does lower uncertainty mean a better reply?

For every response of a UDASA run, the judge scores it (templates such as `harmless` and
`helpful`). The method only ever compares replies to the same prompt, so the headline is
within-prompt: for each prompt, Spearman's rho between the judge score and the fused
uncertainty u (and each axis) over its replies, averaged over prompts, with a 95% CI and p from
a bootstrap over prompts (a negative mean supports the premise); and how often the chosen reply
of each preference pair beats the rejected one by the judge (Wilson CI, sign test). The pooled
rho over all replies, which also mixes differences between prompts, is a secondary figure; its
CI and p come from a bootstrap that resamples whole prompts (replies of one prompt are not
independent). Judge failures are left out and counted. Results go to `WORKSPACE/premise/<run>-<judge>.json`, which
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

from evals.stats import bootstrap_mean, is_missing, proportion_ci, sign_test
from udasa.errors import ConfigError
from udasa.files import save_figure, write_json
from udasa.store import Store
from udasa.store_records import FusedScore, PreferencePair


def _boot_p(draws: np.ndarray) -> float:
    """Two-sided bootstrap p of "the statistic is 0": 2 min(P*(<= 0), P*(>= 0)), +1 corrected."""
    draws = draws[np.isfinite(draws)]
    if not len(draws):
        return float("nan")
    tail = min(int(np.sum(draws <= 0.0)), int(np.sum(draws >= 0.0)))
    return min(1.0, 2.0 * (tail + 1) / (len(draws) + 1))


def rank_correlation(groups: Sequence[int], x: Sequence[float], y: Sequence[float],
                     n_boot: int = 1000, seed: int = 0) -> dict[str, float]:
    """The pooled Spearman rho of x and y over all replies, with a percentile CI and a p-value
    from a bootstrap that resamples whole groups (prompts), never single replies."""
    g, xs, ys = np.asarray(groups), np.asarray(x, float), np.asarray(y, float)
    nan = float("nan")
    ids = np.unique(g)
    if np.ptp(xs) == 0 or np.ptp(ys) == 0:  # a constant side ranks nothing
        return {"rho": nan, "low": nan, "high": nan, "p": nan, "n": len(xs),
                "prompts": len(ids)}
    rho = float(sps.spearmanr(xs, ys).statistic)
    members = [np.flatnonzero(g == i) for i in ids]

    def resampled(picks: np.ndarray) -> float:
        rows = np.concatenate([members[int(k)] for k in picks])
        return float(sps.spearmanr(xs[rows], ys[rows]).statistic)

    low = high = p = nan
    if len(ids) >= 2:
        res = sps.bootstrap((np.arange(len(ids)),), resampled, vectorized=False,
                            n_resamples=n_boot, method="percentile",
                            rng=np.random.default_rng(seed))
        low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
        p = _boot_p(np.asarray(res.bootstrap_distribution))
    return {"rho": rho, "low": low, "high": high, "p": p, "n": len(xs), "prompts": len(ids)}


def within_prompt(groups: Sequence[int], x: Sequence[float], y: Sequence[float],
                  n_boot: int = 2000, seed: int = 0) -> dict[str, float]:
    """The mean over prompts of Spearman's rho of x and y among each prompt's replies, with a
    percentile CI and p from a bootstrap over prompts. Prompts with fewer than two replies or
    a constant side (no ranking) are left out and counted (`undefined`)."""
    g, xs, ys = np.asarray(groups), np.asarray(x, float), np.asarray(y, float)
    rhos, undefined = [], 0
    for i in np.unique(g):
        rows = g == i
        if rows.sum() < 2 or np.ptp(xs[rows]) == 0 or np.ptp(ys[rows]) == 0:
            undefined += 1
            continue
        rhos.append(float(sps.spearmanr(xs[rows], ys[rows]).statistic))
    nan = float("nan")
    out = {"mean_rho": nan, "low": nan, "high": nan, "p": nan, "prompts": len(rhos),
           "undefined": undefined, "n": len(xs)}
    if not rhos:
        return out
    out["mean_rho"] = float(np.mean(rhos))
    if len(rhos) >= 2:
        res = bootstrap_mean(np.asarray(rhos), n_boot, seed)
        out["low"], out["high"] = (float(res.confidence_interval.low),
                                   float(res.confidence_interval.high))
        out["p"] = _boot_p(np.asarray(res.bootstrap_distribution))
    return out


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
    codes_of = [codes[g] for g in groups]
    usable = {name: vals for name, vals in axes.items()
              if len(vals) == len(kept) and len(kept) >= 3}
    corr = {name: rank_correlation(codes_of, vals, judged) for name, vals in usable.items()}
    within = {name: within_prompt(codes_of, vals, judged) for name, vals in usable.items()}
    both = [(scores[p.chosen_id], scores[p.rejected_id]) for p in pairs
            if scores.get(p.chosen_id) is not None and scores.get(p.rejected_id) is not None]
    return {"responses": len(fused), "judged": len(kept), "failures": len(fused) - len(kept),
            "within_prompt": within, "correlations": corr,
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


def rho_text(c: Mapping[str, Any] | None, key: str = "rho") -> str:
    """`-0.800 [-0.950, -0.400]`, or why there is no rho or no CI."""
    if c is None:
        return "—"
    if is_missing(c[key]):
        return "undefined (one side is constant)"
    if is_missing(c["low"]) or is_missing(c["high"]):
        return f"{float(c[key]):+.3f} [no CI]"
    return f"{float(c[key]):+.3f} [{float(c['low']):+.3f}, {float(c['high']):+.3f}]"


def p_text(p: Any) -> str:
    return "—" if is_missing(p) else f"{float(p):.3g}"


def heading(result: Mapping[str, Any]) -> str:
    """`run 1a2b3c4d5e6f (UDASA), judge J, template harmless` (a data text: escape it)."""
    method = f" ({result['method']})" if result.get("method") else ""
    return (f"run {str(result['run_id'])[:12]}{method}, judge {result['judge']}, "
            f"template {result['template']}")


def _rate_text(pw: Mapping[str, Any]) -> str:
    return (f"{pw['win_rate']:.1f}% [{pw['low']:.1f}, {pw['high']:.1f}]"
            if pw["win_rate"] is not None else "undefined (all ties)")


def wins_text(pw: Mapping[str, Any] | None) -> str:
    """The chosen-beats-rejected sentence of a result's `pairs`."""
    if not pw:
        return "Chosen beats rejected by the judge: no pair with both replies judged."
    return (f"Chosen beats rejected by the judge: {_rate_text(pw)} of decided pairs "
            f"({pw['wins']} wins, {pw['losses']} losses, {pw['ties']} ties; "
            f"sign test p = {p_text(pw['p_sign'])}).")


PREMISE_NOTE = (
    "Within-prompt: Spearman's rho over each prompt's replies, averaged over prompts (a prompt "
    "whose replies tie on one side is undefined and left out); the method only compares "
    "replies to one prompt, so this is the headline. Pooled: one rho over all replies, which "
    "also mixes differences between prompts. Both CIs and ps resample whole prompts. A "
    "negative rho supports the premise (lower uncertainty, better reply).")


def run_name(result: Mapping[str, Any]) -> str:
    """`UDASA (run 1a2b3c4d5e6f)`, or `Run 1a2b3c4d5e6f` where no method is recorded."""
    run = str(result["run_id"])[:12]
    return f"{result['method']} (run {run})" if result.get("method") else f"Run {run}"


def _judged_line(result: Mapping[str, Any]) -> str:
    return (f"{result['judged']} of {result['responses']} responses judged "
            f"({result['failures']} judge failures left out).")


def _rho_table(result: Mapping[str, Any]) -> list[str]:
    lines = [("| uncertainty | within-prompt mean rho [95% CI] | p | prompts (undefined) | "
              "pooled rho [95% CI] | p | replies |"), "|---|---|---|---|---|---|---|"]
    within = result.get("within_prompt") or {}
    for name, c in result["correlations"].items():
        w = within.get(name)
        prompts = f"{w['prompts']} ({w['undefined']})" if w else "—"
        lines.append(f"| {name} | {rho_text(w, 'mean_rho')} | {p_text(w and w['p'])} | "
                     f"{prompts} | {rho_text(c)} | {p_text(c['p'])} | {c['n']} |")
    return lines


def premise_markdown(result: Mapping[str, Any], png: str | None = None) -> str:
    """One run's premise test as a markdown section (`png`: its figure, linked below it)."""
    lines = [f"### {run_name(result)}: judge {result['judge']}, template `{result['template']}`",
             "", _judged_line(result), "", *_rho_table(result)]
    if result.get("pairs"):
        lines += ["", wins_text(result["pairs"])]
    lines += ["", PREMISE_NOTE, ""]
    if png:
        lines += [f"![Premise: {heading(result)}]({png})", ""]
    return "\n".join(lines)


def same_replies(results: Sequence[Mapping[str, Any]]) -> list[list[Mapping[str, Any]]]:
    """Results grouped by judge, template and identical correlations (groups in first-seen
    order, runs by name): runs that score the same replies (a control that reuses the method's
    replies) form one group."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for r in results:
        key = json.dumps([r["judge"], r["template"], r["responses"], r["judged"],
                          r.get("within_prompt"), r["correlations"]], sort_keys=True)
        groups.setdefault(key, []).append(r)
    return [sorted(g, key=run_name) for g in groups.values()]


def _pair_row(result: Mapping[str, Any]) -> str:
    pw = result.get("pairs")
    if not pw:
        return f"| {run_name(result)} | no pair with both replies judged | — | — |"
    return (f"| {run_name(result)} | {_rate_text(pw)} | "
            f"{pw['wins']} / {pw['losses']} / {pw['ties']} | {p_text(pw['p_sign'])} |")


def premise_group_markdown(group: Sequence[Mapping[str, Any]]) -> str:
    """Premise results of runs that score the same replies (`same_replies`) as one section:
    the shared rho table once, then each run's own pairs against the judge."""
    if len(group) == 1:
        return premise_markdown(group[0])
    first = group[0]
    lines = [(f"### {', '.join(run_name(r) for r in group)}: judge {first['judge']}, "
              f"template `{first['template']}`"), "",
             (f"These {len(group)} runs score the same replies (their correlation tables are "
              "identical), so one table serves them all; their preference pairs differ."), "",
             _judged_line(first), "", *_rho_table(first), "",
             ("| run | chosen beats rejected by the judge [95% CI] of decided pairs | "
              "wins / losses / ties | sign test p |"), "|---|---|---|---|",
             *[_pair_row(r) for r in group], "", PREMISE_NOTE, ""]
    return "\n".join(lines)


def premise_with_figure(result: Mapping[str, Any], out: Path) -> tuple[str, Path]:
    """Markdown and figure of a result for `tables.md`: the PNG is
    `<out>/premise-<run12>-<judge>-<template>.png`, linked as `<out name>/<png name>`."""
    png = plot_premise(result, out / f"premise-{premise_stem(result)}.png")
    return premise_markdown(result, f"{out.name}/{png.name}"), png


def _rho_point(ax, y: float, c: Mapping[str, Any], key: str, filled: bool) -> bool:
    """One rho with its CI at height y (green: CI below 0, red: above); False when undefined."""
    if is_missing(c[key]):
        return False
    rho, ci = float(c[key]), not (is_missing(c["low"]) or is_missing(c["high"]))
    err = [[max(rho - float(c["low"]), 0.0)], [max(float(c["high"]) - rho, 0.0)]] if ci else None
    color = "#1a7f37" if ci and float(c["high"]) < 0 else \
        "#cf222e" if ci and float(c["low"]) > 0 else "#4C72B0"
    ax.errorbar([rho], [y], xerr=err, fmt="o", color=color, ecolor="#333333", capsize=4,
                markersize=7 if filled else 5, markerfacecolor=color if filled else "white")
    ax.annotate(f"{rho:+.2f}", (rho, y), xytext=(0, 6), textcoords="offset points",
                ha="center", fontsize=7)
    return True


def _rho_panel(ax, corr: Mapping[str, Mapping[str, Any]],
               within: Mapping[str, Mapping[str, Any]] | None = None) -> None:
    """One row per uncertainty: the within-prompt mean rho (filled) and the pooled rho
    (hollow, below it), each with its 95% CI; an undefined rho is named in the label."""
    names, labels, within = list(corr), [], within or {}
    ax.axvline(0, color="#57606a", linewidth=1, linestyle="--")
    ax.set_xlim(-1.05, 1.05)
    ax.set_xlabel("Spearman rho with the judge score [95% CI]; filled: within-prompt mean, "
                  "hollow: pooled\n< 0: lower uncertainty, better reply (the premise)",
                  fontsize=8)
    if not names:
        ax.set_yticks([])
        ax.text(0, 0.5, "fewer than 3 judged responses", ha="center", va="center",
                backgroundcolor="white")
        return
    for y, name in enumerate(names):
        w = within.get(name)
        drawn = _rho_point(ax, y - 0.15, w, "mean_rho", True) if w else False
        pooled = _rho_point(ax, y + 0.2, corr[name], "rho", False)
        label = name + (f"\n{w['prompts']} prompts" if drawn and w else "")
        label += f"\nn={corr[name]['n']}" if pooled else "\n(constant: no rho)"
        labels.append(label)
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
            _rho_panel(left, corr, result.get("within_prompt"))
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
