"""Benchmark: N=5 generation in one batched call vs 5 separate calls, embedded SmolLM2 on CPU.

Run by hand: `.venv/bin/python bench/bench_generation.py [--prompts 6] [--quick] [--threads N]`.
Writes bench/results/generation.json and bench/results/generation.md (see bench/README.md).

Variants, each after a warm-up, batched and separate interleaved prompt by prompt:
  * sampled: HFGenerator(GenerationConfig(max_new_tokens=64)) as the pipeline uses it (T=0.8,
    top-p 0.95): generate(prompt, 5, seed) (one call, num_return_sequences=5) vs
    generate(prompt, 1, seed + i) for i in 0..4. Lengths differ (EOS), so generated tokens
    are counted too (up to and including the first EOS; a batched call keeps stepping finished
    rows until its longest row ends, which is counted separately as row-steps).
  * fixed-sampled: model.generate directly with min_new_tokens = max_new_tokens = 64, same
    sampling settings, num_return_sequences=5 vs 5 calls: every row generates exactly 64 tokens.
  * fixed-greedy: the same, greedy. transformers refuses num_return_sequences > 1 without
    sampling, so the batched call gets the prompt repeated 5 times as a batch of 5 (what
    num_return_sequences does internally) vs 5 calls of batch 1.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch
from _common import (
    builtin_prompts,
    environment,
    machine_state,
    md_table,
    warn_if_busy,
    write_results,
)

from udasa.config import GenerationConfig
from udasa.generators import HFGenerator

N = 5
VARIANTS = ("sampled", "fixed-sampled", "fixed-greedy")


class Capture:
    """Wraps model.generate on the instance: keeps (prompt length, output ids) of each call."""

    def __init__(self, model, eos: int):
        self.model, self.eos, self.calls = model, eos, []
        self._orig = model.generate

        def generate(*args, **kwargs):
            out = self._orig(*args, **kwargs)
            self.calls.append((kwargs["input_ids"].shape[1], out))
            return out
        model.generate = generate

    def take(self) -> dict:
        """Generated tokens (to the first EOS, inclusive), decode steps and row-steps."""
        calls, self.calls = self.calls, []
        tokens = steps = row_steps = 0
        for plen, out in calls:
            new = out[:, plen:]
            steps += new.shape[1]
            row_steps += new.numel()
            for row in new:
                hit = (row == self.eos).nonzero()
                tokens += int(hit[0, 0]) + 1 if len(hit) else row.numel()
        return {"tokens": tokens, "steps": steps, "row_steps": row_steps}

    def close(self):
        del self.model.generate  # back to the class method


def pick_prompts(k: int) -> list[str]:
    prompts = builtin_prompts()
    step = max(1, len(prompts) // k)
    return [prompts[i * step % len(prompts)] for i in range(k)]


def run_variant(variant: str, gen: HFGenerator, cap: Capture, prompts: list[str], seed: int,
                max_new: int, cap_s: float) -> dict:
    model, tok, cfg = gen.model, gen.tokenizer, gen.cfg
    sample = variant != "fixed-greedy"

    @torch.inference_mode()
    def direct(ids: torch.Tensor, k: int, s: int, batch_rows: int = 1):
        ids = ids.repeat(batch_rows, 1)
        torch.manual_seed(s)
        model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=sample,
                       temperature=cfg.temperature if sample else None,
                       top_p=cfg.top_p if sample else None, top_k=None,
                       num_return_sequences=k, max_new_tokens=max_new, min_new_tokens=max_new,
                       pad_token_id=tok.pad_token_id)

    def batched(p: str, s: int):
        if variant == "sampled":
            gen.generate(p, N, s)
        elif variant == "fixed-sampled":
            direct(gen._encode(p), N, s)
        else:
            direct(gen._encode(p), 1, s, batch_rows=N)

    def separate(p: str, s: int):
        for j in range(N):
            if variant == "sampled":
                gen.generate(p, 1, s + j)
            else:
                direct(gen._encode(p), 1, s + j)

    cap.take()
    rows = []
    t0 = time.perf_counter()
    for i, p in enumerate(prompts):
        if rows and time.perf_counter() - t0 > cap_s:
            print(f"  {variant}: stopping after {len(rows)} prompts (--cap-s {cap_s:.0f})")
            break
        s = seed + 100 * i
        t = time.perf_counter()
        batched(p, s)
        tb = time.perf_counter() - t
        b = cap.take()
        t = time.perf_counter()
        separate(p, s)
        ts = time.perf_counter() - t
        sp = cap.take()
        rows.append({"prompt": p, "batched_s": tb, "separate_s": ts, "batched": b,
                     "separate": sp, "ratio": ts / tb})
        print(f"  {variant} prompt {i}: batched {tb:.2f} s ({b['tokens']} tok), separate "
              f"{ts:.2f} s ({sp['tokens']} tok), ratio {ts / tb:.2f}x", flush=True)
    tb = sum(r["batched_s"] for r in rows)
    ts = sum(r["separate_s"] for r in rows)
    btok = sum(r["batched"]["tokens"] for r in rows)
    stok = sum(r["separate"]["tokens"] for r in rows)
    return {
        "variant": variant, "prompts": len(rows), "max_new_tokens": max_new,
        "batched_s_per_prompt": tb / len(rows), "separate_s_per_prompt": ts / len(rows),
        "ratio": ts / tb, "ratio_median_per_prompt": statistics.median(r["ratio"] for r in rows),
        "batched_tokens": btok, "separate_tokens": stok,
        "batched_tok_s": btok / tb, "separate_tok_s": stok / ts,
        "batched_row_steps_s": sum(r["batched"]["row_steps"] for r in rows) / tb,
        "separate_row_steps_s": sum(r["separate"]["row_steps"] for r in rows) / ts,
        "throughput_ratio": (btok / tb) / (stok / ts),
        "per_prompt": rows,
    }


@torch.inference_mode()
def breakdown(gen: HFGenerator, prompt: str, reps: int = 7) -> dict:
    """Where a batched call's time goes, measured back to back (robust to a busy machine):
    prompt prefill at 1 and N rows (num_return_sequences prefills every row), one cached
    decode step at 1 and N rows (fp32, and bf16 where the CPU has it), and the full-vocabulary
    sort top-p sampling does per row per step (HFGenerator passes top_k=None)."""
    from udasa.models import load_causal_lm

    ids = gen._encode(prompt)

    def timed(fn) -> float:
        t = time.perf_counter()
        fn()
        return time.perf_counter() - t

    def step_times(model) -> dict:
        """1-row and N-row timings alternated rep by rep; medians and median paired ratio."""
        calls = {}
        for rows in (1, N):
            x = ids.repeat(rows, 1)
            first = model(input_ids=x, use_cache=True)
            nxt = first.logits[:, -1:].argmax(-1)
            cache = first.cache if hasattr(first, "cache") else first.past_key_values

            def step(nxt=nxt, cache=cache):
                model(input_ids=nxt, cache=cache, use_cache=True)
                cache.crop(-1)  # drop the token just added: the cache stays at the prompt

            calls[rows] = (lambda x=x: model(input_ids=x), step)
        for rows in calls:  # warm-up
            calls[rows][0]()
            calls[rows][1]()
        t = {k: [] for k in ("prefill_1", f"prefill_{N}", "step_1", f"step_{N}")}
        for _ in range(reps):
            for rows in (1, N):
                t[f"prefill_{rows}"].append(timed(calls[rows][0]))
            for _ in range(3):
                for rows in (1, N):
                    t[f"step_{rows}"].append(timed(calls[rows][1]))
        out = {f"{k}_s": statistics.median(v) for k, v in t.items()}
        out["decode_ceiling_ratio"] = statistics.median(
            N * a / b for a, b in zip(t["step_1"], t[f"step_{N}"]))
        out["prefill_ratio"] = statistics.median(
            b / a for a, b in zip(t["prefill_1"], t[f"prefill_{N}"]))
        return out

    result = {"prompt_tokens": int(ids.shape[1]), "fp32": step_times(gen.model)}
    logits = torch.randn(N, gen.model.config.vocab_size)
    result["sort_rows_N_s"] = statistics.median(
        timed(lambda: torch.sort(logits, descending=False)) for _ in range(reps * 3))
    try:
        bf16, _ = load_causal_lm(gen.cfg.model, "bfloat16", gen.cfg.device)
        result["bf16"] = step_times(bf16)
    except Exception as exc:  # noqa: BLE001 - a probe only
        result["bf16"] = {"error": repr(exc)}
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prompts", type=int, default=6)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    ap.add_argument("--cap-s", type=float, default=100.0,
                    help="start no new prompt in a variant after this many seconds")
    ap.add_argument("--force", action="store_true",
                    help="run even when parallel ops are stalled by other processes")
    ap.add_argument("--no-breakdown", action="store_true",
                    help="skip the prefill / decode-step / sort timings")
    ap.add_argument("--quick", action="store_true", help="2 prompts, 32 new tokens")
    ap.add_argument("--out", default="generation", help="results file stem under bench/results/")
    args = ap.parse_args()
    if args.quick:
        args.prompts, args.max_new_tokens = 2, 32
    if args.threads:
        torch.set_num_threads(args.threads)
    variants = [v for v in args.variants.split(",") if v]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        ap.error(f"unknown variants {sorted(unknown)}; choose from {VARIANTS}")

    state_start = machine_state()
    warn_if_busy(state_start, "start")
    if state_start["parallel_op_us"] > 1000 and torch.get_num_threads() > 1 and not args.force:
        sys.exit(f"parallel ops take {state_start['parallel_op_us']:.0f} us (other processes "
                 "hold the CPUs): with >1 torch thread decoding runs ~20x slower and this "
                 "benchmark would take an hour. Rerun when the machine is quiet, or with "
                 "--threads 1 or OMP_WAIT_POLICY=PASSIVE, or pass --force.")
    cfg = GenerationConfig(max_new_tokens=args.max_new_tokens)
    gen = HFGenerator(cfg)
    cap = Capture(gen.model, gen.tokenizer.eos_token_id)
    prompts = pick_prompts(args.prompts)
    print(f"{len(prompts)} prompts, N={N}, max_new_tokens={args.max_new_tokens}, "
          f"{torch.get_num_threads()} torch threads", flush=True)

    # warm-up: both shapes, a few tokens
    warm = HFGenerator(GenerationConfig(max_new_tokens=8))
    warm.generate(prompts[0], N, 0)
    warm.generate(prompts[0], 1, 0)

    results = [run_variant(v, gen, cap, prompts, args.seed, args.max_new_tokens, args.cap_s)
               for v in variants]
    cap.close()
    parts = None
    if not args.no_breakdown:
        parts = breakdown(gen, prompts[0])
        f = parts["fp32"]
        print(f"breakdown: decode step 1 row {f['step_1_s'] * 1e3:.0f} ms, {N} rows "
              f"{f[f'step_{N}_s'] * 1e3:.0f} ms (ceiling {f['decode_ceiling_ratio']:.2f}x); "
              f"prefill 1 row {f['prefill_1_s'] * 1e3:.0f} ms, {N} rows "
              f"{f[f'prefill_{N}_s'] * 1e3:.0f} ms; top-p sort {N} rows "
              f"{parts['sort_rows_N_s'] * 1e3:.1f} ms/step", flush=True)
    state_end = machine_state()
    warn_if_busy(state_end, "end")

    data = {"benchmark": "generation", "environment": environment(),
            "machine_state": {"start": state_start, "end": state_end},
            "setup": {"prompts": prompts, "n": N, "max_new_tokens": args.max_new_tokens,
                      "temperature": cfg.temperature, "top_p": cfg.top_p, "seed": args.seed,
                      "model": gen.name},
            "variants": results, "breakdown": parts,
            "goals": {"ratio_min": 3, "met": {r["variant"]: r["ratio"] >= 3 for r in results}}}
    write_results(args.out, data, markdown(data))


def markdown(data: dict) -> str:
    env, setup = data["environment"], data["setup"]
    omp = "".join(f" ({k}={v})" for k, v in env["omp_env"].items())
    quiet = all(st["quiet"] for st in data["machine_state"].values())
    head = (f"# Generation benchmark\n\nN={setup['n']} responses per prompt, "
            f"{len(setup['prompts'])} built-in prompts, max_new_tokens={setup['max_new_tokens']}, "
            f"T={setup['temperature']}, top-p={setup['top_p']}; {setup['model']}; "
            f"{env['cpu']}, {env['cpus']} vCPUs, {env['torch_threads']} torch threads{omp}, torch "
            f"{env['torch']}; {env['date']}.\n")
    head += ("\nMachine quiet at start and end (no other busy process).\n" if quiet else
             "\n**Machine NOT quiet** (other busy processes and/or slow parallel ops at start "
             "or end; see machine_state in generation.json): figures are depressed and noisy.\n")
    table = md_table(
        ["variant", "prompts", "batched s/prompt", "separate s/prompt", "ratio (time)",
         "batched tok/s", "separate tok/s", "tokens batched / separate", "batched row-steps/s"],
        [[r["variant"], r["prompts"], r["batched_s_per_prompt"], r["separate_s_per_prompt"],
          f"{r['ratio']:.2f}x", r["batched_tok_s"], r["separate_tok_s"],
          f"{r['batched_tokens']} / {r['separate_tokens']}", r["batched_row_steps_s"]]
         for r in data["variants"]])
    note = ("\nratio = separate time / batched time for the same prompts (goal >= 3x). Tokens: "
            "generated up to and including the first EOS; row-steps count every row of every "
            "decode step, including rows that already ended (batched calls run until the "
            "longest row ends). fixed-* variants generate exactly max_new_tokens per row.\n")
    text = f"{head}\n## Batched (N=5 in one call) vs 5 separate calls\n\n{table}\n{note}"
    parts = data.get("breakdown")
    if parts:
        rows = []
        for dtype in ("fp32", "bf16"):
            d = parts.get(dtype, {})
            if "step_1_s" not in d:
                continue
            rows.append([dtype, f"{d['prefill_1_s'] * 1e3:.0f} / {d[f'prefill_{N}_s'] * 1e3:.0f}",
                         f"{d['step_1_s'] * 1e3:.1f} / {d[f'step_{N}_s'] * 1e3:.1f}",
                         f"{d['decode_ceiling_ratio']:.2f}x", f"{d['prefill_ratio']:.2f}x"])
        text += (f"\n## Where the time goes (1-row and {N}-row timings alternated; medians and "
                 "median paired ratios; prompt "
                 f"{parts['prompt_tokens']} tokens)\n\n"
                 + md_table(["weights", f"prefill ms, 1 / {N} rows",
                             f"decode step ms, 1 / {N} rows",
                             f"decode-only ceiling ({N} x step1 / step{N})",
                             f"prefill {N} rows / 1 row"], rows)
                 + f"\nTop-p's full-vocabulary sort: {parts['sort_rows_N_s'] * 1e3:.1f} ms per "
                 f"step for {N} rows (it does not batch: linear in rows). bf16 is a probe "
                 "(generation.dtype=bfloat16), not what the pipeline runs by default.\n")
    return text


if __name__ == "__main__":
    main()
