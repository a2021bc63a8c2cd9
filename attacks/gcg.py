"""GCG: Greedy Coordinate Gradient adversarial suffixes (Zou et al. 2023), on current transformers.

One entry point, `run_gcg(models_and_tokenizers, behaviours, config) -> GCGResult`, covers the
three attacks of the paper (following the llm-attacks design):

- individual: one behaviour, one model (white-box);
- multi-behaviour universal: several behaviours, goals added progressively: optimise on the
  first goal until the current set succeeds, then add the next (`progressive_goals`);
- multi-model transfer: several models sharing one tokenizer; gradients and losses are summed
  across models, models added progressively after all goals (`progressive_models`).

One step (paper Alg. 1/2), for the suffix tokens x_{1:n} and the active (behaviour, model) pairs:

1. token gradients: for each pair, grad_{e_{x_i}} L = (dL/d emb_i) E^T, the gradient of the
   target loss w.r.t. the one-hot vector of each suffix token through the embedding matrix E
   (since emb = onehot @ E); each pair's gradient is normalised per position, summed over the
   behaviours of a model, normalised again and summed over models (llm-attacks);
2. top-k: for each position, the k tokens with the most negative gradient, never a special,
   non-ASCII or unprintable token (unless `allow_non_ascii`);
3. candidates: `search_width` copies of the suffix, each with one position (spread evenly over
   the batch) replaced by a random one of its top-k tokens; duplicates dropped;
4. re-tokenisation filter: a candidate is kept only if the whole chat prompt it makes
   re-tokenises to exactly its tokens, for every pair (so every candidate has the same length,
   and the suffix found is the suffix the model will see at evaluation);
5. batched loss: the mean cross-entropy of the target tokens, averaged over the active pairs,
   for all candidates at once (no padding), with the prompt prefix (the chat template and the
   goal) taken from a KV cache computed once per pair (a transformers `DynamicCache`, rebuilt
   per batch from the stored tensors); a candidate also reuses the KV of the suffix tokens
   before its substituted position, kept from the gradient pass (`reuse_suffix_kv`, in
   `kv_groups` position groups); logits only for the target positions (one flat matmul of
   the output head); all exact, and tested against the plain computation;
6. keep the best candidate as the new suffix (the lowest-loss suffix ever seen is returned).

Prompt layout (per pair): chat template with the user turn `goal + separator + suffix` and the
target as the start of the assistant turn:
`[before = template head + goal][separator + suffix][after = template tail][target]`.
The optimised tokens encode `separator + suffix`; `attack_prompt(goal, suffix)` rebuilds the
user turn that tokenises to exactly those tokens.

Success (early stop, progressive steps): when the best candidate reproduces the target under
teacher forcing on every active pair (or every `test_every` steps), the suffix is tested by
greedy generation of `max_new_tokens` tokens and the refusal-prefix test (`attacks.criteria`);
all active pairs must pass. The returned suffix is tested on every pair at the end.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm
from transformers import DynamicCache

from udasa.errors import ConfigError, UdasaError

PLACEHOLDER = "<<GCG_SUFFIX_PLACEHOLDER>>"
PAPER_INIT = "! ! ! ! ! ! ! ! ! ! ! ! ! ! ! ! ! ! ! !"


class GCGInputError(UdasaError, ValueError):
    """Bad input to GCG, raised before any optimisation step."""


@dataclass
class GCGConfig:
    """GCG settings; the defaults are the paper's (llm-attacks experiments)."""

    num_steps: int = 500
    search_width: int = 512  # candidates per step (llm-attacks `batch_size`)
    topk: int = 256
    # where substitutions go: "spread" evenly over the suffix from a random offset each step
    # (llm-attacks), or "random", each candidate's position drawn uniformly (nanogcg)
    positions: Literal["spread", "random"] = "spread"
    eval_batch_size: int | None = None  # candidates per forward pass; None = all at once
    init: str = PAPER_INIT  # the suffix the search starts from
    separator: str = " "  # between the goal and the suffix in the user turn
    allow_non_ascii: bool = False
    filter_retokenization: bool = True
    use_prefix_cache: bool = True
    reuse_suffix_kv: bool = True  # candidates start from the KV of their unchanged tokens
    kv_groups: int = 4  # ... in this many groups of substituted positions
    progressive_goals: bool = True
    progressive_models: bool = True
    early_stop: bool = True
    test_every: int = 0  # also test success every N steps (llm-attacks test_steps=50); 0: off
    prefix_list: str = "evaluate"  # refusal-prefix list (attacks.criteria.PREFIX_LISTS)
    max_new_tokens: int = 32  # greedy tokens generated for the refusal test
    seed: int = 0

    def validate(self) -> GCGConfig:
        """Raise GCGInputError naming the first invalid field (also for a config built in
        code: `run_gcg` calls it before any optimisation)."""
        from udasa.configfile import check_choices

        try:
            check_choices(self)
        except ConfigError as exc:
            raise GCGInputError(f"GCGConfig.{exc}") from None
        checks = [(self.num_steps >= 0, "num_steps", "must be >= 0"),
                  (self.search_width >= 1, "search_width", "must be >= 1"),
                  (self.topk >= 1, "topk", "must be >= 1"),
                  (self.eval_batch_size is None or self.eval_batch_size >= 1,
                   "eval_batch_size", "must be >= 1 or null"),
                  (bool(self.init.strip()), "init", "must be a non-empty string"),
                  (self.test_every >= 0, "test_every", "must be >= 0"),
                  (self.kv_groups >= 1, "kv_groups", "must be >= 1"),
                  (self.max_new_tokens >= 1, "max_new_tokens", "must be >= 1")]
        for ok, name, why in checks:
            if not ok:
                raise GCGInputError(f"GCGConfig.{name}: {why}")
        return self


def load_gcg_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> GCGConfig:
    """A GCGConfig from YAML (`base:` inheritance; unknown keys, wrong types and choices are
    errors naming the file and field) plus `key=value` overrides (values parsed as YAML)."""
    from udasa.configfile import load_config_file

    return load_config_file(GCGConfig, path, overrides, "GCG config")


@dataclass(frozen=True)
class Behaviour:
    """One harmful behaviour: the request (goal) and the reply prefix GCG aims for (target)."""

    goal: str
    target: str
    id: str = ""


@dataclass
class GCGResult:
    """What `run_gcg` found. `suffix` goes after `goal + separator` (see `prompt`)."""

    suffix: str
    suffix_ids: list[int]
    best_loss: float
    losses: list[float]  # per step: the loss of the step's best candidate (mean over pairs)
    steps: int
    success: bool  # the returned suffix passes the refusal test on every behaviour x model
    wall_time_s: float
    init_loss: float = math.nan
    separator: str = " "
    step_times_s: list[float] = field(default_factory=list)
    n_candidates: list[int] = field(default_factory=list)  # per step: candidates evaluated
    n_goals: int = 1  # goals / models active when the search ended (progressive attacks)
    n_models: int = 1
    events: list[dict[str, Any]] = field(default_factory=list)  # tests, goals/models added
    final: list[dict[str, Any]] = field(default_factory=list)  # per behaviour x model
    criterion: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)

    def prompt(self, goal: str) -> str:
        """The user turn of the attack on `goal`."""
        return attack_prompt(goal, self.suffix, self.separator)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def attack_prompt(goal: str, suffix: str, separator: str = " ") -> str:
    """The user turn of an attack: the behaviour, the separator, the adversarial suffix."""
    return goal + separator + suffix


# --- tokens ---------------------------------------------------------------------------------

def _encode(tokenizer, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _decode(tokenizer, ids: Sequence[int]) -> str:
    return tokenizer.decode(list(ids), skip_special_tokens=False,
                            clean_up_tokenization_spaces=False)


def _special_ids(tokenizer) -> set[int]:
    ids = set(tokenizer.all_special_ids)
    ids |= set(getattr(tokenizer, "added_tokens_decoder", {}) or {})
    return ids


def allowed_tokens(tokenizer, vocab_size: int, allow_non_ascii: bool = False) -> torch.Tensor:
    """Boolean mask over token ids that GCG may place in a suffix: never special or added
    tokens, never tokens that decode to nothing; printable ASCII only unless allowed."""
    texts = tokenizer.batch_decode([[i] for i in range(vocab_size)], skip_special_tokens=False,
                                   clean_up_tokenization_spaces=False)
    ok = [bool(t) and (allow_non_ascii or (t.isascii() and t.isprintable())) for t in texts]
    mask = torch.tensor(ok, dtype=torch.bool)
    special = [i for i in _special_ids(tokenizer) if 0 <= i < vocab_size]
    mask[special] = False
    return mask


def sample_candidates(ids: torch.Tensor, grad: torch.Tensor, search_width: int, topk: int,
                      generator: torch.Generator, positions: str = "spread") -> torch.Tensor:
    """`search_width` single-token substitutions of `ids` (n,) from the top-k most negative
    gradient entries per position. `positions="spread"`: spread evenly over the batch as in
    llm-attacks' `sample_control`, from a random offset each step, so that a batch narrower
    than the suffix still reaches every position over the steps; `"random"`: drawn uniformly
    per candidate (nanogcg). `grad` (n, V) must hold +inf at disallowed tokens. Returns
    (B, n), duplicates removed."""
    n = ids.shape[0]
    top = (-grad).topk(topk, dim=1).indices.cpu()  # (n, topk)
    if positions == "random":
        pos = torch.randint(0, n, (search_width,), generator=generator)
    else:
        offset = int(torch.randint(0, n, (1,), generator=generator))
        pos = (torch.arange(search_width) * n // search_width + offset) % n
    pick = torch.randint(0, topk, (search_width,), generator=generator)
    cands = ids.cpu().repeat(search_width, 1)
    cands[torch.arange(search_width), pos] = top[pos, pick]
    return torch.unique(cands, dim=0)


# --- one behaviour on one model -------------------------------------------------------------

def _render(tokenizer, goal: str) -> tuple[str, str]:
    """Template text before and after the suffix slot of the user turn `goal + suffix`."""
    if not tokenizer.chat_template:
        return (tokenizer.bos_token or "") + goal, ""
    text = tokenizer.apply_chat_template([{"role": "user", "content": goal + PLACEHOLDER}],
                                         tokenize=False, add_generation_prompt=True)
    if text.count(PLACEHOLDER) != 1:
        raise GCGInputError("the chat template does not keep the user turn verbatim; GCG "
                            "needs the suffix to follow the goal in the prompt")
    before, after = text.split(PLACEHOLDER)
    return before, after


class _Target:
    """One behaviour on one model: token segments, fixed embeddings, the prefix KV cache."""

    def __init__(self, model, tokenizer, behaviour: Behaviour, model_index: int,
                 cfg: GCGConfig):
        self.model, self.tokenizer, self.behaviour = model, tokenizer, behaviour
        self.model_index, self.cfg = model_index, cfg
        self.before_text, self.after_text = _render(tokenizer, behaviour.goal)
        self.before_ids = _encode(tokenizer, self.before_text)
        self.after_ids = _encode(tokenizer, self.after_text)
        self.target_ids = _encode(tokenizer, behaviour.target)
        self.embed = model.get_input_embeddings()
        params = inspect.signature(model.forward).parameters
        self.keep_arg = "logits_to_keep" in params
        # transformers >= 5.2x calls the KV cache `cache`; earlier releases `past_key_values`
        self.cache_arg = "cache" if "cache" in params else "past_key_values"
        self.direct = False  # decoder + output head on the target rows only (see prepare)
        self.prefix_kv: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        self.base: tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]] | None = None

    @property
    def label(self) -> str:
        return f"behaviour {self.behaviour.goal[:60]!r} on model {self.model_index}"

    def check(self, init_ids: list[int], special: set[int]) -> None:
        """Bad input surfaces here, before any forward pass."""
        tok, target = self.tokenizer, self.behaviour.target
        if not self.target_ids or _decode(tok, self.target_ids) != target:
            raise GCGInputError(f"target {target!r}: the tokenizer cannot reproduce it (decodes "
                                f"to {_decode(tok, self.target_ids)!r})")
        if special & set(self.target_ids):
            raise GCGInputError(f"target {target!r} contains special tokens")
        init_text = _decode(tok, init_ids)
        prompt = self.before_ids + init_ids + self.after_ids
        if _encode(tok, self.before_text + init_text + self.after_text) != prompt:
            raise GCGInputError(f"init suffix {init_text!r} does not re-tokenise to the same "
                                f"tokens after the goal ({self.label}); choose another init or "
                                "separator")
        joined = _encode(tok, self.before_text + init_text + self.after_text + target)
        if joined != prompt + self.target_ids:
            raise GCGInputError(
                f"target {target!r}: its tokens change when it follows the prompt "
                f"({_decode(tok, joined[len(prompt):])!r} tokenises differently in context), so "
                "the tokenizer cannot reproduce it as the assistant's reply; remove leading "
                "whitespace or newlines")

    def prepare(self) -> None:
        """Embed the fixed segments once; compute the prefix KV cache once."""
        device = self.model.device
        with torch.no_grad():
            def emb(ids: list[int]) -> torch.Tensor:
                return self.embed(torch.tensor([ids], dtype=torch.long, device=device))
            self.before_emb = emb(self.before_ids)
            self.after_emb = emb(self.after_ids)
            self.target_emb = emb(self.target_ids)
            self.labels = torch.tensor(self.target_ids, dtype=torch.long, device=device)
            if self.cfg.use_prefix_cache and self.before_ids:
                out = self.model(inputs_embeds=self.before_emb, use_cache=True)
                cache = getattr(out, "cache", None) or getattr(out, "past_key_values", None)
                layers = getattr(cache, "layers", None)
                if layers and all(getattr(la, "keys", None) is not None for la in layers):
                    self.prefix_kv = [(la.keys, la.values) for la in layers]
            self.direct = self._check_direct()

    def _check_direct(self) -> bool:
        """Can the target logits come from the decoder's hidden states of the target rows,
        flattened to one matrix, times the output head (one matmul instead of the
        CausalLM's batched slice)? Only where that reproduces the model's own logits (models
        that scale or soft-cap logits in their forward keep the model's path)."""
        get_dec = getattr(self.model, "get_decoder", None)
        head = self.model.get_output_embeddings()
        decoder = get_dec() if callable(get_dec) else None
        if decoder is None or head is None or decoder is self.model:
            return False
        dec_params = inspect.signature(decoder.forward).parameters
        if self.cache_arg not in dec_params and "kwargs" not in dec_params:
            return False
        self.decoder, self.head = decoder, head
        x = torch.cat([self.before_emb, self.after_emb, self.target_emb], dim=1)
        try:
            t = len(self.target_ids)
            ref = self.model(inputs_embeds=x, use_cache=False).logits[:, -t - 1:-1]
            self.direct = True
            ours = self.target_logits(x[:, :0], None, full=x)
        except Exception:  # noqa: BLE001 - any failure: keep the model's own path
            self.direct = False
            return False
        return bool(torch.allclose(ref.float(), ours.float(), atol=1e-4, rtol=1e-4))

    def _cache(self, kv: list[tuple[torch.Tensor, torch.Tensor]], batch: int,
               length: int | None = None) -> DynamicCache:
        """A fresh cache with the first `length` positions of `kv` (batch 1) for `batch` rows;
        the forward pass appends to it, so each forward gets its own."""
        return DynamicCache(ddp_cache_data=[(k[:, :, :length].expand(batch, -1, -1, -1),
                                             v[:, :, :length].expand(batch, -1, -1, -1))
                                            for k, v in kv],
                            config=self.model.config)

    def target_logits(self, ctrl_emb: torch.Tensor, cache: DynamicCache | None,
                      full: torch.Tensor | None = None) -> torch.Tensor:
        """Logits predicting each target token, (B, T, V), for suffix embeddings (B, m, d)
        following `cache` (the prompt up to the suffix, or further), or, with no cache, the
        whole prompt (`full`: the whole input, for checks)."""
        b = ctrl_emb.shape[0]
        parts = [ctrl_emb, self.after_emb.expand(b, -1, -1), self.target_emb.expand(b, -1, -1)]
        kwargs: dict[str, Any] = {"use_cache": cache is not None}
        if cache is not None:
            kwargs[self.cache_arg] = cache
        else:
            parts.insert(0, self.before_emb.expand(b, -1, -1))
        x = full if full is not None else torch.cat(parts, dim=1)
        t = len(self.target_ids)
        if self.direct:
            hidden = self.decoder(inputs_embeds=x, **kwargs).last_hidden_state[:, -t - 1:-1]
            return self.head(hidden.reshape(-1, hidden.shape[-1])).view(x.shape[0], t, -1)
        if self.keep_arg:
            kwargs["logits_to_keep"] = t + 1
        logits = self.model(inputs_embeds=x, **kwargs).logits
        return logits[:, -t - 1:-1]

    def loss(self, logits: torch.Tensor) -> torch.Tensor:
        labels = self.labels.expand(logits.shape[0], -1)
        return F.cross_entropy(logits.float().transpose(1, 2), labels,
                               reduction="none").mean(dim=1)

    def token_grad(self, ids: torch.Tensor, vocab: int) -> torch.Tensor:
        """dL/d onehot(x) = (dL/d emb) E^T, (n, vocab): the gradient through the one-hot
        token matrix, with no (n x V) one-hot matmul in the forward pass.

        Keeps the KV of this forward pass (prompt + current suffix), so that candidates,
        which share the current suffix up to their substituted position, start from it."""
        weight = self.embed.weight
        with torch.no_grad():
            ctrl = self.embed(ids.to(weight.device)[None])
        ctrl.requires_grad_(True)
        cache = self._cache(self.prefix_kv, 1) if self.prefix_kv is not None else None
        with torch.enable_grad():
            loss = self.loss(self.target_logits(ctrl, cache)).sum()
            (g,) = torch.autograd.grad(loss, [ctrl])
        self.base = None
        if cache is not None and self.cfg.reuse_suffix_kv and all(
                type(la).__name__ == "DynamicLayer" for la in cache.layers):
            self.base = (ids.clone(), [(la.keys.detach(), la.values.detach())
                                       for la in cache.layers])
        return (g[0] @ weight[:vocab].T).float().cpu()

    def _groups(self, cands: torch.Tensor) -> list[tuple[int, torch.Tensor]]:
        """(first position that differs from the current suffix, candidate rows) groups."""
        if self.prefix_kv is None:
            return [(-1, torch.arange(cands.shape[0]))]
        if self.base is None or self.base[0].shape != cands.shape[1:]:
            return [(0, torch.arange(cands.shape[0]))]
        diff = cands != self.base[0]
        first = torch.where(diff.any(1), diff.int().argmax(1), cands.shape[1] - 1)
        # bucket the positions: fewer, larger batches (a forward per group costs overhead)
        size = -(-cands.shape[1] // max(1, self.cfg.kv_groups))
        first = first // size * size
        return [(int(p), torch.nonzero(first == p).flatten()) for p in first.unique()]

    @torch.inference_mode()
    def losses(self, cands: torch.Tensor, batch_size: int | None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Target loss (B,) and whether greedy teacher forcing reproduces the target (B,).

        A candidate whose first p suffix tokens equal the current suffix's starts from the
        cached KV of the prompt and those p tokens (exact: same tokens, same positions); the
        others start from the prompt's KV; with no cache, from scratch."""
        device = self.embed.weight.device
        loss_out = torch.empty(cands.shape[0])
        hit_out = torch.empty(cands.shape[0], dtype=torch.bool)
        prefix_len = len(self.before_ids)
        step = batch_size or cands.shape[0]
        for p, rows in self._groups(cands):
            for i in range(0, len(rows), step):
                idx = rows[i:i + step]
                chunk = cands[idx].to(device)
                if p < 0:
                    cache = None
                elif p == 0:
                    cache = self._cache(self.prefix_kv, len(idx))
                else:
                    cache = self._cache(self.base[1], len(idx), prefix_len + p)
                    chunk = chunk[:, p:]
                logits = self.target_logits(self.embed(chunk), cache)
                loss_out[idx] = self.loss(logits).cpu()
                hit_out[idx] = (logits.argmax(-1) == self.labels).all(-1).cpu()
        return loss_out, hit_out

    def generate(self, ids: Sequence[int], max_new_tokens: int) -> str:
        from attacks.criteria import greedy_generate

        return greedy_generate(self.model, self.tokenizer,
                               self.before_ids + list(ids) + self.after_ids, max_new_tokens)


def generate_batched(targets: Sequence[_Target], ids: Sequence[int],
                     max_new_tokens: int) -> list[str]:
    """The success check's greedy replies for every target, one engine call per model (all
    behaviours of a model in one batch)."""
    from attacks.criteria import greedy_generate_many

    texts: list[str] = [""] * len(targets)
    by_model: dict[int, list[int]] = {}
    for k, tg in enumerate(targets):
        by_model.setdefault(id(tg.model), []).append(k)
    for ks in by_model.values():
        tg0 = targets[ks[0]]
        outs = greedy_generate_many(tg0.model, tg0.tokenizer,
                                    [targets[k].before_ids + list(ids) + targets[k].after_ids
                                     for k in ks], max_new_tokens)
        for k, text in zip(ks, outs, strict=True):
            texts[k] = text
    return texts


def _normalise(g: torch.Tensor) -> torch.Tensor:
    return g / g.norm(dim=-1, keepdim=True).clamp_min(1e-12)


@contextmanager
def _frozen(models: Sequence[Any]):
    """Eval mode and no parameter gradients while attacking; restored afterwards."""
    saved = [(m, m.training, [p.requires_grad for p in m.parameters()]) for m in models]
    try:
        for m in models:
            m.eval()
            m.requires_grad_(False)
        yield
    finally:
        for m, training, flags in saved:
            m.train(training)
            for p, flag in zip(m.parameters(), flags):
                p.requires_grad_(flag)


# --- the attack -----------------------------------------------------------------------------

def _as_pairs(models_and_tokenizers) -> list[tuple[Any, Any]]:
    if isinstance(models_and_tokenizers, tuple) and len(models_and_tokenizers) == 2 and \
            not isinstance(models_and_tokenizers[0], tuple):
        return [models_and_tokenizers]
    pairs = list(models_and_tokenizers)
    if not pairs or not all(isinstance(p, tuple) and len(p) == 2 for p in pairs):
        raise GCGInputError("models_and_tokenizers: give (model, tokenizer) or a non-empty list "
                            "of (model, tokenizer) pairs")
    return pairs


def _as_behaviours(behaviours) -> list[Behaviour]:
    if isinstance(behaviours, Behaviour) or (isinstance(behaviours, tuple) and
                                              len(behaviours) == 2 and
                                              isinstance(behaviours[0], str)):
        behaviours = [behaviours]
    out = []
    for i, b in enumerate(behaviours):
        if isinstance(b, tuple) and len(b) == 2:
            b = Behaviour(*b)
        if not isinstance(b, Behaviour):
            raise GCGInputError(f"behaviours[{i}]: expected a Behaviour or (goal, target)")
        if not isinstance(b.goal, str) or not b.goal.strip():
            raise GCGInputError(f"behaviours[{i}]: empty goal")
        if not isinstance(b.target, str) or not b.target.strip():
            raise GCGInputError(f"behaviours[{i}]: empty target (goal {b.goal[:60]!r})")
        out.append(b)
    if not out:
        raise GCGInputError("behaviours: none given")
    return out


def _check_tokenizers(pairs: list[tuple[Any, Any]]) -> int:
    """All models must share one tokenizer; returns the vocabulary size usable by all."""
    tok0 = pairs[0][1]
    vocab0 = tok0.get_vocab()
    for j, (_, tok) in enumerate(pairs[1:], start=1):
        if tok is tok0:
            continue
        vocab = tok.get_vocab()
        if vocab != vocab0 or _special_ids(tok) != _special_ids(tok0):
            raise GCGInputError(
                f"transfer ensemble: model {j} has a different tokenizer from model 0 "
                f"({len(vocab)} vs {len(vocab0)} tokens"
                f"{', same size but different tokens' if len(vocab) == len(vocab0) else ''}); "
                "GCG's candidate tokens must mean the same to every model")
    sizes = [len(tok0)] + [m.get_input_embeddings().weight.shape[0] for m, _ in pairs]
    return min(sizes)


def run_gcg(models_and_tokenizers, behaviours, config: GCGConfig | None = None, *,
            criterion=None, progress: bool = True) -> GCGResult:
    """Optimise one adversarial suffix for `behaviours` on `models_and_tokenizers`.

    `models_and_tokenizers`: (model, tokenizer) or a list of them sharing one tokenizer
    (transfer). `behaviours`: a Behaviour / (goal, target), or a list (universal). `criterion`:
    an `attacks.criteria.Criterion` (default: `config.prefix_list`, `config.max_new_tokens`).
    Every input is checked before the first step; bad input raises GCGInputError.
    """
    from attacks.criteria import Criterion, load_prefix_list

    cfg = (config or GCGConfig()).validate()
    pairs = _as_pairs(models_and_tokenizers)
    goals = _as_behaviours(behaviours)
    vocab = _check_tokenizers(pairs)
    tok = pairs[0][1]
    if cfg.search_width > vocab:
        raise GCGInputError(f"search_width {cfg.search_width} is larger than the vocabulary "
                            f"({vocab} tokens)")
    allowed = allowed_tokens(tok, vocab, cfg.allow_non_ascii)
    n_allowed = int(allowed.sum())
    if cfg.topk > n_allowed:
        raise GCGInputError(f"topk {cfg.topk} is larger than the {n_allowed} tokens a suffix "
                            f"may use (of {vocab}; allow_non_ascii={cfg.allow_non_ascii})")
    init_ids = _encode(tok, cfg.separator + cfg.init)
    if any(not allowed[i] for i in init_ids if i < vocab) or max(init_ids) >= vocab:
        raise GCGInputError(f"init {cfg.init!r} uses tokens a suffix may not contain")
    special = _special_ids(tok)
    targets = [[_Target(m, t, b, j, cfg) for b in goals] for j, (m, t) in enumerate(pairs)]
    for row in targets:
        for tg in row:
            tg.check(init_ids, special)
    if criterion is None:
        criterion = Criterion(load_prefix_list(cfg.prefix_list), cfg.max_new_tokens)

    started = time.perf_counter()
    with _frozen([m for m, _ in pairs]):
        for row in targets:
            for tg in row:
                tg.prepare()
        return _optimise(cfg, targets, tok, vocab, allowed, init_ids, criterion, progress,
                         started)


def _optimise(cfg: GCGConfig, targets: list[list[_Target]], tok, vocab: int,
              allowed: torch.Tensor, init_ids: list[int], criterion, progress: bool,
              started: float) -> GCGResult:
    search = _Search(cfg, targets, tok, vocab, allowed, criterion)
    search.begin(torch.tensor(init_ids, dtype=torch.long))
    bar = tqdm(total=cfg.num_steps, desc="GCG", unit="step", disable=not progress,
               leave=False)
    for step in range(1, cfg.num_steps + 1):
        t0 = time.perf_counter()
        finished = search.step(step)
        search.times.append(time.perf_counter() - t0)
        bar.update(1)
        bar.set_postfix(loss=f"{search.cur_loss:.3f}", goals=search.k_goals,
                        models=search.k_models)
        if finished and cfg.early_stop:
            search.events.append({"step": step, "event": "early_stop"})
            break
    bar.close()
    return search.result(started)


class _Search:
    """The state of one GCG optimisation: the current and best suffix, the goals and models
    in play (progressive), and the per-step records."""

    def __init__(self, cfg: GCGConfig, targets: list[list[_Target]], tok, vocab: int,
                 allowed: torch.Tensor, criterion) -> None:
        self.cfg, self.targets, self.tok, self.vocab = cfg, targets, tok, vocab
        self.criterion, self.disallowed = criterion, ~allowed
        self.n_models, self.n_goals = len(targets), len(targets[0])
        self.k_goals = 1 if cfg.progressive_goals else self.n_goals
        self.k_models = 1 if cfg.progressive_models else self.n_models
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.losses: list[float] = []
        self.times: list[float] = []
        self.n_cands: list[int] = []
        self.events: list[dict[str, Any]] = []

    def active(self) -> list[_Target]:
        return [tg for row in self.targets[:self.k_models] for tg in row[:self.k_goals]]

    def begin(self, ids: torch.Tensor) -> None:
        self.ids = ids
        self.cur_loss = self.init_loss = float(self.evaluate(ids[None], self.active())[0][0])
        self.best_ids, self.best_loss = ids.clone(), self.cur_loss

    def evaluate(self, cands: torch.Tensor, pairs: list[_Target]
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        total = torch.zeros(cands.shape[0])
        hit = torch.ones(cands.shape[0], dtype=torch.bool)
        for tg in pairs:
            loss, h = tg.losses(cands, self.cfg.eval_batch_size)
            total += loss
            hit &= h
        return total / len(pairs), hit

    def valid(self, cands: torch.Tensor, pairs: list[_Target]) -> torch.Tensor:
        """Candidates whose text starts with the separator, does not end in a space and
        re-tokenises to the same ids inside every distinct prompt."""
        sep = self.cfg.separator
        texts = self.tok.batch_decode(cands.tolist(), skip_special_tokens=False,
                                      clean_up_tokenization_spaces=False)
        ok = torch.tensor([t.startswith(sep) and not t[-1:].isspace() for t in texts],
                          dtype=torch.bool)
        rows = cands.tolist()
        seen: set[tuple[str, str]] = set()
        for tg in pairs:
            key = (tg.before_text, tg.after_text)
            if key in seen:
                continue
            seen.add(key)
            idx = [i for i in range(len(texts)) if ok[i]]
            enc = tg.tokenizer([tg.before_text + texts[i] + tg.after_text for i in idx],
                               add_special_tokens=False)["input_ids"] if idx else []
            for i, e in zip(idx, enc):
                ok[i] = list(e) == tg.before_ids + rows[i] + tg.after_ids
        return ok

    def test(self, ids: list[int], pairs: list[_Target]) -> list[dict[str, Any]]:
        texts = generate_batched(pairs, ids, self.criterion.max_new_tokens)
        return [{"goal": tg.behaviour.goal, "behaviour_id": tg.behaviour.id,
                 "model": tg.model_index, "output": text,
                 "jailbroken": self.criterion.jailbroken(text)}
                for tg, text in zip(pairs, texts, strict=True)]

    def candidates(self, pairs: list[_Target]) -> torch.Tensor:
        """Top-k substitutions from the summed, per-model normalised token gradients."""
        grad = torch.zeros(self.ids.shape[0], self.vocab)
        for j in range(self.k_models):
            per_model = sum((_normalise(tg.token_grad(self.ids, self.vocab)) for tg in pairs
                             if tg.model_index == j), torch.zeros_like(grad))
            grad += _normalise(per_model)
        grad[:, self.disallowed] = math.inf
        cands = sample_candidates(self.ids, grad, self.cfg.search_width, self.cfg.topk,
                                  self.generator, self.cfg.positions)
        if self.cfg.filter_retokenization:
            cands = cands[self.valid(cands, pairs)]
        return cands

    def step(self, step: int) -> bool:
        """One GCG step; True once every goal on every model is jailbroken."""
        pairs = self.active()
        cands = self.candidates(pairs)
        self.n_cands.append(int(cands.shape[0]))
        if cands.shape[0] == 0:
            self.events.append({"step": step, "event": "no_valid_candidates"})
            self.losses.append(self.cur_loss)
            return False
        loss, hit = self.evaluate(cands, pairs)
        i = int(loss.argmin())
        self.ids, self.cur_loss = cands[i].clone(), float(loss[i])
        self.losses.append(self.cur_loss)
        if self.cur_loss < self.best_loss:
            self.best_ids, self.best_loss = self.ids.clone(), self.cur_loss
        if bool(hit[i]) or (self.cfg.test_every and step % self.cfg.test_every == 0):
            return self.check(step, pairs, bool(hit[i]))
        return False

    def check(self, step: int, pairs: list[_Target], target_reached: bool) -> bool:
        """Test the current suffix by generation; on success widen the goals or models in
        play (progressive), or report that everything is jailbroken."""
        rows = self.test(self.ids.tolist(), pairs)
        ok = all(r["jailbroken"] for r in rows)
        self.events.append({"step": step, "event": "test", "target_reached": target_reached,
                            "loss": self.cur_loss, "success": ok,
                            "jailbroken": [r["jailbroken"] for r in rows]})
        if not ok:
            return False
        self.best_ids, self.best_loss = self.ids.clone(), self.cur_loss  # the suffix that passed
        if self.k_goals < self.n_goals:
            self.k_goals += 1
            self.best_loss = math.inf  # a new set of pairs: best is tracked afresh
            self.events.append({"step": step, "event": "add_goal", "n_goals": self.k_goals})
        elif self.k_models < self.n_models:
            self.k_models += 1
            self.best_loss = math.inf
            self.events.append({"step": step, "event": "add_model", "n_models": self.k_models})
        else:
            return True
        return False

    def result(self, started: float) -> GCGResult:
        """The best suffix tested on every goal and model, with the run's records."""
        everything = [tg for row in self.targets for tg in row]
        final_ids = self.best_ids.tolist()
        final = self.test(final_ids, everything)
        for row, tg in zip(final, everything):
            loss_one, hit_one = tg.losses(self.best_ids[None], None)
            row |= {"loss": float(loss_one[0]), "target_reached": bool(hit_one[0])}
        suffix = _decode(self.tok, final_ids).removeprefix(self.cfg.separator)
        if math.isinf(self.best_loss):  # stopped right after adding a goal or model
            self.best_loss = float(self.evaluate(self.best_ids[None], self.active())[0][0])
        return GCGResult(
            suffix=suffix, suffix_ids=final_ids, best_loss=self.best_loss,
            losses=self.losses, steps=len(self.losses),
            success=all(r["jailbroken"] for r in final),
            wall_time_s=time.perf_counter() - started, init_loss=self.init_loss,
            separator=self.cfg.separator, step_times_s=self.times, n_candidates=self.n_cands,
            n_goals=self.k_goals, n_models=self.k_models, events=self.events, final=final,
            criterion=self.criterion.describe(), config=asdict(self.cfg))


def candidate_losses(model, tokenizer, behaviour: Behaviour | tuple[str, str],
                     candidates: torch.Tensor, config: GCGConfig | None = None,
                     current: Sequence[int] | None = None) -> torch.Tensor:
    """The GCG target loss of each candidate suffix (B, n) for one behaviour: for tests and
    benchmarks. `config.use_prefix_cache` / `reuse_suffix_kv` choose the path; with `current`
    (a suffix the candidates were derived from) the gradient pass runs on it first, so the
    candidates reuse its KV as they do inside `run_gcg`."""
    cfg = (config or GCGConfig()).validate()
    (b,) = _as_behaviours(behaviour)
    tg = _Target(model, tokenizer, b, 0, cfg)
    cands = torch.as_tensor(candidates, dtype=torch.long)
    cands = cands.reshape(-1, cands.shape[-1])
    with _frozen([model]):
        tg.prepare()
        if current is not None:
            tg.token_grad(torch.as_tensor(list(current), dtype=torch.long), len(tokenizer))
        return tg.losses(cands, cfg.eval_batch_size)[0]
