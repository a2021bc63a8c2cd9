"""Ratings as CSV or JSONL.

JSONL keeps every value as stored. CSV is for spreadsheets, where a cell that begins with
`=`, `+`, `-`, `@`, a tab or a carriage return is run as a formula: such text cells (model
output is untrusted) get a leading `'`, the usual defence; numbers are left alone.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

COLUMNS = ["id", "annotator", "item_id", "prompt", "response", "method", "harmless", "helpful",
           "overall", "preference", "created_at"]
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> object:
    if isinstance(value, str) and value.startswith(_FORMULA):
        return "'" + value
    return "" if value is None else value


def write_csv(rows: Sequence[dict], path: Path) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        for r in rows:
            writer.writerow([_cell(r.get(c)) for c in COLUMNS])
    return path


def write_jsonl(rows: Sequence[dict], path: Path) -> Path:
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps({c: r.get(c) for c in COLUMNS}, ensure_ascii=False) + "\n" for r in rows)
    return path


def export(rows: Sequence[dict], fmt: str, path: Path) -> Path:
    if fmt == "csv":
        return write_csv(rows, path)
    if fmt == "jsonl":
        return write_jsonl(rows, path)
    raise ValueError(f"unknown export format {fmt!r} (csv, jsonl)")
