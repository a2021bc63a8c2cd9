"""Benchmark: scoring responses batched vs one at a time, for each axis' embedded default scorer.

Run by hand: `.venv/bin/python bench/bench_scoring.py [--groups 200] [--quick]`.
Writes bench/results/scoring.json and bench/results/scoring.md (see bench/README.md).

Measured, after a warm-up call per scorer:
  * responses/s of `scorer.score(all groups)` (the scorer's own batch size) vs one call per
    response (semantic: one call per group of 5 with ScorerConfig(batch_size=1), so the encoder
    runs one sentence per forward); the ratio is the batching speed-up.
  * the SBERT scorer's achieved FLOP/s (FLOPs counted analytically from the (batch, padded
    length) of every forward the model really ran, cross-checked with FlopCounterMode) against
    this CPU's measured fp32 matmul peak (2048x2048 torch.matmul, best of several runs).
  * the batched SBERT scorer at batch sizes 32, 64, 128, 256.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from _common import environment, md_table, synthetic_groups, write_results  # noqa: E402

from udasa.config import ScorerConfig  # noqa: E402
from udasa.scorers import make_scorer  # noqa: E402
from udasa.scorers.semantic import load_sentence_model  # noqa: E402

DEFAULTS = {"sem": "sbert", "fact": "nli-lr", "val": "profanity"}
# all-MiniLM-L6-v2
LAYERS, HIDDEN, INTER = 6, 384, 1536


def matmul_peak(n: int = 2048, runs: int = 10) -> float:
    """Best-of-`runs` fp32 FLOP/s of an n x n @ n x n matmul with the current torch threads."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(runs):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best


def minilm_flops(batch: int, length: int) -> int:
    """FLOPs of one BertModel forward on a (batch, padded length) input: the per-layer QKV,
    output, and FFN matmuls, attention scores and weighted sum, and the pooler."""
    linear = 2 * batch * length * (4 * HIDDEN * HIDDEN + 2 * HIDDEN * INTER)
    attention = 2 * 2 * batch * length * length * HIDDEN
    return LAYERS * (linear + attention) + 2 * batch * HIDDEN * HIDDEN


class ForwardRecorder:
    """Hooks on the SBERT Transformer module (it calls BertModel.forward directly, bypassing
    BertModel's own hooks): (batch, padded length) and wall time of every forward."""

    def __init__(self):
        self.encoder = load_sentence_model("embedded")[0]
        self.shapes: list[tuple[int, int]] = []
        self.forward_s = 0.0
        self._t = 0.0
        self._handles = [
            self.encoder.register_forward_pre_hook(self._pre, with_kwargs=True),
            self.encoder.register_forward_hook(self._post),
        ]

    def _pre(self, module, args, kwargs):
        features = args[0] if args else kwargs["features"]
        self.shapes.append(tuple(features["input_ids"].shape))
        self._t = time.perf_counter()

    def _post(self, module, args, output):
        self.forward_s += time.perf_counter() - self._t

    def reset(self):
        self.shapes, self.forward_s = [], 0.0

    def flops(self) -> int:
        return sum(minilm_flops(b, n) for b, n in self.shapes)

    def tokens(self) -> tuple[int, int]:
        """(padded tokens, forwards)."""
        return sum(b * n for b, n in self.shapes), len(self.shapes)

    def close(self):
        for h in self._handles:
            h.remove()


def timed(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def bench_axis(axis: str, groups, repeats: int, rec: ForwardRecorder | None) -> dict:
    n = sum(len(rs) for _, rs in groups)
    batched = make_scorer(axis, ScorerConfig(DEFAULTS[axis]))
    batched.score(groups[:4])  # warm-up (loads the model, first-call allocations)
    if rec:
        rec.reset()
    t_batched = timed(lambda: batched.score(groups), repeats)
    row = {"axis": axis, "scorer": DEFAULTS[axis], "responses": n,
           "batch_size": batched.cfg.batch_size, "batched_s": t_batched}
    if rec:  # one repeat for sem: the recorder saw exactly one batched pass
        flops = rec.flops()
        padded, forwards = rec.tokens()
        row.update(flops=flops, padded_tokens=padded, forwards=forwards,
                   forward_s=rec.forward_s, batched_flop_s=flops / t_batched,
                   forward_flop_s=flops / rec.forward_s)

    if axis == "sem":  # needs a group: one call per group, encoder batch size 1
        single = make_scorer(axis, ScorerConfig(DEFAULTS[axis], batch_size=1))
        single.score(groups[:1])
        if rec:
            rec.reset()

        def one_at_a_time():
            for g in groups:
                single.score([g])
        row["single_unit"] = "1 group of 5 per call, batch_size=1"
    else:
        single = batched
        single.score([(groups[0][0], groups[0][1][:1])])
        items = [(p, [r]) for p, rs in groups for r in rs]

        def one_at_a_time():
            for it in items:
                single.score([it])
        row["single_unit"] = "1 response per call"
    t_single = timed(one_at_a_time, repeats)
    row.update(single_s=t_single, batched_rps=n / t_batched, single_rps=n / t_single,
               ratio=t_single / t_batched)
    if rec:
        row.update(single_flop_s=rec.flops() / t_single,
                   single_forward_flop_s=rec.flops() / rec.forward_s)
    return row


def flop_counter_check(groups, rec: ForwardRecorder, k: int = 64) -> dict:
    """Count FLOPs of one batched encode of k texts with FlopCounterMode and with the
    analytic formula over the recorded shapes; report both (CPU SDPA kernels may be missed
    by FlopCounterMode, which would show as a small deficit)."""
    from torch.utils.flop_counter import FlopCounterMode

    texts = [r for _, rs in groups for r in rs][:k]
    model = load_sentence_model("embedded")
    rec.reset()
    with FlopCounterMode(display=False) as counter:
        model.encode(texts, batch_size=32, show_progress_bar=False)
    counted = counter.get_total_flops()
    analytic = rec.flops()
    return {"texts": len(texts), "flop_counter": counted, "analytic": analytic,
            "counter_over_analytic": counted / analytic,
            "by_op": {str(op): int(v) for op, v in
                      counter.get_flop_counts().get("Global", {}).items()}}


def sweep(groups, sizes, rec: ForwardRecorder) -> list[dict]:
    n = sum(len(rs) for _, rs in groups)
    out = []
    for bs in sizes:
        scorer = make_scorer("sem", ScorerConfig("sbert", batch_size=bs))
        scorer.score(groups[:max(1, bs // 5)])  # warm-up at this batch size
        rec.reset()
        t = time.perf_counter()
        scorer.score(groups)
        t = time.perf_counter() - t
        padded, forwards = rec.tokens()
        out.append({"batch_size": bs, "seconds": t, "responses_s": n / t,
                    "flop_s": rec.flops() / t, "forward_flop_s": rec.flops() / rec.forward_s,
                    "forward_s": rec.forward_s, "padded_tokens": padded, "forwards": forwards})
        print(f"  sweep bs={bs}: {n / t:.1f} responses/s, "
              f"{rec.flops() / t / 1e9:.1f} GFLOP/s", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--groups", type=int, default=200)
    ap.add_argument("--per-group", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=3,
                    help="best-of repeats for the fast (non-neural) scorers")
    ap.add_argument("--batch-sizes", default="32,64,128,256")
    ap.add_argument("--quick", action="store_true", help="40 groups, sweep 32 and 128 only")
    args = ap.parse_args()
    if args.quick:
        args.groups, args.batch_sizes = 40, "32,128"

    groups = synthetic_groups(args.groups, args.per_group, args.seed)
    words = [len(r.split()) for _, rs in groups for r in rs]
    print(f"{len(groups)} groups x {args.per_group} = {len(words)} responses, "
          f"{min(words)}-{max(words)} words (mean {sum(words) / len(words):.1f})", flush=True)

    peak = matmul_peak()
    print(f"fp32 matmul peak: {peak / 1e9:.1f} GFLOP/s ({torch.get_num_threads()} threads)",
          flush=True)

    load_sentence_model("embedded")
    rec = ForwardRecorder()
    rows = []
    for axis in ("sem", "fact", "val"):
        row = bench_axis(axis, groups, 1 if axis == "sem" else args.repeats,
                         rec if axis == "sem" else None)
        rows.append(row)
        print(f"{axis}: batched {row['batched_rps']:.1f} r/s, one-at-a-time "
              f"{row['single_rps']:.1f} r/s, ratio {row['ratio']:.1f}x", flush=True)

    check = flop_counter_check(groups, rec)
    print(f"FlopCounterMode / analytic on {check['texts']} texts: "
          f"{check['counter_over_analytic']:.3f}", flush=True)
    sizes = [int(s) for s in args.batch_sizes.split(",") if s]
    sw = sweep(groups, sizes, rec)
    rec.close()
    best = max(sw, key=lambda r: r["responses_s"])
    sem = rows[0]

    data = {
        "benchmark": "scoring", "environment": environment(),
        "setup": {"groups": len(groups), "per_group": args.per_group, "seed": args.seed,
                  "responses": len(words), "words_min": min(words), "words_max": max(words),
                  "words_mean": sum(words) / len(words)},
        "matmul_peak_flop_s": peak,
        "axes": rows,
        "sbert": {"flop_s": sem["batched_flop_s"], "forward_only_flop_s": sem["forward_flop_s"],
                  "fraction_of_peak": sem["batched_flop_s"] / peak,
                  "forward_only_fraction_of_peak": sem["forward_flop_s"] / peak,
                  "single_fraction_of_peak": sem["single_flop_s"] / peak,
                  "flop_counter_check": check},
        "sbert_batch_sweep": sw, "sbert_best_batch_size": best["batch_size"],
        "goals": {
            "batched_vs_single_ratio_min": 10,
            "ratio_met": {r["axis"]: r["ratio"] >= 10 for r in rows},
            "sbert_fraction_of_peak_min": 0.40,
            "sbert_met": sem["batched_flop_s"] / peak >= 0.40,
            "sbert_best_sweep_fraction_of_peak": best["flop_s"] / peak,
        },
    }

    md = [f"# Scoring benchmark\n\n{len(words)} synthetic responses ({len(groups)} groups x "
          f"{args.per_group}, {min(words)}-{max(words)} words, mean "
          f"{data['setup']['words_mean']:.1f}); {data['environment']['cpu']}, "
          f"{data['environment']['torch_threads']} torch threads, torch "
          f"{data['environment']['torch']}; {data['environment']['date']}.\n",
          "## Batched vs one at a time (goal: >= 10x)\n",
          md_table(["axis", "scorer", "batched resp/s", "one-at-a-time resp/s", "ratio",
                    "one-at-a-time unit"],
                   [[r["axis"], r["scorer"], r["batched_rps"], r["single_rps"],
                     f"{r['ratio']:.1f}x", r["single_unit"]] for r in rows]),
          "\n## SBERT achieved FLOP/s (goal: >= 40% of fp32 matmul peak)\n",
          md_table(["measure", "GFLOP/s", "% of peak"],
                   [["fp32 matmul peak (2048^2, best of 10)", peak / 1e9, "100%"],
                    ["sbert scorer, batched (bs 32, whole score call)",
                     sem["batched_flop_s"] / 1e9, f"{100 * sem['batched_flop_s'] / peak:.1f}%"],
                    ["sbert encoder forward only, batched (bs 32)",
                     sem["forward_flop_s"] / 1e9, f"{100 * sem['forward_flop_s'] / peak:.1f}%"],
                    ["sbert scorer, one sentence per forward",
                     sem["single_flop_s"] / 1e9, f"{100 * sem['single_flop_s'] / peak:.1f}%"],
                    [f"sbert scorer, best sweep (bs {best['batch_size']})",
                     best["flop_s"] / 1e9, f"{100 * best['flop_s'] / peak:.1f}%"]]),
          f"\nFLOPs: analytic over the real (batch, padded length) of each forward; "
          f"{sem['flops'] / 1e9:.0f} GFLOP for the batched pass ({sem['padded_tokens']} padded "
          f"tokens, {sem['forwards']} forwards). FlopCounterMode on {check['texts']} texts "
          f"counts {100 * check['counter_over_analytic']:.1f}% of the analytic figure.\n",
          "\n## SBERT batch-size sweep\n",
          md_table(["batch size", "resp/s", "GFLOP/s", "% of peak", "forward-only GFLOP/s"],
                   [[r["batch_size"], r["responses_s"], r["flop_s"] / 1e9,
                     f"{100 * r['flop_s'] / peak:.1f}%", r["forward_flop_s"] / 1e9]
                    for r in sw]),
          f"\nBest: batch size {best['batch_size']} ({best['responses_s']:.1f} resp/s).\n"]
    write_results("scoring", data, "\n".join(md))


if __name__ == "__main__":
    main()
