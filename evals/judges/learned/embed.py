"""Sentence embeddings for the learned judges, computed once per text and kept on disk.

The encoder is the embedded all-MiniLM-L6-v2 (``embedded``) or any sentence-transformers
model path. Vectors are L2-normalised and stored per encoder in one ``.npz`` under the user
cache (text sha1 -> row), so a rebuild or a validation run encodes only texts it has not seen.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from pathlib import Path

import numpy as np
from filelock import FileLock
from tqdm.auto import tqdm

from udasa.files import atomic_write
from udasa.models import cache_root

log = logging.getLogger("evals.judges")
_LOCK = threading.Lock()
_MEMORY: dict[str, dict[str, np.ndarray]] = {}


def text_key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def _store_path(encoder: str) -> Path:
    return cache_root() / "judges" / f"emb-{text_key(encoder)[:12]}.npz"


def _load(encoder: str) -> dict[str, np.ndarray]:
    if encoder not in _MEMORY:
        path = _store_path(encoder)
        table: dict[str, np.ndarray] = {}
        if path.is_file():
            with np.load(path) as z:
                table = dict(zip(z["keys"].tolist(), z["vectors"]))
        _MEMORY[encoder] = table
    return _MEMORY[encoder]


def _save(encoder: str, table: dict[str, np.ndarray]) -> None:
    path = _store_path(encoder)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        if path.is_file():  # merge what another process added meanwhile
            with np.load(path) as z:
                for k, v in zip(z["keys"].tolist(), z["vectors"]):
                    table.setdefault(k, v)
        with atomic_write(path, "wb") as f:
            np.savez(f, keys=np.array(list(table)), vectors=np.stack(list(table.values())))


def embed(texts: list[str], encoder: str = "embedded", batch_size: int = 16,
          desc: str = "embed") -> np.ndarray:
    """(len(texts), dim) unit vectors; new texts are encoded (progress bar) and cached. Small
    batches: on one CPU thread, batches of 16 HH replies took about 20% fewer CPU-seconds than
    batches of 64 (less padding, activations that stay in cache)."""
    with _LOCK:
        table = _load(encoder)
        keys = [text_key(t) for t in texts]
        todo = list(dict.fromkeys(k for k in keys if k not in table))
        if todo:

            from udasa.scorers.semantic import load_sentence_model

            model = load_sentence_model(encoder)
            by_key = {k: t for k, t in zip(keys, texts)}
            bar = tqdm(total=len(todo), desc=desc, unit="text", disable=len(todo) < 256)
            for start in range(0, len(todo), 512):
                chunk = todo[start:start + 512]
                vecs = model.encode([by_key[k] for k in chunk], batch_size=batch_size,
                                    convert_to_numpy=True, normalize_embeddings=True,
                                    show_progress_bar=False)
                table.update(zip(chunk, vecs.astype(np.float32)))
                bar.update(len(chunk))
            bar.close()
            _save(encoder, table)
        return np.stack([table[k] for k in keys]) if keys else np.zeros((0, 384), np.float32)
