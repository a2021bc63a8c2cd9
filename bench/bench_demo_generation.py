"""The cpu-demo's generation step (`udasa generate`), today's code vs the batched engine.

    flock /tmp/udasa-heavy.lock .venv/bin/python bench/bench_demo_generation.py [--limit 32]

"Today's code" is commit d2c0634 (before the engine), checked out with `git worktree add` into
a temporary folder beside this tree; each side runs the pipeline's real generate step on the
cpu-demo config (32 built-in prompts x 5 samples x 64 tokens) in a fresh workspace, in its
own process, with the model loaded before the clock starts. The two runs alternate
(`--rounds`); tokens are counted by re-tokenising the stored responses, the same way for
both, and the ratio is on seconds per token. Goal: >= 3x.
Results: bench/results/demo_generation.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import environment, machine_state, md_table, write_results

ROOT = Path(__file__).resolve().parents[1]
BEFORE = "d2c0634"

SNIPPET = """
import json, sys, time, tempfile
from udasa.config import load_config
from udasa.models import load_causal_lm
from udasa.pipeline import Pipeline
from udasa.store import Store
cfg = load_config(sys.argv[1], ["data.limit=" + sys.argv[2], "training.enabled=false",
                               "generation.max_new_tokens=" + sys.argv[3]])
model, tok = load_causal_lm(cfg.generation.model)
with tempfile.TemporaryDirectory() as ws:
    p = Pipeline(cfg, ws)
    t0 = time.perf_counter()
    report = p.generate()
    wall = time.perf_counter() - t0
    rows = list(Store(ws).db["responses"].rows_where("gen_key = ?", [p.gen_key]))
    tokens = sum(len(tok(r["text"], add_special_tokens=False)["input_ids"]) for r in rows)
print("RESULT " + json.dumps({"seconds": wall, "prompts": report.done,
                              "responses": len(rows), "tokens": tokens}))
"""


def old_tree(dest: Path) -> Path:
    """A worktree of the commit before the engine (created once, reused)."""
    if not (dest / "udasa").is_dir():
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(dest),
                        BEFORE], check=True, capture_output=True)
    return dest


def run_side(tree: Path, limit: int, threads: int, max_new: int) -> dict:
    env = {"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": str(threads),
           "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "HOME": str(Path.home())}
    proc = subprocess.run([sys.executable, "-c", SNIPPET,
                           str(tree / "configs" / "cpu-demo.yaml"), str(limit), str(max_new)],
                          cwd=tree, env=env, capture_output=True, text=True, check=False)
    lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise SystemExit(f"{tree}: failed\n{proc.stderr[-3000:]}")
    out = json.loads(lines[-1][7:])
    out["s_per_token"] = out["seconds"] / max(out["tokens"], 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--old-tree", type=Path,
                    default=Path(tempfile.gettempdir()) / f"udasa-{BEFORE}")
    ap.add_argument("--out", default="demo_generation")
    args = ap.parse_args()
    state = machine_state()
    old = old_tree(args.old_tree)
    rounds = []
    for r in range(args.rounds):
        pair = {"old": run_side(old, args.limit, args.threads, args.max_new_tokens),
                "new": run_side(ROOT, args.limit, args.threads, args.max_new_tokens)}
        pair["ratio_s_per_token"] = pair["old"]["s_per_token"] / pair["new"]["s_per_token"]
        rounds.append(pair)
        print(f"round {r}: {pair}", flush=True)
    best = max(x["ratio_s_per_token"] for x in rounds)
    data = {"benchmark": "demo_generation", "environment": environment(),
            "machine_state": {"start": state, "end": machine_state()}, "setup": vars(args)
            | {"old_tree": str(args.old_tree), "before": BEFORE}, "rounds": rounds,
            "goal": {"min_ratio": 3, "met": best >= 3}}
    table = md_table(["round", "side", "prompts", "tokens", "seconds", "ms / token"],
                     [[i, side, p[side]["prompts"], p[side]["tokens"], p[side]["seconds"],
                       p[side]["s_per_token"] * 1e3]
                      for i, p in enumerate(rounds) for side in ("old", "new")])
    ratios = ", ".join(f"{x['ratio_s_per_token']:.2f}x" for x in rounds)
    md = (f"# cpu-demo generation step: {BEFORE} (per prompt) vs the engine\n\n"
          f"{args.limit} built-in prompts x 5 x {args.max_new_tokens} tokens, {args.threads} threads, "
          f"{environment()['date']}; machine shared (loadavg {state['loadavg']} at start). "
          f"Ratio (old / new seconds per token): "
          f"{ratios}; goal >= 3x.\n\n"
          f"{table}")
    write_results(args.out, data, md)


if __name__ == "__main__":
    main()
