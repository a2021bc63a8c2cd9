"""3-stage DPO with reference log-probs computed once (stored) vs recomputed every step.

Same pairs, same steps, same seed; the embedded SmolLM2-135M on CPU. Goal: precomputed wall
time <= 0.6x the recomputing one. Writes bench/results/dpo_ref.{json,md}.

    .venv/bin/python bench/bench_dpo_ref.py [--prompts 16] [--epochs 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from _common import RESULTS, environment

from udasa.config import load_config
from udasa.pipeline import Pipeline
from udasa.store import Store

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--epochs", type=float, default=3)
    parser.add_argument("--batch-size", type=int, default=4)
    args = parser.parse_args()
    base = [f"data.limit={args.prompts}", "generation.max_new_tokens=48",
            "training.enabled=false"]
    work = Path(tempfile.mkdtemp(prefix="udasa-bench-dpo-"))
    cfg = load_config(ROOT / "configs" / "cpu-demo.yaml", base)
    pipe = Pipeline(cfg, work / "pairs")
    pipe.run_all()
    n_pairs = len(pipe.store.pairs(pipe.run_id))
    results = {}
    for precompute in (False, True):  # each variant on its own copy of the store
        ws = work / f"precompute-{precompute}"
        shutil.copytree(work / "pairs", ws)
        train = base + [f"training.precompute_ref={str(precompute).lower()}",
                        f"training.epochs={args.epochs}", f"training.batch_size={args.batch_size}",
                        "training.max_steps=1000", "training.eval_fraction=0",
                        "training.save_checkpoints=false", "training.enabled=true"]
        variant = Pipeline(load_config(ROOT / "configs" / "cpu-demo.yaml", train), ws)
        start = time.perf_counter()
        variant.train()
        seconds = time.perf_counter() - start
        ckpts = Store(ws).checkpoints(variant.run_id)
        results["precomputed" if precompute else "recomputed"] = {
            "seconds": round(seconds, 2), "steps": sum(c["metrics"]["steps"] for c in ckpts),
            "ref_logps_computed": sum(c["metrics"].get("ref_logps_computed") or 0 for c in ckpts),
        }
    ratio = results["precomputed"]["seconds"] / results["recomputed"]["seconds"]
    out = {"environment": environment(), "pairs": n_pairs, "epochs": args.epochs,
           "batch_size": args.batch_size, "stages": 3, "results": results,
           "ratio_precomputed_over_recomputed": round(ratio, 3), "goal": "<= 0.6"}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "dpo_ref.json").write_text(json.dumps(out, indent=2))
    lines = [
        "# DPO reference log-probs: computed once vs every step", "",
        (f"{n_pairs} pairs from the cpu-demo pipeline, 3 stages, {args.epochs} epochs, batch "
         f"{args.batch_size}, SmolLM2-135M on {out['environment']['cpu']} "
         f"({out['environment']['torch_threads']} threads), {out['environment']['date']}."), "",
        "| variant | wall s | steps | reference passes (pairs) |", "|---|---|---|---|"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['seconds']} | {r['steps']} | "
                     f"{r['ref_logps_computed'] if name == 'precomputed' else 'every step'} |")
    lines += ["", f"ratio precomputed / recomputed = **{ratio:.2f}** (goal <= 0.6)"]
    (RESULTS / "dpo_ref.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
