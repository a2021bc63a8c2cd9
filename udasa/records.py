"""Plain typed records passed between pipeline steps."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any


def content_key(*parts: str) -> str:
    """Stable 16-hex key of some strings (used for content-keyed store rows)."""
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode("utf-8"))
        h.update(b"\x1f")
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class Prompt:
    """One prompt, with where it came from (`origin` names file and row for error messages)."""

    text: str
    source: str
    origin: str = ""
    category: str = ""
    meta: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @property
    def id(self) -> str:
        return content_key(self.text)


@dataclass(frozen=True)
class Skip:
    """A row left out of a load, with the reason (logged, never silent)."""

    origin: str
    reason: str


@dataclass
class LoadResult:
    prompts: list[Prompt]
    skipped: list[Skip] = field(default_factory=list)
