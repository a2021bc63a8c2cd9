"""Disk full and read-only: every write path fails with one line naming the path and the cause,
leaves no half-written file, and a rerun after space is freed ends as an uninterrupted run.

Write sites, each with an ENOSPC injected where the bytes go (tests/disk_faults.py): store rows
(SQLite's own SQLITE_FULL), a stage checkpoint (safetensors' writer), results.json and
samples.jsonl, a plot, the exported pairs. Then a real small filesystem (a tmpfs in a private
mount namespace) that fills during `udasa generate`, and one remounted read-only.
"""

from __future__ import annotations

import errno
import json
import os
import shlex
import shutil
import sys

import pytest
from conftest import REPO, TINY_TRAINING, tiny_run_args
from disk_faults import (
    full_at,
    full_checkpoint_at,
    full_store,
    small_fs,
    small_fs_missing,
)

from udasa.cli import main
from udasa.files import WriteError, atomic_write
from udasa.store import Store

FULL = "No space left on device"


def one_error(capsys) -> str:
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    lines = [x for x in (out + err).splitlines() if x.startswith("error:")]
    assert len(lines) == 1, out + err
    return lines[0]


def leftovers(ws) -> list[str]:
    return sorted(str(p.relative_to(ws)) for p in [*ws.rglob(".*.tmp"), *ws.rglob("*.partial")])


def responses(ws) -> list[tuple]:
    from udasa.store_records import Response

    store = Store(ws)
    try:
        return sorted((r.prompt_id, r.sample_index, r.text)
                      for r in store.select(Response, "responses"))
    finally:
        store.close()


def test_atomic_write_keeps_the_old_file_when_the_disk_fills(tmp_path, monkeypatch):
    path = tmp_path / "results.json"
    path.write_text('{"old": true}')
    full_at(monkeypatch, "results.json")
    with pytest.raises(WriteError) as e, atomic_write(path) as f:
        f.write("x" * 10_000)
    assert str(e.value).startswith(f"{path}: cannot write ({FULL})")
    assert path.read_text() == '{"old": true}' and leftovers(tmp_path) == []


def test_store_full_while_generating(tmp_path, tiny_run, tiny_policy, monkeypatch, capsys):
    ws = tmp_path / "ws"
    assert main(tiny_run_args("generate", ws, tiny_policy, limit=1)) == 0  # some rows stored
    with monkeypatch.context() as m:
        full_store(m)
        capsys.readouterr()
        assert main(tiny_run_args("generate", ws, tiny_policy)) == 2
        line = one_error(capsys)
    assert line.startswith(f"error: {ws / Store.FILENAME}: cannot write (database or disk is "
                           "full)"), line
    assert main(["check", "--workspace", str(ws)]) == 0  # the store is sound
    assert main(tiny_run_args("generate", ws, tiny_policy)) == 0  # space freed: rerun
    assert responses(ws) == responses(tiny_run) and len(responses(ws)) == 9


def test_plot_write_fails_cleanly(tiny_run, tmp_path, tiny_policy, monkeypatch, capsys):
    ws = shutil.copytree(tiny_run, tmp_path / "ws")
    with monkeypatch.context() as m:
        full_at(m, "delta_hist")
        capsys.readouterr()
        assert main(tiny_run_args("stages", ws, tiny_policy)) == 2
        line = one_error(capsys)
    (png,) = (ws / "plots").glob("delta_hist_*.png")  # the uninterrupted run's, kept whole
    assert line.startswith(f"error: {png}: cannot write ({FULL})"), line
    assert leftovers(ws) == [] and png.read_bytes() == (tiny_run / "plots" / png.name).read_bytes()
    png.unlink()
    assert main(tiny_run_args("stages", ws, tiny_policy)) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_exported_pairs_fail_cleanly(tiny_run, tmp_path, monkeypatch, capsys):
    clean, out = tmp_path / "clean", tmp_path / "out"
    assert main(["export-pairs", "--workspace", str(tiny_run), "--out", str(clean)]) == 0
    with monkeypatch.context() as m:
        full_at(m, "stage-2-")
        capsys.readouterr()
        assert main(["export-pairs", "--workspace", str(tiny_run), "--out", str(out)]) == 2
        line = one_error(capsys)
    (stage2,) = clean.glob("stage-2-*.jsonl")
    assert line.startswith(f"error: {out / stage2.name}: cannot write ({FULL})"), line
    assert leftovers(out) == [] and not (out / stage2.name).exists()
    assert main(["export-pairs", "--workspace", str(tiny_run), "--out", str(out)]) == 0
    assert {p.name: p.read_bytes() for p in out.iterdir()} == {
        p.name: p.read_bytes() for p in clean.iterdir()}


def checkpoints(ws) -> list[tuple]:
    store = Store(ws)
    try:
        return [(c.stage, c.name, {k: v for k, v in c.metrics.items()
                                   if k != "ref_logps_computed"})
                for c in store.checkpoints(store.latest_run().id)]
    finally:
        store.close()


def test_checkpoint_write_fails_cleanly_and_the_rerun_trains_the_same(
        tiny_run, tiny_trained, tmp_path, tiny_policy, monkeypatch, capsys):
    ws = shutil.copytree(tiny_run, tmp_path / "ws")
    train = tiny_run_args("train", ws, tiny_policy, *TINY_TRAINING)
    with monkeypatch.context() as m:
        full_checkpoint_at(m, "stage-2-")
        capsys.readouterr()
        assert main(train) == 2
        line = one_error(capsys)
    assert "/stage-2-moderate: cannot write (No space left on device)" in line, line
    assert leftovers(ws) == []  # no half checkpoint folder
    assert [c[0] for c in checkpoints(ws)] == [1]  # stage 1 is kept and resumed after
    assert main(train) == 0
    got, want = checkpoints(ws), checkpoints(tiny_trained)
    assert [c[:2] for c in got] == [c[:2] for c in want]
    for (_, _, a), (_, _, b) in zip(got, want):
        assert a.keys() == b.keys()
        assert all(a[k] == pytest.approx(b[k], rel=1e-3, abs=1e-4) for k in a if
                   isinstance(a[k], float)), (a, b)


@pytest.fixture(scope="module")
def judge_folder(tmp_path_factory, tiny_policy):
    """A judge folder over the tiny policy (scores from its token probabilities)."""
    folder = tmp_path_factory.mktemp("judge")
    prompts = REPO / "evals" / "judges" / "gpt4"
    (folder / "config.yaml").write_text(json.dumps({
        "name": "tiny", "backend": "hf", "model": tiny_policy, "label": "tiny judge (test)",
        "templates": {"harmless": {"file": str(prompts / "harmless.txt"), "scale": "1-10"}}}))
    return folder


def leaderboard(ws) -> list[tuple]:
    from evals.store_tables import eval_samples
    from evals.store_tables import leaderboard as rows

    store = Store(ws)
    try:
        return sorted((r.model, r.task, r.metric, r.value, r.n, r.failures)
                      for r in rows(store)) + sorted(
            (s.model, s.idx, s.output, json.dumps(s.scores, sort_keys=True))
            for s in eval_samples(store))
    finally:
        store.close()


def test_samples_jsonl_write_fails_cleanly(judge_folder, tiny_policy, tmp_path, monkeypatch,
                                           capsys):
    from evals.cli import main as eval_main

    data = tmp_path / "prompts.jsonl"
    data.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in
                            ("Name a colour.", "How do I boil an egg?", "Say hello.")))

    def run(ws):
        return eval_main(["run", "--models", tiny_policy, "--tasks", "harmlessness",
                          "--data", f"harmlessness={data}", "--judge", str(judge_folder),
                          "--limit", "3", "--workspace", str(ws)])
    assert run(tmp_path / "clean") == 0
    with monkeypatch.context() as m:
        full_at(m, "samples.jsonl")
        capsys.readouterr()
        assert run(tmp_path / "ws") == 2
        line = one_error(capsys)
    (folder,) = (tmp_path / "ws" / "evals").iterdir()
    assert line.startswith(f"error: {folder / 'samples.jsonl'}: cannot write ({FULL})"), line
    assert leftovers(tmp_path / "ws") == [] and not (folder / "samples.jsonl").exists()
    assert run(tmp_path / "ws") == 0  # space freed
    assert leaderboard(tmp_path / "ws") == leaderboard(tmp_path / "clean")
    (clean,) = (tmp_path / "clean" / "evals").iterdir()
    assert (folder / "samples.jsonl").read_bytes() == (clean / "samples.jsonl").read_bytes()


# --- a real small filesystem ---------------------------------------------------------------
needs_small_fs = pytest.mark.skipif(bool(small_fs_missing()), reason=str(small_fs_missing()))


def cli(step: str, *argv: str) -> str:
    """A shell command: `udasa STEP --workspace "$FS/ws" ARGV...` (the workspace on the tmpfs)."""
    return f'{sys.executable} -m udasa.cli {step} --workspace "$FS/ws" {shlex.join(argv)}'


@needs_small_fs
@pytest.mark.slow  # two fresh processes that import torch
def test_generate_on_a_disk_that_fills_then_rerun_after_freeing_space(tmp_path, tiny_run,
                                                                       tiny_policy):
    settings = tiny_run_args("generate", tiny_run, tiny_policy)
    generate = cli("generate", *settings[1:3], *settings[5:])  # clean's config and --set
    script = f"""
fill 40960
{generate} > "$OUT/first.txt" 2>&1; echo $? > "$OUT/first.rc"
leftovers > "$OUT/leftovers.txt"
rm "$FS/filler"
{generate} > "$OUT/second.txt" 2>&1; echo $? > "$OUT/second.rc"
cp -a "$FS/ws" "$OUT/ws"
"""
    done = small_fs(script, 64, tmp_path / "out", {"PYTHONPATH": str(REPO)})
    out = tmp_path / "out"
    assert done.returncode == 0, done.stderr
    first = (out / "first.txt").read_text()
    lines = [x for x in first.splitlines() if x.startswith("error:")]
    assert (out / "first.rc").read_text().strip() == "2" and len(lines) == 1, first
    assert "Traceback" not in first
    assert f"{out / 'fs' / 'ws'}/" in lines[0] and ("No space left on device" in lines[0]
                                                   or "database or disk is full" in lines[0])
    assert (out / "leftovers.txt").read_text() == ""
    assert (out / "second.rc").read_text().strip() == "0", (out / "second.txt").read_text()
    assert responses(out / "ws") == responses(tiny_run)


@needs_small_fs
def test_read_only_workspace_is_one_line_and_readers_still_read(tiny_run, tmp_path):
    script = f"""
cp -a '{tiny_run}' "$FS/ws"
mount -o remount,ro "$FS"
{cli("generate")} > "$OUT/write.txt" 2>&1; echo $? > "$OUT/write.rc"
{cli("check")} > "$OUT/read.txt" 2>&1; echo $? > "$OUT/read.rc"
"""
    done = small_fs(script, 64, tmp_path / "out", {"PYTHONPATH": str(REPO)})
    out = tmp_path / "out"
    assert done.returncode == 0, done.stderr
    write = (out / "write.txt").read_text()
    assert (out / "write.rc").read_text().strip() == "2" and "Traceback" not in write
    assert write.strip() == (f"error: {out / 'fs' / 'ws' / 'udasa.lock'}: cannot write "
                             f"({os.strerror(errno.EROFS)}); nothing half-written"
                             " was left: free space or make the place writable, then rerun "
                             "(finished work is kept)")
    assert (out / "read.rc").read_text().strip() == "0", (out / "read.txt").read_text()
    assert "integrity_check ok" in (out / "read.txt").read_text()


# --- every write goes through udasa.files --------------------------------------------------
WRITERS = {"write_text", "write_bytes", "savefig", "to_csv", "to_json", "to_parquet",
           "save_pretrained", "save_file", "savez", "save", "dump", "copy2", "copyfile",
           "copytree"}
NOT_OURS = {  # module -> why its raw writes are left as they are
    "udasa.files": "the helpers themselves",
    "app.export": "the app's downloads, written into a temporary folder of its own (not a "
                  "workspace); left to the app's owner to route through udasa.files",
}


def raw_writes(modules: dict) -> list[str]:
    """`module:line call` for each write that bypasses udasa.files: a call of a writing
    method or function, or `open` for writing, that is not handed a file `f` opened by
    `atomic_write` (as in `with atomic_write(path) as f: frame.to_csv(f)`)."""
    import ast

    found = []
    for name, path in modules.items():
        if name in NOT_OURS:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            fn = node.func
            called = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", "")
            handed_f = any(isinstance(a, ast.Name) and a.id == "f" for a in node.args) or any(
                k.arg == "copy_function" for k in node.keywords)  # copytree(copy_function=...)
            mode = next((a.value for a in node.args[1:2] if isinstance(a, ast.Constant)), "")
            writes_open = called == "open" and isinstance(mode, str) and set(mode) & set("wax")
            method = isinstance(fn, ast.Attribute)  # write_text(...) alone: the helper's
            if (method and called in WRITERS and not handed_f) or writes_open:
                found.append(f"{name}:{node.lineno} {called}")
    return found


def test_every_write_goes_through_the_atomic_helpers():
    from test_imports import project_modules

    assert raw_writes(project_modules()) == []


def test_the_write_check_sees_a_raw_write(tmp_path):
    (tmp_path / "m.py").write_text("def f(p, fig):\n    p.write_text('x')\n    fig.savefig(p)\n"
                                   "    open(p, 'w')\n", encoding="utf-8")
    assert raw_writes({"m": tmp_path / "m.py"}) == ["m:2 write_text", "m:3 savefig",
                                                    "m:4 open"]
