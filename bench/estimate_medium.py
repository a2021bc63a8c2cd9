"""The wall time of configs/experiments/cpu-medium.yaml on 2 quiet cores, from measured rates.

Run by hand after bench_medium_rates.py: `.venv/bin/python bench/estimate_medium.py
[--peak 184]`. Reads bench/results/medium-rates.json (each step's share of the matmul peak,
per CPU-second) and the experiment's sizes, and writes bench/results/medium-estimate.md: the
seconds of every step and the split into resumable runs of under two hours.

Each step's work is counted (tokens, FLOPs) from the experiment's sizes and the lengths the
bench measured; its rate is its measured share of the peak times `--peak`, the fp32 2048^2
matmul GFLOP/s of the machine at 2 threads when quiet (184 on this machine,
bench/results/generation.md). That assumes a step keeps its 1-thread share at 2 threads: the
engine's share was 0.39 at 2 threads in generation.md. RAIN's cost is its measured multiple of
greedy decoding (bench/results/eval_suite-rain-harmlessness.md, quiet, 2 threads).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"

PROMPTS, N, PAIR_N = 1000, 5, 2          # Alpaca sample; UDASA's N; RLAIF / RLCD replies
HELD_OUT, BATCH = 0.05, 4                # training.eval_fraction, training.batch_size
TASKS = {"truthfulness": (767, 48), "sentiment": (500, 48), "harmlessness": (300, 96),
         "helpfulness": (300, 96), "robustness": (300, 32)}  # (generations, max new tokens)
RAIN_SAMPLES = {"truthfulness": 100, "sentiment": 100, "harmlessness": 100,
                "helpfulness": 100, "robustness": 300}  # 100 behaviours x 3 prompts
MC_QUESTIONS = 200
RAIN_S_PER_96_TOKENS = 349 / 20          # eval_suite-rain-harmlessness.md: 20 samples, 349 s
LABEL_TOKENS_PER_PAIR = 480              # RLAIF: both orders of ~300 tokens, the stem once


def shares(r: dict) -> dict[str, float]:
    """Each step's FLOPs per CPU-second over the 1-thread matmul's."""
    peak = max(x["cpu"] for x in r["peaks"])
    p = r["dpo"]["params"]

    def steps_share(steps, flops):
        keep = list(zip(steps, flops))[1:]
        return statistics.median(f / c for (_, c), f in keep) / 1e9 / peak

    d, m = r["dpo"], r["mc_shared"]
    return {
        "gen_sampled": r["gen_sampled"]["flops"] / r["gen_sampled"]["cpu"] / 1e9 / peak,
        "gen_greedy": r["gen_greedy"]["flops"] / r["gen_greedy"]["cpu"] / 1e9 / peak,
        "dpo": steps_share(d["steps"], [6 * p * b * n for b, n, _, _ in d["forwards"]]),
        "ref": sum(2 * p * b * n for b, n, _, _ in d["ref"]["forwards"])
        / d["ref"]["wall_cpu"][1] / 1e9 / peak,
        "mc": sum(2 * p * b * n for b, n, _, _ in m["forwards"]) / m["cpu"] / 1e9 / peak}


def step_seconds(r: dict, peak: float) -> dict[str, float]:
    """Seconds of each unit of work on 2 quiet cores."""
    s, p = shares(r), r["dpo"]["params"]
    g, gg, d = r["gen_sampled"], r["gen_greedy"], r["dpo"]
    fill_sampled = g["tokens"] / (g["prompts"] * g["n"] * g["max_new_tokens"])
    fill_greedy = gg["tokens"] / (gg["prompts"] * gg["max_new_tokens"])
    step_tokens = statistics.median(b * n for b, n, _, _ in d["forwards"])
    ref_tokens = sum(b * n for b, n, _, _ in d["ref"]["forwards"]) / d["pairs"]
    m = r["mc_shared"]
    mc_flops = sum(2 * p * b * n for b, n, _, _ in m["forwards"]) / m["questions"]
    fwd_cpu = sum(c for _, _, _, c in m["forwards"])
    return {
        "sampled_token": 2 * p / (s["gen_sampled"] * peak * 1e9),
        "greedy_token": 2 * p / (s["gen_greedy"] * peak * 1e9),
        "fill_sampled": fill_sampled, "fill_greedy": fill_greedy,
        "dpo_step": 6 * p * step_tokens / (s["dpo"] * peak * 1e9),
        "ref_pair": 2 * p * ref_tokens / (s["ref"] * peak * 1e9),
        "label_pair": 2 * p * LABEL_TOKENS_PER_PAIR / (s["ref"] * peak * 1e9),
        "mc_question": mc_flops / (s["mc"] * peak * 1e9),
        "mc_model_fixed": m["cpu"] - fwd_cpu,  # model load, lm-eval's setup: one core
        "embed_reply": r["judge"]["cpu"] / r["judge"]["texts"]}


def plan(t: dict[str, float]) -> list[tuple[str, str, list[tuple[str, float]]]]:
    """(run, its command, [(step, seconds)]) in the order to run them."""
    pairs = PROMPTS * (1 - HELD_OUT)
    dpo = math.ceil(pairs / BATCH) * t["dpo_step"] * 1.03  # + held-out evaluations
    ref = PROMPTS * t["ref_pair"]
    gen5 = PROMPTS * N * 64 * t["fill_sampled"] * t["sampled_token"]
    gen2 = PROMPTS * PAIR_N * 64 * t["fill_sampled"] * t["sampled_token"]
    exp, ws = "configs/experiments/cpu-medium.yaml", "--workspace ws-medium"

    def evals(task: str, methods: int = 7) -> list[tuple[str, float]]:
        n, new = TASKS[task]
        greedy = methods * n * new * t["fill_greedy"] * t["greedy_token"]
        rain = RAIN_SAMPLES[task] * RAIN_S_PER_96_TOKENS * new / 96
        judge = (methods * n + RAIN_SAMPLES[task]) * 2 * t["embed_reply"]
        return [(f"{task}: 7 methods' answers", greedy), (f"{task}: RAIN", rain),
                (f"{task}: judge embeddings", judge)]

    mc = 6 * (MC_QUESTIONS * t["mc_question"] + t["mc_model_fixed"])
    robust = evals("robustness")[0][1] / 7  # one method's robustness answers
    premise = (PROMPTS * N + PROMPTS) * t["embed_reply"]  # the judge's embeddings, once

    def run(methods: str, tasks: str) -> str:
        return f"udasa-eval run --experiment {exp} {ws} {methods}--tasks {tasks}"

    return [
        ("1", run("--methods UDASA ", "robustness"),
         [("UDASA: 5,000 replies", gen5), ("UDASA: reference log-probs", ref),
          ("UDASA: 3 stages of DPO, one epoch", dpo), ("robustness answers", robust),
          ("judge premise (embeddings of the 5,000 replies)", premise)]),
        ("2", run("--methods 'UDASA random pairs' 'UDASA no curriculum' ", "robustness"),
         [("random pairs: reference log-probs", ref), ("random pairs: DPO", dpo),
          ("no curriculum: DPO (UDASA's pairs and log-probs)", dpo),
          ("robustness answers", 2 * robust)]),
        ("3", run("--methods RLAIF ", "robustness"),
         [("RLAIF: 2,000 replies", gen2), ("RLAIF: AI labels", PROMPTS * t["label_pair"]),
          ("RLAIF: reference log-probs", ref), ("RLAIF: DPO", dpo),
          ("robustness answers", robust)]),
        ("4", run("--methods RLCD ", "robustness"),
         [("RLCD: 2,000 replies", gen2), ("RLCD: reference log-probs", ref),
          ("RLCD: DPO", dpo), ("robustness answers", robust)]),
        ("5", run("", "truthfulness sentiment"), evals("truthfulness") + evals("sentiment")),
        ("6", run("", "harmlessness"), evals("harmlessness")),
        ("7", run("", "helpfulness"), evals("helpfulness")),
        ("8", run("", "robustness truthfulqa_mc"),
         evals("robustness") + [("truthfulqa_mc: 6 sets of weights x 200 questions", mc)]),
        *[(f"{9 + i} (axes, optional)",
           (f"udasa-eval run --experiment configs/experiments/cpu-medium-axes.yaml {ws} "
           f"--methods UDASA 'UDASA {axis} alone'"),
           [(f"{axis} alone: reference log-probs (some pairs are UDASA's)", ref),
            (f"{axis} alone: DPO", dpo),
            (f"{axis} alone: answers on every task",
             sum(sec for task in TASKS for name, sec in evals(task) if "answers" in name) / 7),
            (f"{axis} alone: truthfulqa_mc", mc / 6)])
          for i, axis in enumerate(("sem", "fact", "val"))]]


def markdown(r: dict, peak: float) -> str:
    t = step_seconds(r, peak)
    runs = plan(t)
    lines = ["# cpu-medium: estimated wall time on 2 quiet cores", "",
             (f"From bench/results/medium-rates.json (each step's measured share of the matmul "
             f"peak) at a quiet 2-thread peak of {peak:.0f} GFLOP/s; see "
             "bench/estimate_medium.py for what each line counts. Every command resumes from "
             "the workspace (content-keyed: a rerun after a kill redoes only the unfinished "
             "stage or batch)."), "",
             "| run | step | minutes |", "|---|---|---|"]
    total = 0.0
    for run, _, steps in runs:
        for name, sec in steps:
            lines.append(f"| {run} | {name} | {sec / 60:.0f} |")
        run_s = sum(s for _, s in steps)
        total += run_s
        lines.append(f"| {run} | **run {run} in all** | **{run_s / 60:.0f}** |")
    core = sum(sum(x for _, x in steps) for run, _, steps in runs if "optional" not in run)
    lines += ["", (f"Total: {core / 3600:.1f} h for cpu-medium.yaml (runs 1-8), "
              f"{total / 3600:.1f} h with the axes alone."), "", "Commands:", ""]
    lines += [f"{run}. `{cmd}`" for run, cmd, _ in runs]
    lines += ["", ("After run 8, `udasa-eval run --experiment configs/experiments/cpu-medium.yaml "
              "--workspace ws-medium` once more: everything is stored, so it only writes the "
              "tables and the judge premise of each UDASA-kind run (minutes)."), "",
              "Unit costs (seconds): " + ", ".join(f"{k} {v:.3g}" for k, v in t.items()), ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--peak", type=float, default=184.0,
                    help="quiet 2-thread fp32 matmul GFLOP/s of the machine that will run it")
    ap.add_argument("--rates", type=Path, default=RESULTS / "medium-rates.json")
    args = ap.parse_args()
    text = markdown(json.loads(args.rates.read_text()), args.peak)
    (RESULTS / "medium-estimate.md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
