"""Is a store file sound? Checked without writing a byte to it.

`header_problem` reads the file's first 100 bytes (SQLite's header: the magic string, the page
size, the page count) and its size: another file type, a truncated or padded file. `check`
adds SQLite's own `quick_check` (every page's structure) or `integrity_check` (also indexes
against tables) over a read-only connection. A damaged store is a `DamagedStore` error naming
the file and what is wrong with it, and is left exactly as it was: nothing opens it for writing.
`store_errors` turns what SQLite raises later (a full disk, a read-only place, a page found
damaged while reading) into the same one-line errors.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from urllib.parse import quote

from udasa.errors import DataError, UdasaError
from udasa.files import disk_reason, write_failure

MAGIC = b"SQLite format 3\x00"
_DAMAGED = ("file is not a database", "malformed", "corrupt")
_FILE_TYPES = {b"\x1f\x8b": "gzip data", b"PK\x03\x04": "a zip archive", b"%PDF": "a PDF",
               b"\x89PNG": "a PNG image", b"{": "JSON text", b"[": "JSON text"}


class DamagedStore(DataError):
    """The store file is not a sound SQLite database; it was left as it is."""


def damaged(path: Path, problem: str) -> DamagedStore:
    ws = path.parent
    return DamagedStore(f"{path}: damaged store ({problem}); it was left exactly as it was: "
                        f"`udasa check --workspace {ws}` reports on it; restore it from a copy or "
                        "move it away to start the workspace afresh")


def _what_it_is(head: bytes) -> str:
    for magic, name in _FILE_TYPES.items():
        if head.startswith(magic):
            return name
    printable = head[:16].decode("ascii", "replace")
    return f"it starts with {printable!r}"


def header_problem(path: Path) -> str | None:
    """What is wrong with the file's header or size (None: it looks like a whole store, or
    there is no file yet; an empty file is a store not yet written, as SQLite sees it)."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(100)
    except FileNotFoundError:
        return None
    if size == 0:
        return None
    if not head.startswith(MAGIC):
        if head.strip(b"\x00") == b"":
            return "not an SQLite database: its first page is all zero bytes"
        return f"not an SQLite database: {_what_it_is(head)}"
    if len(head) < 100:
        return f"truncated: {size} bytes, shorter than SQLite's 100-byte header"
    page = int.from_bytes(head[16:18], "big")
    page = 65536 if page == 1 else page
    if page < 512 or page & (page - 1):
        return f"its header gives an impossible page size ({page})"
    if size % page:
        return f"truncated or padded: {size} bytes is not a whole number of {page}-byte pages"
    pages = int.from_bytes(head[28:32], "big")
    valid = pages and head[24:28] == head[92:96]  # the in-header size is current
    if valid and size < pages * page:
        return (f"truncated: {size:,} bytes, but its header says {pages} pages of {page} bytes "
                f"({pages * page:,} bytes)")
    return None


def read_only(path: Path) -> sqlite3.Connection:
    """A connection that cannot write to `path`. On a read-only place, where SQLite cannot
    open the WAL's shared-memory index, the file is read as immutable: as of its last
    checkpoint (nothing can be writing to it there)."""
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    conn = sqlite3.connect(uri, uri=True)
    try:
        conn.execute("select count(*) from sqlite_master").fetchone()
        return conn
    except sqlite3.OperationalError as exc:
        conn.close()
        if "unable to open" not in str(exc):
            raise
    return sqlite3.connect(uri + "&immutable=1", uri=True)


def sqlite_problems(path: Path, full: bool = False, limit: int = 10) -> list[str]:
    """SQLite's quick_check (`full`: integrity_check) of `path`, read-only: [] when sound."""
    pragma = "integrity_check" if full else "quick_check"
    try:
        with closing(read_only(path)) as conn:
            rows = [r[0] for r in conn.execute(f"PRAGMA {pragma}({limit})")]
    except sqlite3.DatabaseError as exc:
        return [str(exc)]
    return [] if rows == ["ok"] else rows


def check(path: Path, full: bool = False) -> None:
    """DamagedStore when `path` (an existing store, or none yet) is not sound."""
    problem = header_problem(path)
    if problem is None and path.is_file() and path.stat().st_size:
        found = sqlite_problems(path, full)
        if found:
            more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
            problem = f"{'integrity' if full else 'quick'}_check: {found[0]}{more}"
    if problem:
        raise damaged(path, problem)


def as_store_error(path: Path, exc: sqlite3.DatabaseError) -> UdasaError | None:
    """What SQLite's `exc` means for the store at `path`, as a one-line error: a full disk or
    read-only place (WriteError), a damaged file (DamagedStore); None for anything else (a
    busy store, a bug of ours)."""
    reason = disk_reason(exc)
    if reason is not None or "unable to open database file" in str(exc):
        return write_failure(path, reason or "cannot open or create it here")
    if any(word in str(exc) for word in _DAMAGED):
        return damaged(path, str(exc))
    return None


@contextmanager
def store_errors(path: Path) -> Iterator[None]:
    """SQLite errors inside raised as `as_store_error` words them (others as they are)."""
    try:
        yield
    except sqlite3.DatabaseError as exc:
        known = as_store_error(path, exc)
        if known is None:
            raise
        raise known from None
