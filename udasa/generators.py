"""Response generators behind one interface, docs/method.md §1.

`HFGenerator` runs a local transformers model and draws the N samples of a prompt in one
batched `generate` call; `OpenAIGenerator` calls any OpenAI-compatible endpoint (OpenAI, vLLM,
llama.cpp server). Both support the `sample` and `list` modes.
"""

from __future__ import annotations

import os
import re
from typing import Protocol

import torch

from udasa.config import GenerationConfig
from udasa.errors import UdasaError
from udasa.models import load_causal_lm, model_identity

LIST_PROMPT = (
    "You are a professional AI assistant. Please provide {n} distinct responses to the following "
    "question. Ensure each response is independent. Question: {question}"
)


class PromptTooLong(UdasaError):
    """The prompt plus the generation budget does not fit the model's context."""


class ListParseError(UdasaError):
    """A `list`-mode output did not contain N separable responses."""


class Generator(Protocol):
    name: str

    def generate(self, prompt: str, n: int, seed: int) -> list[str]:
        """N responses to `prompt`; deterministic for a given seed where the backend allows."""
        ...


_ITEM = re.compile(
    r"^\s*(?:[-*•]\s*)?(?:\*\*|__)?\s*(?:response|answer|option)?\s*#?\s*(\d{1,2})\s*"
    r"(?:[.):\]]|\s*[-–—])\s*(?:\*\*|__)?\s*:?\s*", re.IGNORECASE | re.MULTILINE)


def parse_list(text: str, n: int) -> list[str]:
    """Split a list-mode reply into exactly n responses.

    Understands "1." / "1)" / "Response 1:" / "**Response 1:**" numbering and, failing that,
    blank-line-separated paragraphs. Raises ListParseError when fewer than n non-empty items
    are found; extra items beyond n are dropped.
    """
    marks = list(_ITEM.finditer(text))
    items: list[str] = []
    expected = 1
    starts = []
    for m in marks:  # keep the increasing run 1, 2, 3, ... so nested numbers are not split
        if int(m.group(1)) == expected:
            starts.append(m)
            expected += 1
    if len(starts) >= 2:
        for i, m in enumerate(starts):
            end = starts[i + 1].start() if i + 1 < len(starts) else len(text)
            items.append(text[m.end():end])
    else:
        items = re.split(r"\n\s*\n", text)
    items = [re.sub(r"\s+", " ", it).strip().strip("*_ ").strip() for it in items]
    items = [it for it in items if it]
    if len(items) < n:
        raise ListParseError(f"list-mode output holds {len(items)} separable responses, "
                             f"expected {n}: {text[:200]!r}")
    return items[:n]


class _ModeGenerator:
    """docs/method.md §1's two modes over a backend's `_complete(prompt, k, seed, max_tokens)`."""

    cfg: GenerationConfig

    def messages(self, prompt: str) -> list[dict[str, str]]:
        system = [{"role": "system", "content": self.cfg.system_prompt}] \
            if self.cfg.system_prompt else []
        return [*system, {"role": "user", "content": prompt}]

    def _complete(self, prompt: str, k: int, seed: int, max_tokens: int) -> list[str]:
        raise NotImplementedError

    def generate(self, prompt: str, n: int, seed: int) -> list[str]:
        if self.cfg.mode == "list":
            reply = self._complete(LIST_PROMPT.format(n=n, question=prompt), 1, seed,
                                   self.cfg.max_new_tokens * n)[0]
            return parse_list(reply, n)
        return self._complete(prompt, n, seed, self.cfg.max_new_tokens)


class HFGenerator(_ModeGenerator):
    """A local causal LM (embedded SmolLM2 by default, or any path / hub id)."""

    def __init__(self, cfg: GenerationConfig):
        self.cfg = cfg
        self.model, self.tokenizer = load_causal_lm(cfg.model, cfg.dtype, cfg.device)
        self.name = model_identity(cfg.model)["id"]
        self.context = int(getattr(self.model.config, "max_position_embeddings", 2048))

    def _encode(self, prompt: str) -> torch.Tensor:
        if self.tokenizer.chat_template:
            ids = self.tokenizer.apply_chat_template(
                self.messages(prompt), add_generation_prompt=True, return_tensors="pt", return_dict=True,
            )["input_ids"]
        else:
            ids = self.tokenizer(prompt, return_tensors="pt")["input_ids"]
        budget = self.cfg.max_new_tokens * (self.cfg.n if self.cfg.mode == "list" else 1)
        if ids.shape[1] + budget > self.context:
            raise PromptTooLong(
                f"prompt is {ids.shape[1]} tokens; with {budget} new tokens it exceeds the "
                f"model's context of {self.context}")
        return ids

    @torch.inference_mode()
    def _complete(self, prompt: str, k: int, seed: int, max_new_tokens: int) -> list[str]:
        ids = self._encode(prompt).to(self.model.device)
        torch.manual_seed(seed)
        sample = self.cfg.temperature > 0
        out = self.model.generate(
            input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=sample,
            temperature=self.cfg.temperature if sample else None,
            top_p=self.cfg.top_p if sample else None, top_k=None,
            num_return_sequences=k, max_new_tokens=max_new_tokens,
            pad_token_id=self.tokenizer.pad_token_id,
        )
        return [t.strip() for t in
                self.tokenizer.batch_decode(out[:, ids.shape[1]:], skip_special_tokens=True)]


class OpenAIGenerator(_ModeGenerator):
    """Any OpenAI-compatible chat endpoint; the API key is read from `cfg.api_key_env`."""

    def __init__(self, cfg: GenerationConfig):
        import openai

        self.cfg = cfg
        self.name = f"openai:{cfg.model}"
        key = os.environ.get(cfg.api_key_env) or ("EMPTY" if cfg.base_url else None)
        if key is None:
            raise UdasaError(f"generation.backend=openai needs ${cfg.api_key_env} set "
                             "(or generation.base_url for a local server)")
        self.client = openai.OpenAI(api_key=key, base_url=cfg.base_url, timeout=cfg.timeout_s,
                                    max_retries=3)

    def _complete(self, prompt: str, k: int, seed: int, max_tokens: int) -> list[str]:
        messages = self.messages(prompt)
        texts: list[str] = []
        while len(texts) < k:  # some servers (llama.cpp) ignore n > 1: ask again for the rest
            reply = self.client.chat.completions.create(
                model=self.cfg.model, messages=messages, n=k - len(texts),
                temperature=self.cfg.temperature, top_p=self.cfg.top_p, max_tokens=max_tokens,
                seed=seed + len(texts))
            texts += [(c.message.content or "").strip() for c in reply.choices]
        return texts[:k]


def uses_chat_format(cfg: GenerationConfig) -> bool:
    """Whether prompts go to the model as chat messages (exports then use conversational form)."""
    if cfg.backend == "openai":
        return True
    from transformers import AutoTokenizer

    from udasa.models import resolve_model

    return bool(AutoTokenizer.from_pretrained(resolve_model(cfg.model)).chat_template)


def make_generator(cfg: GenerationConfig) -> Generator:
    return OpenAIGenerator(cfg) if cfg.backend == "openai" else HFGenerator(cfg)
