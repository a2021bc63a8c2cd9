"""`udasa-app`: the Gradio inspector / rating / comparison app. Not built yet."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    print("udasa-app: the Gradio app is not available in this version yet (tracked as "
          "issue #7).", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
