"""Disks that fill up, for the tests: an injected ENOSPC at one write site, or a real small
filesystem (a tmpfs in a mount namespace of its own).

`full_at(monkeypatch, needle)`: every file written through udasa.files whose name holds
`needle` takes a few bytes, then its write fails with ENOSPC, as a full disk's would.
`full_checkpoint_at(monkeypatch, needle)`: the same for safetensors' own writer (checkpoints).
`full_store(monkeypatch)`: each Store opened from now on may not grow by a page (SQLite's
own SQLITE_FULL, through `PRAGMA max_page_count`).
`small_fs(script, ...)`: runs a shell script with a fresh tmpfs of the given size mounted at
$FS, in a private mount namespace (needs root and `unshare`; `small_fs_missing()` says why
not, for a skip).
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from pathlib import Path

ROOM = 64  # bytes a failing file takes before the disk is "full"


def _enospc(name) -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(name))


class _FillingFile:
    """A real file whose writes fail with ENOSPC once `ROOM` bytes are in it."""

    def __init__(self, f, name):
        self._f, self._name, self._left = f, name, ROOM

    def write(self, data):
        if len(data) > self._left:
            self._f.write(data[:self._left])
            self._left = 0
            self._f.flush()
            raise _enospc(self._name)
        self._left -= len(data)
        return self._f.write(data)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()


def full_at(monkeypatch, needle: str) -> None:
    """Writes through udasa.files to a file whose name holds `needle` fail with ENOSPC."""
    import udasa.files

    def fake_open(file, mode="r", *args, **kwargs):
        f = open(file, mode, *args, **kwargs)  # noqa: SIM115
        if needle in Path(file).name and ("w" in mode or "a" in mode):
            return _FillingFile(f, file)
        return f

    monkeypatch.setattr(udasa.files, "open", fake_open, raising=False)


def full_checkpoint_at(monkeypatch, needle: str) -> None:
    """A checkpoint folder whose path holds `needle`: its weights file is cut short, ENOSPC."""
    import transformers.modeling_utils as mu

    real = mu.safe_save_file

    def fake_save(tensors, filename, metadata=None):
        if needle in str(filename):
            Path(filename).write_bytes(b"\0" * ROOM)
            raise _enospc(filename)
        return real(tensors, filename, metadata=metadata)

    monkeypatch.setattr(mu, "safe_save_file", fake_save)


def full_store(monkeypatch) -> None:
    """Stores opened from now on cannot grow: a write that needs a new page gets SQLITE_FULL."""
    from udasa.store import Store

    real = Store.__init__

    def capped(self, workspace):
        real(self, workspace)
        pages = self.db.conn.execute("PRAGMA page_count").fetchone()[0]
        self.db.conn.execute(f"PRAGMA max_page_count = {pages}")

    monkeypatch.setattr(Store, "__init__", capped)


def small_fs_missing() -> str | None:
    """Why a small filesystem cannot be mounted here (None: it can)."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return "mounting a small tmpfs needs root and unshare"
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                            "mount -t tmpfs -o size=1m tmpfs /mnt && umount /mnt"],
                           capture_output=True, text=True, check=False)
    return None if probe.returncode == 0 else f"cannot mount a tmpfs: {probe.stderr.strip()}"


FILL = """fill() {  # leave $1 bytes free on $FS
  avail=$(df --output=avail -B1 "$FS" | tail -1)
  head -c $((avail - $1)) /dev/zero > "$FS/filler" 2>/dev/null || true
}
leftovers() { find "$FS" \\( -name '.*.tmp' -o -name '*.partial' \\) -printf '%P\\n'; }
"""


def small_fs(script: str, size_mb: int, out: Path, env: dict | None = None,
             timeout: int = 900) -> subprocess.CompletedProcess:
    """Run `script` (sh) with a `size_mb` tmpfs at $FS and the shell functions `fill FREE` and
    `leftovers`; $OUT is `out` (outside the tmpfs: copy there what the test inspects)."""
    out.mkdir(parents=True, exist_ok=True)
    mount = out / "fs"
    mount.mkdir()
    body = (f"set -u\nmount -t tmpfs -o size={size_mb}m tmpfs \"$FS\"\n{FILL}\n{script}")
    return subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", body],
                          env=os.environ | (env or {}) | {"FS": str(mount), "OUT": str(out)},
                          capture_output=True, text=True, timeout=timeout, check=False)
