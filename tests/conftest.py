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
    """A real but small run: a few built-in prompts, short generations."""
    items = {"data.limit": limit, "generation.max_new_tokens": 12, "generation.n": 5} | extra
    return [f"{k}={v}" for k, v in items.items()]


@pytest.fixture
def small_cfg():
    return load_config(REPO / "configs" / "cpu-demo.yaml", small_overrides())
