"""AdvBench behaviours and ready-made GCG suffixes, found through `udasa.datasets`.

- `load_behaviours`: `advbench/harmful_behaviors.csv` (goal, target) of the offline mirror,
  else the hub's `walledai/AdvBench` (prompt, target), or any CSV with goal and target
  columns. Ids are stable across file versions (a hash of the goal).
- `load_universal_suffixes`: the two universal suffixes published with the GCG paper
  (`gcg/universal_suffixes.json`), a ready-made transfer attack: no optimisation needed.
- `load_smoothllm_suffixes`: per-behaviour GCG suffixes for Vicuna and Llama-2 released with
  SmoothLLM (`gcg/smoothllm_gcg_*_behaviors.json`).

Published suffixes are appended to the behaviour with one space (`attack_prompt`).
"""

from __future__ import annotations

import csv
import io
import json
import random
from dataclasses import dataclass
from pathlib import Path

from attacks.gcg import Behaviour, attack_prompt
from udasa.data import read_text
from udasa.datasets import resolve, resolve_file
from udasa.errors import DataError
from udasa.records import content_key

BEHAVIOURS = "advbench"  # data set names (udasa.datasets)
UNIVERSAL = "gcg/universal-suffixes"
SMOOTHLLM = {"vicuna": "gcg/smoothllm-vicuna", "llama2": "gcg/smoothllm-llama2"}

__all__ = ["PublishedSuffix", "attack_prompt", "behaviour_id", "load_behaviours",
           "load_smoothllm_suffixes", "load_universal_suffixes"]


@dataclass(frozen=True)
class PublishedSuffix:
    id: str
    suffix: str
    optimized_on: str = ""


def _path(path: str | Path | None, default: str) -> Path:
    """`path`, else the mirror file of data set `default`."""
    if not path:
        return resolve_file(default)
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: not found")
    return p


def behaviour_id(goal: str) -> str:
    return f"advbench-{content_key('advbench', goal)}"


def load_behaviours(path: str | Path | None = None, limit: int | None = None,
                    seed: int | None = None) -> list[Behaviour]:
    """Behaviours from a CSV with `goal` and `target` columns (default: AdvBench's
    harmful_behaviors.csv), in file order, or a `random.Random(seed)` shuffle when `seed` is
    given; the first `limit` of them. A row with an empty goal or target is an error."""
    found = None if path else resolve(BEHAVIOURS)
    if found is not None and found.path is None:  # the hub's rows: prompt (= goal), target
        p, records = found.origin, [dict(r, goal=r.get("prompt")) for r in found.records()[1]]
        rows = _behaviours(p, records, 1)
    else:
        p = _path(path, BEHAVIOURS) if found is None else found.path
        reader = csv.DictReader(io.StringIO(read_text(Path(p)), newline=""))
        try:
            missing = {"goal", "target"} - set(reader.fieldnames or [])
            if missing:
                raise DataError(f"{p}: missing column(s) {sorted(missing)} (have "
                                f"{reader.fieldnames})")
            rows = _behaviours(str(p), reader, 2)
        except csv.Error as e:
            raise DataError(f"{p}, line {reader.line_num}: malformed CSV ({e})") from None
    if not rows:
        raise DataError(f"{p}: no behaviours")
    if seed is not None:
        random.Random(seed).shuffle(rows)
    return rows if limit is None else rows[:limit]


def _behaviours(where: str, records, first_line: int) -> list[Behaviour]:
    rows = []
    for i, row in enumerate(records, start=first_line):
        goal, target = (row.get("goal") or "").strip(), (row.get("target") or "").strip()
        if not goal or not target:
            raise DataError(f"{where}, line {i}: empty goal or target")
        rows.append(Behaviour(goal, target, behaviour_id(goal)))
    return rows


def load_universal_suffixes(path: str | Path | None = None) -> list[PublishedSuffix]:
    """The published universal GCG suffixes (id, suffix, what they were optimised on)."""
    p = _path(path, UNIVERSAL)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{p}: not valid JSON ({exc})") from None
    items = data.get("suffixes") if isinstance(data, dict) else None
    if not isinstance(items, list) or not items:
        raise DataError(f"{p}: expected {{\"suffixes\": [{{\"id\", \"suffix\"}}, ...]}}")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not str(item.get("suffix") or "").strip():
            raise DataError(f"{p}: suffixes[{i}] has no suffix")
        out.append(PublishedSuffix(str(item.get("id") or f"suffix_{i}"), str(item["suffix"]),
                                   str(item.get("optimized_on") or "")))
    return out


def load_smoothllm_suffixes(model: str = "vicuna", path: str | Path | None = None
                            ) -> list[tuple[Behaviour, str]]:
    """SmoothLLM's per-behaviour GCG suffixes: (behaviour, suffix) for `vicuna` or `llama2`."""
    if path is None and model not in SMOOTHLLM:
        raise DataError(f"smoothllm suffixes: unknown model {model!r} "
                        f"(known: {', '.join(SMOOTHLLM)})")
    p = _path(path, SMOOTHLLM.get(model, ""))
    data = json.loads(p.read_text(encoding="utf-8"))
    goals, targets, controls = (data.get(k) for k in ("goal", "target", "controls"))
    if not (isinstance(goals, list) and isinstance(targets, list) and isinstance(controls, list)
            and len(goals) == len(targets) == len(controls) and goals):
        raise DataError(f"{p}: expected equal-length lists goal, target, controls")
    return [(Behaviour(g, t, behaviour_id(g)), c) for g, t, c in zip(goals, targets, controls)]
