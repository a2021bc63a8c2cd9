"""Baselines of the paper (docs/method.md §7): base, vanilla, RLAIF, RLCD, RAIN.

Each is a registry entry that yields something `udasa-eval` can evaluate: a model spec plus a
decoder (greedy, sampling, or RAIN's tree search), or a checkpoint trained with the same DPO
trainer as UDASA. Prompts live in udasa/resources/baselines/.
"""

from __future__ import annotations

from pathlib import Path

RESOURCES = Path(__file__).resolve().parents[1] / "resources" / "baselines"


def resource(name: str) -> str:
    return (RESOURCES / name).read_text(encoding="utf-8")
