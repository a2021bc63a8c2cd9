"""Generators: local transformers (embedded SmolLM2) and an OpenAI-compatible HTTP server."""

from __future__ import annotations

import threading

import pytest
from conftest import REPO, small_overrides
from openai_server import FakeOpenAIServer

from udasa.config import GenerationConfig, load_config
from udasa.generators import (
    HFGenerator,
    ListParseError,
    OpenAIGenerator,
    PromptTooLong,
    parse_list,
)
from udasa.pipeline import Pipeline
from udasa.store import Store


@pytest.fixture(scope="module")
def hf():
    return HFGenerator(GenerationConfig(max_new_tokens=10))


def test_hf_batched_prompts_match_one_prompt_at_a_time(hf):
    prompts = ["Name a fruit.", "Write one word about the sea.", "Why is the sky blue?"]
    together = dict(hf.generate_many(prompts, 3, [11, 12, 13]))
    assert [together[i] for i in range(3)] == [hf.generate(p, 3, 11 + i)
                                               for i, p in enumerate(prompts)]
    assert all(len(set(out)) > 1 for out in together.values())  # N distinct samples


def test_hf_a_too_long_prompt_fails_alone(hf):
    out = dict(hf.generate_many(["Name a fruit.", "word " * (hf.context + 10)], 2, [0, 1]))
    assert len(out[0]) == 2 and isinstance(out[1], PromptTooLong)


@pytest.mark.slow
def test_hf_sampling_is_reproducible_per_seed(hf):
    a = hf.generate("Write one word about the sea.", 4, seed=7)
    assert hf.generate("Write one word about the sea.", 4, seed=7) == a
    assert any(hf.generate("Write one word about the sea.", 4, seed=s) != a for s in (8, 9, 10))


def test_hf_rejects_a_prompt_longer_than_the_context(hf):
    with pytest.raises(PromptTooLong, match="context of"):
        hf.generate("word " * (hf.context + 10), 2, seed=0)


@pytest.mark.parametrize("text", [
    "1. Paris.\n2. It is Paris.\n3. The capital is Paris.",
    "Response 1: Paris.\nResponse 2: It is Paris.\nResponse 3: The capital is Paris.",
    "**Response 1:** Paris.\n\n**Response 2:** It is Paris.\n\n**Response 3:** The capital is Paris.",
    "1) Paris.\n2) It is Paris.\n3) The capital is Paris.\n4) Extra one.",
    "Paris.\n\nIt is Paris.\n\nThe capital is Paris.",
    "Sure! Here are three:\n1. Paris.\n2. It is Paris.\n3. The capital is Paris.",
])
def test_list_parser_understands_common_layouts(text):
    items = parse_list(text, 3)
    assert items[0].endswith("Paris.") and items[2] == "The capital is Paris."


def test_list_parser_keeps_nested_numbers_inside_an_item():
    text = "1. Steps: first boil water, then 2 eggs.\n2. Boil them.\n3. Peel them."
    assert parse_list(text, 3)[1] == "Boil them."


def test_list_parser_refuses_to_invent_missing_responses():
    with pytest.raises(ListParseError, match="expected 5"):
        parse_list("1. Only one.\n2. And two.", 5)


def test_openai_generator_sample_mode_against_a_local_server(monkeypatch):
    monkeypatch.setenv("UDASA_TEST_KEY", "sk-local-test")
    with FakeOpenAIServer(lambda body: f"answer {body['_choice_index']}") as server:
        gen = OpenAIGenerator(GenerationConfig(backend="openai", model="fake-model",
                                               base_url=server.base_url,
                                               api_key_env="UDASA_TEST_KEY"))
        out = gen.generate("Why is the sky blue?", 5, seed=3)
        assert out == [f"answer {i}" for i in range(5)]
        (req,) = server.requests_to("/chat/completions")
        assert req["body"]["n"] == 5 and req["body"]["seed"] == 3
        assert req["body"]["messages"][-1]["content"] == "Why is the sky blue?"
        assert req["headers"]["authorization"] == "Bearer sk-local-test"


def test_openai_generator_list_mode_uses_the_paper_prompt():
    reply = "1. Blue light scatters.\n2. Rayleigh scattering.\n3. Air scatters blue.\n" \
            "4. Short wavelengths scatter.\n5. Sunlight scatters."
    with FakeOpenAIServer(lambda body: reply) as server:
        gen = OpenAIGenerator(GenerationConfig(backend="openai", model="m", mode="list",
                                               base_url=server.base_url, max_new_tokens=50))
        out = gen.generate("Why is the sky blue?", 5, seed=0)
        assert out[1] == "Rayleigh scattering." and len(out) == 5
        content = server.requests_to("/chat/completions")[0]["body"]["messages"][-1]["content"]
        assert content.startswith("You are a professional AI assistant. Please provide 5 distinct")
        assert content.endswith("Question: Why is the sky blue?")


def test_openai_generator_retries_a_server_error():
    with FakeOpenAIServer() as server:
        server.fail_next(1, status=500)
        gen = OpenAIGenerator(GenerationConfig(backend="openai", model="m",
                                               base_url=server.base_url))
        assert len(gen.generate("hi", 2, seed=0)) == 2
        assert len(server.requests_to("/chat/completions")) == 2


def test_openai_generator_keeps_concurrency_requests_in_flight():
    """Four requests wait at a barrier that only four concurrent requests can pass."""
    barrier = threading.Barrier(4, timeout=20)
    calls = []

    def responder(body):
        calls.append(1)
        if len(calls) <= 4:
            barrier.wait()
        return "ok " + body["messages"][-1]["content"]

    with FakeOpenAIServer(responder) as server:
        gen = OpenAIGenerator(GenerationConfig(backend="openai", model="m", concurrency=4,
                                               base_url=server.base_url))
        prompts = [f"prompt {i}" for i in range(8)]
        out = dict(gen.generate_many(prompts, 1, list(range(8))))
    assert not barrier.broken
    assert [out[i] for i in range(8)] == [[f"ok prompt {i}"] for i in range(8)]


def test_openai_generation_with_a_429_mid_batch_stores_every_prompt_once(tmp_path):
    """The pipeline's generate step over a real server that rate-limits in the middle."""
    server = FakeOpenAIServer(lambda body: f"answer {body['_choice_index']} to "
                                           f"{body['messages'][-1]['content'][:20]}")
    seen = []

    def responder(body):  # called once per choice
        if body["_choice_index"] == 0:
            seen.append(body["messages"][-1]["content"])
        if len(seen) == 3 and body["_choice_index"] == 0:
            server.fail_next(2, status=429)  # the next two requests are rate-limited
        return f"answer {body['_choice_index']} to {seen[-1][:20]}"

    server.responder = responder
    with server:
        cfg = load_config(REPO / "configs" / "cpu-demo.yaml", small_overrides(
            limit=6, **{"generation.backend": "openai", "generation.model": "fake-model",
                        "generation.base_url": server.base_url, "generation.n": 3,
                        "generation.concurrency": 4, "generation.backoff_base_s": 0.01}))
        report = Pipeline(cfg, tmp_path).generate()
        statuses = len(server.requests_to("/chat/completions"))
    assert report.done == 6 and report.skipped == 0
    assert statuses == 6 + 2  # six answered requests (n=3 each) and two 429s retried
    assert sorted(seen) == sorted(set(seen)) and len(seen) == 6  # each prompt answered once
    store = Store(tmp_path)
    rows = store.responses(Pipeline(cfg, tmp_path).gen_key)
    assert sorted((r.prompt_id, r.sample_index) for r in rows) == sorted(
        (pid, i) for pid in {r.prompt_id for r in rows} for i in range(3))
    assert len(rows) == 18
    again = Pipeline(cfg, tmp_path).generate()  # a rerun asks the server for nothing
    assert again.reused == 6 and again.done == 0


def test_cli_generate_shows_one_bar_with_tokens_per_second_and_no_library_chatter(tmp_path):
    """`udasa generate` without --verbose: our bar with tok/s; no transformers weight-loading
    bar, no deprecation chatter."""
    import subprocess
    import sys

    sets = [a for item in small_overrides(limit=2, **{"generation.max_new_tokens": 4})
            for a in ("--set", item)]
    proc = subprocess.run([sys.executable, "-m", "udasa.cli", "generate", "--config",
                           str(REPO / "configs" / "cpu-demo.yaml"), "--workspace",
                           str(tmp_path), *sets], cwd=REPO, capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "tok/s" in proc.stderr and "generate" in proc.stderr
    assert "Loading weights" not in proc.stderr and "deprecated" not in proc.stderr
