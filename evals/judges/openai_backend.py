"""The ``openai`` judge backend: any OpenAI-compatible chat endpoint (OpenAI, vLLM, llama.cpp).

Calls run on a thread pool (``concurrency`` at once). Each is retried with exponential backoff
and jitter on 429, 408/409, 5xx, timeouts, connection errors and malformed responses, honouring
Retry-After (capped at ``backoff_max_s``); after ``max_retries`` the item is a failure. Other
errors (400, 401, 404, ...) fail at once. The API key is read from the environment variable the
config names and is scrubbed from every error text, so it never reaches logs or the store.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

import openai

from evals.judges.base import JudgeConfig, Judgement, JudgeStats, Template
from evals.judges.parse import ParseError, parse_reply
from udasa.errors import ConfigError
from udasa.registry import register
from udasa.retry import MalformedResponse
from udasa.retry import retry_after as _retry_after
from udasa.retry import retryable as _retryable

log = logging.getLogger("evals.judges")


@register("judge_backend", "openai")
class OpenAIBackend:
    """Chat completions with a user turn holding the rendered prompt."""

    def __init__(self, config: JudgeConfig, stats: JudgeStats):
        self.config = config
        self.stats = stats
        self.model_name = config.model
        key = os.environ.get(config.api_key_env, "")
        if not key and config.base_url is None:
            raise ConfigError(f"judge {config.name!r} calls the OpenAI API: set "
                             f"{config.api_key_env} (or give base_url for another server)")
        self._secret = key
        self.client = openai.OpenAI(base_url=config.base_url, api_key=key or "EMPTY",
                                    max_retries=0, timeout=config.timeout_s)

    def params(self, template: Template) -> dict[str, Any]:
        return {"temperature": self.config.temperature, "max_tokens": self.config.max_tokens,
                "template": template.name, "base_url": self.config.base_url}

    def run(self, prompts: list[str], template: Template) -> Iterator[tuple[int, Judgement]]:
        if not prompts:
            return
        with ThreadPoolExecutor(max_workers=max(1, self.config.concurrency),
                                thread_name_prefix=f"judge-{self.config.name}") as pool:
            futures = {pool.submit(self._judge_one, p, template): i for i, p in enumerate(prompts)}
            for future in as_completed(futures):
                yield futures[future], future.result()

    def _judge_one(self, prompt: str, template: Template) -> Judgement:
        """One item: call with retries, then parse; every outcome is a Judgement."""
        cfg = self.config
        attempts = 0
        while True:
            attempts += 1
            self.stats.add(calls=1)
            try:
                reply, prompt_tokens, completion_tokens = self._call(prompt)
            except Exception as err:  # noqa: BLE001 - sorted into retry / give up just below
                why = self._describe(err)
                if not _retryable(err):
                    return Judgement(None, False, "", f"not retried: {why}", attempts=attempts)
                if attempts > cfg.max_retries:
                    return Judgement(None, False, "", f"gave up after {attempts} attempts: {why}",
                                     attempts=attempts)
                delay = self._delay(err, attempts)
                log.warning("judge %s: %s; retry %d/%d in %.2fs", cfg.name, why, attempts,
                            cfg.max_retries, delay)
                self.stats.add(retries=1)
                time.sleep(delay)
                continue
            cost = cfg.cost(prompt_tokens, completion_tokens)
            self.stats.add(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                           cost_usd=cost or 0.0)
            spent = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                     "cost_usd": cost, "attempts": attempts}
            try:
                return Judgement(parse_reply(reply, template.scale), True, reply, **spent)
            except ParseError as err:
                return Judgement(None, False, reply, f"unparseable reply: {err}", **spent)

    def _call(self, prompt: str) -> tuple[str, int, int]:
        resp = self.client.chat.completions.create(
            model=self.config.model, messages=[{"role": "user", "content": prompt}],
            temperature=self.config.temperature, max_tokens=self.config.max_tokens)
        if not getattr(resp, "choices", None) or getattr(resp.choices[0], "message", None) is None:
            raise MalformedResponse("response has no choices")
        usage = resp.usage
        return (resp.choices[0].message.content or "",
                (usage.prompt_tokens or 0) if usage else 0,
                (usage.completion_tokens or 0) if usage else 0)

    def _delay(self, err: Exception, attempt: int) -> float:
        """Retry-After when the server sent one, else base * 2^(attempt-1) with jitter."""
        cap = self.config.backoff_max_s
        if (after := _retry_after(err)) is not None:
            return min(max(after, 0.0), cap)
        backoff = min(cap, self.config.backoff_base_s * 2 ** (attempt - 1))
        return backoff * random.uniform(0.5, 1.0)

    def _describe(self, err: Exception) -> str:
        status = getattr(err, "status_code", None)
        text = f"{type(err).__name__}" + (f" (HTTP {status})" if status else "") + f": {err}"
        return text.replace(self._secret, "***") if self._secret else text
