"""`udasa-eval run --suite paper --limit N` end to end: today's code vs the engine.

    flock /tmp/udasa-heavy.lock .venv/bin/python bench/bench_eval_suite.py [--limit 20]

"Today's code" is commit d2c0634 (before the engine) in a `git worktree` beside this tree
(bench_demo_generation.py makes the same one). Each side runs the whole command in its own
process and a fresh workspace (the suite trains the RLAIF, RLCD and UDASA policies it needs,
then evaluates every method on every task), old first, then new; the ratio is on wall time.
Goal: >= 4x. At --limit 20 the old side takes hours on 2 shared cores.
Results: bench/results/eval_suite.{json,md}.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import environment, machine_state, md_table, write_results
from bench_demo_generation import BEFORE, ROOT, old_tree


def run_side(tree: Path, limit: int, log: Path) -> dict:
    env = os.environ | {"PYTHONPATH": str(tree), "HF_HUB_OFFLINE": "1"}
    with tempfile.TemporaryDirectory() as ws, open(log, "w") as out:
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "evals.cli", "run", "--suite", "paper",
                               "--limit", str(limit), "--workspace", ws], cwd=tree, env=env,
                              stdout=out, stderr=subprocess.STDOUT, check=False)
        wall = time.perf_counter() - t0
    return {"seconds": wall, "returncode": proc.returncode, "log": str(log)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=20)
    ap.add_argument("--old-tree", type=Path,
                    default=Path(tempfile.gettempdir()) / f"udasa-{BEFORE}")
    ap.add_argument("--out", default="eval_suite")
    args = ap.parse_args()
    state = machine_state()
    logs = Path(tempfile.gettempdir())
    old = run_side(old_tree(args.old_tree), args.limit, logs / "eval_suite_old.log")
    print("old:", old, flush=True)
    new = run_side(ROOT, args.limit, logs / "eval_suite_new.log")
    print("new:", new, flush=True)
    ratio = old["seconds"] / new["seconds"]
    data = {"benchmark": "eval_suite", "environment": environment(),
            "machine_state": {"start": state, "end": machine_state()},
            "setup": {"limit": args.limit, "before": BEFORE}, "old": old, "new": new,
            "ratio": ratio, "goal": {"min_ratio": 4, "met": ratio >= 4}}
    md = (f"# udasa-eval run --suite paper --limit {args.limit}: {BEFORE} vs the engine\n\n"
          f"{environment()['date']}; machine shared (loadavg {state['loadavg']} at start).\n\n"
          + md_table(["side", "seconds", "exit"], [["old", old["seconds"], old["returncode"]],
                                                   ["new", new["seconds"], new["returncode"]]])
          + f"\nRatio {ratio:.2f}x (goal >= 4x).\n")
    write_results(args.out, data, md)


if __name__ == "__main__":
    main()
