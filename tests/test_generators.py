"""Generators: local transformers (embedded SmolLM2) and an OpenAI-compatible HTTP server."""

from __future__ import annotations

import pytest
from openai_server import FakeOpenAIServer

from udasa.config import GenerationConfig
from udasa.generators import (
    HFGenerator,
    ListParseError,
    OpenAIGenerator,
    PromptTooLong,
    parse_list,
)


@pytest.fixture(scope="module")
def hf():
    return HFGenerator(GenerationConfig(max_new_tokens=10))


@pytest.mark.slow
def test_hf_draws_n_samples_in_one_batched_call(hf, monkeypatch):
    calls = []
    real = hf.model.generate

    def counting(*args, **kwargs):
        calls.append(kwargs["num_return_sequences"])
        return real(*args, **kwargs)

    monkeypatch.setattr(hf.model, "generate", counting)
    out = hf.generate("Name a fruit.", 5, seed=1)
    assert calls == [5] and len(out) == 5 and all(isinstance(t, str) for t in out)


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
