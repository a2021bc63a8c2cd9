"""What an experiment trained, recorded for its report: `WS/experiments/<name>.json`.

For every UDASA-kind method (the method, its ablations and controls): its run, its pairs and
its stage plan (the pairs of each stage with the stage's learning rate and beta, and the delta
values the stages were cut at), each with a content key, so a report can say from the record
alone which stages were empty and which variants trained on identical pairs or on identical
stage plans. The paper's Table 3, scored with the main UDASA method's scorers and fusion, is
written beside it (`WS/table3.json`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from udasa.config import RunConfig
from udasa.files import write_json
from udasa.records import content_key
from udasa.store import Store


def training_facts(store: Store, run_id: str, cfg: RunConfig) -> dict[str, Any]:
    """A UDASA run's pairs and stage plan, with content keys of each."""
    from udasa.keys import train_key_of
    from udasa.training import pair_key

    t = cfg.training
    stages = store.stages(run_id)
    last = max((s.stage for s in stages), default=0)
    plan, all_keys = [], []
    for s in stages:
        keys = sorted(pair_key(p) for p in store.pairs(run_id, s.stage))
        all_keys += keys
        plan.append({"stage": s.stage, "name": s.name, "pairs": len(keys),
                     "learning_rate": t.learning_rate_first if s.stage == 1 else t.learning_rate,
                     "beta": t.last_stage_beta if s.stage == last and t.last_stage_beta
                     else t.beta, "pairs_key": content_key(*keys)})
    train_key = train_key_of(t)
    run = store.get_run(run_id)
    cuts = (run.summary if run else {}).get("thresholds", [])
    return {"run_id": run_id, "train_key": train_key, "pairs": len(all_keys),
            "pairs_key": content_key(*sorted(all_keys)), "curriculum": cfg.curriculum.mode,
            "thresholds": list(cfg.curriculum.thresholds), "cuts": list(cuts), "stages": plan,
            "plan_key": content_key(train_key, cfg.curriculum.schedule, json.dumps(
                [[s["stage"], s["pairs_key"], s["learning_rate"], s["beta"]] for s in plan]))}


def write_record(workspace: Path, experiment: str, facts: Mapping[str, Mapping]) -> Path:
    """`WS/experiments/<experiment>.json`: the training facts of each UDASA-kind method, those
    of a run that built only some methods (`--methods`) merged into what is recorded."""
    path = workspace / "experiments" / f"{experiment}.json"
    known = json.loads(path.read_text(encoding="utf-8"))["methods"] if path.exists() else {}
    return write_json(path, {"experiment": experiment, "methods": known | dict(facts)})


def read_records(folder: Path) -> list[dict[str, Any]]:
    """Every experiment record under a workspace or evidence folder."""
    return [json.loads(p.read_text(encoding="utf-8"))
            for p in sorted(folder.glob("**/experiments/*.json"))]


def write_table3(workspace: Path, cfg: RunConfig) -> Path:
    """The paper's Table 3 scored with `cfg`'s scorers and fusion: `WS/table3/table3.json`."""
    from udasa.table3 import score_table3, write

    return write(score_table3(cfg), workspace / "table3")[1]
