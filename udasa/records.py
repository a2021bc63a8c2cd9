"""Plain typed records passed between pipeline steps."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from udasa.store_schema import Record, json_field


def content_key(*parts: str) -> str:
    """Stable 16-hex key of some strings (used for content-keyed store rows)."""
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode("utf-8"))
        h.update(b"\x1f")
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class Prompt(Record):
    """One prompt, with where it came from (`origin` names file and row for error messages).

    Also the row of the store's `prompts` table, keyed by `id` (a content key of the text).
    """

    text: str
    source: str
    origin: str = ""
    category: str = ""
    meta: dict[str, Any] = json_field(hash=False, compare=False)

    @property
    def id(self) -> str:
        return content_key(self.text)

    @classmethod
    def columns(cls) -> dict[str, type]:
        return {"id": str} | super().columns()

    def to_row(self) -> dict[str, Any]:
        return {"id": self.id} | super().to_row()


@dataclass(frozen=True)
class Skip:
    """A row left out of a load, with the reason (logged, never silent)."""

    origin: str
    reason: str


@dataclass
class LoadResult:
    prompts: list[Prompt]
    skipped: list[Skip] = field(default_factory=list)
