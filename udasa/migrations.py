"""Schema versions: each package's tables are at a version recorded in the store itself.

The `schema_versions` table holds one row per package. A store written before versions
existed has none: every package whose tables it holds is at version 1. Opening a store runs
the missing migrations of each declared package, then creates its missing tables, all in one
transaction (a killed open changes nothing). A store written by newer code than this (a
version above the one this code knows) is refused before anything is written to it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import sqlite_utils

from udasa.errors import DataError
from udasa.store_schema import Schema, Table

VERSIONS = "schema_versions"


def _table_names(db: sqlite_utils.Database) -> set[str]:
    return {name for (name,) in db.conn.execute(
        "select name from sqlite_master where type = 'table'")}


def recorded_versions(db: sqlite_utils.Database) -> dict[str, int]:
    """Each package's recorded version (none recorded: an empty dict)."""
    if VERSIONS not in _table_names(db):
        return {}
    return dict(db.conn.execute(f"select package, version from {VERSIONS}").fetchall())


def version_in(db: sqlite_utils.Database, schema: Schema) -> int | None:
    """The version of `schema`'s tables in the store: as recorded; else 1 where any of them
    is there (written before versions); else None (none of its tables yet)."""
    recorded = recorded_versions(db)
    if schema.package in recorded:
        return recorded[schema.package]
    existing = _table_names(db)
    return 1 if any(t.name in existing for t in schema.tables) else None


def refuse_newer(db: sqlite_utils.Database, path: Path, schemas: Iterable[Schema]) -> None:
    """DataError naming `path` when it holds tables of a newer version than this code's."""
    for schema in schemas:
        found = version_in(db, schema)
        if found is not None and found > schema.version:
            raise DataError(f"{path}: written by a newer UDASA ({schema.package} tables at "
                            f"schema version {found}, this code knows up to {schema.version});"
                            " open it with that version or newer")


def _up_to_date(db: sqlite_utils.Database, schema: Schema) -> bool:
    existing = _table_names(db)
    return (recorded_versions(db).get(schema.package) == schema.version
            and all(t.name in existing for t in schema.tables))


def _create(db: sqlite_utils.Database, table: Table) -> None:
    db[table.name].create(table.record.columns(), pk=table.pk, if_not_exists=True)
    for columns in table.indexes:
        db[table.name].create_index(list(columns), if_not_exists=True)


def _upgrade(db: sqlite_utils.Database, schema: Schema) -> None:
    found = version_in(db, schema)
    for migration in schema.migrations:
        if found is not None and migration.version > found:
            migration.apply(db)
    for table in schema.tables:
        _create(db, table)
    db[VERSIONS].create({"package": str, "version": int}, pk="package", if_not_exists=True)
    db[VERSIONS].insert({"package": schema.package, "version": schema.version},
                        pk="package", replace=True)


def apply_schemas(db: sqlite_utils.Database, path: Path, schemas: Iterable[Schema]) -> None:
    """Bring each schema's tables to its version: migrations, then missing tables, then the
    recorded version, in one transaction; nothing is written when all are up to date."""
    todo = [s for s in schemas if not _up_to_date(db, s)]
    if not todo:
        return
    db.conn.execute("BEGIN IMMEDIATE")  # one writer migrates; the others wait, then see it done
    try:
        refuse_newer(db, path, todo)
        for schema in todo:
            if not _up_to_date(db, schema):
                _upgrade(db, schema)
    except BaseException:
        db.conn.rollback()
        raise
    db.conn.commit()
