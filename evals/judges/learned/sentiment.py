"""IMDB sentiment: a TF-IDF (word 1-2 grams) logistic regression trained on the subset's train
split, the learned alternative to the VADER lexicon (docs/method.md §7)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class SentimentSettings:
    """What the sentiment judge is built from (part of its cache key)."""

    ngram_max: int = 2
    min_df: int = 2
    C: float = 4.0
    limit: int | None = None  # first N training reviews of each label (tests build on a slice)
    seed: int = 0


@dataclass
class SentimentJudge:
    settings: SentimentSettings
    pipeline: object

    def positive_prob(self, texts: Sequence[str]) -> np.ndarray:
        return self.pipeline.predict_proba(list(texts))[:, 1]  # type: ignore[attr-defined]


def fit(texts: Sequence[str], labels: Sequence[int], s: SentimentSettings) -> SentimentJudge:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    pipe = make_pipeline(
        TfidfVectorizer(ngram_range=(1, s.ngram_max), min_df=s.min_df, sublinear_tf=True),
        LogisticRegression(C=s.C, max_iter=2000, random_state=s.seed))
    pipe.fit(list(texts), list(labels))
    return SentimentJudge(s, pipe)


def vader_positive(texts: Sequence[str]) -> np.ndarray:
    """VADER's verdict (compound >= 0.05, its authors' cut-off), the baseline."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    return np.array([analyzer.polarity_scores(t)["compound"] >= 0.05 for t in texts])
