"""Data-parallel DPO that computes what one process computes (docs/scaling.md).

With W processes, every rank draws the same global batches as a single process would (the
same sampler, seed and batch size; accelerate's per-rank sharding is turned off), then trains
on its own equal share of each batch's pairs. A batch whose pair count is not a multiple of W
is filled up with null pairs (no completion tokens, reference log-probs 0), which carry no
gradient; each rank's loss is rescaled so that DDP's average of the ranks' gradients is the
gradient of the single-process batch mean, and the per-pair metrics TRL gathers leave the
null pairs out. Held-out evaluation is not split: every rank evaluates the whole held-out
set, so its metrics are the single-process ones (it costs W times the evaluation forwards,
a small part of a stage). What remains different is the order of float sums.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from udasa import dist
from udasa.errors import UdasaError


@dataclass
class Share:
    """One rank's part of a global batch of `pairs` real pairs."""

    inputs: dict
    pairs: int  # real pairs in the global batch
    size: int  # pairs in each rank's share (real and null)
    nulls: int  # null pairs in this rank's share
    real: torch.Tensor  # [size * W] bool: which pairs of the filled-up global batch are real


def split_batch(inputs: dict, world: int, rank: int) -> Share:
    """This rank's equal share of a collated DPO batch ([chosen rows; rejected rows] tensors
    and per-pair tensors), filled up with null pairs to a multiple of `world`."""
    pairs = inputs["completion_mask"].shape[0] // 2
    size = -(-pairs // world)
    order = torch.arange(size * world).clamp(max=pairs - 1)[rank * size:(rank + 1) * size]
    real = torch.arange(size * world) < pairs
    null = ~real[rank * size:(rank + 1) * size]
    out = {}
    for key, value in inputs.items():
        if torch.is_tensor(value) and value.dim() and value.shape[0] == 2 * pairs:
            value = torch.cat([value[:pairs][order], value[pairs:][order]])
        elif torch.is_tensor(value) and value.dim() and value.shape[0] == pairs:
            value = value[order].clone()
        out[key] = value
    if null.any():
        rows = torch.cat([null, null])
        out["completion_mask"] = out["completion_mask"].masked_fill(rows[:, None], 0)
        for key in ("ref_chosen_logps", "ref_rejected_logps"):
            if key in out:
                out[key][null] = 0.0
        if "soft_label" in out:
            out["soft_label"][null] = 1.0
    return Share(out, pairs, size, int(null.sum()), real)


def chosen_nll_sum(log_probs: torch.Tensor, completion_mask: torch.Tensor) -> torch.Tensor:
    """-(sum of the chosen completions' token log-probs), TRL's `sft` term before its mean."""
    shift = completion_mask[..., 1:]
    chosen_mask, _ = shift.chunk(2, dim=0)
    chosen, _ = log_probs[:, -shift.size(1):].chunk(2, dim=0)
    return -chosen[chosen_mask.bool()].sum()


def chosen_tokens(completion_mask: torch.Tensor) -> int:
    return int(completion_mask[..., 1:].chunk(2, dim=0)[0].sum())


@contextmanager
def real_pairs_only(accelerator, share: Share):
    """While TRL logs a share's metrics: gathered per-pair tensors keep the real pairs only,
    and sums are gathered from every rank (`gather_for_metrics` would drop ranks at the end
    of an epoch, taking them for the padding of accelerate's own sharding)."""
    plain = accelerator.gather

    def gather(tensor, *args, **kwargs):
        out = plain(tensor)
        if torch.is_tensor(tensor) and tensor.dim() == 1 and tensor.shape[0] == share.size:
            return out[share.real.to(out.device)]
        return out

    accelerator.gather = accelerator.gather_for_metrics = gather
    try:
        yield
    finally:  # drop the instance attributes; the methods show again
        del accelerator.gather, accelerator.gather_for_metrics


def one_process_batches(loader):
    """A prepared data loader made to yield, on every rank, the global batches a single
    process draws (transformers does the same for its rank-aware batch samplers)."""
    sampler = getattr(loader, "batch_sampler", None)
    if sampler is not None and hasattr(sampler, "num_processes"):
        sampler.num_processes, sampler.process_index = 1, 0
        sampler.even_batches = False  # a short last batch stays short, as in one process
    return loader


class RankSplitMixin:
    """For a DPOTrainer subclass: with several processes, train on equal shares of the
    single-process batches (see the module docstring); with one process, nothing changes."""

    def get_train_dataloader(self):
        loader = super().get_train_dataloader()
        if not dist.active():
            return loader
        if self.accelerator.num_processes != dist.world_size():
            raise UdasaError(f"{dist.world_size()} processes were launched but the trainer "
                             f"sees {self.accelerator.num_processes} (on CPUs set "
                             "training.device: cpu)")
        return one_process_batches(loader)

    def get_eval_dataloader(self, eval_dataset=None):
        loader = super().get_eval_dataloader(eval_dataset)
        return one_process_batches(loader) if dist.active() else loader

    def evaluation_loop(self, *args, **kwargs):
        if dist.active():  # every rank holds every batch: no gathering, the same truncation
            self.gather_function = self._local_for_metrics
        return super().evaluation_loop(*args, **kwargs)

    def _local_for_metrics(self, tensor):
        state = self.accelerator.gradient_state
        if state.end_of_dataloader and state.remainder > 0:
            return tensor[:state.remainder]
        return tensor

    def floating_point_ops(self, inputs) -> int:
        """This rank's share of the batch's FLOPs (the Trainer sums them over the ranks)."""
        flos = super().floating_point_ops(inputs)
        return flos // dist.world_size() if dist.active() else flos

    def _compute_loss(self, model, inputs, return_outputs):
        if not (dist.active() and self.model.training):
            return super()._compute_loss(model, inputs, return_outputs)
        if self.ld_alpha is not None or self.f_divergence_type != "reverse_kl" \
                or self.loss_types[0] != "sigmoid":
            raise UdasaError("training on several processes needs the plain sigmoid DPO loss "
                             "(loss_type sigmoid, reverse KL, no ld_alpha)")
        world = dist.world_size()
        share = split_batch(inputs, world, dist.rank())
        kinds, weights = self.loss_types, self.loss_weights
        sft = dict(zip(kinds, weights)).get("sft", 0.0)
        recorder = Recorder(model)
        self.loss_types, self.loss_weights = ["sigmoid"], [weights[0]]
        try:
            with real_pairs_only(self.accelerator, share):
                result = super()._compute_loss(recorder, share.inputs, return_outputs)
        finally:
            self.loss_types, self.loss_weights = kinds, weights
        self._uncount_null_tokens(inputs, share, world)
        loss = result[0] if return_outputs else result
        total = loss * share.size - share.nulls * weights[0] * math.log(2)
        loss = total * world / share.pairs
        if sft:
            nll = chosen_nll_sum(recorder.outputs[0].log_probs, share.inputs["completion_mask"])
            loss = loss + sft * world * nll / max(chosen_tokens(inputs["completion_mask"]), 1)
        return (loss, result[1]) if return_outputs else loss

    def _uncount_null_tokens(self, inputs: dict, share: Share, world: int) -> None:
        """TRL's running `num_tokens` without the null pairs' tokens (every rank holds the
        whole batch, so each knows how many there were in all)."""
        nulls = share.size * world - share.pairs
        if nulls and hasattr(self, "_total_train_tokens"):
            mask = inputs["attention_mask"]
            last = int(mask[share.pairs - 1].sum() + mask[2 * share.pairs - 1].sum())
            self._total_train_tokens -= nulls * last // getattr(self, "_tp_size", 1)
            self._metrics["train"]["num_tokens"] = [self._total_train_tokens]


class Recorder:
    """Calls a model and keeps its outputs, so a loss term can read its token log-probs."""

    def __init__(self, module):
        self.module, self.outputs = module, []

    def __call__(self, *args, **kwargs):
        out = self.module(*args, **kwargs)
        self.outputs.append(out)
        return out

    def __getattr__(self, name):
        return getattr(self.module, name)
