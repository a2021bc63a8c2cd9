"""Retries for OpenAI-compatible calls: exponential backoff with jitter on 429, 408/409, 5xx,
timeouts, connection errors and malformed bodies, honouring Retry-After (capped); other errors
(400, 401, 404, ...) are raised at once. The same policy as the judges' openai backend."""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import TypeVar

import openai

log = logging.getLogger(__name__)
T = TypeVar("T")
RETRY_STATUS = {408, 409, 429}  # and every 5xx


class MalformedResponse(Exception):
    """The server answered 200 with a body that is not a usable completion."""


def retryable(err: Exception) -> bool:
    if isinstance(err, openai.APIStatusError):
        return err.status_code in RETRY_STATUS or err.status_code >= 500
    return isinstance(err, openai.APITimeoutError | openai.APIConnectionError
                      | json.JSONDecodeError | MalformedResponse)


def retry_after(err: Exception) -> float | None:
    """Seconds asked for by retry-after-ms / Retry-After (seconds or an HTTP date), if any."""
    response = getattr(err, "response", None)
    if response is None:
        return None
    headers = response.headers
    try:
        if (ms := headers.get("retry-after-ms")) is not None:
            return float(ms) / 1000
        if (after := headers.get("retry-after")) is not None:
            try:
                return float(after)
            except ValueError:
                return parsedate_to_datetime(after).timestamp() - time.time()
    except (TypeError, ValueError):
        return None
    return None


def with_retries(call: Callable[[], T], what: str, max_retries: int, base_s: float,
                 max_s: float) -> T:
    """`call()`, retried up to `max_retries` times on retryable errors; the last error is
    raised when retries run out (or at once when it is not retryable)."""
    attempt = 0
    while True:
        attempt += 1
        try:
            return call()
        except Exception as err:
            if not retryable(err) or attempt > max_retries:
                raise
            after = retry_after(err)
            delay = min(max(after, 0.0), max_s) if after is not None else \
                min(max_s, base_s * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
            log.info("%s: %s; retry %d/%d in %.2fs", what, type(err).__name__, attempt,
                     max_retries, delay)
            time.sleep(delay)
