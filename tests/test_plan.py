"""`udasa-eval run --experiment FILE --plan` (evals/plan.py): every shipped experiment file is
planned offline without loading weights or calling a server; what a workspace stores shows;
a name that cannot be resolved is one line and exit 2; and the run itself, offline, ends with
one line naming the model it cannot load."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import REPO, small_overrides

from evals.cli import main as eval_main
from udasa.data import data_dir

EXPERIMENTS = sorted((REPO / "configs" / "experiments").glob("*.yaml"))
NEEDED = ("alpaca/alpaca_data_52k_corrected.json.gz", "hh-rlhf/harmless-base/test.jsonl.gz",
          "hh-rlhf/helpful-base/test.jsonl.gz", "imdb/aclImdb_subset5k.tar.gz",
          "truthfulqa/TruthfulQA.csv", "truthfulqa/mc_task.json",
          "advbench/harmful_behaviors.csv", "gcg/refusal_prefixes.json",
          "gcg/universal_suffixes.json")
shared_data = pytest.mark.skipif(not all((data_dir() / f).is_file() for f in NEEDED),
                                 reason=f"shared data folder {data_dir()} incomplete "
                                        "(set UDASA_DATA_DIR)")


def refuse_loading(monkeypatch) -> None:
    """Any weight loading or server client a failure."""
    import openai
    import transformers

    def refuse(*args, **kwargs):
        raise AssertionError(f"--plan loaded weights or called a server: {args[:2]}")

    for cls in (transformers.AutoModelForCausalLM, transformers.AutoTokenizer,
                transformers.AutoModelForSequenceClassification):
        monkeypatch.setattr(cls, "from_pretrained", refuse)
    monkeypatch.setattr(openai.OpenAI, "__init__", refuse)


@pytest.fixture
def offline(monkeypatch):
    """The hub off, no API key, and any weight loading or server call a failure."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    refuse_loading(monkeypatch)


def plan(capsys, *args: str) -> tuple[int, str]:
    code = eval_main(["run", "--plan", *args])
    out = capsys.readouterr()
    return code, out.out + out.err


@shared_data
@pytest.mark.parametrize("path", EXPERIMENTS, ids=[p.stem for p in EXPERIMENTS])
def test_every_shipped_experiment_is_planned_offline(path, offline, capsys, tmp_path):
    import yaml

    code, out = plan(capsys, "--experiment", str(path), "--workspace", str(tmp_path / "ws"))
    assert code == 0, out
    exp = yaml.safe_load(path.read_text())
    assert f"# Plan of experiment {exp['name']}" in out
    for method in exp["methods"]:
        assert f"| {method['name']} |" in out
    for task in exp["tasks"]:
        assert f"evaluate {task['name']}:" in out
    assert "GPU: about" in out and "Time here: at least" in out
    assert not (tmp_path / "ws").exists()  # nothing written, not even an empty store
    if path.stem == "paper":  # hub models offline: found, sized from their names, not ready
        assert ("| huggyllama/llama-7b | hub, not in the cache (the hub is off here: cannot "
                "be loaded) | no | 7,000M (name) |") in out
        assert "GCG white-box, 500 steps x 512 candidates" in out
        assert "DPO stage 1: about 17,334 pairs" in out  # 52,002 Alpaca prompts, 3 stages
    if path.stem == "gpu-small":  # the mirror's Alpaca for tatsu-lab/alpaca; two servers
        assert "| tatsu-lab/alpaca | file " in out
        assert "| http://localhost:8000/v1 | server (not called by --plan) |" in out
        assert "| http://localhost:8001/v1 | server (not called by --plan) |" in out


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text("name: t\npremise: []\n" + body)
    return path


@pytest.mark.parametrize("body, named", [
    ("policy: /no/such/model\nmethods: [{name: B, kind: base}]\ntasks: [{name: sentiment}]\n",
     "B: policy: '/no/such/model': no such model folder"),
    ("methods: [{name: B, kind: base}]\ntasks: [{name: sentiment, data: nope.jsonl}]\n",
     "file 'nope.jsonl' not found"),
    ("judge: nope\nmethods: [{name: B, kind: base}]\ntasks: [{name: sentiment}]\n",
     "unknown judge 'nope'"),
    (("judge: gpt4\njudge_base_url: localhost:8001\nmethods: [{name: B, kind: base}]\n"
      "tasks: [{name: sentiment}]\n"), "judge base_url: 'localhost:8001' is not an http(s) URL"),
    (("methods: [{name: U, kind: udasa, overrides: [data.source=no-such-set]}]\n"
      "tasks: [{name: sentiment}]\n"), "U: data.source: no such file or folder"),
    (("methods: [{name: U, kind: udasa, overrides: [data.source=Anthropic/hh-rlhf]}]\n"
      "tasks: [{name: sentiment}]\n"), "the hub id has several parts"),
])
def test_an_unresolvable_name_is_one_line_and_exit_2(body, named, offline, capsys, tmp_path):
    code, out = plan(capsys, "--experiment", str(write(tmp_path, body)), "--workspace",
                     str(tmp_path / "ws"))
    assert code == 2, out
    (line,) = out.strip().splitlines()
    assert line.startswith("error: ") and named in line, line


def test_the_plan_shows_what_the_workspace_stores(tiny_policy, monkeypatch, tmp_path,
                                                  capsys):
    from udasa.config import load_config
    from udasa.pipeline import Pipeline

    sets = small_overrides(limit=4, **{"generation.n": 3, "training.enabled": "true",
                                       "training.max_steps": 1, "training.eval_fraction": 0})
    ws = tmp_path / "ws"
    Pipeline(load_config(REPO / "configs" / "cpu-demo.yaml",
                         [*sets, f"generation.model={tiny_policy}"]), ws).run_all()
    data = tmp_path / "reviews.jsonl"
    data.write_text('{"text": "The film was"}\n{"text": "I left the cinema"}\n')
    path = write(tmp_path, f"policy: {tiny_policy}\nmethods: [{{name: U, kind: udasa, "
                 f"overrides: {sets}}}]\ntasks: [{{name: sentiment, limit: 2, data: {data}}}]\n")
    refuse_loading(monkeypatch)
    code, out = plan(capsys, "--experiment", str(path), "--workspace", str(ws))
    assert code == 0, out
    assert "| U | generate 3 per prompt, 12 tokens at most | 0 | replies | 4 of 4 prompts |" in out
    dpo = [line for line in out.splitlines() if "| DPO steps |" in line]
    assert len(dpo) == 3 and any("| trained |" in line for line in dpo)
    assert all("| trained |" in line or ": 0 pairs |" in line for line in dpo), dpo
    assert "| U | evaluate sentiment: 2 samples" in out


def test_the_paper_experiment_offline_ends_with_one_line_naming_the_model(monkeypatch, capsys,
                                                                          tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    code = eval_main(["run", "--experiment", str(REPO / "configs" / "experiments" /
                                                 "paper.yaml"),
                      "--workspace", str(tmp_path / "ws")])
    out = capsys.readouterr()
    assert code == 2
    last = (out.out + out.err).strip().splitlines()[-1]
    assert last.startswith("error: model 'huggyllama/llama-7b' cannot be loaded"), last
    assert "Traceback" not in out.err
