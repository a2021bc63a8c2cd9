"""Option probabilities from a causal LM: P("A") vs P("B") as the next token after a prompt.

Used by the policy-as-judge scorers (zero-shot NLI, harmless/harmful self-judgement). Option
token ids are looked up from the tokenizer, never hard-coded.
"""

from __future__ import annotations

from pathlib import Path

import torch

PROMPT_DIR = Path(__file__).resolve().parents[1] / "resources" / "judge_prompts"


def read_prompt(name: str) -> str:
    return (PROMPT_DIR / name).read_text(encoding="utf-8")


def option_token_ids(tokenizer, options: list[str]) -> list[int]:
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


def option_probs(model, tokenizer, texts: list[str], options: list[str],
                 batch_size: int | None = None, max_length: int = 1024) -> torch.Tensor:
    """Normalised next-token probabilities over `options` for each text: shape (len(texts), K).

    All texts go to the engine at once: length-sorted, left-padded batches sized by its token
    budget (`batch_size`, when given, also caps the rows per batch). Texts longer than
    `max_length` tokens keep their end, where the answer prefix is.
    """
    from udasa.engine import engine_for

    ids = option_token_ids(tokenizer, options)
    if not texts:
        return torch.empty(0, len(options))
    encoded = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    engine = engine_for(model, tokenizer)
    rows, engine.max_rows = engine.max_rows, batch_size
    try:
        logp = engine.next_token_logprobs([x[-max_length:] for x in encoded], ids)
    finally:
        engine.max_rows = rows
    return torch.softmax(logp, dim=-1)
