"""What the command lines share: logging set-up and user-facing errors without tracebacks."""

from __future__ import annotations

import argparse
import logging
import os

from rich.console import Console

from udasa.errors import UdasaError

console = Console(soft_wrap=True)  # long paths stay on one line (copyable)


def run_cli(parser: argparse.ArgumentParser, argv: list[str] | None) -> int:
    """Parse, set up logging, run `args.fn`; a UdasaError prints as `error: ...`, exit 2."""
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if getattr(args, "verbose", False) else
                        logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        args.fn(args)
    except UdasaError as exc:
        console.print(f"[bold red]error:[/] {exc}")
        return 2
    return 0
