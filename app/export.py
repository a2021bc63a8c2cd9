"""Ratings as CSV or JSONL.

An admin's export holds every column as stored. An annotator's own export is blind
(`blind`): no `method` column, and a preference reads A, B or tie as they saw it, never the
method it stands for (tie and both bad as they are). JSONL keeps every value as stored. CSV is for spreadsheets, where a cell that begins with
`=`, `+`, `-`, `@`, a tab or a carriage return is run as a formula: such text cells (model
output is untrusted) get a leading `'`, the usual defence; numbers are left alone.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

from app.rating import BOTH_BAD, TIE

COLUMNS = ["id", "annotator", "item_id", "prompt", "response", "method", "harmless", "helpful",
           "overall", "preference", "comment", "flagged", "created_at"]
BLIND_COLUMNS = [c for c in COLUMNS if c != "method"]
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def blind(row: dict) -> dict:
    """An annotator's view of their rating row: the method left out, a preference as A/B/tie.

    A preference row stores `method` = "<A's method> vs <B's method>" and `preference` = the
    preferred side's method (see `app.rating.rating_row`), so the side is read back from them.
    """
    out = {c: row.get(c) for c in BLIND_COLUMNS}
    pref, method = row.get("preference"), row.get("method") or ""
    if pref and pref not in (TIE, BOTH_BAD):
        out["preference"] = ("A" if method.startswith(f"{pref} vs ") else
                             "B" if method.endswith(f" vs {pref}") else None)
    return out


def _cell(value: object) -> object:
    if isinstance(value, str) and value.startswith(_FORMULA):
        return "'" + value
    return "" if value is None else value


def write_csv(rows: Sequence[dict], path: Path, columns: Sequence[str] = COLUMNS) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for r in rows:
            writer.writerow([_cell(r.get(c)) for c in columns])
    return path


def write_jsonl(rows: Sequence[dict], path: Path, columns: Sequence[str] = COLUMNS) -> Path:
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps({c: r.get(c) for c in columns}, ensure_ascii=False) + "\n"
                     for r in rows)
    return path


def export(rows: Sequence[dict], fmt: str, path: Path, blinded: bool = False) -> Path:
    """Write `rows` as `fmt` (csv, jsonl); `blinded` writes each row's `blind` view."""
    columns = BLIND_COLUMNS if blinded else COLUMNS
    rows = [blind(r) for r in rows] if blinded else rows
    if fmt == "csv":
        return write_csv(rows, path, columns)
    if fmt == "jsonl":
        return write_jsonl(rows, path, columns)
    raise ValueError(f"unknown export format {fmt!r} (csv, jsonl)")
