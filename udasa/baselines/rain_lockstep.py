"""RAIN's searches in lockstep: many prompts' tree searches share each batched model call.

A search is written as a generator (`RainSearch.*_steps` in udasa/baselines/rain.py): it yields
the model call it needs next (one of the call types below) and receives the answer. `lockstep`
keeps up to `window` searches going; each round it collects the pending call of every active
search and serves them with one batched backend call per kind (`serve`): continuations through
the generation engine, next-token top-k and option probabilities through the engine's scoring
pass, embeddings through the sentence embedder. `drive` serves one search alone.

A search's randomness is its own: every sampled continuation carries a seed drawn from the
search's counter (`stream_seed`), and the engine keys each row's random stream by that seed,
so which searches share a round changes no draw.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Generator, Hashable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from udasa.errors import UdasaError


@dataclass(frozen=True)
class Continuation:
    """`num` continuations of `prefix` by up to `length` tokens: greedy, or sampled at
    `temperature` (among the `top_k` most likely tokens when > 0) from the stream `seed`."""

    prefix: list[int]
    length: int
    num: int = 1
    seed: int = 0
    greedy: bool = False
    top_k: int = 0
    temperature: float = 1.0


@dataclass(frozen=True)
class Continue:
    """Answer: per item, its (tokens, log-probability) continuations."""

    items: list[Continuation]


@dataclass(frozen=True)
class TopTokens:
    """Answer: the `k` most likely next tokens after `prefix`, as (token id, probability at
    `temperature`)."""

    prefix: list[int]
    k: int
    temperature: float = 1.0


@dataclass(frozen=True)
class Evaluate:
    """Answer: the self-evaluation prompts' option probabilities, (len(texts), 2)."""

    texts: list[str]


@dataclass(frozen=True)
class Embed:
    """Answer: the sentence embeddings of `texts`, (len(texts), dim)."""

    texts: list[str]


Call = Continue | TopTokens | Evaluate | Embed
Steps = Generator[Call, Any, Any]  # a search, or a part of one


class Backend(Protocol):
    """The batched model calls a round is served with (udasa.baselines.rain.RainBackend)."""

    def continue_many(self, items: list[Continuation],
                      on_tokens: Callable[[int], None] | None = None
                      ) -> list[list[tuple[list[int], float]]]: ...

    def top_tokens_many(self, prefixes: list[list[int]], ks: list[int],
                        temperatures: list[float] | None = None
                        ) -> list[list[tuple[int, float]]]: ...

    def option_probs(self, texts: list[str]) -> torch.Tensor: ...

    def embed(self, texts: list[str]) -> torch.Tensor: ...


def stream_seed(seed: int, draw: int) -> int:
    """The engine seed of a search's `draw`-th sampled call (63 bits)."""
    digest = hashlib.sha256(f"rain:{seed}:{draw}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def _split(flat: list | torch.Tensor, sizes: list[int]) -> list:
    out, at = [], 0
    for size in sizes:
        out.append(flat[at:at + size])
        at += size
    return out


def serve(backend: Backend, calls: list[Call],
          on_tokens: Callable[[int], None] | None = None) -> list[Any]:
    """The answers to a round of calls: one batched backend call per kind of call."""
    answers: list[Any] = [None] * len(calls)

    def answer(kind: type, run: Callable[[list], list]) -> None:
        at = [i for i, c in enumerate(calls) if isinstance(c, kind)]
        if at:
            for i, out in zip(at, run([calls[i] for i in at]), strict=True):
                answers[i] = out

    answer(Continue, lambda cs: _split(
        backend.continue_many([it for c in cs for it in c.items], on_tokens),
        [len(c.items) for c in cs]))
    answer(TopTokens, lambda cs: backend.top_tokens_many(
        [c.prefix for c in cs], [c.k for c in cs], [c.temperature for c in cs]))
    answer(Evaluate, lambda cs: _split(backend.option_probs([t for c in cs for t in c.texts]),
                                       [len(c.texts) for c in cs]))
    answer(Embed, lambda cs: _split(backend.embed([t for c in cs for t in c.texts]),
                                    [len(c.texts) for c in cs]))
    return answers


def drive(backend: Backend, steps: Steps) -> Any:
    """Run one search (or part of one) alone: each of its calls served by itself."""
    answer = None
    while True:
        try:
            call = steps.send(answer)
        except StopIteration as stop:
            return stop.value
        answer = serve(backend, [call])[0]


@dataclass
class _Done:
    value: Any  # the search's result, or the UdasaError it stopped with


def _advance(steps: Steps, answer: Any) -> Call | _Done:
    try:
        return steps.send(answer)
    except StopIteration as stop:
        return _Done(stop.value)
    except UdasaError as exc:
        return _Done(exc)


def lockstep(backend: Backend, jobs: Iterable[tuple[Hashable, Steps]], window: int,
             on_tokens: Callable[[int], None] | None = None,
             patience: int = 4) -> Iterator[tuple[Hashable, Any]]:
    """(key, result or UdasaError) of every job, as each finishes. Up to `window` searches run
    at once; a finished search's place goes to the next job. Each round serves the kind of
    call most searches are waiting on (`serve`: one batched call), plus any kind a search has
    waited on for `patience` rounds; the others wait, so the searches fall into step."""
    waiting = iter(jobs)
    active: dict[Hashable, list] = {}  # key -> [steps, its pending call, rounds it waited]
    while True:
        while len(active) < window and (job := next(waiting, None)) is not None:
            key, steps = job
            call = _advance(steps, None)
            if isinstance(call, _Done):
                yield key, call.value
            else:
                active[key] = [steps, call, 0]
        if not active:
            return
        keys = _this_round(active, patience)
        answers = serve(backend, [active[k][1] for k in keys], on_tokens)
        for state in active.values():
            state[2] += 1
        for key, answer in zip(keys, answers, strict=True):
            call = _advance(active[key][0], answer)
            if isinstance(call, _Done):
                del active[key]
                yield key, call.value
            else:
                active[key][1:] = [call, 0]


def _this_round(active: dict[Hashable, list], patience: int) -> list[Hashable]:
    """The searches served this round: those waiting on the most common kind of call, and
    those waiting on a kind someone has waited on for `patience` rounds."""
    by_kind: dict[type, list[Hashable]] = {}
    for key, (_, call, _) in active.items():
        by_kind.setdefault(type(call), []).append(key)
    common = max(by_kind.values(), key=len)
    return [key for keys in by_kind.values() for key in keys
            if keys is common or max(active[k][2] for k in keys) >= patience]
