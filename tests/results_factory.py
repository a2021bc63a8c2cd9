"""Synthetic evaluations in the harness's own format, recorded as `udasa-eval run` records
them (`evals.runner.record_evaluation`: results.json, samples.jsonl and the store's rows)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from evals.results import FORMAT

Values = Sequence[float | None]


def estimate(values: Values, half: float = 0.5) -> dict[str, Any]:
    kept = [float(v) for v in values if v is not None]
    mean = sum(kept) / len(kept)
    return {"mean": mean, "low": mean - half, "high": mean + half, "n": len(kept)}


def evaluation(eval_id: str, task: str, methods: Mapping[str, Mapping[str, Values]], *,
               experiment: str = "", data: str = "default", limit: int | None = 50,
               seed: int = 0, judge: str = "j", scorer: str = "judge J",
               created_at: str = "2026-01-01T00:00:00", paper_rows: Mapping[str, list] | None = None,
               paired: Sequence[str] | None = None, ids: Sequence[str] | None = None,
               prompts: Sequence[str] | None = None) -> tuple[dict, list[dict]]:
    """(results.json dict, samples.jsonl rows) of one task: `methods` maps a method to its
    per-sample values of each metric (None: the scorer failed on that sample)."""
    models, rows = {}, []
    for name, metrics in methods.items():
        n = len(next(iter(metrics.values())))
        sample_ids = list(ids or [f"s{i}" for i in range(n)])
        texts = list(prompts or [f"{task} prompt {i}" for i in range(n)])
        models[name] = {"metrics": {m: estimate(v) for m, v in metrics.items()}, "n": n,
                        "failures": sum(v is None for vs in metrics.values() for v in vs),
                        "judge": scorer, "model": {"spec": name.lower(), "key": f"key-{name}"},
                        "paper_rows": list((paper_rows or {}).get(name, [])), "seconds": 1.0}
        rows += [{"model": name, "task": task, "idx": i, "prompt": texts[i],
                  "output": f"{name} answers {texts[i]}",
                  "scores": {"id": sample_ids[i], "metrics": {m: v[i] for m, v in
                                                               metrics.items()}}}
                 for i in range(n)]
    first = next(iter(methods.values()))
    results = {"format": FORMAT, "eval_id": eval_id, "experiment": experiment,
               "created_at": created_at, "config": {"tasks": [task], "limit": limit,
                                                    "seed": seed, "models": []},
               "judge": {"name": judge, "label": scorer},
               "tasks": {task: {"setting": {"data": data, "limit": limit, "seed": seed,
                                            "judge": judge},
                                "paired_metrics": list(paired if paired is not None
                                                       else first),
                                "models": models}}}
    return results, rows


def record(workspace: Path, results: dict, rows: list[dict]) -> Path:
    """Record an evaluation in `workspace` as the harness does."""
    from evals.runner import record_evaluation
    from udasa.store import Store

    store = Store(workspace)
    try:
        return record_evaluation(store, workspace, results, rows)
    finally:
        store.close()


def add(workspace: Path, eval_id: str, task: str, methods: Mapping[str, Mapping[str, Values]],
        **kw: Any) -> Path:
    """`evaluation` recorded in `workspace`."""
    return record(workspace, *evaluation(eval_id, task, methods, **kw))
