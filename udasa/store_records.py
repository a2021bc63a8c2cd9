"""The typed rows of the core store tables (udasa.store): runs, responses, scores, pairs, ...

Each record's fields are its table's columns, in order; `udasa.store_schema.Record` encodes
and decodes the JSON columns. Prompts are `udasa.records.Prompt`.
"""

from __future__ import annotations

from dataclasses import dataclass

from udasa.records import content_key
from udasa.store_schema import Record, joined_field, json_field


@dataclass(frozen=True, kw_only=True)
class Run(Record):
    """One pipeline run: its config up to the pairs, manifest, status and summary."""

    id: str
    name: str
    created_at: str
    updated_at: str
    status: str
    config: dict = json_field(sort_keys=True)
    manifest: dict = json_field(sort_keys=True)
    summary: dict = json_field(sort_keys=True)


@dataclass(frozen=True, kw_only=True)
class RunPrompt(Record):
    """A prompt of a run, at its position in the run's order."""

    run_id: str
    prompt_id: str
    position: int


@dataclass(frozen=True, kw_only=True)
class Response(Record):
    """One generated reply to a prompt, shared by every run with the same `gen_key`."""

    id: str
    gen_key: str
    prompt_id: str
    sample_index: int
    text: str
    model: str
    created_at: str = ""  # set by the store when left empty

    @classmethod
    def sampled(cls, gen_key: str, prompt_id: str, sample_index: int, text: str,
                model: str) -> Response:
        """Reply `sample_index` of the N drawn for a prompt (runs and baselines)."""
        return cls(id=content_key(gen_key, prompt_id, str(sample_index)), gen_key=gen_key,
                   prompt_id=prompt_id, sample_index=sample_index, text=text, model=model)

    @classmethod
    def single(cls, gen_key: str, prompt_id: str, text: str, model: str) -> Response:
        """The one output of an evaluated model for a prompt (keyed without an index)."""
        return cls(id=content_key(gen_key, prompt_id), gen_key=gen_key, prompt_id=prompt_id,
                   sample_index=0, text=text, model=model)


@dataclass(frozen=True, kw_only=True)
class PromptEvent(Record):
    """A prompt skipped or failed in a step (too long, unparseable list output, ...)."""

    gen_key: str
    prompt_id: str
    step: str
    kind: str  # skip | error
    reason: str
    created_at: str = ""


@dataclass(frozen=True, kw_only=True)
class Score(Record):
    """One response's uncertainty on one axis by one scorer version."""

    response_id: str
    axis: str
    scorer: str
    version: str
    value: float
    details: dict = json_field()


@dataclass(frozen=True, kw_only=True)
class FusedScore(Record):
    """A response's fused uncertainty u in a run, with the weights and axis values behind it."""

    run_id: str
    response_id: str
    prompt_id: str
    u: float
    weights: dict = json_field()
    components: dict = json_field()


@dataclass(frozen=True, kw_only=True)
class PreferencePair(Record):
    """A stored (chosen, rejected) pair of a run; reads join in the three texts."""

    run_id: str
    prompt_id: str
    chosen_id: str
    rejected_id: str
    u_chosen: float | None = None
    u_rejected: float | None = None
    delta: float = 0.0
    stage: int = 0
    soft_label: float | None = None  # P(chosen preferred): baselines; None for UDASA pairs
    prompt: str = joined_field()
    chosen: str = joined_field()
    rejected: str = joined_field()

    @property
    def key(self) -> tuple[str, str, str]:
        """(prompt, chosen, rejected) ids: the pair within its run."""
        return self.prompt_id, self.chosen_id, self.rejected_id


@dataclass(frozen=True, kw_only=True)
class RunStage(Record):
    """One curriculum stage of a run: its delta band and how many pairs it trains on."""

    run_id: str
    stage: int
    name: str
    lo: float
    hi: float
    count: int


@dataclass(frozen=True, kw_only=True)
class RefLogp(Record):
    """Reference log-probs of one pair's chosen and rejected reply under one reference."""

    ref_key: str
    pair_key: str
    chosen: float
    rejected: float


@dataclass(frozen=True, kw_only=True)
class Checkpoint(Record):
    """A stage's trained policy (`path`; empty when not saved) and its metrics."""

    run_id: str
    train_key: str
    stage: int
    name: str
    path: str
    metrics: dict = json_field()
    created_at: str = ""


@dataclass(frozen=True, kw_only=True)
class TrainResult(Record):
    """Held-out metrics of a finished training."""

    run_id: str
    train_key: str
    metrics: dict = json_field()
    created_at: str = ""


@dataclass(frozen=True, kw_only=True)
class TrainLogEntry(Record):
    """One entry of a stage's trainer log history (`metrics`: the TRL log entry)."""

    run_id: str
    train_key: str
    stage: int
    idx: int
    step: int
    metrics: dict = json_field()
