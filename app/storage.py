"""The app's door to the workspace store: one connection per request, retried when busy.

SQLite connections belong to one thread and Gradio answers requests on a thread pool, so every
request opens its own `Store` and closes it. Reads of a workspace with no store yet return
None (the views show an empty state) instead of creating a file; writes create it. The store
runs in WAL mode with a busy timeout; a write that still meets SQLITE_BUSY ("database is
locked") is retried with jittered back-off, so concurrent annotators lose no rating.
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from udasa.store import Store

T = TypeVar("T")


def _busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


class Workspace:
    """A workspace directory; `read()` / `write()` hand out a short-lived Store."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @property
    def db_path(self) -> Path:
        return self.path / Store.FILENAME

    def exists(self) -> bool:
        return self.db_path.is_file()

    @contextmanager
    def read(self) -> Iterator[Store | None]:
        """The store, or None when the workspace has none yet (nothing is created)."""
        if not self.exists():
            yield None
            return
        store = Store(self.path)
        try:
            yield store
        finally:
            store.close()

    def write(self, fn: Callable[[Store], T], attempts: int = 8, delay: float = 0.05) -> T:
        """Run `fn(store)` on a fresh store, retrying on SQLITE_BUSY with jittered back-off."""
        for attempt in range(attempts):
            store = None
            try:
                store = Store(self.path)
                return fn(store)
            except sqlite3.OperationalError as exc:
                if not _busy(exc) or attempt == attempts - 1:
                    raise
                time.sleep(delay * (2 ** attempt) * (0.5 + random.random()))
            finally:
                if store is not None:
                    store.close()
        raise AssertionError("unreachable")
