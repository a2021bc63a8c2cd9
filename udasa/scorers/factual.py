"""Factual uncertainty, docs/method.md §2 (paper Eq. 3): U_fact = P(neutral) + P(contradiction) = 1 - P(entail).

NLI backends: `nli-lr` (embedded TF-IDF + logistic regression on SNLI, from NLI-lr-model),
`lm-nli` (zero-shot NLI by a causal LM's option probabilities; the policy by default),
`hf-nli` (any sequence-classification NLI model by path or hub id, e.g. a DeBERTa cross-encoder).
Each returns 3-way probabilities (entailment, neutral, contradiction); long responses are also
scored sentence by sentence and the worst sentence is kept in `details.sentence_max`.
"""

from __future__ import annotations

import functools
import pickle
import re
import string
import warnings
from pathlib import Path

import numpy as np
import torch

from udasa.axes import Axis, register_axis
from udasa.config import ScorerConfig
from udasa.errors import ConfigError
from udasa.models import load_causal_lm, model_identity, model_load, package_dir, resolve_model
from udasa.scorers.base import AxisScore, ItemScorer, dist_version, register, version_of
from udasa.scorers.lm_options import chat_prefix, option_probs, read_prompt

LABELS = ("entailment", "neutral", "contradiction")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
AXIS = register_axis(Axis("fact", field="factual", default_scorer="nli-lr", label="U_fact",
                          order=1))


def factual_uncertainty(p_entail: float) -> float:
    """Eq. 3: U_fact = P(neutral) + P(contradiction) = 1 - P(entailment)."""
    return float(min(1.0, max(0.0, 1.0 - p_entail)))


def split_sentences(text: str) -> list[str]:
    return [s for s in (p.strip() for p in _SENTENCE.split(text)) if s]


class NLIScorer(ItemScorer):
    """Shared Eq. 3 logic; subclasses implement `probs(premises, hypotheses) -> (n, 3)`."""

    def probs(self, premises: list[str], hypotheses: list[str]) -> np.ndarray:
        raise NotImplementedError

    def score_items(self, prompts: list[str], responses: list[str]) -> list[AxisScore]:
        whole = self.probs(prompts, responses)
        per_sentence = self.cfg.options.get("sentences", True)
        sents = [split_sentences(r) if per_sentence else [] for r in responses]
        flat_p = [p for p, ss in zip(prompts, sents) for _ in ss]
        flat_s = [s for ss in sents for s in ss]
        sent_probs = self.probs(flat_p, flat_s) if flat_s else np.zeros((0, 3))
        out, j = [], 0
        for probs, ss in zip(whole, sents):
            details = {"p": dict(zip(LABELS, map(float, probs)))}
            if len(ss) > 1:
                worst = max(factual_uncertainty(p[0]) for p in sent_probs[j:j + len(ss)])
                details["sentence_max"] = worst
            j += len(ss)
            out.append(AxisScore(factual_uncertainty(probs[0]), details))
        return out


def _stopwords() -> frozenset[str]:
    path = Path(__file__).resolve().parents[1] / "resources" / "nltk_english_stopwords.txt"
    return frozenset(path.read_text().split())


@functools.cache
def _load_nli_lr():
    folder = package_dir("lr_model") / "trained_models"
    with warnings.catch_warnings():  # pickled with scikit-learn 1.3; loads and predicts fine
        warnings.simplefilter("ignore")
        parts = [pickle.load(open(folder / f, "rb"))  # noqa: SIM115
                 for f in ("feature_s1.pkl", "feature_s2.pkl", "LR_models.sav")]
    return parts


@register("fact", "nli-lr")
class LogisticNLIScorer(NLIScorer):
    """Embedded TF-IDF + logistic-regression NLI (SNLI). Preprocessing as in its training code
    (lower-case, no punctuation, NLTK stop words removed) minus WordNet lemmatisation, which
    needs an NLTK download."""

    def __init__(self, cfg: ScorerConfig):
        super().__init__(cfg)
        self.version = version_of("NLI-lr-model==0.0.2", "no-lemma")
        self.stop = _stopwords()
        self.table = str.maketrans("", "", string.punctuation)

    def _prep(self, text: str) -> str:
        return " ".join(w for w in text.lower().translate(self.table).split() if w not in self.stop)

    def probs(self, premises: list[str], hypotheses: list[str]) -> np.ndarray:
        from scipy.sparse import hstack

        v1, v2, model = _load_nli_lr()
        x = hstack([v1.transform([self._prep(p) for p in premises]),
                    v2.transform([self._prep(h) for h in hypotheses])])
        raw = model.predict_proba(x)  # class order [neutral, entailment, contradiction]
        return raw[:, [1, 0, 2]]


@register("fact", "lm-nli")
class LMNLIScorer(NLIScorer):
    """Zero-shot NLI from a causal LM's probabilities of options A (true) / B / C (false)."""

    def __init__(self, cfg: ScorerConfig):
        super().__init__(cfg)
        self.ref = cfg.model or "embedded"
        self.template = read_prompt("nli_judge.txt")
        self.version = version_of(model_identity(self.ref)["id"], "nli_judge.txt",
                                  dist_version("transformers"))

    def probs(self, premises: list[str], hypotheses: list[str]) -> np.ndarray:
        model, tok = load_causal_lm(self.ref)
        texts = [chat_prefix(tok, self.template.format(premise=p, hypothesis=h), "(")
                 for p, h in zip(premises, hypotheses)]
        return option_probs(model, tok, texts, ["A", "B", "C"], self.cfg.batch_size).numpy()


@register("fact", "hf-nli")
class HFNLIScorer(NLIScorer):
    """Any sequence-classification NLI model (path or hub id); labels read from its config."""

    def __init__(self, cfg: ScorerConfig):
        super().__init__(cfg)
        if not cfg.model:
            raise ConfigError("scoring.factual.model: hf-nli needs a model path or hub id")
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        path = resolve_model(cfg.model)
        with model_load(cfg.model, "scoring.factual.model"):
            self.tok = AutoTokenizer.from_pretrained(path)
            self.model = AutoModelForSequenceClassification.from_pretrained(path).eval()
        names = {i: str(n).lower() for i, n in self.model.config.id2label.items()}
        self.order = [next((i for i, n in names.items() if n.startswith(lab[:4])), None)
                      for lab in LABELS]
        if None in self.order:
            raise ConfigError(f"scoring.factual.model {cfg.model}: labels {names} do not name "
                             "entailment / neutral / contradiction")
        self.version = version_of(model_identity(cfg.model)["id"], dist_version("transformers"))

    @torch.inference_mode()
    def probs(self, premises: list[str], hypotheses: list[str]) -> np.ndarray:
        rows = []
        bs = self.cfg.batch_size
        for i in range(0, len(premises), bs):
            enc = self.tok(premises[i:i + bs], hypotheses[i:i + bs], return_tensors="pt",
                           padding=True, truncation=True)
            rows.append(torch.softmax(self.model(**enc).logits.float(), -1)[:, self.order])
        return torch.cat(rows).numpy() if rows else np.zeros((0, 3))
