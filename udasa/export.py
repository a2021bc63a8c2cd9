"""Export stored pairs as JSONL that TRL's DPOTrainer loads as-is (one file per stage)."""

from __future__ import annotations

from pathlib import Path

from udasa.curriculum import Stage, stage_members
from udasa.errors import UdasaError
from udasa.files import write_jsonl
from udasa.store import Store
from udasa.store_records import PreferencePair


def dpo_row(pair: PreferencePair, conversational: bool) -> dict:
    """prompt/chosen/rejected; conversational form (message lists) for chat models."""
    if conversational:
        return {"prompt": [{"role": "user", "content": pair.prompt}],
                "chosen": [{"role": "assistant", "content": pair.chosen}],
                "rejected": [{"role": "assistant", "content": pair.rejected}],
                "delta": pair.delta}
    return {"prompt": pair.prompt, "chosen": pair.chosen, "rejected": pair.rejected,
            "delta": pair.delta}


def export_pairs(store: Store, run_id: str, out_dir: str | Path) -> list[Path]:
    """Write `stage-<k>-<name>.jsonl` per stage (the run's schedule: disjoint or cumulative)."""
    run = store.get_run(run_id)
    if run is None:
        raise UdasaError(f"run {run_id} is not in {store.path}")
    stages = store.stages(run_id)
    if not stages:
        raise UdasaError(f"run {run_id} has no stages yet: run `udasa stages` first")
    conversational = bool(run.manifest.get("chat_template"))
    schedule = run.config["curriculum"]["schedule"]
    pairs = store.pairs(run_id)
    stage_of = [p.stage for p in pairs]
    out = Path(out_dir)
    written = []
    for st in stages:
        members = stage_members(stage_of, Stage(st.stage, st.name, st.lo, st.hi), schedule)
        written.append(write_jsonl(out / f"stage-{st.stage}-{st.name}.jsonl",
                                   (dpo_row(pairs[i], conversational) for i in members)))
    return written
