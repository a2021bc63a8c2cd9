"""The method's premise, tested on a run: does lower uncertainty mean a better reply?

For every response of a UDASA run, the judge scores it (templates such as `harmless` and
`helpful`); we then report Spearman's rho between the judge score and the fused uncertainty u
and each axis (a negative rho supports the premise), with a 95% CI from a bootstrap over
prompts (responses to one prompt move together), and how often the chosen reply of each
preference pair beats the rejected one by the judge (Wilson CI, sign test). Judge failures are
left out and counted. Results go to `WORKSPACE/premise/<run>-<judge>.json`, which
`udasa-eval tables` and the app's Compare view read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats as sps

from evals.stats import proportion_ci, sign_test
from udasa.errors import ConfigError
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


def write_premise(result: Mapping[str, Any], workspace: Path) -> Path:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", f"{result['judge']}-{result['template']}").strip("-")
    path = workspace / "premise" / f"{result['run_id'][:12]}-{slug}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2), encoding="utf-8")
    return path


def read_premises(workspace: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text(encoding="utf-8"))
            for p in sorted((workspace / "premise").glob("*.json"))]


def premise_markdown(result: Mapping[str, Any]) -> str:
    """One run's premise test as a markdown section."""
    lines = [(f"### Run {result['run_id'][:12]}: judge {result['judge']}, "
             f"template `{result['template']}`"), "",
             (f"{result['judged']} of {result['responses']} responses judged "
             f"({result['failures']} judge failures left out)."), "",
             "| uncertainty | Spearman rho with judge score [95% CI] | p | n |",
             "|---|---|---|---|"]
    for name, c in result["correlations"].items():
        lines.append(f"| {name} | {c['rho']:+.3f} [{c['low']:+.3f}, {c['high']:+.3f}] | "
                     f"{c['p']:.3g} | {c['n']} |")
    pw = result.get("pairs")
    if pw:
        rate = (f"{pw['win_rate']:.1f}% [{pw['low']:.1f}, {pw['high']:.1f}]"
                if pw["win_rate"] is not None else "undefined (all ties)")
        lines += ["", (f"Chosen beats rejected by the judge: {rate} of decided pairs "
                      f"({pw['wins']} wins, {pw['losses']} losses, {pw['ties']} ties; "
                      f"sign test p = {pw['p_sign']:.3g}).")]
    lines += ["", "A negative rho supports the premise (lower uncertainty, better reply).", ""]
    return "\n".join(lines)
