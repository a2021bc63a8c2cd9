"""What the command lines share: logging set-up, plugins (`--plugin`, $UDASA_PLUGINS), the
workspace lock of the commands that write, and user-facing errors without tracebacks."""

from __future__ import annotations

import argparse
import errno
import logging
import os
import shlex
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from udasa import dist
from udasa.errors import UdasaError
from udasa.registry import PLUGIN_ENV, load_plugins

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
    for name in OURS:  # -v adds our DEBUG lines (for example each duplicate row skipped)
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.INFO)
    # lm-eval's per-run advice (chat template, few-shot) repeats once per model evaluated
    logging.getLogger("lm_eval").setLevel(logging.NOTSET if verbose else logging.ERROR)
    if verbose:
        return
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    import sys
    import warnings

    for category in (FutureWarning, DeprecationWarning):  # the libraries' API churn
        warnings.filterwarnings("ignore", category=category,
                                module=r"(transformers|trl|datasets|accelerate)(\.|$)")

    if "transformers" in sys.modules:  # already imported: tell it directly as well
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    if "datasets" in sys.modules:
        import datasets

        datasets.disable_progress_bars()
        datasets.logging.set_verbosity_error()


def add_plugin_option(parser: argparse.ArgumentParser) -> None:
    """`--plugin MODULE_OR_FILE` (repeatable), for the help text; `split_plugins` takes it from
    anywhere on the command line, before or after the subcommand."""
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE_OR_FILE",
                        help="import an extension module (a dotted name or a .py file) first, "
                             f"so what it registers can be used (repeatable; also ${PLUGIN_ENV},"
                             " comma-separated, and the `udasa.plugins` entry points)")


def split_plugins(argv: list[str]) -> tuple[list[str], list[str]]:
    """(the `--plugin` values, the other arguments)."""
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    pre.add_argument("--plugin", action="append", default=[])
    known, rest = pre.parse_known_args(argv)
    return known.plugin, rest


@contextmanager
def writer(args: argparse.Namespace, command: str) -> Iterator[None]:
    """For a command that writes to `args.workspace` (its parser sets `writes=True`): hold the
    workspace's lock, and refuse a damaged store before anything opens it for writing. In a
    job of several processes the main one (rank 0, the one that writes) does both."""
    from udasa import dist

    writes = getattr(args, "writes", False) and not getattr(args, "plan", False)  # a plan reads
    if not writes or not dist.is_main():  # one lock for a whole job
        yield
        return
    from udasa.integrity import check
    from udasa.lock import workspace_lock
    from udasa.store import Store

    with workspace_lock(args.workspace, command):
        check(args.workspace / Store.FILENAME)
        yield


FULL_OR_READ_ONLY = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG}


def as_user_error(exc: BaseException, args: argparse.Namespace) -> UdasaError | None:
    """A full or read-only disk, or a damaged store, met where no code of ours said so."""
    from udasa.files import disk_reason, write_failure
    from udasa.integrity import as_store_error

    workspace = getattr(args, "workspace", None)
    workspace = workspace if isinstance(workspace, str | Path) else None  # report: a list
    if isinstance(exc, sqlite3.DatabaseError):
        return as_store_error(Path(workspace or ".") / "udasa.sqlite", exc)
    if not isinstance(exc, OSError) or exc.errno not in FULL_OR_READ_ONLY:
        return None  # (a read refused, say, is not a write failure: shown as it is)
    reason = disk_reason(exc) or str(exc)
    return write_failure(getattr(exc, "filename", None) or workspace or "a file", reason)


def run_cli(parser: argparse.ArgumentParser, argv: list[str] | None) -> int:
    """Parse, set up logging, load the plugins, run `args.fn` (holding the workspace's lock
    when it writes); a UdasaError (also a full disk or a damaged store) prints as one line
    `error: ...`, exit 2."""
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    add_plugin_option(parser)
    argv = sys.argv[1:] if argv is None else list(argv)
    plugins, rest = split_plugins(argv)
    args = parser.parse_args(rest)
    setup_logging(bool(getattr(args, "verbose", False)))
    if not dist.is_main():  # several processes (docs/scaling.md): the main one reports
        os.environ["TQDM_DISABLE"] = "1"
        for name in OURS:
            logging.getLogger(name).setLevel(logging.WARNING)
    try:
        try:
            load_plugins(plugins)
            with writer(args, shlex.join([parser.prog, *argv])):
                args.fn(args)
        except (OSError, sqlite3.DatabaseError) as exc:
            known = as_user_error(exc, args)
            if known is None:
                raise
            raise known from None
    except UdasaError as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        return 2
    return 0
