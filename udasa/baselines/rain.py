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
probabilities, embeddings), the seam to move onto a batched generation engine.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import torch
import yaml

from udasa.errors import ConfigError
from udasa.models import load_causal_lm
from udasa.scorers.lm_options import chat_prefix, option_probs

TASKS = ("harmless", "helpful", "truthful", "positive")
EVAL_GOALS = {"harmlessness": "harmless", "robustness": "harmless", "helpfulness": "helpful",
              "truthfulness": "truthful", "sentiment": "positive"}  # eval task -> RAIN task
SENTENCE_END = (",", ".", "?", "!", ":", ";", "\n")


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
        for name in ("max_new_tokens", "max_tries", "width", "max_children", "top_k"):
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
    """The model calls RAIN makes: continue prefixes, next-token top-k, option probabilities of
    the self-evaluation prompt, sentence embeddings. One place to retarget to an engine."""

    def __init__(self, cfg: RainConfig):
        self.cfg = cfg
        self.model, self.tok = load_causal_lm(cfg.model)
        self.eos = self.tok.eos_token_id

    @torch.inference_mode()
    def continue_ids(self, prefix: list[int], length: int, num: int, greedy: bool = False,
                     top_k: int | None = None) -> list[tuple[list[int], float]]:
        """`num` continuations of `prefix` by up to `length` tokens (cut after EOS), each with
        its log-probability under the sampling distribution."""
        ids = torch.tensor([prefix], device=self.model.device)
        out = self.model.generate(
            input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=not greedy,
            num_return_sequences=num, max_new_tokens=length, top_k=None if greedy else top_k,
            top_p=None if greedy else 1.0, temperature=None if greedy else 1.0,
            pad_token_id=self.tok.pad_token_id, output_scores=True, return_dict_in_generate=True)
        logps = self.model.compute_transition_scores(out.sequences, out.scores,
                                                     normalize_logits=True)
        result = []
        for seq, lp in zip(out.sequences[:, len(prefix):].tolist(), logps.tolist()):
            cut = seq.index(self.eos) + 1 if self.eos in seq else len(seq)
            result.append((seq[:cut], float(sum(lp[:cut]))))
        return result

    @torch.inference_mode()
    def top_tokens(self, prefix: list[int], k: int) -> list[tuple[int, float]]:
        """The k most likely next tokens with their probabilities."""
        logits = self.model(torch.tensor([prefix], device=self.model.device)).logits[0, -1]
        probs, ids = torch.softmax(logits.float(), -1).topk(k)
        return list(zip(ids.tolist(), probs.tolist()))

    def option_probs(self, texts: list[str]) -> torch.Tensor:
        return option_probs(self.model, self.tok, texts, ["A", "B"], batch_size=8)

    def embed(self, texts: list[str]) -> torch.Tensor:
        from udasa.scorers.semantic import load_sentence_model

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
    """RAIN on one prompt: the tree, the inner loop (`search`) and the outer loop (`run`)."""

    def __init__(self, backend: RainBackend, cfg: RainConfig, prompt: str, stats: RainStats):
        self.be, self.cfg, self.prompt, self.stats = backend, cfg, prompt, stats
        self.head = head_ids(backend.tok, prompt)
        self.eval_prompt = task_prompt(cfg.task)
        self.values: dict[str, float] = {}  # self-evaluations cached by text, as RAIN does
        self.evaluations: list[tuple[Node, float]] = []  # (leaf, value) of every search
        self.qmin, self.qmax = -1.0, 1.0
        self.answer: list[int] = []

    # the self-evaluation -------------------------------------------------------------------
    def value(self, response: str) -> float:
        """v = 2 P(good) - 1 in [-1, 1], P(good) averaged over both option orders."""
        if response not in self.values:
            p, texts = self.eval_prompt, []
            for a, b in ((p["good"], p["bad"]), (p["bad"], p["good"])):
                body = p["template"].format(prompt=self.prompt, response=response or "(empty)",
                                            option_a=a, option_b=b)
                texts.append(chat_prefix(self.be.tok, body.strip(), p["answer_prefix"]))
            probs = self.be.option_probs(texts)
            self.values[response] = float(probs[0, 0] + probs[1, 1]) - 1.0
            self.stats.evaluations += 1
        return self.values[response]

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

    def select(self, root: Node) -> Node:
        node = root
        while node.children:
            if self.alike_and_bad(node):
                self.expand(node, self.cfg.add_width, adding=True)
            node = max(node.children.values(), key=lambda c: self.score(c, node))
        return node

    def score(self, child: Node, parent: Node) -> float:
        q = 0.0 if child.n == 0 else (child.q - self.qmin) / (self.qmax - self.qmin + 1e-5)
        return q + self.cfg.c_puct * child.prior * math.sqrt(parent.n) / (1 + child.n)

    def search(self, root: Node) -> None:
        """One inner-loop iteration: select, evaluate, expand, back up (then rewind)."""
        leaf = self.select(root)
        state = self.state(leaf)
        tail = self.lookahead(state)
        text = self.be.decode(state + tail)
        v = self.value(text[:stop_text(text)].strip())
        if not self.terminal(leaf, state):
            self.expand(leaf, self.cfg.width)
        self.backup(leaf, v, tail)
        self.evaluations.append((leaf, v))
        self.stats.searches += 1

    def lookahead(self, state: list[int]) -> list[int]:
        """Sample on to the end of the sentence (at most `lookahead` tokens) before evaluating."""
        text = self.be.decode(state)
        if not self.cfg.lookahead or (text and text.endswith(SENTENCE_END)) or \
                (state and state[-1] == self.be.eos):
            return []
        (tail, _), = self.be.continue_ids(self.head + state, self.cfg.lookahead, 1)
        self.stats.visited_tokens += len(tail)
        for i in range(1, len(tail) + 1):
            if tail[i - 1] == self.be.eos or self.be.decode(state + tail[:i]).endswith(
                    SENTENCE_END):
                return tail[:i]
        return tail

    def token_sets(self, node: Node, k: int) -> list[tuple[list[int], float]]:
        """k candidate token sets after `node` with their probabilities (greedy first)."""
        prefix = self.head + self.state(node)
        length = self.cfg.segments[min(node.depth, len(self.cfg.segments) - 1)]
        length = max(1, min(length, self.cfg.max_new_tokens - len(self.state(node))))
        if length == 1:
            return [([t], p) for t, p in self.be.top_tokens(prefix, k)]
        (greedy, g_lp), = self.be.continue_ids(prefix, length, 1, greedy=True)
        sets = [(greedy, math.exp(g_lp))]
        if k > 1:
            for toks, lp in self.be.continue_ids(prefix, length, k - 1, top_k=self.cfg.top_k):
                if all(toks != s for s, _ in sets):
                    sets.append((toks, math.exp(lp)))
        self.stats.visited_tokens += sum(len(s) for s, _ in sets)
        if len(sets) > 1:  # RAIN bounds the greedy set's probability by the sampled ones'
            others = [p for _, p in sets[1:]]
            sets[0] = (greedy, max(min(sets[0][1], sum(others)), max(others) + min(others)))
        return sets

    def expand(self, node: Node, k: int, adding: bool = False) -> None:
        if adding and all(len(t) == 1 for t in node.children):
            k = len(node.children) + k  # single tokens: the next most likely ones
        for toks, p in self.token_sets(node, k):
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

    def backup(self, leaf: Node, v: float, tail: list[int]) -> None:
        """Mean-value backup along the path; similar siblings share the update (RAIN §3)."""
        path = self.path(leaf)
        suffixes, below = [], list(tail)
        for node in reversed(path):
            below = list(node.tokens) + below
            suffixes.append(self.be.decode(below))
        embeddings = self.be.embed(suffixes[::-1]) if path else []
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
    def run(self) -> str:
        root = Node((), 1.0)
        while True:
            budget = max(self.cfg.max_tries - root.fn, self.cfg.min_new_searches) \
                if root.fn else self.cfg.max_tries
            done = 0
            for _ in range(budget):
                self.search(root)
                done += 1
                best = root.best_child()
                if best and best.fn > self.cfg.min_tries and best.q > self.cfg.value_threshold:
                    break
            best = root.best_child()
            if best is None:
                break
            self.stats.commits += 1
            self.stats.history.append({"searches": done, "visits": [c.n for c in
                                       root.children.values()], "chosen": best.n,
                                       "value": best.q})
            self.answer += list(best.tokens)
            root, best.parent = best, None
            if root.children:
                self.set_priors(root)
            if self.terminal(root, self.answer):
                break
        text = self.be.decode([t for t in self.answer if t != self.be.eos])
        stop = stop_text(text)
        self.stats.emitted_tokens += len(self.answer)
        return (text[:stop] if stop is not None else text).strip()


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

    def search(self, prompt: str) -> RainSearch:
        return RainSearch(self.backend, self.cfg, prompt, self.stats)

    def generate(self, prompt: str, n: int, seed: int) -> list[str]:
        out = []
        for i in range(n):
            torch.manual_seed(self.cfg.seed + seed + i)
            out.append(self.search(prompt).run())
        return out
