"""Reading the small settings files a user hands a command (run, judge, GCG, robustness and
baseline configs, the app's users file): every failure is a one-line `ConfigError` naming the
file and, where there is one, the line.

Checked before parsing: the file exists, is not empty, is at most `MAX_SETTINGS_BYTES` (a YAML
parser would take minutes over a 100 MB line) and is UTF-8.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from udasa.errors import ConfigError

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
