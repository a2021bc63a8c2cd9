"""Response generators behind one interface, docs/method.md §1.

Each backend registers itself (registry kind ``generator``, chosen by `generation.backend`).
`HFGenerator` (``hf``) runs a local transformers model through the batched engine
(udasa/engine.py): many prompts at once, N samples each from one prefill, seeds per prompt.
`OpenAIGenerator` (``openai``) calls any OpenAI-compatible endpoint (OpenAI, vLLM, SGLang, TGI,
llama.cpp server) with `concurrency` requests in flight. Both support the `sample` and `list` modes, and both take
many prompts at once (`generate_many`).
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Protocol

from udasa.config import GenerationConfig
from udasa.engine import Request, engine_for
from udasa.errors import UdasaError
from udasa.models import load_causal_lm, model_identity
from udasa.registry import lookup, register
from udasa.retry import MalformedResponse, with_retries

LIST_PROMPT = (
    "You are a professional AI assistant. Please provide {n} distinct responses to the following "
    "question. Ensure each response is independent. Question: {question}"
)


class PromptTooLong(UdasaError):
    """The prompt plus the generation budget does not fit the model's context."""


class ListParseError(UdasaError):
    """A `list`-mode output did not contain N separable responses."""


class GenerationFailed(UdasaError):
    """An endpoint kept failing for this prompt after the retries."""


class Generator(Protocol):
    name: str

    def generate(self, prompt: str, n: int, seed: int) -> list[str]:
        """N responses to `prompt`; deterministic for a given seed where the backend allows."""
        ...


def generate_many(generator, prompts: Sequence[str], n: int, seeds: Sequence[int],
                  on_tokens: Callable[[int], None] | None = None
                  ) -> Iterator[tuple[int, list[str] | UdasaError]]:
    """(index, n responses or the error) per prompt, through the generator's own batched
    `generate_many` where it has one, else one prompt at a time (e.g. RAIN's search)."""
    if hasattr(generator, "generate_many"):
        yield from generator.generate_many(prompts, n, seeds, on_tokens)
        return
    for i, (prompt, seed) in enumerate(zip(prompts, seeds, strict=True)):
        try:
            yield i, generator.generate(prompt, n, seed)
        except UdasaError as exc:
            yield i, exc


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


Outcome = list[str] | UdasaError  # N responses, or why this prompt has none


class _ModeGenerator:
    """docs/method.md §1's two modes over a backend's `_complete_many(jobs)`.

    A job is (prompt text, samples k, seed, max new tokens); `_complete_many` yields
    (job index, k texts or an error) as each job completes, in any order.
    """

    cfg: GenerationConfig
    tokens_generated: int = 0

    def messages(self, prompt: str) -> list[dict[str, str]]:
        system = [{"role": "system", "content": self.cfg.system_prompt}] \
            if self.cfg.system_prompt else []
        return [*system, {"role": "user", "content": prompt}]

    def _complete_many(self, jobs: list[tuple[str, int, int, int]],
                       on_tokens: Callable[[int], None] | None
                       ) -> Iterator[tuple[int, list[str] | UdasaError]]:
        raise NotImplementedError

    def generate_many(self, prompts: Sequence[str], n: int, seeds: Sequence[int],
                      on_tokens: Callable[[int], None] | None = None
                      ) -> Iterator[tuple[int, Outcome]]:
        """(prompt index, n responses or the error) for every prompt, as each completes.

        All prompts go to the backend at once (batched locally, concurrent over HTTP); a
        prompt's output depends only on its text and seed, not on the other prompts.
        """
        if self.cfg.mode == "list":
            jobs = [(LIST_PROMPT.format(n=n, question=p), 1, s, self.cfg.max_new_tokens * n)
                    for p, s in zip(prompts, seeds, strict=True)]
        else:
            jobs = [(p, n, s, self.cfg.max_new_tokens)
                    for p, s in zip(prompts, seeds, strict=True)]
        for i, out in self._complete_many(jobs, on_tokens):
            if self.cfg.mode == "list" and not isinstance(out, UdasaError):
                try:
                    out = parse_list(out[0], n)
                except ListParseError as exc:
                    out = exc
            yield i, out

    def generate(self, prompt: str, n: int, seed: int) -> list[str]:
        ((_, out),) = self.generate_many([prompt], n, [seed])
        if isinstance(out, UdasaError):
            raise out
        return out


@register("generator", "hf")
class HFGenerator(_ModeGenerator):
    """A local causal LM (embedded SmolLM2 by default, or any path / hub id), decoded by the
    batched engine (udasa/engine.py)."""

    def __init__(self, cfg: GenerationConfig):
        self.cfg = cfg
        self.model, self.tokenizer = load_causal_lm(cfg.model, cfg.dtype, cfg.device)
        self.name = model_identity(cfg.model)["id"]
        self.context = int(getattr(self.model.config, "max_position_embeddings", 2048))
        self.engine = engine_for(self.model, self.tokenizer, cfg.batch_tokens)

    @staticmethod
    def chat_format(cfg: GenerationConfig) -> bool:
        """Whether the model has a chat template (read from its tokenizer alone)."""
        from transformers import AutoTokenizer

        from udasa.models import model_load, resolve_model

        with model_load(cfg.model, "generation.model"):
            return bool(AutoTokenizer.from_pretrained(resolve_model(cfg.model)).chat_template)

    def _encode(self, prompt: str, budget: int) -> list[int]:
        if self.tokenizer.chat_template:
            ids = self.tokenizer.apply_chat_template(
                self.messages(prompt), add_generation_prompt=True, return_dict=True,
            )["input_ids"]
        else:
            ids = self.tokenizer(prompt)["input_ids"]
        if len(ids) + budget > self.context:
            raise PromptTooLong(
                f"prompt is {len(ids)} tokens; with {budget} new tokens it exceeds the "
                f"model's context of {self.context}")
        return list(ids)

    def _complete_many(self, jobs, on_tokens):
        requests, index = [], []
        for i, (prompt, k, seed, max_new) in enumerate(jobs):
            try:
                ids = self._encode(prompt, max_new)
            except PromptTooLong as exc:
                yield i, exc
                continue
            requests.append(Request(ids, k, seed, max_new, self.cfg.temperature,
                                    self.cfg.top_p))
            index.append(i)
        before = self.engine.tokens_generated
        for j, rows in self.engine.generate(requests, on_tokens):
            yield index[j], [t.strip() for t in
                             self.tokenizer.batch_decode(rows, skip_special_tokens=True)]
        self.tokens_generated += self.engine.tokens_generated - before


@register("generator", "openai")
class OpenAIGenerator(_ModeGenerator):
    """Any OpenAI-compatible chat endpoint (OpenAI, vLLM, SGLang, TGI, llama.cpp server).

    `generation.concurrency` requests are in flight at once; each is retried with backoff on
    429 / 5xx / timeouts (udasa/retry.py). The API key is read from `cfg.api_key_env`.
    """

    def __init__(self, cfg: GenerationConfig):
        import openai

        self.cfg = cfg
        self.name = f"openai:{cfg.model}"
        key = os.environ.get(cfg.api_key_env) or ("EMPTY" if cfg.base_url else None)
        if key is None:
            raise UdasaError(f"generation.backend=openai needs ${cfg.api_key_env} set "
                             "(or generation.base_url for a local server)")
        self.client = openai.OpenAI(api_key=key, base_url=cfg.base_url, timeout=cfg.timeout_s,
                                    max_retries=0)

    @staticmethod
    def chat_format(cfg: GenerationConfig) -> bool:
        return True  # chat completions: prompts always go as messages

    def _complete_many(self, jobs, on_tokens):
        if not jobs:
            return
        with ThreadPoolExecutor(max_workers=max(1, self.cfg.concurrency),
                                thread_name_prefix="generate") as pool:
            futures = {pool.submit(self._complete, *job): i for i, job in enumerate(jobs)}
            for future in as_completed(futures):
                texts, tokens = future.result()
                self.tokens_generated += tokens
                if on_tokens:
                    on_tokens(tokens)
                yield futures[future], texts

    def _complete(self, prompt: str, k: int, seed: int, max_tokens: int
                  ) -> tuple[list[str] | UdasaError, int]:
        """k samples of one prompt (`n` in one request; asked again for the rest where the
        server ignores `n`, as llama.cpp does) and the completion tokens they took. A request
        that still fails after the retries is this prompt's error, not the step's."""
        cfg = self.cfg
        texts: list[str] = []
        tokens = 0
        while len(texts) < k:
            have = len(texts)
            try:
                got, used = with_retries(
                    functools.partial(self._request, prompt, k - have, seed + have, max_tokens),
                    f"generate {cfg.model}", cfg.max_retries, cfg.backoff_base_s,
                    cfg.backoff_max_s)
            except Exception as exc:  # noqa: BLE001 - recorded against this prompt
                return GenerationFailed(f"{cfg.base_url or 'openai'}: {type(exc).__name__}: "
                                        f"{exc}"), tokens
            texts += got
            tokens += used
        return texts[:k], tokens

    def _request(self, prompt: str, n: int, seed: int, max_tokens: int
                 ) -> tuple[list[str], int]:
        cfg = self.cfg
        reply = self.client.chat.completions.create(
            model=cfg.model, messages=self.messages(prompt), n=n, temperature=cfg.temperature,
            top_p=cfg.top_p, max_tokens=max_tokens, seed=seed)
        if not getattr(reply, "choices", None):
            raise MalformedResponse("reply has no choices")
        used = (reply.usage.completion_tokens or 0) if reply.usage else 0
        return [(c.message.content or "").strip() for c in reply.choices], used


def generator_backend(cfg: GenerationConfig) -> type:
    """The generator class registered as `cfg.backend` (registry kind ``generator``)."""
    return lookup("generator", cfg.backend, "generation.backend")


def uses_chat_format(cfg: GenerationConfig) -> bool:
    """Whether prompts go to the model as chat messages (exports then use conversational form):
    the backend's `chat_format(cfg)`, False for a backend without one."""
    chat_format = getattr(generator_backend(cfg), "chat_format", None)
    return bool(chat_format(cfg)) if chat_format else False


def make_generator(cfg: GenerationConfig) -> Generator:
    """The generator of `cfg.backend` (hf, openai, or a plugin's) built from `cfg`."""
    return generator_backend(cfg)(cfg)
