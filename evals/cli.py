"""`udasa-eval`: the evaluation harness (docs/method.md §7): thin layer over evals.runner."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from rich.table import Table

from udasa.cli_common import console, run_cli
from udasa.progress import finished_line


def _models(args) -> list:
    from evals.models import EvalModel
    from evals.results import BASE_LABEL

    return [EvalModel(spec if spec != "base" else BASE_LABEL, spec, args.base_url,
                      concurrency=args.concurrency)
            for spec in args.models or []]


def _experiment(args):
    """The experiment of `--experiment FILE` or `--suite ...`, with the command line's changes:
    extra `--models` as base methods, `--tasks`, `--limit`, `--data`, `--judge`."""
    from evals.experiment import MethodSpec, TaskSpec, check_experiment, load_experiment
    from evals.suite import suite_experiment

    exp = load_experiment(args.experiment, args.set) if args.experiment \
        else suite_experiment(args.suite)
    exp.methods += [MethodSpec(m.name, "base", policy=m.spec, base_url=m.base_url,
                               concurrency=m.concurrency) for m in _models(args)]
    if args.methods:  # a run that builds (and evaluates) only these methods
        _keep_methods(exp, args.methods)
    data = _data(args)
    if args.tasks:  # every entry of a named task (robustness: transfer and white-box)
        exp.tasks = [t for name in dict.fromkeys(args.tasks)
                     for t in ([t for t in exp.tasks if t.name == name] or [TaskSpec(name)])]
    for task in exp.tasks:
        task.limit = args.limit if args.limit is not None else task.limit
        task.data = data.get(task.name, task.data)
    exp.judge = args.judge or exp.judge
    exp.judge_base_url = args.judge_base_url or exp.judge_base_url
    exp.judge_set = [*exp.judge_set, *args.judge_set]
    return check_experiment(exp)


def _keep_methods(exp, names: list[str]) -> None:
    """Only the methods named (an unknown name is an error), in the tasks' lists too."""
    from udasa.errors import ConfigError

    if unknown := sorted(set(names) - {m.name for m in exp.methods}):
        raise ConfigError(f"--methods: no method named {unknown} in {exp.path or 'the suite'}")
    exp.methods = [m for m in exp.methods if m.name in names]
    for task in exp.tasks:
        task.methods = None if task.methods is None else [m for m in task.methods if m in names]
    exp.tasks = [t for t in exp.tasks if t.methods is None or t.methods]


def _data(args) -> dict[str, str]:
    from udasa.errors import ConfigError

    bad = [item for item in args.data if "=" not in item]
    if bad:
        raise ConfigError(f"--data {bad[0]!r}: expected TASK=FILE")
    return dict(item.split("=", 1) for item in args.data)


def cmd_run(args) -> None:
    from udasa import dist
    from udasa.errors import ConfigError

    if args.plan and not (args.experiment or args.suite):
        raise ConfigError("--plan needs --experiment FILE (or --suite)")
    if args.all_stages and (args.models or args.experiment or args.suite):
        raise ConfigError("--all-stages chooses the workspace's models: not with --models, "
                          "--experiment or --suite")
    if args.experiment or args.suite:
        return cmd_experiment(args)
    if dist.active():
        raise ConfigError("several processes only train (`--experiment`); evaluate with one "
                          "process (without torchrun / accelerate launch)")
    from evals.runner import EvalConfig, run_eval
    from evals.tasks import task_names

    cfg = EvalConfig(workspace=args.workspace, models=_models(args), all_stages=args.all_stages,
                     tasks=args.tasks or task_names(),
                     limit=args.limit if args.limit is not None else 50, seed=args.seed,
                     judge=args.judge, judge_base_url=args.judge_base_url,
                     judge_set=args.judge_set, data=_data(args))
    print_results(run_eval(cfg, progress=console.print))


def cmd_plan(args) -> None:
    from evals.plan import make_plan, render

    console.print(render(make_plan(_experiment(args), args.workspace), args.gpu_tflops),
                  markup=False, highlight=False)


def cmd_experiment(args) -> None:
    if args.plan:
        return cmd_plan(args)
    from evals.suite import run_experiment

    start = time.perf_counter()
    from udasa import dist

    out = run_experiment(_experiment(args), args.workspace,
                         progress=console.print if dist.is_main() else lambda _: None)
    if out["tables"] is None:  # another process of a multi-process build: nothing to show
        return
    for results in out["evals"]:
        print_results(results)
    for path in out["premise"]:
        console.print(f"premise: {path}")
    console.print(f"tables: {out['tables']['tables_md']}")
    console.print(finished_line("experiment", start))


def print_results(results: dict) -> None:
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
            console.print(f"{task} {test['metric']}: {test['model']} - {test['baseline']} = "
                          f"{test['mean_diff']:+.3f} [{test['low']:+.3f}, {test['high']:+.3f}]"
                          f", p = {test['p_boot']:.3g} (bootstrap), "
                          f"{test['p_sign']:.3g} (sign test), n = {test['n']}"
                          + (f", excluded for judge failures: {test['excluded']}"
                             if test.get("excluded") else ""))
    console.print(table)
    console.print(f"judge calls: {results['judge']['stats']}")
    for key, value in results["paths"].items():
        console.print(f"{key}: {value}")


def cmd_validate(args) -> None:
    from evals.judges.base import make_judge
    from evals.validate_judge import validate, write_report
    from udasa.store import Store

    store = Store(args.workspace)
    overrides = {"base_url": args.judge_base_url} if args.judge_base_url else {}
    judge = make_judge(args.judge, store, args.judge_set, **overrides)
    rows, corr = validate(judge, store, args.limit, args.seed)
    path = write_report(rows, corr, judge.label, args.workspace / "judge_validation")
    console.print(path.read_text())
    console.print(f"written to {path}")


def cmd_build_judges(args) -> None:
    from evals.judges.learned import build
    from evals.validate_judge import table_lines

    rows = []
    names = args.judges or [n for n in build.judge_names()
                            if build.recipe_of(n).ships or not args.ship]
    for name in names:
        built = build.validated(name)
        how = "shipped" if built.shipped else "cached" if built.cached else "built"
        console.print(f"{name}: {how}, {built.meta['about']}; build cost "
                      f"{built.meta['cpu_s']:.0f} CPU-s ({built.meta['wall_s']:.0f} s wall)")
        rows += built.agreements
        if args.ship:
            for path in build.ship(name):
                console.print(f"  shipped: {path}")
    console.print("\n".join(table_lines(rows, [])))


def cmd_tables(args) -> None:
    from evals.premise import read_premises
    from evals.results import load_results
    from evals.tables import write_tables
    from udasa.errors import UdasaError

    results, premises = load_results(args.workspace), read_premises(args.workspace)
    if not results.current and not premises:
        raise UdasaError(f"{args.workspace}: no stored evaluations or premise tests: run "
                         "`udasa-eval run` (or `udasa-eval premise`) first")
    paths = write_tables(results, args.workspace, premises)
    console.print(Path(paths["tables_md"]).read_text(encoding="utf-8"), markup=False)
    console.print(f"written: {paths['tables_md']}, {len(paths['csv'])} CSVs, "
                  f"{len(paths['png'])} PNGs under {args.workspace / 'tables'}")


def cmd_premise(args) -> None:
    from evals.judges.base import make_judge
    from evals.premise import premise_markdown, run_premise, write_premise
    from udasa.errors import ConfigError
    from udasa.status import require, run_state
    from udasa.store import Store

    store = Store.existing(args.workspace)
    runs = [r for r in store.runs() if r.id.startswith(args.run)] if args.run \
        else [r for r in [store.latest_run()] if r]
    if not runs and not args.run:
        raise ConfigError(f"no run stored in {args.workspace}: run `udasa run` first")
    if len(runs) != 1:
        raise ConfigError(f"--run: {len(runs)} runs match {args.run!r} in {args.workspace}")
    run = runs[0]
    if not store.fused(run.id):  # say which step is missing (run_premise says so otherwise)
        require(run_state(store, run), "pairs")
    overrides = {"base_url": args.judge_base_url} if args.judge_base_url else {}
    judge = make_judge(args.judge, store, args.judge_set, **overrides)
    for template in args.templates:
        result = run_premise(store, run.id, judge, template)
        console.print(premise_markdown(result), markup=False)
        console.print(f"written to {write_premise(result, args.workspace)}")


def _judge_set(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--judge-set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a field of the judge's config, e.g. --judge-set "
                             "max_retries=2 (repeatable; YAML values)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="udasa-eval", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_run, _add_validate, _add_build_judges, _add_tables, _add_premise,
                _add_report):
        add(sub)
    return parser


def _add_run(sub) -> None:
    """The `udasa-eval run` command line."""
    run = sub.add_parser("run", help="evaluate models on tasks and write leaderboards")
    run.add_argument("--models", nargs="+", default=None,
                     help="base | a checkpoint path | a hub id | openai:<model> "
                          "(default: base + each training's final stage in the workspace)")
    run.add_argument("--all-stages", action="store_true",
                     help="without --models or --experiment: evaluate every stage checkpoint "
                          "of the workspace's trainings, not only each one's final stage")
    run.add_argument("--experiment", type=Path, default=None,
                     help="an experiment file (configs/experiments/*.yaml): methods, tasks, "
                          "judge; builds what is missing, evaluates, writes tables.md")
    run.add_argument("--plan", action="store_true",
                     help="with --experiment: resolve every config, model, data set, judge "
                          "and server URL (no weights loaded, no server called) and print "
                          "what is stored, what would be built and evaluated, and its compute")
    run.add_argument("--gpu-tflops", type=float, default=400.0,
                     help="sustained throughput for --plan's GPU hours (default 400: 40%% of "
                          "an H100's bf16 dense peak)")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override a field of the experiment file, e.g. --set seed=1 or "
                          "--set tasks.0.limit=5 (repeatable; YAML values)")
    run.add_argument("--suite", nargs="+", default=None,
                     help="`paper`: the shipped CPU experiment (configs/experiments/cpu.yaml: "
                          "base vanilla rlaif rlcd rain udasa), or the methods of those kinds")
    run.add_argument("--tasks", nargs="+", default=None, help="default: all registered tasks")
    run.add_argument("--methods", nargs="+", default=None, metavar="NAME",
                     help="with --experiment or --suite: only these methods (by name), e.g. "
                          "to build and evaluate an experiment's methods in separate runs")
    run.add_argument("--limit", type=int, default=None,
                     help="samples per task (seeded subset; default 50, or the experiment's)")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--judge", default=None,
                     help="a judge name (gpt4, learned, local) or a judge folder; default: gpt4 "
                          "when OPENAI_API_KEY is set, else the learned judges")
    run.add_argument("--base-url", default=None, help="for openai:<model> models")
    run.add_argument("--concurrency", type=int, default=8,
                     help="requests in flight at once for openai:<model> models")
    _judge_set(run)
    run.add_argument("--judge-base-url", default=None,
                     help="an OpenAI-compatible server for the judge (vLLM, llama.cpp, ...)")
    run.add_argument("--data", action="append", default=[], metavar="TASK=FILE",
                     help="a local data file or data set name for a task (default: the task's "
                     "data set, from the $UDASA_DATA_DIR mirror or the hub)")
    run.add_argument("--workspace", type=Path, default=Path("udasa-workspace"))
    run.add_argument("-v", "--verbose", action="store_true")
    run.set_defaults(fn=cmd_run, writes=True)  # holds the workspace's lock while it runs


def _add_validate(sub) -> None:
    """The `udasa-eval validate-judge` command line."""
    val = sub.add_parser("validate-judge", help="a judge's agreement with human labels")
    val.add_argument("--judge", default=None, help="default: the default judge (see run)")
    _judge_set(val)
    val.add_argument("--judge-base-url", default=None)
    val.add_argument("--limit", type=int, default=200,
                     help="items per check for judges asked through their interface")
    val.add_argument("--seed", type=int, default=0)
    val.add_argument("--workspace", type=Path, default=Path("udasa-workspace"))
    val.add_argument("-v", "--verbose", action="store_true")
    val.set_defaults(fn=cmd_validate, writes=True)


def _add_build_judges(sub) -> None:
    """The `udasa-eval build-judges` command line."""
    bld = sub.add_parser("build-judges", help="build (or load) the learned judges and print "
                                              "their agreement with human labels")
    bld.add_argument("judges", nargs="*", help="default: all (harmless helpful info "
                                               "sentiment truth)")
    bld.add_argument("--ship", action="store_true",
                     help="(maintainers) write the judges that hold no training text (harmless, "
                          "helpful) into the package, to ship fitted: after a recipe change")
    bld.add_argument("-v", "--verbose", action="store_true")
    bld.set_defaults(fn=cmd_build_judges)


def _add_tables(sub) -> None:
    """The `udasa-eval tables` command line."""
    tab = sub.add_parser("tables", help="the paper's tables from stored results (tables.md)")
    tab.add_argument("--workspace", type=Path, default=Path("udasa-workspace"))
    tab.add_argument("-v", "--verbose", action="store_true")
    tab.set_defaults(fn=cmd_tables)


def _add_premise(sub) -> None:
    """The `udasa-eval premise` command line."""
    pre = sub.add_parser("premise", help="judge a run's responses: does lower uncertainty "
                                         "mean a better reply?")
    pre.add_argument("--run", default=None, help="a run id (default: the latest run)")
    pre.add_argument("--templates", nargs="+", default=["harmless", "helpful"])
    pre.add_argument("--judge", default=None)
    _judge_set(pre)
    pre.add_argument("--judge-base-url", default=None)
    pre.add_argument("--workspace", type=Path, default=Path("udasa-workspace"))
    pre.add_argument("-v", "--verbose", action="store_true")
    pre.set_defaults(fn=cmd_premise, writes=True)


def _add_report(sub) -> None:
    """The `udasa-eval report` command line."""
    rep = sub.add_parser("report", help="a results report: every task's metrics, the main "
                                        "method against each other one (paired tests), tables")
    rep.add_argument("--workspace", type=Path, action="append", default=[],
                     help="a workspace holding evaluations (repeatable: an experiment split "
                          "into runs or machines); its evidence is copied to --evidence first; "
                          "default: udasa-workspace, unless --evidence alone is given")
    rep.add_argument("--evidence", type=Path, default=None,
                     help="the evidence folder the page is rendered from (default: "
                          "<out without .md>/evidence); alone, re-renders the page from it")
    rep.add_argument("--out", type=Path, default=Path("results.md"))
    rep.add_argument("--log", type=Path, action="append", default=[],
                     help="the output of a run that made the workspace, its first line "
                          "`$ COMMAND` (repeatable; gives the runs table its commands and times)")
    rep.add_argument("--intro", type=Path, default=None,
                     help="markdown put before the generated part")
    rep.add_argument("--main", default="UDASA", help="the method compared with each other one")
    rep.add_argument("--compare", nargs=2, action="append", default=[],
                     metavar=("FIRST", "SECOND"),
                     help="a further paired comparison, FIRST minus SECOND, tested in the same "
                          "Holm family as --main's (repeatable), e.g. two controls")
    rep.add_argument("--experiment", default=None,
                     help="the experiment whose comparisons are tested (default: the one "
                          "holding most results of --main)")
    rep.add_argument("-v", "--verbose", action="store_true")
    rep.set_defaults(fn=cmd_report)


def cmd_report(args) -> None:
    from evals.report import export_evidence, write_report
    from udasa.errors import ConfigError

    for path in [*args.log, *([args.intro] if args.intro else [])]:
        if not path.is_file():
            raise ConfigError(f"{path}: no such file")
    evidence = args.evidence or args.out.with_suffix("") / "evidence"
    if args.workspace or not args.evidence:
        workspaces = args.workspace or [Path("udasa-workspace")]
        for ws in workspaces:
            if not (ws / "evals").is_dir():
                raise ConfigError(f"{ws}: no stored evaluations (run `udasa-eval run`)")
        export_evidence(workspaces, evidence, args.log)
    elif args.log:
        raise ConfigError("--log: give it with --workspace (the evidence folder keeps the logs "
                          "it was made with)")
    elif not evidence.is_dir():
        raise ConfigError(f"--evidence {evidence}: no such folder")
    intro = args.intro.read_text(encoding="utf-8") if args.intro else ""
    out = write_report(evidence, args.out, args.main, intro, args.experiment,
                       [tuple(pair) for pair in args.compare], _rerender_command(args, evidence))
    console.print(f"report: {out} (from {evidence})")


def _rerender_command(args, evidence: Path) -> str:
    """The `udasa-eval report` line that renders this page again from its evidence alone."""
    import shlex

    argv = ["udasa-eval", "report", "--evidence", str(evidence)]
    argv += ["--intro", str(args.intro)] if args.intro else []
    argv += ["--main", args.main] if args.main != "UDASA" else []
    argv += ["--experiment", args.experiment] if args.experiment else []
    for first, second in args.compare:
        argv += ["--compare", first, second]
    return shlex.join([*argv, "--out", str(args.out)])


def main(argv: list[str] | None = None) -> int:
    return run_cli(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
