"""The UDASA loop, part 1: prompts -> N responses -> 3 uncertainties -> fusion -> pairs -> stages.

Each step reads its inputs from the store and writes its outputs back, keyed by content, so a
run killed at any point and started again does only the missing work and ends with the same
pairs as an uninterrupted run with the same seed.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from udasa import dist
from udasa.axes import axes, axis_keys
from udasa.config import RunConfig, ScoringConfig, to_dict
from udasa.curriculum import (
    assign_stage,
    make_stages,
    resolve_thresholds,
    stage_members,
    warn_empty,
)
from udasa.data import load_prompts
from udasa.errors import UdasaError
from udasa.generators import PromptTooLong, generate_many, make_generator, uses_chat_format
from udasa.keys import gen_key_of, manifest, prompt_seed, run_id_of, train_key_of
from udasa.pairs import ScoredResponse, fuse_and_pair
from udasa.progress import StepProgress
from udasa.records import Prompt
from udasa.scorers.base import Scorer
from udasa.status import other_runs_hint, require, run_state
from udasa.store import Store
from udasa.store_records import FusedScore, PreferencePair, Response, Run, RunStage, Score

log = logging.getLogger(__name__)


def make_scorers(scoring: ScoringConfig) -> dict[str, Scorer]:
    """docs/method.md §2: the configured scorer of each registered axis (the built-ins and any
    a plugin adds), in axis order."""
    from udasa.scorers import make_scorer

    return {a.key: make_scorer(a.key, scoring.for_axis(a.key),
                               f"scoring.{'' if hasattr(scoring, a.field) else 'extra.'}"
                               f"{a.field}.name")
            for a in axes()}


def stored_scores(store: Store, run: Run, response_ids: list[str]) -> dict[str, dict[str, float]]:
    """Each response's stored uncertainties from the scorers (name and version) the run's
    manifest records: {response id: {axis: value}}, an axis not scored yet left out."""
    scorers = run.manifest.get("scorers", {})
    order = [*axis_keys(), *sorted(scorers)]  # registered axes in order (sem, fact, val, ...)
    table = {axis: store.scores(response_ids, axis, scorers[axis]["scorer"],
                                scorers[axis]["version"])
             for axis in dict.fromkeys(order) if axis in scorers}
    return {rid: {a: table[a][rid].value for a in table if rid in table[a]}
            for rid in response_ids}


@dataclass
class StepReport:
    """What a step did, for the summary table."""

    done: int = 0
    skipped: int = 0
    reused: int = 0
    notes: list[str] = field(default_factory=list)
    seconds: float | None = None  # wall time of the step, when run through run_all


class Pipeline:
    """Binds a config to a workspace store; each method is one resumable step."""

    def __init__(self, cfg: RunConfig, workspace: str | Path):
        self.cfg = cfg
        self.store = Store(workspace)
        self.workspace = Path(workspace)
        self.run_id = run_id_of(cfg)
        self.gen_key = gen_key_of(cfg)

    # step 0: prompts and the run record ---------------------------------------------------
    def _prompt_rows(self) -> list[Prompt]:
        rows = self.store.run_prompts(self.run_id)
        if not rows:
            raise UdasaError(f"no run with these settings in {self.workspace} yet: run `udasa "
                             "generate` (or `udasa run`) with the same --config and --set "
                             "values first" + other_runs_hint(self.store, self.run_id))
        return rows

    def require(self, needs: str) -> Run:
        """This config's run, when every step up to `needs` is done; else a UdasaError naming
        the step to run first (and, when this config has no run yet, the runs there are)."""
        self._prompt_rows()
        run = self.store.get_run(self.run_id)
        require(run_state(self.store, run), needs)
        return run

    # step 1: generation ----------------------------------------------------------------
    def generate(self) -> StepReport:
        """docs/method.md §1: N responses per prompt, all prompts batched by the engine; each
        prompt is stored in its own transaction as soon as its N responses are done."""
        d = self.cfg.data
        loaded = load_prompts(d.source, limit=d.limit, column=d.column, split=d.split,
                              sample=d.sample, seed=self.cfg.seed)  # raises DataError before any write
        todo = [p for p in loaded.prompts
                if p.id not in self.store.generated_prompt_ids(self.gen_key)]
        generator = make_generator(self.cfg.generation) if todo else None
        info = manifest(self.cfg) | {"chat_template": uses_chat_format(self.cfg.generation)}
        self.store.upsert_run(self.run_id, self.cfg.name, to_dict(self.cfg), info)
        self.store.add_prompts(self.run_id, loaded.prompts)
        report = StepReport(reused=len(loaded.prompts) - len(todo),
                            skipped=len(loaded.skipped))
        report.notes += [f"skipped {s.origin}: {s.reason}" for s in loaded.skipped]
        n = self.cfg.generation.n
        seeds = [prompt_seed(self.cfg.seed, p.id) for p in todo]
        with StepProgress(len(todo), "generate") as bar:
            for i, out in generate_many(generator, [p.text for p in todo], n, seeds,
                                        bar.tokens):
                prompt = todo[i]
                bar.update()
                if isinstance(out, UdasaError):  # too long, unparseable list, endpoint failed
                    kind = "skip" if isinstance(out, PromptTooLong) else "error"
                    self.store.add_prompt_event(self.gen_key, prompt.id, "generate", kind,
                                                str(out))
                    log.warning("%s %s: %s", kind, prompt.origin or prompt.id, out)
                    report.skipped += 1
                    continue
                self.store.add_responses([
                    Response.sampled(self.gen_key, prompt.id, i, text, generator.name)
                    for i, text in enumerate(out)])
                report.done += 1
        return report

    def _groups(self) -> dict[str, list[Response]]:
        """The run's responses grouped by prompt, in prompt order."""
        order = [p.id for p in self._prompt_rows()]
        by_prompt: dict[str, list[Response]] = defaultdict(list)
        for row in self.store.responses(self.gen_key, order):
            by_prompt[row.prompt_id].append(row)
        return {pid: by_prompt[pid] for pid in order if by_prompt.get(pid)}

    # step 2: scoring -------------------------------------------------------------------
    def scorers(self) -> dict[str, Scorer]:
        """A scorer per registered axis (the built-ins and any a plugin adds)."""
        return make_scorers(self.cfg.scoring)

    def score(self, chunk_prompts: int = 8) -> StepReport:
        """docs/method.md §2: score every response on the three axes; skips what is already stored."""
        self.require("generate")
        groups = self._groups()
        prompts = {p.id: p.text for p in self._prompt_rows()}
        report = StepReport()
        versions = {}
        for axis, scorer in self.scorers().items():
            versions[axis] = {"scorer": scorer.name, "version": scorer.version}
            have = self.store.scored_response_ids(axis, scorer.name, scorer.version)
            todo = [pid for pid, rows in groups.items() if any(r.id not in have for r in rows)]
            report.reused += len(groups) - len(todo)
            bar = tqdm(total=sum(len(groups[p]) for p in todo), desc=f"score {axis}",
                       unit="resp", disable=not todo)
            for i in range(0, len(todo), chunk_prompts):
                chunk = todo[i:i + chunk_prompts]
                batch = [(prompts[pid], [r.text for r in groups[pid]]) for pid in chunk]
                results = scorer.score(batch)
                rows = [Score(response_id=r.id, axis=axis, scorer=scorer.name,
                              version=scorer.version, value=s.value, details=s.details or {})
                        for pid, scored in zip(chunk, results)
                        for r, s in zip(groups[pid], scored)]
                self.store.add_scores(rows)
                report.done += len(rows)
                bar.update(len(rows))
            bar.close()
        info = self.store.get_run(self.run_id).manifest | {"scorers": versions}
        self.store.upsert_run(self.run_id, self.cfg.name, to_dict(self.cfg), info)
        return report

    # step 3: fusion and pairs ------------------------------------------------------------
    def pairs(self) -> StepReport:
        """docs/method.md §3-4: fuse each response's scores, then one (chosen, rejected) pair per prompt."""
        run = self.require("score")
        groups = self._groups()
        scores = stored_scores(self.store, run, [r.id for rows in groups.values() for r in rows])
        fused_rows, pair_rows, drops = [], [], Counter()
        for pid, rows in groups.items():
            fused = fuse_and_pair(pid, (ScoredResponse(r.id, r.text, scores[r.id], r.sample_index)
                                        for r in rows),
                                  self.cfg.fusion, self.cfg.pairs.rejected, self.cfg.seed, drops,
                                  self.cfg.pairs.selection)
            fused_rows += [FusedScore(run_id=self.run_id, response_id=rid, prompt_id=pid, u=u,
                                      weights=fused.weights[rid], components=scores[rid])
                           for rid, u in fused.u.items()]
            pair_rows += [PreferencePair(run_id=self.run_id, prompt_id=pid,
                                         chosen_id=pair.chosen.response_id,
                                         rejected_id=pair.rejected.response_id,
                                         u_chosen=pair.chosen.u, u_rejected=pair.rejected.u,
                                         delta=pair.delta, stage=0) for pair in fused.pairs]
        self.store.replace_pairs(self.run_id, fused_rows, pair_rows)
        self._merge_summary({"drops": dict(drops)})
        return StepReport(done=len(pair_rows), skipped=sum(drops.values()),
                          notes=[f"dropped {n}: {why}" for why, n in drops.items()])

    # step 4: curriculum ------------------------------------------------------------------
    def stages(self) -> StepReport:
        """docs/method.md §5: split pairs into K stages by delta (conservative -> exploratory)."""
        run = self.require("pairs")
        pairs = self.store.pairs(self.run_id)
        if not pairs:
            drops = run.summary.get("drops")
            raise UdasaError(f"no usable pairs: every candidate pair was dropped ({drops}); "
                             "sample with a higher temperature or more responses per prompt")
        deltas = [p.delta for p in pairs]
        thresholds = resolve_thresholds(self.cfg.curriculum, deltas)
        stages = make_stages(thresholds)
        stage_of = [assign_stage(d, stages) for d in deltas]
        notes = warn_empty(stages, stage_of)
        keys = [p.key for p in pairs]
        stage_rows = [RunStage(run_id=self.run_id, stage=st.index, name=st.name, lo=st.lo,
                               hi=st.hi, count=len(stage_members(stage_of, st,
                                                                 self.cfg.curriculum.schedule)))
                      for st in stages]
        self.store.replace_stages(self.run_id, dict(zip(keys, stage_of)), stage_rows)
        self._merge_summary({"thresholds": thresholds})
        return StepReport(done=len(pairs), notes=notes)

    def _merge_summary(self, extra: dict) -> None:
        run = self.store.get_run(self.run_id)
        self.store.set_run_status(self.run_id, run.status, run.summary | extra)

    # step 5: phased DPO ------------------------------------------------------------------
    def _policy_to_train(self) -> str:
        tr = self.cfg.training
        if tr.model is None and self.cfg.generation.backend == "openai":
            raise UdasaError("training.model: the policy was generated through an API; name a "
                             "local path or hub id to train (or set training.enabled=false)")
        return tr.model or self.cfg.generation.model

    def train(self) -> StepReport:
        """docs/method.md §6: one DPO run per stage, conservative -> exploratory; checkpoint after each."""
        from udasa.plots import training_curves
        from udasa.training import CurriculumTrainer

        tr = self.cfg.training
        self.require("stages")
        policy = self._policy_to_train()
        train_key = train_key_of(tr)
        trainer = CurriculumTrainer(self.store, self.run_id, train_key, tr, policy,
                                    self.cfg.curriculum.schedule, self.cfg.seed,
                                    self.workspace / "checkpoints" / self.run_id / train_key)
        results = trainer.train(progress=log.info)
        report = StepReport(done=sum(1 for r in results if r.steps),
                            skipped=sum(1 for r in results if not r.steps))
        for r in results:
            report.notes.append(f"stage {r.stage} ({r.name}): {r.pairs} pairs, {r.steps} steps"
                                + (f", stopped early: {r.stopped}" if r.stopped else "")
                                + (f" -> {r.checkpoint}" if r.checkpoint else ""))

        def finish() -> None:  # the main process' part: the plot and the run's status
            logs = self.store.train_logs(self.run_id, train_key)
            if logs:
                names = {s.stage: s.name for s in self.store.stages(self.run_id)}
                plot = training_curves(logs, names, self.workspace / "plots" /
                                       f"training_{self.run_id}_{train_key}.png")
                report.notes.append(f"training curves: {plot.resolve()}")
            self.store.set_run_status(self.run_id, "trained")

        dist.on_main(finish)
        return report

    def run_all(self) -> dict[str, StepReport]:
        """All steps: generate, score, pairs, stages, and train when training.enabled. With
        several processes the main one runs the steps up to the stages while the others
        wait, then all train together (docs/scaling.md)."""
        if self.cfg.training.enabled:
            self._policy_to_train()  # fail before any work, not after generation
        reports = dist.from_main(self._prepare) or {}
        if self.cfg.training.enabled:
            start = time.perf_counter()
            reports["train"] = self.train()
            reports["train"].seconds = round(time.perf_counter() - start, 1)
        dist.on_main(lambda: self._merge_summary(
            {"seconds": {k: r.seconds for k, r in reports.items()}}))
        return reports

    def _prepare(self) -> dict[str, StepReport]:
        """The steps before training: generate, score, pairs, stages."""
        reports: dict[str, StepReport] = {}
        for step in (self.generate, self.score, self.pairs, self.stages):
            start = time.perf_counter()
            reports[step.__name__] = step()
            reports[step.__name__].seconds = round(time.perf_counter() - start, 1)
        self.store.set_run_status(self.run_id, "pairs-ready")
        return reports
