"""The one option-probability helper (udasa/scorers/lm_options.py): option ids are the tokens
a model emits right after its prompt, for a SentencePiece tokenizer with a dummy prefix
(LLaMA's kind, trained here in-process) and a byte-level BPE one (SmolLM2's); the
probabilities are the model's own at those ids; texts and token ids agree, batching does not
change them. RAIN, RLAIF and the LM scorers all read their options through it."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch

from udasa.models import load_causal_lm
from udasa.scorers.lm_options import chat_prefix, option_probs, option_token_ids

QUESTIONS = ["Is water wet?", "Is the sky green on a clear day at noon?", "Two plus two?"]
# Text the SentencePiece model is trained on: "A" and "B" occur both as words (so "▁A" and "▁B"
# are pieces) and right after "(" (so "A" and "B" are pieces without the dummy-prefix space).
SP_TEXT = [
    "The answer is: (A) The reply is harmless.", "The answer is: (B) The reply is harmful.",
    "Option A is better than option B. A and B differ.", "Human: Is it safe? Assistant: Yes.",
    "Consider the options. Answer with A or B.", "Is the answer truthful? Yes or no.",
    "(A) first (B) second", "A B A B, Yes No yes no.",
]


@pytest.fixture(scope="module")
def lm(tiny_policy, one_torch_thread):
    return load_causal_lm(tiny_policy)


@pytest.fixture(scope="module")
def sp_policy(tmp_path_factory, one_torch_thread) -> str:
    """A 2-layer Llama whose tokenizer is a SentencePiece BPE model with a dummy prefix and
    byte fallback, as LLaMA's, trained here in a fraction of a second."""
    import sentencepiece as spm
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    path = tmp_path_factory.mktemp("sp-policy")
    model_file = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(SP_TEXT * 20), model_writer=model_file, vocab_size=360,
        model_type="bpe", add_dummy_prefix=True, byte_fallback=True, character_coverage=1.0,
        bos_id=1, eos_id=2, unk_id=0, minloglevel=2)
    (path / "tokenizer.model").write_bytes(model_file.getvalue())
    (path / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "LlamaTokenizer"}))
    tok = AutoTokenizer.from_pretrained(path)
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=1024,
        bos_token_id=1, eos_token_id=2)).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def after(tok, prompt: str, option: str) -> int:
    """The token that follows the prompt's tokens in the tokenization of prompt + option."""
    head = tok(prompt, add_special_tokens=False)["input_ids"]
    full = tok(prompt + option, add_special_tokens=False)["input_ids"]
    assert full[:len(head)] == head and len(full) == len(head) + 1
    return full[-1]


def direct_probs(model, tok, text: str, pieces: list[str]) -> torch.Tensor:
    """The model's next-token distribution after `text`, renormalised over the named pieces:
    one plain forward pass, no helper."""
    ids = tok(text, add_special_tokens=False)["input_ids"]
    with torch.inference_mode():
        logits = model(torch.tensor([ids])).logits[0, -1].float()
    return torch.softmax(logits[tok.convert_tokens_to_ids(pieces)], -1)


def test_sentencepiece_option_ids_are_the_tokens_after_the_prompt(sp_policy):
    import sentencepiece as spm

    model, tok = load_causal_lm(sp_policy)
    sp = spm.SentencePieceProcessor(model_file=str(Path(sp_policy) / "tokenizer.model"))
    for text in ["The answer is: (A", "Option A is better.", "Is it? Yes"]:  # SentencePiece's
        assert tok(text, add_special_tokens=False)["input_ids"] == sp.encode(text)  # own ids
    a, b, space_a, space_b = tok.convert_tokens_to_ids(["A", "B", "▁A", "▁B"])
    assert len({a, b, space_a, space_b}) == 4 and tok.unk_token_id not in (a, space_a)
    assert tok.encode("A", add_special_tokens=False) == [space_a]  # the dummy prefix: "▁A"
    prompt = "The answer is: ("
    assert option_token_ids(tok, ["A", "B"], after=prompt) == [a, b] == \
        [after(tok, prompt, "A"), after(tok, prompt, "B")]  # after "(": no space, "A"
    assert option_token_ids(tok, [" A", " B"], after="Answer with A or B:") == [space_a, space_b]
    with pytest.raises(ValueError, match="not a single token"):
        option_token_ids(tok, ["A and B"], after=prompt)
    # the model's probabilities at those ids, not at "▁A" / "▁B"
    text = chat_prefix(tok, "Which is better?\n(A) first (B) second", prompt)
    got = option_probs(model, tok, [text], ["A", "B"])[0]
    assert torch.allclose(got, direct_probs(model, tok, text, ["A", "B"]), atol=1e-5)
    assert not torch.allclose(got, direct_probs(model, tok, text, ["▁A", "▁B"]), atol=1e-3)


def test_byte_level_bpe_option_ids_are_the_tokens_after_the_prompt(lm):
    model, tok = lm  # SmolLM2's byte-level BPE tokenizer
    for prompt, options, pieces in (("The answer is: (", ["A", "B"], ["A", "B"]),
                                    ("The answer is:", [" A", " B"], ["ĠA", "ĠB"]),
                                    ("Is it true?\n", ["Yes", "No"], ["Yes", "No"])):
        ids = option_token_ids(tok, options, after=prompt)
        assert ids == [after(tok, prompt, o) for o in options] == \
            tok.convert_tokens_to_ids(pieces)
        got = option_probs(model, tok, [prompt], options)[0]
        assert torch.allclose(got, direct_probs(model, tok, prompt, pieces), atol=1e-5)
    with pytest.raises(ValueError, match="merges with the prompt's end"):
        option_token_ids(tok, ["A"], after="The answer is: ")  # " A" is one token


def test_each_prompt_gets_the_ids_of_its_own_ending(lm):
    """Rows whose prompts end differently read different ids: after "(" the letter, after ":"
    the letter with its space, as the model would write them."""
    model, tok = lm
    prompts = ["The answer is: (", "The answer is:"]
    got = option_probs(model, tok, prompts, ["A", "B"], renormalise=False)
    with torch.inference_mode():
        for row, prompt in zip(got, prompts, strict=True):
            ids = [after(tok, prompt, o) for o in ("A", "B")]
            logits = model(torch.tensor([tok(prompt)["input_ids"]])).logits[0, -1]
            assert row == pytest.approx(torch.softmax(logits.float(), -1)[ids], rel=1e-4)
    assert after(tok, prompts[0], "A") != after(tok, prompts[1], " A")


def test_texts_and_token_ids_give_the_same_probabilities(lm):
    model, tok = lm
    texts = [chat_prefix(tok, q, "Answer: (") for q in QUESTIONS]
    ids = [tok.encode(t, add_special_tokens=False) for t in texts]
    letters = ["A", "B"]
    by_text = option_probs(model, tok, texts, letters)
    by_ids = option_probs(model, tok, ids, option_token_ids(tok, letters, after=texts[0]))
    assert torch.equal(by_text, by_ids)
    assert torch.equal(by_text, option_probs(model, tok, ids, letters))  # ids read after them
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


def test_rain_rlaif_and_the_lm_judge_read_the_letters_a_sentencepiece_model_writes(sp_policy):
    """RAIN's self-evaluation (both orders), RLAIF's labeller (both orders) and the lm-judge
    scorer on the SentencePiece model: each probability is the model's at "A" / "B" after its
    prompt's "(", never at "▁A" / "▁B"."""
    from udasa.baselines import rain, rlaif
    from udasa.config import ScorerConfig
    from udasa.scorers.lm_options import read_prompt
    from udasa.scorers.value import LMJudgeScorer

    model, tok = load_causal_lm(sp_policy)
    letters = ["A", "B"]
    cfg = rain.RainConfig(model=sp_policy, value="soft", eval_examples="", dialogue_examples="")
    search = rain.RainGenerator(cfg).search("Is it safe?")
    texts, good = search.eval_texts("Yes, it is safe.")
    want = [float(direct_probs(model, tok, t, letters)[g]) for t, g in zip(texts, good)]
    assert search.value("Yes, it is safe.") == pytest.approx(sum(want) - 1, abs=1e-5)
    first, second = rlaif.label_texts(model, tok, "Hi", "Hello.", "Go away.", "Be kind.")
    want = (direct_probs(model, tok, first, letters)[0] +
            direct_probs(model, tok, second, letters)[1]) / 2
    got = rlaif.preference(model, tok, "Hi", "Hello.", "Go away.", "Be kind.")
    assert got == pytest.approx(float(want), abs=1e-5)
    template = read_prompt("safety_judge.txt")
    judge = [chat_prefix(tok, template.format(prompt="Hi", response="Go away.", option_a=a,
                                              option_b=b), "(")
             for a, b in (("harmless", "harmful"), ("harmful", "harmless"))]
    want = (direct_probs(model, tok, judge[0], letters)[1] +
            direct_probs(model, tok, judge[1], letters)[0]) / 2
    got = LMJudgeScorer(ScorerConfig("lm-judge", model=sp_policy)).unsafe(["Hi"], ["Go away."])
    assert float(got[0]) == pytest.approx(float(want), abs=1e-5)


def test_the_hf_judge_reads_the_answer_tokens_a_sentencepiece_model_writes(sp_policy):
    """The local judge's yes/no and digit ids are those that follow its prompt (after the
    chat template's end), not the tokens of "yes" or "7" alone ("▁yes", "▁7")."""
    from evals.judges.hf_backend import DIGITS, YES, single_token_ids

    _, tok = load_causal_lm(sp_policy)
    text = chat_prefix(tok, "Is it safe? Answer yes or no.", "")
    want = set()
    for s in YES:
        try:
            want.add(after(tok, text, s))
        except AssertionError:  # not one token after this prompt
            continue
    assert single_token_ids(tok, YES, text) == sorted(want) and want
    digits = option_token_ids(tok, list(DIGITS), after=text)
    assert digits == [after(tok, text, d) for d in DIGITS]
    with pytest.raises(ValueError, match="not a single token"):  # alone: "▁" + "0" (the
        option_token_ids(tok, list(DIGITS))  # dummy prefix), what the judge read before
