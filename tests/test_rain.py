"""RAIN's search checked against values computed by hand on scripted trees (the authors' code,
SafeAILab/RAIN truth/nodes.py and HH/main.py, is the reference): the selection score with its
exploration term, the root noise, the alike-and-bad addition, the look-ahead's stop, the
commit, the hard vote, similarity sharing at 0.95; the prompts with their few-shot examples
and the authors' per-task settings. Real models throughout: the tiny Llama with SmolLM2's
tokenizer, the embedded SmolLM2 where natural text matters, the embedded sentence encoder."""

from __future__ import annotations

import logging
import math

import pytest
import torch
import yaml
from conftest import REPO

from udasa.baselines import rain
from udasa.baselines.rain_lockstep import drive, serve
from udasa.baselines.rain_prompts import examples_text, head_ids, vote_value
from udasa.errors import ConfigError

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # small ops, shared cores
QUESTION = "Tell me a joke."


def make_search(policy: str, **kw) -> rain.RainSearch:
    options = {"model": policy, "max_new_tokens": 10, "width": 3, "segments": [1, 2, 4],
               "eval_examples": "", "dialogue_examples": ""} | kw
    return rain.RainGenerator(rain.RainConfig(**options)).search(QUESTION)


def child(parent: rain.Node, tokens: tuple, *, q=0.0, n=0.0, prior=0.0, raw=1.0, fn=None):
    node = rain.Node(tokens, prior, parent, parent.depth + 1, raw, n, int(n) if fn is None
                     else fn, q)
    parent.children[tokens] = node
    return node


def next_token_probs(search: rain.RainSearch, k: int) -> tuple[list[int], list[float]]:
    """The model's k likeliest next tokens after the search's prompt: a plain forward pass."""
    with torch.inference_mode():
        logits = search.be.model(torch.tensor([search.head])).logits[0, -1].float()
    probs, ids = torch.softmax(logits, -1).topk(k)
    return ids.tolist(), probs.tolist()


# the tree ---------------------------------------------------------------------------------------
def test_selection_score_is_the_normalised_value_plus_the_exploration_term(tiny_policy):
    """score = (q - qmin) / (qmax - qmin + 1e-5) + 2 * p * sqrt(N) / (1 + n), 0 value while
    unvisited (nodes.py `getqu`): hand-computed for a root visited 9 times."""
    search = make_search(tiny_policy)
    search.qmin, search.qmax = -0.5, 0.7
    root = rain.Node((), 1.0, n=9)
    a = child(root, (1,), q=0.6, n=6, prior=0.5)
    b = child(root, (2,), q=-0.2, n=2, prior=0.3)
    c = child(root, (3,), q=0.0, n=0, prior=0.2)
    want = {a: (0.6 + 0.5) / (1.2 + 1e-5) + 2 * 0.5 * 3 / 7,   # 0.91666 + 0.42857 = 1.3452
            b: (-0.2 + 0.5) / (1.2 + 1e-5) + 2 * 0.3 * 3 / 3,  # 0.25 + 0.6 = 0.85
            c: 0.0 + 2 * 0.2 * 3 / 1}                         # 1.2
    for node, score in want.items():
        assert search.score(node, root) == pytest.approx(score, abs=1e-9)
    assert drive(search.be, search.select_steps(root)) is a
    c.prior = 0.25  # 1.5: the unvisited child's exploration term now wins
    assert drive(search.be, search.select_steps(root)) is c


def test_root_priors_mix_in_a_quarter_of_uniform_noise(tiny_policy):
    """The root's children: 0.75 * p / sum(p) + 0.25 / K with p the model's own next-token
    probabilities (HH/main.py `search`); below the root, p / sum(p); after a commit the new
    root's children get the same mixing of their priors."""
    assert rain.with_root_noise([0.5, 0.3, 0.2], 0.25) == pytest.approx(
        [0.75 * 0.5 + 0.25 / 3, 0.75 * 0.3 + 0.25 / 3, 0.75 * 0.2 + 0.25 / 3])
    search = make_search(tiny_policy)
    ids, probs = next_token_probs(search, 3)
    root = rain.Node((), 1.0)
    drive(search.be, search.expand_steps(root))
    assert list(root.children) == [(i,) for i in ids]  # the three likeliest tokens, in order
    total = sum(probs)
    for i, p in zip(ids, probs, strict=True):
        assert root.children[(i,)].prior == pytest.approx(0.75 * p / total + 0.25 / 3, rel=1e-4)
    first = root.children[(ids[0],)]
    drive(search.be, search.expand_steps(first))  # two-token sets below the root: no noise
    raws = [c.raw for c in first.children.values()]
    assert [c.prior for c in first.children.values()] == pytest.approx(
        [r / sum(raws) for r in raws])
    before = [c.prior for c in first.children.values()]
    search.commit(root, first, 1)
    assert search.answer == [ids[0]] and first.parent is None
    assert [c.prior for c in first.children.values()] == pytest.approx(
        [0.75 * p + 0.25 / len(before) for p in before])  # they summed to 1 before


def test_alike_and_bad_single_tokens_gain_exactly_the_next_likeliest_token(tiny_policy):
    """Three single-token children with the same path embedding, all valued below 0: the
    selection adds one child, the 4th likeliest token, its prior 0.75 * p4 / (p1 + .. + p4)
    + 0.25 / 4 at the root (nodes.py `checkadd`); the other priors are left as they were."""
    search = make_search(tiny_policy)
    ids, probs = next_token_probs(search, 4)
    root = rain.Node((), 1.0, n=3)
    kids = [child(root, (i,), q=-0.5, n=1, prior=0.3) for i in ids[:3]]
    for kid in kids:
        kid.embedding = torch.ones(8)
    drive(search.be, search.select_steps(root))
    assert list(root.children) == [(i,) for i in ids]  # one more: the 4th
    added = root.children[(ids[3],)]
    assert added.prior == pytest.approx(0.75 * probs[3] / sum(probs) + 0.25 / 4, rel=1e-4)
    assert [k.prior for k in kids] == [0.3, 0.3, 0.3]
    kids[0].q = 0.1  # one child valued >= 0: nothing is added
    drive(search.be, search.select_steps(root))
    assert len(root.children) == 4


def test_alike_and_bad_token_sets_draw_add_width_more(tiny_policy):
    """Longer token sets: a fresh greedy + sampled draw of `add_width`; the new sets among the
    first K + 1 candidates join with priors normalised over those candidates."""
    search = make_search(tiny_policy, add_width=2)
    root = rain.Node((), 1.0)
    node = child(root, (5,), n=4)  # depth 1: two-token sets
    drive(search.be, search.expand_steps(node))
    first = list(node.children.values())
    for kid in first:
        kid.embedding, kid.q = torch.ones(8), -1.0
    drive(search.be, search.add_steps(node))
    new = [c for c in node.children.values() if c not in first]
    assert len(new) <= 1 and len(node.children) <= len(first) + 1
    cands = node.drawn[:len(first) + 1]
    total = sum(p for _, p in cands)
    for kid in new:
        assert kid.prior == pytest.approx(kid.raw / total)


def test_adversarial_token_sets_are_hot_and_drawn_from_more_tries(tiny_policy):
    """The authors' adversarial setting: token sets at temperature 2.0, 2k - 1 = 5 sampled draws
    for a 3-wide expansion, the first 2 distinct kept (adv/main.py `group_getp`)."""
    search = make_search(tiny_policy, task="adversarial", temperature=2.0, draw_factor=2)
    node = child(rain.Node((), 1.0), (5,))
    steps = search.token_set_steps(node, 3)
    call = next(steps)
    greedy, sampled = call.items
    assert greedy.greedy and (sampled.num, sampled.temperature, sampled.top_k) == (5, 2.0, 15)
    try:
        steps.send(serve(search.be, [call])[0])
    except StopIteration as done:
        sets = done.value
    assert 1 <= len(sets) <= 3 and len({tuple(s) for s, _ in sets}) == len(sets)
    top = search.be.top_tokens_many([search.head], [4], [2.0])[0]
    ids, _ = next_token_probs(search, 4)
    with torch.inference_mode():
        logits = search.be.model(torch.tensor([search.head])).logits[0, -1].float()
    hot = torch.softmax(logits / 2.0, -1)[ids]
    assert [t for t, _ in top] == ids and [p for _, p in top] == pytest.approx(hot.tolist(),
                                                                             rel=1e-4)


def test_commit_takes_the_most_visited_child_even_against_a_higher_value():
    root = rain.Node((), 1.0)
    a = child(root, (1,), q=0.9, n=3)
    b = child(root, (2,), q=0.1, n=5)
    assert root.best_child() is b  # visits, not value
    c = child(root, (3,), q=0.2, n=5)
    assert root.best_child() is c  # tied visits: the higher value
    assert a.q > c.q


def test_backed_up_value_is_the_mean_and_similar_siblings_share_at_095(tiny_policy):
    """Similarity sharing on the embedded sentence encoder with a non-empty look-ahead: a
    sibling whose path text (its tokens + look-ahead) has cosine >= 0.95 moves toward the new
    value with weight 0.2 * cos; one at 0.89 and an unrelated one stay (nodes.py `backup`)."""
    from udasa.scorers.semantic import load_sentence_model

    search = make_search(tiny_policy)
    tok = search.be.tok
    texts = ["I cannot help with that request", "I can not help with that request",
             "I cannot answer that request", "Bananas grow in warm tropical places"]
    tail = tok.encode(" so please ask me something else.", add_special_tokens=False)
    root = rain.Node((), 1.0)
    a, b, c, d = (child(root, tuple(tok.encode(t, add_special_tokens=False)), prior=0.25)
                  for t in texts)
    for sib in (b, c, d):
        search.backup(sib, 0.0, tail)
    encoder = load_sentence_model("embedded")
    emb = torch.as_tensor(encoder.encode([search.be.decode(list(n.tokens) + tail)
                                          for n in (a, b, c, d)]))
    cos = [float(torch.cosine_similarity(emb[0], e, dim=0)) for e in emb[1:]]
    assert cos[0] >= 0.95 and 0.8 <= cos[1] < 0.95 and cos[2] < 0.8
    search.backup(a, 1.0, tail)
    w = 0.2 * cos[0]
    assert (a.q, a.n, a.fn) == (1.0, 1.0, 1)
    assert b.n == pytest.approx(1 + w) and b.q == pytest.approx(w / (1 + w), rel=1e-4)
    assert (c.q, c.n, d.q, d.n) == (0.0, 1.0, 0.0, 1.0)
    assert root.n == 4 and root.q == pytest.approx(0.25)


# the self-evaluation ----------------------------------------------------------------------------
def test_hard_vote_value_from_given_option_probabilities():
    """Each order votes for its likelier option; ((A + B) / 2 - 0.5) * 2 (HH/main.py `getv`)."""
    assert vote_value([(0.7, 0.3), (0.6, 0.4)]) == 1.0
    assert vote_value([(0.7, 0.3), (0.4, 0.6)]) == 0.0
    assert vote_value([(0.2, 0.8), (0.45, 0.55)]) == -1.0
    assert vote_value([(0.5, 0.5), (0.9, 0.1)]) == 0.0  # a tie is no vote for good
    assert vote_value([(0.51, 0.49)]) == 1.0 and vote_value([(0.3, 0.7)]) == -1.0  # one order
    assert vote_value([(0.7, 0.3), (0.4, 0.6)], hard=False) == pytest.approx(0.7 + 0.4 - 1)


def test_hard_self_evaluation_votes_from_the_models_letter_probabilities(tiny_policy):
    """RAIN's value of a reply on the real model: both prompts through a plain forward pass,
    P("A") vs P("B") after each prompt's "(", the good option's vote per order."""
    search = make_search(tiny_policy)
    model, tok = search.be.model, search.be.tok
    letters = tok.convert_tokens_to_ids(["A", "B"])
    for reply in ("Why did the chicken cross the road?", "No."):
        texts, good = search.eval_texts(reply)
        assert good == [0, 1] and "(A) The assistant's reply is harmless." in texts[0] \
            and "(A) The assistant's reply is harmful." in texts[1]
        votes = []
        with torch.inference_mode():
            for text, g in zip(texts, good, strict=True):
                logits = model(torch.tensor([tok(text)["input_ids"]])).logits[0, -1, letters]
                votes.append(1 if logits[g] > logits[1 - g] else 0)
        assert search.value(reply) == (votes[0] + votes[1]) / 2 * 2 - 1


def test_truthfulness_is_one_yes_no_question(tiny_policy):
    """The authors' truthfulness self-evaluation: one order, "Yes" vs "No" after the question
    "Is the answer truthful?", value 1 or -1."""
    search = make_search(tiny_policy, task="truthful")
    model, tok = search.be.model, search.be.tok
    texts, good = search.eval_texts("Paris is the capital of France.")
    assert good == [0] and len(texts) == 1 and "Is the answer truthful?" in texts[0]
    yes_no = tok.convert_tokens_to_ids(["Yes", "No"])
    with torch.inference_mode():
        logits = model(torch.tensor([tok(texts[0])["input_ids"]])).logits[0, -1, yes_no]
    assert search.value("Paris is the capital of France.") == (1 if logits[0] > logits[1]
                                                               else -1)


def test_few_shot_examples_come_before_the_case_in_both_orders(tiny_policy):
    search = make_search(tiny_policy, eval_examples="bundled")
    examples = examples_text("bundled", "harmless.txt", "x")
    assert examples.startswith("Human:") and examples.count("The answer is: (") == 8
    texts, _ = search.eval_texts("Sure.")
    for text in texts:
        assert text.index("A reply that declines") < text.index(examples) < \
            text.index(f"Human: {QUESTION}\nAssistant: Sure.")
        assert text.endswith("The answer is: (")
    assert make_search(tiny_policy, task="truthful", eval_examples="bundled").eval_examples == ""


def test_few_shot_dialogue_goes_before_the_prompt_as_turns_or_text(tiny_policy):
    search = make_search(tiny_policy)
    tok = search.be.tok
    examples = examples_text("bundled", "dialogue.txt", "x")
    chat = tok.decode(head_ids(tok, QUESTION, examples))
    assert chat.index("How do I remove a coffee stain") < chat.index(QUESTION)
    assert "A conversation between" not in chat  # the header is not a turn
    assert chat.count("<|im_start|>user") == 5 and chat.count("<|im_start|>assistant") == 5
    template, tok.chat_template = tok.chat_template, None  # the same tokenizer as a base model
    try:
        plain = tok.decode(head_ids(tok, QUESTION, examples), skip_special_tokens=True)
    finally:
        tok.chat_template = template
    assert plain.startswith("A conversation between a human") and \
        plain.endswith(f"Human: {QUESTION}\n\nAssistant:")


# the look-ahead ---------------------------------------------------------------------------------
def test_lookahead_stops_at_the_first_sentence_end(tiny_policy):
    """A scripted tail: the look-ahead's stop is after "dog," (the authors' ends: , . ? : ;
    newline; not '!'), at EOS, or (truthfulness) only at the end of the answer."""
    search = make_search(tiny_policy)
    tok = search.be.tok
    state = tok.encode("The quick brown fox", add_special_tokens=False)
    tail = tok.encode(" jumped! Over the dog, and then it ran.", add_special_tokens=False)
    stops = [i for i in range(1, len(tail) + 1) if search.lookahead_end(state + tail[:i])]
    assert tok.decode(tail[:stops[0]]) == " jumped! Over the dog,"
    assert search.lookahead_end(state + [search.be.eos])
    answer = make_search(tiny_policy, lookahead_end="answer")
    assert not any(answer.lookahead_end(state + tail[:i]) for i in range(1, len(tail) + 1))
    assert answer.reply(state + tail) == "The quick brown fox jumped! Over the dog, and then it ran."


def test_lookahead_runs_past_its_first_call_to_the_sentence_end_and_logs_its_cap(caplog):
    """On the embedded model (natural text): sampled in calls of 2, 4, 8, ... tokens until the
    text ends a sentence, nothing earlier in the tail ending one; a cap is logged and counted."""
    search = make_search("embedded", lookahead_chunk=2, lookahead_cap=200)
    tok = search.be.tok
    state = tok.encode("Once upon a time there was a little", add_special_tokens=False)
    tail = drive(search.be, search.lookahead_steps(state))
    text = tok.decode(state + tail)
    assert text.endswith((",", ".", "?", ":", ";", "\n")) or tail[-1] == search.be.eos
    assert not any(tok.decode(state + tail[:i]).endswith((",", ".", "?", ":", ";", "\n"))
                   for i in range(1, len(tail)))
    calls = math.ceil(math.log2(len(tail) / 2 + 1))  # 2 + 4 + ... >= len(tail)
    assert search.be.calls["continue"] == calls and search.stats.lookahead_capped == 0
    capped = make_search("embedded", lookahead_chunk=1, lookahead_cap=2)
    state = tok.encode("Once upon a time there was a", add_special_tokens=False)
    with caplog.at_level(logging.WARNING, logger="udasa.baselines.rain"):
        tail = drive(capped.be, capped.lookahead_steps(state))
    assert len(tail) == 2 and capped.stats.lookahead_capped == 1
    assert "lookahead_cap=2" in caplog.text
    assert drive(capped.be, capped.lookahead_steps([])) == []  # nothing after "Assistant:"


# settings ---------------------------------------------------------------------------------------
def test_paper_config_holds_the_authors_per_task_settings(tiny_policy):
    """configs/baselines/rain.yaml: hard votes, few-shot prompts, maxT 50, minT 6, Vt 0.8; the
    authors' TruthfulQA minT 16 and adversarial minT 5, temperature 2.0, 19 draws."""
    paper = rain.RainConfig.from_options(yaml.safe_load(
        (REPO / "configs" / "baselines" / "rain.yaml").read_text()))
    assert (paper.value, paper.eval_examples, paper.dialogue_examples) == \
        ("hard", "bundled", "bundled")
    assert (paper.max_tries, paper.min_tries, paper.value_threshold) == (50, 6, 0.8)
    truthful, adversarial = paper.for_task("truthful"), paper.for_task("adversarial")
    assert (truthful.min_tries, truthful.lookahead_end) == (16, "answer")
    assert (adversarial.min_tries, adversarial.temperature) == (5, 2.0)
    assert adversarial.draw_factor * paper.width - 1 == 19
    assert paper.for_task("harmless").min_tries == 6 and rain.goal_of("robustness") == \
        "adversarial"
    cpu = rain.RainConfig.from_options(yaml.safe_load(
        (REPO / "configs" / "baselines" / "rain-cpu.yaml").read_text()))
    assert (cpu.value, cpu.eval_examples, cpu.dialogue_examples) == ("soft", "", "")
    gen = rain.RainGenerator(rain.RainConfig(model=tiny_policy, task="truthful",
                                             tasks={"truthful": {"min_tries": 16}}))
    assert gen.cfg.min_tries == 16 and gen.cfg.task == "truthful"
    for bad, match in (({"tasks": {"truth": {}}}, r"rain.tasks.truth: not a task"),
                       ({"tasks": {"truthful": {"task": "x"}}}, r"tasks.truthful.task: not"),
                       ({"tasks": {"truthful": {"min_tries": "x"}}}, r"truthful.min_tries"),
                       ({"value": "medium"}, r"rain.value"),
                       ({"eval_examples": "/no/such.txt"}, r"rain.eval_examples: /no/such")):
        with pytest.raises(ConfigError, match=match):
            rain.RainConfig.from_options(bad)
