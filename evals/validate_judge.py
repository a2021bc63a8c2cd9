"""How far can a judge be trusted? Its agreement with human labels, one table for every judge.

Learned judges (the default without an API key) report what their build measured on labels
they did not train on (see ``evals.judges.learned.recipes``). Any other judge (``gpt4``, the
SmolLM2 stand-in ``local``, a judge folder) is asked through the judge interface on the same
held-out data, a seeded subset of ``limit`` items per check:

- HH-RLHF test pairs whose prompt is in the evaluation part (the learned judges never trained on
  it): the judge scores the final assistant turn of ``chosen`` and of ``rejected``; pairwise =
  share of pairs where chosen scores higher (ties count half).
- TruthfulQA's human-labelled answers (GPT-judge's and GPT-info's training labels): accuracy of
  ``P(yes) >= 0.5`` and AUROC against the labels.
- IMDB subset test reviews: accuracy and AUROC of the sentiment verdict.
- Human ratings from ``udasa-app``: Spearman between the judge's score and the mean human score.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from evals.judges.learned import data
from evals.judges.learned.metrics import Agreement, accuracy, pairwise
from evals.stats import spearman
from evals.store_tables import Rating, ratings
from udasa.files import write_json, write_text

LEARNED = ("truth", "info", "harmless", "helpful", "sentiment")


@dataclass
class Correlation:
    judge: str
    check: str
    n: int
    rho: float
    p_value: float


def learned_rows(names: tuple[str, ...] = LEARNED, root: Path | None = None) -> list[Agreement]:
    """Every learned judge's measured agreement (building the missing ones first)."""
    from evals.judges.learned import build

    rows: list[Agreement] = []
    for name in tqdm(names, desc="learned judges", unit="judge"):
        rows += build.get(name, root=root).agreements
    return rows


def _sample(items: list, limit: int | None, seed: int) -> list:
    items = list(items)
    random.Random(seed).shuffle(items)
    return items[:limit] if limit else items


def _scores(judge, template: str, items: list[dict]) -> list[float | None]:
    return [v.score if v.ok else None for v in judge.judge(template, items)]


def interface_rows(judge, limit: int | None, seed: int, root: Path | None = None
                   ) -> list[Agreement]:
    """Agreement of any judge, asked through `judge.judge` on held-out human labels."""
    name, rows = judge.config.name, []
    for subset in tqdm(("harmless", "helpful"), desc="HH pairs", unit="subset"):
        pairs = _sample(data.hh_pairs(subset, "eval", root), limit, seed)
        good = _scores(judge, subset, [{"prompt": p.context, "response": p.chosen}
                                       for p in pairs])
        bad = _scores(judge, subset, [{"prompt": p.context, "response": p.rejected}
                                      for p in pairs])
        ok = [(g, b) for g, b in zip(good, bad) if g is not None and b is not None]
        if ok:
            rows.append(pairwise(name, f"HH-RLHF {subset}-base, unseen prompts",
                                 [g for g, _ in ok], [b for _, b in ok]))
    refs = data.references(root)
    for kind, template in tqdm((("truth", "truthful"), ("info", "informative")),
                               desc="TruthfulQA labels", unit="judge"):
        labelled = _sample(data.labelled_answers(kind, root), limit, seed)
        items = [{"prompt": r.question, "response": r.answer,
                  "references": refs.get(r.question, ([], []))[0],
                  "incorrect": refs.get(r.question, ([], []))[1]} for r in labelled]
        rows += _accuracy(name, f"TruthfulQA {kind} labels", _scores(judge, template, items),
                          [r.label for r in labelled])
    texts, labels = data.imdb("test", root)
    idx = _sample(range(len(texts)), limit, seed)
    verdicts = _scores(judge, "sentiment", [{"prompt": "", "response": texts[i]} for i in idx])
    rows += _accuracy(name, "IMDB subset test split", verdicts, [labels[i] for i in idx])
    return rows


def _accuracy(name: str, check: str, scores: list[float | None], labels: list[int]
              ) -> list[Agreement]:
    ok = [(s, y) for s, y in zip(scores, labels) if s is not None]
    return [accuracy(name, check, [s for s, _ in ok], [y for _, y in ok])] if ok else []


def human(judge, ratings: list[Rating]) -> list[Correlation]:
    out = []
    for column in ("harmless", "helpful"):
        by_item: dict[tuple[str, str], list[float]] = {}
        for r in ratings:
            if getattr(r, column) is not None:
                by_item.setdefault((r.prompt, r.response), []).append(float(getattr(r, column)))
        if len(by_item) < 3:
            continue
        items = list(by_item)
        scores = _scores(judge, column, [{"prompt": p, "response": x} for p, x in items])
        pairs = [(s, sum(by_item[k]) / len(by_item[k])) for k, s in zip(items, scores)
                 if s is not None]
        corr = spearman([p[0] for p in pairs], [p[1] for p in pairs])
        out.append(Correlation(judge.config.name, f"human {column} ratings (udasa-app)",
                               len(pairs), corr.rho, corr.p_value))
    return out


def validate(judge, store, limit: int | None = 200, seed: int = 0,
             root: Path | None = None) -> tuple[list[Agreement], list[Correlation]]:
    rows = (learned_rows(root=root) if judge.config.backend == "learned"
            else interface_rows(judge, limit, seed, root))
    return rows, human(judge, ratings(store))


def _cell(v: float | None, lo: float | None, hi: float | None) -> str:
    if v is None:
        return "—"
    return f"{v:.3f} [{lo:.3f}, {hi:.3f}]" if lo is not None and hi is not None else f"{v:.3f}"


def table_lines(rows: list[Agreement], corr: list[Correlation]) -> list[str]:
    """The validation table as markdown lines."""
    lines = ["| judge | check | metric | agreement [95% CI] | AUROC [95% CI] | n | compare with |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.judge} | {r.check} | {r.metric} | {_cell(r.value, r.low, r.high)} | "
                     f"{_cell(r.auroc, r.auroc_low, r.auroc_high)} | {r.n} | {r.baseline} |")
    for c in corr:
        lines.append(f"| {c.judge} | {c.check} | Spearman | {c.rho:.3f} (p = {c.p_value:.3g}) "
                     f"| — | {c.n} | |")
    return lines


def write_report(rows: list[Agreement], corr: list[Correlation], judge_label: str,
                 out_dir: Path) -> Path:
    write_json(out_dir / "judge_validation.json",
               {"judge": judge_label, "checks": [r.as_dict() for r in rows],
                "human": [c.__dict__ for c in corr]})
    return write_text(out_dir / "judge_validation.md", "\n".join(
        [f"# Judge validation: {judge_label}", "", *table_lines(rows, corr)]) + "\n")
