"""Benchmark: RAIN's search (a RAIN config) vs greedy decoding, embedded SmolLM2 on CPU.

Run by hand: `.venv/bin/python bench/bench_rain.py [--config configs/baselines/rain-cpu.yaml]
[--prompts 3] [--max-new-tokens 96] [--threads 1]`. Writes bench/results/rain.json and .md.

Per prompt, greedy (HFGenerator, temperature 0) and RAIN run side by side on the same model;
reported: RAIN's time as a multiple of greedy's, searches, commits, self-evaluations, tokens
sampled by the search per token emitted.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch
import yaml
from _common import ROOT, builtin_prompts, environment, machine_state, md_table, write_results

from udasa.baselines.rain import RainConfig, RainGenerator
from udasa.config import GenerationConfig
from udasa.generators import HFGenerator


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "baselines" / "rain-cpu.yaml"))
    ap.add_argument("--prompts", type=int, default=3)
    ap.add_argument("--max-new-tokens", type=int, default=96)  # the HH task's budget
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    options = yaml.safe_load(Path(args.config).read_text()) or {}
    rain = RainGenerator(RainConfig(max_new_tokens=args.max_new_tokens, **options))
    greedy = HFGenerator(GenerationConfig(temperature=0.0, n=1,
                                          max_new_tokens=args.max_new_tokens))
    greedy.generate("Hello.", 1, 0)  # warm-up
    before = machine_state()
    rows, per = [], []
    for prompt in builtin_prompts()[:args.prompts]:
        t0 = time.perf_counter()
        greedy.generate(prompt, 1, 0)
        t1 = time.perf_counter()
        start = dict(vars(rain.stats))
        (text,) = rain.generate(prompt, 1, 0)
        t2 = time.perf_counter()
        d = {k: getattr(rain.stats, k) - start[k] for k in
             ("searches", "commits", "evaluations", "visited_tokens", "emitted_tokens")}
        per.append({"prompt": prompt, "greedy_s": t1 - t0, "rain_s": t2 - t1, **d,
                    "answer": text})
        rows.append([prompt[:40], t1 - t0, t2 - t1, (t2 - t1) / (t1 - t0), d["searches"],
                     d["commits"], d["evaluations"],
                     d["visited_tokens"] / max(1, d["emitted_tokens"])])
    total = sum(p["rain_s"] for p in per) / sum(p["greedy_s"] for p in per)
    after = machine_state()
    md = (f"# RAIN vs greedy ({Path(args.config).name}, {args.max_new_tokens} new tokens, "
          f"{args.threads} torch thread(s))\n\n"
          + md_table(["prompt", "greedy s", "RAIN s", "RAIN / greedy", "searches", "commits",
                      "self-evals", "sampled / emitted tokens"], rows)
          + f"\nRAIN takes {total:.1f}x greedy's time over these prompts. Machine quiet before: "
          f"{before['quiet']}, after: {after['quiet']} (load {after['loadavg']}; the machine is "
          "shared, so absolute seconds are noisy; the ratio is measured side by side).\n")
    write_results("rain", {"config": options, "args": vars(args), "per_prompt": per,
                           "rain_over_greedy": total, "environment": environment(),
                           "machine_before": before, "machine_after": after}, md)


if __name__ == "__main__":
    main()
