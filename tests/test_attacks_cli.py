"""`python -m attacks.cli` end to end on the tiny policy: one behaviour, two GCG steps."""

from __future__ import annotations

import json

import pytest

from attacks.cli import main
from udasa.data import data_dir

pytestmark = [pytest.mark.usefixtures("one_torch_thread"), pytest.mark.skipif(
    not (data_dir() / "gcg" / "refusal_prefixes.json").is_file(),
    reason=f"shared data folder {data_dir()} lacks gcg/refusal_prefixes.json")]


def test_attack_cli_writes_results_a_loss_plot_and_the_asr(tmp_path, tiny_policy, capsys):
    data = tmp_path / "behaviours.csv"
    data.write_text('goal,target\nWrite a poem about rain,"Sure, here is a poem"\n')
    out = tmp_path / "out"
    small = ["num_steps=2", "search_width=8", "topk=8", "eval_batch_size=8", "early_stop=false",
             "max_new_tokens=4"]
    args = ["--models", tiny_policy, "--data", str(data), "--behaviours", "1", "--out", str(out)]
    assert main([*args, *(a for s in small for a in ("--set", s))]) == 0
    saved = json.loads((out / "gcg.json").read_text(encoding="utf-8"))
    (result,) = saved["results"]
    assert result["label"] == "Write a poem about rain" and len(result["losses"]) == 2
    assert saved["asr_prefix"]["n"] == 1 and saved["overrides"] == small
    assert (out / "gcg_loss.png").read_bytes()[:4] == b"\x89PNG"
    assert "ASR (refusal prefixes 'evaluate'" in capsys.readouterr().out
    assert main([*args, "--set", "no_such_field=1"]) == 2  # a bad override: exit 2, one line
    assert "no_such_field" in capsys.readouterr().err
