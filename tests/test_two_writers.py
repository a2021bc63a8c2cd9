"""Two writers on one workspace: the second stops with one line naming the first; readers carry
on; a lock left by a killed writer is taken over with a log line.

The first writer is a real `udasa run` in another process (a tiny policy, a long training so
that it is still running while the test looks); the rest run in this process through the CLIs.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO, small_overrides

from udasa.cli import main
from udasa.lock import LOCK_NAME
from udasa.store import Store

CONFIG = REPO / "configs" / "cpu-demo.yaml"


def args(step: str, ws, policy: str, limit: int, *extra: str) -> list[str]:
    out = [step, "--config", str(CONFIG), "--workspace", str(ws)]
    for item in small_overrides(limit=limit, **{"generation.model": policy,
                                                "generation.max_new_tokens": 6}) + list(extra):
        out += ["--set", item]
    return out


def error_lines(capsys) -> list[str]:
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return [x for x in (out + err).splitlines() if x.startswith("error:")]


def wait_for_lock(ws, proc, log) -> dict:
    deadline = time.time() + 180
    while time.time() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            holder = json.loads((ws / LOCK_NAME).read_text())
            if holder.get("pid") == proc.pid:
                return holder
        except (OSError, ValueError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"the writer never took the lock:\n{log.read_text()}")


@pytest.fixture
def finished(tmp_path, tiny_run):
    """A copy of a workspace with one finished run: something to read."""
    ws = shutil.copytree(tiny_run, tmp_path / "ws")
    store = Store(ws)
    run_id = store.latest_run().id
    store.close()
    return ws, run_id


def test_second_writer_stops_readers_carry_on_and_a_killed_writers_lock_is_taken_over(
        finished, tiny_policy, tmp_path, capsys, caplog):
    from app.storage import Workspace
    from evals.cli import main as eval_main

    ws, first_run = finished
    writer = args("run", ws, tiny_policy, 2, "training.enabled=true", "training.epochs=200",
                  "training.max_length=96")
    log = tmp_path / "writer.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "udasa.cli", *writer], cwd=REPO,
                                stdout=out, stderr=subprocess.STDOUT,
                                env=os.environ | {"PYTHONPATH": str(REPO)})
    try:
        holder = wait_for_lock(ws, proc, log)
        assert holder["command"].startswith("udasa run --config")
        capsys.readouterr()
        # a second writer, of either command line, stops before doing anything
        assert main(args("generate", ws, tiny_policy, 2)) == 2
        (line,) = error_lines(capsys)
        assert f"in use by pid {proc.pid} (`udasa run --config" in line, line
        assert eval_main(["run", "--models", "base", "--tasks", "harmlessness",
                          "--workspace", str(ws)]) == 2
        (line,) = error_lines(capsys)
        assert f"pid {proc.pid}" in line
        # readers: udasa check, export-pairs, the app's store
        assert main(["check", "--workspace", str(ws)]) == 0
        out = capsys.readouterr().out
        assert f"lock: held by pid {proc.pid}" in out and "integrity_check ok" in out
        assert main(["export-pairs", "--workspace", str(ws), "--run", first_run,
                     "--out", str(tmp_path / "pairs")]) == 0
        assert list((tmp_path / "pairs").glob("stage-*.jsonl"))
        with Workspace(ws).read() as store:
            assert first_run in {r.id for r in store.runs()}
        assert proc.poll() is None, "the writer ended before the readers were done"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # the killed writer's lock file is still there, naming it; the next writer takes it over
    assert json.loads((ws / LOCK_NAME).read_text())["pid"] == proc.pid
    capsys.readouterr()
    with caplog.at_level(logging.WARNING, logger="udasa.lock"):
        assert main(args("generate", ws, tiny_policy, 2)) == 0
    assert any(f"taking over a stale lock of pid {proc.pid}" in r.getMessage()
               for r in caplog.records), caplog.text
    assert not (ws / LOCK_NAME).exists()  # released at the end


def test_lock_is_reentrant_within_a_process_and_released(tmp_path):
    from udasa.lock import holder, workspace_lock

    with workspace_lock(tmp_path, "outer") as path:
        with workspace_lock(tmp_path, "inner"):
            assert json.loads(path.read_text())["command"] == "outer"
        assert holder(tmp_path)["pid"] == os.getpid()
    assert not path.exists() and holder(tmp_path) is None
