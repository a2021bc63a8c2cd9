"""One progress bar per step: items done, with generated tokens per second beside them."""

from __future__ import annotations

import re
import time
from typing import Self

from tqdm.auto import tqdm

# the last line of a command's output; the results report's runs table reads it from the log
FINISHED = re.compile(r"finished in (\d+) s \(wall time\)")


def finished_line(what: str, start: float) -> str:
    """`<what> finished in N s (wall time)`, N the seconds since `start` (`time.perf_counter`)."""
    return f"{what} finished in {time.perf_counter() - start:.0f} s (wall time)"


class StepProgress:
    """A tqdm bar over items (prompts, responses) whose postfix shows tokens/s.

    `tokens(n)` is the engine's per-step callback; the postfix is refreshed at most twice a
    second so that counting costs nothing.
    """

    def __init__(self, total: int, desc: str, unit: str = "prompt"):
        self.bar = tqdm(total=total, desc=desc, unit=unit, disable=not total, leave=True)
        self.start = time.perf_counter()
        self.count = 0
        self._shown = 0.0

    def tokens(self, n: int) -> None:
        self.count += n
        now = time.perf_counter()
        if now - self._shown > 0.5:
            self._shown = now
            self.bar.set_postfix_str(f"{self.rate():.1f} tok/s", refresh=True)

    def rate(self) -> float:
        return self.count / max(time.perf_counter() - self.start, 1e-9)

    def update(self, n: int = 1) -> None:
        self.bar.update(n)

    def close(self) -> None:
        if self.count:
            self.bar.set_postfix_str(f"{self.rate():.1f} tok/s, {self.count} tokens")
        self.bar.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
