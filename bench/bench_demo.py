"""The cpu-demo loop end to end: `udasa run --config configs/cpu-demo.yaml` on a fresh workspace.

Times the whole run (a subprocess, as a user runs it) and reads each step's wall time from the
run summary in the store. Goal (issue 3): all three DPO stages within ~10 minutes on 2 CPU
cores. Writes bench/results/demo.{json,md} (`--out STEM`).

    .venv/bin/python bench/bench_demo.py
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, environment, machine_state, md_table, warn_if_busy, write_results

from udasa.store import Store


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="demo")
    args = p.parse_args()
    before = machine_state()
    warn_if_busy(before, "start")
    with tempfile.TemporaryDirectory(prefix="udasa-bench-demo-") as tmp:
        cmd = [str(Path(sys.executable).parent / "udasa"), "run", "--config",
               str(ROOT / "configs" / "cpu-demo.yaml"), "--workspace", tmp]
        start = time.perf_counter()
        subprocess.run(cmd, check=True)
        wall = time.perf_counter() - start
        run = Store(tmp).latest_run()
        steps = run.summary["seconds"]
        ckpts = Store(tmp).checkpoints(run.id)
    after = machine_state()
    warn_if_busy(after, "end")
    stages = [[c.stage, c.name, c.metrics["pairs"], c.metrics["steps"],
               c.metrics["stopped"] or "-"] for c in ckpts]
    data = {"environment": environment(), "machine_state": {"start": before, "end": after},
            "wall_s": round(wall, 1), "steps_s": steps, "stages": stages, "goal": "<= ~600 s"}
    quiet = before["quiet"] and after["quiet"]
    md = (f"# cpu-demo `udasa run`, fresh workspace{'' if quiet else ' (machine NOT quiet)'}\n\n"
          f"{data['environment']['cpu']}, {data['environment']['date']}: **{wall:.0f} s** end "
          "to end (goal: ~600 s).\n\n"
          + md_table(["step", "s"], [[k, v] for k, v in steps.items()])
          + "\n" + md_table(["stage", "name", "pairs", "steps", "stopped early"], stages))
    write_results(args.out, data, md)


if __name__ == "__main__":
    main()
