"""RLAIF's soft labels in DPO (conservative form): real gradients of the loss on a tiny policy."""

from __future__ import annotations

import copy

import pytest
import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import DPOConfig

from udasa.training import SoftLabelDPOTrainer, soft_label_term

PAIR = {"prompt": [{"role": "user", "content": "How do I make tea?"}],
        "chosen": [{"role": "assistant", "content": "Boil water and steep the leaves."}],
        "rejected": [{"role": "assistant", "content": "Go away."}]}

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # small ops, shared cores


def loss_and_grad(path: str, out: str, label: float | None, precompute: bool):
    """DPO loss and its gradient norm for one pair at the reference (policy == reference)."""
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    row = PAIR | ({"soft_label": label} if label is not None else {})
    args = DPOConfig(output_dir=out, per_device_train_batch_size=1, max_length=64,
                     precompute_ref_log_probs=precompute, use_cpu=True, bf16=False,
                     activation_checkpointing=False, report_to=[], save_strategy="no")
    trainer = SoftLabelDPOTrainer(model=model, ref_model=None if precompute else
                                  copy.deepcopy(model), args=args,
                                  train_dataset=Dataset.from_list([row]), processing_class=tok)
    batch = next(iter(trainer.get_train_dataloader()))
    assert ("soft_label" in batch) == (label is not None)
    loss = trainer.compute_loss(trainer.model, batch)
    loss.backward()
    grads = [p.grad.flatten() for p in trainer.model.parameters() if p.grad is not None]
    return float(loss.detach()), float(torch.cat(grads).norm())


@pytest.mark.parametrize("precompute", [False, True])
def test_soft_label_scales_the_preference_gradient(tiny_policy, tmp_path, precompute):
    hard_loss, hard = loss_and_grad(tiny_policy, str(tmp_path), 1.0, precompute)
    plain_loss, plain = loss_and_grad(tiny_policy, str(tmp_path), None, precompute)
    assert hard > 0 and hard == pytest.approx(plain, rel=1e-5)  # p = 1 is TRL's hard DPO
    assert hard_loss == pytest.approx(plain_loss, rel=1e-6)
    _, half = loss_and_grad(tiny_policy, str(tmp_path), 0.5, precompute)
    _, soft = loss_and_grad(tiny_policy, str(tmp_path), 0.9, precompute)
    assert half < 1e-6 * hard  # an undecided label pulls neither way
    assert soft < hard and soft / hard == pytest.approx(0.8, rel=1e-3)  # (0.9 - 0.5) / 0.5


def test_soft_label_term_is_the_conservative_dpo_loss():
    d = torch.tensor([-1.5, 0.0, 0.7, 2.0])
    p = torch.tensor([0.5, 0.9, 0.2, 1.0])
    beta = 0.1
    logsig = torch.nn.functional.logsigmoid
    cdpo = -p * logsig(beta * d) - (1 - p) * logsig(-beta * d)
    ours = -logsig(beta * d) + soft_label_term(beta, p, d, torch.zeros(4))
    assert torch.allclose(ours, cdpo, atol=1e-6)
