"""The first `udasa-eval run --limit 3` after `make demo` on a fresh machine, commit BEFORE
(default: before the learned judges were split into fit and validation) against this tree.

    .venv/bin/python bench/bench_first_eval.py --workspace udasa-workspace [--before REV]

Each side runs in its own process, on a copy of the `make demo` workspace, with a user cache
that holds what `make demo` left there (the de-quantised policy, hard-linked) and no learned
judge and no judge embedding, as on a fresh machine after `make demo` (judges that ship with
the package are in its tree, not the cache). "Before" is the commit `--before`, unpacked with
`git archive` into a temporary folder; "after" is this tree (or the commit `--after`, unpacked
the same way). Reported per side: wall time, CPU time (user + system) and peak memory from
`/usr/bin/time -v`, the judges fitted and taken as shipped, and the judges' log lines at
WARNING. `--together` runs both sides at once (on a machine shared with others, both then see
the same load); otherwise the after side runs first.
Results: bench/results/<out>.{json,md}; each side's log in the results JSON's `log` path.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, environment, machine_state, md_table, write_results
from bench_generation import matmul_peak

BEFORE = "e553792"  # main before the split (judges cross-validated while being built)
TIME_FIELDS = {"Elapsed (wall clock) time (h:mm:ss or m:ss)": "wall", "User time (seconds)": "user",
               "System time (seconds)": "system", "Maximum resident set size (kbytes)": "rss_kb"}


def tree_at(rev: str, dest: Path) -> Path:
    """The repository at ``rev``, unpacked into ``dest``."""
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def fresh_cache(demo_cache: Path, dest: Path) -> Path:
    """``dest`` as a user cache holding what `make demo` left (hard links), less the judges."""
    for item in (demo_cache / "udasa").iterdir() if (demo_cache / "udasa").is_dir() else []:
        if item.name != "judges" and item.is_dir():
            shutil.copytree(item, dest / "udasa" / item.name, copy_function=os.link)
    (dest / "udasa").mkdir(parents=True, exist_ok=True)
    return dest


def seconds(clock: str) -> float:
    parts = [float(p) for p in clock.split(":")]
    return sum(p * 60 ** i for i, p in enumerate(reversed(parts)))


def start_side(name: str, tree: Path, args, tmp: Path) -> tuple[subprocess.Popen, Path]:
    ws = tmp / f"ws-{name}"
    shutil.copytree(args.workspace, ws)
    threads = {"OMP_NUM_THREADS": str(args.threads)} if args.threads else {}
    env = {**os.environ, **threads, "PYTHONPATH": str(tree),
           "XDG_CACHE_HOME": str(fresh_cache(args.demo_cache, tmp / f"cache-{name}"))}
    log = tmp / f"{name}.log"
    cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "evals.cli", "run", "--limit",
           str(args.limit), "--workspace", str(ws)]
    return subprocess.Popen(cmd, cwd=tree, env=env, stdout=open(log, "w"),
                            stderr=subprocess.STDOUT), log


def finish_side(proc: subprocess.Popen, log: Path) -> dict:
    proc.wait()
    text = log.read_text(errors="replace")
    out: dict = {"rc": proc.returncode, "log": str(log)}
    for line in text.splitlines():
        key, _, value = line.strip().partition(": ")
        if key in TIME_FIELDS:
            out[TIME_FIELDS[key]] = seconds(value) if TIME_FIELDS[key] == "wall" else float(value)
    out["cpu"] = out.get("user", 0.0) + out.get("system", 0.0)
    out["judge_warnings"] = len(re.findall(r"(?m)^WARNING evals\.judges", text))
    out["judges_built"] = len(re.findall(r"building the learned \w+ judge once", text))
    out["judges_shipped"] = len(re.findall(r"using the fitted \w+ judge that ships", text))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, default=Path("udasa-workspace"),
                        help="the workspace `make demo` wrote")
    parser.add_argument("--demo-cache", type=Path,
                        default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")),
                        help="the user cache `make demo` used (its udasa/ is copied, less judges)")
    parser.add_argument("--limit", type=int, default=3)
    parser.add_argument("--together", action="store_true", help="run both sides at once")
    parser.add_argument("--threads", type=int, default=None,
                        help="OMP_NUM_THREADS for both sides (default: torch's choice); 1 on a "
                             "busy shared machine, where a 2-thread pool spin-waits")
    parser.add_argument("--before", default=BEFORE,
                        help=f"the commit of the before side (default {BEFORE})")
    parser.add_argument("--after", default=None,
                        help="a commit for the after side (default: this tree as it is)")
    parser.add_argument("--sides", nargs="+", choices=["after", "before"],
                        default=["after", "before"], help="which sides to run (default both)")
    parser.add_argument("--out", default="first-eval")
    args = parser.parse_args()
    state = machine_state()
    peak = matmul_peak()
    tmp = Path(tempfile.mkdtemp(prefix="first-eval-"))
    trees = {"after": tree_at(args.after, tmp / "after") if args.after else ROOT,
             "before": tree_at(args.before, tmp / "before")}
    trees = {n: t for n, t in trees.items() if n in args.sides}
    sides: dict[str, dict] = {}
    if args.together:
        started = {n: start_side(n, t, args, tmp) for n, t in trees.items()}
        sides = {n: finish_side(*started[n]) for n in trees}
    else:
        for n, t in trees.items():
            sides[n] = finish_side(*start_side(n, t, args, tmp))
    out = {"command": " ".join([".venv/bin/python bench/bench_first_eval.py", *sys.argv[1:]]),
           "environment": environment(), "machine_start": state,
           "machine_end": {"loadavg": Path("/proc/loadavg").read_text().split()[:3]},
           "before": args.before, "after": args.after or "this tree", "limit": args.limit,
           "threads": args.threads, "together": args.together, "sides": sides,
           "matmul_peak_gflops": round(peak, 1), "date": time.strftime("%Y-%m-%d %H:%M")}
    write_results(args.out, out, markdown(out))


def markdown(out: dict) -> str:
    s = out["sides"]
    rows = [[n, f"{v.get('wall', 0):.0f}", f"{v['cpu']:.0f}", f"{v.get('rss_kb', 0) / 1e6:.1f}",
             v["judges_built"], v.get("judges_shipped", 0), v["judge_warnings"], v["rc"]]
            for n, v in s.items()]
    ratio = (f"before / after: wall {s['before']['wall'] / s['after']['wall']:.2f}x, CPU "
             f"{s['before']['cpu'] / s['after']['cpu']:.2f}x" if len(s) == 2 else "")
    return "\n".join([
        f"# First `udasa-eval run --limit {out['limit']}` after `make demo`, fresh judge cache",
        "", f"Command: `{out['command']}` ({out['date']}).",
        f"Before: {out['before']}; after: {out['after']}.",
        (f"Machine: {out['environment']['cpu']}, {out['environment']['cpus']} CPUs, "
         + ("quiet at the start" if out["machine_start"]["quiet"] else
            "shared with other work (wall times are inflated)")
         + f" (load average {' '.join(out['machine_start']['loadavg'])} at the "
         f"start, {' '.join(out['machine_end']['loadavg'])} at the end"
         + (", both sides at once" if out["together"] else "")
         + (f", OMP_NUM_THREADS={out['threads']} on both" if out["threads"] else "")
         + f"; torch fp32 2048² matmul {out['matmul_peak_gflops']:.0f} GFLOP/s at the start"
         + "); CPU-seconds (user + system) are each run's own."), "",
        md_table(["side", "wall s", "CPU s", "peak RSS GB", "judges built", "judges shipped",
                  "judge WARNING lines", "exit"], rows), ratio, ""])


if __name__ == "__main__":
    main()
