"""`udasa-eval`: the evaluation harness (SPEC §7): thin layer over evals.runner."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.table import Table

from udasa.cli_common import console, run_cli
from udasa.errors import ConfigError


def _models(args) -> list:
    from evals.models import EvalModel

    models = [EvalModel(spec if spec != "base" else "base (SmolLM2-135M)", spec, args.base_url)
              for spec in args.models or []]
    if args.suite:
        from evals.suite import PAPER_SUITE, build
        from udasa.store import Store

        names = PAPER_SUITE if args.suite == ["paper"] else args.suite
        models += build(names, args.workspace, Store(args.workspace), progress=console.print)
    return models


def cmd_run(args) -> None:
    from evals.runner import EvalConfig, run_eval
    from evals.tasks import task_names

    bad = [item for item in args.data if "=" not in item]
    if bad:
        raise ConfigError(f"--data {bad[0]!r}: expected TASK=FILE")
    data = dict(item.split("=", 1) for item in args.data)
    cfg = EvalConfig(workspace=args.workspace, models=_models(args),
                     tasks=args.tasks or task_names(), limit=args.limit, seed=args.seed,
                     judge=args.judge, judge_base_url=args.judge_base_url, data=data)
    results = run_eval(cfg, progress=console.print)
    table = Table(title=f"eval {results['eval_id']} — judge: {results['judge']['label']}")
    for col in ("task", "model", "metric", "value [95% CI]", "n", "failures"):
        table.add_column(col)
    for task, t in results["tasks"].items():
        for model, m in t["models"].items():
            for metric, est in m["metrics"].items():
                table.add_row(task, model, metric,
                              f"{est['mean']:.2f} [{est['low']:.2f}, {est['high']:.2f}]",
                              str(est["n"]), str(m["failures"]))
        for test in t["paired_tests"]:
            console.print(f"{task}: {test['model']} - {test['baseline']} = "
                          f"{test['mean_diff']:+.3f} [{test['ci'][0]:+.3f}, {test['ci'][1]:+.3f}]"
                          f", p = {test['p_bootstrap']:.3g} (bootstrap), "
                          f"{test['p_sign']:.3g} (sign test), n = {test['n']}"
                          + (f", excluded for judge failures: {test['excluded']}"
                             if test.get("excluded") else ""))
    console.print(table)
    stats = results["judge"]["stats"]
    console.print(f"judge calls: {stats}")
    for key, value in results["paths"].items():
        console.print(f"{key}: {value}")


def cmd_validate(args) -> None:
    from evals.judges.base import make_judge
    from evals.validate_judge import validate, write_report
    from udasa.store import Store

    store = Store(args.workspace)
    overrides = {"base_url": args.judge_base_url} if args.judge_base_url else {}
    judge = make_judge(args.judge, store, **overrides)
    rows = validate(judge, store, args.limit, args.seed)
    path = write_report(rows, judge.label, args.workspace / "judge_validation")
    console.print(path.read_text())
    console.print(f"written to {path}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="udasa-eval", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="evaluate models on tasks and write leaderboards")
    run.add_argument("--models", nargs="+", default=None,
                     help="base | a checkpoint path | a hub id | openai:<model> "
                          "(default: base + every checkpoint in the workspace)")
    run.add_argument("--suite", nargs="+", default=None,
                     help="`paper` (UDASA and every baseline: base vanilla rlaif rlcd rain "
                          "udasa) or a list of those methods; trains what is missing first")
    run.add_argument("--tasks", nargs="+", default=None, help="default: all registered tasks")
    run.add_argument("--limit", type=int, default=50, help="samples per task (seeded subset)")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--judge", default=None,
                     help="a judge name (gpt4, local) or a judge folder; default: gpt4 when "
                          "OPENAI_API_KEY is set, else the local stand-in")
    run.add_argument("--base-url", default=None, help="for openai:<model> models")
    run.add_argument("--judge-base-url", default=None,
                     help="an OpenAI-compatible server for the judge (vLLM, llama.cpp, ...)")
    run.add_argument("--data", action="append", default=[], metavar="TASK=FILE",
                     help="a local data file for a task (default: ../shared/data)")
    run.add_argument("--workspace", type=Path, default=Path("udasa-workspace"))
    run.add_argument("-v", "--verbose", action="store_true")
    run.set_defaults(fn=cmd_run)
    val = sub.add_parser("validate-judge", help="judge agreement with references and humans")
    val.add_argument("--judge", default=None)
    val.add_argument("--judge-base-url", default=None)
    val.add_argument("--limit", type=int, default=50)
    val.add_argument("--seed", type=int, default=0)
    val.add_argument("--workspace", type=Path, default=Path("udasa-workspace"))
    val.add_argument("-v", "--verbose", action="store_true")
    val.set_defaults(fn=cmd_validate)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_cli(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
