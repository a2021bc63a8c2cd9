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
def browser():
    """Headless Debian chromium for the app's browser tests, one per test module."""
    from app.screenshots import CHROMIUM, launch_browser

    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} missing: run .ci/install-browser.sh")
    playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    with playwright.sync_playwright() as p:
        b = launch_browser(p)
        yield b
        b.close()


@pytest.fixture(scope="module")
def one_torch_thread():
    """Small ops on a shared 2-core machine: one torch thread is faster and steadier."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


CPU_DEMO = REPO / "configs" / "cpu-demo.yaml"
# a short DPO run on the tiny policy: 3 stages of one pair, 2 optimizer steps each
TINY_TRAINING = ("training.enabled=true", "training.epochs=4", "training.batch_size=2",
                 "training.eval_fraction=0", "training.max_length=96",
                 "training.warmup_steps=0")


def tiny_run_args(step: str, workspace, policy: str, *extra: str, limit: int = 3) -> list[str]:
    """`udasa STEP` arguments of the tiny run: `limit` built-in prompts x 3 replies of 6
    tokens by the tiny policy (and `extra` --set items)."""
    out = [step, "--config", str(CPU_DEMO), "--workspace", str(workspace)]
    for item in small_overrides(limit=limit, **{"generation.model": policy, "generation.n": 3,
                                                "generation.max_new_tokens": 6}) + list(extra):
        out += ["--set", item]
    return out


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_policy):
    """A workspace whose tiny run is done up to its stages (not trained). Copy it to change it."""
    from udasa.cli import main

    ws = tmp_path_factory.mktemp("tiny-run")
    assert main(tiny_run_args("run", ws, tiny_policy)) == 0
    return ws


@pytest.fixture(scope="session")
def tiny_trained(tmp_path_factory, tiny_run, tiny_policy):
    """`tiny_run` after an uninterrupted `udasa train` with TINY_TRAINING: the reference that
    a training interrupted (killed, disk full) and resumed must end like."""
    import shutil

    from udasa.cli import main

    ws = shutil.copytree(tiny_run, tmp_path_factory.mktemp("tiny-trained") / "ws")
    assert main(tiny_run_args("train", ws, tiny_policy, *TINY_TRAINING)) == 0
    return ws
