"""Option probabilities from a causal LM: P("A") vs P("B") as the next token after a prompt.

The one place a causal LM's answer is read off its next token: the policy-as-judge scorers
(zero-shot NLI, harmless/harmful self-judgement), the local judge (yes/no, 1-10), RLAIF's
labeller and RAIN's self-evaluation. An option's token id is read from the tokenization of the
whole prompt followed by the option, never hard-coded nor taken from the option alone: after
"(" a SentencePiece tokenizer with a dummy prefix (LLaMA's) emits "A", while "A" tokenised
alone is "▁A"; after ": " or "\\n" other ids again. Each prompt gets its own ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

PROMPT_DIR = Path(__file__).resolve().parents[1] / "resources" / "judge_prompts"


def read_prompt(name: str) -> str:
    return (PROMPT_DIR / name).read_text(encoding="utf-8")


def option_token_ids(tokenizer, options: Sequence[str], after: str | None = None) -> list[int]:
    """The token id of each option as the model emits it right after the text `after`: the
    token that follows the prompt's own tokens in the tokenization of `after + option`. Each
    option must be exactly one token there, and the prompt's tokens must be unchanged by it
    (else a ValueError names the option and the prompt's end). Without `after`, the option
    tokenised alone (right only where the tokenizer adds nothing before it)."""
    if after is None:
        return [_single(opt, tokenizer.encode(opt, add_special_tokens=False)) for opt in options]
    return _ids_after(tokenizer, [after], options)[0]


def _single(opt: str, toks: list[int], where: str = "") -> int:
    if len(toks) != 1:
        raise ValueError(f"option {opt!r} is not a single token for this tokenizer{where}: "
                         f"{toks}")
    return toks[0]


def _ids_after(tokenizer, prompts: Sequence[str], options: Sequence[str]) -> list[list[int]]:
    """Per prompt, its options' token ids (`option_token_ids` with `after=prompt`)."""
    heads = tokenizer(list(prompts), add_special_tokens=False)["input_ids"]
    fulls = tokenizer([p + o for p in prompts for o in options],
                      add_special_tokens=False)["input_ids"]
    out = []
    for i, (prompt, head) in enumerate(zip(prompts, heads, strict=True)):
        ids = []
        for k, opt in enumerate(options):
            full = fulls[i * len(options) + k]
            where = f" after {prompt[-24:]!r}"
            if full[:len(head)] != head:
                raise ValueError(f"option {opt!r} merges with the prompt's end{where}: the "
                                 f"prompt's tokens {head[-3:]} become {full[len(head) - 3:]}")
            ids.append(_single(opt, full[len(head):], where))
        out.append(ids)
    return out


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
    strings, each one token where it follows its prompt (`option_token_ids`; a token-id
    prompt is decoded to find them), or token ids used after every prompt. With
    `renormalise` the K probabilities of a row sum to 1 (the model's choice among the
    options); without, each is P(token) over the whole vocabulary. All prompts go to the
    engine at once (udasa/engine.py): length-sorted, left-padded batches sized by its token
    budget (`batch_size`, when given, also caps the rows per batch). Prompts longer than
    `max_length` tokens keep their end, where the answer prefix is.
    """
    from udasa.engine import engine_for

    if not prompts:
        return torch.empty(0, len(options))
    texts = isinstance(prompts[0], str)
    encoded = (tokenizer(list(prompts), add_special_tokens=False)["input_ids"] if texts
               else [list(p) for p in prompts])
    if all(isinstance(o, int) for o in options):
        rows = [list(options)] * len(prompts)
    else:
        rows = _ids_after(tokenizer, prompts if texts else tokenizer.batch_decode(encoded),
                          [str(o) for o in options])
    columns = sorted({i for row in rows for i in row})
    engine = engine_for(model, tokenizer)
    cap, engine.max_rows = engine.max_rows, batch_size
    try:
        logp = engine.next_token_logprobs([x[-max_length:] for x in encoded], columns)
    finally:
        engine.max_rows = cap
    at = {tok: k for k, tok in enumerate(columns)}
    logp = torch.gather(logp, 1, torch.tensor([[at[i] for i in row] for row in rows]))
    return torch.softmax(logp, dim=-1) if renormalise else logp.exp()
