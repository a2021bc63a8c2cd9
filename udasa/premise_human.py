"""The method's premise against human labels, independent of any judge (`udasa scorers --human`).

Does lower uncertainty pick the reply humans prefer? For each uncertainty axis (the configured
scorer of every axis and, unless asked not to, the embedded alternatives) and the fused u:

- HH-RLHF test pairs, per subset (harmless-base, helpful-base): each scorer scores the final
  assistant turn of `chosen` and of `rejected` (the prompt: the dialogue before it); agreement =
  the share of pairs where the human-preferred reply has the lower uncertainty (ties count
  half), with a 95% bootstrap CI. 0.5 is chance.
- TruthfulQA's human truth labels (the labelled answers GPT-judge was fine-tuned on): the AUROC
  of each axis for telling false answers from true ones (> 0.5: higher uncertainty on false
  answers), with a 95% bootstrap CI.

An axis whose scorer needs several replies of one prompt (the semantic axis compares a prompt's
N replies with each other) cannot score a lone reply: it is reported as not applicable, and u
is fused (docs/method.md §3, the configured fusion) over the axes that apply.

The labels come from the offline mirror (a seeded sample of `limit` per check), or from a JSONL
file of one's own: `{"kind": "pair", "subset", "prompt", "chosen", "rejected"}` and
`{"kind": "truth", "question", "answer", "label"}` (label 1: true) rows.
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from udasa.axes import axis_keys
from udasa.config import FusionConfig, RunConfig, ScorerConfig
from udasa.errors import DataError
from udasa.files import write_json, write_text
from udasa.fusion import fuse
from udasa.scorers.base import ItemScorer, Scorer, make_scorer

TRUTH = "TruthfulQA truth labels"
NOT_APPLICABLE = "n/a: needs several replies of one prompt"
CHUNK = 64  # replies scored per call: the progress bar's step
ALTERNATIVES = {"fact": ("nli-lr", "lm-nli"), "val": ("profanity", "lm-judge", "profanity+lm")}


@dataclass(frozen=True)
class HumanPair:
    subset: str  # e.g. harmless-base
    prompt: str
    chosen: str  # the human-preferred reply
    rejected: str


@dataclass(frozen=True)
class TruthLabel:
    question: str
    answer: str
    label: int  # 1: humans labelled the answer true


@dataclass
class HumanLabels:
    pairs: list[HumanPair] = field(default_factory=list)
    truth: list[TruthLabel] = field(default_factory=list)
    source: str = ""


@dataclass
class PremiseRow:
    """One uncertainty (an axis' scorer, or the fused u) against every check."""

    uncertainty: str  # an axis key, or "u"
    scorer: str
    version: str
    configured: bool
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)


# --------------------------------------------------------------------------- labels

def read_labels(path: Path) -> HumanLabels:
    """A JSONL file of labelled pairs and answers (see the module doc); errors name the line."""
    from udasa.data import read_text

    out = HumanLabels(source=str(path))
    for n, line in enumerate(read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if row["kind"] == "pair":
                out.pairs.append(HumanPair(str(row["subset"]), row["prompt"], row["chosen"],
                                           row["rejected"]))
            elif row["kind"] == "truth":
                if row["label"] not in (0, 1):
                    raise ValueError(f"label {row['label']!r} is not 0 or 1")
                out.truth.append(TruthLabel(row["question"], row["answer"], int(row["label"])))
            else:
                raise ValueError(f"kind {row['kind']!r} is not 'pair' or 'truth'")
        except (ValueError, KeyError, TypeError) as err:
            raise DataError(f"{path}: line {n}: not a labelled pair or answer "
                            f"({type(err).__name__}: {err})") from None
    return out


def mirror_labels(limit: int | None, seed: int) -> HumanLabels:
    """HH-RLHF test pairs (each subset) and TruthfulQA truth labels from the offline mirror,
    a seeded sample of `limit` of each (None: all)."""
    from evals.judges.learned import data

    def sample(items: list) -> list:
        items = list(items)
        random.Random(seed).shuffle(items)
        return items[:limit] if limit else items

    drawn = (f"a seeded sample (seed {seed}) of {limit} per check" if limit
             else "every labelled pair and answer")
    out = HumanLabels(source=f"offline mirror {data.data_dir()}, {drawn}")
    for subset in ("harmless", "helpful"):
        out.pairs += [HumanPair(f"{subset}-base", p.context, p.chosen, p.rejected)
                      for p in sample(data.hh_pairs(subset))]
    out.truth = [TruthLabel(r.question, r.answer, r.label)
                 for r in sample(data.labelled_answers("truth"))]
    return out


# --------------------------------------------------------------------------- statistics

def lower_picks_preferred(u_chosen: Sequence[float], u_rejected: Sequence[float]
                          ) -> dict[str, Any]:
    """Share of pairs whose human-preferred reply has the lower uncertainty (ties half)."""
    from evals.judges.learned.metrics import pairwise

    agree = pairwise("", "", [-u for u in u_chosen], [-u for u in u_rejected])
    ties = int(np.sum(np.asarray(u_chosen) == np.asarray(u_rejected)))
    return {"metric": "pairwise", "value": agree.value, "low": agree.low, "high": agree.high,
            "n": agree.n, "ties": ties}


def auroc_for_false(u: Sequence[float], labels: Sequence[int], seed: int = 0
                    ) -> dict[str, Any]:
    """AUROC of u for the answers humans labelled false (> 0.5: u is higher on them)."""
    from evals.judges.learned.metrics import auroc_ci

    y = 1 - np.asarray(labels, int)
    value, low, high = auroc_ci(np.asarray(u, float), y, 1000, seed)
    return {"metric": "auroc", "value": value, "low": low, "high": high, "n": len(y),
            "false": int(y.sum())}


# --------------------------------------------------------------------------- scoring

def _scorers(cfg: RunConfig, alternatives: bool) -> list[tuple[str, ScorerConfig, bool]]:
    """(axis, scorer config, configured?) for every axis' configured scorer, then the
    embedded alternatives of the fact and value axes (each scorer once)."""
    rows = [(a, cfg.scoring.for_axis(a), True) for a in axis_keys()]
    if alternatives:
        rows += [(a, ScorerConfig(n), False) for a, names in ALTERNATIVES.items()
                 for n in names]
    seen, out = set(), []
    for axis, sc, configured in rows:
        if (axis, sc.name, sc.model) not in seen:
            seen.add((axis, sc.name, sc.model))
            out.append((axis, sc, configured))
    return out


def _values(scorer: Scorer, prompts: list[str], replies: list[str], bar: tqdm) -> list[float]:
    """The scorer's uncertainty of each reply, scored in chunks so that the bar moves."""
    assert isinstance(scorer, ItemScorer)
    out: list[float] = []
    for i in range(0, len(replies), CHUNK):
        scored = scorer.score_items(prompts[i:i + CHUNK], replies[i:i + CHUNK])
        out += [s.value for s in scored]
        bar.update(len(scored))
    return out


def _score_all(scorer: Scorer, labels: HumanLabels, desc: str) -> dict[str, list[float]]:
    """One scorer's uncertainty of every reply: chosen, rejected and the labelled answers."""
    pairs, truth = labels.pairs, labels.truth
    prompts = [p.prompt for p in pairs]
    with tqdm(total=2 * len(pairs) + len(truth), desc=desc, unit="reply") as bar:
        return {"chosen": _values(scorer, prompts, [p.chosen for p in pairs], bar),
                "rejected": _values(scorer, prompts, [p.rejected for p in pairs], bar),
                "truth": _values(scorer, [t.question for t in truth], [t.answer for t in truth],
                                 bar)}


def _checks(values: dict[str, list[float]] | None, labels: HumanLabels, seed: int
            ) -> dict[str, dict[str, Any]]:
    """Every check of one uncertainty (None: not applicable to lone replies)."""
    subsets = list(dict.fromkeys(p.subset for p in labels.pairs))
    names = [f"HH-RLHF {s}" for s in subsets] + ([TRUTH] if labels.truth else [])
    if values is None:
        return {name: {"applicable": False, "why": NOT_APPLICABLE} for name in names}
    out = {}
    for s in subsets:
        idx = [i for i, p in enumerate(labels.pairs) if p.subset == s]
        out[f"HH-RLHF {s}"] = lower_picks_preferred([values["chosen"][i] for i in idx],
                                                    [values["rejected"][i] for i in idx])
    if labels.truth:
        out[TRUTH] = auroc_for_false(values["truth"], [t.label for t in labels.truth], seed)
    return out


def _fused(per_axis: dict[str, dict[str, list[float]]], fusion: FusionConfig
           ) -> dict[str, list[float]]:
    """u of every reply (Eq. 5-6) over the axes given."""
    cfg = dataclasses.replace(fusion, axes=list(per_axis))
    axes = list(per_axis)
    return {part: [fuse({a: per_axis[a][part][i] for a in axes}, cfg)[0]
                   for i in range(len(per_axis[axes[0]][part]))]
            for part in ("chosen", "rejected", "truth")}


def premise_rows(cfg: RunConfig, labels: HumanLabels, alternatives: bool = True,
                 seed: int = 0) -> list[PremiseRow]:
    """Every scorer's and the fused u's agreement with the human labels."""
    rows, configured = [], {}
    for axis, sc, is_configured in _scorers(cfg, alternatives):
        scorer = make_scorer(axis, sc)
        values = (_score_all(scorer, labels, f"{axis} / {sc.name}")
                  if isinstance(scorer, ItemScorer) else None)
        if is_configured and values is not None and axis in cfg.fusion.axes:
            configured[axis] = values
        rows.append(PremiseRow(axis, sc.name, scorer.version, is_configured,
                               _checks(values, labels, seed)))
    used = ", ".join(configured) or "none"
    fused = _fused(configured, cfg.fusion) if configured else None
    rows.append(PremiseRow("u", f"{cfg.fusion.method} fusion of {used}", "", True,
                           _checks(fused, labels, seed)))
    return rows


# --------------------------------------------------------------------------- output

def _cell(check: dict[str, Any]) -> str:
    if not check.get("applicable", True):
        return check["why"]
    if check["value"] is None:
        return f"undefined (n={check['n']})"
    ci = (f" [{check['low']:.3f}, {check['high']:.3f}]" if check["low"] is not None
          else " [no CI]")
    return f"{check['value']:.3f}{ci} n={check['n']}"


def markdown(rows: list[PremiseRow], source: str) -> str:
    """The premise table: one row per uncertainty, one column per check."""
    checks = list(dict.fromkeys(c for r in rows for c in r.checks))
    heads = [(f"{c}: lower u picks the preferred reply" if c.startswith("HH") else
              f"{c}: AUROC for false answers") for c in checks]
    lines = ["| uncertainty | scorer | " + " | ".join(heads) + " |",
             "|---|---|" + "---|" * len(checks)]
    for r in rows:
        name = f"{r.scorer}" + ("" if r.configured else " (alternative)")
        lines.append(f"| {r.uncertainty} | {name} | "
                     + " | ".join(_cell(r.checks[c]) for c in checks) + " |")
    return "\n".join([
        "# The premise against human labels", "",
        ("Does lower uncertainty pick the reply humans prefer? Independent of any judge. "
        "HH-RLHF: share of test pairs whose human-preferred reply has the lower uncertainty "
        "(ties half; 0.5 is chance) [95% bootstrap CI]. TruthfulQA: AUROC of the uncertainty "
        "for the answers humans labelled false (0.5 is chance). Axes that compare several "
        "replies of one prompt cannot score a lone reply (n/a); u fuses the configured "
        "scorers of the axes that apply."), "", f"Labels: {source}.", "", *lines, ""])


def write(rows: list[PremiseRow], labels: HumanLabels, out_dir: Path,
          meta: dict[str, Any]) -> tuple[Path, Path]:
    """`premise_human.md` and `premise_human.json` under `out_dir`."""
    md, js = out_dir / "premise_human.md", out_dir / "premise_human.json"
    write_text(md, markdown(rows, labels.source))
    write_json(js, {"labels": labels.source, **meta,
                    "rows": [dataclasses.asdict(r) for r in rows]})
    return md, js
