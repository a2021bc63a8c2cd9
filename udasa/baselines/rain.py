"""RAIN (Li et al. 2023, "Your Language Models Can Align Themselves without Finetuning"):
inference-time tree search over token sets guided by the model's own evaluation, following the
authors' code (SafeAILab/RAIN: HH/main.py, adv/main.py, truth/main.py, truth/nodes.py).

Outer loop: from the committed answer so far (the root), run inner-loop searches until the most
visited child token set has more than minT own visits and a value above Vt, or the search
budget (maxT searches; at least `min_new_searches` after each commit) is spent; then commit the
most visited child (ties: higher value), keep its subtree, mix root noise into its children's
priors, and go on.

Inner loop, one search: *select* from the root down to a leaf by value (normalised) plus an
exploration term c * prior * sqrt(N(parent)) / (1 + N(child)); on the way, a node whose
children are near-identical and all bad gains one token set (single tokens: the next most
likely token; longer sets: the new ones of a fresh greedy + sampled draw); *evaluate* the leaf:
sample a look-ahead to the end of the sentence (truthfulness: of the answer), then ask the
model itself whether the reply is good for the task (rain_prompts.py: a hard vote over both
option orders, or the soft 2 P(good) - 1); *expand* the leaf with token sets (greedy plus
sampled continuations of 1, 2, 4, then 10 tokens by depth, priors from their probabilities,
noise at the root); *back up* v along the path (each node's value is the mean of the
evaluations below it) and move the values of sibling token sets whose path embeddings are
similar (cosine >= 0.95, weight 0.2); then *rewind* to the root for the next search.

Every model call goes through `RainBackend` (continue prefixes, next-token top-k, option
probabilities, embeddings), each batched over many requests. A search yields its calls
(`RainSearch.*_steps`), so `RainGenerator.generate_many` runs many prompts' searches in
lockstep, every round one batched call per kind through the generation engine
(udasa/baselines/rain_lockstep.py); each search keeps its own random streams, so its answer
does not depend on the searches it ran beside.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal

import torch

from udasa.baselines.rain_lockstep import (
    Continuation,
    Continue,
    Embed,
    Evaluate,
    Steps,
    TopTokens,
    drive,
    lockstep,
    stream_seed,
)
from udasa.baselines.rain_prompts import (
    TASKS,
    eval_texts,
    examples_path,
    examples_text,
    head_ids,
    stop_text,
    task_prompt,
    turn_marker,
    vote_value,
)
from udasa.engine import Request, engine_for
from udasa.errors import ConfigError, UdasaError
from udasa.models import load_causal_lm
from udasa.scorers.lm_options import option_probs

__all__ = ["TASKS", "RainConfig", "RainGenerator", "RainSearch", "head_ids", "stop_text",
           "task_prompt", "turn_marker"]
log = logging.getLogger(__name__)

EVAL_GOALS = {"harmlessness": "harmless", "robustness": "adversarial",
              "helpfulness": "helpful", "truthfulness": "truthful",
              "sentiment": "positive"}  # eval task -> RAIN task
# The authors' sentence ends (HH/main.py `simg`: ',', '.', '?', ':', ';', newline; no '!').
SENTENCE_END = (",", ".", "?", ":", ";", "\n")
RUN_SETTINGS = ("batch_prompts",)  # RainConfig fields that change how fast, never the answers
NOT_PER_TASK = ("model", "task", "tasks")  # fields a `tasks:` entry cannot set
# In cache keys: bumped when the same seed gives other answers (2: sampling moved into the
# engine, per-prompt random streams; 3: hard votes, few-shot prompts, look-ahead to the
# sentence end, the authors' alike-and-bad addition, option ids read after the prompt).
SAMPLER_VERSION = 3


@dataclass
class RainConfig:
    """RAIN's search; defaults are the authors' (configs/baselines/rain.yaml, which also holds
    their per-task settings in `tasks`)."""

    model: str = "embedded"
    task: str = "harmless"  # the goal: harmless | adversarial | helpful | truthful | positive
    value: Literal["hard", "soft"] = "hard"  # the authors' votes, or 2 P(good) - 1
    eval_examples: str = "bundled"  # self-evaluation few-shot: bundled (the task's) | "" | path
    dialogue_examples: str = "bundled"  # few-shot dialogue before the prompt: bundled | "" | path
    max_new_tokens: int = 64
    segments: list[int] = field(default_factory=lambda: [1, 2, 4, 10])  # token-set length by depth
    max_tries: int = 50  # maxT: searches before a commit
    min_tries: int = 6  # minT: own visits the best token set needs to be committed early
    value_threshold: float = 0.8  # Vt: value it needs to be committed early
    min_new_searches: int = 15  # searches after each commit, at least
    width: int = 10  # token sets per expansion (greedy + sampled)
    add_width: int = 2  # token sets drawn (greedy + sampled) where children are alike and bad
    max_children: int = 20
    top_k: int = 15  # sampling of token sets
    temperature: float = 1.0  # of the token sets' distribution (the authors' adversarial: 2.0)
    draw_factor: int = 1  # a k-wide expansion draws draw_factor*k - 1 sampled sets, keeps k - 1
    c_puct: float = 2.0  # exploration weight
    root_noise: float = 0.25  # uniform mixed into the root's priors
    sim_threshold: float = 0.95  # cosine above which a sibling shares an update
    sim_weight: float = 0.2  # its weight
    spread_norm: float = 0.03  # children "alike": norm of embedding variance < this * length
    lookahead_end: Literal["sentence", "answer"] = "sentence"  # sample on to its end (answer: EOS)
    lookahead_chunk: int = 16  # tokens the first look-ahead call samples (doubled each call)
    lookahead_cap: int = 256  # safety cap on a look-ahead's tokens, logged when hit; 0: none
    embedder: str = "embedded"  # sentence embedder for value sharing (all-MiniLM-L6-v2)
    seed: int = 0
    batch_prompts: int = 16  # searches run in lockstep, sharing each batched model call
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)  # task -> field overrides

    @classmethod
    def from_options(cls, options: dict, where: str = "rain") -> RainConfig:
        """From a config file's mapping: unknown fields and wrong types are one-line errors."""
        from udasa.config import from_dict

        cfg = from_dict(cls, options, where)
        cfg.validate()
        return cfg

    def for_task(self, task: str | None = None) -> RainConfig:
        """These settings with `tasks[task]` (default: this task's) laid over them."""
        from udasa.config import from_dict

        task = task or self.task
        over = self.tasks.get(task, {})
        if not isinstance(over, dict):
            raise ConfigError(f"rain.tasks.{task}: expected a mapping of RainConfig fields")
        if bad := sorted(set(over) & set(NOT_PER_TASK)):
            raise ConfigError(f"rain.tasks.{task}.{bad[0]}: not settable per task")
        base = {f.name: getattr(self, f.name) for f in fields(self)}
        return from_dict(RainConfig, base | over | {"task": task}, f"rain.tasks.{task}")

    def validate(self) -> None:
        if self.task not in TASKS:
            raise ConfigError(f"rain.task: {self.task!r} is not one of {', '.join(TASKS)}")
        for task in self.tasks:
            if task not in TASKS:
                raise ConfigError(f"rain.tasks.{task}: not a task ({', '.join(TASKS)})")
            self.for_task(task).check()
        self.check()

    def check(self) -> None:
        """Ranges, choices and files of these settings (without the `tasks` entries)."""
        from udasa.configfile import check_choices

        check_choices(self, "rain")
        for name in ("max_new_tokens", "max_tries", "width", "max_children", "top_k",
                     "batch_prompts", "draw_factor", "lookahead_chunk"):
            if getattr(self, name) < 1:
                raise ConfigError(f"rain.{name}: must be >= 1")
        if not self.segments or min(self.segments) < 1:
            raise ConfigError("rain.segments: a non-empty list of token-set lengths >= 1")
        if self.temperature <= 0 or self.lookahead_cap < 0:
            raise ConfigError("rain.temperature: must be > 0; rain.lookahead_cap: >= 0")
        examples_path(self.eval_examples, task_prompt(self.task).get("examples"),
                      "rain.eval_examples")
        examples_path(self.dialogue_examples, "dialogue.txt", "rain.dialogue_examples")


@dataclass
class RainStats:
    searches: int = 0  # inner-loop iterations (each ends with a rewind to the root)
    commits: int = 0
    evaluations: int = 0  # self-evaluations run (cached by text)
    visited_tokens: int = 0  # tokens sampled for token sets and look-aheads
    emitted_tokens: int = 0  # tokens in the answers
    lookahead_capped: int = 0  # look-aheads stopped by `lookahead_cap` (logged)
    history: list[dict] = field(default_factory=list)  # per commit: searches, visits, chosen

    def add(self, other: RainStats) -> None:
        """Count another search's statistics in (its history after these)."""
        for f in fields(self):
            if f.name != "history":
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        self.history += other.history


@dataclass(eq=False)
class Node:
    """A token set in the search tree; `q` is the mean of the evaluations below it."""

    tokens: tuple[int, ...]
    prior: float
    parent: Node | None = None
    depth: int = 0  # token sets between the original root and this node
    raw: float = 1.0  # unnormalised probability of the token set
    n: float = 0.0  # visits (fractional after updates shared by similar siblings)
    fn: int = 0  # own visits
    q: float = 0.0
    embedding: torch.Tensor | None = None
    children: dict[tuple[int, ...], Node] = field(default_factory=dict)
    drawn: list[tuple[tuple[int, ...], float]] = field(default_factory=list)  # newest first

    def best_child(self) -> Node | None:
        """The most visited child, ties broken by value: what the outer loop commits."""
        return max(self.children.values(), key=lambda c: (c.n, c.q), default=None)


def with_root_noise(priors: Sequence[float], noise: float) -> list[float]:
    """(1 - noise) * p + noise / K, renormalised: the priors of a root's children."""
    mixed = [(1 - noise) * p + noise / len(priors) for p in priors]
    total = sum(mixed)
    return [m / total for m in mixed]


def exploration_score(q: float, prior: float, n: float, parent_n: float, qmin: float,
                      qmax: float, c_puct: float) -> float:
    """A child's selection score: its value normalised to [0, 1] over the tree's range (0
    while unvisited) plus c * prior * sqrt(N(parent)) / (1 + n) (nodes.py `getqu`)."""
    value = 0.0 if n == 0 else (q - qmin) / (qmax - qmin + 1e-5)
    return value + c_puct * prior * math.sqrt(parent_n) / (1 + n)


class RainBackend:
    """The model calls RAIN makes, each batched over many requests: continuations through the
    generation engine, next-token top-k and the self-evaluation's option probabilities through
    its scoring pass, sentence embeddings. `calls` and `items` count them by kind."""

    def __init__(self, cfg: RainConfig):
        self.cfg = cfg
        self.model, self.tok = load_causal_lm(cfg.model)
        self.eos = self.tok.eos_token_id
        self.engine = engine_for(self.model, self.tok)
        self.options = task_prompt(cfg.task)["options"]  # (good-or-A, bad-or-B) option strings
        self.calls: Counter[str] = Counter()  # batched model calls, by kind
        self.items: Counter[str] = Counter()  # requests they served

    def _count(self, kind: str, items: int) -> None:
        self.calls[kind] += 1
        self.items[kind] += items

    def continue_many(self, items: list[Continuation],
                      on_tokens: Callable[[int], None] | None = None
                      ) -> list[list[tuple[list[int], float]]]:
        """Per item, its continuations (cut after EOS, which stays in) with their
        log-probabilities under the distribution they were drawn from."""
        self._count("continue", len(items))
        requests = [Request(it.prefix, it.num, it.seed, it.length,
                            0.0 if it.greedy else it.temperature, 1.0, it.top_k)
                    for it in items]
        out = self.engine.generate_with_logprobs(requests, on_tokens)
        return [[(toks + [self.eos] if len(toks) < it.length else toks, lp)
                 for toks, lp in samples] for it, samples in zip(items, out, strict=True)]

    def top_tokens_many(self, prefixes: list[list[int]], ks: list[int],
                        temperatures: list[float] | None = None
                        ) -> list[list[tuple[int, float]]]:
        """Per prefix, its k most likely next tokens with their probabilities (at its
        temperature, default 1)."""
        self._count("top_tokens", len(prefixes))
        logp = self.engine.next_token_logprobs(prefixes)
        out = []
        for row, k, t in zip(logp, ks, temperatures or [1.0] * len(ks), strict=True):
            probs, ids = torch.softmax(row / t, dim=-1).topk(k)
            out.append(list(zip(ids.tolist(), probs.tolist())))
        return out

    def option_probs(self, texts: list[str]) -> torch.Tensor:
        """P(option 1), P(option 2) after each self-evaluation prompt: (len(texts), 2)."""
        self._count("evaluate", len(texts))
        return option_probs(self.model, self.tok, texts, self.options)

    def embed(self, texts: list[str]) -> torch.Tensor:
        from udasa.scorers.semantic import load_sentence_model

        self._count("embed", len(texts))
        model = load_sentence_model(self.cfg.embedder)
        return torch.as_tensor(model.encode(texts, convert_to_numpy=True,
                                            show_progress_bar=False))

    def decode(self, ids: list[int]) -> str:
        return self.tok.decode(ids, skip_special_tokens=True)


def goal_of(eval_task: str, default: str = "harmless") -> str:
    """The RAIN task of an eval task (its self-evaluation goal and per-task settings, as the
    authors ran one setting per benchmark)."""
    return EVAL_GOALS.get(eval_task, default)


class RainSearch:
    """RAIN on one prompt: the tree, the inner loop (`search`) and the outer loop (`run`).

    The `*_steps` methods are generators: they yield the model calls they need
    (udasa/baselines/rain_lockstep.py) and receive the answers, so that many searches can
    share batched calls (`lockstep`); `value`, `search`, `backup` and `run` run them alone.
    `seed` keys the search's own random streams (one per sampled call, in order).
    """

    def __init__(self, backend: RainBackend, cfg: RainConfig, prompt: str, stats: RainStats,
                 seed: int = 0):
        self.be, self.cfg, self.prompt, self.stats = backend, cfg, prompt, stats
        self.seed, self.draws = seed, 0
        self.head = head_ids(backend.tok, prompt, examples_text(
            cfg.dialogue_examples, "dialogue.txt", "rain.dialogue_examples"))
        self.eval_prompt = task_prompt(cfg.task)
        self.eval_examples = examples_text(cfg.eval_examples, self.eval_prompt.get("examples"),
                                           "rain.eval_examples")
        self.values: dict[str, float] = {}  # self-evaluations cached by text, as RAIN does
        self.evaluations: list[tuple[Node, float]] = []  # (leaf, value) of every search
        self.qmin, self.qmax = -1.0, 1.0
        self.answer: list[int] = []

    def next_seed(self) -> int:
        """The seed of this search's next sampled call."""
        self.draws += 1
        return stream_seed(self.seed, self.draws - 1)

    # the self-evaluation -------------------------------------------------------------------
    def eval_texts(self, response: str) -> tuple[list[str], list[int]]:
        """The task's self-evaluation prompts for `response` (rain_prompts.eval_texts)."""
        return eval_texts(self.be.tok, self.eval_prompt, self.prompt, response,
                          self.eval_examples)

    def value_steps(self, response: str) -> Steps:
        """The reply's value: a hard vote in {-1, 0, 1} (one order: {-1, 1}) or the soft
        2 P(good) - 1, both orders averaged (`rain_prompts.vote_value`)."""
        if response not in self.values:
            texts, good = self.eval_texts(response)
            probs = yield Evaluate(texts)
            pairs = [(float(probs[i, g]), float(probs[i, 1 - g])) for i, g in enumerate(good)]
            self.values[response] = vote_value(pairs, self.cfg.value == "hard")
            self.stats.evaluations += 1
        return self.values[response]

    def value(self, response: str) -> float:
        return drive(self.be, self.value_steps(response))

    # inner loop ------------------------------------------------------------------------------
    def path(self, node: Node) -> list[Node]:
        nodes = []
        while node.parent is not None:
            nodes.append(node)
            node = node.parent
        return nodes[::-1]

    def state(self, node: Node) -> list[int]:
        """The answer tokens up to and including `node`."""
        return self.answer + [t for n in self.path(node) for t in n.tokens]

    def terminal(self, node: Node, state: list[int]) -> bool:
        return (self.be.eos in node.tokens or len(state) >= self.cfg.max_new_tokens
                or stop_text(self.be.decode(state)) is not None)

    def select_steps(self, root: Node) -> Steps:
        node = root
        while node.children:
            if self.alike_and_bad(node):
                yield from self.add_steps(node)
            node = max(node.children.values(), key=lambda c: self.score(c, node))
        return node

    def score(self, child: Node, parent: Node) -> float:
        return exploration_score(child.q, child.prior, child.n, parent.n, self.qmin,
                                 self.qmax, self.cfg.c_puct)

    def search_steps(self, root: Node) -> Steps:
        """One inner-loop iteration: select, evaluate, expand, back up (then rewind)."""
        leaf = yield from self.select_steps(root)
        state = self.state(leaf)
        tail = yield from self.lookahead_steps(state)
        v = yield from self.value_steps(self.reply(state + tail))
        if not self.terminal(leaf, state):
            yield from self.expand_steps(leaf)
        yield from self.backup_steps(leaf, v, tail)
        self.evaluations.append((leaf, v))
        self.stats.searches += 1

    def search(self, root: Node) -> None:
        drive(self.be, self.search_steps(root))

    def reply(self, tokens: list[int]) -> str:
        """The reply the self-evaluation judges: up to the next dialogue turn (truthfulness,
        `lookahead_end: answer`: cut after its last '.', as the authors' truth/main.py)."""
        text = self.be.decode(tokens)
        text = text[:stop_text(text)].strip()
        if self.cfg.lookahead_end == "answer" and "." in text:
            text = text[:text.rindex(".") + 1]
        return text

    def lookahead_end(self, tokens: list[int]) -> bool:
        """Whether a look-ahead stops after `tokens` (the answer so far and its tail): at EOS,
        at the next dialogue turn, or (`lookahead_end: sentence`) where the text ends a
        sentence."""
        if tokens and tokens[-1] == self.be.eos:
            return True
        text = self.be.decode(tokens)
        return stop_text(text) is not None or (self.cfg.lookahead_end == "sentence"
                                               and text.endswith(SENTENCE_END))

    def lookahead_steps(self, state: list[int]) -> Steps:
        """Sample on from `state` to the end of the sentence (or of the answer) before
        evaluating: calls of `lookahead_chunk` tokens, doubling, until it ends or
        `lookahead_cap` tokens are drawn (logged). None from an empty answer at a sentence's
        end (the authors' prompt ends with "Assistant:")."""
        cap = self.cfg.lookahead_cap
        if not cap or self.lookahead_end(state) or \
                (self.cfg.lookahead_end == "sentence" and not state):
            return []
        tail: list[int] = []
        chunk = self.cfg.lookahead_chunk
        while len(tail) < cap:
            [[(more, _)]] = yield Continue([Continuation(
                self.head + state + tail, min(chunk, cap - len(tail)), seed=self.next_seed())])
            self.stats.visited_tokens += len(more)
            for i in range(1, len(more) + 1):
                if self.lookahead_end(state + tail + more[:i]):
                    return tail + more[:i]
            tail, chunk = tail + more, 2 * chunk
        self.stats.lookahead_capped += 1
        log.warning("RAIN look-ahead hit lookahead_cap=%d tokens before the end of the %s; "
                    "evaluating the text so far", cap, self.cfg.lookahead_end)
        return tail

    def token_set_steps(self, node: Node, k: int) -> Steps:
        """k candidate token sets after `node` with their probabilities (greedy first), at the
        token sets' temperature: single tokens, the k likeliest; longer sets, the greedy one
        and up to k - 1 distinct sampled ones (top-k) from draw_factor*k - 1 draws."""
        prefix = self.head + self.state(node)
        length = self.cfg.segments[min(node.depth, len(self.cfg.segments) - 1)]
        length = max(1, min(length, self.cfg.max_new_tokens - len(self.state(node))))
        if length == 1:
            top = yield TopTokens(prefix, k, self.cfg.temperature)
            return [([t], p) for t, p in top]
        items = [Continuation(prefix, length, greedy=True)]
        if k > 1:
            items.append(Continuation(prefix, length, self.cfg.draw_factor * k - 1,
                                      self.next_seed(), top_k=self.cfg.top_k,
                                      temperature=self.cfg.temperature))
        [(greedy, g_lp)], *sampled = yield Continue(items)
        sets = [(greedy, math.exp(g_lp))]
        for toks, lp in sampled[0] if sampled else []:
            if len(sets) < k and all(toks != s for s, _ in sets):
                sets.append((toks, math.exp(lp)))
        self.stats.visited_tokens += sum(len(s) for s, _ in sets)
        if len(sets) > 1:  # RAIN bounds the greedy set's probability by the sampled ones'
            others = [p for _, p in sets[1:]]
            sets[0] = (greedy, max(min(sets[0][1], sum(others)), max(others) + min(others)))
        return sets

    def expand_steps(self, node: Node) -> Steps:
        """`width` token sets as the leaf's children, priors their normalised probabilities
        (with root noise at the root)."""
        sets = [(tuple(t), p) for t, p in (yield from self.token_set_steps(node, self.cfg.width))
                if t]
        node.drawn = sets
        total = sum(p for _, p in sets) or 1.0
        priors = [p / total for _, p in sets]
        if node.parent is None:
            priors = with_root_noise(priors, self.cfg.root_noise)
        for (toks, p), prior in zip(sets, priors, strict=True):
            node.children.setdefault(toks, Node(toks, prior, node, node.depth + 1, p))

    def add_steps(self, node: Node) -> Steps:
        """One more token set where the children are alike and all bad (nodes.py `checkadd`,
        `add`): among the first K + 1 candidates (K children) the new ones join, priors
        normalised over those candidates (root noise at the root), the others' priors kept.
        Single tokens: the K + 1 likeliest tokens (temperature 1), so one new token; longer
        sets: a fresh draw of `add_width` (greedy + sampled) before the earlier draws."""
        kids = len(node.children)
        if len(next(iter(node.children))) == 1:
            top = yield TopTokens(self.head + self.state(node), kids + 1)
            cands = [((t,), p) for t, p in top]
        else:
            fresh = yield from self.token_set_steps(node, self.cfg.add_width)
            node.drawn = [(tuple(t), p) for t, p in fresh if t] + node.drawn
            cands = node.drawn[:kids + 1]
        total = sum(p for _, p in cands) or 1.0
        priors = [p / total for _, p in cands]
        if node.parent is None:
            priors = with_root_noise(priors, self.cfg.root_noise)
        for (toks, p), prior in zip(cands, priors, strict=True):
            if toks not in node.children:
                node.children[toks] = Node(toks, prior, node, node.depth + 1, p)

    def alike_and_bad(self, node: Node) -> bool:
        """RAIN adds token sets where the children are near-identical and all valued below 0."""
        kids = list(node.children.values())
        if len(kids) >= self.cfg.max_children or len(kids) < 2 or \
                any(c.embedding is None for c in kids):
            return False
        spread = torch.var(torch.stack([c.embedding for c in kids]), dim=0).norm()
        return bool(spread < self.cfg.spread_norm * len(kids[0].tokens)) and \
            max(c.q for c in kids) < 0

    def backup_steps(self, leaf: Node, v: float, tail: list[int]) -> Steps:
        """Mean-value backup along the path; similar siblings share the update (RAIN §3)."""
        path = self.path(leaf)
        suffixes, below = [], list(tail)
        for node in reversed(path):
            below = list(node.tokens) + below
            suffixes.append(self.be.decode(below))
        embeddings = (yield Embed(suffixes[::-1])) if path else []
        for node, emb in zip(path, embeddings):
            node.fn += 1
            node.embedding = emb.clone() if node.embedding is None else \
                node.embedding + (emb - node.embedding) / node.fn
            self.share(node, v)
        for node in [*path, self.root_of(leaf)]:
            if node.parent is None:
                node.fn += 1
            node.n += 1
            node.q += (v - node.q) / node.n
            if node.parent is not None:
                self.qmin, self.qmax = min(self.qmin, node.q), max(self.qmax, node.q)

    def backup(self, leaf: Node, v: float, tail: list[int]) -> None:
        drive(self.be, self.backup_steps(leaf, v, tail))

    def share(self, node: Node, v: float) -> None:
        for sib in node.parent.children.values() if node.parent else []:
            if sib is node or sib.embedding is None:
                continue
            sim = float(torch.cosine_similarity(node.embedding, sib.embedding, dim=0))
            if sim >= self.cfg.sim_threshold:
                w = sim * self.cfg.sim_weight
                sib.q = (sib.q * sib.n + w * v) / (sib.n + w)
                sib.n += w

    @staticmethod
    def root_of(node: Node) -> Node:
        while node.parent is not None:
            node = node.parent
        return node

    # outer loop ------------------------------------------------------------------------------
    def run_steps(self) -> Steps:
        """The answer: commit token sets until a terminal one (see the module docstring)."""
        root = Node((), 1.0)
        while True:
            budget = max(self.cfg.max_tries - root.fn, self.cfg.min_new_searches) \
                if root.fn else self.cfg.max_tries
            done = 0
            for _ in range(budget):
                yield from self.search_steps(root)
                done += 1
                best = root.best_child()
                if best and best.fn > self.cfg.min_tries and best.q > self.cfg.value_threshold:
                    break
            best = root.best_child()
            if best is None:
                break
            root = self.commit(root, best, done)
            if self.terminal(root, self.answer):
                break
        text = self.be.decode([t for t in self.answer if t != self.be.eos])
        stop = stop_text(text)
        self.stats.emitted_tokens += len(self.answer)
        return (text[:stop] if stop is not None else text).strip()

    def commit(self, root: Node, best: Node, searches: int) -> Node:
        """Emit `best`'s tokens and make it the root: its subtree kept, root noise mixed into
        its children's priors (HH/main.py `gmeval`)."""
        self.stats.commits += 1
        self.stats.history.append({"searches": searches, "visits": [c.n for c in
                                   root.children.values()], "chosen": best.n,
                                   "value": best.q})
        self.answer += list(best.tokens)
        best.parent = None
        kids = list(best.children.values())
        if kids:
            for c, p in zip(kids, with_root_noise([c.prior for c in kids], self.cfg.root_noise),
                            strict=True):
                c.prior = p
        return best

    def run(self) -> str:
        return drive(self.be, self.run_steps())


class RainGenerator:
    """A `Generator` that decodes with RAIN's search (see the module docstring); the settings
    are `cfg` with its task's `tasks` entry laid over them."""

    def __init__(self, cfg: RainConfig):
        cfg.validate()
        self.cfg = cfg.for_task()
        self.backend = RainBackend(self.cfg)
        self.name = f"rain:{cfg.model}"
        self.stats = RainStats()

    def value(self, prompt: str, partials: list[str]) -> list[float]:
        """The task's self-evaluation of replies so far, in [-1, 1]."""
        search = RainSearch(self.backend, self.cfg, prompt, self.stats)
        return [search.value(p) for p in partials]

    def search(self, prompt: str, seed: int = 0) -> RainSearch:
        return RainSearch(self.backend, self.cfg, prompt, RainStats(), self.cfg.seed + seed)

    def generate(self, prompt: str, n: int, seed: int) -> list[str]:
        ((_, out),) = self.generate_many([prompt], n, [seed])
        if isinstance(out, UdasaError):
            raise out
        return out

    def generate_many(self, prompts: Sequence[str], n: int, seeds: Sequence[int],
                      on_tokens: Callable[[int], None] | None = None
                      ) -> Iterator[tuple[int, list[str] | UdasaError]]:
        """(prompt index, its n answers or the error) as each prompt finishes. The searches
        (sample i of a prompt seeded `cfg.seed + seed + i`) run `cfg.batch_prompts` at a time
        in lockstep, sharing every batched model call; each one's answer is the one it gives
        alone."""
        running: dict[tuple[int, int], RainSearch] = {}

        def jobs() -> Iterator[tuple[tuple[int, int], Steps]]:
            for p, (prompt, seed) in enumerate(zip(prompts, seeds, strict=True)):
                for i in range(n):
                    running[p, i] = search = self.search(prompt, seed + i)
                    yield (p, i), search.run_steps()

        answers: dict[int, list[tuple[int, str]] | None] = {}
        for (p, i), out in lockstep(self.backend, jobs(), self.cfg.batch_prompts, on_tokens):
            self.stats.add(running.pop((p, i)).stats)
            done = answers.setdefault(p, [])
            if done is None:
                continue  # this prompt already failed
            if isinstance(out, UdasaError):
                answers[p] = None
                yield p, out
                continue
            done.append((i, out))
            if len(done) == n:
                yield p, [text for _, text in sorted(done)]
