"""Each scorer on the real embedded models, with inputs whose ordering is obvious."""

from __future__ import annotations

import json

import numpy as np
import pytest

from udasa.config import ScorerConfig, ScoringConfig
from udasa.errors import ConfigError
from udasa.scorer_report import report
from udasa.scorers import available, make_scorer

PROMPT = "The Eiffel Tower is in Paris. Where is the Eiffel Tower?"


def test_semantic_consistent_answers_are_less_uncertain_than_scattered_ones():
    scorer = make_scorer("sem", ScorerConfig("sbert"))
    consistent = ["The tower is in Paris.", "It stands in Paris, France.",
                  "The Eiffel Tower is located in Paris.", "Paris is where it is."]
    scattered = ["The tower is in Paris.", "I like turtles and green tea.",
                 "Quarterly revenue rose by four percent.", "Knit two, purl two, repeat."]
    (cons, scat) = scorer.score([(PROMPT, consistent), (PROMPT, scattered)])
    assert np.mean([s.value for s in cons]) < np.mean([s.value for s in scat])
    # every scattered reply is more uncertain than any consistent one, and the same on-topic
    # reply ("The tower is in Paris.", first in both) is more uncertain among off-topic company
    assert min(s.value for s in scat) > max(s.value for s in cons)
    assert scat[0].value > cons[0].value
    assert all(0.0 <= s.value <= 1.0 for s in cons + scat)
    assert cons[0].details["prompt_level"] < scat[0].details["prompt_level"]
    assert "MiniLM" in scorer.version


def test_semantic_outlier_gets_the_highest_uncertainty():
    scorer = make_scorer("sem", ScorerConfig("sbert"))
    replies = ["Boil the egg for nine minutes.", "Cook the egg in boiling water for 9 minutes.",
               "Simmer the egg about nine minutes.", "The stock market closed lower today."]
    (scores,) = scorer.score([("How do I boil an egg?", replies)])
    assert int(np.argmax([s.value for s in scores])) == 3


def test_factual_contradiction_is_more_uncertain_than_entailment():
    scorer = make_scorer("fact", ScorerConfig("nli-lr"))
    premise = "A man is playing a guitar on stage in front of a crowd."
    (scores,) = scorer.score([(premise, ["A man is playing music.",
                                         "A man is asleep in his bed at home."])])
    entail, contra = scores
    assert contra.value > entail.value
    assert set(entail.details["p"]) == {"entailment", "neutral", "contradiction"}
    assert entail.value == pytest.approx(1 - entail.details["p"]["entailment"])


@pytest.mark.slow
def test_lm_nli_gives_three_way_probabilities_from_the_policy():
    # SmolLM2-135M is near chance at zero-shot NLI (see `udasa scorers`), so only the
    # mechanics are asserted here: normalised 3-way probabilities, Eq. 3 applied.
    scorer = make_scorer("fact", ScorerConfig("lm-nli", batch_size=2))
    (scores,) = scorer.score([("It rains.", ["It is wet outside.", "The sun is out."])])
    for s in scores:
        assert sum(s.details["p"].values()) == pytest.approx(1.0, abs=1e-5)
        assert s.value == pytest.approx(1 - s.details["p"]["entailment"])


def test_factual_reports_worst_sentence_beside_whole_response():
    scorer = make_scorer("fact", ScorerConfig("nli-lr"))
    premise = "A man is playing a guitar on stage in front of a crowd."
    (scores,) = scorer.score([(premise, ["A man is playing music. A man is asleep in bed.",
                                         "A man is playing music."])])
    two, one = scores
    assert "sentence_max" in two.details and "sentence_max" not in one.details
    assert two.details["sentence_max"] >= one.value


@pytest.mark.parametrize("name", ["profanity", pytest.param("profanity+lm", marks=pytest.mark.slow)])
def test_value_threat_is_more_uncertain_than_recipe(name):
    scorer = make_scorer("val", ScorerConfig(name, batch_size=4))
    (scores,) = scorer.score([("Reply to my neighbour.", [
        "Mix flour, eggs and milk, then fry the batter in a hot pan for pancakes.",
        "Shut up, you stupid idiot, or I will hurt you and kill your dog."])])
    recipe, threat = scores
    assert threat.value > recipe.value
    assert threat.value > 0.5 > recipe.value


def test_lm_judge_reads_both_option_orders_from_real_probabilities():
    import torch

    from udasa.models import load_causal_lm
    from udasa.scorers.lm_options import chat_prefix, read_prompt

    scorer = make_scorer("val", ScorerConfig("lm-judge", batch_size=2))
    replies = ["Have a nice day!", "I will kill you."]
    (scores,) = scorer.score([("Hi", replies)])
    # by hand, one text at a time (no batch, no padding): P(harmful) read from the next-token
    # logits of "A" and "B" after "(", with "harmful" as option B, then as option A
    model, tok = load_causal_lm("embedded")
    a_id, b_id = (tok.encode(x, add_special_tokens=False)[0] for x in "AB")
    template = read_prompt("safety_judge.txt")
    for reply, s in zip(replies, scores):
        orders = []
        for option_a, option_b, harmful in (("harmless", "harmful", 1), ("harmful", "harmless", 0)):
            text = chat_prefix(tok, template.format(prompt="Hi", response=reply,
                                                    option_a=option_a, option_b=option_b), "(")
            ids = tok(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
            with torch.inference_mode():
                logits = model(ids).logits[0, -1, [a_id, b_id]].float()
            orders.append(float(torch.softmax(logits, -1)[harmful]))
        assert s.value == pytest.approx(sum(orders) / 2, abs=1e-4), orders
        assert s.details["lm_judge"] == s.value
        assert abs(orders[0] - orders[1]) > 1e-3  # the orders disagree: averaging matters


def test_moderation_scorer_against_a_local_openai_compatible_server():
    from openai_server import FakeOpenAIServer

    with FakeOpenAIServer() as server:
        scorer = make_scorer("val", ScorerConfig("openai-moderation",
                                                 options={"base_url": server.base_url}))
        (scores,) = scorer.score([("x", ["A pancake recipe.", "I will kill you, idiot."])])
        assert scores[1].value > scores[0].value
        assert scores[1].details["flagged"] is True
        assert server.requests_to("/moderations")


def test_unknown_scorer_and_missing_model_are_config_errors():
    with pytest.raises(ConfigError, match="available"):
        make_scorer("fact", ScorerConfig("no-such-scorer"))
    with pytest.raises(ConfigError, match="scoring.factual.model"):
        make_scorer("fact", ScorerConfig("hf-nli"))
    assert {"sbert"} <= set(available("sem"))


def test_hf_nli_reads_labels_from_a_local_model_folder(tmp_path):
    """hf-nli on a tiny sequence-classification model saved to disk (a local path)."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(["a man plays music", "he sleeps"], trainers.WordLevelTrainer(
        special_tokens=["[UNK]", "[PAD]", "[CLS]", "[SEP]"]))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]")
    labels = {0: "CONTRADICTION", 1: "ENTAILMENT", 2: "NEUTRAL"}
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(
        vocab_size=fast.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, id2label=labels, label2id={v: k for k, v in labels.items()}))
    with torch.no_grad():  # make the classes easy to tell apart: contradiction >> neutral >> ent.
        model.classifier.bias.copy_(torch.tensor([4.0, -4.0, 0.0]))
    model.eval().save_pretrained(tmp_path)
    fast.save_pretrained(tmp_path)
    scorer = make_scorer("fact", ScorerConfig("hf-nli", model=str(tmp_path)))
    probs = scorer.probs(["a man plays music"], ["he sleeps"])
    raw = torch.softmax(model(**fast(["a man plays music"], ["he sleeps"],
                                     return_tensors="pt")).logits, -1)[0]
    # columns reordered to (entailment, neutral, contradiction) from the model's own id2label
    assert probs[0] == pytest.approx(raw[[1, 2, 0]].detach().numpy(), abs=1e-5)
    assert probs[0][2] > probs[0][1] > probs[0][0]  # contradiction > neutral > entailment
    (scores,) = scorer.score([("a man plays music", ["he sleeps"])])
    assert scores[0].value == pytest.approx(1 - probs[0][0], abs=1e-5)


def test_scorer_report_on_the_labelled_sets(tmp_path):
    rows = report(ScoringConfig(), alternatives=False)
    by = {(r.axis, r.scorer): r for r in rows}
    fact, val = by[("fact", "nli-lr")], by[("val", "profanity")]
    assert fact.n == 36 and val.n == 36
    # the embedded scorers beat chance on their own labelled sets (figures in docs/pipeline.md)
    assert fact.accuracy > 0.6 and fact.auroc > 0.6
    assert val.auroc > 0.6 and val.extra["flagged_insult"] > val.extra["flagged_harmful_help"]
    json.dumps([r.__dict__ for r in rows])
