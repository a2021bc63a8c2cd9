"""Adversarial attacks (GCG: white-box, multi-behaviour universal, multi-model transfer),
AdvBench data and attack-success criteria. See attacks/gcg.py."""

from attacks.gcg import (
    Behaviour,
    GCGConfig,
    GCGInputError,
    GCGResult,
    attack_prompt,
    load_gcg_config,
    run_gcg,
)

__all__ = ["Behaviour", "GCGConfig", "GCGInputError", "GCGResult", "attack_prompt",
           "load_gcg_config", "run_gcg"]
