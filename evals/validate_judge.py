"""How far can a judge be trusted? Agreement with references and with stored human ratings.

- HH-RLHF test pairs: the judge scores the final assistant turn of `chosen` and of `rejected`
  (same conversation); accuracy = share of pairs where chosen scores higher (ties count half).
- TruthfulQA: the judge's "truthful" verdict on the best correct answer vs the first incorrect
  answer of each question; accuracy = share where the correct one scores higher.
- Human ratings (from `udasa-app`): Spearman between the judge's score and the mean human
  score of each rated reply, for harmlessness and helpfulness.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from evals.stats import spearman
from evals.tasks.base import load_samples

_LAST_ASSISTANT = re.compile(r"\n\nAssistant:(.*)\Z", re.DOTALL)


@dataclass
class Agreement:
    check: str
    n: int
    accuracy: float | None = None  # pairwise: share ordered as the reference says
    spearman: float | None = None
    failures: int = 0
    notes: str = ""
    extra: dict[str, float] = field(default_factory=dict)


def _pairwise(judge, template: str, good: list[dict], bad: list[dict]) -> tuple[float, int, int]:
    a, b = judge.judge(template, good), judge.judge(template, bad)
    ok = [(x.score, y.score) for x, y in zip(a, b) if x.ok and y.ok]
    wins = sum(1.0 if x > y else 0.5 if x == y else 0.0 for x, y in ok)
    return (wins / len(ok) if ok else float("nan")), len(ok), len(a) - len(ok)


def hh_pairs(judge, limit: int, seed: int, template: str = "harmless") -> Agreement:
    rows = load_samples(f"hh-rlhf/{template}-base/test.jsonl.gz", None, limit, seed)
    good, bad = [], []
    for s in rows:
        c, r = (_LAST_ASSISTANT.search(s.meta.get(k) or "") for k in ("chosen", "rejected"))
        if c and r and c.group(1).strip() != r.group(1).strip():
            good.append({"prompt": s.prompt, "response": c.group(1).strip()})
            bad.append({"prompt": s.prompt, "response": r.group(1).strip()})
    acc, n, failed = _pairwise(judge, template, good, bad)
    return Agreement(f"hh-rlhf {template}: chosen > rejected", n, acc, failures=failed)


def truthfulqa(judge, limit: int, seed: int) -> Agreement:
    rows = [s for s in load_samples("truthfulqa/TruthfulQA.csv", None, limit, seed)
            if s.meta.get("incorrect_answers")]
    good = [{"prompt": s.prompt, "response": s.meta["best_answer"],
             "references": "; ".join(s.meta.get("correct_answers", []))} for s in rows]
    bad = [g | {"response": s.meta["incorrect_answers"][0]} for g, s in zip(good, rows)]
    acc, n, failed = _pairwise(judge, "truthful", good, bad)
    return Agreement("truthfulqa: correct > incorrect answer", n, acc, failures=failed)


def human(judge, ratings: list[dict]) -> list[Agreement]:
    out = []
    for template, column in (("harmless", "harmless"), ("helpful", "helpful")):
        by_item: dict[tuple[str, str], list[float]] = {}
        for r in ratings:
            if r.get(column) is not None:
                by_item.setdefault((r["prompt"], r["response"]), []).append(float(r[column]))
        if len(by_item) < 3:
            continue
        items = list(by_item)
        verdicts = judge.judge(template, [{"prompt": p, "response": x} for p, x in items])
        pairs = [(v.score, sum(by_item[k]) / len(by_item[k]))
                 for k, v in zip(items, verdicts) if v.ok]
        corr = spearman([p[0] for p in pairs], [p[1] for p in pairs])
        out.append(Agreement(f"human {column} ratings", len(pairs), spearman=corr.rho,
                             failures=len(items) - len(pairs), extra={"p_value": corr.p_value}))
    return out


def validate(judge, store, limit: int = 50, seed: int = 0) -> list[Agreement]:
    return [hh_pairs(judge, limit, seed, "harmless"), hh_pairs(judge, limit, seed, "helpful"),
            truthfulqa(judge, limit, seed), *human(judge, store.ratings())]


def write_report(rows: list[Agreement], judge_label: str, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "judge_validation.json").write_text(json.dumps(
        {"judge": judge_label, "checks": [asdict(r) for r in rows]}, indent=2))
    lines = [f"# Judge validation: {judge_label}", "",
             "| check | n | accuracy | Spearman | failures |", "|---|---|---|---|---|"]
    for r in rows:
        acc = "—" if r.accuracy is None else f"{r.accuracy:.3f}"
        rho = "—" if r.spearman is None else f"{r.spearman:.3f}"
        lines.append(f"| {r.check} | {r.n} | {acc} | {rho} | {r.failures} |")
    path = out_dir / "judge_validation.md"
    path.write_text("\n".join(lines) + "\n")
    return path
