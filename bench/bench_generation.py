"""Benchmark: the batched engine vs today's per-prompt paths, embedded SmolLM2 on CPU.

Run by hand: `flock /tmp/udasa-heavy.lock .venv/bin/python bench/bench_generation.py
[--prompts 32] [--quick] [--threads N]`. Writes bench/results/generation.{json,md}.

Everything in one process, side by side, after one warm-up of each path:
  * peak: torch fp32 2048x2048 matmul GFLOP/s (best of 10), sampled at the start, between
    the passes and at the end; the arithmetic limit is peak / (2 x parameters) tokens/s.
  * one-prompt greedy (the eval path before the engine): `model.generate(prompt, greedy)`
    one prompt at a time, as evals/models.py called `generate(text, 1)` per prompt.
  * today's N=5 (the `udasa generate` path before the engine): `model.generate` with
    num_return_sequences=5, T=0.8, top-p 0.95, one prompt per call.
  * engine: HFGenerator.generate_many over all prompts, N=5 sampled, at the default
    generation.batch_tokens (and greedy N=1 over the same prompts).
Tokens are generated tokens up to and including each row's EOS. The old paths stop starting
new prompts after --cap-s seconds (their rate is per token, so a partial pass is fair).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch
from _common import builtin_prompts, environment, machine_state, md_table, write_results

from udasa.config import GenerationConfig
from udasa.generators import HFGenerator

N = 5


def matmul_peak(n: int = 2048, reps: int = 10) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(reps))
    return 2 * n ** 3 / best / 1e9


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def count_tokens(new: torch.Tensor, eos: int) -> int:
    total = 0
    for row in new:
        hit = (row == eos).nonzero()
        total += int(hit[0, 0]) + 1 if len(hit) else row.numel()
    return total


@torch.inference_mode()
def old_path(gen: HFGenerator, prompts: list[str], k: int, sample: bool, max_new: int,
             cap_s: float) -> dict:
    """Today's HFGenerator._complete, one prompt per `model.generate` call."""
    model, tok, cfg = gen.model, gen.tokenizer, gen.cfg
    tokens, done, t0, texts = 0, 0, time.perf_counter(), []
    for i, p in enumerate(prompts):
        if done and time.perf_counter() - t0 > cap_s:
            break
        ids = torch.tensor([gen._encode(p, max_new)])
        torch.manual_seed(i)
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=sample,
                             temperature=cfg.temperature if sample else None,
                             top_p=cfg.top_p if sample else None, top_k=None,
                             num_return_sequences=k, max_new_tokens=max_new,
                             pad_token_id=tok.pad_token_id)
        tokens += count_tokens(out[:, ids.shape[1]:], tok.eos_token_id)
        texts.append(tok.batch_decode(out[:, ids.shape[1]:], skip_special_tokens=True)[0].strip())
        done += 1
    s = time.perf_counter() - t0
    return {"prompts": done, "tokens": tokens, "seconds": s, "tok_s": tokens / s,
            "first_texts": texts}


def engine_path(gen: HFGenerator, prompts: list[str], k: int) -> dict:
    before = gen.engine.tokens_generated
    t0 = time.perf_counter()
    outs = dict(gen.generate_many(prompts, k, list(range(len(prompts)))))
    s = time.perf_counter() - t0
    tokens = gen.engine.tokens_generated - before  # every row step, the EOS step included
    assert len(outs) == len(prompts)
    return {"prompts": len(prompts), "tokens": tokens, "seconds": s, "tok_s": tokens / s,
            "batch_tokens": gen.engine.batch_tokens,
            "first_texts": [outs[i][0] for i in range(len(prompts))]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prompts", type=int, default=32, help="built-in prompts (demo: 32)")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--cap-s", type=float, default=120.0,
                    help="old paths start no new prompt after this many seconds")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="8 prompts, 32 new tokens, 40 s caps")
    ap.add_argument("--out", default="generation")
    args = ap.parse_args()
    if args.quick:
        args.prompts, args.max_new_tokens, args.cap_s = 8, 32, 40.0
    if args.threads:
        torch.set_num_threads(args.threads)
    prompts = builtin_prompts()[:args.prompts]
    state_start = machine_state()
    peaks = [matmul_peak()]
    sampled = HFGenerator(GenerationConfig(max_new_tokens=args.max_new_tokens))
    greedy = HFGenerator(GenerationConfig(max_new_tokens=args.max_new_tokens, temperature=0.0))
    params = sum(p.numel() for p in sampled.model.parameters())
    warm = HFGenerator(GenerationConfig(max_new_tokens=4))
    old_path(warm, prompts[:1], N, True, 4, 0)
    warm.generate_many(prompts[:2], N, [0, 1])
    m = args.max_new_tokens
    print(f"{len(prompts)} prompts, max_new_tokens={m}, {torch.get_num_threads()} threads, "
          f"peak {peaks[0]:.0f} GFLOP/s", flush=True)
    runs = {"old_greedy_1": old_path(greedy, prompts, 1, False, m, args.cap_s)}
    print("old one-prompt greedy:", runs["old_greedy_1"], flush=True)
    runs["old_sampled_5"] = old_path(sampled, prompts, N, True, m, args.cap_s)
    print("old N=5 per prompt:", runs["old_sampled_5"], flush=True)
    peaks.append(matmul_peak())
    runs["engine_sampled_5"] = engine_path(sampled, prompts, N)
    print("engine N=5:", runs["engine_sampled_5"], flush=True)
    runs["engine_greedy_1"] = engine_path(greedy, prompts, 1)
    print("engine greedy N=1:", runs["engine_greedy_1"], flush=True)
    peaks.append(matmul_peak())
    old_t, new_t = runs["old_greedy_1"]["first_texts"], runs["engine_greedy_1"]["first_texts"]
    same = sum(a == b for a, b in zip(old_t, new_t))
    parity = {"prompts": len(old_t), "identical": same,
              "differing": [{"prompt": prompts[i], "old": a, "engine": b}
                            for i, (a, b) in enumerate(zip(old_t, new_t)) if a != b]}
    print(f"greedy parity: {same}/{len(old_t)} identical", flush=True)
    peak = max(peaks)
    limit = peak * 1e9 / (2 * params)
    e = runs["engine_sampled_5"]["tok_s"]
    ratios = {"engine_vs_one_prompt_greedy": e / runs["old_greedy_1"]["tok_s"],
              "engine_vs_old_n5": e / runs["old_sampled_5"]["tok_s"],
              "engine_share_of_arithmetic_limit": e / limit,
              "engine_greedy_vs_one_prompt_greedy":
                  runs["engine_greedy_1"]["tok_s"] / runs["old_greedy_1"]["tok_s"]}
    goals = {"engine_vs_one_prompt_greedy": 8, "engine_vs_old_n5": 3,
             "engine_share_of_arithmetic_limit": 0.3}
    data = {"benchmark": "generation", "environment": environment(),
            "machine_state": {"start": state_start, "end": machine_state()},
            "setup": {"prompts": len(prompts), "n": N, "max_new_tokens": m, "params": params,
                      "model": sampled.name},
            "matmul_peak_gflops": peaks, "arithmetic_limit_tok_s": limit, "runs": runs,
            "greedy_parity_batched_vs_one_prompt": parity,
            "ratios": ratios, "goals": {k: {"min": v, "met": ratios[k] >= v}
                                        for k, v in goals.items()}}
    write_results(args.out, data, markdown(data))


def markdown(data: dict) -> str:
    env, setup, runs = data["environment"], data["setup"], data["runs"]
    quiet = all(st["quiet"] for st in data["machine_state"].values())
    head = (f"# Generation benchmark: the batched engine vs the per-prompt paths\n\n"
            f"{setup['prompts']} built-in prompts, max_new_tokens={setup['max_new_tokens']}, "
            f"{setup['model']} ({setup['params'] / 1e6:.0f}M parameters); {env['cpu']}, "
            f"{env['cpus']} vCPUs, {env['torch_threads']} torch threads, torch {env['torch']}; "
            f"{env['date']}. fp32 2048x2048 matmul peak "
            f"{max(data['matmul_peak_gflops']):.0f} GFLOP/s (samples "
            f"{', '.join(f'{p:.0f}' for p in data['matmul_peak_gflops'])}), so the arithmetic "
            f"limit is {data['arithmetic_limit_tok_s']:.0f} tokens/s.\n\n")
    head += ("Machine quiet at start and end.\n" if quiet else
             "**Machine shared and busy** (other engineers' jobs; loadavg "
             f"{data['machine_state']['start']['loadavg']} at start, "
             f"{data['machine_state']['end']['loadavg']} at end): absolute figures are "
             "depressed; the ratios were measured side by side in this one run.\n")
    rows = [[name, r["prompts"], r["tokens"], r["seconds"], r["tok_s"]]
            for name, r in runs.items()]
    table = md_table(["path", "prompts", "tokens", "seconds", "tokens/s"], rows)
    goals = md_table(["ratio", "value", "goal", "met"],
                     [[k, f"{v:.2f}", data["goals"].get(k, {}).get("min", "-"),
                       data["goals"].get(k, {}).get("met", "-")]
                      for k, v in data["ratios"].items()])
    par = data["greedy_parity_batched_vs_one_prompt"]
    return (f"{head}\n{table}\n{goals}\nGreedy, engine batched vs `model.generate` one prompt "
            f"at a time: {par['identical']} of {par['prompts']} outputs identical.\n")


if __name__ == "__main__":
    main()
