"""Build each learned judge once, validate it, cache both in the user cache, and reuse them.

A judge is one registered :class:`Recipe` (registry kind ``judge``): its settings dataclass, the
data files it learns from, the template it answers with ``score(judge, items)``, and
``train(settings, root) -> (judge, agreements)``: the fitted judge plus its measured
agreement with held-out human labels. The cache key is the judge's name, a hash of its training
files' contents, its settings and :data:`VERSION` (bumped when features change); the artifact is a
joblib file under ``<user cache>/udasa/judges/``, written atomically under a file lock.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock

from evals.judges.learned.data import files_hash, shared_file
from evals.judges.learned.metrics import Agreement
from udasa.data import data_dir
from udasa.files import atomic_write
from udasa.models import cache_root
from udasa.registry import lookup, names, register

log = logging.getLogger("evals.judges")
VERSION = 2  # bump when a judge's features change (part of every cache key)


@dataclass
class Built:
    """A cached learned judge: the model, its agreement with humans, and how it was built."""

    name: str
    judge: Any
    agreements: list[Agreement]
    meta: dict[str, Any]
    cached: bool = False  # True when this call loaded it instead of building it


Scores = tuple[list[float], list[str]]  # per item: the score and a short reply text


@dataclass(frozen=True)
class Recipe:
    """A learned judge: how it trains, on what, and how it scores the items of its template."""

    settings: type
    files: tuple[str, ...]  # training data, relative to the shared data folder
    train: Callable[[Any, Path], tuple[Any, list[Agreement]]]
    about: str
    template: str = ""  # the judge template it answers in the ``learned`` backend
    score: Callable[[Any, list[dict[str, Any]]], Scores] | None = None


def recipe(name: str, settings: type, files: tuple[str, ...], about: str, template: str = "",
           score: Callable[[Any, list[dict[str, Any]]], Scores] | None = None):
    """Decorator: register ``train(settings, root)`` as the learned judge ``name`` (registry
    kind ``judge``); ``score(judge, items)`` answers the template ``template``."""
    def wrap(fn):
        register("judge", name)(Recipe(settings, files, fn, about, template, score))
        return fn
    return wrap


def recipe_of(name: str) -> Recipe:
    """The registered learned judge ``name`` (a ConfigError naming the known ones if none)."""
    return lookup("judge", name, "learned judge")


def judge_names() -> list[str]:
    """Every registered learned judge."""
    return names("judge")


def cache_key(name: str, settings: Any, root: Path) -> str:
    files = [shared_file(f, root) for f in recipe_of(name).files]
    blob = json.dumps({"name": name, "version": VERSION, "data": files_hash(files),
                       "settings": dataclasses.asdict(settings)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def artifact_path(name: str, settings: Any, root: Path) -> Path:
    return cache_root() / "judges" / f"{name}-{cache_key(name, settings, root)}.joblib"


def get(name: str, settings: Any = None, root: Path | None = None) -> Built:
    """The judge ``name`` built with ``settings`` (default settings when None), from the cache
    when it is there, else built now (one log line says so) and cached."""

    r = recipe_of(name)
    settings = settings or r.settings()
    root = root or data_dir()
    path = artifact_path(name, settings, root)
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(path) + ".lock"):
            if not path.is_file():
                _build(name, r, settings, root, path)
                return _load(name, path, cached=False)
    return _load(name, path, cached=True)


def _build(name: str, r: Recipe, settings: Any, root: Path, path: Path) -> None:
    import joblib

    log.warning("building the learned %s judge once (%s) into %s", name, r.about, path)
    from threadpoolctl import threadpool_limits

    start, cpu = time.perf_counter(), time.process_time()
    with threadpool_limits(1):  # OpenMP / BLAS pools spin on a shared CPU; one thread is faster
        judge, agreements = r.train(settings, root)
    meta = {"settings": dataclasses.asdict(settings), "version": VERSION,
            "wall_s": round(time.perf_counter() - start, 1),
            "cpu_s": round(time.process_time() - cpu, 1), "about": r.about}
    with atomic_write(path, "wb") as f:  # a killed or refused build leaves no half artifact
        joblib.dump({"judge": judge, "agreements": [a.as_dict() for a in agreements],
                     "meta": meta}, f)


def _load(name: str, path: Path, cached: bool) -> Built:
    import joblib

    blob = joblib.load(path)
    return Built(name, blob["judge"], [Agreement(**a) for a in blob["agreements"]],
                 blob["meta"], cached)
