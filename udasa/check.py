"""`udasa check --workspace DIR`: is the store sound, and what would a rerun redo?

Reads only: SQLite's full `integrity_check` over a read-only connection (a damaged store is a
one-line error and stays as it is), the schema versions against this code's, who holds the
workspace's lock, files a killed or refused write left behind, each stored run step by step
(`udasa.status`), and each evaluation's result files.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from udasa import integrity
from udasa.errors import UdasaError
from udasa.lock import describe, holder
from udasa.migrations import recorded_versions, refuse_newer
from udasa.status import redo, run_state
from udasa.store import Store
from udasa.store_schema import declared


@dataclass
class WorkspaceReport:
    """What `udasa check` found: sections of lines, and the rerun's work."""

    workspace: Path
    lines: list[str] = field(default_factory=list)
    todo: list[str] = field(default_factory=list)

    def text(self) -> str:
        if not self.todo:
            done = "a rerun would redo nothing: every stored run and evaluation is complete"
            return "\n".join([*self.lines, done])
        head = (f"a rerun (`udasa run` / `udasa-eval run` with the same settings) would redo "
                f"{len(self.todo)} item(s):")
        return "\n".join([*self.lines, head, *(f"  - {t}" for t in self.todo)])


def leftovers(workspace: Path) -> list[Path]:
    """Half-written files and folders (`.NAME.PID.tmp`, `*.partial`) under `workspace`."""
    return sorted([*workspace.rglob(".*.tmp"), *workspace.rglob("*.partial")])


def _schema_lines(store: Store) -> list[str]:
    found = recorded_versions(store.db)
    known = {s.package: s.version for s in declared()}
    out = []
    for package, version in sorted(found.items()):
        code = known.get(package)
        if code is not None and version < code:
            out.append(f"schema: {package} tables at version {version}; the next command that "
                       f"writes migrates them to {code}")
    return out or [f"schema: up to date ({', '.join(f'{p} v{v}' for p, v in found.items())})"]


def _eval_lines(store: Store, workspace: Path, report: WorkspaceReport) -> None:
    stored = ({r["id"] for r in store.db["eval_runs"].rows}
              if store.db["eval_runs"].exists() else set())
    on_disk = {p.name for p in (workspace / "evals").glob("*") if p.is_dir()}
    report.lines.append(f"evaluations: {len(stored)} stored, {len(on_disk)} result folders")
    for eval_id in sorted(stored | on_disk):
        folder = workspace / "evals" / eval_id
        lacking = [n for n in ("results.json", "samples.jsonl") if not (folder / n).is_file()]
        if eval_id not in stored:
            report.todo.append(f"evaluation {eval_id[:12]}: not stored (stopped before its "
                               "rows were written); its cached outputs and judge calls are reused")
        elif lacking:
            report.todo.append(f"evaluation {eval_id[:12]}: {', '.join(lacking)} missing")


def _run_lines(store: Store, report: WorkspaceReport) -> None:
    runs = store.runs()
    report.lines.append(f"runs: {len(runs)}")
    for run in runs:
        s = run_state(store, run)
        scored = ", ".join(f"{a} {s.responses - n}/{s.responses}" for a, n in s.unscored.items())
        trained = "; ".join(f"training {t.train_key[:12]}: stages {sorted(t.checkpointed)} "
                            f"saved{', finished' if t.finished else ''}" for t in s.trainings)
        report.lines.append(
            f"  run {run.id[:12]} ({run.name}, {run.status}): {s.generated}/{s.prompts} prompts "
            f"with {s.responses} responses ({s.failed} failed or skipped); scored: "
            f"{scored or 'none'}; {s.pairs} pairs; {s.stages} stages"
            + (f"; {trained}" if trained else ""))
        report.todo += [f"run {run.id[:12]} {item}" for item in redo(s)]


def check_workspace(workspace: str | Path) -> WorkspaceReport:
    """Check `workspace`'s store and list what a rerun would redo; reads only."""
    workspace = Path(workspace)
    path = workspace / Store.FILENAME
    if not path.is_file():
        raise UdasaError(f"{workspace}: no store ({Store.FILENAME}) here, nothing to check: run "
                         "`udasa run` or `udasa-eval run` first (or name the --workspace they "
                         "wrote to)")
    integrity.check(path, full=True)  # DamagedStore: one line, the file left as it was
    size = path.stat().st_size
    report = WorkspaceReport(workspace, [f"store: {path} ({size:,} bytes): integrity_check ok"])
    busy = holder(workspace)
    report.lines.append(f"lock: held by {describe(busy)} (counts below may be moving)" if busy
                        else "lock: free (no command is writing to this workspace)")
    report.lines += [f"left behind by a stopped write (safe to delete): {p}"
                     for p in leftovers(workspace)]
    store = Store.read_only(workspace)
    try:
        refuse_newer(store.db, path, declared())
        report.lines += _schema_lines(store)
        _run_lines(store, report)
        _eval_lines(store, workspace, report)
    except sqlite3.OperationalError as exc:  # an older schema lacks a table or column
        report.lines.append(f"(cannot count further: {exc}; the next command that writes "
                            "migrates the store)")
    finally:
        store.close()
    return report
