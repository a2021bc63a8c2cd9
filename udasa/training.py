"""Phased DPO, docs/method.md §6: one TRL DPOTrainer run per curriculum stage, the policy carried forward.

Extends TRL at its seams rather than wrapping it: a DPOTrainer subclass supplies the per-stage
learning-rate shape (`create_scheduler`) and reads reference log-probabilities from the store
(`_precompute_ref_logps`), so each pair's reference pass happens once for all stages, epochs and
resumed runs. With the fixed (initial) reference, every pending pair's reference pass runs in one
go before stage 1 and no reference model is held in memory while the policy trains. A
callback stops a stage early on held-out loss or reward-accuracy saturation.
"""

from __future__ import annotations

import copy
import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset, concatenate_datasets
from torch.optim.lr_scheduler import LambdaLR
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
from transformers.trainer_callback import PrinterCallback, ProgressCallback
from trl import DPOConfig, DPOTrainer
from trl.models import prepare_deepspeed

from udasa import dist
from udasa.config import TrainingConfig
from udasa.errors import UdasaError
from udasa.export import dpo_row
from udasa.files import save_folder
from udasa.models import model_identity, model_load, resolve_model
from udasa.rank_split import RankSplitMixin, Recorder
from udasa.records import content_key
from udasa.store import Store
from udasa.store_records import PreferencePair, RunStage

log = logging.getLogger(__name__)


def stage_lr_lambda(total_steps: int, warmup_steps: int,
                    decay_fraction: float) -> Callable[[int], float]:
    """LR multiplier: linear warm-up from 0 (clamped to the stage), constant, linear decay at the end."""
    warm = min(warmup_steps, total_steps)
    decay = min(round(decay_fraction * total_steps), total_steps - warm)

    def factor(step: int) -> float:
        if step < warm:
            return step / warm
        if decay and step >= total_steps - decay:
            return max(0.0, (total_steps - step) / decay)
        return 1.0

    return factor


class RefLogpCache:
    """Reference log-probs per (reference identity, pair), kept in the store across stages/runs.

    With several processes the main one reads and writes the store; the others are handed
    what it read, so every rank decides alike which pairs still need a reference pass."""

    def __init__(self, store: Store, ref_key: str):
        self.store, self.ref_key = store, ref_key
        self.new_keys: set[str] = set()  # pairs whose reference pass ran in this process

    @property
    def computed(self) -> int:
        return len(self.new_keys)

    def lookup(self, keys: list[str]) -> dict[str, tuple[float, float]]:
        return dist.from_main(lambda: self.store.ref_logps(self.ref_key, keys))

    def missing(self, datasets: list[Dataset | None]) -> list[str]:
        """Pair keys of `datasets` with no stored reference log-probs (each key once)."""
        keys = list(dict.fromkeys(k for d in datasets if d is not None for k in d["pair_key"]))
        cached = self.lookup(keys)
        return [k for k in keys if k not in cached]

    def add(self, rows: dict[str, tuple[float, float]]) -> None:
        self.new_keys |= set(rows)
        dist.on_main(lambda: self.store.add_ref_logps(self.ref_key, rows))


def soft_label_term(beta: float, soft_label: torch.Tensor, chosen_logratio: torch.Tensor,
                    rejected_logratio: torch.Tensor) -> torch.Tensor:
    """What turns TRL's sigmoid DPO loss into the conservative (label-smoothed) DPO loss with
    each pair's own label p = P(chosen preferred), per pair:

        -p log s(b d) - (1 - p) log s(-b d) = -log s(b d) + (1 - p) b d,  d = chosen - rejected
        log-ratio, since log s(x) - log s(-x) = x. The gradient in d is b (s(b d) - p): zero at the
        reference for p = 0.5, and (p - 0.5) / 0.5 of a hard label's there.
    """
    return (1.0 - soft_label) * beta * (chosen_logratio - rejected_logratio)


class _SoftLabelCollator:
    """TRL's preference collator plus a `soft_label` tensor when the examples carry one."""

    def __init__(self, inner):
        self.inner = inner

    def __call__(self, examples: list[dict]) -> dict:
        batch = self.inner(examples)
        if examples and "soft_label" in examples[0]:
            batch["soft_label"] = torch.tensor([float(e["soft_label"]) for e in examples])
        return batch


class SoftLabelDPOTrainer(DPOTrainer):
    """DPOTrainer whose sigmoid loss takes a per-pair soft label (a `soft_label` column in [0, 1],
    e.g. RLAIF's AI-labeller probability): the conservative DPO form, `soft_label_term`. Without
    the column it is TRL's DPOTrainer unchanged."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.data_collator = _SoftLabelCollator(self.data_collator)

    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()
        if "soft_label" not in self._signature_columns:
            self._signature_columns = [*self._signature_columns, "soft_label"]

    def compute_ref_log_probs(self, model, inputs):
        return super().compute_ref_log_probs(
            model, {k: v for k, v in inputs.items() if k != "soft_label"})

    def _compute_loss(self, model, inputs, return_outputs):
        inputs = dict(inputs)
        soft = inputs.pop("soft_label", None)
        if soft is None:
            return super()._compute_loss(model, inputs, return_outputs)
        if self.ld_alpha is not None or self.f_divergence_type != "reverse_kl" \
                or self.loss_types[0] != "sigmoid":
            raise UdasaError("soft labels need the plain sigmoid DPO loss (loss_type sigmoid, "
                             "reverse KL, no ld_alpha)")
        policy, ref = Recorder(model), None
        if not self.precompute_ref_logps:  # the reference pass runs inside: record it too
            ref = self.ref_model = Recorder(self.ref_model)
        try:
            result = super()._compute_loss(policy, inputs, return_outputs)
        finally:
            if ref is not None:
                self.ref_model = ref.module
        seq_len = inputs["completion_mask"].size(1) - 1
        chosen, rejected = policy.outputs[0].log_probs[:, -seq_len:].sum(dim=1).chunk(2)
        if ref is None:
            ref_chosen, ref_rejected = inputs["ref_chosen_logps"], inputs["ref_rejected_logps"]
        else:
            ref_chosen, ref_rejected = ref.outputs[0].log_probs[:, -seq_len:].sum(dim=1).chunk(2)
        term = soft_label_term(self.beta, soft.to(chosen.device), chosen - ref_chosen,
                               rejected - ref_rejected).mean() * self.loss_weights[0]
        if return_outputs:
            return result[0] + term, result[1]
        return result + term


class CurriculumDPOTrainer(RankSplitMixin, SoftLabelDPOTrainer):
    """DPOTrainer with UDASA's per-stage LR shape and store-backed reference log-probs; with
    several processes each rank trains on its share of the single-process batches
    (udasa/rank_split.py)."""

    def __init__(self, *args, lr_lambda: Callable[[int], float],
                 ref_cache: RefLogpCache | None = None, policy_is_reference: bool = False,
                 **kwargs):
        # policy_is_reference: with no ref_model, TRL computes reference log-probs with the
        # policy itself, which is right only while the policy is still the reference
        self.lr_lambda, self.ref_cache = lr_lambda, ref_cache
        self.policy_is_reference = policy_is_reference
        super().__init__(*args, **kwargs)

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        if self.lr_scheduler is None:
            self.lr_scheduler = LambdaLR(optimizer or self.optimizer, self.lr_lambda)
            self._created_lr_scheduler = True
        return self.lr_scheduler

    def _precompute_ref_logps(self, dataset: Dataset, name: str, batch_size: int) -> Dataset:
        if self.ref_cache is None:
            return super()._precompute_ref_logps(dataset, name, batch_size)
        keys = dataset["pair_key"]
        cached = self.ref_cache.lookup(keys)
        missing = [i for i, k in enumerate(keys) if k not in cached]
        if missing and self.ref_model is None and not self.policy_is_reference:
            raise UdasaError(f"{len(missing)} pairs have no stored reference log-probs and no "
                             "reference model was given to compute them")
        if missing:
            sub = dataset.select(missing)
            new = dict(zip(sub["pair_key"], self._reference_pass(sub, name, batch_size)))
            self.ref_cache.add(new)
            cached |= new
        return (dataset.add_column("ref_chosen_logps", [cached[k][0] for k in keys])
                .add_column("ref_rejected_logps", [cached[k][1] for k in keys]))


    def _reference_pass(self, dataset: Dataset, name: str,
                        batch_size: int) -> list[tuple[float, float]]:
        """(chosen, rejected) reference log-probs of each pair: TRL's precompute pass (its
        batches shared out among the processes and gathered) without its cache file, which
        lives in one process' temporary folder."""
        loader = self.accelerator.prepare(DataLoader(
            dataset, batch_size=batch_size, collate_fn=self.data_collator, shuffle=False,
            num_workers=self.args.dataloader_num_workers))
        model = self.ref_model or self.model
        if self.ref_model is None and self.is_deepspeed_enabled:
            if self._precompute_engine is None:
                self._precompute_engine = prepare_deepspeed(self.model, self.accelerator)
            model = self._precompute_engine
        out: list[tuple[float, float]] = []
        for batch in tqdm(loader, desc=f"reference log-probs ({name})", unit="batch",
                          disable=not dist.is_main()):
            chosen, rejected = self.accelerator.gather_for_metrics(
                self.compute_ref_log_probs(model, batch))
            out += zip(chosen.tolist(), rejected.tolist())
        return out


class StageStopper(TrainerCallback):
    """Early stopping inside a stage: held-out DPO loss stops improving, or reward accuracy saturates.

    Unlike transformers' EarlyStoppingCallback it needs no checkpoint per evaluation; the stage
    keeps its final weights.
    """

    def __init__(self, patience: int, saturation: float):
        self.patience, self.saturation = patience, saturation
        self.best, self.bad, self.reason = math.inf, 0, ""

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        metrics = metrics or {}
        loss, acc = metrics.get("eval_loss"), metrics.get("eval_rewards/accuracies")
        if acc is not None and acc >= self.saturation:
            self.reason = f"held-out reward accuracy {acc:.3f} >= {self.saturation}"
        elif loss is not None and loss < self.best - 1e-6:
            self.best, self.bad = loss, 0
        elif loss is not None:
            self.bad += 1
            if self.bad >= self.patience:
                self.reason = f"held-out loss did not improve for {self.patience} evaluations"
        if self.reason:
            control.should_training_stop = True
        return control


class StepBar(ProgressCallback):
    """The Trainer's step bar, named, without the metric dicts that it (or, with tqdm off, its
    PrinterCallback) prints at every logging step (they go to the store's train_logs, and
    `udasa run` prints each stage's summary) and without a second bar for held-out batches."""

    def __init__(self, desc: str = "dpo"):
        super().__init__()
        self.desc = desc

    def on_train_begin(self, args, state, control, **kwargs):
        super().on_train_begin(args, state, control, **kwargs)
        if self.training_bar is not None:
            self.training_bar.set_description(self.desc)
            self.training_bar.unit = "step"

    def on_prediction_step(self, args, state, control, eval_dataloader=None, **kwargs):
        pass

    def on_log(self, args, state, control, logs=None, **kwargs):
        pass


def quiet(trainer, desc: str = "dpo"):
    """`trainer` with a `StepBar(desc)` in place of the Trainer's own progress or printer
    callback (whichever it chose), so no metric dict is printed; returns it."""
    for chatty in (PrinterCallback, ProgressCallback):
        trainer.remove_callback(chatty)
    trainer.add_callback(StepBar(desc))
    return trainer


@dataclass
class StageResult:
    stage: int
    name: str
    pairs: int
    steps: int
    checkpoint: str | None
    stopped: str = ""
    dropped_too_long: int = 0
    metrics: dict[str, float] = field(default_factory=dict)


def pair_key(row: PreferencePair) -> str:
    return content_key(*row.key)


def check_pairs(rows: list[PreferencePair], where: str) -> None:
    """Empty texts are an error before any training starts; the message names the pair."""
    for i, row in enumerate(rows):
        for col in ("prompt", "chosen", "rejected"):
            if not str(getattr(row, col) or "").strip():
                raise UdasaError(f"{where}: pair {i + 1} (prompt id {row.prompt_id or '?'})"
                                 f" has an empty {col!r}; remove it or regenerate")


def soft_label_of(row: PreferencePair) -> float:
    """A pair's stored P(chosen preferred), checked to lie in [0, 1]."""
    p = row.soft_label
    if p is None or not 0.0 <= float(p) <= 1.0:
        raise UdasaError(f"pair (prompt id {row.prompt_id or '?'}): soft_label {p!r} is "
                         "not a probability; train with hard labels or rebuild the pairs")
    return float(p)


def token_length(tokenizer, row: PreferencePair, conversational: bool) -> int:
    """Tokens of prompt + the longer response, as the trainer will see them."""
    longest = max(row.chosen, row.rejected, key=len)
    if conversational:
        msgs = [{"role": "user", "content": row.prompt},
                {"role": "assistant", "content": longest}]
        return len(tokenizer.apply_chat_template(msgs, tokenize=True, return_dict=True)["input_ids"])
    return len(tokenizer(row.prompt + longest)["input_ids"])


@dataclass
class _StageLoop:
    """What training carries from one stage to the next."""

    start_from: str  # the checkpoint the next stage starts from, until a policy is loaded
    fixed: RefLogpCache | None  # the initial policy's stored log-probs, when they never change
    last_stage: int  # the last stage with pairs (it keeps its best checkpoint)
    policy: Any = None
    ref: Any = None
    attributed: set[str] = field(default_factory=set)  # pairs whose log-probs were counted


def _ref_logps_computed(train: Dataset, held: Dataset | None, cache: RefLogpCache | None,
                        loop: _StageLoop) -> int | None:
    """Reference log-probs this stage computed; with stored initial log-probs, each pair is
    counted at its first stage."""
    if cache is loop.fixed and loop.fixed is not None:
        keys = {*train["pair_key"], *(held["pair_key"] if held is not None else [])}
        computed = len((loop.fixed.new_keys & keys) - loop.attributed)
        loop.attributed |= keys
        return computed
    return cache.computed if cache is not None else None


class CurriculumTrainer:
    """Trains one policy through the stages of a run stored in `store`."""

    def __init__(self, store: Store, run_id: str, train_key: str, cfg: TrainingConfig,
                 policy_ref: str, schedule: str, seed: int, out_dir: Path,
                 soft_labels: bool = False):
        # soft_labels: train on each pair's stored `soft_label` (conservative DPO; RLAIF)
        self.soft_labels = soft_labels
        self.store, self.run_id, self.train_key = store, run_id, train_key
        self.cfg, self.policy_ref = cfg, policy_ref
        self.schedule, self.seed, self.out_dir = schedule, seed, out_dir
        with model_load(policy_ref, "training policy"):
            self.tokenizer = AutoTokenizer.from_pretrained(resolve_model(policy_ref))
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.conversational = bool(self.tokenizer.chat_template)  # pairs as chat messages
        self.initial_id = json.dumps(model_identity(policy_ref), sort_keys=True)
        dist.init()  # several processes (torchrun, accelerate launch): join their group

    def ref_key(self, stage: int) -> str:
        """The store key of stage `stage`'s reference log-probs: the reference model and the
        tokenisation. The initial policy is shared by every run and training over the same
        pairs; the policy after stage k - 1 (`reference: previous`) is this run's, trained with
        these settings, so both are in its key."""
        ref_id = self.initial_id
        if self.cfg.reference == "previous" and stage > 1:
            ref_id += f"|run {self.run_id}|training {self.train_key}|after stage {stage - 1}"
        return content_key(ref_id, str(self.cfg.max_length), str(self.conversational))

    def _ref_cache(self, stage: int) -> RefLogpCache | None:
        """Stored reference log-probs for one reference model (None: recompute every step)."""
        return RefLogpCache(self.store, self.ref_key(stage)) if self.cfg.precompute_ref else None

    def _fill_ref_cache(self, datasets: list[Dataset | None]) -> RefLogpCache:
        """A fixed reference, precomputed: every pending pair's reference log-probs in one pass
        (TRL's precompute, on the initial model) before any stage trains, so that no
        reference model is held in memory while the policy trains."""
        cache = self._ref_cache(1)
        missing = set(cache.missing(datasets))
        if missing:
            data = concatenate_datasets([d for d in datasets if d is not None])
            first = {k: i for i, k in reversed(list(enumerate(data["pair_key"])))
                     if k in missing}
            initial = self._load(self.policy_ref)
            CurriculumDPOTrainer(
                model=initial, ref_model=None, args=self._args(1, False, 1, False),
                train_dataset=data.select(sorted(first.values())),
                processing_class=self.tokenizer, lr_lambda=lambda step: 1.0, ref_cache=cache,
                policy_is_reference=True)
            del initial
        return cache

    def _load(self, path: str):
        dtype = torch.bfloat16 if self.cfg.bf16 else torch.float32
        with model_load(path, "training policy"):
            return AutoModelForCausalLM.from_pretrained(resolve_model(path), dtype=dtype)

    def _stage_rows(self, stage: RunStage,
                    all_pairs: list[PreferencePair]) -> list[PreferencePair]:
        if self.schedule == "cumulative":
            return [p for p in all_pairs if 0 < p.stage <= stage.stage]
        return [p for p in all_pairs if p.stage == stage.stage]

    def is_held_out(self, prompt_id: str) -> bool:
        """Held out by prompt, not by stage: the same prompts are held out whatever the
        thresholds, so runs of a sweep are compared on the same pairs."""
        draw = int(content_key(str(self.seed), "held-out", prompt_id), 16) / 16**16
        return draw < self.cfg.eval_fraction

    def _dataset(self, rows: list[PreferencePair]
                 ) -> tuple[Dataset | None, Dataset | None, int]:
        """Train / held-out split of a stage's pairs, after the too-long policy."""
        dropped = 0
        if self.cfg.too_long == "drop":
            keep = [r for r in rows if token_length(self.tokenizer, r, self.conversational)
                    <= self.cfg.max_length]
            dropped = len(rows) - len(keep)
            rows = keep
        records = [dpo_row(r, self.conversational) | {"pair_key": pair_key(r)} for r in rows]
        for rec, row in zip(records, rows):
            rec.pop("delta")
            if self.soft_labels:
                rec["soft_label"] = soft_label_of(row)
        held_out = [self.is_held_out(row.prompt_id) for row in rows]
        train_rows = [r for r, h in zip(records, held_out) if not h]
        held_rows = [r for r, h in zip(records, held_out) if h]
        train = Dataset.from_list(train_rows) if train_rows else None
        held = Dataset.from_list(held_rows) if held_rows else None
        return train, held, dropped

    def _args(self, stage_index: int, last: bool, steps: int, has_eval: bool) -> DPOConfig:
        c = self.cfg
        nll = c.last_stage_nll if last else 0.0
        return DPOConfig(
            output_dir=str(self.out_dir / "_trainer"), max_steps=steps,
            learning_rate=c.learning_rate_first if stage_index == 1 else c.learning_rate,
            beta=c.last_stage_beta if (last and c.last_stage_beta) else c.beta,
            loss_type=["sigmoid", "sft"] if nll else ["sigmoid"],
            loss_weights=[1.0, nll] if nll else None,
            per_device_train_batch_size=c.batch_size, per_device_eval_batch_size=c.batch_size,
            gradient_accumulation_steps=c.grad_accum, max_length=c.max_length,
            precompute_ref_log_probs=c.precompute_ref,
            eval_strategy="steps" if has_eval else "no", eval_steps=c.eval_steps,
            logging_steps=1, save_strategy="no", report_to=[], seed=self.seed,
            use_cpu=c.device == "cpu" or (c.device == "auto" and not torch.cuda.is_available()),
            bf16=c.bf16, activation_checkpointing=False,
            dataloader_num_workers=0, lr_scheduler_type="constant",
        )

    def train(self, progress: Callable[[str], None] = log.info) -> list[StageResult]:
        """Run the remaining stages; a stage already checkpointed in the store is skipped."""
        stages = dist.from_main(lambda: self.store.stages(self.run_id))
        if not stages:
            raise UdasaError("no curriculum stages for this run: run `udasa stages` first")
        all_pairs = self.store.pairs(self.run_id)
        check_pairs(all_pairs, f"run {self.run_id}")
        done, pending, loop = self._plan(stages, all_pairs)
        results = []
        for stage in stages:
            k, name = stage.stage, stage.name
            if k in pending:
                results.append(self._train_stage(stage, pending[k], loop, progress))
            elif k in done:
                loop.start_from = done[k] or loop.start_from
                progress(f"stage {k} ({name}): already trained, continuing after it")
            else:
                log.warning("stage %d (%s): no pairs, skipped", k, name)
                results.append(StageResult(k, name, 0, 0, None, "no pairs: skipped"))
        self._final_eval(all_pairs, loop.policy)
        return results

    def _plan(self, stages: list[RunStage], all_pairs: list[PreferencePair]
              ) -> tuple[dict[int, str], dict[int, tuple], _StageLoop]:
        """Stages already trained ({stage: checkpoint path}), the datasets of the stages still
        to train, and the state carried from stage to stage."""
        done = dist.from_main(self._trained)
        nonempty = [s.stage for s in stages if self._stage_rows(s, all_pairs)]
        pending = {s.stage: self._dataset(rows) for s in stages
                   if s.stage not in done and (rows := self._stage_rows(s, all_pairs))}
        fixed = (self._fill_ref_cache([d for t, h, _ in pending.values() for d in (t, h)])
                 if self.cfg.precompute_ref and self.cfg.reference == "initial" else None)
        return done, pending, _StageLoop(self.policy_ref, fixed, nonempty[-1] if nonempty else -1)

    def _trained(self) -> dict[int, str]:
        """Stages already trained: saved and still there (resume after it), or unsaved in a
        finished training."""
        finished = self.store.train_result(self.run_id, self.train_key) is not None
        return {c.stage: c.path for c in self.store.checkpoints(self.run_id, self.train_key)
                if (c.path and Path(c.path).is_dir()) or (finished and not c.path)}

    def _reference(self, k: int, loop: _StageLoop) -> RefLogpCache | None:
        """Set the stage's reference model on `loop` and return its log-prob cache: a copy of
        the current policy (`previous`, cached per stage), none when the initial policy's
        log-probs are all stored, else the initial policy recomputed every step."""
        if self.cfg.reference == "previous":
            loop.ref = copy.deepcopy(loop.policy)
            return self._ref_cache(k)
        if loop.fixed is not None:
            return loop.fixed
        loop.ref = loop.ref or self._load(self.policy_ref)
        return None

    def _train_stage(self, stage: RunStage, data: tuple, loop: _StageLoop,
                     progress: Callable[[str], None]) -> StageResult:
        """Train one stage with DPO from the current policy; store its logs and checkpoint."""
        k, name = stage.stage, stage.name
        train, held, dropped = data
        if train is None:
            log.warning("stage %d (%s): every pair longer than training.max_length, skipped",
                        k, name)
            return StageResult(k, name, 0, 0, None, "every pair longer than "
                               "training.max_length: skipped", dropped)
        if loop.policy is None:
            loop.policy = self._load(loop.start_from)
        cache = self._reference(k, loop)
        steps = min(self.cfg.max_steps, max(1, math.ceil(
            self.cfg.epochs * len(train) / (self.cfg.batch_size * self.cfg.grad_accum))))
        stopper = StageStopper(self.cfg.patience, self.cfg.saturation)
        trainer = CurriculumDPOTrainer(
            model=loop.policy, ref_model=loop.ref,
            args=self._args(k, k == loop.last_stage, steps, held is not None),
            train_dataset=train, eval_dataset=held, processing_class=self.tokenizer,
            callbacks=[stopper],
            lr_lambda=stage_lr_lambda(steps, self.cfg.warmup_steps, self.cfg.decay_fraction),
            ref_cache=cache)
        quiet(trainer, f"dpo stage {k} ({name})")
        dropped += len(train) - len(trainer.train_dataset)  # TRL drops prompts >= max_length
        progress(f"stage {k} ({name}): {len(trainer.train_dataset)} pairs, {steps} steps"
                 + (f", {len(held)} held out" if held is not None else "")
                 + (f", {dropped} dropped as too long" if dropped else ""))
        trainer.train()
        metrics = ({m: float(v) for m, v in trainer.evaluate().items()}
                   if held is not None else {})
        loop.policy = trainer.accelerator.unwrap_model(trainer.model)
        result = StageResult(k, name, len(trainer.train_dataset), trainer.state.global_step,
                             None, stopper.reason, dropped, metrics)
        computed = _ref_logps_computed(train, held, cache, loop)
        result.checkpoint = dist.from_main(lambda: self._record_stage(
            result, loop.policy, trainer.state.log_history, computed))
        return result

    def _record_stage(self, result: StageResult, policy, history: list[dict],
                      ref_logps_computed: int | None) -> str | None:
        """The main process' part of a trained stage: its logs, checkpoint and store row."""
        k, name = result.stage, result.name
        self.store.add_train_logs(self.run_id, self.train_key, k, history)
        path = self._save(policy, k, name) if self.cfg.save_checkpoints else None
        self.store.add_checkpoint(self.run_id, self.train_key, k, name, path or "", {
            "pairs": result.pairs, "steps": result.steps, "stopped": result.stopped,
            "dropped_too_long": result.dropped_too_long,
            "ref_logps_computed": ref_logps_computed, **result.metrics})
        return path

    def _final_eval(self, all_pairs: list[PreferencePair], policy) -> None:
        """Held-out DPO metrics of the final policy on every stage's held-out pairs (stored)."""
        finished, ckpts = dist.from_main(lambda: (
            self.store.train_result(self.run_id, self.train_key) is not None,
            self.store.checkpoints(self.run_id, self.train_key)))
        if finished:
            return
        held = [p for p in all_pairs if p.stage > 0 and self.is_held_out(p.prompt_id)]
        metrics: dict[str, float] = {"held_out_pairs": float(len(held))}
        if held:
            _, data, _ = self._dataset(held)
            if policy is None:
                if not ckpts or not ckpts[-1].path:
                    return
                policy = self._load(ckpts[-1].path)
            cache = self._ref_cache(1)
            stored = cache is not None and not cache.missing([data])
            trainer = CurriculumDPOTrainer(
                model=policy, ref_model=None if stored else self._load(self.policy_ref),
                args=self._args(2, False, 1, True), train_dataset=data, eval_dataset=data,
                processing_class=self.tokenizer, lr_lambda=lambda step: 1.0, ref_cache=cache)
            metrics |= {k: float(v) for k, v in quiet(trainer).evaluate().items()}
        dist.on_main(lambda: self.store.set_train_result(self.run_id, self.train_key, metrics))

    def _save(self, policy, k: int, name: str) -> str:
        path = self.out_dir / f"stage-{k}-{name}"
        save_folder(path, policy, self.tokenizer)  # never a half checkpoint: killed or full
        return str(path)
