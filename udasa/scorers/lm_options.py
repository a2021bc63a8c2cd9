"""Option probabilities from a causal LM: P("A") vs P("B") as the next token after a prompt.

The one place a causal LM's answer is read off its next token: the policy-as-judge scorers
(zero-shot NLI, harmless/harmful self-judgement), the local judge (yes/no, 1-10), RLAIF's
labeller and RAIN's self-evaluation. Option token ids are looked up from the tokenizer, never
hard-coded.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

PROMPT_DIR = Path(__file__).resolve().parents[1] / "resources" / "judge_prompts"


def read_prompt(name: str) -> str:
    return (PROMPT_DIR / name).read_text(encoding="utf-8")


def option_token_ids(tokenizer, options: Sequence[str]) -> list[int]:
    """The single token id of each option letter as it follows "(" in the answer prefix."""
    ids = []
    for opt in options:
        toks = tokenizer.encode(opt, add_special_tokens=False)
        if len(toks) != 1:
            raise ValueError(f"option {opt!r} is not a single token for this tokenizer: {toks}")
        ids.append(toks[0])
    return ids


def chat_prefix(tokenizer, user_text: str, answer_prefix: str) -> str:
    """The chat-formatted user turn followed by the start of the assistant's answer."""
    if tokenizer.chat_template:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": user_text}], tokenize=False, add_generation_prompt=True)
    else:
        text = user_text + "\n"
    return text + answer_prefix


def option_probs(model, tokenizer, prompts: Sequence[str] | Sequence[Sequence[int]],
                 options: Sequence[str] | Sequence[int], batch_size: int | None = None,
                 max_length: int = 1024, renormalise: bool = True) -> torch.Tensor:
    """Next-token probabilities of `options` after each prompt: shape (len(prompts), K).

    `prompts` are texts (tokenised without special tokens) or token id lists; `options` are
    strings that are one token each, or token ids. With `renormalise` the K probabilities of a
    row sum to 1 (the model's choice among the options); without, each is P(token) over the
    whole vocabulary. All prompts go to the engine at once (udasa/engine.py): length-sorted,
    left-padded batches sized by its token budget (`batch_size`, when given, also caps the
    rows per batch). Prompts longer than `max_length` tokens keep their end, where the answer
    prefix is.
    """
    from udasa.engine import engine_for

    ids = [o for o in options if isinstance(o, int)]
    ids = ids if len(ids) == len(options) else option_token_ids(tokenizer, options)
    if not prompts:
        return torch.empty(0, len(options))
    encoded = (tokenizer(list(prompts), add_special_tokens=False)["input_ids"]
               if isinstance(prompts[0], str) else prompts)
    engine = engine_for(model, tokenizer)
    rows, engine.max_rows = engine.max_rows, batch_size
    try:
        logp = engine.next_token_logprobs([list(x[-max_length:]) for x in encoded], ids)
    finally:
        engine.max_rows = rows
    return torch.softmax(logp, dim=-1) if renormalise else logp.exp()
