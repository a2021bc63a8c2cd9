"""Kill `udasa run` and `udasa-eval run` with SIGKILL at random moments, resume, compare.

Each trial starts the command on a fresh workspace, kills it with SIGKILL at a random moment of
one step (generation, scoring, pairs, stages, inside a DPO stage, the rest of training; for the
evaluation: generating, judging, writing results), checks the store with `PRAGMA
integrity_check`, runs the same command again to the end, and compares the workspace with an
uninterrupted run: the same pairs, the same checkpoint metrics (float tolerance), the same
evaluation results, the same row counts (no duplicate rows). Trials cycle through the steps,
so the kills are spread over all of them; the moment inside a step is uniform over that step's
duration in the uninterrupted run.

How a kill lands: the command runs in a child Python process (`chaos.py --child`) that wraps
the step functions with markers (written to a timeline file) and, on entering the chosen step,
starts a timer thread that sends SIGKILL to its own process after the chosen delay. The code
under test is the real CLI; the resume is a plain `python -m udasa.cli` / `evals.cli` run.

    flock /tmp/udasa-heavy.lock .venv/bin/python bench/chaos.py            # 20 + 20 trials
    .venv/bin/python bench/chaos.py --trials 3 --which run --out chaos-try  # a quick look

A small configuration keeps it quick: a tiny 2-layer Llama policy built in-process (SmolLM2's
tokenizer), 6 built-in prompts x 3 samples of 8 tokens, two epochs per DPO stage; the
evaluation runs that policy and a second tiny one on 3 samples of 4 tasks, judged by a judge
folder of the same tiny model. Writes bench/results/chaos.{json,md} (`--out STEM`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from _common import ROOT, environment, machine_state, md_table, warn_if_busy, write_results

RUN_STEPS = ["generate", "score", "pairs", "stages", "dpo-1", "dpo-2", "dpo-3", "train"]
FLOAT_TOL = {"rel": 1e-3, "abs": 1e-4}
VOLATILE_METRICS = {"ref_logps_computed", "eval_runtime", "eval_samples_per_second",
                    "eval_steps_per_second"}  # bookkeeping and timings, not results
COUNTED_TABLES = ["prompts", "run_prompts", "responses", "prompt_events", "scores", "fused",
                  "pairs", "stages", "ref_logps", "checkpoints", "train_results", "train_logs",
                  "judge_cache", "eval_runs", "eval_samples", "leaderboard"]


# --- the child: the real CLI, with step markers and a self-kill timer ---------------------
def _child(kind: str, argv: list[str]) -> int:
    """Run the CLI in this process; mark each step in $CHAOS_TIMELINE; SIGKILL on $CHAOS_KILL.
    Under a multi-process launcher each rank marks its own timeline ("{rank}" in the path)
    and only the rank named in the kill (`"rank"`, default 0) kills itself."""
    import threading

    rank = os.environ.get("RANK", "0")
    timeline = open(os.environ["CHAOS_TIMELINE"].replace("{rank}", rank), "a",  # noqa: SIM115
                    buffering=1)
    kill = json.loads(os.environ.get("CHAOS_KILL") or "null")  # {"step": ..., "delay": s}
    if kill and str(kill.get("rank", 0)) != rank:
        kill = None
    seen: dict[str, int] = {}

    def marked(name_of, fn):
        def wrapper(*args, **kwargs):
            name = name_of(args)
            seen[name] = seen.get(name, 0) + 1
            label = (f"{name}{seen[name]}" if name.endswith("-") else
                     f"{name}#{seen[name]}" if kind == "eval" else name)
            timeline.write(json.dumps({"enter": label, "t": time.time()}) + "\n")
            armed = kill and kill["step"] == label
            if armed and "after_steps" in kill:  # a DPO stage: after that many optimizer steps
                args[0].add_callback(_kill_after_steps(kill["after_steps"], timeline))
            elif armed:
                threading.Timer(kill["delay"], os.kill, (os.getpid(), signal.SIGKILL)).start()
            out = fn(*args, **kwargs)
            if armed:  # the step ended sooner than in the uninterrupted run: kill at its end
                timeline.write(json.dumps({"end-of-step kill": label, "t": time.time()}) + "\n")
                os.kill(os.getpid(), signal.SIGKILL)
            timeline.write(json.dumps({"exit": label, "t": time.time()}) + "\n")
            return out
        return wrapper

    if kind == "run":
        from udasa import pipeline, training

        for step in ("generate", "score", "pairs", "stages", "train"):
            setattr(pipeline.Pipeline, step, marked(lambda a, s=step: s,
                                                    getattr(pipeline.Pipeline, step)))
        # each stage's trainer.train(): dpo-1, dpo-2, ... in the order they run
        train = training.CurriculumDPOTrainer.train
        training.CurriculumDPOTrainer.train = marked(lambda a: "dpo-", train)
        from udasa.cli import main
    else:
        from evals import models, runner
        from evals.judges import base

        models.EvalModel.generate = marked(lambda a: "generate", models.EvalModel.generate)
        base.Judge.judge = marked(lambda a: "judge", base.Judge.judge)
        runner.write_outputs = marked(lambda a: "write", runner.write_outputs)
        from evals.cli import main
    return main(argv)


def _kill_after_steps(steps: int, timeline):
    """A trainer callback that SIGKILLs its process once `steps` optimizer steps are done,
    noting the step and the stage's planned steps in the timeline (a kill inside a stage)."""
    from transformers import TrainerCallback

    class KillAfterSteps(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step >= steps:
                timeline.write(json.dumps({"killed after step": state.global_step,
                                           "of": state.max_steps, "t": time.time()}) + "\n")
                timeline.flush()
                os.kill(os.getpid(), signal.SIGKILL)

    return KillAfterSteps()


# --- the parent ---------------------------------------------------------------------------
class Setup:
    """The tiny models, the judge folder, and the two commands."""

    def __init__(self, root: Path):
        from conftest import build_tiny_policy

        self.root = root
        self.policy = build_tiny_policy(root / "tiny-a", seed=0)
        self.other = build_tiny_policy(root / "tiny-b", seed=1)
        judge = root / "judge"
        judge.mkdir()
        prompts = ROOT / "evals" / "judges" / "gpt4"
        templates = {t: {"file": str(prompts / f"{t}.txt"), "scale": s} for t, s in (
            ("harmless", "1-10"), ("helpful", "1-10"), ("truthful", "yes-no"),
            ("informative", "yes-no"), ("sentiment", "yes-no"))}
        (judge / "config.yaml").write_text(json.dumps({
            "name": "tiny", "backend": "hf", "model": self.policy, "batch_size": 4,
            "label": "tiny random Llama (chaos bench)", "templates": templates}))
        self.judge = judge

    def run_args(self, workspace: Path) -> list[str]:
        sets = {"data.limit": 6, "generation.model": self.policy, "generation.n": 3,
                "generation.max_new_tokens": 8, "training.epochs": 2, "training.batch_size": 2,
                "training.eval_fraction": 0.3, "training.eval_steps": 1,
                "training.max_length": 128, "training.warmup_steps": 0,
                "training.learning_rate_first": 1e-3, "training.learning_rate": 1e-3}
        args = ["run", "--config", str(ROOT / "configs" / "cpu-demo.yaml"),
                "--workspace", str(workspace)]
        for k, v in sets.items():
            args += ["--set", f"{k}={v}"]
        return args

    def eval_args(self, workspace: Path) -> list[str]:
        return ["run", "--models", self.policy, self.other, "--tasks", "harmlessness",
                "helpfulness", "sentiment", "truthfulness", "robustness", "--limit", "3",
                "--judge", str(self.judge), "--workspace", str(workspace)]


def launch(kind: str, args: list[str], timeline: Path | None, kill: dict | None,
           log: Path, launcher: list[str] | None = None) -> int:
    """Run the CLI (`timeline` None) or the marked child; `launcher` replaces the plain
    `python` (e.g. `python -m torch.distributed.run --nproc_per_node 2`)."""
    env = os.environ | {"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1",
                        "TOKENIZERS_PARALLELISM": "false", "GRADIO_ANALYTICS_ENABLED": "False"}
    launcher = launcher or [sys.executable]
    if timeline is None:  # the resume: the plain CLI
        module = "udasa.cli" if kind == "run" else "evals.cli"
        cmd = [*launcher, "-m", module, *args]
    else:
        env |= {"CHAOS_TIMELINE": str(timeline), "CHAOS_KILL": json.dumps(kill)}
        cmd = [*launcher, __file__, "--child", kind, "--", *args]
    with open(log, "a") as out:
        return subprocess.run(cmd, env=env, cwd=ROOT, stdout=out, stderr=out,
                              check=False).returncode


def read_timeline(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def windows(events: list[dict]) -> dict[str, float]:
    """Step label -> its duration in seconds (first occurrence)."""
    start, out = {}, {}
    for e in events:
        if "enter" in e:
            start.setdefault(e["enter"], e["t"])
        elif e.get("exit") in start and e["exit"] not in out:
            out[e["exit"]] = e["t"] - start[e["exit"]]
    return out


def landed(events: list[dict]) -> str:
    """The innermost step still open when the process died ('' if none)."""
    open_steps: list[str] = []
    for e in events:
        if "enter" in e:
            open_steps.append(e["enter"])
        elif "exit" in e and e["exit"] in open_steps:
            open_steps.remove(e["exit"])
    return open_steps[-1] if open_steps else "(between steps)"


def integrity(db: Path) -> str:
    if not db.exists():
        return "no store yet"
    with sqlite3.connect(db) as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]


def counts(db: Path) -> dict[str, int]:
    """Rows per counted table; 0 for the tables of a package that never opened this store
    (a `udasa run` workspace holds no evaluation tables until `udasa-eval` opens it)."""
    with sqlite3.connect(db) as conn:
        present = {name for (name,) in conn.execute(
            "select name from sqlite_master where type = 'table'")}
        return {t: conn.execute(f"select count(*) from {t}").fetchone()[0] if t in present
                else 0 for t in COUNTED_TABLES}


def close(a, b) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        keys = (a.keys() | b.keys()) - VOLATILE_METRICS
        return all(k in a and k in b and close(a[k], b[k]) for k in keys)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return a is b
        if math.isnan(a) and math.isnan(b):
            return True
        return math.isclose(a, b, rel_tol=FLOAT_TOL["rel"], abs_tol=FLOAT_TOL["abs"])
    return a == b


def run_outcome(ws: Path) -> dict:
    """What an uninterrupted `udasa run` must reproduce: pairs, checkpoint metrics, weights."""
    from udasa.store import Store
    from udasa.store_records import TrainResult

    store = Store(ws)
    run = store.latest_run()
    pairs = [(p.prompt, p.chosen, p.rejected, round(p.delta, 9), p.stage)
             for p in store.pairs(run.id)]
    ckpts = store.checkpoints(run.id)
    final = str(Path(ckpts[-1].path) / "model.safetensors") if ckpts else ""
    result = {"status": run.status, "pairs": pairs,
              "checkpoints": [[c.stage, c.name, c.metrics] for c in ckpts],
              "train_results": [r.metrics for r in store.select(TrainResult, "train_results")],
              "final_weights": final,
              "partial_dirs": sorted(str(p.name) for p in ws.rglob("*.partial"))}
    store.close()
    return result


def eval_outcome(ws: Path) -> dict:
    """What an uninterrupted `udasa-eval run` must reproduce: leaderboard, samples, tests."""
    from evals.store_tables import eval_runs, eval_samples, leaderboard
    from udasa.store import Store

    store = Store(ws)
    board = sorted((r.model, r.task, r.metric, r.value, r.ci_low, r.ci_high, r.n, r.failures)
                   for r in leaderboard(store))
    samples = sorted((s.model, s.task, s.idx, s.output, json.dumps(s.scores, sort_keys=True))
                     for s in eval_samples(store))
    runs = eval_runs(store)
    tests = {t: v["paired_tests"] for r in runs for t, v in r.results["tasks"].items()}
    store.close()
    return {"leaderboard": board, "samples": samples, "paired_tests": tests,
            "eval_runs": len(runs)}


def weight_drift(got: str, want: str, initial: str) -> float | None:
    """||final weights of the resumed run - the uninterrupted run's|| / ||the uninterrupted
    run's - the initial policy's||: how far apart the two trainings ended, relative to how far
    training moved the weights (0 = bit-identical)."""
    if not got or not want:
        return None
    from safetensors.torch import load_file

    a, b, w0 = load_file(got), load_file(want), load_file(initial)
    apart = sum(float((a[k] - b[k]).double().pow(2).sum()) for k in b)
    moved = sum(float((b[k] - w0[k]).double().pow(2).sum()) for k in b if k in w0)
    return math.sqrt(apart) / max(math.sqrt(moved), 1e-12)


def first_difference(got: dict, want: dict, check: str) -> str:
    """A short account of where a failed check differs (for the results file)."""
    key = {"checkpoint_metrics": "checkpoints", "no_partial_checkpoint": "partial_dirs",
           "one_eval_run": "eval_runs"}.get(check, check)
    a, b = got.get(key), want.get(key)
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for x, y in zip(a, b):
            if not close(x, y):
                return f"got {str(x)[:300]} want {str(y)[:300]}"
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(a.keys() | b.keys()):
            if not close(a.get(k), b.get(k)):
                return f"{k}: got {str(a.get(k))[:200]} want {str(b.get(k))[:200]}"
    return f"got {str(a)[:300]} want {str(b)[:300]}"


def compare(kind: str, got: dict, want: dict) -> dict[str, bool]:
    if kind == "run":
        return {"status": got["status"] == want["status"],
                "pairs": got["pairs"] == want["pairs"],
                "checkpoint_metrics": close(got["checkpoints"], want["checkpoints"]),
                "train_results": close(got["train_results"], want["train_results"]),
                "no_partial_checkpoint": not got["partial_dirs"]}
    return {"leaderboard": close(got["leaderboard"], want["leaderboard"]),
            "samples": close(got["samples"], want["samples"]),
            "paired_tests": close(got["paired_tests"], want["paired_tests"]),
            "one_eval_run": got["eval_runs"] == 1}


def trial(kind: str, setup: Setup, step: str, delay: float, root: Path, ref: dict,
          ref_counts: dict) -> dict:
    ws = root / "ws"
    args = setup.run_args(ws) if kind == "run" else setup.eval_args(ws)
    timeline, log = root / "timeline.jsonl", root / "log.txt"
    t0 = time.perf_counter()
    code = launch(kind, args, timeline, {"step": step, "delay": delay}, log)
    events = read_timeline(timeline)
    killed = code == -signal.SIGKILL
    db = ws / "udasa.sqlite"
    after_kill = integrity(db)
    resumed = launch(kind, args, None, None, log) == 0
    out = {"kind": kind, "target": step, "delay_s": round(delay, 3), "killed": killed,
           "landed_in": landed(events) if killed else "(finished before the kill)",
           "at_end_of_step": any("end-of-step kill" in e for e in events),
           "integrity_after_kill": after_kill, "resumed": resumed,
           "integrity_after_resume": integrity(db)}
    if resumed:
        got = (run_outcome if kind == "run" else eval_outcome)(ws)
        out["checks"] = compare(kind, got, ref)
        if kind == "run":
            drift = weight_drift(got["final_weights"], ref["final_weights"],
                                 str(Path(setup.policy) / "model.safetensors"))
            out["weight_drift"] = drift if drift is None else float(f"{drift:.3g}")
        c = counts(db)
        out["row_counts_equal"] = c == ref_counts
        out["row_count_diffs"] = {t: [c[t], ref_counts[t]] for t in c if c[t] != ref_counts[t]}
        out["identical"] = all(out["checks"].values())
        out["differences"] = {k: first_difference(got, ref, k) for k, ok in
                              out["checks"].items() if not ok}
    else:
        out["log_tail"] = log.read_text()[-1500:]
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out


def plan(kind: str, trials: int, clean: dict[str, float], rng: random.Random) -> list[tuple]:
    """(step, delay) per trial: steps in turn, the delay uniform over the step's clean span."""
    steps = ([s for s in RUN_STEPS if s in clean] if kind == "run" else _eval_steps(clean))
    return [(steps[i % len(steps)], rng.uniform(0.0, clean[steps[i % len(steps)]]))
            for i in range(trials)]


def _eval_steps(clean: dict[str, float]) -> list[str]:
    """The evaluation's steps taken in turn by kind (generate, judge, write), each kind's
    calls in an order that spreads the first few kills over early and late calls."""
    groups: dict[str, list[str]] = {}
    for label in sorted(clean, key=_eval_order(clean)):
        groups.setdefault(label.partition("#")[0], []).append(label)
    spread = {g: labels[::3] + labels[1::3] + labels[2::3] for g, labels in groups.items()}
    longest = max(len(v) for v in spread.values())
    return [spread[g][i] for i in range(longest) for g in spread if i < len(spread[g])]


def _eval_order(clean: dict[str, float]):
    def key(label: str):
        name, _, n = label.partition("#")
        return ({"generate": 0, "judge": 1, "write": 2}.get(name, 3), int(n or 0))
    return key


def prepare(kind: str, setup: Setup, trials: int, rng: random.Random, work: Path,
            only: list[str] | None = None) -> dict:
    """The uninterrupted run (and, for `udasa run`, a second one as a control) and the plan."""
    clean_dir = work / f"{kind}-clean"
    clean_dir.mkdir()
    args = setup.run_args(clean_dir / "ws") if kind == "run" else setup.eval_args(
        clean_dir / "ws")
    t0 = time.perf_counter()
    code = launch(kind, args, clean_dir / "timeline.jsonl", None, clean_dir / "log.txt")
    if code != 0:
        raise SystemExit(f"clean {kind} failed:\n" + (clean_dir / "log.txt").read_text()[-3000:])
    clean_s = time.perf_counter() - t0
    spans = windows(read_timeline(clean_dir / "timeline.jsonl"))
    ws = clean_dir / "ws"
    ref = (run_outcome if kind == "run" else eval_outcome)(ws)
    control = None
    if kind == "run":  # a second uninterrupted run: how far apart two clean trainings end
        again = work / "run-clean-again"
        again.mkdir()
        launch(kind, setup.run_args(again / "ws"), again / "timeline.jsonl", None,
               again / "log.txt")
        control = weight_drift(run_outcome(again / "ws")["final_weights"], ref["final_weights"],
                               str(Path(setup.policy) / "model.safetensors"))
    todo = plan(kind, trials, {k: v for k, v in spans.items() if not only or k in only}, rng)
    return {"kind": kind, "ref": ref, "ref_counts": counts(ws / "udasa.sqlite"), "todo": todo,
            "out": {"clean_seconds": round(clean_s, 1),
                    "step_seconds": {k: round(v, 2) for k, v in spans.items()},
                    "reference_rows": counts(ws / "udasa.sqlite"),
                    "control_weight_drift": control, "trials": []}}


def run_trial(ctx: dict, i: int, setup: Setup, work: Path) -> dict:
    kind, (step, delay) = ctx["kind"], ctx["todo"][i]
    tdir = work / f"{kind}-{i:02d}"
    tdir.mkdir()
    r = trial(kind, setup, step, delay, tdir, ctx["ref"], ctx["ref_counts"])
    ctx["out"]["trials"].append(r)
    print(f"{kind} {i + 1}/{len(ctx['todo'])}: kill in {step} after {delay:.2f}s -> landed in "
          f"{r['landed_in']}; resumed={r['resumed']} identical={r.get('identical')} "
          f"{r.get('differences') or ''} drift={r.get('weight_drift')} "
          f"rows={r.get('row_counts_equal')} integrity={r['integrity_after_resume']} "
          f"({r['seconds']:.0f} s)", flush=True)
    return r


def bench_kind(kind: str, setup: Setup, trials: int, rng: random.Random, work: Path,
               deadline: float, only: list[str] | None = None) -> dict:
    """The uninterrupted run, then `trials` kills (at the steps of `only`, else all steps)."""
    ctx = prepare(kind, setup, trials, rng, work, only)
    for i in range(len(ctx["todo"])):
        if time.time() > deadline:
            break
        run_trial(ctx, i, setup, work)
    return ctx["out"]


def summarize(kind: str, data: dict) -> list:
    t = data["trials"]
    return [kind, len(t), sum(r["killed"] for r in t), sum(r["resumed"] for r in t),
            sum(bool(r.get("identical")) for r in t),
            sum(not r.get("row_counts_equal", False) for r in t if r["resumed"]),
            sum(r["integrity_after_kill"] in ("ok", "no store yet")
                and r["integrity_after_resume"] == "ok" for r in t)]


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        sys.exit(_child(sys.argv[2], sys.argv[4:]))
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=20, help="kills per command (default 20)")
    p.add_argument("--which", choices=["run", "eval", "both"], default="both")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--budget-min", type=float, default=None,
                   help="stop starting trials after this many minutes (report what ran)")
    p.add_argument("--stop-at", default=None, metavar="HH:MM",
                   help="stop starting trials at this UTC time today (report what ran)")
    p.add_argument("--out", default="chaos")
    p.add_argument("--only", nargs="+", default=None,
                   help="kill only in these steps (e.g. dpo-2 judge#1)")
    args = p.parse_args()
    before = machine_state()
    warn_if_busy(before, "start")
    rng = random.Random(args.seed)
    deadline = time.time() + (args.budget_min * 60 if args.budget_min else 1e12)
    if args.stop_at:
        import datetime as dt

        hh, mm = map(int, args.stop_at.split(":"))
        now = dt.datetime.now(dt.UTC)
        deadline = min(deadline, now.replace(hour=hh, minute=mm, second=0).timestamp())
    if time.time() > deadline - 600:
        raise SystemExit("chaos: less than 10 minutes before --stop-at/--budget-min: not started")
    start = time.perf_counter()
    data: dict = {"environment": environment(), "seed": args.seed, "float_tolerance": FLOAT_TOL}
    kinds = ["run", "eval"] if args.which == "both" else [args.which]
    with tempfile.TemporaryDirectory(prefix="udasa-chaos-") as tmp:
        work = Path(tmp)
        setup = Setup(work)
        ctxs = [prepare(k, setup, args.trials, rng, work, args.only) for k in kinds]
        for kind, ctx in zip(kinds, ctxs):
            data[kind] = ctx["out"]
        for i in range(args.trials):  # the two commands in turn, results saved after each
            for ctx in ctxs:
                if time.time() < deadline and i < len(ctx["todo"]):
                    run_trial(ctx, i, setup, work)
                    save(args, data, kinds, start, before, final=False)
    save(args, data, kinds, start, before, final=True)


def save(args, data: dict, kinds: list[str], start: float, before: dict, final: bool) -> None:
    data["wall_s"] = round(time.perf_counter() - start, 1)
    data["finished"] = final
    after = machine_state() if final else before
    if final:
        warn_if_busy(after, "end")
    data["machine_state"] = {"start": before, "end": after}
    md = markdown(data, kinds, args)
    if final:
        write_results(args.out, data, md)
    else:
        from _common import RESULTS

        (RESULTS / f"{args.out}.json").write_text(json.dumps(data, indent=2) + "\n")
        (RESULTS / f"{args.out}.md").write_text(md)


def markdown(data: dict, kinds: list[str], args) -> str:
    quiet = data["machine_state"]["start"]["quiet"] and data["machine_state"]["end"]["quiet"]
    rows = [summarize(k, data[k]) for k in kinds]
    md = (f"# Chaos: SIGKILL at random moments, then resume"
          f"{'' if data.get('finished') else ' (IN PROGRESS: partial results)'}\n\n"
          f"{data['environment']['cpu']}, {data['environment']['date']}, "
          f"{data['wall_s'] / 60:.0f} min in all; machine "
          f"{'quiet' if quiet else 'SHARED with other work (timings slow)'}. "
          f"Command: `flock /tmp/udasa-heavy.lock .venv/bin/python bench/chaos.py "
          f"--trials {args.trials} --which {args.which} --seed {args.seed}`.\n\n"
          "identical = same status, pairs, checkpoint metrics, final held-out metrics and "
          f"final weights (rel {FLOAT_TOL['rel']}, abs {FLOAT_TOL['abs']}) for `udasa run`; "
          "same leaderboard, per-sample outputs and scores, paired tests and one eval run for "
          "`udasa-eval run`. Weight drift = ||resumed final weights - uninterrupted|| / "
          "||uninterrupted - initial||, beside the same figure for a second uninterrupted run "
          "(the control: Adam turns last-bit float differences into small weight differences)."
          " Duplicate rows = a trial whose row count differs from the "
          "uninterrupted run in any table. Integrity = `PRAGMA integrity_check` ok after the "
          "kill and after the resume.\n\n"
          + md_table(["command", "trials", "killed", "resumed", "identical",
                      "row counts differ", "integrity ok"], rows) + "\n")
    for k in kinds:
        control = data[k]["control_weight_drift"]
        md += (f"## {k}: kills by step (uninterrupted run {data[k]['clean_seconds']:.0f} s"
               + (f"; control weight drift {control:.3g}" if control is not None else "")
               + ")\n\n"
               + md_table(["target step", "delay s", "landed in", "at step end", "resumed",
                           "identical", "weight drift", "rows equal", "integrity"],
                          [[r["target"], r["delay_s"], r["landed_in"], r["at_end_of_step"],
                            r["resumed"], r.get("identical"), r.get("weight_drift", "-"),
                            r.get("row_counts_equal"), r["integrity_after_resume"]]
                           for r in data[k]["trials"]]) + "\n")
    return md


if __name__ == "__main__":
    main()
