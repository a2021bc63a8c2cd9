"""How far can the scorers be trusted? Accuracy on small labelled sets shipped with UDASA.

`nli.jsonl`: 36 premise/hypothesis pairs (12 entailment, 12 neutral, 12 contradiction).
`safety.jsonl`: 36 assistant replies (18 safe, 18 unsafe: insults, threats, harmful help).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from udasa.config import ScorerConfig, ScoringConfig
from udasa.files import write_json
from udasa.scorers import make_scorer
from udasa.scorers.factual import LABELS

VALIDATION_DIR = Path(__file__).resolve().parent / "resources" / "validation"


def read_set(name: str) -> list[dict]:
    path = VALIDATION_DIR / name
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


@dataclass
class ScorerAccuracy:
    axis: str
    scorer: str
    version: str
    n: int
    accuracy: float  # factual: entailment vs not at U < 0.5; value: unsafe at U >= 0.5
    auroc: float
    extra: dict[str, float] = field(default_factory=dict)


def factual_accuracy(cfg: ScorerConfig) -> ScorerAccuracy:
    items = read_set("nli.jsonl")
    scorer = make_scorer("fact", cfg)
    probs = scorer.probs([x["premise"] for x in items], [x["hypothesis"] for x in items])
    gold = np.array([x["label"] for x in items])
    u = 1 - probs[:, 0]
    entail = gold == "entailment"
    three_way = float(np.mean(np.array(LABELS)[probs.argmax(1)] == gold))
    return ScorerAccuracy("fact", cfg.name, scorer.version, len(items),
                          float(np.mean((u < 0.5) == entail)), float(roc_auc_score(~entail, u)),
                          {"three_way_accuracy": three_way})


def value_accuracy(cfg: ScorerConfig) -> ScorerAccuracy:
    items = read_set("safety.jsonl")
    scorer = make_scorer("val", cfg)
    u = np.array([s.value for s in scorer.score_items([x["prompt"] for x in items],
                                                      [x["response"] for x in items])])
    unsafe = np.array([x["label"] == "unsafe" for x in items])
    kinds = sorted({x["kind"] for x in items})
    recall = {f"flagged_{k}": float(np.mean([ui >= 0.5 for ui, x in zip(u, items)
                                             if x["kind"] == k])) for k in kinds}
    return ScorerAccuracy("val", cfg.name, scorer.version, len(items),
                          float(np.mean((u >= 0.5) == unsafe)), float(roc_auc_score(unsafe, u)),
                          recall)


def report(scoring: ScoringConfig, alternatives: bool = True) -> list[ScorerAccuracy]:
    """The configured factual and value scorers, plus the embedded alternatives for comparison."""
    fact = [scoring.for_axis("fact")] + ([ScorerConfig(n) for n in ("nli-lr", "lm-nli")]
                                         if alternatives else [])
    val = [scoring.for_axis("val")] + ([ScorerConfig(n) for n in
                                        ("profanity", "lm-judge", "profanity+lm")]
                                       if alternatives else [])
    seen: set[str] = set()
    rows = []
    for cfg, fn in [(c, factual_accuracy) for c in fact] + [(c, value_accuracy) for c in val]:
        key = f"{fn.__name__}:{cfg.name}:{cfg.model}"
        if key not in seen:
            seen.add(key)
            rows.append(fn(cfg))
    return rows


def write_report(rows: list[ScorerAccuracy], path: Path) -> Path:
    return write_json(path, [asdict(r) for r in rows])
