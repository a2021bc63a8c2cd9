"""Files in and out. Reading the small settings files a user hands a command (run, judge, GCG,
robustness and baseline configs, the app's users file): every failure is a one-line
`ConfigError` naming the file and, where there is one, the line. Writing every output file
whole or not at all (`atomic_write` and the helpers over it): a full or read-only disk is a
one-line `WriteError` naming the file, and no half-written file is left behind.

Checked before parsing: the file exists, is not empty, is at most `MAX_SETTINGS_BYTES` (a YAML
parser would take minutes over a 100 MB line) and is UTF-8.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any

import yaml

from udasa.errors import ConfigError, UdasaError

MAX_SETTINGS_BYTES = 1_000_000


def read_settings_text(path: str | Path, what: str = "config file") -> str:
    """The text of a settings file, or a ConfigError saying why it cannot be one."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: {what} not found" + (" (a folder)" if p.is_dir() else ""))
    size = p.stat().st_size
    if size == 0:
        raise ConfigError(f"{p}: {what} is empty")
    if size > MAX_SETTINGS_BYTES:
        raise ConfigError(f"{p}: {what} is {size:,} bytes; at most {MAX_SETTINGS_BYTES:,} "
                          "are read (is this the right file?)")
    data = p.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise ConfigError(f"{p}: line {line}: not valid UTF-8 (byte offset {e.start})") from None
    if not text.strip():
        raise ConfigError(f"{p}: {what} is empty")
    return text


def read_settings(path: str | Path, what: str = "config file") -> Any:
    """A YAML (or JSON) settings file parsed; a syntax error names its line and column."""
    text = read_settings_text(path, what)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1} column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: {where}invalid YAML ({problem})") from None


def read_settings_mapping(path: str | Path, what: str = "config file") -> dict[str, Any]:
    """A settings file whose top level must be a mapping of fields."""
    data = read_settings(path, what)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of fields at the top level, got "
                          f"{type(data).__name__}")
    return data


# --- writing: whole files or nothing, and one line when the disk says no ------------------
# errno values that mean "this place cannot be written now" (not a bug of ours)
_DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM,
                errno.EFBIG, errno.EIO}
# the same causes as libraries word them (safetensors' Rust writer, SQLite)
_DISK_WORDS = {"StorageFull": "No space left on device",
               "No space left on device": "No space left on device",
               "ReadOnlyFilesystem": "Read-only file system",
               "Read-only file system": "Read-only file system",
               "PermissionDenied": "Permission denied",
               "database or disk is full": "database or disk is full",
               "attempt to write a readonly database": "read-only store",
               "disk I/O error": "disk I/O error"}


class WriteError(UdasaError):
    """A file or the store could not be written: the disk is full, the place is read-only or
    not ours. Nothing half-written is left; free space (or fix the place) and rerun."""


def disk_reason(exc: BaseException) -> str | None:
    """Why `exc` means the disk refused a write ("No space left on device", ...), else None."""
    if isinstance(exc, OSError) and exc.errno in _DISK_ERRNOS:
        return exc.strerror or os.strerror(exc.errno)
    text = str(exc)
    return next((why for word, why in _DISK_WORDS.items() if word in text), None)


def write_failure(path: str | Path, reason: str) -> WriteError:
    """The one-line error for a write to `path` refused for `reason`."""
    return WriteError(f"{path}: cannot write ({reason}); nothing half-written was left: free "
                      "space or make the place writable, then rerun (finished work is kept)")


@contextmanager
def writing(path: str | Path) -> Iterator[None]:
    """Library writes into `path` (a folder or file) inside: a disk refusal becomes WriteError."""
    try:
        yield
    except UdasaError:
        raise
    except Exception as exc:
        reason = disk_reason(exc)
        if reason is None:
            raise
        raise write_failure(path, reason) from None


def _discard(path: Path) -> None:
    with suppress(OSError):
        path.unlink()


@contextmanager
def atomic_write(path: str | Path, mode: str = "w", **open_args: Any) -> Iterator[IO]:
    """Write `path` whole or not at all: the body writes a temporary file beside it, which is
    flushed to disk and renamed onto `path` when the body finishes. A failure removes the
    temporary and leaves any earlier `path` as it was; a full or read-only disk is a
    WriteError naming `path`."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    if "b" not in mode:
        open_args.setdefault("encoding", "utf-8")
    try:
        with writing(path):
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, mode, **open_args) as f:
                yield f
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
    except BaseException:
        _discard(tmp)
        raise


def write_text(path: str | Path, text: str) -> Path:
    """`path` holds `text` (UTF-8), written atomically (`atomic_write`)."""
    with atomic_write(path) as f:
        f.write(text)
    return Path(path)


def write_bytes(path: str | Path, data: bytes) -> Path:
    """`path` holds `data`, written atomically."""
    with atomic_write(path, "wb") as f:
        f.write(data)
    return Path(path)


def copy_file(src: str | Path, dst: str | Path) -> Path:
    """A copy of `src`'s bytes at `dst`, written atomically (a `copy_function` for
    `shutil.copytree`)."""
    return write_bytes(dst, Path(src).read_bytes())


def write_json(path: str | Path, data: Any, **dumps: Any) -> Path:
    """`path` holds `data` as JSON (indent 2 unless told), written atomically."""
    return write_text(path, json.dumps(data, **({"indent": 2} | dumps)))


def write_jsonl(path: str | Path, rows: Iterable[Any]) -> Path:
    """One JSON object per line (non-ASCII kept), written atomically."""
    with atomic_write(path) as f:
        f.writelines(json.dumps(row, ensure_ascii=False, default=str) + "\n" for row in rows)
    return Path(path)


def save_figure(fig: Any, path: str | Path) -> Path:
    """A matplotlib figure saved atomically, in the format of `path`'s suffix."""
    path = Path(path)
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format=path.suffix.lstrip(".") or "png")
    return path


def save_folder(path: str | Path, *savers: Any) -> Path:
    """A folder written whole or not at all: each saver's `save_pretrained` (a model, its
    tokenizer) writes into `<path>.partial`, which then replaces `path`. A failure removes the
    partial folder; a full or read-only disk is a WriteError naming `path`."""
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    try:
        with writing(path):
            shutil.rmtree(tmp, ignore_errors=True)
            for saver in savers:
                saver.save_pretrained(str(tmp))
            shutil.rmtree(path, ignore_errors=True)
            tmp.rename(path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path
