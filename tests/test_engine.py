"""The batched generation engine (udasa/engine.py) on a tiny in-process Llama: batched greedy
equals one-at-a-time and transformers' own `generate`; sampled outputs do not depend on batch
size or composition; N samples share one prefill; finished rows leave the batch."""

from __future__ import annotations

import pytest
import torch

from udasa.engine import Engine, Request, _Row, row_key, sample_rows, stem_groups, uniforms
from udasa.models import load_causal_lm

PROMPTS = ["Hi.", "Name a fruit that is red.", "What is the capital of France? Answer briefly.",
           "Write one long sentence about the sea, the sky, the stars and the night wind.",
           "2+2?", "List three colours.", "Why do cats purr when they are happy or hurt?"]


@pytest.fixture(scope="module")
def lm(tiny_policy, one_torch_thread):
    return load_causal_lm(tiny_policy)


def encode(tok, text: str) -> list[int]:
    return list(tok.apply_chat_template([{"role": "user", "content": text}],
                                        add_generation_prompt=True, return_dict=True)["input_ids"])


class Shapes:
    """Records the (batch, length) of every forward pass of the model."""

    def __init__(self, model):
        self.calls: list[tuple[int, int]] = []
        self.handle = model.register_forward_pre_hook(self.hook, with_kwargs=True)

    def hook(self, module, args, kwargs):
        self.calls.append(tuple(kwargs["input_ids"].shape))

    def close(self):
        self.handle.remove()


def test_greedy_batched_equals_one_at_a_time_and_hf_generate(lm):
    model, tok = lm
    ids = [encode(tok, p) for p in PROMPTS]
    batched = Engine(model, tok).generate_all([Request(x, 1, 0, 12) for x in ids])
    alone = [Engine(model, tok).generate_all([Request(x, 1, 0, 12)])[0] for x in ids]
    assert batched == alone  # every token of every prompt, despite left padding
    for x, out in zip(ids, alone):
        ref = model.generate(input_ids=torch.tensor([x]), attention_mask=torch.ones(1, len(x),
                             dtype=torch.long), do_sample=False, max_new_tokens=12,
                             pad_token_id=tok.pad_token_id)[0, len(x):].tolist()
        assert out[0] == [t for t in ref if t != tok.eos_token_id][:len(out[0])]
        assert len(out[0]) == 12 or ref[len(out[0])] == tok.eos_token_id


def test_sampled_outputs_do_not_depend_on_batch_size_or_companions(lm):
    model, tok = lm
    reqs = [Request(encode(tok, p), 3, seed, 10, 0.8, 0.95) for seed, p in enumerate(PROMPTS)]
    big = Engine(model, tok, batch_tokens=100_000).generate_all(reqs)
    small = Engine(model, tok, batch_tokens=60).generate_all(reqs)  # one prompt per batch
    shuffled = Engine(model, tok).generate_all(reqs[::-1])[::-1]
    assert big == small == shuffled
    assert len({tuple(r) for out in big for r in out}) > len(PROMPTS)  # rows really differ
    again = Engine(model, tok).generate_all([Request(reqs[0].ids, 3, 99, 10, 0.8, 0.95)])
    assert again[0] != big[0]  # another seed, another sample


def test_n_samples_share_one_prefill_and_batches_fit_the_token_budget(lm):
    model, tok = lm
    ids = [encode(tok, p) for p in PROMPTS]
    budget = 600
    shapes = Shapes(model)
    try:
        Engine(model, tok, batch_tokens=budget).generate_all(
            [Request(x, 5, i, 8, 0.8, 0.95) for i, x in enumerate(ids)])
    finally:
        shapes.close()
    prefills = [s for s in shapes.calls if s[1] > 1]
    assert sum(b for b, _ in prefills) == len(PROMPTS)  # one prefill row per prompt, not per N
    assert len(prefills) > 1  # the budget split the prompts
    for batch, width in prefills:
        assert batch * 5 * (width + 8) <= budget or batch == 1
    widths = [w for _, w in prefills]
    assert widths == sorted(widths, reverse=True)  # length-sorted, longest first


def test_requests_with_the_same_prompt_share_one_prefill(lm):
    model, tok = lm
    x, y = encode(tok, PROMPTS[2]), encode(tok, PROMPTS[5])
    reqs = [Request(x, 1, 0, 6), Request(x, 3, 4, 6, 1.0, 1.0, 15), Request(y, 2, 1, 6, 1.0)]
    shapes = Shapes(model)
    try:
        out = Engine(model, tok).generate_all(reqs)
    finally:
        shapes.close()
    assert shapes.calls[0] == (2, max(len(x), len(y)))  # two prompts prefilled, six rows after
    assert shapes.calls[1][0] == 6
    assert out == [Engine(model, tok).generate_all([r])[0] for r in reqs]  # as alone


def test_finished_rows_leave_the_batch(lm):
    model, tok = lm
    ids = [encode(tok, p) for p in PROMPTS[:3]]
    shapes = Shapes(model)
    try:
        out = Engine(model, tok).generate_all(
            [Request(ids[0], 2, 0, 2), Request(ids[1], 2, 0, 6), Request(ids[2], 1, 0, 4)])
    finally:
        shapes.close()
    assert [len(r) for o in out for r in o] == [2, 2, 6, 6, 4]
    decode_rows = [b for b, w in shapes.calls if w == 1]
    assert decode_rows == [5, 3, 3, 2, 2]  # 2 rows leave after 2 tokens, 1 after 4
    # the longest prompt left after 4 tokens and its padding columns were dropped: the rows
    # that stay still decode exactly as they do alone
    alone = Engine(model, tok).generate_all([Request(ids[1], 2, 0, 6)])[0]
    assert out[1] == alone


def test_next_token_logprobs_match_unpadded_forwards(lm):
    model, tok = lm
    ids = [encode(tok, p) for p in PROMPTS]
    got = Engine(model, tok, batch_tokens=200).next_token_logprobs(ids)
    with torch.inference_mode():
        for x, row in zip(ids, got):
            ref = torch.log_softmax(model(input_ids=torch.tensor([x])).logits[0, -1], -1)
            torch.testing.assert_close(row, ref, atol=1e-4, rtol=1e-4)
    cols = Engine(model, tok).next_token_logprobs(ids, [5, 7])
    torch.testing.assert_close(cols, got[:, [5, 7]], atol=1e-4, rtol=1e-4)


def test_prefixes_that_start_alike_share_one_prefill_of_their_stem(lm):
    model, tok = lm
    stems = [encode(tok, p * 4) for p in PROMPTS[3:5]]
    tails = [[11, 12, 13], [13, 12, 11, 10], [12]]
    ids = [s + t for s in stems for t in tails] + [encode(tok, PROMPTS[0])]
    groups = stem_groups(ids)
    assert sorted(sorted(m) for _, m in groups) == [[0, 1, 2], [3, 4, 5], [6]]
    assert {stem for stem, m in groups if len(m) > 1} == {len(s) for s in stems}
    shapes = Shapes(model)
    got = Engine(model, tok).next_token_logprobs(ids)
    shapes.close()
    # the lone prefix, then both stems once (2 rows), then the six tails (4 tokens wide)
    assert shapes.calls == [(1, len(ids[6])), (2, max(map(len, stems))), (6, 4)]
    with torch.inference_mode():
        for x, row in zip(ids, got):
            ref = torch.log_softmax(model(input_ids=torch.tensor([x])).logits[0, -1], -1)
            torch.testing.assert_close(row, ref, atol=1e-4, rtol=1e-4)
    plain = Engine(model, tok, share_prefills=False).next_token_logprobs(ids)
    torch.testing.assert_close(got, plain, atol=1e-4, rtol=1e-4)


def _rows(n: int, top_p: float, seed: int = 0, temperature: float = 1.0) -> list[_Row]:
    return [_Row(0, i, row_key(seed, i), 10, temperature, top_p) for i in range(n)]


def _draws(logits: torch.Tensor, temperature: float, top_p: float, n: int = 400) -> list[int]:
    rows = _rows(1, top_p, temperature=temperature)
    picks = []
    for _ in range(n):
        picks.append(int(sample_rows(logits, rows)[0]))
        rows[0].step += 1
    return picks


def test_top_p_draws_from_the_nucleus_of_the_tempered_distribution_in_proportion():
    """p = 0.5 (token 3), 0.3 (token 7), 0.2 spread over the other 998 tokens. At T = 1,
    top-p 0.7 keeps {3, 7}, drawn 5:3; at T = 0.5 (p squared, renormalised: 0.735, 0.265,
    ...) the same top-p keeps token 3 alone: the nucleus is taken after the temperature."""
    probs = torch.full((1000,), 0.2 / 998)
    probs[3], probs[7] = 0.5, 0.3
    logits = probs.log().unsqueeze(0)
    plain = _draws(logits, 1.0, 0.7)
    assert set(plain) == {3, 7}  # without top-p, ~80 of 400 draws would fall outside
    assert abs(plain.count(3) / len(plain) - 0.5 / 0.8) < 0.08
    assert set(_draws(logits, 0.5, 0.7)) == {3}
    assert len(set(_draws(logits, 1.0, 1.0))) > 20  # no cut: the tail is drawn too


def test_top_p_keeps_only_the_nucleus():
    logits = torch.full((1, 1000), -10.0)
    logits[0, 3] = 10.0  # ~1.0 of the mass: the nucleus at top-p 0.95 is this token alone
    rows = _rows(1, 0.95)
    picks = set()
    for _ in range(50):
        picks.add(int(sample_rows(logits, rows)[0]))
        rows[0].step += 1
    assert picks == {3}


def test_top_p_wider_than_the_first_candidate_set_widens_it():
    logits = torch.zeros(1, 1000)  # uniform: top-p 0.5 keeps 500 tokens, more than the first candidate set
    rows = _rows(1, 0.5)
    seen = set()
    for _ in range(2000):
        seen.add(int(sample_rows(logits, rows)[0]))
        rows[0].step += 1
    assert 300 < len(seen) <= 500


def test_row_streams_are_uniform_and_keyed_by_row_step_and_token():
    ids = torch.arange(50_000).unsqueeze(0)
    u = uniforms(torch.tensor([row_key(0, 0)]), torch.tensor([0]), ids)[0]
    assert 0 < float(u.min()) and float(u.max()) < 1 and abs(float(u.mean()) - 0.5) < 0.01
    assert abs(float((u < 0.1).double().mean()) - 0.1) < 0.01
    sub = uniforms(torch.tensor([row_key(0, 0)]), torch.tensor([0]), ids[:, 7:9])[0]
    assert sub.tolist() == u[7:9].tolist()  # a token's draw does not depend on the others
    other = uniforms(torch.tensor([row_key(0, 1), row_key(0, 0)]), torch.tensor([0, 1]),
                     ids[:, :100].repeat(2, 1))
    assert not torch.equal(other[0], u[:100]) and not torch.equal(other[1], u[:100])


def test_rerun_with_another_batch_size_regenerates_nothing(tmp_path, tiny_policy):
    """The pipeline's generate step: batch size is in no key, and a fresh run at another batch
    size stores exactly the same responses."""
    from conftest import REPO, small_overrides

    from udasa.config import load_config
    from udasa.pipeline import Pipeline
    from udasa.store import Store

    def cfg(batch_tokens: int):
        return load_config(REPO / "configs" / "cpu-demo.yaml", small_overrides(
            limit=6, **{"generation.model": tiny_policy, "generation.max_new_tokens": 6,
                        "generation.batch_tokens": batch_tokens}))

    def texts(ws):
        rows = Store(ws).responses(Pipeline(cfg(100), ws).gen_key)
        return sorted((r.prompt_id, r.sample_index, r.text) for r in rows)

    small = Pipeline(cfg(100), tmp_path / "a").generate()  # one prompt per batch
    assert small.done == 6
    again = Pipeline(cfg(100_000), tmp_path / "a").generate()
    assert again.done == 0 and again.reused == 6
    Pipeline(cfg(100_000), tmp_path / "b").generate()  # all prompts in one batch
    assert texts(tmp_path / "a") == texts(tmp_path / "b") and len(texts(tmp_path / "a")) == 30


def test_app_inspector_live_generation_goes_through_the_engine(tiny_policy):
    """The app's live inspector: N engine samples of a typed prompt, seeded by its text, each
    scored on the three axes."""
    from conftest import REPO, small_overrides

    from app.inspector import generate_live
    from udasa.config import load_config
    from udasa.generators import HFGenerator
    from udasa.keys import prompt_seed
    from udasa.records import content_key

    cfg = load_config(REPO / "configs" / "cpu-demo.yaml", small_overrides(
        **{"generation.model": tiny_policy, "generation.max_new_tokens": 5,
           "generation.n": 3}))
    replies = generate_live(cfg, "  Name a fruit.  ")
    expect = HFGenerator(cfg.generation).generate(
        "Name a fruit.", 3, prompt_seed(cfg.seed, content_key("Name a fruit.")))
    assert [r.text for r in replies] == expect
    assert all(set(r.scores) == {"sem", "fact", "val"} for r in replies)


def test_top_k_samples_among_the_k_most_likely_tokens_only():
    logits = torch.randn(1, 1000, generator=torch.Generator().manual_seed(0))
    rows = [_Row(0, 0, row_key(0, 0), 10, 1.0, 1.0, top_k=3)]
    picks = set()
    for _ in range(200):
        picks.add(int(sample_rows(logits, rows)[0]))
        rows[0].step += 1
    assert picks == set(logits[0].topk(3).indices.tolist())


def test_whole_vocabulary_rows_are_gumbel_max_over_every_token():
    """top_p 1 and no top-k: the pick is argmax(logit / T + Gumbel noise of the row's own
    stream) over the whole vocabulary (no sort needed: noise is keyed by token id)."""
    logits = torch.randn(2, 5000, generator=torch.Generator().manual_seed(1))
    rows = [_Row(0, i, row_key(3, i), 10, 0.7, 1.0, step=4) for i in range(2)]
    noise = uniforms(torch.tensor([r.key for r in rows]), torch.tensor([4, 4]),
                     torch.arange(5000).expand(2, -1))
    expect = (logits / 0.7 - torch.log(-torch.log(noise)).float()).argmax(-1)
    assert sample_rows(logits, rows).tolist() == expect.tolist()


def test_generate_with_logprobs_scores_each_sample_under_its_own_distribution(lm):
    model, tok = lm
    ids = encode(tok, PROMPTS[1])
    reqs = [Request(ids, 1, 0, 6), Request(ids, 2, 5, 6, 1.0, 1.0, top_k=4),
            Request(ids, 2, 7, 6, 0.7, 0.9)]
    scored = Engine(model, tok).generate_with_logprobs(reqs)
    assert [[t for t, _ in out] for out in scored] == Engine(model, tok).generate_all(reqs)
    with torch.inference_mode():
        for req, out in zip(reqs, scored):
            for toks, logp in out:
                if len(toks) < req.max_new_tokens:  # ended by EOS: its draw counts too
                    toks = toks + [tok.eos_token_id]
                logits = model(input_ids=torch.tensor([ids + toks])).logits[0, len(ids) - 1:-1]
                if req.temperature > 0:
                    logits = logits / req.temperature
                if req.top_k:  # renormalised over the k most likely tokens
                    cut = logits.topk(req.top_k, -1).values[:, -1:]
                    logits = logits.masked_fill(logits < cut, float("-inf"))
                if req.top_p < 1:  # ... over the nucleus of the tempered distribution
                    p, order = torch.softmax(logits, -1).sort(-1, descending=True)
                    outside = torch.zeros_like(logits, dtype=torch.bool).scatter(
                        1, order, (p.cumsum(-1) - p) >= req.top_p)
                    logits = logits.masked_fill(outside, float("-inf"))
                ref = torch.log_softmax(logits, -1).gather(1, torch.tensor(toks)[:, None]).sum()
                assert logp == pytest.approx(float(ref), abs=1e-3)
    assert len({tuple(t) for t, _ in scored[1]}) == 2
    assert len({tuple(t) for t, _ in scored[2]}) == 2
