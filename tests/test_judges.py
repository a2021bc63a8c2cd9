"""Judges: replies parse into scores or are recorded as failures (never 0); calls are cached,
retried with backoff over real HTTP (FakeOpenAIServer), concurrent, costed, and keep the key
out of the store and the logs; the embedded hf judge scores from token probabilities."""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time

import pytest
from openai_server import FakeOpenAIServer

from evals.judges import (
    Judge,
    ParseError,
    available_judges,
    default_judge_name,
    load_judge_config,
    make_judge,
    parse_rating,
    parse_yes_no,
    summarize,
)
from evals.store_tables import judge_cached
from udasa.store import Store

KEY_ENV = "UDASA_TEST_JUDGE_KEY"
SECRET = "sk-judge-secret-123"
ITEMS = [{"prompt": f"question {i}", "response": f"answer {i}"} for i in range(4)]


# --- parsing (pure) ------------------------------------------------------------------------

@pytest.mark.parametrize("reply, score", [
    ("7", 7.0), ("Score: 7/10", 7.0), ("**8**", 8.0), ("I'd rate this 6 out of 10", 6.0),
    ("10", 10.0), ("10/10", 10.0), ("Rating: 9", 9.0), ("1", 1.0), (" 8.5\n", 8.5),
    ("On a scale of 1-10, I give it 8", 8.0), ("Score: **3**", 3.0),
    ("7. The reply covers 3 of the 4 steps.", 7.0),
])
def test_rating_parses(reply, score):
    assert parse_rating(reply) == score


@pytest.mark.parametrize("reply", [
    "I refuse to grade this", "", "0", "11", "-3", "between 4 and 5", "1-10", "seven",
])
def test_rating_refuses_unclear_or_out_of_range(reply):
    with pytest.raises(ParseError):
        parse_rating(reply)


@pytest.mark.parametrize("reply, score", [
    ("Yes", 1.0), ("no.", 0.0), ("**No**", 0.0), ("YES", 1.0), ("Yes, it is true.", 1.0),
    ("The answer is no", 0.0),
])
def test_yes_no_parses(reply, score):
    assert parse_yes_no(reply) == score


@pytest.mark.parametrize("reply", ["maybe", "Nope", "", "It is true that yes and no apply"])
def test_yes_no_refuses_unclear(reply):
    with pytest.raises(ParseError):
        parse_yes_no(reply)


# --- configs -------------------------------------------------------------------------------

def test_shipped_judges_and_default(monkeypatch):
    assert {"gpt4", "local", "learned"} <= set(available_judges())
    gpt4, local = load_judge_config("gpt4"), load_judge_config("local")
    assert (gpt4.backend, gpt4.label, local.backend, local.model) == (
        "openai", "GPT-4", "hf", "embedded")
    assert "stand-in for GPT-4" in local.label
    templates = {"harmless", "helpful", "truthful", "informative", "sentiment"}
    assert set(gpt4.templates) == set(local.templates) == templates
    assert gpt4.templates["truthful"].scale == "yes-no"
    assert gpt4.price_prompt_per_1k and gpt4.price_completion_per_1k
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert default_judge_name() == "learned"  # trained on human labels; local stays selectable
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    assert default_judge_name() == "gpt4"
    with pytest.raises(ValueError, match="unknown judge"):
        load_judge_config("no-such-judge")


def test_template_fields():
    truthful = load_judge_config("gpt4").templates["truthful"]
    assert "(none given)" in truthful.render({"prompt": "q", "response": "a"})
    assert "Paris; City of Light" in truthful.render(
        {"prompt": "q", "response": "a", "references": ["Paris", "City of Light"]})
    with pytest.raises(ValueError, match="response"):
        truthful.render({"prompt": "q"})


# --- openai backend over real HTTP ----------------------------------------------------------

@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "ws")
    yield s
    s.close()


@pytest.fixture
def key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    return SECRET


def score_responder(body: dict) -> str:
    """Replies "<n>/10" for "question <n>"; refuses for anything mentioning "refuse"."""
    text = body["messages"][-1]["content"]
    if "refuse" in text:
        return "I refuse to grade this"
    n = int(text.split("question ")[1].split()[0])
    return f"Score: {n + 5}/10"


def api_judge(server: FakeOpenAIServer, store: Store | None, **overrides) -> Judge:
    settings = {"base_url": server.base_url, "api_key_env": KEY_ENV, "max_retries": 3,
                "backoff_base_s": 0.01, "backoff_max_s": 0.05, "timeout_s": 5.0} | overrides
    return make_judge("gpt4", store, **settings)


def chats(server: FakeOpenAIServer) -> int:
    return len(server.requests_to("/chat/completions"))


def test_scores_parse_average_and_cost(store, key):
    with FakeOpenAIServer(score_responder) as server:
        judge = api_judge(server, store)
        out = judge.judge("harmless", ITEMS)
    assert [j.score for j in out] == [5.0, 6.0, 7.0, 8.0]
    assert all(j.ok and not j.cached and j.attempts == 1 for j in out)
    assert summarize(out) == {"mean": 6.5, "n": 4, "failures": 0}
    body = server.requests[0]["body"]
    assert (body["model"], body["temperature"], body["max_tokens"]) == ("gpt-4-0613", 0, 16)
    # tokens from `usage` (the server counts words), dollars from the configured prices
    j = out[0]
    assert j.prompt_tokens > 20 and j.completion_tokens == 2
    assert j.cost_usd == pytest.approx((j.prompt_tokens * 0.03 + 2 * 0.06) / 1000)
    assert judge.stats.calls == 4 and judge.stats.cost_usd == pytest.approx(
        sum(x.cost_usd for x in out))


def test_rerun_makes_zero_calls(store, key):
    with FakeOpenAIServer(score_responder) as server:
        first = api_judge(server, store).judge("helpful", ITEMS)
        sent = chats(server)
        again = api_judge(server, store)  # a new judge: the cache lives in the store
        second = again.judge("helpful", ITEMS)
        assert chats(server) == sent == len(ITEMS)
    assert [j.score for j in second] == [j.score for j in first]
    assert all(j.cached for j in second)
    assert again.stats.cache_hits == len(ITEMS) and again.stats.calls == 0
    # a different template (or params) is a different key
    with FakeOpenAIServer(score_responder) as server:
        api_judge(server, store).judge("harmless", ITEMS[:1])
        api_judge(server, store, max_tokens=8).judge("helpful", ITEMS[:1])
        assert chats(server) == 2


def test_unparseable_reply_is_a_failure_not_zero(store, key):
    items = ITEMS[:2] + [{"prompt": "please refuse", "response": "x"}]
    with FakeOpenAIServer(score_responder) as server:
        judge = api_judge(server, store)
        out = judge.judge("harmless", items)
        bad = out[2]
        assert (bad.ok, bad.score, bad.reply) == (False, None, "I refuse to grade this")
        assert "unparseable" in bad.error
        assert summarize(out) == {"mean": 5.5, "n": 2, "failures": 1}
        assert judge.stats.failures == 1
        row = judge_cached(store, bad.key)
        assert (row.ok, row.score, row.reply) == (0, None, "I refuse to grade this")
        # only successful calls are cache hits: the failure is asked again next run
        sent = chats(server)
        api_judge(server, store).judge("harmless", items)
        assert chats(server) == sent + 1


@pytest.mark.parametrize("status", [429, 500, 503])
def test_rate_limit_and_server_errors_are_retried(store, key, status, caplog):
    with FakeOpenAIServer(score_responder) as server:
        server.fail_next(2, status)  # Retry-After: 0
        judge = api_judge(server, store, concurrency=1)
        with caplog.at_level(logging.WARNING, logger="evals.judges"):
            out = judge.judge("harmless", ITEMS)
        assert chats(server) == len(ITEMS) + 2
    assert all(j.ok for j in out) and [j.score for j in out] == [5.0, 6.0, 7.0, 8.0]
    assert judge.stats.retries == 2 and out[0].attempts == 3
    retries = [r for r in caplog.records if "retry" in r.getMessage()]
    assert len(retries) == 2 and all(r.levelno == logging.WARNING for r in retries)
    assert str(status) in retries[0].getMessage()


def test_retry_after_is_honoured_and_capped(key):
    with FakeOpenAIServer(score_responder) as server:
        server.fail_next(1, 429, retry_after=0.3)
        judge = api_judge(server, None, backoff_max_s=10)
        t0 = time.perf_counter()
        assert judge.judge("harmless", ITEMS[:1])[0].score == 5.0
        assert time.perf_counter() - t0 >= 0.3
        server.fail_next(1, 429, retry_after=3600)
        judge = api_judge(server, None, backoff_max_s=0.05)
        out = judge.judge("harmless", ITEMS[1:2])
    assert out[0].score == 6.0 and out[0].attempts == 2  # waited 0.05 s, not an hour


def test_timeout_is_retried(store, key):
    with FakeOpenAIServer(score_responder) as server:
        server.fail_next(1, hang_s=3)
        judge = api_judge(server, store, timeout_s=0.5, concurrency=1)
        out = judge.judge("harmless", ITEMS[:2])
    assert [j.score for j in out] == [5.0, 6.0]
    assert judge.stats.retries == 1 and out[0].attempts == 2


@pytest.mark.parametrize("body", ["{not json", "", '{"unexpected": 1}'])
def test_malformed_response_is_retried(store, key, body):
    with FakeOpenAIServer(score_responder) as server:
        server.fail_next(1, body=body)
        judge = api_judge(server, store, concurrency=1)
        out = judge.judge("harmless", ITEMS[:1])
    assert out[0].ok and out[0].score == 5.0 and out[0].attempts == 2
    assert judge.stats.retries == 1


def test_gives_up_after_max_retries(store, key):
    with FakeOpenAIServer(score_responder) as server:
        server.fail_next(3, 500)
        judge = api_judge(server, store, max_retries=2)
        out = judge.judge("harmless", ITEMS[:1])
        j = out[0]
        assert (j.ok, j.score, j.attempts) == (False, None, 3)
        assert "gave up after 3 attempts" in j.error and "500" in j.error
        assert chats(server) == 3 and judge.stats.failures == 1
        assert summarize(out) == {"mean": None, "n": 0, "failures": 1}
        assert judge_cached(store, j.key).ok == 0
        # the next run asks again and succeeds
        assert api_judge(server, store).judge("harmless", ITEMS[:1])[0].score == 5.0


def test_client_errors_are_not_retried(store, key):
    with FakeOpenAIServer(score_responder) as server:
        server.fail_next(1, 400)
        out = api_judge(server, store).judge("harmless", ITEMS[:1])
        assert chats(server) == 1
    assert (out[0].ok, out[0].attempts) == (False, 1) and "400" in out[0].error


def test_calls_run_concurrently(key):
    lock, state = threading.Lock(), {"now": 0, "max": 0, "threads": set()}

    def slow(body: dict) -> str:
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
            state["threads"].add(threading.current_thread().name)
        time.sleep(0.2)
        with lock:
            state["now"] -= 1
        return "7"

    items = [{"prompt": f"p{i}", "response": "r"} for i in range(16)]
    with FakeOpenAIServer(slow) as server:
        out = api_judge(server, None, concurrency=16).judge("helpful", items)
    assert all(j.score == 7.0 for j in out)
    assert state["max"] > 1 and len(state["threads"]) > 1  # requests overlapped in flight


def test_api_key_never_stored_or_logged(store, key, caplog):
    with FakeOpenAIServer(score_responder) as server:
        server.fail_next(1, 429)
        server.fail_next(1, 401)
        with caplog.at_level(logging.DEBUG):
            judge = api_judge(server, store, concurrency=1)
            out = judge.judge("harmless", ITEMS + [{"prompt": "refuse", "response": "x"}])
        assert server.requests[0]["headers"]["authorization"] == f"Bearer {SECRET}"
    assert [j.ok for j in out] == [False, True, True, True, False]
    assert "401" in out[0].error
    assert SECRET not in caplog.text and "judge-secret" not in caplog.text
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    for path in store.path.parent.iterdir():  # the database and any -wal / -shm file
        assert SECRET.encode() not in path.read_bytes(), path
    assert "HTTP Request: POST" in caplog.text  # the client's own debug/info logs were captured
    rows = list(sqlite3.connect(store.path).execute("select params from judge_cache"))
    # the server address keys the cache too (two servers may serve different models under
    # one name); headers and keys never do
    assert rows and all(set(json.loads(p)) == {"temperature", "max_tokens", "template",
                                               "base_url"} for (p,) in rows)


# --- hf backend on the embedded model -------------------------------------------------------

@pytest.fixture
def one_torch_thread():
    """One intra-op thread: on a shared 2-vCPU machine, 2 threads can stall each op ~10x."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.slow
def test_hf_judge_scores_from_token_probabilities(store, one_torch_thread):
    judge = make_judge("local", store)
    items = [{"prompt": "How do I bake bread?",
              "response": "Mix flour, water, yeast and salt, knead, let it rise, then bake."},
             {"prompt": "What is the capital of France?", "response": "Paris.",
              "references": ["Paris"]}]
    ratings = judge.judge("harmless", items)
    answers = judge.judge("truthful", items)
    assert all(j.ok and 1 <= j.score <= 10 and j.reply.startswith("E[score]=") for j in ratings)
    assert all(j.ok and 0 <= j.score <= 1 and j.reply.startswith("P(yes)=") for j in answers)
    assert judge.stats.calls == 4 and judge.label.endswith("(stand-in for GPT-4)")
    # batching (left padding) does not change a score
    alone = make_judge("local", None).judge("truthful", items[1:])[0]
    assert alone.score == pytest.approx(answers[1].score, abs=1e-4)
    # cached: a rerun scores nothing
    again = make_judge("local", store)
    assert [j.score for j in again.judge("harmless", items)] == [j.score for j in ratings]
    assert again.stats.calls == 0 and again.stats.cache_hits == 2
