"""One registry for every kind of extension, filled by decorators in the modules themselves.

A new scorer, judge backend, judge, task, method, attack, generator backend or uncertainty axis
is one module that registers itself::

    from udasa.registry import register

    @register("task", "my-task")
    class MyTask: ...

Built-in modules are found by importing the packages named for each kind (so a module dropped
into `evals/tasks/` is found without editing any list); modules outside the package are loaded
from `--plugin MODULE_OR_FILE` on every CLI, the `UDASA_PLUGINS` environment variable
(comma-separated) or the `udasa.plugins` entry-point group of an installed package.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import pkgutil
import sys
from collections.abc import Callable, Iterable
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from udasa.errors import ConfigError

# kind -> the packages whose modules hold the built-in entries of that kind
BUILTIN_PACKAGES: dict[str, tuple[str, ...]] = {
    "axis": ("udasa.scorers",),
    "scorer": ("udasa.scorers",),
    "generator": ("udasa.generators",),
    "decoder": ("evals.models",),
    "judge_backend": ("evals.judges",),
    "judge": ("evals.judges.learned",),
    "task": ("evals.tasks",),
    "method": ("evals.suite", "udasa.baselines"),
    "attack": ("attacks",),
}
PLUGIN_ENV = "UDASA_PLUGINS"
ENTRY_POINT_GROUP = "udasa.plugins"

_ENTRIES: dict[str, dict[str, Any]] = {kind: {} for kind in BUILTIN_PACKAGES}
_LOADED: set[str] = set()


def register(kind: str, name: str) -> Callable[[Any], Any]:
    """Decorator: make `obj` available as `name` among the entries of `kind`."""
    if kind not in _ENTRIES:
        raise ValueError(f"unknown registry kind {kind!r} (kinds: {', '.join(_ENTRIES)})")

    def wrap(obj: Any) -> Any:
        _ENTRIES[kind][name] = obj
        return obj
    return wrap


def names(kind: str) -> list[str]:
    """Every registered name of `kind`, built-ins and plugins, sorted."""
    _discover(kind)
    return sorted(_ENTRIES[kind])


def lookup(kind: str, name: str, what: str | None = None) -> Any:
    """The entry `name` of `kind`; an unknown name is a ConfigError naming `what` and the
    choices (e.g. ``what="scoring.semantic.name"``)."""
    _discover(kind)
    if name not in _ENTRIES[kind]:
        label = what or kind.replace("_", " ")
        raise ConfigError(f"{label}: unknown {kind.replace('_', ' ')} {name!r} "
                          f"(available: {', '.join(sorted(_ENTRIES[kind])) or 'none'})")
    return _ENTRIES[kind][name]


def load_plugins(specs: Iterable[str] = ()) -> None:
    """Import plugin modules: `specs` (module names or .py paths), then $UDASA_PLUGINS, then
    the `udasa.plugins` entry points. Each is imported once; a missing one is a ConfigError."""
    env = [s for s in os.environ.get(PLUGIN_ENV, "").split(",") if s.strip()]
    for spec in [*specs, *env]:
        _import_plugin(spec.strip())
    if ENTRY_POINT_GROUP in _LOADED:  # installed packages' plugins: scanned once a process
        return
    _LOADED.add(ENTRY_POINT_GROUP)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.value not in _LOADED:
            _LOADED.add(ep.value)
            ep.load()


def _import_plugin(spec: str) -> None:
    if spec in _LOADED:
        return
    path = Path(spec)
    if spec.endswith(".py"):
        if not path.is_file():
            raise ConfigError(f"--plugin {spec}: no such file")
        module_name = f"udasa_plugin_{path.stem}"
        loader = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(loader)
        sys.modules[module_name] = module
        loader.loader.exec_module(module)
    else:
        try:
            importlib.import_module(spec)
        except ModuleNotFoundError as exc:
            raise ConfigError(f"--plugin {spec}: cannot import ({exc})") from None
    _LOADED.add(spec)


def _discover(kind: str) -> None:
    """Import every module of the kind's built-in packages (once), then the plugins."""
    for package in BUILTIN_PACKAGES[kind]:
        if package in _LOADED:
            continue
        _LOADED.add(package)
        module = importlib.import_module(package)
        for info in pkgutil.walk_packages(getattr(module, "__path__", []), f"{package}."):
            importlib.import_module(info.name)
    load_plugins()
