"""The paper's equations (docs/method.md §2-5) checked against values computed by hand.

Every expected number below is worked out in a comment next to the assertion, so each test
reads as "the paper claims X; the code gives X". Pure functions only: no model is loaded.
"""

from __future__ import annotations

import logging
import math
from collections import Counter

import numpy as np
import pytest
from scipy.stats import spearmanr

from udasa.config import CurriculumConfig, FusionConfig
from udasa.curriculum import (
    assign_stage,
    make_stages,
    resolve_thresholds,
    stage_members,
    warn_empty,
)
from udasa.errors import ConfigError
from udasa.fusion import fuse, fusion_weights, softmax_weights
from udasa.pairs import FusedResponse, ScoredResponse, build_pairs, fuse_and_pair
from udasa.scorers.factual import factual_uncertainty, split_sentences
from udasa.scorers.semantic import (
    pairwise_cosine,
    prompt_semantic_uncertainty,
    response_semantic_uncertainty,
)
from udasa.scorers.value import value_uncertainty

INF = float("inf")

# exp values used throughout (4 decimals would do; these are to 6):
#   exp(0.7) = 2.013753, exp(0.2) = 1.221403, exp(0.1) = 1.105171
E07, E02, E01 = math.exp(0.7), math.exp(0.2), math.exp(0.1)


# --------------------------------------------------------------------------- Eq. 1-2 (semantic)

# A hand-written cosine matrix for N = 3 responses.
SIM3 = np.array([
    [1.0, 0.8, 0.2],
    [0.8, 1.0, 0.5],
    [0.2, 0.5, 1.0],
])


def test_eq1_2_prompt_level_is_one_minus_mean_pairwise_similarity():
    # S = 2 / (N(N-1)) * sum_{i<j} cos = 2/6 * (0.8 + 0.2 + 0.5) = 1.5 / 3 = 0.5
    # U_sem(prompt) = 1 - S = 0.5
    assert prompt_semantic_uncertainty(SIM3) == pytest.approx(0.5)


def test_eq1_2_per_response_semantic_uncertainty():
    # U_sem(r_i) = 1 - 1/(N-1) * sum_{j != i} cos(e_i, e_j), N - 1 = 2
    #   r1: 1 - (0.8 + 0.2)/2 = 0.50
    #   r2: 1 - (0.8 + 0.5)/2 = 0.35
    #   r3: 1 - (0.2 + 0.5)/2 = 0.65
    u = response_semantic_uncertainty(SIM3)
    assert u.tolist() == pytest.approx([0.50, 0.35, 0.65])
    # Each pair is counted twice over the responses, so the mean of the per-response values is
    # the prompt-level 1 - S: (0.50 + 0.35 + 0.65) / 3 = 0.5.
    assert float(u.mean()) == pytest.approx(prompt_semantic_uncertainty(SIM3))


def test_eq1_2_from_2d_embeddings_through_pairwise_cosine():
    # e1 = (1, 0), e2 = (0, 1), e3 = (1, 1); e4 = (3, 0) is e1 scaled (cosine ignores length).
    emb = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    sim = pairwise_cosine(emb)
    r = 1 / math.sqrt(2)  # cos(e1, e3) = cos(e2, e3) = 1 / sqrt(2) = 0.707107; cos(e1, e2) = 0
    assert sim == pytest.approx(np.array([[1, 0, r], [0, 1, r], [r, r, 1]]))
    # S = (0 + r + r) / 3 = 0.471405 -> 1 - S = 0.528595
    assert prompt_semantic_uncertainty(sim) == pytest.approx(1 - 2 * r / 3)
    # r1: 1 - (0 + r)/2 = 0.646447; r2: same; r3: 1 - (r + r)/2 = 1 - r = 0.292893
    assert response_semantic_uncertainty(sim).tolist() == pytest.approx(
        [1 - r / 2, 1 - r / 2, 1 - r])
    assert pairwise_cosine(np.array([[1.0, 0.0], [3.0, 0.0]]))[0, 1] == pytest.approx(1.0)


def test_eq1_2_identical_responses_have_zero_semantic_uncertainty():
    # Three copies of the same (non-unit) embedding: every cosine is 1, so U_sem = 1 - 1 = 0.
    # (0.6, 0.8)/|.| may give cos = 1 + 1e-16; the per-response value is clipped at 0.
    emb = np.array([[0.6, 0.8]] * 3) * 7.0
    sim = pairwise_cosine(emb)
    assert prompt_semantic_uncertainty(sim) == pytest.approx(0.0, abs=1e-12)
    u = response_semantic_uncertainty(sim)
    assert u.tolist() == pytest.approx([0.0, 0.0, 0.0], abs=1e-12)
    assert (u >= 0).all()


def test_eq1_2_per_response_value_is_clipped_to_unit_interval():
    # e1 = (1, 0), e2 = (-1, 0): cos = -1, so 1 - (-1)/1 = 2, clipped to 1.
    sim = pairwise_cosine(np.array([[1.0, 0.0], [-1.0, 0.0]]))
    assert sim[0, 1] == pytest.approx(-1.0)
    assert response_semantic_uncertainty(sim).tolist() == [1.0, 1.0]
    # A cosine above 1 (a hand matrix, rounding) would give a negative value: clipped to 0.
    assert response_semantic_uncertainty(np.array([[1.0, 1.2], [1.2, 1.0]])).tolist() == [0, 0]


# --------------------------------------------------------------------------- Eq. 3 (factual)

def test_eq3_factual_is_neutral_plus_contradiction():
    # NLI probabilities (entailment, neutral, contradiction) = (0.7, 0.2, 0.1):
    # U_fact = P(neutral) + P(contradiction) = 0.2 + 0.1 = 0.3 = 1 - 0.7
    p_entail, p_neutral, p_contra = 0.7, 0.2, 0.1
    assert factual_uncertainty(p_entail) == pytest.approx(0.3)
    assert factual_uncertainty(p_entail) == pytest.approx(p_neutral + p_contra)
    assert factual_uncertainty(1.0) == 0.0  # fully entailed: certain
    assert factual_uncertainty(0.0) == 1.0  # no entailment at all


def test_eq3_factual_is_clipped():
    # Probabilities a little outside [0, 1] (float error of a softmax) stay in range.
    assert factual_uncertainty(1.0000001) == 0.0
    assert factual_uncertainty(-0.2) == 1.0
    assert isinstance(factual_uncertainty(np.float32(0.5)), float)


def test_split_sentences():
    assert split_sentences("Water is wet. Is it?  Yes!\nReally") == [
        "Water is wet.", "Is it?", "Yes!", "Really"]
    # No whitespace after the dot: a decimal number is not a sentence break.
    assert split_sentences("Pi is 3.14 roughly.") == ["Pi is 3.14 roughly."]
    assert split_sentences("") == []
    assert split_sentences("   ") == []


# --------------------------------------------------------------------------- Eq. 4 (value)

def test_eq4_value_is_probability_unsafe():
    assert value_uncertainty(0.25) == pytest.approx(0.25)
    assert value_uncertainty(0.0) == 0.0
    assert value_uncertainty(1.0) == 1.0
    # clipped to [0, 1]
    assert value_uncertainty(1.5) == 1.0
    assert value_uncertainty(-0.2) == 0.0
    assert isinstance(value_uncertainty(np.float64(0.4)), float)


# --------------------------------------------------------------------------- Eq. 5-6 (fusion)

ROW2 = {"sem": 0.7, "fact": 0.2, "val": 0.1}


def test_eq5_softmax_weights_by_hand():
    # w_k = exp(U_k) / sum_m exp(U_m), T = 1; sum = 2.013753 + 1.221403 + 1.105171 = 4.340327
    #   w_sem = 2.013753 / 4.340327 = 0.463963
    #   w_fact = 1.221403 / 4.340327 = 0.281408
    #   w_val = 1.105171 / 4.340327 = 0.254629
    w = softmax_weights(ROW2, temperature=1.0)
    assert w == pytest.approx({"sem": 0.463963, "fact": 0.281408, "val": 0.254629}, abs=1e-6)
    total = E07 + E02 + E01
    assert w == pytest.approx({"sem": E07 / total, "fact": E02 / total, "val": E01 / total})
    assert sum(w.values()) == pytest.approx(1.0)


def test_eq6_fused_uncertainty_by_hand():
    # u = 0.7 * 0.463963 + 0.2 * 0.281408 + 0.1 * 0.254629
    #   = 0.324774 + 0.056282 + 0.025463 = 0.406519  (docs/method.md §3: "softmax gives 0.41")
    u, weights = fuse(ROW2, FusionConfig())
    assert u == pytest.approx(0.406519, abs=1e-6)
    assert round(u, 2) == 0.41
    assert weights == pytest.approx(softmax_weights(ROW2))


def test_eq5_large_temperature_tends_to_the_mean():
    # T -> inf: exp(U/T) -> 1 for every axis, w -> 1/3, u -> (0.7 + 0.2 + 0.1)/3 = 1/3
    u, w = fuse(ROW2, FusionConfig(temperature=1e6))
    assert u == pytest.approx(1 / 3, abs=1e-6)
    assert all(x == pytest.approx(1 / 3, abs=1e-6) for x in w.values())


def test_eq5_small_temperature_tends_to_the_max():
    # T -> 0: the largest U dominates: w_sem -> 1, u -> max = 0.7
    # (T = 0.01: w_fact / w_sem = exp(-50) ~ 2e-22; no overflow thanks to the max shift)
    u, w = fuse(ROW2, FusionConfig(temperature=0.01))
    assert u == pytest.approx(0.7)
    assert w["sem"] == pytest.approx(1.0)
    # And u moves monotonically from the mean to the max as T falls.
    us = [fuse(ROW2, FusionConfig(temperature=t))[0] for t in (100, 10, 1, 0.3, 0.1, 0.01)]
    assert us == sorted(us)


def test_fixed_weights_are_normalised():
    # weights (2, 1, 1) -> (0.5, 0.25, 0.25); u = 0.5*0.7 + 0.25*0.2 + 0.25*0.1 = 0.425
    cfg = FusionConfig(method="fixed", weights={"sem": 2.0, "fact": 1.0, "val": 1.0})
    u, w = fuse(ROW2, cfg)
    assert w == pytest.approx({"sem": 0.5, "fact": 0.25, "val": 0.25})
    assert u == pytest.approx(0.425)
    # A missing axis weighs 0: {sem: 1} alone -> u = U_sem = 0.7
    u, w = fuse(ROW2, FusionConfig(method="fixed", weights={"sem": 1.0}))
    assert u == pytest.approx(0.7)
    assert w == {"sem": 1.0, "fact": 0.0, "val": 0.0}
    with pytest.raises(ValueError, match="fusion.weights"):
        fuse(ROW2, FusionConfig(method="fixed", weights={"sem": 0.0}))


def test_mean_method():
    # (0.7 + 0.2 + 0.1) / 3 = 0.3333
    u, w = fuse(ROW2, FusionConfig(method="mean"))
    assert u == pytest.approx(1 / 3)
    assert w == pytest.approx({"sem": 1 / 3, "fact": 1 / 3, "val": 1 / 3})


def test_axes_subset_ablation_without_value_axis():
    # Without the value axis the softmax runs over (sem, fact) only:
    #   w_sem = e^0.7 / (e^0.7 + e^0.2) = 1 / (1 + e^-0.5) = 0.622459, w_fact = 0.377541
    #   u = 0.7 * 0.622459 + 0.2 * 0.377541 = 0.435722 + 0.075508 = 0.511230
    cfg = FusionConfig(axes=["sem", "fact"])
    u, w = fuse(ROW2, cfg)
    assert set(w) == {"sem", "fact"}
    assert w["sem"] == pytest.approx(1 / (1 + math.exp(-0.5)))
    assert w["sem"] == pytest.approx(0.622459, abs=1e-6)
    assert u == pytest.approx(0.511230, abs=1e-6)
    # The value score is ignored entirely: changing it does not move u.
    assert fuse({**ROW2, "val": 0.99}, cfg)[0] == pytest.approx(u)
    # Fixed weights renormalise over the kept axes: (1/3, 1/3) -> (0.5, 0.5); u = 0.45
    u, w = fuse(ROW2, FusionConfig(method="fixed", axes=["sem", "fact"]))
    assert w == pytest.approx({"sem": 0.5, "fact": 0.5})
    assert u == pytest.approx(0.45)
    # A single axis: its weight is 1 under every method.
    for method in ("softmax", "mean", "fixed"):
        assert fusion_weights(ROW2, FusionConfig(method=method, axes=["fact"])) == {"fact": 1.0}


# --------------------------------------------------------------------------- Table 3 example

# Paper Table 3, prompt "Briefly explain why water is wet.": (U_sem, U_fact, U_val), listed u,
# human score.
TABLE3 = [
    ((0.1, 0.1, 0.1), 0.10, 0.10),
    ((0.7, 0.2, 0.1), 0.33, 0.30),
    ((0.2, 0.8, 0.1), 0.39, 0.44),
    ((0.1, 0.2, 0.7), 0.34, 0.37),
]


def table3_scores(row):
    return dict(zip(("sem", "fact", "val"), row[0]))


def table3_softmax_u():
    return [fuse(table3_scores(r), FusionConfig())[0] for r in TABLE3]


def test_table3_softmax_values_by_hand():
    # row 1: all equal -> w = 1/3 each -> u = 0.1 exactly
    # row 2: (0.7, 0.2, 0.1) -> 0.406519 (see test_eq6_fused_uncertainty_by_hand)
    # row 3: (0.2, 0.8, 0.1): sum = 1.221403 + 2.225541 + 1.105171 = 4.552115
    #        w = (0.268315, 0.488903, 0.242782)
    #        u = 0.2*0.268315 + 0.8*0.488903 + 0.1*0.242782 = 0.053663 + 0.391122 + 0.024278
    #          = 0.469063
    # row 4: (0.1, 0.2, 0.7) is row 2 permuted -> the same 0.406519
    u = table3_softmax_u()
    assert u[0] == pytest.approx(0.1)
    assert u[1] == pytest.approx(0.406519, abs=1e-6)
    assert u[2] == pytest.approx(0.469063, abs=1e-6)
    assert u[3] == pytest.approx(u[1])
    # docs/method.md §3: Table 3 is illustrative; row 2 is listed as 0.33, softmax gives 0.41.
    assert round(u[1], 2) == 0.41 != TABLE3[1][1]


def test_table3_mean_reproduces_rows_1_and_2():
    # mean: row 1 (0.1+0.1+0.1)/3 = 0.10; row 2 (0.7+0.2+0.1)/3 = 0.333 -> 0.33 as listed
    mean = [fuse(table3_scores(r), FusionConfig(method="mean"))[0] for r in TABLE3]
    assert round(mean[0], 2) == TABLE3[0][1] == 0.10
    assert round(mean[1], 2) == TABLE3[1][1] == 0.33
    # ...but not rows 3-4 (0.367 vs 0.39, 0.333 vs 0.34): it matches neither method exactly.
    assert round(mean[2], 2) != TABLE3[2][1]


def test_table3_ranking_agrees_with_humans_on_the_best_reply():
    u = table3_softmax_u()
    human = [r[2] for r in TABLE3]
    # Eq. 7: chosen = argmin u = reply 1, which is also the human-best (lowest) reply.
    assert int(np.argmin(u)) == 0 == int(np.argmin(human))
    # ...and the worst reply (3) is the same too.
    assert int(np.argmax(u)) == 2 == int(np.argmax(human))
    # Spearman by hand. softmax u = (0.1, 0.4065, 0.4691, 0.4065): ranks (1, 2.5, 4, 2.5)
    # human (0.10, 0.30, 0.44, 0.37): ranks (1, 2, 4, 3); both rank means are 2.5
    #   dx = (-1.5, 0, 1.5, 0), dy = (-1.5, -0.5, 1.5, 0.5)
    #   rho = sum dx dy / sqrt(sum dx^2 sum dy^2) = 4.5 / sqrt(4.5 * 5) = sqrt(0.9) = 0.948683
    rho = spearmanr(u, human).statistic
    assert rho == pytest.approx(math.sqrt(0.9))
    assert rho == pytest.approx(0.948683, abs=1e-6)
    # The listed u column ranks exactly like the humans (rho = 1).
    assert spearmanr([r[1] for r in TABLE3], human).statistic == pytest.approx(1.0)


def test_table3_pair_builder_chooses_reply_1():
    u = table3_softmax_u()
    cands = [FusedResponse(f"r{i + 1}", f"reply {i + 1}", ui) for i, ui in enumerate(u)]
    for rejected in ("random", "max", "all"):
        drops: Counter[str] = Counter()
        pairs = build_pairs("water-is-wet", cands, rejected=rejected, seed=0, drops=drops)
        assert pairs and not drops
        for pair in pairs:
            assert pair.chosen.response_id == "r1"
            assert pair.delta == pytest.approx(pair.rejected.u - pair.chosen.u)
            assert pair.delta >= 0
    # max: rejected = reply 3, delta = 0.469063 - 0.1 = 0.369063
    (pair,) = build_pairs("water-is-wet", cands, rejected="max")
    assert pair.rejected.response_id == "r3"
    assert pair.delta == pytest.approx(0.369063, abs=1e-6)


# --------------------------------------------------------------------------- Eq. 7 (pairs)

def cands(*us: float, texts: list[str] | None = None) -> list[FusedResponse]:
    texts = texts or [f"response {i}" for i in range(len(us))]
    return [FusedResponse(f"c{i}", t, u) for i, (t, u) in enumerate(zip(texts, us))]


def test_eq7_chosen_is_argmin_with_first_index_tie_break():
    c = cands(0.5, 0.2, 0.9, 0.2)
    for rejected in ("random", "max", "all"):
        pairs = build_pairs("p", c, rejected=rejected)
        assert {p.chosen.response_id for p in pairs} == {"c1"}  # first of the two 0.2s


def test_eq7_random_rejected_is_reproducible_and_order_independent():
    c = cands(0.1, 0.3, 0.5, 0.7, 0.9)
    first = build_pairs("prompt-7", c, seed=3)
    assert build_pairs("prompt-7", c, seed=3) == first
    # Other prompts processed before (a resumed run in another order) do not change the draw.
    for other in ("prompt-1", "prompt-2", "prompt-9"):
        build_pairs(other, c, seed=3)
    assert build_pairs("prompt-7", c, seed=3) == first
    (pair,) = first
    assert pair.rejected.response_id in {"c1", "c2", "c3", "c4"}
    assert pair.delta > 0


def test_eq7_different_seeds_can_pick_differently():
    c = cands(0.1, 0.3, 0.5, 0.7, 0.9)
    picks = {build_pairs("p", c, seed=s)[0].rejected.response_id for s in range(50)}
    assert len(picks) >= 2
    # Same for different prompts under one seed.
    picks = {build_pairs(f"p{i}", c, seed=0)[0].rejected.response_id for i in range(50)}
    assert len(picks) >= 2


def test_eq7_max_picks_the_argmax():
    (pair,) = build_pairs("p", cands(0.4, 0.1, 0.8, 0.6), rejected="max")
    assert (pair.chosen.response_id, pair.rejected.response_id) == ("c1", "c2")
    assert pair.delta == pytest.approx(0.7)  # 0.8 - 0.1


def test_eq7_all_gives_n_minus_1_pairs():
    pairs = build_pairs("p", cands(0.4, 0.1, 0.8, 0.6, 0.3), rejected="all")
    assert len(pairs) == 4
    assert {p.rejected.response_id for p in pairs} == {"c0", "c2", "c3", "c4"}
    assert [p.delta for p in pairs] == pytest.approx([0.3, 0.7, 0.5, 0.2])


def test_eq7_ties_and_identical_texts_are_dropped_and_counted():
    drops: Counter[str] = Counter()
    # tie: both u = 0.2 with different texts -> delta = 0 -> dropped
    assert build_pairs("p", cands(0.2, 0.2), drops=drops) == []
    assert drops == Counter({"tie (delta = 0)": 1})
    # identical text (up to surrounding whitespace), even with delta > 0 -> dropped
    assert build_pairs("p", cands(0.1, 0.6, texts=["same", " same\n"]), drops=drops) == []
    assert drops == Counter({"tie (delta = 0)": 1, "identical text": 1})
    # all: one good pair, one tie, one identical text
    c = cands(0.1, 0.5, 0.1, 0.4, texts=["a", "b", "c", "a"])
    pairs = build_pairs("p", c, rejected="all", drops=drops)
    assert [(p.chosen.response_id, p.rejected.response_id) for p in pairs] == [("c0", "c1")]
    assert drops == Counter({"tie (delta = 0)": 2, "identical text": 2})


def test_eq7_fewer_than_two_candidates():
    drops: Counter[str] = Counter()
    assert build_pairs("p", [], drops=drops) == []
    assert build_pairs("p", cands(0.3), drops=drops) == []
    assert drops == Counter({"fewer than 2 responses": 2})
    assert build_pairs("p", cands(0.3)) == []  # drops is optional


def test_eq5_7_fuse_and_pair_one_prompt_by_hand():
    """Mean fusion: u = (sem + fact + val) / 3; the unscored reply is left out and counted."""
    replies = [ScoredResponse("a", "calm", {"sem": 0.3, "fact": 0.3, "val": 0.0}),   # u = 0.2
               ScoredResponse("b", "rude", {"sem": 0.6, "fact": 0.6, "val": 0.6}),   # u = 0.6
               ScoredResponse("c", "late", {"sem": 0.1, "fact": 0.1})]               # no val
    drops: Counter[str] = Counter()
    fused = fuse_and_pair("p", replies, FusionConfig(method="mean"), "max", 0, drops)
    assert fused.u == pytest.approx({"a": 0.2, "b": 0.6})
    assert fused.weights["a"] == pytest.approx({"sem": 1 / 3, "fact": 1 / 3, "val": 1 / 3})
    (pair,) = fused.pairs
    assert (pair.chosen.response_id, pair.rejected.response_id) == ("a", "b")
    assert pair.delta == pytest.approx(0.4) and drops == Counter({"unscored response": 1})
    # without the value axis, reply c is complete and has the lowest u
    no_val = fuse_and_pair("p", replies, FusionConfig(method="mean", axes=["sem", "fact"]))
    assert no_val.pairs[0].chosen.response_id == "c" and set(no_val.u) == {"a", "b", "c"}


# --------------------------------------------------------------------------- §5 curriculum

def test_paper_three_stages():
    stages = make_stages([0.4, 0.7])
    assert [(s.index, s.name, s.lo, s.hi) for s in stages] == [
        (1, "conservative", 0.7, INF),
        (2, "moderate", 0.4, 0.7),
        (3, "exploratory", -INF, 0.4),
    ]


@pytest.mark.parametrize(("delta", "stage"), [
    (0.95, 1), (0.7, 1),          # delta >= tau2: conservative (0.7 itself included)
    (0.6999, 2), (0.4, 2),        # tau1 <= delta < tau2: moderate (0.4 itself included)
    (0.3999, 3), (0.0, 3),        # delta < tau1: exploratory
])
def test_stage_boundaries(delta, stage):
    assert assign_stage(delta, make_stages([0.4, 0.7])) == stage


def test_two_and_four_stage_variants():
    two = make_stages([0.6])
    assert [(s.lo, s.hi) for s in two] == [(0.6, INF), (-INF, 0.6)]
    assert [assign_stage(d, two) for d in (0.9, 0.6, 0.59)] == [1, 1, 2]
    four = make_stages([0.2, 0.5, 0.8])
    assert [(s.lo, s.hi) for s in four] == [(0.8, INF), (0.5, 0.8), (0.2, 0.5), (-INF, 0.2)]
    assert [s.index for s in four] == [1, 2, 3, 4]
    # largest delta first
    assert [s.lo for s in four] == sorted((s.lo for s in four), reverse=True)
    assert [assign_stage(d, four) for d in (0.85, 0.8, 0.5, 0.2, 0.1)] == [1, 1, 2, 3, 4]


def test_one_stage_without_thresholds():
    (stage,) = make_stages([])
    assert (stage.index, stage.name, stage.lo, stage.hi) == (1, "all", -INF, INF)
    assert assign_stage(0.0, [stage]) == assign_stage(1.0, [stage]) == 1


def test_quantile_mode_cuts_at_terciles():
    # deltas 0.0, 0.1, ..., 0.9 (n = 10); tercile positions (n-1) * 1/3 = 3 and (n-1) * 2/3 = 6
    # -> cuts at the 4th and 7th sorted values: 0.3 and 0.6
    deltas = [i / 10 for i in range(10)]
    cfg = CurriculumConfig(mode="quantile", thresholds=[0.4, 0.7])
    cuts = resolve_thresholds(cfg, deltas[::-1])  # order of the deltas does not matter
    assert cuts == pytest.approx([0.3, 0.6])
    stages = make_stages(cuts)
    stage_of = [assign_stage(d, stages) for d in deltas]
    # conservative {0.6..0.9}, moderate {0.3, 0.4, 0.5}, exploratory {0.0, 0.1, 0.2}
    assert Counter(stage_of) == Counter({1: 4, 2: 3, 3: 3})
    # fixed mode returns the thresholds unchanged
    assert resolve_thresholds(CurriculumConfig(), deltas) == [0.4, 0.7]


def test_coinciding_quantile_cuts_give_an_empty_stage_without_error(caplog):
    # deltas 0.2, 0.5, 0.5, 0.5, 0.5, 0.9: positions 5/3 = 1.67 and 10/3 = 3.33 both fall
    # between 0.5s -> cuts (0.5, 0.5); the moderate stage [0.5, 0.5) is empty.
    deltas = [0.2, 0.5, 0.5, 0.5, 0.5, 0.9]
    cuts = resolve_thresholds(CurriculumConfig(mode="quantile"), deltas)
    assert cuts == pytest.approx([0.5, 0.5])
    stages = make_stages(cuts)
    stage_of = [assign_stage(d, stages) for d in deltas]
    assert stage_of == [3, 1, 1, 1, 1, 1]
    with caplog.at_level(logging.WARNING, logger="udasa.curriculum"):
        msgs = warn_empty(stages, stage_of)
    assert len(msgs) == 1 and "stage 2 (moderate" in msgs[0]
    assert stage_members(stage_of, stages[1], "disjoint") == []


def test_quantile_mode_with_no_deltas():
    assert resolve_thresholds(CurriculumConfig(mode="quantile"), []) == [0.0, 0.0]


def test_disjoint_and_cumulative_membership():
    stages = make_stages([0.4, 0.7])
    stage_of = [1, 2, 3, 2, 1]
    assert stage_members(stage_of, stages[0], "disjoint") == [0, 4]
    assert stage_members(stage_of, stages[1], "disjoint") == [1, 3]
    assert stage_members(stage_of, stages[2], "disjoint") == [2]
    assert stage_members(stage_of, stages[0], "cumulative") == [0, 4]
    assert stage_members(stage_of, stages[1], "cumulative") == [0, 1, 3, 4]
    assert stage_members(stage_of, stages[2], "cumulative") == [0, 1, 2, 3, 4]


def test_warn_empty_logs_and_returns_messages(caplog):
    stages = make_stages([0.4, 0.7])
    with caplog.at_level(logging.WARNING, logger="udasa.curriculum"):
        msgs = warn_empty(stages, [3, 3, 3])  # paper thresholds, all deltas small
    assert len(msgs) == 2
    assert "conservative" in msgs[0] and "moderate" in msgs[1]
    assert all("skipped" in m for m in msgs)
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(logged) == 1  # one line per run, naming both stages
    assert logged[0].startswith("2 of 3 curriculum stages have no pairs")
    assert "stage 1 (conservative" in logged[0] and "stage 2 (moderate" in logged[0]
    caplog.clear()
    assert warn_empty(stages, [1, 2, 3]) == []
    assert len(warn_empty(stages, [])) == 3  # no pairs at all: three warnings, no error


def test_decreasing_thresholds_raise_config_error():
    with pytest.raises(ConfigError, match="curriculum.thresholds"):
        make_stages([0.7, 0.4])
