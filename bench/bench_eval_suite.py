"""`udasa-eval run --suite paper --limit N` end to end: today's code vs the engine.

    flock /tmp/udasa-heavy.lock .venv/bin/python bench/bench_eval_suite.py [--limit 20]

"Today's code" is commit d2c0634 (before the engine) in a `git worktree` beside this tree
(bench_demo_generation.py makes the same one). Each side runs the whole command in its own
process and a fresh workspace (the suite trains the RLAIF, RLCD and UDASA policies it needs,
then evaluates every method on every task); the ratio is on wall time. Both sides do the same
work: the old code's five tasks (its robustness task is the published transfer suffixes), so
the new side runs the suite's experiment file without the white-box GCG entry, which the old
code does not have. Judges are each side's default (old: the local LM stand-in; new: the
learned judges, built once per machine and cached, as they are for every user).

The new side runs first; the old side then runs for at most `--old-cap` seconds. An old side
stopped at the cap gives a lower bound on the ratio (`>=`), which is enough to show the goal.
`--without rain` leaves RAIN out on both sides: RAIN is not the same algorithm in the two
trees (d2c0634 had a sample-and-rewind loop; now it is the paper's tree search), and the old
suite with RAIN runs for about three hours here, longer than one session.
Goal: >= 4x. Results: bench/results/<out>.{json,md}; logs <out>_{new,old}.log in $TMPDIR.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS, environment, machine_state, md_table, write_results
from bench_demo_generation import BEFORE, ROOT, old_tree

EXPERIMENT = "configs/experiments/cpu.yaml"


def same_tasks_as_old(tree: Path, only: list[str]) -> str:
    """`--set tasks=[...]`: the suite's tasks less white-box GCG (absent from the old code),
    only those named `only` when given."""
    tasks = yaml.safe_load((tree / EXPERIMENT).read_text())["tasks"]
    kept = [t for t in tasks if "whitebox" not in str(t.get("data", ""))
            and (not only or t["name"] in only)]
    return "tasks=" + yaml.safe_dump(kept, default_flow_style=True, width=10**6).strip()


PAPER_KINDS = ["base", "vanilla", "rlaif", "rlcd", "rain", "udasa"]  # the old `--suite paper`


def methods_without(tree: Path, without: list[str]) -> str:
    """`--set methods=[...]`: the suite's methods less those of the kinds `without`."""
    methods = yaml.safe_load((tree / EXPERIMENT).read_text())["methods"]
    kept = [m for m in methods if m["kind"] not in without]
    return "methods=" + yaml.safe_dump(kept, default_flow_style=True, width=10**6).strip()


def command(tree: Path, limit: int, old: bool, without: list[str], only: list[str]
            ) -> list[str]:
    head = [sys.executable, "-m", "evals.cli", "run", "--limit", str(limit)]
    if old and only:
        head += ["--tasks", *only]
    if old:
        return head + ["--suite", *([k for k in PAPER_KINDS if k not in without]
                                    if without else ["paper"])]
    cmd = head + ["--experiment", EXPERIMENT, "--set", same_tasks_as_old(tree, only)]
    return cmd + (["--set", methods_without(tree, without)] if without else [])


def stage_times(log: Path) -> dict[str, int]:
    """Seconds per built method kind, from the `suite: KIND ready in N s` (old) and
    `NAME (KIND) ready in N s` (new) lines."""
    text = log.read_text(errors="replace")
    found = re.findall(r"(?m)^(?:suite: )?(.+?) ready in (\d+) s", text)
    return {re.sub(r"^.*\((\w+)\)$", r"\1", name): int(sec) for name, sec in found}


_BAR = re.compile(r"(?m)([a-z_]+) / (.+?): 100%\|[^|]*\| *\d+/\d+ \[(?:(\d+):)?(\d+):(\d+)<")


def task_times(log: Path) -> dict[str, int]:
    """Seconds per `task / method`, from each finished evaluation bar (both versions draw
    `TASK / METHOD: 100%|...| n/n [mm:ss<...]`); the last bar of a pair wins."""
    text = log.read_text(errors="replace").replace("\r", "\n")
    return {f"{t} / {m}": int(h or 0) * 3600 + int(mi) * 60 + int(se)
            for t, m, h, mi, se in _BAR.findall(text)}


def run_side(tree: Path, cmd: list[str], log: Path, cap: float | None) -> dict:
    env = os.environ | {"PYTHONPATH": str(tree), "HF_HUB_OFFLINE": "1"}
    with tempfile.TemporaryDirectory() as ws, open(log, "w") as out:
        out.write("$ " + " ".join(cmd) + f" --workspace {ws}\n")
        out.flush()
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd + ["--workspace", ws], cwd=tree, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            code, finished = proc.wait(timeout=cap), True
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            code, finished = proc.wait(), False
        wall = time.perf_counter() - t0
    return {"seconds": wall, "finished": finished, "returncode": code, "log": str(log),
            "command": " ".join(cmd), "methods_ready_s": stage_times(log),
            "task_s": task_times(log)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=20)
    ap.add_argument("--old-tree", type=Path,
                    default=Path(tempfile.gettempdir()) / f"udasa-{BEFORE}")
    ap.add_argument("--old-cap", type=float, default=4 * 3600,
                    help="stop the old side after this many seconds (ratio becomes a bound)")
    ap.add_argument("--old-until", type=float, default=None, metavar="EPOCH_S",
                    help="also stop the old side at this Unix time (a session with a fixed end)")
    ap.add_argument("--without", nargs="+", default=[], choices=PAPER_KINDS, metavar="KIND",
                    help="leave out the methods of these kinds on both sides (e.g. rain)")
    ap.add_argument("--tasks", nargs="+", default=[], metavar="TASK",
                    help="only these tasks on both sides (default: all five)")
    ap.add_argument("--out", default=None,
                    help="results name (default eval_suite, or eval_suite-without-KIND...)")
    ap.add_argument("--rerender", action="store_true",
                    help="rewrite the report from the stored JSON and the two logs it names")
    args = ap.parse_args()
    args.out = args.out or "-".join(["eval_suite", *(f"without-{k}" for k in args.without),
                                     *args.tasks])
    if args.rerender:
        return rerender(args)
    state = machine_state()
    logs = Path(tempfile.gettempdir())
    new = run_side(ROOT, command(ROOT, args.limit, False, args.without, args.tasks),
                   logs / f"{args.out}_new.log", None)
    print("new:", new, flush=True)
    if new["returncode"]:
        raise SystemExit(f"new side failed: see {new['log']}")
    tree = old_tree(args.old_tree)
    if args.old_until:
        args.old_cap = min(args.old_cap, args.old_until - time.time())
    old = run_side(tree, command(tree, args.limit, True, args.without, args.tasks),
                   logs / f"{args.out}_old.log", args.old_cap)
    print("old:", old, flush=True)
    if old["finished"] and old["returncode"]:
        raise SystemExit(f"old side failed: see {old['log']}")
    write_results(args.out, *report(args, {"start": state, "end": machine_state()}, new, old))


def rerender(args) -> None:
    """The report again from bench/results/<out>.json, times re-read from its logs."""
    stored = RESULTS / f"{args.out}.json"
    if not stored.is_file():
        raise SystemExit(f"--rerender: {stored} not found (run the benchmark first)")
    data = json.loads(stored.read_text())
    for side in ("new", "old"):
        log = Path(data[side]["log"])
        if not log.is_file():
            raise SystemExit(f"--rerender: {stored}: the {side} side's log {log} is gone "
                             "(logs live in $TMPDIR on the machine that ran it)")
        data[side] |= {"methods_ready_s": stage_times(log), "task_s": task_times(log)}
    args.limit, args.old_cap = data["setup"]["limit"], data["setup"]["old_cap_s"]
    args.without = data["setup"].get("without", [])
    args.tasks = data["setup"].get("tasks", [])
    write_results(args.out, *report(args, data["machine_state"], data["new"], data["old"],
                                    data["environment"]))


def report(args, states: dict, new: dict, old: dict, env: dict | None = None
           ) -> tuple[dict, str]:
    """`states`: the machine at the run's start and end; `env`: the run's environment (both
    as stored, on a rerender)."""
    env, state = env or environment(), states["start"]
    ratio = old["seconds"] / new["seconds"]
    bound = "" if old["finished"] else ">= "
    data = {"benchmark": "eval_suite", "environment": env,
            "machine_state": states,
            "setup": {"limit": args.limit, "before": BEFORE, "old_cap_s": args.old_cap,
                      "without": args.without, "tasks": args.tasks},
            "new": new, "old": old, "ratio": ratio, "ratio_is_lower_bound": not old["finished"],
            "goal": {"min_ratio": 4, "met": ratio >= 4}}
    rows = [["new (this tree)", new["seconds"], "yes"],
            [f"old ({BEFORE})", old["seconds"], "yes" if old["finished"] else
             f"no: stopped after {old['seconds']:.0f} s"]]
    less = (f" without {', '.join(args.without)}" if args.without else "") + \
        (f" --tasks {' '.join(args.tasks)}" if args.tasks else "")
    md = (f"# udasa-eval run --suite paper{less} --limit {args.limit}: {BEFORE} vs the engine"
          "\n\n"
          f"{env['date']}; loadavg {state['loadavg']} at start, quiet: "
          f"{state['quiet']}. The same tasks on both sides (see the script's docstring).\n\n"
          f"- new: `{new['command']}`\n- old: `{old['command']}`\n\n"
          + md_table(["side", "wall s", "finished"], [r[:3] for r in rows])
          + f"\nRatio {bound}{ratio:.2f}x (goal >= 4x: {'met' if ratio >= 4 else 'not met'}).\n"
          + side_by_side("method built (training and its pairs)", new["methods_ready_s"],
                         old["methods_ready_s"])
          + side_by_side("task / method evaluated (generation; judging not included)",
                         new["task_s"], old["task_s"]))
    return data, md


def side_by_side(what: str, new: dict[str, int], old: dict[str, int]) -> str:
    """A table of seconds per item on both sides, with old / new where both finished it."""
    rows = [[k, new.get(k, "-"), old.get(k, "not reached"),
             f"{old[k] / new[k]:.1f}x" if new.get(k) and k in old else "-"]
            for k in dict.fromkeys([*new, *old])]
    return f"\n## Seconds per {what}\n\n" + md_table([what, "new s", "old s", "old / new"],
                                                        rows)


if __name__ == "__main__":
    main()
