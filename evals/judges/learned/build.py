"""Build each learned judge once, cache it in the user cache, measure its agreement when asked.

A judge is one registered :class:`Recipe` (registry kind ``judge``): its settings dataclass, the
data files it learns from, the template it answers with ``score(judge, items)``,
``train(settings, root) -> judge`` (one fit on all its training labels) and
``validate(judge, root) -> agreements`` (its agreement with human labels it did not
train on: held-out splits and cross-validation, several times the fit's cost). :func:`get` only
fits; :func:`validated` measures, once, and both are cached: the cache key is the judge's name, a
hash of its training files' contents, its settings and :data:`VERSION` (bumped when features
change); the judge is a joblib file under ``<user cache>/udasa/judges/``, its agreement a JSON
file beside it, each written atomically under a file lock of its own.

A judge that holds no training text (``Recipe.ships``: the HH reward models, a weight vector and
a calibration) ships fitted in :data:`SHIPPED`, under the same file name: a fresh cache takes
that file instead of fitting when the recipe, settings and training files' hash are the same,
so every machine judges with the same fitted weights. ``udasa-eval build-judges --ship`` writes
the shipped files; a test refits one and checks it against the shipped file.
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
from udasa.errors import ConfigError
from udasa.files import atomic_write, copy_file
from udasa.models import cache_root
from udasa.registry import lookup, names, register

log = logging.getLogger("evals.judges")
VERSION = 2  # bump when a judge's features change (part of every cache key)
SHIPPED = Path(__file__).parent / "fitted"  # fitted judges that ship with UDASA (Recipe.ships)


@dataclass
class Built:
    """A cached learned judge: the model, its agreement with humans, and how it was built."""

    name: str
    judge: Any
    agreements: list[Agreement] | None  # None: not yet measured (see :func:`validated`)
    meta: dict[str, Any]
    cached: bool = False  # True when this call loaded it instead of building it
    shipped: bool = False  # True when this call took the fitted judge that ships (SHIPPED)


Scores = tuple[list[float], list[str]]  # per item: the score and a short reply text


@dataclass(frozen=True)
class Recipe:
    """A learned judge: how it trains, on what, how it scores the items of its template, and how
    its agreement with human labels is measured."""

    settings: type
    files: tuple[str, ...]  # training data, relative to the shared data folder
    train: Callable[[Any, Path], Any]
    validate: Callable[[Any, Path], list[Agreement]]  # (judge, root); the judge has its settings
    about: str
    template: str = ""  # the judge template it answers in the ``learned`` backend
    score: Callable[[Any, list[dict[str, Any]]], Scores] | None = None
    ships: bool = False  # the fitted judge holds no training text: it may ship (SHIPPED)


def recipe(name: str, settings: type, files: tuple[str, ...], about: str,
           validate: Callable[[Any, Path], list[Agreement]], template: str = "",
           score: Callable[[Any, list[dict[str, Any]]], Scores] | None = None,
           ships: bool = False):
    """Decorator: register ``train(settings, root) -> judge`` as the learned judge ``name``
    (registry kind ``judge``); ``validate(judge, root)`` measures its agreement with
    human labels; ``score(judge, items)`` answers the template ``template``; ``ships``: its
    fitted form holds no training text and may ship with the package."""
    def wrap(fn):
        register("judge", name)(Recipe(settings, files, fn, validate, about, template, score,
                                       ships))
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
    """The fitted judge's file."""
    return cache_root() / "judges" / f"{name}-{cache_key(name, settings, root)}.joblib"


def agreement_path(name: str, settings: Any, root: Path) -> Path:
    """The file of the judge's measured agreement (absent until :func:`validated`)."""
    return _agreement_beside(artifact_path(name, settings, root))


def _agreement_beside(artifact: Path) -> Path:
    return artifact.with_suffix(".agreement.json")


def _resolve(name: str, settings: Any, root: Path | None) -> tuple[Recipe, Any, Path]:
    r = recipe_of(name)
    return r, settings or r.settings(), root or data_dir()


def get(name: str, settings: Any = None, root: Path | None = None) -> Built:
    """The judge ``name`` fitted with ``settings`` (default settings when None), from the cache
    when it is there, else the shipped one when it ships for this recipe, settings and data,
    else fitted once now; cached either way; its agreement as far as measured."""
    r, settings, root = _resolve(name, settings, root)
    path = artifact_path(name, settings, root)
    shipped: list[bool] = []  # what _once's maker did, when it ran
    cached = _once(path, lambda: shipped.append(_make(name, r, settings, root, path)))
    built = _load(name, path, agreement_path(name, settings, root), cached)
    return dataclasses.replace(built, shipped=any(shipped))


def _make(name: str, r: Recipe, settings: Any, root: Path, path: Path) -> bool:
    """Put judge ``name`` at ``path``: the shipped one when it ships (True), else a fit."""
    if _take_shipped(name, path):
        return True
    _fit(name, r, settings, root, path)
    return False


def _take_shipped(name: str, path: Path) -> bool:
    """Copy the shipped judge (and its measured agreement) of ``path``'s key into the cache;
    False when none ships under that name."""
    shipped = SHIPPED / path.name
    if not recipe_of(name).ships or not shipped.is_file():
        return False
    log.info("using the fitted %s judge that ships with UDASA (%s): same recipe, settings and "
             "training files", name, shipped.name)
    agreement = _agreement_beside(shipped)
    if agreement.is_file() and not _agreement_beside(path).is_file():
        copy_file(agreement, _agreement_beside(path))
    copy_file(shipped, path)
    return True


def ship(name: str, settings: Any = None, root: Path | None = None,
         folder: Path | None = None) -> list[Path]:
    """Write judge ``name`` (fitted and measured: :func:`validated`) into ``folder`` (default
    :data:`SHIPPED`) for the package to ship, replacing its earlier shipped files."""
    if not recipe_of(name).ships:
        ships = [n for n in judge_names() if recipe_of(n).ships]
        raise ConfigError(f"learned judge {name!r} holds training text: it does not ship "
                          f"(judges that ship: {', '.join(ships)})")
    folder = folder or SHIPPED
    validated(name, settings, root)
    _, settings, root = _resolve(name, settings, root)
    path = artifact_path(name, settings, root)
    folder.mkdir(parents=True, exist_ok=True)
    key = path.stem.rsplit("-", 1)[1]
    for old in folder.glob(f"{name}-{'?' * len(key)}.*"):
        old.unlink()  # this judge's earlier key (another judge's name may start with ours)
    # an artifact of the first format carries its agreement inside: no file beside it
    return [copy_file(src, folder / src.name) for src in (path, _agreement_beside(path))
            if src.is_file()]


def validated(name: str, settings: Any = None, root: Path | None = None) -> Built:
    """:func:`get`, with the judge's agreement with human labels measured (once, then cached)."""
    built = get(name, settings, root)
    if built.agreements is not None:
        return built
    r, settings, root = _resolve(name, settings, root)
    path = agreement_path(name, settings, root)
    _once(path, lambda: _measure(name, r, built.judge, root, path))
    rows, cost = _read_agreement(path)
    return dataclasses.replace(built, agreements=rows, meta={**built.meta, "validation": cost})


def _once(path: Path, make: Callable[[], None]) -> bool:
    """Make ``path`` unless it exists (under its lock: one process makes it, the others wait
    and load it); True when it was there already."""
    if path.is_file():
        return True
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        if path.is_file():
            return True
        make()
        return False


def _timed(fn: Callable[[], Any]) -> tuple[Any, dict[str, float]]:
    start, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, {"wall_s": round(time.perf_counter() - start, 1),
                 "cpu_s": round(time.process_time() - cpu, 1)}


def _fit(name: str, r: Recipe, settings: Any, root: Path, path: Path) -> None:
    import joblib

    log.info("building the learned %s judge once (%s) into %s", name, r.about, path)
    judge, cost = _timed(lambda: r.train(settings, root))
    meta = {"settings": dataclasses.asdict(settings), "version": VERSION, **cost,
            "about": r.about}
    with atomic_write(path, "wb") as f:  # a killed or refused build leaves no half artifact
        joblib.dump({"judge": judge, "meta": meta}, f)


def _measure(name: str, r: Recipe, judge: Any, root: Path, path: Path) -> None:
    log.info("measuring the learned %s judge's agreement with human labels once", name)
    agreements, cost = _timed(lambda: r.validate(judge, root))
    with atomic_write(path) as f:
        json.dump({"agreements": [a.as_dict() for a in agreements], "meta": cost}, f, indent=1)


def _read_agreement(path: Path) -> tuple[list[Agreement], dict[str, float]]:
    blob = json.loads(path.read_text())
    return [Agreement(**a) for a in blob["agreements"]], blob["meta"]


def _load(name: str, path: Path, agreement: Path, cached: bool) -> Built:
    import joblib

    blob = joblib.load(path)
    meta = dict(blob["meta"])
    # an artifact of the first format carries its agreement inside
    rows = [Agreement(**a) for a in blob["agreements"]] if "agreements" in blob else None
    if agreement.is_file():
        rows, meta["validation"] = _read_agreement(agreement)
    return Built(name, blob["judge"], rows, meta, cached)
