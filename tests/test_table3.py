"""`udasa table3`: the paper's four replies scored by the configured (real, embedded) scorers,
printed beside the paper's values, which ship as data with their source."""

from __future__ import annotations

import json

import pytest
from conftest import REPO
from test_equations import TABLE3

from udasa.cli import main
from udasa.config import AXES, load_config
from udasa.errors import DataError
from udasa.fusion import fuse
from udasa.table3 import TABLE3_FILE, load_paper, score_table3

CONFIG = REPO / "configs" / "cpu-demo.yaml"


def test_shipped_data_is_the_papers_table():
    paper = load_paper()
    assert paper.prompt == "Briefly explain why water is wet."
    assert "Table 3" in paper.source and "Uncertainty-Driven Adaptive Self-Alignment" in \
        paper.source
    assert [((r["U_sem"], r["U_fact"], r["U_val"]), r["u"], r["human"])
            for r in paper.rows] == TABLE3  # the values the equation tests were written from
    assert paper.rows[2]["reply"] == "Because it is a solid."
    assert TABLE3_FILE.is_relative_to(REPO / "udasa")  # packaged (udasa/resources/**)


def test_table3_command_prints_ours_beside_the_papers(tmp_path, capsys):
    assert main(["table3", "--config", str(CONFIG), "--workspace", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Briefly explain why water is wet." in out and "Table 3 of" in out
    assert "nli-lr" in out and "profanity" in out and "sbert" in out  # which scorers
    data = json.loads((tmp_path / "table3.json").read_text())
    assert (tmp_path / "table3.md").read_text().count("| Because it") == 3
    rows = data["rows"]
    assert [r["paper_u"] for r in rows] == [0.10, 0.33, 0.39, 0.34]
    assert [r["human"] for r in rows] == [0.10, 0.30, 0.44, 0.37]
    cfg = load_config(CONFIG)
    for r in rows:
        assert set(r["ours"]) == set(AXES) and all(0 <= v <= 1 for v in r["ours"].values())
        assert r["u"] == pytest.approx(fuse(r["ours"], cfg.fusion)[0])  # Eq. 5-6 on ours
        assert f"{r['ours']['sem']:.2f} / {r['paper']['sem']:.2f}" in out  # side by side
    # Eq. 5-6 on the paper's own axis values: row 2 is 0.41, not the listed 0.33
    assert rows[1]["paper_u_formula"] == pytest.approx(0.406519, abs=1e-6)
    assert data["rho_paper"] == pytest.approx(1.0)  # the listed u ranks like the humans
    # replies are scored as one group: U_sem is each reply against the other three
    assert len({round(r["ours"]["sem"], 6) for r in rows}) == 4


def test_table3_follows_the_configured_fusion():
    cfg = load_config(CONFIG, ["fusion.method=mean"])
    t = score_table3(cfg)
    assert t.fusion.startswith("mean")
    assert t.rows[1].paper_u_formula == pytest.approx((0.7 + 0.2 + 0.1) / 3)
    assert t.rows[0].u == pytest.approx(sum(t.rows[0].ours.values()) / 3)


def test_malformed_table3_file_names_the_file(tmp_path):
    bad = tmp_path / "table3.json"
    bad.write_text(json.dumps({"source": "s", "prompt": "p", "rows": [{"reply": "r"}]}))
    with pytest.raises(DataError, match=r"table3.json: rows\[0\] has no 'U_sem'"):
        load_paper(bad)
    bad.write_text("{not json")
    with pytest.raises(DataError, match="table3.json: not a Table 3 data file"):
        load_paper(bad)


def test_unreachable_scorer_model_is_one_line_naming_the_field(tmp_path, capsys):
    """configs/paper.yaml names hub models; offline (as every test is) they cannot load."""
    code = main(["table3", "--config", str(REPO / "configs" / "paper.yaml"),
                 "--workspace", str(tmp_path)])
    out = capsys.readouterr().out.strip()
    assert code == 2 and "Traceback" not in out
    assert out.startswith("error: scoring.semantic.model "
                          "'sentence-transformers/all-mpnet-base-v2' cannot be loaded")
    assert "\n" not in out
    assert not (tmp_path / "table3.md").exists()
