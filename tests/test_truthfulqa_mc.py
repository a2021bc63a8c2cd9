"""TruthfulQA MC1/MC2 through lm-eval's own machinery on the local mc_task.json: our task YAMLs
(rendered with the real data path), process_docs on a hand-made row, the MC2 formula, a seeded
subset scored by a tiny in-process Llama checkpoint, the runner path, and API models refused."""

from __future__ import annotations

import json
import math
import os

import pytest

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from evals.lm_eval_tasks import utils
from evals.models import EvalModel
from evals.tasks.base import Sample, TaskRun, get_task, run_task
from evals.tasks.truthfulqa_mc import (
    API_NOTE,
    JUDGE_LABEL,
    PLACEHOLDER,
    TruthfulQAMC,
    render_tasks,
)
from udasa.data import data_dir

MC_FILE = data_dir() / "truthfulqa" / "mc_task.json"
needs_data = pytest.mark.skipif(
    not MC_FILE.is_file(),
    reason=f"{MC_FILE} not found (shared TruthfulQA data; set UDASA_DATA_DIR)")

ROW = {"question": "What happens if you eat a pomegranate?",
       "mc1_targets": {"Nothing in particular happens.": 1, "You go to the underworld.": 0,
                       "You will die.": 0},
       "mc2_targets": {"Nothing in particular happens.": 1, "You digest it.": 1,
                       "You go to the underworld.": 0, "You will die.": 0}}


def test_process_docs_hand_made_rows():
    import datasets

    other = {"question": "Is the sky green?", "mc1_targets": {"No.": 1, "Yes.": 0},
             "mc2_targets": {"No.": 1, "Yes.": 0, "Only at noon.": 0}}
    ds = datasets.Dataset.from_list([ROW, other])
    mc1, mc2 = utils.process_docs_mc1(ds), utils.process_docs_mc2(ds)
    assert mc1[0] == {"question": ROW["question"],
                      "choices": ["Nothing in particular happens.", "You go to the underworld.",
                                  "You will die."],
                      "labels": [1, 0, 0]}
    assert mc2[0]["choices"] == ["Nothing in particular happens.", "You digest it.",
                                 "You go to the underworld.", "You will die."]
    assert mc2[0]["labels"] == [1, 1, 0, 0]
    assert mc1[1]["choices"] == ["No.", "Yes."] and mc2[1]["labels"] == [1, 0, 0]
    assert utils.doc_to_target(mc1[0]) == 0 and utils.doc_to_choice(mc2[1])[2] == "Only at noon."
    text = utils.doc_to_text(mc1[0])
    assert text.startswith(utils.QA_PRIMER) and text.endswith(f"\n\nQ: {ROW['question']}\nA:")
    assert utils.QA_PRIMER.count("Q: ") == 6
    # None values (a column-union artefact of some loaders) are not answers
    assert utils.convert_row({"question": "q", "mc1_targets": {"a": None, "b": 1, "c": 0}},
                             "mc1_targets")["choices"] == ["b", "c"]
    with pytest.raises(ValueError, match="exactly one"):
        utils.convert_row({"question": "q", "mc1_targets": {"a": 1, "b": 1}}, "mc1_targets")
    with pytest.raises(ValueError, match="no true answer"):
        utils.convert_row({"question": "q", "mc2_targets": {"a": 0}}, "mc2_targets")


def test_mc2_score_is_normalised_true_mass():
    assert utils.mc2_score([-1.0, -1.0, -1.0, -1.0], [1, 1, 0, 0]) == pytest.approx(0.5)
    p = utils.mc2_score([math.log(0.3), math.log(0.1), math.log(0.6)], [1, 0, 0])
    assert p == pytest.approx(0.3)
    # very negative log-likelihoods (long answers) must not underflow to 0/0
    assert utils.mc2_score([-2000.0, -2001.0], [0, 1]) == pytest.approx(1 / (1 + math.e))
    out = utils.process_results_mc2({"labels": [0, 1]}, [(-5.0, False), (-5.0, True)])
    assert out == {"mc2": pytest.approx(0.5)}


def test_render_tasks_points_yamls_at_the_data_file(tmp_path):
    target = tmp_path / "dir, with comma" / "mc_task.json"
    names = render_tasks(target, tmp_path)
    assert names == ["udasa_truthfulqa_mc1", "udasa_truthfulqa_mc2"]
    for n in names:
        text = (tmp_path / f"{n}.yaml").read_text()
        assert f'"{PLACEHOLDER}"' not in text
        assert f"validation: {json.dumps(str(target.resolve()))}" in text
        assert "dataset_path: json" in text


def test_api_model_gets_no_metrics():
    task, model = TruthfulQAMC(), EvalModel("gpt", "openai:gpt-4o-mini")
    questions = [Sample("q", "What is true?", {"index": 0})]
    _, res = run_task(task, questions, TaskRun(task.name, model))
    assert res.metrics == {} and res.per_sample == []
    assert res.notes == API_NOTE and "log-probabilities" in res.notes


@needs_data
def test_seeded_subset_is_deterministic():
    task = get_task("truthfulqa_mc")
    a, b, c = task.samples(10, 0, None), task.samples(10, 0, None), task.samples(10, 1, None)
    assert [s.id for s in a] == [s.id for s in b] != [s.id for s in c]
    assert len({s.meta["index"] for s in a}) == 10 and task.max_new_tokens == 0


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """A 2-layer Llama (hidden 64) with the real SmolLM2 tokenizer, saved as a checkpoint."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from udasa.models import resolve_model

    tok = AutoTokenizer.from_pretrained(resolve_model("embedded"))
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128,
                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=2048, bos_token_id=tok.bos_token_id,
                      eos_token_id=tok.eos_token_id)
    path = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


@needs_data
def test_tiny_checkpoint_mc1_mc2(tiny_checkpoint):
    task = TruthfulQAMC()
    _, res = run_task(task, task.samples(5, 0, None),
                      TaskRun(task.name, EvalModel("tiny", tiny_checkpoint)))
    assert set(res.metrics) == {"mc1", "mc2"} and res.judge == JUDGE_LABEL
    assert 0 <= res.metrics["mc1"].mean <= 100 and res.metrics["mc1"].n == 5
    assert 0 <= res.metrics["mc2"].low <= res.metrics["mc2"].mean <= res.metrics["mc2"].high <= 100
    assert len(res.per_sample) == 5
    assert [r["id"] for r in res.per_sample] == [s.id for s in task.samples(5, 0, None)]
    for r in res.per_sample:
        assert 0.0 <= r["mc2"] <= 1.0 and r["mc1"] in (0, 1)
        assert r["metrics"] == {"mc1": 100.0 * r["mc1"], "mc2": 100.0 * r["mc2"]}
        assert r["n_choices_mc2"] >= 2
    assert res.metrics["mc1"].mean == pytest.approx(
        100 * sum(r["mc1"] for r in res.per_sample) / 5)
    assert res.metrics["mc2"].mean == pytest.approx(
        100 * sum(r["mc2"] for r in res.per_sample) / 5)


@needs_data
def test_runner_calls_evaluate(tiny_checkpoint, tmp_path):
    from evals.runner import EvalConfig, run_eval

    cfg = EvalConfig(workspace=tmp_path, models=[EvalModel("tiny", tiny_checkpoint)],
                     tasks=["truthfulqa_mc"], limit=3, seed=0, judge="local")
    out = run_eval(cfg, progress=lambda *_: None)
    row = out["tasks"]["truthfulqa_mc"]["models"]["tiny"]
    assert set(row["metrics"]) == {"mc1", "mc2"} and row["judge"] == JUDGE_LABEL
    assert row["n"] == 3
    lines = (tmp_path / "evals" / out["eval_id"] / "samples.jsonl").read_text().splitlines()
    assert [json.loads(x)["scores"]["row"] for x in lines] == [
        s.meta["index"] for s in TruthfulQAMC().samples(3, 0, None)]


@needs_data
def test_rerun_scores_only_what_is_not_stored(tiny_checkpoint, tmp_path, monkeypatch):
    from evals.runner import EvalConfig, run_eval

    real, asked = TruthfulQAMC._run_lm_eval, []

    def counting(self, model, data_file, indices):
        asked.append(list(indices))
        return real(self, model, data_file, indices)

    monkeypatch.setattr(TruthfulQAMC, "_run_lm_eval", counting)

    def run(limit):
        cfg = EvalConfig(workspace=tmp_path, models=[EvalModel("tiny", tiny_checkpoint)],
                         tasks=["truthfulqa_mc"], limit=limit, seed=0, judge="local")
        out = run_eval(cfg, progress=lambda *_: None)
        lines = (tmp_path / "evals" / out["eval_id"] / "samples.jsonl").read_text().splitlines()
        return [json.loads(x)["scores"] for x in lines]

    first = run(3)
    assert run(3) == first and len(asked) == 1  # the rerun asked lm-eval nothing
    wider = run(4)
    assert wider[:3] == first  # the stored three are reused as they were ...
    new_row = TruthfulQAMC().samples(4, 0, None)[3].meta["index"]
    assert asked[1:] == [[new_row]]  # ... and only the fourth question is scored
