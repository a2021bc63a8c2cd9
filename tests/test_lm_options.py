"""The one option-probability helper (udasa/scorers/lm_options.py) on a tiny in-process Llama:
texts and their token ids give the same probabilities, renormalised among the options or read
over the whole vocabulary, and batching does not change them."""

from __future__ import annotations

import pytest
import torch

from udasa.models import load_causal_lm
from udasa.scorers.lm_options import chat_prefix, option_probs, option_token_ids

QUESTIONS = ["Is water wet?", "Is the sky green on a clear day at noon?", "Two plus two?"]


@pytest.fixture(scope="module")
def lm(tiny_policy, one_torch_thread):
    return load_causal_lm(tiny_policy)


def test_texts_and_token_ids_give_the_same_probabilities(lm):
    model, tok = lm
    texts = [chat_prefix(tok, q, "Answer: (") for q in QUESTIONS]
    ids = [tok.encode(t, add_special_tokens=False) for t in texts]
    letters = ["A", "B"]
    by_text = option_probs(model, tok, texts, letters)
    assert torch.equal(by_text, option_probs(model, tok, ids, option_token_ids(tok, letters)))
    assert by_text.sum(-1) == pytest.approx(torch.ones(len(texts)))
    one_by_one = option_probs(model, tok, texts, letters, batch_size=1)  # no left padding
    assert torch.allclose(by_text, one_by_one, atol=1e-5)


def test_whole_vocabulary_probabilities_are_the_model_softmax(lm):
    model, tok = lm
    ids = tok.encode(chat_prefix(tok, QUESTIONS[0], ""), add_special_tokens=False)
    tokens = option_token_ids(tok, ["yes", "no"])
    raw = option_probs(model, tok, [ids], tokens, renormalise=False)[0]
    with torch.inference_mode():
        logits = model(torch.tensor([ids])).logits[0, -1].float()
    assert raw == pytest.approx(torch.softmax(logits, -1)[tokens], rel=1e-4)
    assert option_probs(model, tok, [], tokens).shape == (0, 2)
    with pytest.raises(ValueError, match="not a single token"):
        option_probs(model, tok, [ids], ["not one token"])
