"""Steps out of order: every `udasa` and `udasa-eval` subcommand that needs an earlier step, run
on an empty workspace, on one whose run was made with other settings, and after each earlier
step alone, says in one line which command to run first: never a traceback, never a crash.

The subcommands are taken from the two parsers, so a new one must be listed here: either with
what it needs, or among those that need nothing stored (they do their own work from scratch).
"""

from __future__ import annotations

import re
import shutil

import pytest
from conftest import REPO, small_overrides

from udasa.cli import build_parser as udasa_parser
from udasa.cli import main
from udasa.config import load_config
from udasa.pipeline import Pipeline

CONFIG = REPO / "configs" / "cpu-demo.yaml"
STEPS = ["generate", "score", "pairs", "stages"]
# subcommand -> the last step it needs done for the config it is given ("run": a stored run
# of any settings; "eval": a stored evaluation)
UDASA_NEEDS = {"score": "generate", "pairs": "score", "stages": "pairs", "train": "stages",
               "export-pairs": "stages", "check": "store"}
EVAL_NEEDS = {"premise": "pairs", "tables": "eval", "report": "eval"}
NEED_NOTHING = {  # subcommand -> why it has no order to get wrong
    "udasa run": "does every step", "udasa generate": "the first step",
    "udasa sweep": "runs every step for each grid point",
    "udasa scorers": "scores the shipped labelled sets", "udasa table3": "scores the paper's "
    "replies", "udasa-eval run": "evaluates the base model (and any stored checkpoints)",
    "udasa-eval validate-judge": "checks a judge on human labels",
    "udasa-eval build-judges": "builds from the shared data sets"}


def subcommands(parser) -> set[str]:
    return set(next(a for a in parser._actions if a.dest == "command").choices)


def test_every_subcommand_is_classified():
    from evals.cli import build_parser as eval_parser

    assert {f"udasa {c}" for c in subcommands(udasa_parser())} == (
        {f"udasa {c}" for c in UDASA_NEEDS} | {k for k in NEED_NOTHING if k.startswith("udasa ")})
    assert {f"udasa-eval {c}" for c in subcommands(eval_parser())} == (
        {f"udasa-eval {c}" for c in EVAL_NEEDS}
        | {k for k in NEED_NOTHING if k.startswith("udasa-eval ")})


def sets(policy: str, limit: int) -> list[str]:
    return small_overrides(limit=limit, **{"generation.model": policy,
                                           "generation.max_new_tokens": 6})


@pytest.fixture(scope="module")
def states(tmp_path_factory, tiny_policy):
    """Workspaces after each step alone (3 prompts), and one whose run had 2 prompts."""
    root = tmp_path_factory.mktemp("states")
    out = {"empty": root / "empty", "other-settings": root / "other"}
    for ws, limit in ((root / "work", 3), (out["other-settings"], 2)):
        cfg = load_config(CONFIG, sets(tiny_policy, limit))
        for step in STEPS:
            pipe = Pipeline(cfg, ws)
            getattr(pipe, step)()
            pipe.store.close()
            if limit == 3:
                out[f"after-{step}"] = shutil.copytree(ws, root / f"after-{step}")
    return out


def done_in(state: str) -> list[str]:
    """The steps done (for the 3-prompt config) in a state."""
    if not state.startswith("after-"):
        return []
    return STEPS[:STEPS.index(state.removeprefix("after-")) + 1]


def expected(state: str, cmd: str, need: str) -> str | None:
    """The command the error line must name (None: the subcommand can run here)."""
    if need == "eval":
        return "udasa-eval run"
    if state == "empty":
        return "udasa run" if cmd in ("export-pairs", "premise", "check") else "udasa generate"
    if cmd == "check":
        return None
    if state == "other-settings":  # export-pairs and premise take the latest run as it is
        return None if cmd in ("export-pairs", "premise") else "udasa generate"
    missing = [s for s in STEPS[:STEPS.index(need) + 1] if s not in done_in(state)]
    return f"udasa {missing[0]}" if missing else None


def argv(cmd: str, ws, policy: str, tmp) -> list[str]:
    if cmd in ("score", "pairs", "stages", "train"):
        out = [cmd, "--config", str(CONFIG), "--workspace", str(ws)]
        for item in sets(policy, 3):
            out += ["--set", item]
        return out
    if cmd == "export-pairs":
        return [cmd, "--workspace", str(ws), "--out", str(tmp / "pairs")]
    if cmd == "report":
        return [cmd, "--workspace", str(ws), "--out", str(tmp / "report.md")]
    return [cmd, "--workspace", str(ws)]


@pytest.mark.parametrize("state", ["empty", "other-settings", *(f"after-{s}" for s in STEPS)])
def test_a_step_run_too_early_names_what_to_run_first(state, states, tiny_policy, tmp_path,
                                                      capsys):
    from evals.cli import main as eval_main

    ws = states[state]
    checked = 0
    for cli, needs in ((main, UDASA_NEEDS), (eval_main, EVAL_NEEDS)):
        for cmd, need in needs.items():
            first = expected(state, cmd, need)
            if first is None:
                continue
            code = cli(argv(cmd, ws, tiny_policy, tmp_path))
            out, err = capsys.readouterr()
            lines = [x for x in (out + err).splitlines() if x.strip()]
            assert code == 2 and len(lines) == 1, (cmd, out + err)
            named = re.search(r"run `([^`]+)`", lines[0])
            assert lines[0].startswith("error:") and named and named[1] == first, (cmd, lines)
            checked += 1
    assert checked >= 2  # after every step, tables and report still need an evaluation


@pytest.mark.parametrize("state", [f"after-{s}" for s in STEPS])
def test_check_lists_what_a_rerun_would_redo(state, states, capsys):
    assert main(["check", "--workspace", str(states[state])]) == 0
    out = capsys.readouterr().out
    assert "integrity_check ok" in out
    run_line = next(x for x in out.splitlines() if x.startswith("  run "))
    todo = out.split("would redo", 1)[-1]
    if state == "after-generate":
        assert "scored: none" in run_line and "responses not scored" in todo
    if state in ("after-generate", "after-score"):
        assert "pairs: not built" in todo
    if state == "after-pairs":
        assert "stages: not assigned" in todo
    if state == "after-stages":
        assert "a rerun would redo nothing" in out and "3 stages" in run_line
