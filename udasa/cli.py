"""`udasa` command line: a thin layer over udasa.pipeline (parse, call, show)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from rich.table import Table

from udasa import dist
from udasa.axes import axis_keys
from udasa.cli_common import console, run_cli
from udasa.config import RunConfig, load_config
from udasa.errors import UdasaError
from udasa.progress import finished_line

DEFAULT_CONFIG = Path("configs/cpu-demo.yaml")
DEFAULT_WORKSPACE = Path("udasa-workspace")


def _config(args: argparse.Namespace) -> RunConfig:
    path = args.config or (DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None)
    return load_config(path, args.set)


def _pipeline(args: argparse.Namespace):
    from udasa.pipeline import Pipeline

    return Pipeline(_config(args), args.workspace)


def _report(step: str, rep) -> None:
    unit = "stages" if step == "train" else ""
    took = f" ({rep.seconds:.0f} s)" if rep.seconds is not None else ""
    console.print(f"[bold]{step}[/]: {rep.done} {unit} done, {rep.reused} reused, "
                  f"{rep.skipped} skipped{took}".replace("  ", " "))
    for note in rep.notes[:10]:
        console.print(f"  [yellow]{note}[/]")
    if len(rep.notes) > 10:
        console.print(f"  [yellow]... and {len(rep.notes) - 10} more[/]")


def summary(pipe) -> Path | None:
    """Print the run's summary table and stage table; write the delta histogram PNG."""
    import numpy as np

    from udasa.plots import delta_histogram

    store, run_id = pipe.store, pipe.run_id
    run = store.get_run(run_id)
    info = run.summary
    prompts = store.run_prompts(run_id)
    groups = pipe._groups()
    fused = store.fused(run_id)
    pairs = store.pairs(run_id)
    comps = [f.components for f in fused]
    t = Table(title=f"UDASA run {run_id} ({run.name})")
    t.add_column("quantity")
    t.add_column("value", justify="right")
    t.add_row("prompts / with responses", f"{len(prompts)} / {len(groups)}")
    t.add_row("responses", str(sum(len(g) for g in groups.values())))
    events = store.prompt_events(pipe.gen_key)
    t.add_row("prompts skipped or failed in generation", str(len(events)))
    for axis in axis_keys():
        vals = [c[axis] for c in comps if axis in c]
        if vals:
            t.add_row(f"mean U_{axis} (sd)", f"{np.mean(vals):.3f} ({np.std(vals):.3f})")
    if fused:
        t.add_row("mean fused u", f"{np.mean([f.u for f in fused]):.3f}")
    t.add_row("pairs", str(len(pairs)))
    for why, n in info.get("drops", {}).items():
        t.add_row(f"  dropped: {why}", str(n))
    if pairs:
        t.add_row("mean Δu", f"{np.mean([p.delta for p in pairs]):.3f}")
    console.print(t)
    stages = store.stages(run_id)
    if stages:
        st = Table(title="curriculum stages (trained in this order)")
        for col in ("stage", "name", "Δu range", "pairs"):
            st.add_column(col)
        for s in stages:
            st.add_row(str(s.stage), s.name, f"[{s.lo:.3g}, {s.hi:.3g})", str(s.count))
        console.print(st)
    if not pairs:
        return None
    plot = delta_histogram([p.delta for p in pairs], info.get("thresholds", []),
                           pipe.workspace / "plots" / f"delta_hist_{run_id}.png")
    console.print(f"Δu histogram: [bold]{plot.resolve()}[/]")
    return plot


def cmd_run(args):
    pipe = _pipeline(args)
    reports = pipe.run_all()
    if dist.is_main():  # with several processes (docs/scaling.md) the main one reports
        for step, rep in reports.items():
            _report(step, rep)
        summary(pipe)


def cmd_step(args):
    """One step; with several processes only `train` runs on all of them, the others on the
    main process while the rest wait."""
    if args.command != "generate":  # a later step on a workspace with no store creates none
        from udasa.store import Store

        Store.existing(args.workspace, "udasa generate").close()
    pipe = _pipeline(args)
    step = getattr(pipe, args.command)
    rep = step() if args.command == "train" else dist.from_main(step)
    if dist.is_main():
        _report(args.command, rep)
        if args.command == "stages":
            summary(pipe)


def cmd_export(args):
    from udasa.export import export_pairs
    from udasa.status import require, run_state
    from udasa.store import Store

    store = Store.existing(args.workspace)
    latest = store.latest_run()
    run_id = args.run or (latest.id if latest else None)
    if not run_id:
        raise UdasaError(f"no runs in {store.path}: run `udasa run` first")
    if (run := store.get_run(run_id)) and not store.stages(run_id):
        require(run_state(store, run), "stages")  # the step to run first
    for path in export_pairs(store, run_id, args.out):
        lines = len(path.read_text(encoding="utf-8").splitlines())
        console.print(f"{path}: {lines} pairs")


def cmd_scorers(args):
    from udasa.scorer_report import report, write_report

    cfg = _config(args)
    if args.human:
        return cmd_scorers_human(args, cfg)
    rows = report(cfg.scoring, alternatives=not args.configured_only)
    t = Table(title="scorer accuracy on UDASA's labelled validation sets")
    for col in ("axis", "scorer", "n", "accuracy", "AUROC", "details"):
        t.add_column(col)
    for r in rows:
        t.add_row(r.axis, r.scorer, str(r.n), f"{r.accuracy:.3f}", f"{r.auroc:.3f}",
                  ", ".join(f"{k}={v:.2f}" for k, v in r.extra.items()))
    console.print(t)
    path = write_report(rows, Path(args.workspace) / "scorer_report.json")
    console.print(f"written to {path}")


def cmd_scorers_human(args, cfg: RunConfig) -> None:
    from udasa import premise_human as ph

    start = time.perf_counter()
    labels = (ph.read_labels(args.labels) if args.labels
              else ph.mirror_labels(args.limit or None, args.seed))
    rows = ph.premise_rows(cfg, labels, alternatives=not args.configured_only, seed=args.seed)
    out = args.out or Path(args.workspace) / "premise-human"
    md, js = ph.write(rows, labels, out, {"limit": args.limit, "seed": args.seed,
                                          "fusion": vars(cfg.fusion)})
    console.print(md.read_text(encoding="utf-8"), markup=False)
    console.print(f"written to {md} and {js}")
    console.print(finished_line("premise against human labels", start))


def cmd_sweep(args):
    from udasa.sweep import parse_grid, plot_heatmap, run_sweep, write_table

    grid = parse_grid(args.grid)
    points = run_sweep(args.config or (DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None),
                       args.workspace, grid, args.set, progress=console.print)
    out = Path(args.workspace) / "sweeps" / (args.name or "_".join(grid))
    csv_path, md_path = write_table(points, args.metric, out)
    console.print(md_path.read_text())
    png = plot_heatmap(points, args.metric, out / f"heatmap_{args.metric.replace('/', '_')}.png")
    console.print(f"table: {csv_path}\nheatmap: {png}")


def cmd_table3(args):
    from udasa.table3 import PAPER_COLUMNS, score_table3, write

    t = score_table3(_config(args))
    table = Table(title=f"Table 3: \"{t.prompt}\" (ours / paper)")
    table.add_column("reply", no_wrap=True, overflow="ellipsis", max_width=24)
    for col in (*[PAPER_COLUMNS[a] for a in t.rows[0].ours], "u", "u paper", "Eq.5-6 paper",
                "human"):
        table.add_column(col, no_wrap=True, justify="right",
                         min_width=11 if col.startswith("U_") else max(4, len(col)))
    for r in t.rows:
        table.add_row(r.reply, *[f"{r.ours[a]:.2f} / {r.paper[a]:.2f}" for a in r.ours],
                      f"{r.u:.2f}", f"{r.paper_u:.2f}", f"{r.paper_u_formula:.2f}",
                      f"{r.human:.2f}")
    console.print(table)
    console.print("scorers: " + "; ".join(f"{a}: {s}" for a, s in t.scorers.items())
                  + f"; fusion: {t.fusion}")
    console.print("u: ours; u paper: as listed; Eq.5-6 paper: the configured fusion of the "
                  "paper's U; human: the paper's human column")
    console.print(f"Spearman with the human column: ours {t.rho_ours:+.2f}, paper's u "
                  f"{t.rho_paper:+.2f} (n = {len(t.rows)})")
    console.print(f"paper's values: {t.source}")
    md, js = write(t, Path(args.workspace))
    console.print(f"written to {md} and {js}")


def cmd_check(args):
    from udasa.check import check_workspace

    report = check_workspace(args.workspace)
    console.print(report.text(), markup=False, highlight=False)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="udasa", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p):
        p.add_argument("--config", type=Path, default=None,
                       help=f"YAML config (default: {DEFAULT_CONFIG} if present)")
        p.add_argument("--workspace", type=Path, default=DEFAULT_WORKSPACE,
                       help="folder for the store, plots and checkpoints")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config field, e.g. --set generation.n=3 (repeatable)")
        p.add_argument("-v", "--verbose", action="store_true")
        p.set_defaults(writes=True)  # holds the workspace's lock (udasa.lock) while it runs
        return p

    common(sub.add_parser("run", help="generate, score, pair and stage (the whole loop)")
           ).set_defaults(fn=cmd_run)
    for name, text in (("generate", "draw N responses per prompt"),
                       ("score", "score responses on the three uncertainty axes"),
                       ("pairs", "fuse scores and build preference pairs"),
                       ("stages", "assign pairs to curriculum stages"),
                       ("train", "phased DPO on the stored pairs, stage after stage")):
        common(sub.add_parser(name, help=text)).set_defaults(fn=cmd_step)
    chk = sub.add_parser("check", help="the store's integrity check, and what a rerun of each "
                                       "stored run would redo (reads only)")
    chk.add_argument("--workspace", type=Path, default=DEFAULT_WORKSPACE)
    chk.add_argument("-v", "--verbose", action="store_true")
    chk.set_defaults(fn=cmd_check)
    exp = sub.add_parser("export-pairs", help="write each stage's pairs as DPO-ready JSONL")
    exp.add_argument("--workspace", type=Path, default=DEFAULT_WORKSPACE)
    exp.add_argument("--out", type=Path, required=True)
    exp.add_argument("--run", default=None, help="run id (default: the latest)")
    exp.add_argument("-v", "--verbose", action="store_true")
    exp.set_defaults(fn=cmd_export)
    sw = common(sub.add_parser("sweep", help="run a grid of configs and tabulate a metric"))
    sw.add_argument("--grid", action="append", default=[], metavar="KEY=[V1,V2,...]",
                    help="e.g. --grid 'curriculum.thresholds=[[0.3,0.6],[0.4,0.7]]' (repeatable)")
    sw.add_argument("--metric", default="eval_rewards/accuracies",
                    help="a final held-out training metric (default: DPO reward accuracy)")
    sw.add_argument("--name", default=None, help="folder name under WORKSPACE/sweeps/")
    sw.set_defaults(fn=cmd_sweep)
    sc = common(sub.add_parser("scorers", help="scorer accuracy on labelled validation sets"))
    sc.add_argument("--configured-only", action="store_true")
    sc.add_argument("--human", action="store_true",
                    help="the premise against human labels: does lower uncertainty pick the "
                         "HH-RLHF reply humans preferred, and flag TruthfulQA answers labelled "
                         "false? (docs/premise.md)")
    sc.add_argument("--labels", type=Path, default=None,
                    help="--human: a JSONL file of labelled pairs and answers (default: the "
                         "offline mirror's HH-RLHF test pairs and TruthfulQA truth labels)")
    sc.add_argument("--limit", type=int, default=500,
                    help="--human: a seeded sample of this many per check (0: all)")
    sc.add_argument("--seed", type=int, default=0)
    sc.add_argument("--out", type=Path, default=None,
                    help="--human: folder for premise_human.md / .json "
                         "(default: WORKSPACE/premise-human)")
    sc.set_defaults(fn=cmd_scorers)
    common(sub.add_parser("table3", help="the paper's Table 3 replies scored by the configured "
                          "scorers, beside the paper's values")).set_defaults(fn=cmd_table3)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_cli(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
