"""Several processes on one job (`torchrun`, `accelerate launch`): which process this is, and
how the others wait for the main one (docs/scaling.md).

One rule keeps a run of several processes equal to a run of one: only the main process (rank
0) writes the store, plots and checkpoints; what steers the code (what is stored, what is
left to do) is read on the main process and handed to the others (`from_main`), who wait for
it. With one process (no `WORLD_SIZE` above 1) every helper is a plain call.

The waits go through a gloo group of their own with a long timeout
(`$UDASA_DIST_TIMEOUT_S`, default a day): the other ranks may wait while the main process
generates and scores for hours. A launcher ends every rank when one fails, so a long wait
never outlives a crash.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from udasa.errors import UdasaError

TIMEOUT_ENV = "UDASA_DIST_TIMEOUT_S"
T = TypeVar("T")
_control: Any = None  # the gloo group of our waits, made on first use


def world_size() -> int:
    """Processes in this job (1 unless a launcher set `WORLD_SIZE`)."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def rank() -> int:
    return int(os.environ.get("RANK", "0") or 0) if world_size() > 1 else 0


def is_main() -> bool:
    """Whether this process writes the store, plots and checkpoints (and would take the
    workspace lock)."""
    return rank() == 0


def active() -> bool:
    return world_size() > 1


def _timeout() -> timedelta:
    raw = os.environ.get(TIMEOUT_ENV, "") or "86400"
    try:
        return timedelta(seconds=float(raw))
    except ValueError:
        raise UdasaError(f"${TIMEOUT_ENV}: {raw!r} is not a number of seconds") from None


def init() -> None:
    """Join the launcher's process group (once): gloo on a machine without CUDA, else
    gloo for CPU tensors and NCCL for CUDA ones; the Trainer then uses the same group."""
    global _control
    if not active() or _control is not None:
        return
    import torch
    import torch.distributed as td

    if not td.is_initialized():
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        td.init_process_group("cpu:gloo,cuda:nccl" if cuda else "gloo", timeout=_timeout())
    _control = td.new_group(backend="gloo", timeout=_timeout())


def barrier() -> None:
    """Every process waits here until all have arrived."""
    if active():
        import torch.distributed as td

        init()
        td.barrier(group=_control)


def from_main(fn: Callable[[], T]) -> T:
    """`fn()` run on the main process only, its result returned on every process (each
    waits for it). An error on the main process is raised on every process."""
    if not active():
        return fn()
    import torch.distributed as td

    init()
    box: list[Any] = [None]
    error: BaseException | None = None
    if is_main():
        try:
            box[0] = ("ok", fn())
        except BaseException as exc:  # noqa: BLE001 - handed to the others, then re-raised
            error, box[0] = exc, ("error", f"{type(exc).__name__}: {exc}")
    td.broadcast_object_list(box, src=0, group=_control)
    if error is not None:
        raise error
    kind, value = box[0]
    if kind == "error":
        raise UdasaError(f"the main process failed: {value}")
    return value


def on_main(fn: Callable[[], object]) -> None:
    """`fn()` (a write) on the main process only; every process leaves together."""
    from_main(lambda: (fn(), None)[1])


def finish() -> bool:
    """End the part run by several processes: all wait for each other, the group is closed,
    and the main process goes on alone as a single process (accelerate and the Trainer see
    one). Returns whether this process goes on (the main one)."""
    global _control
    if not active():
        return True
    import torch.distributed as td
    from accelerate.state import AcceleratorState

    main = is_main()
    barrier()
    td.destroy_process_group()
    _control = None
    os.environ.update(WORLD_SIZE="1", RANK="0", LOCAL_RANK="0", LOCAL_WORLD_SIZE="1")
    AcceleratorState._reset_state(reset_partial_state=True)
    return main
