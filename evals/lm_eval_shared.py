"""lm-eval's `hf` backend with the start every request shares run once (`udasa-hf`).

lm-eval scores each (context, continuation) request with a full forward pass. For TruthfulQA MC
every context opens with the same ~170-token QA primer and the answers add ~25 tokens, so ~85%
of each forward recomputes the primer. `SharedStartHFLM` runs, per batch, only the columns
after the start all its rows share: the start's KV cache and logits are computed once (and kept
while later batches start with it too), copied to every row, and the rows' tails run on top.
The logits are those of a full forward up to float rounding; lm-eval's own batching,
truncation and log-likelihood code is untouched (only `_model_call` is replaced).
"""

from __future__ import annotations

import copy

import torch
from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM

MIN_SHARED = 16  # a shorter common start is not worth a second model call


def shared_start(inps: torch.Tensor) -> int:
    """The number of leading columns on which every row of `inps` (rows, columns) is equal."""
    same = (inps == inps[:1]).all(0)
    differ = (~same).nonzero()
    return int(differ[0]) if len(differ) else inps.shape[1]


@register_model("udasa-hf")
class SharedStartHFLM(HFLM):
    """`hf` with the shared start of each batch run once (see the module docstring)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._stem: tuple[torch.Tensor, torch.Tensor, object] | None = None  # ids, logits, cache

    def _model_call(self, inps: torch.Tensor, attn_mask: torch.Tensor | None = None,
                    labels: torch.Tensor | None = None) -> torch.Tensor:
        if attn_mask is not None or labels is not None or self.backend != "causal":
            return super()._model_call(inps, attn_mask, labels)
        start = min(shared_start(inps), inps.shape[1] - 1)  # every row keeps a tail
        if start < MIN_SHARED:
            return super()._model_call(inps, attn_mask, labels)
        with torch.no_grad():
            ids, logits, cache = self._stem_for(inps[0, :start])
            cache = copy.deepcopy(cache)
            cache.batch_repeat_interleave(inps.shape[0])
            tail = self.model(inps[:, len(ids):], cache=cache, use_cache=True).logits
        return torch.cat([logits.expand(inps.shape[0], -1, -1), tail], 1)

    def _stem_for(self, start: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, object]:
        """The kept stem when `start` begins with it, else `start` run and kept as the stem."""
        if self._stem is not None:
            ids = self._stem[0]
            if len(ids) <= len(start) and torch.equal(start[:len(ids)], ids):
                return self._stem
        out = self.model(start[None], use_cache=True)
        self._stem = (start.clone(), out.logits, out.cache)
        return self._stem
