"""One loader for every YAML settings file: typed dataclasses, `base:` inheritance, `--set`.

Every kind of settings file (run configs, GCG, baseline, robustness and judge configs,
experiment files, a method's decoder options) goes through :func:`load_config_file`:

1. the file is read as YAML (`udasa.files`: missing, empty, over 1 MB, not UTF-8 or not YAML
   is a one-line error naming the file and line);
2. a top-level ``base: other.yaml`` (relative to the file) is read first and the file's own
   fields are merged over it, section by section, through any chain of bases;
3. ``key.sub=value`` overrides (``--set``) are applied, each value parsed as YAML
   (``n=3`` is an int, ``axes=[sem,fact]`` a list, ``model=null`` None);
4. the mapping becomes the dataclass tree (cattrs): a wrong type, an unknown or missing field,
   or a value outside a ``Literal[...]`` field's choices is an error; then the class's own
   ``validate()`` (ranges, cross-field rules) runs.

Every failure is a :class:`udasa.errors.ConfigError` whose message names the file and the
dotted field: ``configs/x.yaml: training.reference: 'prev' is not one of 'initial',
'previous'``. An error in a field that an override set names the field alone (the file is
not at fault).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import typing
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from cattrs import Converter
from cattrs.cols import list_structure_factory
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError, IterableValidationError
from cattrs.gen import make_dict_structure_fn, mapping_structure_factory

from udasa.errors import ConfigError, UdasaError

T = TypeVar("T")
Prepare = Callable[[dict[str, Any], Path], dict[str, Any]]


class FieldError(ConfigError):
    """A ConfigError about one field: `field` is its dotted path (``training.reference``)."""

    def __init__(self, field: str, why: str, file: str | Path | None = None):
        where = [str(p) for p in (file, field) if p]
        super().__init__(": ".join([*where, why]))
        self.field, self.why, self.file = field, why, file


def require(ok: bool, field: str, why: str) -> None:
    """Raise FieldError(`field`, `why`) unless `ok` (for `validate()` range checks)."""
    if not ok:
        raise FieldError(field, why)


# --------------------------------------------------------------------------- reading

def read_config_data(path: str | Path, what: str = "config file", prepare: Prepare | None = None,
                     _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The file's mapping with its `base:` chain merged under it (each base relative to the
    file naming it). `prepare(data, file)` adjusts each file's own fields before the merge
    (e.g. makes its relative paths absolute)."""
    from udasa.files import read_settings

    path = Path(path)
    if path.is_file() and path.resolve() in _seen:
        raise FieldError("base", f"the chain loops back to {path}", _seen[-1])
    data = read_settings(path, what)
    data = {} if data is None else data  # only comments: every field keeps its default
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of fields at the top level, got "
                          f"{type(data).__name__}")
    data = prepare(data, path) if prepare else data
    if "base" not in data:
        return data
    base = data.pop("base")
    if not isinstance(base, str) or not base.strip():
        raise FieldError("base", f"expected the name of a file, got {_show(base)}", path)
    try:
        inherited = read_config_data(path.parent / base, what, prepare, (*_seen, path.resolve()))
    except FieldError:
        raise  # a bad `base:` further up the chain, naming the file that holds it
    except ConfigError as exc:
        raise FieldError("base", str(exc), path) from None
    return merge_sections(inherited, data)


def merge_sections(base: Any, top: Any) -> Any:
    """`top` over `base`: mappings merge key by key (recursively), anything else replaces."""
    if isinstance(base, dict) and isinstance(top, dict):
        return {k: merge_sections(base[k], v) if k in base else v for k, v in top.items()} | {
            k: v for k, v in base.items() if k not in top}
    return top


# --------------------------------------------------------------------------- overrides

def parse_value(raw: str, item: str, flag: str = "override") -> Any:
    """An override's value as YAML (``3`` -> 3, ``[a, b]`` -> a list, ``null`` -> None)."""
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{flag} {item!r}: the value is not valid YAML ({problem})") from None


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """A copy of `data` with each ``key.sub=value`` set (a number in the key indexes a list)."""
    out = copy.deepcopy(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        parts = key.strip().split(".")
        if not sep or not all(parts):
            raise ConfigError(f"override {item!r}: expected key.sub=value")
        node: Any = out
        for part in parts[:-1]:
            node = _child(node, part, item)
        _assign(node, parts[-1], parse_value(raw, item), item)
    return out


def _child(node: Any, part: str, item: str) -> Any:
    if isinstance(node, list) and part.isdigit() and int(part) < len(node):
        child = node[int(part)]
    elif isinstance(node, dict):
        child = node.setdefault(part, {})
    else:
        child = None
    if not isinstance(child, dict | list):
        raise ConfigError(f"override {item!r}: {part} is not a section")
    return child


def _assign(node: Any, part: str, value: Any, item: str) -> None:
    if isinstance(node, list):
        if not (part.isdigit() and int(part) < len(node)):
            raise ConfigError(f"override {item!r}: {part} is not an index of that list")
        node[int(part)] = value
    else:
        node[part] = value


def override_keys(overrides: Sequence[str]) -> list[str]:
    """The dotted keys the overrides set."""
    return [item.partition("=")[0].strip() for item in overrides]


# --------------------------------------------------------------------------- building

def build(tp: type[T], data: Any, where: str = "") -> T:
    """`data` (plain YAML data) as `tp`, a dataclass or a container of them: unknown,
    missing and mistyped fields and values outside a Literal's choices are FieldErrors
    (their field prefixed by `where`). A section given in part keeps the field's default for
    the rest (`generation: {model: x}` keeps the default `n`)."""
    try:
        return _converter().structure(_with_section_defaults(tp, data), tp)
    except (ClassValidationError, IterableValidationError) as exc:
        parts, error = _first_error(exc)
    except (TypeError, ValueError) as exc:  # a hook's own check of the top-level value
        parts, error = (), exc
    if isinstance(error, ForbiddenExtraKeysError):
        known = ", ".join(sorted(f.name for f in dataclasses.fields(error.cl)))
        parts = (*parts, min(map(str, error.extra_fields)))
        why = f"unknown field (known: {known})"
    elif isinstance(error, KeyError):
        why = "missing (a required field)"
    else:
        why = str(error)
    raise FieldError(_dotted(where, parts), why) from None


def _first_error(exc: BaseException, parts: tuple = ()) -> tuple[tuple, BaseException]:
    """The path to the first failure in cattrs' nested exception groups (unknown fields
    first: a misspelt key is the likelier cause of a missing one)."""
    if not isinstance(exc, ClassValidationError | IterableValidationError):
        return parts, exc
    noted, plain = exc.group_exceptions()
    plain.sort(key=lambda e: not isinstance(e, ForbiddenExtraKeysError))
    if plain and isinstance(plain[0], ForbiddenExtraKeysError):
        return parts, plain[0]
    if noted:
        sub, note = noted[0]
        step = note.name if isinstance(exc, ClassValidationError) else note.index
        return _first_error(sub, (*parts, step))
    return _first_error(plain[0], parts)


def _dotted(where: str, parts: tuple) -> str:
    out = where
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _strict(tp: type) -> Callable[[Any, Any], Any]:
    """YAML scalars as they are: no "5" -> 5, no True -> 1; an int is a float too."""
    def hook(value: Any, _: Any) -> Any:
        if tp is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
            raise TypeError(f"expected {tp.__name__}, got {_show(value)}")
        return value
    return hook


def _literal(value: Any, tp: Any) -> Any:
    choices = typing.get_args(tp)
    if value not in choices or isinstance(value, bool) != isinstance(choices[0], bool):
        raise ValueError(f"{_show(value)} is not one of {', '.join(map(repr, choices))}")
    return value


def _guarded(factory: Callable, kind: type, name: str) -> Callable:
    """`factory`'s hook, after checking the value is a `kind` (a string is no list)."""
    def make(tp: Any, converter: Converter) -> Callable[[Any, Any], Any]:
        inner = factory(tp, converter)

        def hook(value: Any, cl: Any) -> Any:
            if not isinstance(value, kind):
                raise TypeError(f"expected {name}, got {_show(value)}")
            return inner(value, cl)
        return hook
    return make


def _origin_is(*origins: type) -> Callable[[Any], bool]:
    return lambda tp: typing.get_origin(tp) in origins


@functools.cache
def _converter() -> Converter:
    conv = Converter(forbid_extra_keys=True, detailed_validation=True)
    for tp in (int, float, str, bool):
        conv.register_structure_hook(tp, _strict(tp))
    conv.register_structure_hook_func(lambda tp: typing.get_origin(tp) is Literal, _literal)
    conv.register_structure_hook_factory(_origin_is(list), _guarded(
        list_structure_factory, list, "a list"))
    conv.register_structure_hook_factory(_origin_is(dict), _guarded(
        mapping_structure_factory, dict, "a mapping"))
    conv.register_structure_hook_factory(dataclasses.is_dataclass, _guarded(
        make_dict_structure_fn, dict, "a mapping"))
    return conv


def _with_section_defaults(tp: Any, data: Any) -> Any:
    """`data` with each partly given dataclass section laid over its field's default."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is list and isinstance(data, list):
        return [_with_section_defaults(args[0], v) for v in data]
    if origin is dict and isinstance(data, dict):
        return {k: _with_section_defaults(args[1], v) for k, v in data.items()}
    if not (dataclasses.is_dataclass(tp) and isinstance(data, dict)):
        return data
    hints = typing.get_type_hints(tp)
    out = dict(data)
    for f in dataclasses.fields(tp):
        value = data.get(f.name)
        if dataclasses.is_dataclass(hints[f.name]) and isinstance(value, dict) and \
                f.default_factory is not dataclasses.MISSING:
            value = dataclasses.asdict(f.default_factory()) | value
        if f.name in data:
            out[f.name] = _with_section_defaults(hints[f.name], value)
    return out


def check_choices(obj: Any, where: str = "") -> None:
    """The Literal fields of dataclass `obj` (and of its sections) hold one of their choices:
    the loader checks files, this checks configs built in code (from `validate()`)."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value, path = getattr(obj, f.name), _dotted(where, (f.name,))
        if typing.get_origin(hints[f.name]) is Literal:
            try:
                _literal(value, hints[f.name])
            except ValueError as exc:
                raise FieldError(path, str(exc)) from None
        elif dataclasses.is_dataclass(value):
            check_choices(value, path)


# --------------------------------------------------------------------------- the loader

def load_config_file(cls: type[T], path: str | Path | None = None,
                     overrides: Sequence[str] = (), what: str = "config file",
                     overrides_from: str | None = None) -> T:
    """`cls` from the YAML file at `path` (None: the defaults) with `base:` inheritance and
    ``key.sub=value`` overrides, then its `validate()`, if it has one. Every error is a
    ConfigError naming the file (or `overrides_from`, for a field an override set) and the
    dotted field."""
    data = read_config_data(path, what) if path is not None else {}
    return check_config(cls, data, path, overrides, overrides_from)


def check_config(cls: type[T], data: dict[str, Any], path: str | Path | None = None,
                 overrides: Sequence[str] = (), overrides_from: str | None = None) -> T:
    """`cls` from already read file data (see :func:`load_config_file`)."""
    merged = apply_overrides(data, overrides)
    with blamed_on(path, overrides, overrides_from):
        cfg = build(cls, merged)
        if hasattr(cfg, "validate"):
            cfg.validate()
        return cfg


@contextmanager
def blamed_on(path: str | Path | None, overrides: Sequence[str] = (),
              overrides_from: str | None = None) -> Iterator[None]:
    """Prefix a ConfigError with the file, or with `overrides_from` when an override set the
    field at fault (with neither, the message names the field alone)."""
    try:
        yield
    except UdasaError as exc:
        field = getattr(exc, "field", None)
        source = overrides_from if _set_by(field, override_keys(overrides)) else path
        if source is None or str(exc).startswith(f"{source}:"):
            raise
        if isinstance(exc, FieldError):
            raise FieldError(exc.field, exc.why, source) from None
        raise ConfigError(f"{source}: {exc}") from None


def _set_by(field: str | None, keys: Sequence[str]) -> bool:
    if not field:
        return False
    field = field.replace("[", ".").replace("]", "")
    return any(field == k or field.startswith(f"{k}.") or k.startswith(f"{field}.")
               for k in keys)
