"""The learned judges' agreement with human labels, and what building them costs.

    flock /tmp/udasa-heavy.lock .venv/bin/python bench/bench_judges.py [--judges truth info ...]

Builds (or loads from the user cache) every learned judge with its default settings and measures
its agreement (or loads it), exactly as `udasa-eval build-judges` does, and writes each judge's
measured agreement on labels it did not train on (accuracy / AUROC / pairwise, 95% CI, n, what to
compare with), its build cost (one fit, what an evaluation run pays) and its validation cost
(cross-validation and held-out scoring, paid once when measured) in CPU-seconds. Goals (issue 16): truth >= 0.85 on held-out answers to seen questions (floor 0.676,
always "false" 0.576; GPT-judge 0.884-0.962), informativeness >= 0.85, harmlessness and
helpfulness >= 0.65 pairwise on unseen prompts (floor 0.61), sentiment >= VADER + 0.10.
Results: bench/results/judges.json and judges.md.
"""

from __future__ import annotations

import argparse
import time

from _common import environment, machine_state, write_results

from evals.judges.learned import build
from evals.validate_judge import table_lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--judges", nargs="+", default=build.judge_names())
    args = parser.parse_args()
    state = machine_state()
    out, rows = {"environment": environment(), "machine": state, "judges": {}}, []
    for name in args.judges:
        start = time.perf_counter()
        built = build.validated(name)
        out["judges"][name] = {"cached": built.cached, "meta": built.meta,
                               "agreements": [a.as_dict() for a in built.agreements],
                               "load_s": round(time.perf_counter() - start, 1)}
        rows += built.agreements
        report(out, rows, state)  # after each judge: a cut-off run keeps what it measured


def report(out: dict, rows: list, state: dict) -> None:
    cost = [f"| {n} | {_cost(j['meta'])} | {_cost(j['meta'].get('validation'))} | "
            f"{j['meta']['about']} |" for n, j in out["judges"].items()]
    md = "\n".join([
        "# Learned judges: agreement with human labels", "",
        "Command: `flock /tmp/udasa-heavy.lock .venv/bin/python bench/bench_judges.py`.",
        (f"Machine: {out['environment']['cpu']}, {out['environment']['cpus']} CPUs, shared with "
        f"other engineers (load average {' '.join(state['loadavg'])} at the start), so wall "
        "times are upper bounds; CPU-seconds are this process's own."), "",
        *table_lines(rows, []), "",
        ("Cost, once each, then a cache hit (CPU-s / wall s; `-`: an artifact of the first "
         "format, whose fit cost includes its validation):"), "",
        "| judge | fit (an evaluation run) | validation (validate-judge) | what it learns |",
        "|---|---|---|---|", *cost, ""])
    write_results("judges", out, md)


def _cost(meta: dict | None) -> str:
    return f"{meta['cpu_s']:.0f} / {meta['wall_s']:.0f}" if meta else "-"


if __name__ == "__main__":
    main()
