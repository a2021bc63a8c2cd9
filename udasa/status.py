"""How far a stored run has got, step by step, read from the store alone.

`run_state` counts what each step of docs/method.md has stored for a run (prompts with
responses, responses scored on each axis, pairs, stages, each training's checkpoints);
`first_missing` names the earliest step a command needs that has not been done, so every
command run out of order says which one to run first; `redo` lists what a rerun would do again
(`udasa check`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from udasa.errors import UdasaError
from udasa.store import Store
from udasa.store_records import Run

STEPS = ("generate", "score", "pairs", "stages", "train")


@dataclass
class TrainingState:
    """One training configuration (`train_key`) of a run."""

    train_key: str
    checkpointed: list[int] = field(default_factory=list)  # stages saved, folder present
    missing_folders: list[int] = field(default_factory=list)  # saved, folder gone since
    finished: bool = False


@dataclass
class RunState:
    """What the store holds for one run."""

    run: Run
    prompts: int = 0
    generated: int = 0  # prompts with their responses stored
    failed: int = 0     # prompts with an error or skip event and no responses
    responses: int = 0
    unscored: dict[str, int] = field(default_factory=dict)  # axis -> responses lacking it
    scored: bool = False  # the score step has recorded its scorers
    paired: bool = False  # the pairs step has run (it may have dropped every pair)
    pairs: int = 0
    stages: int = 0
    trainings: list[TrainingState] = field(default_factory=list)

    def done(self, step: str) -> bool:
        """Has `step` stored its output for every input it had?"""
        return {"generate": self.generated > 0,
                "score": self.scored and not any(self.unscored.values()),
                "pairs": self.paired, "stages": self.stages > 0,
                "train": any(t.finished for t in self.trainings)}[step]


def _gen_key(run: Run) -> str | None:
    from udasa.config import RunConfig, from_dict
    from udasa.keys import gen_key_of

    try:
        return gen_key_of(from_dict(RunConfig, run.config))
    except (UdasaError, TypeError, KeyError):  # a config of another version: count nothing
        return None


def _trainings(store: Store, run_id: str) -> list[TrainingState]:
    by_key: dict[str, TrainingState] = {}
    for c in store.checkpoints(run_id):
        t = by_key.setdefault(c.train_key, TrainingState(c.train_key))
        if not c.path or Path(c.path).is_dir():
            t.checkpointed.append(c.stage)
        else:
            t.missing_folders.append(c.stage)
    for key in {r["train_key"] for r in store.db["train_results"].rows_where(
            "run_id = ?", [run_id], select="train_key")}:
        by_key.setdefault(key, TrainingState(key)).finished = True
    return list(by_key.values())


def run_state(store: Store, run: Run) -> RunState:
    """Count what the store holds for `run` at each step."""
    prompt_ids = [p.id for p in store.run_prompts(run.id)]
    state = RunState(run, prompts=len(prompt_ids), scored=bool(run.manifest.get("scorers")),
                     paired="drops" in run.summary)
    gen_key = _gen_key(run)
    if gen_key is not None:
        responses = store.responses(gen_key, prompt_ids)
        with_responses = {r.prompt_id for r in responses}
        events = {e.prompt_id for e in store.prompt_events(gen_key)}
        state.generated, state.responses = len(with_responses), len(responses)
        state.failed = len(events & set(prompt_ids) - with_responses)
        ids = [r.id for r in responses]
        for axis, s in run.manifest.get("scorers", {}).items():
            have = store.scores(ids, axis, s["scorer"], s["version"])
            state.unscored[axis] = len(ids) - len(have)
    state.pairs = len(store.pairs(run.id))
    state.stages = len(store.stages(run.id))
    state.trainings = _trainings(store, run.id)
    return state


_WHAT = {"generate": "no responses for this run yet",
         "score": "its responses are not all scored yet",
         "pairs": "no pairs for this run yet",
         "stages": "no curriculum stages for this run yet"}


def first_missing(state: RunState, needs: str) -> str | None:
    """The earliest step up to and including `needs` that is not done (None: all done)."""
    for step in STEPS[:STEPS.index(needs) + 1]:
        if not state.done(step):
            return step
    return None


def require(state: RunState, needs: str) -> None:
    """UdasaError naming the step to run first when a step up to `needs` is not done."""
    step = first_missing(state, needs)
    if step is None:
        return
    what = _WHAT[step]
    if step == "generate" and state.failed:
        what = (f"every one of its {state.prompts} prompts failed or was skipped in generation"
                " (the reasons: `udasa check`)")
    raise UdasaError(f"run {state.run.id[:12]}: {what}: run `udasa {step}` first (or "
                     "`udasa run`, which does every step)")


def other_runs_hint(store: Store, run_id: str) -> str:
    """Said when this config's run is not in the store but others are."""
    others = [r for r in store.runs() if r.id != run_id]
    if not others:
        return ""
    names = ", ".join(f"{r.id[:12]} ({r.name})" for r in others[:3])
    return (f"; {store.path.parent} holds {len(others)} run(s) made with other settings ("
            f"{names}{', ...' if len(others) > 3 else ''}): pass the --config and --set values"
            " that made one to continue it")


def redo(state: RunState) -> list[str]:
    """What `udasa run` with this run's settings would do again (empty: nothing)."""
    out = []
    if state.prompts > state.generated:
        out.append(f"generate: {state.prompts - state.generated} of {state.prompts} prompts "
                   f"have no responses ({state.failed} of them recorded as failed or skipped)")
    out += [f"score: {n} responses lack a {axis} score" for axis, n in state.unscored.items()
            if n]
    if not state.scored and state.responses:
        out.append(f"score: {state.responses} responses not scored")
    if not state.paired:
        out.append("pairs: not built")
    elif not state.stages and state.pairs:
        out.append("stages: not assigned")
    for t in state.trainings:
        if t.missing_folders:
            out.append(f"train {t.train_key[:12]}: stage(s) {t.missing_folders} checkpoint "
                       "folder gone: retrained from the stage before")
        elif not t.finished:
            out.append(f"train {t.train_key[:12]}: unfinished after stage(s) "
                       f"{sorted(t.checkpointed) or 'none'} of {state.stages}")
    return out
