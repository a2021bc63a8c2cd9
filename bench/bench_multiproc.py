"""One process against two (gloo, on this machine's CPUs) on the same DPO training, back to
back in one run, and a kill of either rank in the middle of a stage, resumed.

The training: a tiny 2-layer Llama policy built in-process (SmolLM2's tokenizer), 24 built-in
prompts x 3 samples of 8 tokens, three curriculum stages, batches of 3 pairs (so two processes
get uneven batches and null pairs, udasa/rank_split.py), an NLL term in the last stage. The
pairs are made once by one process; then `udasa train` runs on a copy with one process and
on a copy with two (`torchrun --standalone --nproc_per_node 2`), alternating, `--rounds`
times. Each two-process run is compared with the one-process run: stage metrics and final
held-out metrics (rel 1e-3, abs 1e-4, the chaos bench's tolerance), the final weights (drift
against how far training moved them), the row count of every table and the files written.

    .venv/bin/python bench/bench_multiproc.py                 # writes bench/results/multiproc.*
    .venv/bin/python bench/bench_multiproc.py --rounds 1 --no-kills --out multiproc-quick
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

import chaos
from _common import ROOT, environment, machine_state, md_table, warn_if_busy, write_results

VOLATILE = chaos.VOLATILE_METRICS | {"eval_model_preparation_time"}
ACCELERATE_CONFIG = ROOT / "configs" / "accelerate" / "cpu-ddp.yaml"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(n: int = 2) -> list[str]:
    """`torchrun --standalone --nproc_per_node n` (a free port of its own)."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc_per_node={n}"]


def accelerate_launch() -> list[str]:
    """`accelerate launch` with the shipped CPU config (two processes, gloo)."""
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
            str(ACCELERATE_CONFIG), "--main_process_port", str(free_port())]


def train_args(setup: chaos.Setup, ws: Path, step: str = "train") -> list[str]:
    """The training this bench and tests/test_multiproc.py run (`step`: train or run)."""
    args = setup.run_args(ws)
    args[0] = step
    for key, value in {"data.limit": 24, "training.batch_size": 3,
                       "training.last_stage_nll": 0.5}.items():
        args += ["--set", f"{key}={value}"]
    return args


def make_pairs(setup: chaos.Setup, ws: Path, log: Path) -> None:
    """Generate, score, pair and stage with one process (training off)."""
    code = chaos.launch("run", [*train_args(setup, ws, "run"), "--set",
                                "training.enabled=false"], None, None, log)
    if code != 0:
        raise SystemExit(f"making the pairs failed:\n{log.read_text()[-3000:]}")


def timed(setup: chaos.Setup, base: Path, ws: Path, launcher: list[str] | None,
          log: Path) -> float:
    """`udasa train` on a copy of `base` at `ws`; its wall time in seconds."""
    shutil.copytree(base, ws)
    start = time.perf_counter()
    code = chaos.launch("run", train_args(setup, ws), None, None, log, launcher)
    if code != 0:
        raise SystemExit(f"training failed ({launcher}):\n{log.read_text()[-3000:]}")
    return time.perf_counter() - start


def outcome(ws: Path) -> dict:
    """What two processes must reproduce: chaos's run outcome without timings, the rows of
    every table, the files (checkpoint and plot names)."""
    out = chaos.run_outcome(ws)
    out["checkpoints"] = [[s, n, {k: v for k, v in m.items() if k not in VOLATILE}]
                          for s, n, m in out["checkpoints"]]
    out["train_results"] = [{k: v for k, v in m.items() if k not in VOLATILE}
                            for m in out["train_results"]]
    out["rows"] = chaos.counts(ws / "udasa.sqlite")
    out["files"] = sorted(str(p.relative_to(ws)) for p in ws.rglob("*")
                          if p.is_file() and not p.name.startswith("udasa.sqlite"))
    return out


def worst_difference(got, want, path: str = "") -> tuple[float, str]:
    """The largest relative difference of two nested metric structures, and where."""
    if isinstance(got, dict):
        return max((worst_difference(got[k], want[k], f"{path}/{k}") for k in got
                    if k in want), default=(0.0, ""))
    if isinstance(got, list | tuple):
        return max((worst_difference(a, b, f"{path}[{i}]") for i, (a, b) in
                    enumerate(zip(got, want))), default=(0.0, ""))
    if isinstance(got, float) and isinstance(want, int | float) and not math.isnan(got):
        return abs(got - want) / max(abs(got), abs(want), 1e-12), path
    return 0.0, ""


def compare(got: dict, want: dict, initial: str) -> dict:
    """Checks of a multi-process outcome against the one-process one."""
    checks = chaos.compare("run", got, want)
    checks["row_counts"] = got["rows"] == want["rows"]
    checks["files"] = got["files"] == want["files"]
    worst, where = worst_difference([got["checkpoints"], got["train_results"]],
                                    [want["checkpoints"], want["train_results"]])
    drift = chaos.weight_drift(got["final_weights"], want["final_weights"], initial)
    return {"checks": checks, "identical": all(checks.values()),
            "worst_metric_rel_diff": float(f"{worst:.3g}"), "worst_metric": where,
            "weight_drift": None if drift is None else float(f"{drift:.3g}"),
            "row_diffs": {t: [got["rows"][t], want["rows"][t]] for t in want["rows"]
                          if got["rows"].get(t) != want["rows"][t]},
            "file_diffs": sorted(set(got["files"]) ^ set(want["files"]))}


def killed_and_resumed(setup: chaos.Setup, base: Path, root: Path, step: str, delay: float,
                       launcher: list[str] | None = None, rank: int = 0) -> dict:
    """A training of a copy of `base` whose rank `rank` SIGKILLs itself `delay` s into `step`
    (a launcher then ends the other ranks), resumed with the same launcher."""
    ws = root / "ws"
    shutil.copytree(base, ws)
    log = root / "log.txt"
    code = chaos.launch("run", train_args(setup, ws), root / "timeline-{rank}.jsonl",
                        {"step": step, "delay": delay, "rank": rank}, log, launcher)
    events = chaos.read_timeline(root / f"timeline-{rank}.jsonl")
    killed = code == -9 or "Signal 9 (SIGKILL)" in log.read_text()
    after_kill = chaos.integrity(ws / "udasa.sqlite")
    resumed = chaos.launch("run", train_args(setup, ws), None, None, log, launcher) == 0
    return {"ws": ws, "log": log, "killed": killed, "events": events,
            "integrity_after_kill": after_kill, "resumed": resumed}


def one_process_resumed(setup: chaos.Setup, base: Path, root: Path, step: str,
                        delay: float) -> dict:
    """What a killed multi-process training must end as: a one-process training killed in
    the same stage and resumed (the stage is trained again from the previous stage's
    checkpoint; bench/results/chaos.md shows how far that ends from an uninterrupted run)."""
    run = killed_and_resumed(setup, base, root, step, delay)
    if not (run["killed"] and run["resumed"]):
        raise SystemExit(f"the one-process kill and resume failed:\n"
                         f"{run['log'].read_text()[-3000:]}")
    return outcome(run["ws"])


def kill_trial(setup: chaos.Setup, base: Path, root: Path, rank: int, step: str,
               delay: float, want: dict) -> dict:
    """Two processes train a copy of `base`; rank `rank` SIGKILLs itself `delay` s into
    `step`; the launcher ends the other; two processes resume; compared with `want` (one
    process killed in the same stage and resumed)."""
    run = killed_and_resumed(setup, base, root, step, delay, torchrun(), rank)
    ws, log, killed, resumed = run["ws"], run["log"], run["killed"], run["resumed"]
    events, after_kill = run["events"], run["integrity_after_kill"]
    out = {"rank": rank, "target": step, "delay_s": round(delay, 2), "killed": killed,
           "landed_in": chaos.landed(events) if killed else "(finished before the kill)",
           "integrity_after_kill": after_kill, "resumed": resumed}
    if resumed:
        out |= compare(outcome(ws), want, str(Path(setup.policy) / "model.safetensors"))
    else:
        out["log_tail"] = log.read_text()[-2000:]
    return out


def step_span(setup: chaos.Setup, base: Path, root: Path, step: str) -> float:
    """How long `step` takes on rank 1 of an uninterrupted two-process training."""
    ws = root / "ws"
    shutil.copytree(base, ws)
    chaos.launch("run", train_args(setup, ws), root / "timeline-{rank}.jsonl", None,
                 root / "log.txt", torchrun())
    return chaos.windows(chaos.read_timeline(root / "timeline-1.jsonl"))[step]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=2, help="1-process / 2-process pairs timed")
    p.add_argument("--no-kills", action="store_true", help="skip the kill-and-resume trials")
    p.add_argument("--out", default="multiproc")
    args = p.parse_args()
    before = machine_state()
    warn_if_busy(before, "start")
    data: dict = {"environment": environment(), "omp_num_threads": {
        "1 process": os.environ.get("OMP_NUM_THREADS", "(torch default)"),
        "2 processes": "1 each (torchrun's default)"}, "rounds": []}
    with tempfile.TemporaryDirectory(prefix="udasa-multiproc-") as tmp:
        work = Path(tmp)
        setup = chaos.Setup(work)
        base = work / "base"
        make_pairs(setup, base, work / "pairs.log")
        initial = str(Path(setup.policy) / "model.safetensors")
        want = None
        for i in range(args.rounds):
            one = timed(setup, base, work / f"one-{i}", None, work / f"one-{i}.log")
            two = timed(setup, base, work / f"two-{i}", torchrun(), work / f"two-{i}.log")
            want = want or outcome(work / "one-0")
            data["rounds"].append({"one_process_s": round(one, 1),
                                   "two_processes_s": round(two, 1),
                                   "speed_up": round(one / two, 2)}
                                  | compare(outcome(work / f"two-{i}"), want, initial))
            print(json.dumps(data["rounds"][-1]), flush=True)
        if not args.no_kills:
            span = step_span(setup, base, work / "span", "dpo-2")
            (work / "kill-one").mkdir()
            resumed = one_process_resumed(setup, base, work / "kill-one", "dpo-2", span / 2)
            data["kills"] = []
            for rank in (1, 0):
                root = work / f"kill-{rank}"
                root.mkdir()
                data["kills"].append(kill_trial(setup, base, root, rank, "dpo-2",
                                                span / 2, resumed))
                print(json.dumps(data["kills"][-1]), flush=True)
    data["machine_state"] = {"start": before, "end": machine_state()}
    warn_if_busy(data["machine_state"]["end"], "end")
    write_results(args.out, data, markdown(data))


def markdown(data: dict) -> str:
    quiet = data["machine_state"]["start"]["quiet"] and data["machine_state"]["end"]["quiet"]
    env = data["environment"]
    md = (f"# One process against two: phased DPO on the CPU (gloo)\n\n{env['cpu']}, "
          f"{env['cpus']} CPUs, torch {env['torch']}, {env['date']}; machine "
          f"{'quiet' if quiet else 'SHARED with other agents (timings are noisy)'}. Each "
          "round runs `udasa train` with one process, then with two (`torchrun --standalone "
          "--nproc_per_node 2`), on copies of the same stored pairs (tiny 2-layer Llama, "
          "3 stages, batches of 3 pairs, NLL term in the last stage). Threads: one process "
          "with torch's default, two with one each (torchrun's OMP_NUM_THREADS=1).\n\n"
          "identical = same pairs, stage metrics and final held-out metrics (rel 1e-3, abs "
          "1e-4: float32 sums in another order, two half-batch gradients averaged by DDP "
          "instead of one batch's, carried through training), row counts of every table and "
          "the same files; weight drift = ||two-process final weights - one-process|| / "
          "||one-process - initial||.\n\n"
          + md_table(["round", "1 process s", "2 processes s", "speed-up", "identical",
                      "worst metric rel diff", "weight drift"],
                     [[i + 1, r["one_process_s"], r["two_processes_s"], r["speed_up"],
                       r["identical"], r["worst_metric_rel_diff"], r["weight_drift"]]
                      for i, r in enumerate(data["rounds"])]) + "\n")
    if data.get("kills"):
        md += ("## A rank killed (SIGKILL) in the middle of stage 2, then two processes "
               "resume\n\nCompared with one process killed in the same stage and resumed "
               "(a killed stage is trained again from the previous stage's checkpoint).\n\n"
               + md_table(["killed rank", "delay s", "landed in", "resumed", "identical",
                           "weight drift", "rows equal"],
                          [[k["rank"], k["delay_s"], k["landed_in"], k["resumed"],
                            k.get("identical"), k.get("weight_drift"),
                            not k.get("row_diffs")] for k in data["kills"]]) + "\n")
    return md


if __name__ == "__main__":
    main()
