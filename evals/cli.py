"""`udasa-eval`: the evaluation harness (SPEC §7). Not built yet: see the README's roadmap."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    print("udasa-eval: the evaluation harness is not available in this version yet "
          "(tracked as issue #4). Use `udasa run` / `udasa export-pairs` meanwhile.",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
