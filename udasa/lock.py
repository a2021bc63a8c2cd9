"""One writer per workspace: a lock file that every command that writes takes first.

`DIR/udasa.lock` holds the holder's pid, command line, host and start time (JSON), and is held
with an exclusive `flock` for as long as the command runs. The kernel drops a flock when its
process dies, however it dies, so a lock file whose flock nobody holds is stale: the next
writer takes it over and logs whose it was. A second writer while the first is alive stops
before doing anything, with one line naming the holder. Readers (the app, `udasa-eval tables`
and `report`, `udasa check`) take no lock: the store is SQLite in WAL mode, read while written.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shlex
import socket
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from udasa.errors import UdasaError
from udasa.files import writing

log = logging.getLogger(__name__)

LOCK_NAME = "udasa.lock"
_HELD: dict[Path, int] = {}  # workspaces this process holds -> how many holds are nested


class WorkspaceBusy(UdasaError):
    """Another live process is writing to the workspace."""


def describe(holder: dict) -> str:
    """`pid 123 (`udasa run ...`) on host, since 2026-...`: who holds (or held) a lock."""
    where = f" on {holder['host']}" if holder.get("host") not in (None, socket.gethostname()) \
        else ""
    return (f"pid {holder.get('pid', '?')} (`{holder.get('command', '?')}`){where}, since "
            f"{holder.get('since', '?')}")


def _read(fd: int) -> dict:
    os.lseek(fd, 0, os.SEEK_SET)
    raw = os.read(fd, 65536)
    try:
        holder = json.loads(raw) if raw.strip() else {}
    except ValueError:
        holder = {"command": raw[:80].decode("utf-8", "replace")}
    return holder if isinstance(holder, dict) else {}


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == path.stat().st_ino
    except FileNotFoundError:
        return False


def _acquire(path: Path, command: str) -> int:
    """Open and flock `path`; write this process into it. Raises WorkspaceBusy when held."""
    while True:
        with writing(path):
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read(fd)
            os.close(fd)
            raise WorkspaceBusy(
                f"{path.parent}: in use by {describe(holder)}; one command writes to a "
                "workspace at a time: wait for it to finish (or use another --workspace)"
                ) from None
        if _same_file(fd, path):  # not unlinked by a holder that finished meanwhile
            break
        os.close(fd)
    stale = _read(fd)
    if stale:
        log.warning("%s: taking over a stale lock of %s, which is no longer running",
                    path, describe(stale))
    me = {"pid": os.getpid(), "command": command, "host": socket.gethostname(),
          "since": datetime.now(UTC).isoformat(timespec="seconds")}
    try:
        with writing(path):
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(me).encode(), 0)
    except BaseException:
        os.close(fd)
        raise
    return fd


def command_line(argv: Sequence[str] | None = None) -> str:
    """The command as the user typed it (program name without its folder)."""
    argv = list(sys.argv if argv is None else argv)
    return shlex.join([Path(argv[0]).name, *argv[1:]]) if argv else "?"


@contextmanager
def workspace_lock(workspace: str | Path, command: str | None = None) -> Iterator[Path]:
    """Hold `workspace`'s lock inside (re-entrant within a process); yields the lock path."""
    path = (Path(workspace) / LOCK_NAME).resolve()
    if path in _HELD:
        _HELD[path] += 1
        try:
            yield path
        finally:
            _HELD[path] -= 1
        return
    fd = _acquire(path, command or command_line())
    _HELD[path] = 1
    try:
        yield path
    finally:
        del _HELD[path]
        try:
            path.unlink()  # before the flock goes: a waiter then sees the file is gone
        except OSError:  # cannot unlink (read-only now?): the next writer takes it over
            pass
        os.close(fd)


def holder(workspace: str | Path) -> dict | None:
    """Who holds `workspace`'s lock now, as its file says (None: no lock file, or its holder on
    this host is no longer running). Takes no lock itself, so a writer starting meanwhile is
    never turned away."""
    try:
        raw = (Path(workspace) / LOCK_NAME).read_bytes()
        found = json.loads(raw) if raw.strip() else None
    except (OSError, ValueError):
        return None
    if not isinstance(found, dict):
        return None
    if found.get("host") == socket.gethostname() and isinstance(found.get("pid"), int):
        try:
            os.kill(found["pid"], 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
    return found
