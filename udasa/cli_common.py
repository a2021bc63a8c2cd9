"""What the command lines share: logging set-up and user-facing errors without tracebacks."""

from __future__ import annotations

import argparse
import logging
import os

from rich.console import Console
from rich.markup import escape

from udasa.errors import UdasaError

console = Console(soft_wrap=True)  # long paths stay on one line (copyable)


OURS = ("udasa", "evals", "attacks", "app")
QUIET_ENV = {"TRANSFORMERS_VERBOSITY": "error", "DATASETS_VERBOSITY": "error",
             "HF_DATASETS_DISABLE_PROGRESS_BARS": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
             "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1", "TOKENIZERS_PARALLELISM": "false"}


def setup_logging(verbose: bool) -> None:
    """Our routine progress at INFO (shown); the libraries' own bars and per-stage chatter
    (transformers' weight loading, datasets' "Flattening the indices", TRL's tokenizing) only
    with --verbose. Each step shows one bar of its own (udasa/progress.py)."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    for name in OURS:
        logging.getLogger(name).setLevel(logging.INFO)
    if verbose:
        return
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    import sys

    if "transformers" in sys.modules:  # already imported: tell it directly as well
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    if "datasets" in sys.modules:
        import datasets

        datasets.disable_progress_bars()
        datasets.logging.set_verbosity_error()


def run_cli(parser: argparse.ArgumentParser, argv: list[str] | None) -> int:
    """Parse, set up logging, run `args.fn`; a UdasaError prints as `error: ...`, exit 2."""
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    args = parser.parse_args(argv)
    setup_logging(bool(getattr(args, "verbose", False)))
    try:
        args.fn(args)
    except UdasaError as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        return 2
    return 0
