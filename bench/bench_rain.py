"""Benchmark: RAIN vs greedy decoding, and RAIN batched (prompts in lockstep) vs one at a time.

Embedded SmolLM2 on CPU, a RAIN config's search.

Run by hand: `.venv/bin/python bench/bench_rain.py [--config configs/baselines/rain-cpu.yaml]
[--prompts 8] [--max-new-tokens 96] [--batch-prompts N] [--threads 1] [--quick] [--out rain]`.
Writes bench/results/<out>.json and .md (`--quick`: 4 prompts, 24 new tokens, `rain-quick`).

Per prompt, greedy (HFGenerator, temperature 0) and RAIN alone run side by side on the same
model; reported: RAIN's time as a multiple of greedy's, searches, commits, self-evaluations,
tokens sampled by the search per token emitted. Then all the prompts' searches run at once in
lockstep (`RainGenerator.generate_many`, `batch_prompts` at a time): reported beside the one at
a time pass are the wall time, the backend's batched model calls by kind and the requests per
call, and whether every answer is the one its prompt got alone (it must be). Last, the lockstep
pass again with the engine's `share_prefills` off (every request prefilled on its own, both
option orders of a self-evaluation in full): the time the shared prefills save, side by side.
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

QUICK = {"prompts": 4, "max_new_tokens": 24, "out": "rain-quick"}


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "baselines" / "rain-cpu.yaml"))
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=96)  # the HH task's budget
    ap.add_argument("--batch-prompts", type=int, default=None,
                    help="searches in lockstep (default: the config's batch_prompts)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="4 prompts, 24 new tokens")
    ap.add_argument("--out", default="rain", help="results file stem")
    args = ap.parse_args()
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    return args


def one_at_a_time(rain: RainGenerator, greedy: HFGenerator, prompts: list[str]
                  ) -> tuple[list[dict], list[list]]:
    """Greedy and RAIN alone on each prompt, side by side."""
    rows, per = [], []
    for prompt in prompts:
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
    return per, rows


def batched(rain: RainGenerator, prompts: list[str]) -> tuple[float, dict[int, str]]:
    """All the prompts' searches in lockstep: wall time and each prompt's answer."""
    t0 = time.perf_counter()
    answers = {i: out[0] for i, out in rain.generate_many(prompts, 1, [0] * len(prompts))}
    return time.perf_counter() - t0, answers


def calls_table(alone: tuple[dict, dict], lockstep: tuple[dict, dict]) -> str:
    rows = []
    for kind in sorted(set(alone[0]) | set(lockstep[0])):
        a, b = alone[0].get(kind, 0), lockstep[0].get(kind, 0)
        rows.append([kind, a, b, alone[1].get(kind, 0) / max(1, a),
                     lockstep[1].get(kind, 0) / max(1, b)])
    return md_table(["model call", "calls alone", "calls batched", "requests / call alone",
                     "requests / call batched"], rows)


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    options = yaml.safe_load(Path(args.config).read_text()) or {}
    if args.batch_prompts:
        options["batch_prompts"] = args.batch_prompts
    rain = RainGenerator(RainConfig(max_new_tokens=args.max_new_tokens, **options))
    greedy = HFGenerator(GenerationConfig(temperature=0.0, n=1,
                                          max_new_tokens=args.max_new_tokens))
    greedy.generate("Hello.", 1, 0)  # warm-up
    prompts = builtin_prompts()[:args.prompts]
    before = machine_state()
    per, rows = one_at_a_time(rain, greedy, prompts)
    alone_calls = (dict(rain.backend.calls), dict(rain.backend.items))
    rain.backend.calls.clear()
    rain.backend.items.clear()
    batch_s, answers = batched(rain, prompts)
    batch_calls = (dict(rain.backend.calls), dict(rain.backend.items))
    rain.backend.engine.share_prefills = False
    unshared_s, unshared = batched(rain, prompts)
    rain.backend.engine.share_prefills = True
    after = machine_state()
    alone_s = sum(p["rain_s"] for p in per)
    same = all(answers[i] == p["answer"] for i, p in enumerate(per))
    total = alone_s / sum(p["greedy_s"] for p in per)
    md = (f"# RAIN vs greedy, and RAIN batched vs one at a time ({Path(args.config).name}, "
          f"{args.max_new_tokens} new tokens, {args.threads} torch thread(s))\n\n"
          + md_table(["prompt", "greedy s", "RAIN s", "RAIN / greedy", "searches", "commits",
                      "self-evals", "sampled / emitted tokens"], rows)
          + f"\nRAIN takes {total:.1f}x greedy's time over these prompts.\n\n"
          f"## {len(prompts)} prompts searched in lockstep ({rain.cfg.batch_prompts} at a "
          f"time) vs one at a time\n\nOne at a time {alone_s:.1f} s, batched {batch_s:.1f} s: "
          f"{alone_s / batch_s:.2f}x. Every answer the same as alone: {same}.\n\n"
          + calls_table(alone_calls, batch_calls)
          + f"\n## Shared prefills\n\nThe lockstep pass with the engine's share_prefills off: "
          f"{unshared_s:.1f} s, against {batch_s:.1f} s on: {unshared_s / batch_s:.2f}x. "
          f"Same answers: {unshared == answers}.\n"
          + f"\nMachine quiet before: {before['quiet']}, after: {after['quiet']} (load "
          f"{after['loadavg']}; the machine is shared, so absolute seconds are noisy; the "
          "ratios are measured side by side).\n")
    write_results(args.out, {"config": options, "args": vars(args), "per_prompt": per,
                             "rain_over_greedy": total, "alone_s": alone_s,
                             "batched_s": batch_s, "batched_answers_same": same,
                             "unshared_prefills_s": unshared_s,
                             "unshared_answers_same": unshared == answers,
                             "calls_alone": alone_calls, "calls_batched": batch_calls,
                             "environment": environment(), "machine_before": before,
                             "machine_after": after}, md)


if __name__ == "__main__":
    main()
