"""Benchmark: CPU speed-ups the engine could switch on, each against plain fp32, with parity.

Run by hand: `flock /tmp/udasa-heavy.lock .venv/bin/python bench/bench_speedups.py
[--prompts 16] [--variants fp32 int8 compile]`. Writes bench/results/speedups.{json,md}.

One process, the embedded SmolLM2 policy, the engine at the default batch budget, variants
alternated over `--rounds` (best round kept) after one warm-up pass each:
  * fp32: the model as every caller loads it today;
  * int8: `torch.ao.quantization.quantize_dynamic` of every nn.Linear (weights int8, per
    tensor; activations quantised on the fly), for inference-only uses;
  * compile: `torch.compile(model, dynamic=True)` (the decode step changes batch and cache
    length every call, so static shapes would recompile); the warm-up holds the compile time,
    reported on its own.
Per variant: sampled N=5 tokens/s and greedy N=1 tokens/s over the same prompts, and parity:
the share of greedy outputs token-for-token identical to fp32's, the first divergence shown.
A variant is worth a config switch only where it is faster and its outputs match.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch
from _common import builtin_prompts, environment, machine_state, md_table, write_results
from bench_generation import matmul_peak

from udasa.config import GenerationConfig
from udasa.engine import Request, engine_for
from udasa.generators import HFGenerator

MAX_NEW = 64


def variant(name: str, model):
    """A copy of `model` with the speed-up applied, and its setup seconds."""
    start = time.perf_counter()
    if name == "fp32":
        out = model
    elif name == "int8":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation notice
            out = torch.ao.quantization.quantize_dynamic(copy.deepcopy(model),
                                                         {torch.nn.Linear}, dtype=torch.qint8)
    elif name == "compile":
        out = copy.deepcopy(model)
        out.forward = torch.compile(out.forward, dynamic=True)
    else:
        raise SystemExit(f"unknown variant {name!r}")
    return out, time.perf_counter() - start


def run(model, tok, ids: list[list[int]], n: int, temperature: float) -> dict:
    engine = engine_for(model, tok)
    reqs = [Request(x, n, seed=i, max_new_tokens=MAX_NEW, temperature=temperature,
                    top_p=0.95 if temperature else 1.0) for i, x in enumerate(ids)]
    start, before = time.perf_counter(), engine.tokens_generated
    outs = engine.generate_all(reqs)
    seconds = time.perf_counter() - start
    tokens = engine.tokens_generated - before
    return {"seconds": seconds, "tokens": tokens, "tok_s": tokens / seconds, "outputs": outs}


def parity(ref: list, got: list, tok) -> dict:
    same = [a == b for a, b in zip(ref, got, strict=True)]
    first = next((i for i, s in enumerate(same) if not s), None)
    shown = None
    if first is not None:
        a, b = ref[first][0], got[first][0]
        at = next((k for k, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        shown = {"prompt": first, "token": at, "fp32": tok.decode(a[at:at + 8]),
                 "variant": tok.decode(b[at:at + 8])}
    return {"identical": sum(same), "of": len(same), "first_divergence": shown}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--variants", nargs="+", default=["fp32", "int8", "compile"])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", default="speedups")
    args = ap.parse_args()
    state, peak = machine_state(), matmul_peak()
    gen = HFGenerator(GenerationConfig(max_new_tokens=MAX_NEW))  # its prompt encoding
    model, tok = gen.model, gen.tokenizer
    ids = [gen._encode(p, MAX_NEW) for p in builtin_prompts()[:args.prompts]]
    models, results = {}, {}
    with torch.inference_mode():
        for name in args.variants:
            models[name], setup = variant(name, model)
            warm = run(models[name], tok, ids[:4], 5, 0.8)
            results[name] = {"setup_s": setup, "warmup_s": warm["seconds"], "rounds": []}
        for _ in range(args.rounds):
            for name in args.variants:
                results[name]["rounds"].append({"sampled": run(models[name], tok, ids, 5, 0.8),
                                                "greedy": run(models[name], tok, ids, 1, 0.0)})
    write_results(args.out, *report(args, state, peak, results, tok))


def report(args, state: dict, peak: float, results: dict, tok) -> tuple[dict, str]:
    first = args.variants[0]  # the reference: fp32 by default
    ref = results[first]["rounds"][0]["greedy"]["outputs"]
    base = max(r["sampled"]["tok_s"] for r in results[first]["rounds"])
    rows, data = [], {}
    for name, res in results.items():
        best = {k: max((r[k] for r in res["rounds"]), key=lambda r: r["tok_s"])
                for k in ("sampled", "greedy")}
        same = parity(ref, best["greedy"]["outputs"], tok)
        rows.append([name, best["sampled"]["tok_s"], best["sampled"]["tok_s"] / base,
                     best["greedy"]["tok_s"], f"{same['identical']}/{same['of']}",
                     res["setup_s"] + res["warmup_s"]])
        data[name] = {"setup_s": res["setup_s"], "warmup_s": res["warmup_s"], "parity": same,
                      "rounds": [{k: {m: v for m, v in r[k].items() if m != "outputs"}
                                  for k in r} for r in res["rounds"]]}
    out = {"benchmark": "speedups", "environment": environment(), "matmul_gflops": peak,
           "machine_state": {"start": state, "end": machine_state()},
           "setup": {"prompts": args.prompts, "max_new_tokens": MAX_NEW, "n": 5},
           "variants": data}
    md = (f"# CPU speed-ups for the engine, against fp32\n\n{environment()['date']}; "
          f"{args.prompts} built-in prompts x {MAX_NEW} tokens; fp32 matmul peak "
          f"{peak:.0f} GFLOP/s; quiet at start: {state['quiet']}.\n\n"
          + md_table(["variant", "sampled N=5 tok/s", f"x {first}", "greedy tok/s",
                      f"greedy identical to {first}", "setup + warm-up s"], rows)
          + "".join(f"\n{n}: first greedy divergence {d['parity']['first_divergence']}\n"
                    for n, d in data.items() if d["parity"]["first_divergence"]))
    return out, md


if __name__ == "__main__":
    main()
