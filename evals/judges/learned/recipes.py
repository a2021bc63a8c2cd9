"""The learned judges, registered with :mod:`evals.judges.learned.build`: each trains once on
its human labels (``train_*``) and, when asked, measures its agreement on labels it did not
train on (``validate_*``; docs/method.md §7)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from evals.judges.learned import data, reward, sentiment, tqa
from evals.judges.learned.build import Scores, recipe
from evals.judges.learned.metrics import Agreement, accuracy, pairwise

# Lin, Hilton & Evans, "TruthfulQA" (arXiv:2109.07958), appendix B.1: validation accuracy of the
# fine-tuned GPT-3 judges, each model family held out in turn.
GPT_JUDGE = "GPT-judge (TruthfulQA paper, app. B.1): 88.4-96.2%"
GPT_INFO = "GPT-info (TruthfulQA paper, app. B.1): 88.9-99.4%"


def _fold(key: str, folds: int, seed: int) -> int:
    return int(hashlib.sha1(f"{seed}:{key}".encode()).hexdigest()[:8], 16) % folds


def _cross_fit(rows: list[data.Labelled], refs: tqa.Refs, s: tqa.TQASettings, by: str
               ) -> np.ndarray:
    """Out-of-fold P(yes) for every row; folds group identical answers to one question
    (``by="answer"``: the questions are seen) or whole questions (``by="question"``)."""
    keys = [r.question if by == "question" else f"{r.question}\n{tqa.norm(r.answer)}"
            for r in rows]
    fold = np.array([_fold(k, s.folds, s.seed) for k in keys])
    head = "unseen" if by == "question" else "seen"
    p = np.full(len(rows), np.nan)  # stays NaN for a "seen" row whose question is all held out
    for f in tqdm(range(s.folds), desc=f"validate {s.kind} ({head} questions)", unit="fold"):
        train = [rows[i] for i in np.flatnonzero(fold != f)]
        known = {r.question for r in train}
        test = [i for i in np.flatnonzero(fold == f) if head == "unseen" or rows[i].question in known]
        if not test:
            continue
        judge = tqa.fit(train, refs, s, heads=(head,))
        p[test] = judge.predict([tqa.Query(rows[i].question, rows[i].answer) for i in test])
    return p


def train_tqa(s: tqa.TQASettings, root: Path) -> tqa.TQAJudge:
    """Both heads, fitted once on every labelled answer."""
    return tqa.fit(data.labelled_answers(s.kind, root)[:s.limit], data.references(root), s)


def validate_tqa(judge: tqa.TQAJudge, root: Path) -> list[Agreement]:
    """Cross-validated accuracy on held-out answers to seen questions and on unseen questions
    (``folds`` folds each, each fitting its own heads on the judge's labelled answers)."""
    s, rows, refs = judge.settings, judge.bank, judge.refs
    y = np.array([r.label for r in rows])
    name = f"learned {s.kind}"
    base = GPT_JUDGE if s.kind == "truth" else GPT_INFO
    seen = _cross_fit(rows, refs, s, "answer")
    unseen = _cross_fit(rows, refs, s, "question")
    ref_texts = {(q, tqa.norm(a)) for q, (c, w) in refs.items() for a in c + w}
    model_made = np.array([(r.question, tqa.norm(r.answer)) not in ref_texts for r in rows])
    majority = max(y.mean(), 1 - y.mean())
    ok = ~np.isnan(seen)
    return [
        accuracy(name, "TruthfulQA held-out answers, seen questions", seen[ok], y[ok],
                 f"{base}; majority class {majority:.3f}"),
        accuracy(name, "  of which not a reference answer", seen[ok & model_made],
                 y[ok & model_made]),
        accuracy(name, "TruthfulQA unseen questions (split by question)", unseen, y),
    ]


def _answers(value: Any) -> list[str]:
    if isinstance(value, str):
        return [a.strip() for a in value.split(";") if a.strip()]
    return [str(a) for a in value or []]


def score_tqa(judge: tqa.TQAJudge, items: list[dict[str, Any]]) -> Scores:
    """P(yes) per item; items may carry ``references`` (the correct answers) and
    ``incorrect``."""
    refs = {x["prompt"]: (_answers(x.get("references")), _answers(x.get("incorrect")))
            for x in items if x.get("references") or x.get("incorrect")}
    p = judge.predict([tqa.Query(x["prompt"], x["response"]) for x in items], refs)
    return p.tolist(), [f"P(yes)={v:.3f}" for v in p]


recipe("truth", tqa.TQASettings, ("truthfulqa/finetune_truth.jsonl.gz", "truthfulqa/TruthfulQA.csv"),
       "TruthfulQA truth labels: MiniLM similarities + gradient boosting", validate_tqa,
       template="truthful", score=score_tqa)(train_tqa)


@recipe("info", tqa.TQASettings, ("truthfulqa/finetune_info.jsonl.gz",
                                  "truthfulqa/TruthfulQA.csv"),
        "TruthfulQA informativeness labels: MiniLM similarities + gradient boosting",
        validate_tqa,
        template="informative", score=score_tqa)
def train_info(s: tqa.TQASettings, root: Path) -> tqa.TQAJudge:
    return train_tqa(tqa.TQASettings(**{**s.__dict__, "kind": "info"}), root)


def _embedding_floor(train: list[data.Pair], test: list[data.Pair], encoder: str) -> float:
    """The floor: logistic regression on the difference of the two replies' embeddings."""
    from sklearn.linear_model import LogisticRegression

    from evals.judges.learned.embed import embed

    def diff(pairs):
        return (embed([p.chosen for p in pairs], encoder)
                - embed([p.rejected for p in pairs], encoder))

    d = diff(train)
    lr = LogisticRegression(C=1.0, fit_intercept=False, max_iter=2000).fit(
        np.vstack([d, -d]), np.r_[np.ones(len(d)), np.zeros(len(d))])
    return float(np.mean(diff(test) @ lr.coef_[0] > 0))


def train_reward(s: reward.RewardSettings, root: Path) -> reward.RewardJudge:
    """The Bradley-Terry reward model, fitted once on the ``train`` part's pairs (its L2
    strength chosen by cross-validation on them when ``s.C`` is None)."""
    return reward.fit(data.hh_pairs(s.subset, "train", root)[:s.limit], s)


def validate_reward(judge: reward.RewardJudge, root: Path) -> list[Agreement]:
    """Pairwise agreement on the ``eval`` part's pairs, beside the embedding floor."""
    s = judge.settings
    train = data.hh_pairs(s.subset, "train", root)[:s.limit]
    test = data.hh_pairs(s.subset, "eval", root)[:s.limit]
    ctx = [p.context for p in test]
    good = judge.reward(ctx, [p.chosen for p in test])
    bad = judge.reward(ctx, [p.rejected for p in test])
    floor = _embedding_floor(train, test, s.encoder)
    return [pairwise(f"learned {s.subset}", f"HH-RLHF {s.subset}-base, unseen prompts",
                     good, bad, f"floor (LR on reply-embedding difference) {floor:.3f}")]


def score_reward(judge: reward.RewardJudge, items: list[dict[str, Any]]) -> Scores:
    """The reward on the 1-10 scale of its calibration."""
    r = judge.reward([x["prompt"] for x in items], [x["response"] for x in items])
    s = judge.score_1_10(r)
    return s.tolist(), [f"reward={a:.3f} -> {b:.2f}/10" for a, b in zip(r, s)]


for _subset in ("harmless", "helpful"):
    def _train(s: reward.RewardSettings, root: Path, subset: str = _subset):
        return train_reward(reward.RewardSettings(**{**s.__dict__, "subset": subset}), root)

    recipe(_subset, reward.RewardSettings, (f"hh-rlhf/{_subset}-base/test.jsonl.gz",),
           f"HH-RLHF {_subset} preferences, prompts of the train part: MiniLM features + "
           "Bradley-Terry", validate_reward, template=_subset, score=score_reward,
           ships=True)(_train)


def _balanced(texts: list[str], labels: list[int], limit: int | None
              ) -> tuple[list[str], list[int]]:
    """The first ``limit`` reviews of each label (all of them when limit is None)."""
    keep = [i for y in (1, 0) for i in [j for j, v in enumerate(labels) if v == y][:limit]]
    return [texts[i] for i in keep], [labels[i] for i in keep]


def score_sentiment(judge: sentiment.SentimentJudge, items: list[dict[str, Any]]) -> Scores:
    """P(positive) of each response."""
    p = judge.positive_prob([x["response"] for x in items])
    return p.tolist(), [f"P(yes)={v:.3f}" for v in p]


def validate_sentiment(judge: sentiment.SentimentJudge, root: Path) -> list[Agreement]:
    """Accuracy and AUROC on the test split, beside VADER's accuracy."""
    test, y = _balanced(*data.imdb("test", root), judge.settings.limit)
    vader = float(np.mean(sentiment.vader_positive(test) == np.array(y)))
    return [accuracy("learned sentiment", "IMDB subset test split", judge.positive_prob(test), y,
                     f"VADER {vader:.3f}")]


@recipe("sentiment", sentiment.SentimentSettings, ("imdb/aclImdb_subset5k.tar.gz",),
        "IMDB subset train split: TF-IDF + logistic regression", validate_sentiment,
        template="sentiment", score=score_sentiment)
def train_sentiment(s: sentiment.SentimentSettings, root: Path) -> sentiment.SentimentJudge:
    return sentiment.fit(*_balanced(*data.imdb("train", root), s.limit), s)
