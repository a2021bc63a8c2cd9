"""`udasa-hf` (evals/lm_eval_shared.py): lm-eval's hf backend with each batch's shared start run
once gives lm-eval's own log-likelihoods, on a tiny checkpoint and on TruthfulQA MC."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from evals.lm_eval_shared import MIN_SHARED, SharedStartHFLM, shared_start
from evals.models import EvalModel
from evals.tasks.truthfulqa_mc import TruthfulQAMC
from udasa.data import data_dir


def test_shared_start_counts_the_equal_leading_columns():
    x = torch.tensor([[1, 2, 3, 4], [1, 2, 9, 4], [1, 2, 3, 0]])
    assert shared_start(x) == 2
    assert shared_start(x[:1]) == 4
    assert shared_start(torch.tensor([[5, 1], [6, 1]])) == 0


def test_model_call_equals_a_full_forward(tiny_policy):
    lm = SharedStartHFLM(pretrained=tiny_policy, device="cpu", dtype="float32", batch_size=4)
    torch.manual_seed(0)
    stem = torch.randint(0, 1000, (MIN_SHARED + 20,))
    rows = torch.stack([torch.cat([stem, torch.randint(0, 1000, (7,))]) for _ in range(3)])
    with torch.no_grad():
        full = lm.model(rows).logits
    got = lm._model_call(rows)
    assert got.shape == full.shape
    assert torch.allclose(got, full, atol=1e-4)
    other = rows.clone()
    other[1, 3] += 1  # no long shared start: the plain forward
    assert torch.allclose(lm._model_call(other), lm.model(other).logits, atol=1e-4)
    kept = lm._stem
    assert kept is not None and torch.equal(kept[0], rows[0, :len(kept[0])])


@pytest.mark.slow  # lm-eval twice: minutes on a busy machine
@pytest.mark.skipif(not (data_dir() / "truthfulqa" / "mc_task.json").is_file(),
                    reason="shared TruthfulQA data not found (set UDASA_DATA_DIR)")
def test_truthfulqa_mc_scores_match_lm_eval_hf(tiny_policy):
    task = TruthfulQAMC()
    samples = task.samples(4, 0, None)
    model = EvalModel("tiny", tiny_policy)
    ours = task.option_scores(None, model, samples)
    task.lm_eval_model = "hf"
    theirs = task.option_scores(None, model, samples)
    for a, b in zip(ours, theirs):
        assert a["mc1"]["acc"] == b["mc1"]["acc"]
        assert a["mc2"]["mc2"] == pytest.approx(b["mc2"]["mc2"], abs=1e-4)
