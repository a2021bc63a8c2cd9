"""A damaged store is refused with one line naming it and what is wrong, and is left exactly
as it was (every byte), by the commands that write, by `udasa check` and by the readers.

Damage done to a copy of a real store (a finished tiny run): cut short in the middle of a page
and at a page boundary, pages zeroed inside it, its first page zeroed, another file type (gzip,
text) in its place, and a store written by a newer UDASA.
"""

from __future__ import annotations

import gzip
import hashlib
import re
import shutil
import sqlite3
from contextlib import closing

import pytest
from conftest import REPO

from udasa.cli import main
from udasa.store import Store

CONFIG = REPO / "configs" / "cpu-demo.yaml"


@pytest.fixture(scope="module")
def sound(tmp_path_factory, tiny_run, tiny_policy):
    """A copy of the tiny run's workspace, its WAL folded into the store file."""
    ws = shutil.copytree(tiny_run, tmp_path_factory.mktemp("sound") / "ws")
    with closing(sqlite3.connect(ws / Store.FILENAME)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return ws, tiny_policy


def page_size(path) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute("PRAGMA page_size").fetchone()[0]


def _zero(data: bytes, start: int, length: int) -> bytes:
    return data[:start] + bytes(length) + data[start + length:]


def damage(kind: str, path) -> None:
    data = path.read_bytes()
    page = page_size(path)
    if kind == "cut-mid-page":
        path.write_bytes(data[:len(data) - page // 2])
    elif kind == "cut-at-a-page":
        path.write_bytes(data[:3 * page])
    elif kind == "zeroed-pages":
        path.write_bytes(_zero(data, page, 4 * page))  # pages 2-5: the first tables' roots
    elif kind == "zeroed-first-page":
        path.write_bytes(_zero(data, 0, page))
    elif kind == "gzip":
        path.write_bytes(gzip.compress(data))
    elif kind == "text":
        path.write_text("prompt,reply\nhello,world\n")
    elif kind == "newer-schema":
        with closing(sqlite3.connect(path)) as conn, conn:
            conn.execute("update schema_versions set version = 99 where package = 'udasa'")


# kind -> the reason the error line must give
REASONS = {
    "cut-mid-page": "truncated or padded",
    "cut-at-a-page": r"truncated: [\d,]+ bytes, but its header says \d+ pages",
    "zeroed-pages": r"(quick|integrity)_check: (database disk image is malformed|\*\*\* in)",
    "zeroed-first-page": "its first page is all zero bytes",
    "gzip": "not an SQLite database: gzip data",
    "text": "not an SQLite database: it starts with 'prompt,reply",
    "newer-schema": r"written by a newer UDASA \(udasa tables at schema version 99",
}
# what only a check of every page finds is caught by the commands that write and by
# `udasa check`; a reader that never reads the damaged pages has nothing to refuse
HEADER_KINDS = [k for k in REASONS if k != "zeroed-pages"]


def commands(ws, policy: str, out) -> dict[str, tuple]:
    from evals.cli import main as eval_main

    steps = ["--config", str(CONFIG), "--workspace", str(ws), "--set",
             f"generation.model={policy}", "--set", "data.limit=2"]
    return {
        "udasa generate": (main, ["generate", *steps]),
        "udasa run": (main, ["run", *steps]),
        "udasa check": (main, ["check", "--workspace", str(ws)]),
        "udasa export-pairs": (main, ["export-pairs", "--workspace", str(ws), "--out", str(out)]),
        "udasa-eval run": (eval_main, ["run", "--models", "base", "--tasks", "harmlessness",
                                       "--limit", "1", "--workspace", str(ws)]),
    }


def fingerprint(ws) -> dict[str, str]:
    """The store file and its WAL, byte for byte (an empty WAL counts as none; not the -shm
    index, which holds no data: SQLite rebuilds it for every reader)."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in ws.iterdir()
            if p.name.startswith(Store.FILENAME) and not p.name.endswith("-shm")
            and (p.stat().st_size or not p.name.endswith("-wal"))}


@pytest.mark.parametrize("kind", list(REASONS))
def test_damaged_store_is_refused_with_one_line_and_left_unchanged(kind, sound, tmp_path,
                                                                  capsys):
    src, policy = sound
    ws = tmp_path / "ws"
    shutil.copytree(src, ws)
    damage(kind, ws / Store.FILENAME)
    before = fingerprint(ws)
    for name, (cli, argv) in commands(ws, policy, tmp_path / "out").items():
        if kind not in HEADER_KINDS and name == "udasa export-pairs":
            continue
        code = cli(argv)
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err, name
        lines = [x for x in (out + err).splitlines() if x.startswith("error:")]
        assert code == 2 and len(lines) == 1, (name, out + err)
        assert str(ws / Store.FILENAME) in lines[0], (name, lines)
        assert re.search(REASONS[kind], lines[0]), (name, lines)
        assert fingerprint(ws) == before, name
    assert not (tmp_path / "out").exists()
