"""The fake OpenAI-compatible server works with the real ``openai`` client over HTTP."""

from __future__ import annotations

import json
import threading
import time
import urllib.request

import openai
import pytest

try:  # tests/ is on sys.path under pytest's default (prepend) import mode
    from openai_server import FakeOpenAIServer, moderation_scores
except ImportError:  # pragma: no cover - when tests/ is a package
    from tests.openai_server import FakeOpenAIServer, moderation_scores


@pytest.fixture
def server():
    def responder(body: dict) -> str:
        last = body["messages"][-1]["content"] if "messages" in body else body["prompt"]
        return f"answer {body['_choice_index']} to {last}"

    with FakeOpenAIServer(responder) as srv:
        yield srv


def _client(srv: FakeOpenAIServer, **kw) -> openai.OpenAI:
    kw.setdefault("max_retries", 0)
    return openai.OpenAI(base_url=srv.base_url, api_key="sk-test", **kw)


def test_chat_n_choices_and_usage(server):
    client = _client(server)
    resp = client.chat.completions.create(
        model="my-model",
        messages=[
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hello there"},
        ],
        n=3,
    )
    assert resp.object == "chat.completion"
    assert resp.model == "my-model"
    assert [c.index for c in resp.choices] == [0, 1, 2]
    assert [c.message.content for c in resp.choices] == [
        f"answer {i} to hello there" for i in range(3)
    ]
    assert all(c.message.role == "assistant" and c.finish_reason == "stop" for c in resp.choices)
    assert resp.usage.prompt_tokens == 4
    assert resp.usage.completion_tokens == 3 * 5
    assert resp.usage.total_tokens == 4 + 15
    req = server.requests[-1]
    assert req["path"] == "/v1/chat/completions"
    assert req["body"]["n"] == 3
    assert req["headers"]["authorization"] == "Bearer sk-test"


def test_default_responder_and_max_tokens():
    with FakeOpenAIServer() as srv:
        client = _client(srv)
        resp = client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "what is two plus two"}]
        )
        assert resp.choices[0].message.content == "Reply to: what is two plus two"
        short = client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "what is two plus two"}], max_tokens=2
        )
        assert short.choices[0].message.content == "Reply to:"
        assert short.choices[0].finish_reason == "length"


def test_completions_and_models(server):
    client = _client(server)
    resp = client.completions.create(model="m", prompt=["a b", "c"], n=2)
    assert [c.text for c in resp.choices] == [
        "answer 0 to a b",
        "answer 1 to a b",
        "answer 0 to c",
        "answer 1 to c",
    ]
    assert [c.index for c in resp.choices] == [0, 1, 2, 3]
    assert resp.usage.prompt_tokens == 3
    models = client.models.list()
    assert [m.id for m in models.data] == ["fake-model"]


def test_moderation_threat_scores_higher_than_recipe(server):
    client = _client(server)
    threat = "I will kill you, you stupid idiot"
    recipe = "Whisk two eggs with flour and bake for twenty minutes"
    resp = client.moderations.create(model="omni-moderation-latest", input=[threat, recipe])
    assert len(resp.results) == 2
    t, r = resp.results
    assert t.flagged and not r.flagged
    assert t.category_scores.violence > r.category_scores.violence
    assert t.category_scores.harassment > 0.5 > r.category_scores.harassment
    assert t.categories.violence and not r.categories.violence
    single = client.moderations.create(input=recipe)
    assert len(single.results) == 1
    assert max(moderation_scores(recipe).values()) < 0.05


def test_queued_500_raises_internal_server_error(server):
    client = _client(server)
    server.fail_next(1, 500)
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    # the fault is consumed; the next call succeeds
    ok = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert ok.choices[0].message.content == "answer 0 to hi"


def test_queued_429_raises_rate_limit_error(server):
    client = _client(server)
    server.fail_next(1, 429)
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert info.value.status_code == 429
    assert info.value.response.headers["retry-after"] == "0"


def test_hang_past_client_timeout_raises_timeout(server):
    client = _client(server, timeout=0.3)
    server.fail_next(1, hang_s=2.0)
    t0 = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert time.monotonic() - t0 < 1.5


def test_client_retries_recover_from_one_500(server):
    client = _client(server, max_retries=2)
    server.fail_next(1, 500)
    resp = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert resp.choices[0].message.content == "answer 0 to hi"
    assert len(server.requests) == 2
    assert all(r["path"] == "/v1/chat/completions" for r in server.requests)


def test_malformed_body_is_a_200_with_raw_text(server):
    server.fail_next(1, body="{not json")
    req = urllib.request.Request(
        server.base_url + "/chat/completions",
        data=json.dumps({"model": "m", "messages": [{"role": "user", "content": "x"}]}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.status == 200
        assert resp.read() == b"{not json"
    client = _client(server)
    server.fail_next(1, body="{not json")
    with pytest.raises(ValueError):  # the openai client raises json.JSONDecodeError
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])


def test_concurrent_requests_are_all_recorded():
    with FakeOpenAIServer(latency_s=0.05) as srv:
        client = _client(srv)
        errors: list[BaseException] = []

        def call(i: int) -> None:
            try:
                client.chat.completions.create(
                    model="m", messages=[{"role": "user", "content": f"q{i}"}]
                )
            except BaseException as exc:  # noqa: BLE001  # pragma: no cover
                errors.append(exc)

        threads = [threading.Thread(target=call, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert len(srv.requests) == 16
        assert sorted(r["body"]["messages"][0]["content"] for r in srv.requests) == sorted(
            f"q{i}" for i in range(16)
        )
