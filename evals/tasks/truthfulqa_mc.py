"""TruthfulQA MC1 / MC2 through lm-evaluation-harness's own machinery, on the local data file.

MC1: the one true answer must get the highest log-likelihood among the mc1 answers (accuracy).
MC2: the probability mass on the true mc2 answers, normalised over all mc2 answers. Both are
zero-shot with the TruthfulQA QA primer before the question, scored by lm-eval's `hf` backend
on the checkpoint under test (float32, CPU). The task configs are our own YAMLs in
`evals/lm_eval_tasks/` (`dataset_path: json` + `dataset_kwargs.data_files`); since the data
folder moves with UDASA_DATA_DIR (or `--data truthfulqa_mc=FILE`), they are rendered at run time
into a temporary include dir with the real path and loaded with
`TaskManager(include_path=..., include_defaults=False)`.

Subset: lm-eval's `limit` takes the first N docs, so instead we pick a seeded random subset of
row indices ourselves (the same `random.Random(seed)` shuffle as every other task) and pass it
to `simple_evaluate(samples=...)`; the docs are the file's rows in order, so doc id = row index.
The CIs are ours (Wilson for MC1, bootstrap for MC2), from lm-eval's logged per-sample values.

Its solver is `LogLikelihood` (log-probabilities of a local model, through lm-eval) in place of
generation; API models get no metrics and a note saying why.
"""

from __future__ import annotations

import json
import logging
import random
import tempfile
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import Any

from evals.models import EvalModel
from evals.stats import mean_ci, proportion_ci
from evals.tasks.base import Sample, Solution, TaskResult, TaskRun, register
from evals.tasks.solvers import LogLikelihood
from udasa.data import read_text
from udasa.datasets import Resolved, resolve
from udasa.errors import DataError
from udasa.files import write_text
from udasa.models import EMBEDDED, resolve_model
from udasa.records import content_key

log = logging.getLogger(__name__)

TASK_DIR = Path(__file__).resolve().parents[1] / "lm_eval_tasks"
PLACEHOLDER = "__UDASA_TRUTHFULQA_MC_FILE__"
MC1_TASK, MC2_TASK = "udasa_truthfulqa_mc1", "udasa_truthfulqa_mc2"
JUDGE_LABEL = "lm-eval log-likelihood (no judge)"
API_NOTE = ("TruthfulQA MC1/MC2 compare the log-probabilities a model gives to every answer "
            "choice, which needs a local model (lm-eval `hf` backend); an API model does not "
            "return them, so this task is not scored for it.")


def render_tasks(data_file: str | Path, out_dir: Path) -> list[str]:
    """Write our task YAMLs into `out_dir` with the real data path; returns their task names."""
    path = json.dumps(str(Path(data_file).resolve()))  # a JSON string is a valid YAML scalar
    names = []
    for src in sorted(TASK_DIR.glob("udasa_truthfulqa_*.yaml")):
        text = src.read_text(encoding="utf-8")
        if f'"{PLACEHOLDER}"' not in text:
            raise DataError(f"{src}: no {PLACEHOLDER} placeholder for the data file")
        write_text(out_dir / src.name, text.replace(f'"{PLACEHOLDER}"', path))
        names.append(src.stem)
    return names


def lm_eval_model_args(spec: str, dtype: str = "float32", device: str = "cpu") -> dict[str, Any]:
    """`hf` model args for a spec: `base` is the embedded SmolLM2 folder, else a path / hub id.

    A dict rather than lm-eval's "k=v,k=v" string, so a path with a comma stays whole.
    """
    ref = EMBEDDED if spec == "base" else spec
    return {"pretrained": resolve_model(ref), "dtype": dtype, "device": device}


def sample_id(question: str) -> str:
    """Stable across data-file versions (row order and held-out rows do not change it)."""
    return f"tqa-mc-{content_key('truthfulqa_mc', question)}"


def read_mc_rows(path: Path) -> list[dict]:
    """The rows of a TruthfulQA `mc_task.json`; a bad file is a DataError naming the line
    (invalid JSON) or the row and field (missing targets)."""
    try:
        rows = json.loads(read_text(path))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: line {e.lineno} column {e.colno}: invalid JSON ({e.msg})"
                        ) from None
    if not isinstance(rows, list) or not rows:
        raise DataError(f"{path}: expected a non-empty JSON list of TruthfulQA MC rows")
    for i, row in enumerate(rows, 1):
        fields = ("question", "mc1_targets", "mc2_targets")
        missing = [f for f in fields if not isinstance(row, dict) or f not in row]
        if missing:
            raise DataError(f"{path}: row {i}: missing field(s) {missing}")
    return rows


def _kept(row: dict[str, Any], metric: str) -> dict[str, Any]:
    """The part of lm-eval's logged sample the scorer reads."""
    doc = row["doc"]
    return {metric: float(row[metric]), "doc_id": int(row["doc_id"]),
            "doc": {"question": doc.get("question"), "choices": list(doc["choices"])}}


def hub_mc_file(found: Resolved) -> Path:
    """The hub's `truthful_qa` multiple_choice rows ({choices, labels}) written once in the
    upstream mc_task.json layout ({answer: label}) that our lm-eval task YAMLs read."""
    _, records = found.records()
    rows = [{"question": r["question"],
             **{k: dict(zip(r[k]["choices"], r[k]["labels"]))
                for k in ("mc1_targets", "mc2_targets")}} for r in records]
    text = json.dumps(rows, indent=2)
    out = Path(tempfile.gettempdir()) / f"udasa-truthfulqa-mc-{content_key(text)}.json"
    if not out.is_file():
        write_text(out, text)
    return out


ROWS_VERSION = 1  # bump when the kept record (`_kept`) changes: part of the score cache key


@register("truthfulqa_mc")
class TruthfulQAMC:
    max_new_tokens = 0  # nothing is generated: answers are scored by log-likelihood
    data_file = "truthfulqa/mc_task.json"
    batch_size = 8
    # lm-eval's hf backend with each batch's shared start (the QA primer) run once
    # (evals/lm_eval_shared.py); "hf" is lm-eval's own
    lm_eval_model = "udasa-hf"
    dtype = "float32"
    device = "cpu"

    def path(self, source: str | None) -> Path:
        """`source`, else the mirror's mc_task.json, else the hub's rows in its layout."""
        if source:
            path = Path(source)
            if not path.is_file():
                raise DataError(f"{path}: TruthfulQA mc_task.json not found")
            return path
        found = resolve("truthfulqa/mc")
        return found.path if found.path is not None else hub_mc_file(found)

    def samples(self, limit: int | None, seed: int, source: str | None) -> list[Sample]:
        """A seeded random subset of the questions; `meta["index"]` is the row (= lm-eval doc id)."""
        rows = read_mc_rows(self.path(source))
        order = list(range(len(rows)))
        random.Random(seed).shuffle(order)
        if limit is not None:
            order = order[:limit]
        return [Sample(sample_id(rows[i]["question"]), rows[i]["question"], {"index": i})
                for i in order]

    def solver(self, source: str | None) -> LogLikelihood:
        path = self.path(source)
        cache_id = content_key(path.read_text(encoding="utf-8"), version("lm_eval"),
                               f"rows-v{ROWS_VERSION}")
        return LogLikelihood(partial(self.option_scores, source), API_NOTE, cache_id)

    def option_scores(self, source: str | None, model: EvalModel, samples: list[Sample]
                      ) -> list[dict[str, Any]]:
        """lm-eval's logged MC1 and MC2 rows of each sample (`simple_evaluate` on `model`, the
        data file of `source`).

        Only what the scorer reads is kept (JSON, so the solver can store it): the scores and
        the doc's question and choices."""
        indices = sorted(s.meta["index"] for s in samples)  # lm-eval pairs doc ids in file order
        logged = self._run_lm_eval(model, self.path(source), indices).get("samples") or {}
        by_task = {}
        for name in (MC1_TASK, MC2_TASK):
            rows = {int(r["doc_id"]): r for r in logged.get(name, [])}
            by_task[name] = rows
            missing = [s.meta["index"] for s in samples if s.meta["index"] not in rows]
            if missing:
                raise RuntimeError(f"lm-eval logged no {name} result for rows {missing[:5]}")
            for s in samples:  # doc ids are row indices: check they point at our question
                doc = rows[s.meta["index"]]["doc"]
                if doc.get("question") != s.prompt:
                    raise RuntimeError(f"{name}: doc {s.meta['index']} is {doc.get('question')!r}"
                                       f", expected {s.prompt!r}")
        return [{"mc1": _kept(by_task[MC1_TASK][s.meta["index"]], "acc"),
                 "mc2": _kept(by_task[MC2_TASK][s.meta["index"]], "mc2")} for s in samples]

    def _run_lm_eval(self, model: EvalModel, data_file: Path, indices: list[int]) -> dict:
        import lm_eval
        from lm_eval.tasks import TaskManager

        import evals.lm_eval_shared  # noqa: F401  (registers udasa-hf with lm-eval)

        with tempfile.TemporaryDirectory(prefix="udasa-lm-eval-") as tmp:
            names = render_tasks(data_file, Path(tmp))
            manager = TaskManager(include_path=tmp, include_defaults=False)
            out = lm_eval.simple_evaluate(
                model=self.lm_eval_model,
                model_args=lm_eval_model_args(model.spec, self.dtype, self.device),
                tasks=names, samples={n: indices for n in names}, task_manager=manager,
                batch_size=self.batch_size, log_samples=True, bootstrap_iters=0)
        if out is None:
            raise RuntimeError("lm-eval returned no results")
        return out

    def score(self, samples: list[Sample], solution: Solution, run: TaskRun) -> TaskResult:
        """MC1 accuracy (Wilson CI) and MC2 mass on the true answers (bootstrap CI)."""
        if not solution.outputs:
            return TaskResult({}, [], judge=JUDGE_LABEL, notes="; ".join(solution.notes))
        per, mc1, mc2 = [], [], []
        for s, out in zip(samples, solution.outputs):
            r1, r2 = out.data["mc1"], out.data["mc2"]
            right, mass = float(r1["acc"]) == 1.0, float(r2["mc2"])
            mc1.append(right)
            mc2.append(mass)
            per.append({"id": s.id, "metrics": {"mc1": 100.0 * right, "mc2": 100.0 * mass},
                        "mc1": int(right), "mc2": mass,
                        "row": s.meta["index"], "n_choices_mc1": len(r1["doc"]["choices"]),
                        "n_choices_mc2": len(r2["doc"]["choices"])})
        metrics = {"mc1": proportion_ci(mc1), "mc2": mean_ci([100.0 * m for m in mc2])}
        notes = (f"lm-eval {version('lm_eval')} tasks {MC1_TASK}/{MC2_TASK} (evals/lm_eval_tasks), "
                 f"0-shot after the TruthfulQA QA primer, {self.lm_eval_model} backend "
                 f"{self.dtype} on "
                 f"{self.device}; MC1 = accuracy (%), MC2 = mean normalised probability of the "
                 f"true answers (%); model {run.model.spec}")
        return TaskResult(metrics, per, judge=JUDGE_LABEL, notes=notes,
                          paired_metrics=["mc1", "mc2"])
