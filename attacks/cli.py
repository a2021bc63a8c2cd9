"""`python -m attacks.cli`: run GCG on AdvBench behaviours and report ASR (a thin layer).

    python -m attacks.cli --config configs/gcg/cpu-demo.yaml --behaviours 3
    python -m attacks.cli --universal --behaviours 5 --set num_steps=50
    python -m attacks.cli --models embedded path/to/checkpoint --universal   # transfer

Individual mode optimises one suffix per behaviour; `--universal` one suffix for all of them
(progressive goals; several `--models` make it a transfer attack on their ensemble). Writes
`<out>/gcg.json` (every result with its loss curve, the criterion and the config) and
`<out>/gcg_loss.png`, and prints the ASR under the refusal-prefix test with a Wilson CI. For
the leaderboard, use the `robustness` task of `udasa-eval run` instead.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from udasa.errors import UdasaError
from udasa.files import write_json

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m attacks.cli", description=__doc__.split("\n")[0])
    p.add_argument("--config", default=str(REPO / "configs" / "gcg" / "cpu-demo.yaml"))
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a GCGConfig field (YAML value)")
    p.add_argument("--models", nargs="+", default=["embedded"],
                   help="model paths / hub ids sharing one tokenizer (embedded: SmolLM2)")
    p.add_argument("--behaviours", type=int, default=3, help="first N AdvBench behaviours")
    p.add_argument("--data", default=None, help="a CSV with goal,target (default AdvBench)")
    p.add_argument("--universal", action="store_true",
                   help="one suffix for all behaviours (progressive goals)")
    p.add_argument("--out", type=Path, default=Path("udasa-workspace") / "attacks" / "cli")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="show the libraries' own progress bars and messages")
    from udasa.cli_common import add_plugin_option, setup_logging, split_plugins
    from udasa.registry import load_plugins

    add_plugin_option(p)
    plugins, rest = split_plugins(sys.argv[1:] if argv is None else list(argv))
    args = p.parse_args(rest)
    setup_logging(args.verbose)
    try:
        load_plugins(plugins)
        run(args)
    except UdasaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def run(args) -> None:
    from attacks.advbench import load_behaviours
    from attacks.gcg import load_gcg_config, run_gcg
    from attacks.plots import loss_curves
    from evals.stats import proportion_ci
    from udasa.models import load_causal_lm

    cfg = load_gcg_config(args.config, args.set)
    behaviours = load_behaviours(args.data, limit=args.behaviours)
    lms = [load_causal_lm(m) for m in args.models]
    if args.universal or len(lms) > 1:
        runs = [("universal", run_gcg(lms, behaviours, cfg))]
    else:
        runs = [(b.goal, run_gcg(lms[0], b, cfg)) for b in behaviours]
    flags = [row["jailbroken"] for _, r in runs for row in r.final]
    asr = proportion_ci(flags)
    write_json(args.out / "gcg.json",
               {"models": args.models, "config_file": args.config, "overrides": args.set,
                "asr_prefix": asr.__dict__,
                "results": [{"label": k} | r.to_dict() for k, r in runs]},
               ensure_ascii=False)
    png = loss_curves({k: r.losses for k, r in runs if r.losses}, args.out / "gcg_loss.png",
                      f"GCG on {', '.join(args.models)}") if any(r.losses for _, r in runs) else None
    for label, r in runs:
        print(f"{label[:60]!r}: loss {r.init_loss:.3f} -> {r.best_loss:.3f} in {r.steps} steps "
              f"({r.wall_time_s:.0f} s), success={r.success}, suffix={r.suffix!r}")
    crit = runs[0][1].criterion
    print(f"ASR (refusal prefixes '{crit['prefix_list']}', {crit['max_new_tokens']} greedy "
          f"tokens): {asr.fmt()} % over {asr.n} behaviour x model pairs")
    print(f"wrote {args.out / 'gcg.json'}" + (f" and {png}" if png else ""))


if __name__ == "__main__":
    sys.exit(main())
