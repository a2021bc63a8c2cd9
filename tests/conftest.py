"""Shared fixtures: small real configs over the embedded models, and the shared datasets."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).parent))  # tests/openai_server.py

from udasa.config import load_config

REPO = Path(__file__).resolve().parents[1]


def small_overrides(limit: int = 3, **extra: object) -> list[str]:
    """A real but small run: a few built-in prompts, short generations, no training (the
    training tests use a tiny policy instead)."""
    items = {"data.limit": limit, "generation.max_new_tokens": 12, "generation.n": 5,
             "training.enabled": "false"} | extra
    return [f"{k}={v}" for k, v in items.items()]


@pytest.fixture
def small_cfg():
    return load_config(REPO / "configs" / "cpu-demo.yaml", small_overrides())


def build_tiny_policy(path: Path, seed: int = 0) -> str:
    """A 2-layer Llama with SmolLM2's real tokenizer and chat template, saved as a folder."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from udasa.models import resolve_model

    tok = AutoTokenizer.from_pretrained(resolve_model("embedded"))
    torch.manual_seed(seed)
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=1024,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id))
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def tiny_policy(tmp_path_factory):
    return build_tiny_policy(tmp_path_factory.mktemp("tiny-policy"))


@pytest.fixture(scope="module")
def one_torch_thread():
    """Small ops on a shared 2-core machine: one torch thread is faster and steadier."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
