"""RAIN (Li et al. 2023, "Your Language Models Can Align Themselves without Finetuning"):
inference-time tree search over token sets guided by the model's own evaluation.

Outer loop: from the committed answer so far (the root), run inner-loop searches until the most
visited child token set has more than minT visits and a value above Vt, or the search budget
(maxT searches; at least `min_new_searches` after each commit) is spent; then commit the most
visited child (ties: higher value), keep its subtree, and go on.

Inner loop, one search: *select* from the root down to a leaf by value (normalised) plus an
exploration term c * prior * sqrt(N(parent)) / (1 + N(child)); *evaluate* the leaf: sample a
short look-ahead to the end of the sentence, then ask the model itself, in both option orders,
whether the reply is good for the task (value v = 2 P(good) - 1); *expand* the leaf with token
sets (greedy plus sampled continuations of 1, 2, 4, then 10 tokens by depth, priors from their
probabilities, noise at the root); *back up* v along the path (each node's value is the mean of
the evaluations below it) and move the values of sibling token sets whose path embeddings are
similar (cosine >= 0.95, weight 0.2); then *rewind* to the root for the next search. When the
children of a node are near-identical and all bad, more token sets are sampled there.

Every model call goes through `RainBackend` (continue prefixes, next-token top-k, option
probabilities, embeddings), each batched over many requests. A search yields its calls
(`RainSearch.*_steps`), so `RainGenerator.generate_many` runs many prompts' searches in
lockstep, every round one batched call per kind through the generation engine
(udasa/baselines/rain_lockstep.py); each search keeps its own random streams, so its answer
does not depend on the searches it ran beside.
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields

import torch
import yaml

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
from udasa.engine import Request, engine_for
from udasa.errors import ConfigError, UdasaError
from udasa.models import load_causal_lm
from udasa.scorers.lm_options import chat_prefix, option_probs

TASKS = ("harmless", "helpful", "truthful", "positive")
EVAL_GOALS = {"harmlessness": "harmless", "robustness": "harmless", "helpfulness": "helpful",
              "truthfulness": "truthful", "sentiment": "positive"}  # eval task -> RAIN task
SENTENCE_END = (",", ".", "?", "!", ":", ";", "\n")
RUN_SETTINGS = ("batch_prompts",)  # RainConfig fields that change how fast, never the answers
# In cache keys: bumped when the same seed gives other answers (2: sampling moved into the
# engine, per-prompt random streams), so a rerun never mixes answers of two samplers.
SAMPLER_VERSION = 2


@dataclass
class RainConfig:
    """RAIN's search; defaults are the paper's (configs/baselines/rain.yaml)."""

    model: str = "embedded"
    task: str = "harmless"  # self-evaluation prompt: harmless | helpful | truthful | positive
    max_new_tokens: int = 64
    segments: list[int] = field(default_factory=lambda: [1, 2, 4, 10])  # token-set length by depth
    max_tries: int = 50  # maxT: searches before a commit
    min_tries: int = 6  # minT: visits the best token set needs to be committed early
    value_threshold: float = 0.8  # Vt: value it needs to be committed early
    min_new_searches: int = 15  # searches after each commit, at least
    width: int = 10  # token sets per expansion (greedy + sampled)
    add_width: int = 2  # token sets drawn when a node's children are alike and all bad
    max_children: int = 20
    top_k: int = 15  # sampling of token sets
    c_puct: float = 2.0  # exploration weight
    root_noise: float = 0.25  # uniform mixed into the root's priors
    sim_threshold: float = 0.95  # cosine above which a sibling shares an update
    sim_weight: float = 0.2  # its weight
    spread_norm: float = 0.03  # children "alike": norm of embedding variance < this * length
    lookahead: int = 32  # tokens sampled at most to finish the sentence before evaluating
    embedder: str = "embedded"  # sentence embedder for value sharing (all-MiniLM-L6-v2)
    seed: int = 0
    batch_prompts: int = 16  # searches run in lockstep, sharing each batched model call

    @classmethod
    def from_options(cls, options: dict, where: str = "rain") -> RainConfig:
        """From a config file's mapping: unknown fields and wrong types are one-line errors."""
        from udasa.config import from_dict

        cfg = from_dict(cls, options, where)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        if self.task not in TASKS:
            raise ConfigError(f"rain.task: {self.task!r} is not one of {', '.join(TASKS)}")
        for name in ("max_new_tokens", "max_tries", "width", "max_children", "top_k",
                     "batch_prompts"):
            if getattr(self, name) < 1:
                raise ConfigError(f"rain.{name}: must be >= 1")
        if not self.segments or min(self.segments) < 1:
            raise ConfigError("rain.segments: a non-empty list of token-set lengths >= 1")


@dataclass
class RainStats:
    searches: int = 0  # inner-loop iterations (each ends with a rewind to the root)
    commits: int = 0
    evaluations: int = 0  # self-evaluations run (cached by text)
    visited_tokens: int = 0  # tokens sampled for token sets and look-aheads
    emitted_tokens: int = 0  # tokens in the answers
    history: list[dict] = field(default_factory=list)  # per commit: searches, visits, chosen

    @property
    def rewinds(self) -> int:
        return self.searches - self.commits

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

    def best_child(self) -> Node | None:
        """The most visited child, ties broken by value: what the outer loop commits."""
        return max(self.children.values(), key=lambda c: (c.n, c.q), default=None)


class RainBackend:
    """The model calls RAIN makes, each batched over many requests: continuations through the
    generation engine, next-token top-k and the self-evaluation's option probabilities through
    its scoring pass, sentence embeddings. `calls` and `items` count them by kind."""

    def __init__(self, cfg: RainConfig):
        self.cfg = cfg
        self.model, self.tok = load_causal_lm(cfg.model)
        self.eos = self.tok.eos_token_id
        self.engine = engine_for(self.model, self.tok)
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
                            0.0 if it.greedy else 1.0, 1.0, it.top_k) for it in items]
        out = self.engine.generate_with_logprobs(requests, on_tokens)
        return [[(toks + [self.eos] if len(toks) < it.length else toks, lp)
                 for toks, lp in samples] for it, samples in zip(items, out, strict=True)]

    def top_tokens_many(self, prefixes: list[list[int]], ks: list[int]
                        ) -> list[list[tuple[int, float]]]:
        """Per prefix, its k most likely next tokens with their probabilities."""
        self._count("top_tokens", len(prefixes))
        logp = self.engine.next_token_logprobs(prefixes)
        out = []
        for row, k in zip(logp, ks, strict=True):
            probs, ids = row.exp().topk(k)
            out.append(list(zip(ids.tolist(), probs.tolist())))
        return out

    def option_probs(self, texts: list[str]) -> torch.Tensor:
        """P(A), P(B) after each self-evaluation prompt: (len(texts), 2)."""
        self._count("evaluate", len(texts))
        return option_probs(self.model, self.tok, texts, ["A", "B"])

    def embed(self, texts: list[str]) -> torch.Tensor:
        from udasa.scorers.semantic import load_sentence_model

        self._count("embed", len(texts))
        model = load_sentence_model(self.cfg.embedder)
        return torch.as_tensor(model.encode(texts, convert_to_numpy=True,
                                            show_progress_bar=False))

    def decode(self, ids: list[int]) -> str:
        return self.tok.decode(ids, skip_special_tokens=True)


def goal_of(eval_task: str, default: str = "harmless") -> str:
    """The self-evaluation RAIN uses on an eval task (its own goal, as RAIN did per benchmark)."""
    return EVAL_GOALS.get(eval_task, default)


def task_prompt(task: str) -> dict:
    """The self-evaluation prompt of a task (resources/baselines/rain/<task>.yaml)."""
    from udasa.baselines import RESOURCES

    if task not in TASKS:
        raise ConfigError(f"rain.task: {task!r} is not one of {', '.join(TASKS)}")
    return yaml.safe_load((RESOURCES / "rain" / f"{task}.yaml").read_text(encoding="utf-8"))


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
        self.head = head_ids(backend.tok, prompt)
        self.eval_prompt = task_prompt(cfg.task)
        self.values: dict[str, float] = {}  # self-evaluations cached by text, as RAIN does
        self.evaluations: list[tuple[Node, float]] = []  # (leaf, value) of every search
        self.qmin, self.qmax = -1.0, 1.0
        self.answer: list[int] = []

    def next_seed(self) -> int:
        """The seed of this search's next sampled call."""
        self.draws += 1
        return stream_seed(self.seed, self.draws - 1)

    # the self-evaluation -------------------------------------------------------------------
    def eval_texts(self, response: str) -> list[str]:
        """The task's self-evaluation prompt for `response`, in both option orders."""
        p, texts = self.eval_prompt, []
        for a, b in ((p["good"], p["bad"]), (p["bad"], p["good"])):
            body = p["template"].format(prompt=self.prompt, response=response or "(empty)",
                                        option_a=a, option_b=b)
            texts.append(chat_prefix(self.be.tok, body.strip(), p["answer_prefix"]))
        return texts

    def value_steps(self, response: str) -> Steps:
        """v = 2 P(good) - 1 in [-1, 1], P(good) averaged over both option orders."""
        if response not in self.values:
            probs = yield Evaluate(self.eval_texts(response))
            self.values[response] = float(probs[0, 0] + probs[1, 1]) - 1.0
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
                yield from self.expand_steps(node, self.cfg.add_width, adding=True)
            node = max(node.children.values(), key=lambda c: self.score(c, node))
        return node

    def score(self, child: Node, parent: Node) -> float:
        q = 0.0 if child.n == 0 else (child.q - self.qmin) / (self.qmax - self.qmin + 1e-5)
        return q + self.cfg.c_puct * child.prior * math.sqrt(parent.n) / (1 + child.n)

    def search_steps(self, root: Node) -> Steps:
        """One inner-loop iteration: select, evaluate, expand, back up (then rewind)."""
        leaf = yield from self.select_steps(root)
        state = self.state(leaf)
        tail = yield from self.lookahead_steps(state)
        text = self.be.decode(state + tail)
        v = yield from self.value_steps(text[:stop_text(text)].strip())
        if not self.terminal(leaf, state):
            yield from self.expand_steps(leaf, self.cfg.width)
        yield from self.backup_steps(leaf, v, tail)
        self.evaluations.append((leaf, v))
        self.stats.searches += 1

    def search(self, root: Node) -> None:
        drive(self.be, self.search_steps(root))

    def lookahead_steps(self, state: list[int]) -> Steps:
        """Sample on to the end of the sentence (at most `lookahead` tokens) before evaluating."""
        text = self.be.decode(state)
        if not self.cfg.lookahead or (text and text.endswith(SENTENCE_END)) or \
                (state and state[-1] == self.be.eos):
            return []
        [[(tail, _)]] = yield Continue([Continuation(self.head + state, self.cfg.lookahead,
                                                     seed=self.next_seed())])
        self.stats.visited_tokens += len(tail)
        for i in range(1, len(tail) + 1):
            if tail[i - 1] == self.be.eos or self.be.decode(state + tail[:i]).endswith(
                    SENTENCE_END):
                return tail[:i]
        return tail

    def token_set_steps(self, node: Node, k: int) -> Steps:
        """k candidate token sets after `node` with their probabilities (greedy first)."""
        prefix = self.head + self.state(node)
        length = self.cfg.segments[min(node.depth, len(self.cfg.segments) - 1)]
        length = max(1, min(length, self.cfg.max_new_tokens - len(self.state(node))))
        if length == 1:
            top = yield TopTokens(prefix, k)
            return [([t], p) for t, p in top]
        items = [Continuation(prefix, length, greedy=True)]
        if k > 1:
            items.append(Continuation(prefix, length, k - 1, self.next_seed(),
                                      top_k=self.cfg.top_k))
        [(greedy, g_lp)], *sampled = yield Continue(items)
        sets = [(greedy, math.exp(g_lp))]
        for toks, lp in sampled[0] if sampled else []:
            if all(toks != s for s, _ in sets):
                sets.append((toks, math.exp(lp)))
        self.stats.visited_tokens += sum(len(s) for s, _ in sets)
        if len(sets) > 1:  # RAIN bounds the greedy set's probability by the sampled ones'
            others = [p for _, p in sets[1:]]
            sets[0] = (greedy, max(min(sets[0][1], sum(others)), max(others) + min(others)))
        return sets

    def expand_steps(self, node: Node, k: int, adding: bool = False) -> Steps:
        if adding and all(len(t) == 1 for t in node.children):
            k = len(node.children) + k  # single tokens: the next most likely ones
        for toks, p in (yield from self.token_set_steps(node, k)):
            if tuple(toks) not in node.children and toks:
                node.children[tuple(toks)] = Node(tuple(toks), 0.0, node, node.depth + 1, p)
        self.set_priors(node)

    def set_priors(self, node: Node) -> None:
        total = sum(c.raw for c in node.children.values()) or 1.0
        noise = self.cfg.root_noise if node.parent is None else 0.0
        for c in node.children.values():
            c.prior = (1 - noise) * c.raw / total + noise / len(node.children)

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
            self.commit(root, best, done)
            root, best.parent = best, None
            if root.children:
                self.set_priors(root)
            if self.terminal(root, self.answer):
                break
        text = self.be.decode([t for t in self.answer if t != self.be.eos])
        stop = stop_text(text)
        self.stats.emitted_tokens += len(self.answer)
        return (text[:stop] if stop is not None else text).strip()

    def commit(self, root: Node, best: Node, searches: int) -> None:
        self.stats.commits += 1
        self.stats.history.append({"searches": searches, "visits": [c.n for c in
                                   root.children.values()], "chosen": best.n,
                                   "value": best.q})
        self.answer += list(best.tokens)

    def run(self) -> str:
        return drive(self.be, self.run_steps())


def head_ids(tok, prompt: str) -> list[int]:
    """The prompt as the model sees it: its chat template, else a plain dialogue format."""
    if tok.chat_template:
        return tok.apply_chat_template([{"role": "user", "content": prompt}],
                                       add_generation_prompt=True, return_dict=True)["input_ids"]
    from udasa.baselines import resource

    text = resource("rain/dialogue.txt").rstrip("\n").format(prompt=prompt)
    return tok(text, add_special_tokens=True)["input_ids"]


@functools.cache
def turn_marker() -> str:
    """The start of the user's turn in the plain dialogue format ("\nHuman:")."""
    from udasa.baselines import resource

    return "\n" + resource("rain/dialogue.txt").split("{prompt}")[0].strip()


def stop_text(text: str) -> int | None:
    """Where a base model starts the next dialogue turn (the answer ends there)."""
    i = text.find(turn_marker())
    return i if i >= 0 else None


class RainGenerator:
    """A `Generator` that decodes with RAIN's search (see the module docstring)."""

    def __init__(self, cfg: RainConfig):
        cfg.validate()
        self.cfg = cfg
        self.backend = RainBackend(cfg)
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
