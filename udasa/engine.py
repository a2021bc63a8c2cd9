"""One batched generation engine for every local-model caller (docs/method.md §1).

`Engine` wraps a transformers causal LM and offers three batched operations:

* `generate(requests)`: many prompts (or prefixes to continue), N samples each. Requests are
  sorted by length and packed into left-padded batches sized by a token budget
  (`batch_tokens` = rows x (prompt width + new tokens)); each prompt is prefilled once (once
  per batch even when several requests carry it) and its KV cache expanded to their rows;
  rows that finish (EOS or their token limit) leave the batch.
* `generate_with_logprobs(requests)`: the same, each sample with its log-probability under
  the distribution it was drawn from (after temperature, top-k and top-p; RAIN's priors).
* `next_token_logprobs(prefixes)`: log-softmax of the next token after each prefix, in
  length-sorted, token-budgeted batches (option probabilities, the local judge). Prefixes
  that start alike (both option orders of one judged text) share one prefill of their common
  start (`stem_groups`); only their differing tails run per prefix.

Sampling is done here from the logits, with one random stream per row keyed by (request
seed, sample index) and counted by (step, token id): a row's draws do not depend on the batch
it lands in,
so outputs do not depend on batch size or on which other prompts share the batch (up to float
differences that padding can cause in the logits; greedy batched and one-at-a-time outputs are
compared in tests/test_engine.py).
"""

from __future__ import annotations

import hashlib
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

DEFAULT_BATCH_TOKENS = 16384
CANDIDATES = (64, 1024, 1 << 62)  # where top-p looks for the nucleus, in turn
STEM_MIN = 32  # tokens prefixes must share before scoring runs their common start once


@dataclass
class Request:
    """One prompt (token ids) to continue `n` times; `seed` keys the rows' random streams."""

    ids: list[int]
    n: int = 1
    seed: int = 0
    max_new_tokens: int = 64
    temperature: float = 0.0  # 0: greedy
    top_p: float = 1.0
    top_k: int = 0  # sample among the k most likely tokens only; 0: no cut


def row_key(seed: int, index: int) -> int:
    """The key of sample `index` of a request with `seed`: its random stream (63 bits)."""
    digest = hashlib.sha256(f"{seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def _signed(c: int) -> int:
    return c - (1 << 64) if c >= 1 << 63 else c


_GOLDEN, _M1, _M2 = (_signed(0x9E3779B97F4A7C15), _signed(0xFF51AFD7ED558CCD),
                     _signed(0xC4CEB9FE1A85EC53))
_LOW31 = 0x7FFFFFFF


def uniforms(keys: torch.Tensor, steps: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """U(0, 1) for each (row key, decoding step, token id): a counter-based stream (murmur3's
    64-bit finaliser over int64, wrapping), so a token's draw depends only on its row, step
    and id, never on how many other tokens or rows were drawn for. (rows,) x (rows, k)."""
    x = (keys.unsqueeze(-1) ^ (steps.unsqueeze(-1) * _M2)) + ids * _GOLDEN
    for mult in (_M1, _M2, None):
        x = x ^ ((x >> 33) & _LOW31)  # a logical shift right by 33 on int64
        if mult is not None:
            x = x * mult
    return (((x >> 11) & ((1 << 53) - 1)).double() + 0.5) / float(1 << 53)


@dataclass
class _Row:
    request: int
    sample: int
    key: int | None  # None: greedy
    limit: int
    temperature: float
    top_p: float
    step: int = 0  # tokens drawn so far
    top_k: int = 0
    logprob: float | None = None  # the drawn tokens' summed log-probability, when recorded


class Engine:
    """Batched generation and next-token scoring over one model (see the module docstring)."""

    def __init__(self, model, tokenizer, batch_tokens: int = DEFAULT_BATCH_TOKENS,
                 max_rows: int | None = None, share_prefills: bool = True):
        self.model, self.tokenizer = model, tokenizer
        self.share_prefills = share_prefills  # same prompts, and alike prefixes' stems, once
        self.batch_tokens = max(1, int(batch_tokens))
        self.max_rows = max_rows
        pad = tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else (tokenizer.eos_token_id or 0))
        self.eos_ids = _eos_ids(model, tokenizer)
        self.tokens_generated = 0

    # batching ------------------------------------------------------------------------------
    def _batches(self, lengths: Sequence[int], rows: Sequence[int],
                 new: Sequence[int]) -> list[list[int]]:
        """Indices sorted by length (longest first), packed so rows x width <= batch_tokens."""
        order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
        batches: list[list[int]] = []
        cur: list[int] = []
        width = n_rows = 0
        for i in order:
            w = max(width, lengths[i] + new[i])
            r = n_rows + rows[i]
            too_many = self.max_rows is not None and r > self.max_rows
            if cur and (r * w > self.batch_tokens or too_many):
                batches.append(cur)
                cur, w, r = [], lengths[i] + new[i], rows[i]
            cur.append(i)
            width, n_rows = w, r
        if cur:
            batches.append(cur)
        return batches

    def _left_pad(self, seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(s) for s in seqs)
        ids = torch.tensor([[self.pad_id] * (width - len(s)) + list(s) for s in seqs])
        mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in seqs])
        return ids, mask

    # generation ----------------------------------------------------------------------------
    def generate(self, requests: Sequence[Request],
                 on_tokens: Callable[[int], None] | None = None
                 ) -> Iterator[tuple[int, list[list[int]]]]:
        """Yield (request index, its n token lists without EOS) as each request completes."""
        if not requests:
            return
        batches = self._batches([len(r.ids) for r in requests], [r.n for r in requests],
                                [r.max_new_tokens for r in requests])
        for batch in batches:
            for i, toks, _ in self._run_batch(requests, batch, on_tokens):
                yield i, toks

    def generate_all(self, requests: Sequence[Request]) -> list[list[list[int]]]:
        out: list[list[list[int]]] = [[] for _ in requests]
        for i, toks in self.generate(requests):
            out[i] = toks
        return out

    def generate_with_logprobs(self, requests: Sequence[Request],
                               on_tokens: Callable[[int], None] | None = None
                               ) -> list[list[tuple[list[int], float]]]:
        """Per request, its n (tokens without EOS, log-probability) pairs: the sum over the
        drawn tokens, a final EOS included, of log p under the distribution each was drawn
        from (greedy rows: the model's own; sampled rows: after temperature, top-k, top-p)."""
        out: list[list[tuple[list[int], float]]] = [[] for _ in requests]
        batches = self._batches([len(r.ids) for r in requests], [r.n for r in requests],
                                [r.max_new_tokens for r in requests])
        for batch in batches:
            for i, toks, logps in self._run_batch(requests, batch, on_tokens, score=True):
                out[i] = list(zip(toks, logps))
        return out

    @staticmethod
    def _rows(requests: Sequence[Request], batch: list[int], score: bool) -> list[_Row]:
        return [_Row(i, j, row_key(r.seed, j) if r.temperature > 0 else None, r.max_new_tokens,
                     r.temperature, r.top_p, top_k=r.top_k, logprob=0.0 if score else None)
                for i in batch for j, r in ((j, requests[i]) for j in range(requests[i].n))]

    @torch.inference_mode()
    def _run_batch(self, requests: Sequence[Request], batch: list[int],
                   on_tokens: Callable[[int], None] | None, score: bool = False
                   ) -> Iterator[tuple[int, list[list[int]], list[float | None]]]:
        device = self.model.device
        prompts, slot = self._distinct([requests[i].ids for i in batch])
        ids, mask = self._left_pad(prompts)
        logits, cache = self._prefill(ids.to(device), mask.to(device))
        rows = self._rows(requests, batch, score)
        expand = torch.tensor([slot[k] for k, i in enumerate(batch)
                               for _ in range(requests[i].n)])
        cache.batch_select_indices(expand.to(device))
        logits, mask = logits[expand], mask[expand].to(device)
        position = mask.sum(-1)
        out: dict[int, list[list[int]]] = {i: [[] for _ in range(requests[i].n)] for i in batch}
        logps: dict[int, list[float | None]] = {i: [None] * requests[i].n for i in batch}
        pending = {i: requests[i].n for i in batch}
        eos = torch.tensor(sorted(self.eos_ids), dtype=torch.long)
        while True:
            nxt = sample_rows(logits, rows)
            for row in rows:
                row.step += 1
            done = torch.isin(nxt, eos)
            for k, (row, tok) in enumerate(zip(rows, nxt.tolist())):
                if not done[k]:
                    out[row.request][row.sample].append(tok)
                if done[k] or len(out[row.request][row.sample]) >= row.limit:
                    done[k] = True
                    logps[row.request][row.sample] = row.logprob
                    pending[row.request] -= 1
                    if pending[row.request] == 0:
                        yield row.request, out.pop(row.request), logps.pop(row.request)
            self.tokens_generated += len(rows)
            if on_tokens:
                on_tokens(len(rows))
            if bool(done.all()):
                return
            if bool(done.any()):
                keep = (~done).nonzero().squeeze(-1)
                rows = [rows[k] for k in keep.tolist()]
                cache.batch_select_indices(keep.to(device))
                nxt, mask, position = nxt[keep], mask[keep], position[keep]
                mask, cache = _trim_left(mask, cache)
            mask = torch.cat([mask, mask.new_ones(len(rows), 1)], dim=1)
            logits = self.model(input_ids=nxt[:, None].to(device), attention_mask=mask,
                                position_ids=position[:, None], cache=cache,
                                use_cache=True).logits[:, -1].float().cpu()
            position = position + 1

    def _distinct(self, prompts: list[list[int]]) -> tuple[list[list[int]], list[int]]:
        """The prompts to prefill (each distinct one once, with `share_prefills`) and, per
        input prompt, its row among them."""
        if not self.share_prefills:
            return prompts, list(range(len(prompts)))
        rows: dict[tuple[int, ...], int] = {}
        slot = [rows.setdefault(tuple(p), len(rows)) for p in prompts]
        return [list(p) for p in rows], slot

    def _prefill(self, ids: torch.Tensor, mask: torch.Tensor):
        positions = (mask.cumsum(-1) - 1).clamp_min(0)
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions,
                         cache=DynamicCache(config=self.model.config), use_cache=True,
                         logits_to_keep=1)
        return out.logits[:, -1].float().cpu(), out.cache

    # scoring -------------------------------------------------------------------------------
    @torch.inference_mode()
    def next_token_logprobs(self, prefixes: Sequence[Sequence[int]],
                            token_ids: Sequence[int] | None = None) -> torch.Tensor:
        """Log-softmax over the vocabulary after each prefix: (len(prefixes), vocab), or only
        the columns `token_ids` (still normalised over the whole vocabulary)."""
        width = self.model.config.vocab_size if token_ids is None else len(token_ids)
        result = torch.empty(len(prefixes), width)
        cols = None if token_ids is None else torch.tensor(list(token_ids))
        groups = stem_groups(prefixes) if self.share_prefills else [(0, [i]) for i in
                                                                  range(len(prefixes))]
        if self.max_rows:  # a group runs its tails in one pass: no more rows than allowed
            groups = [(stem, m[k:k + self.max_rows]) for stem, m in groups
                      for k in range(0, len(m), self.max_rows)]
        alone = [g[0] for _, g in groups if len(g) == 1]
        for batch in self._batches([len(prefixes[i]) for i in alone], [1] * len(alone),
                                   [0] * len(alone)):
            rows = [alone[k] for k in batch]
            ids, mask = self._left_pad([list(prefixes[i]) for i in rows])
            logits, _ = self._prefill(ids.to(self.model.device), mask.to(self.model.device))
            result[rows] = _columns(torch.log_softmax(logits, dim=-1), cols)
        shared = [g for g in groups if len(g[1]) > 1]
        tails = [max(len(prefixes[i]) - stem for i in members) for stem, members in shared]
        for batch in self._batches([stem for stem, _ in shared],
                                   [len(members) for _, members in shared], tails):
            rows, logits = self._stem_batch(prefixes, [shared[k] for k in batch])
            result[rows] = _columns(torch.log_softmax(logits, dim=-1), cols)
        return result

    def _stem_batch(self, prefixes: Sequence[Sequence[int]], groups: list[tuple[int, list[int]]]
                    ) -> tuple[list[int], torch.Tensor]:
        """Next-token logits after each member of `groups` (stem length, prefix indices): every
        stem prefilled once, its KV cache expanded to its members, then their tails run in one
        pass (left-padded after the stems; positions continue each row's stem)."""
        device = self.model.device
        ids, mask = self._left_pad([list(prefixes[m[0]][:stem]) for stem, m in groups])
        _, cache = self._prefill(ids.to(device), mask.to(device))
        expand = torch.tensor([k for k, (_, m) in enumerate(groups) for _ in m])
        cache.batch_select_indices(expand.to(device))
        rows = [i for _, m in groups for i in m]
        tail_ids, tail_mask = self._left_pad([list(prefixes[i][stem:]) for stem, m in groups
                                              for i in m])
        positions = mask[expand].sum(-1, keepdim=True) + (tail_mask.cumsum(-1) - 1).clamp_min(0)
        logits = self.model(input_ids=tail_ids.to(device),
                            attention_mask=torch.cat([mask[expand], tail_mask], 1).to(device),
                            position_ids=positions.to(device), cache=cache, use_cache=True,
                            logits_to_keep=1).logits[:, -1].float().cpu()
        return rows, logits


def _columns(logp: torch.Tensor, cols: torch.Tensor | None) -> torch.Tensor:
    return logp if cols is None else logp[:, cols]


def stem_groups(prefixes: Sequence[Sequence[int]], min_stem: int = STEM_MIN,
                share: float = 0.5) -> list[tuple[int, list[int]]]:
    """Prefixes that start alike, grouped so the start (the stem) is run once for them all:
    (stem length, prefix indices). Neighbours in sorted order join a group while their common
    start is at least `min_stem` tokens and `share` of the shortest member, and leaves each
    member a tail of one token or more; a prefix with no such neighbour is a group alone
    (stem length 0). Both option orders of one judged text make a group, for example."""
    order = sorted(range(len(prefixes)), key=lambda i: list(prefixes[i]))
    groups: list[tuple[int, list[int]]] = []
    for i in order:
        if groups:
            stem, members = groups[-1]
            first = prefixes[members[0]]
            limit = len(first) if len(members) == 1 else stem
            common = _common_start(first, prefixes[i], limit)
            shortest = min(len(prefixes[m]) for m in [*members, i])
            common = min(common, shortest - 1)
            if common >= min_stem and common >= share * shortest:
                groups[-1] = (common, [*members, i])
                continue
        groups.append((0, [i]))
    return groups


def _common_start(a: Sequence[int], b: Sequence[int], limit: int) -> int:
    n = min(len(a), len(b), limit)
    for k in range(n):
        if a[k] != b[k]:
            return k
    return n


def sample_rows(logits: torch.Tensor, rows: Sequence[_Row]) -> torch.Tensor:
    """One next token per row: argmax for greedy rows; for sampled rows temperature, top-k,
    top-p, then the Gumbel-max trick with each candidate token's uniform taken from the row's
    own counter-based stream (`uniforms`: row key, step, token id). Rows whose `logprob` is
    recorded add the drawn token's log-probability under the distribution it came from.

    The nucleus is looked for among the top 64 tokens, then the top 1024, then the whole
    vocabulary (a row moves on only when the smaller set holds less than top_p of the mass,
    and is not cut to top_k tokens that the set holds; the nucleus is taken over the whole
    distribution's mass, and a token is kept when it is in both).
    A token's noise does not depend on which set it was found in, on its rank, or on the
    other rows. Gumbel-max rather than inverting the CDF: a float-level difference in the
    logits (another padding width) changes the pick only when two perturbed scores tie to
    within it, not whenever the draw lands near one of many CDF boundaries.
    """
    sampled = [k for k, r in enumerate(rows) if r.key is not None]
    if len(sampled) < len(rows):
        nxt = logits.argmax(-1)
        _record_greedy_logprobs(logits, rows, nxt)
    else:  # every row samples: no argmax pass over the vocabulary
        nxt = torch.zeros(len(rows), dtype=torch.long)
    if not sampled:
        return nxt
    idx = torch.tensor(sampled)
    sub = logits if len(sampled) == len(rows) else logits[idx]
    temps = torch.tensor([rows[k].temperature for k in sampled]).unsqueeze(-1)
    logz = torch.logsumexp(sub * (1 / temps), dim=-1, keepdim=True)
    top_p = torch.tensor([rows[k].top_p for k in sampled])
    top_k = torch.tensor([rows[k].top_k for k in sampled])
    vocab = sub.shape[-1]
    pending = torch.arange(len(sampled))
    for k in CANDIDATES:  # top-k of the raw logits: temperature does not change the order
        k = min(k, vocab)
        rows_k = sub if len(pending) == len(sampled) else sub[pending]
        uncut = (top_p[pending] >= 1.0) & ((top_k[pending] == 0) | (top_k[pending] >= vocab))
        top, ids = _candidates(rows_k, k, unordered=k == vocab and bool(uncut.all()))
        top = top / temps[pending]
        probs = (top - logz[pending]).exp()
        k_rows = top_k[pending]
        covered = (probs.sum(-1) >= top_p[pending]) & (top_p[pending] < 1.0) | (k == vocab) \
            | (k_rows > 0) & (k_rows <= k)
        if bool(covered.any()):
            c = covered.nonzero().squeeze(-1)
            p_c, k_c = top_p[pending[c]].unsqueeze(-1), k_rows[c].unsqueeze(-1)
            inside = (((probs[c].cumsum(-1) - probs[c]) < p_c) | (p_c >= 1.0)) \
                & ((k_c == 0) | (torch.arange(ids.shape[-1]) < k_c))
            who = [rows[sampled[int(r)]] for r in pending[c]]
            noise = uniforms(torch.tensor([r.key for r in who]),
                             torch.tensor([r.step for r in who]), ids[c])
            gumbel = -torch.log(-torch.log(noise)).float()
            pick = (top[c] + gumbel).masked_fill(~inside, float("-inf")).argmax(-1)
            nxt[idx[pending[c]]] = ids[c].gather(1, pick.unsqueeze(-1)).squeeze(-1)
            _record_sampled_logprobs(who, top[c].masked_fill(~inside, float("-inf")), pick)
        pending = pending[~covered]
        if not len(pending):
            break
    return nxt


def _candidates(logits: torch.Tensor, k: int, unordered: bool
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """The k largest logits of each row and their ids, largest first; with `unordered`, the
    whole vocabulary as it is (no cut to find: each token's noise is keyed by its id, so the
    order changes no pick, and the sort is skipped)."""
    if unordered:
        return logits, torch.arange(logits.shape[-1]).expand_as(logits)
    if k < logits.shape[-1]:
        return logits.topk(k, dim=-1)
    return logits.sort(-1, descending=True)


def _record_greedy_logprobs(logits: torch.Tensor, rows: Sequence[_Row],
                            nxt: torch.Tensor) -> None:
    scored = [k for k, r in enumerate(rows) if r.key is None and r.logprob is not None]
    if scored:
        at = torch.tensor(scored)
        logp = torch.log_softmax(logits[at], dim=-1).gather(1, nxt[at].unsqueeze(-1))
        for k, lp in zip(scored, logp.squeeze(-1).tolist()):
            rows[k].logprob += lp


def _record_sampled_logprobs(who: Sequence[_Row], kept: torch.Tensor,
                             pick: torch.Tensor) -> None:
    """Add log p of each picked token under its row's kept (scaled) logits, renormalised."""
    if all(r.logprob is None for r in who):
        return
    logp = kept.gather(1, pick.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(kept, dim=-1)
    for row, lp in zip(who, logp.tolist()):
        if row.logprob is not None:
            row.logprob += lp


def _trim_left(mask: torch.Tensor, cache: DynamicCache) -> tuple[torch.Tensor, DynamicCache]:
    """Drop leading columns that are padding in every remaining row (after long rows left)."""
    live = mask.any(0).nonzero()
    start = int(live[0]) if len(live) else 0
    if start == 0 or any(type(layer) is not DynamicLayer for layer in cache.layers):
        return mask, cache  # sliding-window and other layers keep their own bookkeeping
    for layer in cache.layers:
        layer.keys = layer.keys[:, :, start:]
        layer.values = layer.values[:, :, start:]
    return mask[:, start:], cache


def _eos_ids(model, tokenizer) -> set[int]:
    ids = set()
    cfg_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for value in (cfg_eos, tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif value:
            ids.update(int(v) for v in value)
    return ids


_ENGINES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def engine_for(model, tokenizer, batch_tokens: int | None = None) -> Engine:
    """The engine of a loaded model (one per model instance; `batch_tokens` updates it)."""
    engine = _ENGINES.get(model)
    if engine is None or engine.tokenizer is not tokenizer:
        engine = Engine(model, tokenizer, batch_tokens or DEFAULT_BATCH_TOKENS)
        _ENGINES[model] = engine
    elif batch_tokens:
        engine.batch_tokens = batch_tokens
    return engine


class Throughput:
    """Tokens per second for a progress bar's postfix."""

    def __init__(self):
        self.start, self.tokens = time.perf_counter(), 0

    def add(self, n: int) -> None:
        self.tokens += n

    def rate(self) -> float:
        return self.tokens / max(time.perf_counter() - self.start, 1e-9)
