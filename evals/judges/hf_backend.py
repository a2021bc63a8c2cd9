"""The ``hf`` judge backend: a local causal LM scores from its next-token probabilities.

The rendered prompt is the user turn of the model's chat template; the score is read from the
first token of the assistant's answer, so every item gets a score (no parse failures):

* ``yes-no``: P(yes) / (P(yes) + P(no)), each summed over the tokenizer's single-token spellings
  "yes", "Yes", " yes", " Yes" (and the same for no), looked up from the tokenizer.
* ``1-10``: the expected rating. The first token is one of the digits "1".."9" (renormalised
  over those nine); "10" is two tokens, so a second forward pass after "1" splits P("1") into
  "1" and "10" by q = P("0") / (P("0") + P(no digit)): continuations "11".."19" are not ratings
  and are left out of q's normaliser.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from evals.judges.base import JudgeConfig, Judgement, JudgeStats, Template
from udasa.models import model_identity
from udasa.registry import register
from udasa.scorers.lm_options import chat_prefix, option_probs, option_token_ids

YES = ("yes", "Yes", " yes", " Yes")
NO = ("no", "No", " no", " No")
DIGITS = tuple(str(d) for d in range(10))
CHUNK = 64  # prompts per engine call: large enough to sort by length, small enough to cache
MAX_LENGTH = 2048  # prompt tokens kept (the end, where the answer starts)


def single_token_ids(tokenizer, spellings: tuple[str, ...], after: str) -> list[int]:
    """Ids of those spellings that are one token right after the text `after` (the judge's
    prompt; at least one must be)."""
    ids = set()
    for s in spellings:
        try:
            ids.update(option_token_ids(tokenizer, [s], after=after))
        except ValueError:
            continue
    if not ids:
        raise ValueError(f"none of {spellings} is a single token for this tokenizer")
    return sorted(ids)


@register("judge_backend", "hf")
class HFBackend:
    """A transformers causal LM (``embedded`` = the SmolLM2 policy), loaded on first use."""

    # a small local model cannot tell true from false: truthfulness uses reference answers
    judges_truthfulness = False

    def __init__(self, config: JudgeConfig, stats: JudgeStats):
        self.config = config
        self.stats = stats
        self.model_name = model_identity(config.model)["id"]
        self._lm: tuple[Any, Any] | None = None

    def params(self, template: Template) -> dict[str, Any]:
        return {"template": template.name, "method": "next-token-probs", "scale": template.scale}

    @property
    def lm(self) -> tuple[Any, Any]:
        if self._lm is None:
            from udasa.models import load_causal_lm
            self._lm = load_causal_lm(self.config.model)
        return self._lm

    def run(self, prompts: list[str], template: Template) -> Iterator[tuple[int, Judgement]]:
        """Scores in chunks of `CHUNK` prompts (the engine batches each chunk by length and
        token budget), yielded chunk by chunk so the caller caches as it goes."""
        model, tok = self.lm if prompts else (None, None)
        step = max(CHUNK, self.config.batch_size)
        for start in range(0, len(prompts), step):
            texts = [chat_prefix(tok, p, "") for p in prompts[start:start + step]]
            ids = [tok.encode(t, add_special_tokens=False) for t in texts]
            # the answer's token ids as the model emits them after the prompt (every prompt
            # ends in the same chat template, so the first one's end stands for all)
            if template.scale == "yes-no":
                scores, replies = self._yes_no(model, tok, ids, texts[0])
            else:
                scores, replies = self._rating(model, tok, ids, texts[0])
            self.stats.add(calls=len(ids), prompt_tokens=sum(len(x) for x in ids))
            for k, (score, reply) in enumerate(zip(scores, replies, strict=True)):
                yield start + k, Judgement(score, True, reply, prompt_tokens=len(ids[k]))

    def _yes_no(self, model, tok, ids: list[list[int]], after: str
                ) -> tuple[list[float], list[str]]:
        yes, no = single_token_ids(tok, YES, after), single_token_ids(tok, NO, after)
        probs = option_probs(model, tok, ids, yes + no, max_length=MAX_LENGTH, renormalise=False)
        p_yes = probs[:, :len(yes)].sum(-1)
        p_no = probs[:, len(yes):].sum(-1)
        p = (p_yes / (p_yes + p_no).clamp_min(1e-12)).tolist()
        return p, [f"P(yes)={x:.3f}" for x in p]

    def _rating(self, model, tok, ids: list[list[int]], after: str
                ) -> tuple[list[float], list[str]]:
        digit = option_token_ids(tok, list(DIGITS), after=after)  # "0".."9", each one token
        first = option_probs(model, tok, ids, digit[1:], max_length=MAX_LENGTH, renormalise=False)
        first = first / first.sum(-1, keepdim=True)  # P(first digit = 1..9)
        try:  # a digit right after "1" (a tokenizer that merges "10" keeps the digits' ids)
            second = option_token_ids(tok, list(DIGITS), after=after + "1")
        except ValueError:
            second = digit
        after_one = option_probs(model, tok, [x + [digit[1]] for x in ids], second,
                                 max_length=MAX_LENGTH, renormalise=False)
        p_zero = after_one[:, 0]
        p_stop = 1 - after_one.sum(-1)  # "1" followed by no digit: the rating 1
        q = p_zero / (p_zero + p_stop).clamp_min(1e-12)
        p10 = first[:, 0] * q
        values = torch.arange(1, 10, dtype=first.dtype)
        expected = ((first * values).sum(-1) - p10 + 10 * p10).tolist()  # P(1) moves to 10
        return expected, [f"E[score]={e:.2f} (P(10)={p:.3f})"
                          for e, p in zip(expected, p10.tolist(), strict=True)]
