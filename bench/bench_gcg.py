"""GCG: ours (attacks.gcg) vs nanogcg 0.2.3, time per step and loss after K steps.

Same model (the embedded SmolLM2-135M-Instruct, float32, CPU), same behaviour (AdvBench row
`--behaviour`), same seeds (one round per seed), same settings (steps, search width, top-k,
the paper's "! " x 20 init after one space, appended to the goal as nanogcg does, non-ASCII
tokens disallowed, re-tokenisation filter on, no early stop), so the same prompt tokens.
nanogcg runs with `use_prefix_cache=False`: its prefix cache crashes on transformers 5 (the
bench records the error). Each tool runs in its own subprocess (nanogcg seeds torch globally
and switches on deterministic algorithms), tools alternate per round. Per-step times come
from the step boundaries (ours: `GCGResult.step_times_s`; nanogcg: the start of each
`compute_token_gradient` call). A cross-check scores nanogcg's best string with our loss
function (the same objective on the same tokens should give the same number).

Goal: ours <= 0.5x nanogcg's time per step, with a loss curve no worse.

    .venv/bin/python bench/bench_gcg.py [--steps 10] [--width 64] [--topk 64] [--rounds 2]
                                        [--threads 1]

Writes bench/results/gcg.{json,md} (`--out STEM` to change); `--merge A.json B.json --out C`
combines runs of other seeds into one report (adds no runs).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import environment, machine_state, md_table, warn_if_busy, write_results

INIT = "! ! ! ! ! ! ! ! ! ! ! ! ! ! ! ! ! ! ! !"


def _setup(args):
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from attacks.advbench import load_behaviours
    from udasa.models import load_causal_lm

    model, tok = load_causal_lm("embedded")
    behaviour = load_behaviours()[args.behaviour]
    return model, tok, behaviour


def worker_ours(args) -> dict:
    from attacks.criteria import Criterion, PrefixList
    from attacks.gcg import GCGConfig, run_gcg

    model, tok, b = _setup(args)
    # nanogcg appends the suffix to the goal with no separator, its init " ! ! ..." carrying
    # the space; separator="" with the same init gives ours the same tokens and the same search
    # space (with separator=" ", the llm-attacks format, the first suffix token always starts
    # with a space).
    cfg = GCGConfig(num_steps=args.steps, search_width=args.width, topk=args.topk,
                    init=" " + INIT, separator="", seed=args.seed, early_stop=False,
                    test_every=0, positions=args.positions)
    crit = Criterion(PrefixList("bench", "bench", "", ("I'm sorry",)), 1)  # final test only
    r = run_gcg((model, tok), b, cfg, criterion=crit, progress=False)
    return {"losses": r.losses, "best_loss": r.best_loss, "init_loss": r.init_loss,
            "step_times_s": r.step_times_s, "suffix": r.suffix, "wall_time_s": r.wall_time_s,
            "n_candidates": r.n_candidates}


def worker_nanogcg(args) -> dict:
    import nanogcg
    import torch
    from nanogcg import gcg as ngcg

    from attacks.gcg import GCGConfig, candidate_losses

    model, tok, b = _setup(args)
    # nanogcg strips `tokenizer.bos_token` from the rendered template with str.replace, and
    # SmolLM2's bos_token is <|im_start|>: every turn marker would vanish from its prompt.
    # A copy of the tokenizer without a bos_token gives it the same prompt tokens as ours
    # (SmolLM2's tokenizer adds no BOS, and its chat template does not use bos_token).
    from transformers import AutoTokenizer

    ntok = AutoTokenizer.from_pretrained(tok.name_or_path)
    ntok.bos_token = None
    stamps: list[float] = []
    original = ngcg.GCG.compute_token_gradient

    def stamped(self, optim_ids):
        stamps.append(time.perf_counter())
        return original(self, optim_ids)

    ngcg.GCG.compute_token_gradient = stamped
    n_candidates: list[int] = []  # candidates left after nanogcg's filter, per step
    original_filter = ngcg.filter_ids

    def counted(ids, tokenizer):
        kept = original_filter(ids, tokenizer)
        n_candidates.append(int(kept.shape[0]))
        return kept

    ngcg.filter_ids = counted
    cfg = nanogcg.GCGConfig(num_steps=args.steps, search_width=args.width, topk=args.topk,
                            optim_str_init=" " + INIT, seed=args.seed, use_prefix_cache=False,
                            allow_non_ascii=False, filter_ids=True, early_stop=False,
                            verbosity="WARNING")
    start = time.perf_counter()
    r = nanogcg.run(model, ntok, b.goal, b.target, cfg)
    end = time.perf_counter()
    bounds = stamps + [end]
    ids = tok(r.best_string, add_special_tokens=False, return_tensors="pt")["input_ids"]
    ours = float(candidate_losses(model, tok, b, ids, GCGConfig(separator=""))[0])
    out = {"losses": r.losses, "best_loss": r.best_loss, "suffix": r.best_string,
           "step_times_s": [bounds[i + 1] - bounds[i] for i in range(len(stamps))],
           "wall_time_s": end - start, "our_loss_of_best_string": ours,
           "n_candidates": n_candidates}
    # the default (prefix cache on) on transformers 5: record how it fails
    ngcg.GCG.compute_token_gradient = original
    if not args.check_default:
        return out
    try:
        nanogcg.run(model, ntok, b.goal, b.target, nanogcg.GCGConfig(
            num_steps=1, search_width=8, topk=8, optim_str_init=" " + INIT, seed=args.seed,
            use_prefix_cache=True, verbosity="WARNING"))
        out["prefix_cache_default"] = "ran"
    except Exception as exc:  # noqa: BLE001 - recorded, not handled
        out["prefix_cache_default"] = f"{type(exc).__name__}: {str(exc)[:200]}"
    del torch
    return out


def run_worker(tool: str, args, seed_round: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        cmd = [sys.executable, __file__, "--worker", tool, "--worker-out", str(out),
               "--steps", str(args.steps), "--width", str(args.width), "--topk", str(args.topk),
               "--seed", str(args.seed + seed_round), "--behaviour", str(args.behaviour),
               "--threads", str(args.threads or 0), "--positions", args.positions]
        cmd += ["--check-default"] if seed_round == 0 else []
        env = os.environ | {"TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
        start = time.perf_counter()
        subprocess.run(cmd, check=True, env=env)
        data = json.loads(out.read_text())
        data["process_s"] = time.perf_counter() - start
        return data


def summary(runs: list[dict]) -> dict:
    steps = [t for r in runs for t in r["step_times_s"]]
    cands = [n for r in runs for n in r.get("n_candidates", [])]
    return {"median_step_s": statistics.median(steps), "mean_step_s": statistics.fmean(steps),
            "final_loss": statistics.fmean(r["losses"][-1] for r in runs),
            "best_loss": statistics.fmean(r["best_loss"] for r in runs),
            "candidates_per_step": statistics.fmean(cands) if cands else float("nan")}


def paired_loss(runs: dict[str, list[dict]]) -> dict:
    """Best loss after the same steps, ours - nanogcg, paired by seed: mean, bootstrap CI,
    sign test (negative = ours lower)."""
    from evals.stats import paired_bootstrap, sign_test

    by_seed = {r["seed"]: r["best_loss"] for r in runs["nanogcg"]}
    a = [r["best_loss"] for r in runs["ours"] if r["seed"] in by_seed]
    b = [by_seed[r["seed"]] for r in runs["ours"] if r["seed"] in by_seed]
    boot, sign = paired_bootstrap(a, b), sign_test(a, b)
    return {"n": len(a), "mean_diff": boot.mean_diff, "ci": [boot.low, boot.high],
            "p_bootstrap": boot.p_value, "ours_higher": sign.wins, "ours_lower": sign.losses,
            "p_sign": sign.p_value}


def loss_at(run: dict, seconds: float) -> float:
    """The best loss a run had reached after `seconds` of steps (its init loss, if known,
    before the first step ends)."""
    elapsed, best = 0.0, run.get("init_loss", float("nan"))
    for t, loss in zip(run["step_times_s"], run["losses"]):
        elapsed += t
        if elapsed > seconds:
            break
        best = loss if math.isnan(best) else min(best, loss)
    return best


def render(data: dict) -> str:
    """The markdown report of one or more merged result files."""
    runs, st = data["runs"], data["settings"]
    s = {tool: summary(v) for tool, v in runs.items()}
    ratio = s["ours"]["median_step_s"] / s["nanogcg"]["median_step_s"]
    seeds = sorted({r["seed"] for v in runs.values() for r in v})
    quiet = all(m.get("quiet") for m in data["machine_state"].values())
    rows = [[tool, v["median_step_s"], v["mean_step_s"], v["final_loss"], v["best_loss"],
             v["candidates_per_step"]] for tool, v in s.items()]
    d = paired_loss(runs)
    per_seed = []
    for r in runs["ours"]:
        other = next(n for n in runs["nanogcg"] if n["seed"] == r["seed"])
        budget = sum(r["step_times_s"])
        per_seed.append([r["seed"], r["best_loss"], other["best_loss"], budget,
                         loss_at(other, budget)])
    n0 = next(n for n in runs["nanogcg"] if "prefix_cache_default" in n)
    return (
        f"# GCG: ours vs nanogcg 0.2.3{'' if quiet else ' (machine NOT quiet)'}\n\n"
        f"SmolLM2-135M-Instruct fp32 on CPU ({st['threads'] or 'default'} thread(s)), AdvBench "
        f"row {st['behaviour_row']}, {st['steps']} steps, search width {st['search_width']}, "
        f"top-k {st['topk']}, init {st['init']!r} after the goal with separator "
        f"{st['separator']!r}, our candidate positions {st.get('positions', 'spread')!r}, "
        f"seeds {', '.join(map(str, seeds))} (one run per tool and seed; "
        "means over seeds)."
        + (f" The {', '.join(st['reused']['tools'])} runs are reused from "
           f"`{Path(st['reused']['file']).name}` ({st['reused']['date']}), unchanged code and "
           "settings on that side." if st.get("reused") else "")
        + "\n\n"
        + md_table(["tool", "median s/step", "mean s/step", f"loss after {st['steps']}",
                    "best loss", "candidates evaluated / step"], rows)
        + f"\nours / nanogcg time per step (median): **{ratio:.2f}x** (goal <= 0.5x)\n\n"
        f"Best loss after {st['steps']} steps, ours - nanogcg paired by seed (n = {d['n']}): "
        f"**{d['mean_diff']:+.4f}** [95% bootstrap CI {d['ci'][0]:+.4f}, {d['ci'][1]:+.4f}], "
        f"p = {d['p_bootstrap']:.3g}; ours lower on {d['ours_lower']} seeds, higher on "
        f"{d['ours_higher']} (sign test p = {d['p_sign']:.3g}).\n\n"
        "Per seed: best loss after the same number of steps, and nanogcg's best loss after "
        "the wall time ours took for all its steps:\n\n"
        + md_table(["seed", "ours", "nanogcg", "ours' time (s)", "nanogcg at that time"],
                   per_seed)
        + "\nLoss after each step:\n\n"
        + md_table(["tool", "seed", "s/step (median)", "losses"],
                   [[tool, r["seed"], statistics.median(r["step_times_s"]),
                     " ".join(f"{x:.3f}" for x in r["losses"])]
                    for tool, v in runs.items() for r in v])
        + f"\nCross-check: nanogcg's best loss {n0['best_loss']:.4f}; our loss function on its "
        f"best string {n0['our_loss_of_best_string']:.4f}.\n\n"
        f"nanogcg with its default prefix cache on transformers 5: "
        f"`{n0['prefix_cache_default']}`\n")


def merge(paths: list[str]) -> dict:
    """Result files of the same settings (e.g. different seeds) as one."""
    files = [json.loads(Path(p).read_text()) for p in paths]
    data = files[0] | {"runs": {"ours": [], "nanogcg": []}, "machine_state": {},
                       "merged_from": paths}
    for i, f in enumerate(files):
        keep = ("steps", "search_width", "topk", "init", "separator", "threads")
        if any(f["settings"][k] != files[0]["settings"][k] for k in keep):
            raise SystemExit(f"{paths[i]}: different settings from {paths[0]}")
        for tool in ("ours", "nanogcg"):
            data["runs"][tool] += f["runs"][tool]
        data["machine_state"] |= {f"{i}_{k}": v for k, v in f["machine_state"].items()}
    s = {tool: summary(v) for tool, v in data["runs"].items()}
    data["summary"] = s
    data["paired_best_loss"] = paired_loss(data["runs"])
    data["ratio_ours_over_nanogcg_median_step"] = (s["ours"]["median_step_s"]
                                                   / s["nanogcg"]["median_step_s"])
    return data


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--topk", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--behaviour", type=int, default=0, help="AdvBench row (0-based)")
    p.add_argument("--rounds", type=int, default=2, help="one per seed: seed, seed+1, ...")
    p.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's choice)")
    p.add_argument("--out", default="gcg")
    p.add_argument("--positions", choices=["spread", "random"], default="spread",
                   help="our GCGConfig.positions")
    p.add_argument("--tools", nargs="+", choices=["ours", "nanogcg"],
                   default=["ours", "nanogcg"], help="run only these")
    p.add_argument("--reuse", metavar="JSON",
                   help="take the other tool's runs from this result file (same settings and "
                        "seeds; e.g. after changing only our side)")
    p.add_argument("--merge", nargs="+", metavar="JSON",
                   help="no runs: merge these result files (e.g. other seeds) into --out")
    p.add_argument("--worker", choices=["ours", "nanogcg"], help=argparse.SUPPRESS)
    p.add_argument("--worker-out", help=argparse.SUPPRESS)
    p.add_argument("--check-default", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        fn = worker_ours if args.worker == "ours" else worker_nanogcg
        Path(args.worker_out).write_text(json.dumps(fn(args)))
        return
    if args.merge:
        data = merge(args.merge)
        write_results(args.out, data, render(data))
        return

    before = machine_state()
    warn_if_busy(before, "start")
    runs: dict[str, list[dict]] = {"ours": [], "nanogcg": []}
    reused = None
    if args.reuse:
        reused = json.loads(Path(args.reuse).read_text())
        st = reused["settings"]
        mine = {"steps": args.steps, "search_width": args.width, "topk": args.topk,
                "behaviour_row": args.behaviour, "threads": args.threads}
        if any(st[k] != v for k, v in mine.items()):
            raise SystemExit(f"{args.reuse}: other settings ({st}) than this run ({mine})")
        want = set(range(args.seed, args.seed + args.rounds))
        for tool in {"ours", "nanogcg"} - set(args.tools):
            runs[tool] = [r for r in reused["runs"][tool] if r["seed"] in want]
            if {r["seed"] for r in runs[tool]} != want:
                raise SystemExit(f"{args.reuse}: {tool} lacks some of seeds {sorted(want)}")
    for r in range(args.rounds):
        for tool in (("ours", "nanogcg") if r % 2 == 0 else ("nanogcg", "ours")):
            if tool not in args.tools:
                continue
            print(f"round {r + 1} (seed {args.seed + r}): {tool} ...", flush=True)
            runs[tool].append(run_worker(tool, args, r) | {"seed": args.seed + r})
    after = machine_state()
    warn_if_busy(after, "end")
    s = {tool: summary(v) for tool, v in runs.items()}
    states = {"start": before, "end": after}
    if reused:
        states |= {f"reused_{k}": v for k, v in reused["machine_state"].items()}
    data = {"environment": environment(), "machine_state": states,
            "settings": {"model": "embedded SmolLM2-135M-Instruct (float32, CPU)",
                         "steps": args.steps, "search_width": args.width, "topk": args.topk,
                         "seed": args.seed, "behaviour_row": args.behaviour, "init": " " + INIT,
                         "separator": "", "rounds": args.rounds, "threads": args.threads,
                         "positions": args.positions,
                         "nanogcg": "0.2.3, use_prefix_cache=False",
                         "reused": ({"file": args.reuse, "tools": sorted({"ours", "nanogcg"}
                                                                         - set(args.tools)),
                                     "date": reused["environment"]["date"]}
                                    if reused else None)},
            "summary": s, "paired_best_loss": paired_loss(runs), "goal": "<= 0.5",
            "ratio_ours_over_nanogcg_median_step": (s["ours"]["median_step_s"]
                                                    / s["nanogcg"]["median_step_s"]),
            "runs": runs}
    write_results(args.out, data, render(data))


if __name__ == "__main__":
    main()
