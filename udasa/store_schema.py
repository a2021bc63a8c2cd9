"""Typed store rows and table declarations: what a package tells the store about its tables.

A record is a dataclass subclassing `Record` whose fields are a table's columns, in order.
JSON columns (`json_field`: dicts, lists) and boolean columns (`bool_field`) are encoded in
`Record.to_row` and decoded in `Record.from_row`, and nowhere else. A package declares its
tables beside the code that writes them::

    MINE = declare(Schema("mypackage", (Table("things", Thing, pk="id"),),
                          migrations=(Migration(2, add_colour, "things.colour"),)))

Every Store applies the declared schemas when it opens (and `Store.ensure` applies one
declared later), so the core package never imports the packages above it.
`udasa.migrations` keeps each package's schema version in the store.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Self

if typing.TYPE_CHECKING:
    import sqlite_utils

_CODEC = "codec"
_JSON, _BOOL, _JOINED = "json", "bool", "joined"


def json_field(default_factory: Callable[[], Any] = dict, *, sort_keys: bool = False,
               **options: Any) -> Any:
    """A column holding JSON text in the store and the decoded value in the record."""
    return field(default_factory=default_factory, **options,
                 metadata={_CODEC: _JSON, "sort_keys": sort_keys})


def bool_field(default: bool | None = False) -> Any:
    """A column holding 0 / 1 in the store and a bool in the record."""
    return field(default=default, metadata={_CODEC: _BOOL})


def joined_field(default: str = "") -> Any:
    """A value a read joins in from another table: not a column of the record's own."""
    return field(default=default, metadata={_CODEC: _JOINED})


def _codec(f: dataclasses.Field) -> str | None:
    return f.metadata.get(_CODEC)


def _encode(f: dataclasses.Field, value: Any) -> Any:
    if _codec(f) == _JSON:
        return json.dumps(value, sort_keys=f.metadata["sort_keys"])
    if _codec(f) == _BOOL:
        return None if value is None else int(value)
    return value


def _decode(f: dataclasses.Field, value: Any) -> Any:
    if _codec(f) == _JSON:
        return json.loads(value) if value else f.default_factory()  # type: ignore[misc]
    if _codec(f) == _BOOL:
        return None if value is None else bool(value)
    return value


def _sql_type(f: dataclasses.Field, hint: Any) -> type:
    if _codec(f) == _JSON:
        return str
    if _codec(f) == _BOOL:
        return int
    if isinstance(hint, types.UnionType):  # `float | None`: the column's type is float
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    return hint


class Record:
    """Base of a typed store row (a dataclass): its fields are the table's columns."""

    @classmethod
    def columns(cls) -> dict[str, type]:
        """Column name -> Python type (str, int, float), in field order."""
        hints = typing.get_type_hints(cls)
        return {f.name: _sql_type(f, hints[f.name]) for f in fields(cls)  # type: ignore[arg-type]
                if _codec(f) != _JOINED}

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Self:
        """The record of a stored row (JSON and bool columns decoded; other keys ignored)."""
        return cls(**{f.name: _decode(f, row[f.name])  # type: ignore[arg-type]
                      for f in fields(cls) if f.init and f.name in row})  # type: ignore[arg-type]

    @classmethod
    def encode_fields(cls, **values: Any) -> dict[str, Any]:
        """The stored form of some fields' values (for an update of those columns only)."""
        by_name = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
        return {name: _encode(by_name[name], v) for name, v in values.items()}

    def to_row(self) -> dict[str, Any]:
        """The row to store (JSON and bool columns encoded, joined values left out)."""
        return {f.name: _encode(f, getattr(self, f.name))
                for f in fields(self) if _codec(f) != _JOINED}  # type: ignore[arg-type]

    def as_dict(self) -> dict[str, Any]:
        """Every field by name, values as decoded (for code that works on plain rows)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]


def as_rows(records: Iterable[Record]) -> list[dict[str, Any]]:
    """`Record.as_dict` of each record: for table builders that take plain rows."""
    return [r.as_dict() for r in records]


@dataclass(frozen=True)
class Table:
    """One table: its name, the record of its rows, primary key and extra indexes."""

    name: str
    record: type[Record]
    pk: str | tuple[str, ...]
    indexes: tuple[tuple[str, ...], ...] = ()


@dataclass(frozen=True)
class Migration:
    """Brings a package's tables from version `version - 1` to `version` (in a transaction)."""

    version: int
    apply: Callable[[sqlite_utils.Database], None]
    about: str


@dataclass(frozen=True)
class Schema:
    """A package's tables and the ordered migrations that led to them (version 1: none)."""

    package: str
    tables: tuple[Table, ...]
    migrations: tuple[Migration, ...] = ()

    def __post_init__(self) -> None:
        found = [m.version for m in self.migrations]
        if found != list(range(2, len(found) + 2)):
            raise ValueError(f"schema {self.package}: migrations must be versions 2, 3, ... "
                             f"in order (got {found})")

    @property
    def version(self) -> int:
        return len(self.migrations) + 1


_DECLARED: dict[str, Schema] = {}


def declare(schema: Schema) -> Schema:
    """Make every Store opened from now on hold `schema`'s tables (returns `schema`)."""
    _DECLARED[schema.package] = schema
    return schema


def declared() -> list[Schema]:
    """The schemas declared so far, in declaration order."""
    return list(_DECLARED.values())
