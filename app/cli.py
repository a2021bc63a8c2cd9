"""`udasa-app`: serve the inspector / rating / comparison app over a workspace store.

    udasa-app --workspace DIR [--host 127.0.0.1] [--port 7860] [--users users.yaml]
    udasa-app hash-password [--rounds 12]      # prints a bcrypt hash for the users file

Binds 127.0.0.1 unless told otherwise; Gradio analytics and telemetry are off.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

import app  # noqa: F401  (turns analytics and telemetry off first)
from app.auth import ENV_USERS, hash_password, load_users
from udasa.cli_common import run_cli
from udasa.errors import UdasaError

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="udasa-app", description="Uncertainty inspector, human rating and method "
        "comparison over a UDASA workspace store.")
    parser.add_argument("--workspace", type=Path, default=Path("udasa-workspace"),
                        help="the workspace of `udasa run` / `udasa-eval run` (default: "
                             "./udasa-workspace)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default "
                        "127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--users", type=Path, default=None,
                        help=f"YAML/JSON users file with bcrypt hashes (also ${ENV_USERS}); "
                             "without users, sign-in and rating are off")
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.set_defaults(fn=cmd_serve)
    sub = parser.add_subparsers(dest="command")
    hp = sub.add_parser("hash-password", help="print a bcrypt hash of a password (read from "
                        "the terminal, or one line of stdin)")
    hp.add_argument("--rounds", type=int, default=12, help="bcrypt cost (default 12)")
    hp.set_defaults(fn=cmd_hash_password)
    return parser


def read_password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("password: ")
        if getpass.getpass("again: ") != first:
            raise UdasaError("the two passwords differ")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def cmd_hash_password(args) -> None:
    print(hash_password(read_password(), args.rounds))
    print('put it in the users file: users: {NAME: {password_hash: "<hash>"}}', file=sys.stderr)


def cmd_serve(args) -> None:
    from app.ui import build, launch

    users = load_users(args.users)
    if not users and args.host not in LOOPBACK:
        print(f"udasa-app: warning: serving {args.host} without sign-in: anyone who can reach "
              "it reads the store (add --users)", file=sys.stderr)
    demo, state = build(args.workspace, users)
    where = state.ws.db_path if state.ws.exists() else f"{state.ws.db_path} (not created yet)"
    print(f"udasa-app: store {where}; sign-in "
          f"{'on, ' + str(len(users)) + ' user(s)' if users else 'off'}; "
          f"http://{args.host}:{args.port}", flush=True)
    launch(demo, state, args.host, args.port)


def main(argv: list[str] | None = None) -> int:
    return run_cli(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
