"""`data.limit` with `data.sample: seeded`: a seeded sample of the whole source, not its first
rows, the same on every machine and in every run (issue 25)."""

from __future__ import annotations

import json

import pytest
from conftest import REPO

from udasa.config import load_config
from udasa.data import data_dir, load_prompts, seeded_sample
from udasa.keys import gen_key_of, run_id_of
from udasa.records import content_key


def write_prompts(path, texts):
    path.write_text("".join(json.dumps({"prompt": t}) + "\n" for t in texts), encoding="utf-8")
    return str(path)


TEXTS = [f"Question number {i}: what is {i} times {i + 1}?" for i in range(40)]

# The ten prompts seed 0 draws from TEXTS (ranked by sha256 of ("data.sample", seed, text)):
# a fixed list, so a change of the draw (machine, Python version, file order) fails here.
SEED0 = [15, 16, 21, 26, 30, 31, 32, 35, 37, 38]


def test_a_seeded_sample_is_a_fixed_draw_in_source_order(tmp_path):
    path = write_prompts(tmp_path / "p.jsonl", TEXTS)
    got = load_prompts(path, limit=10, sample="seeded", seed=0).prompts
    assert [p.text for p in got] == [TEXTS[i] for i in SEED0]
    again = load_prompts(path, limit=10, sample="seeded", seed=0).prompts
    assert [p.origin for p in again] == [p.origin for p in got]
    assert [p.text for p in load_prompts(path, limit=10).prompts] == TEXTS[:10]


def test_the_draw_depends_on_the_seed_and_texts_not_the_file_order(tmp_path):
    forward = write_prompts(tmp_path / "a.jsonl", TEXTS)
    backward = write_prompts(tmp_path / "b.jsonl", TEXTS[::-1])
    a = {p.text for p in load_prompts(forward, limit=10, sample="seeded", seed=0).prompts}
    b = {p.text for p in load_prompts(backward, limit=10, sample="seeded", seed=0).prompts}
    other = {p.text for p in load_prompts(forward, limit=10, sample="seeded", seed=1).prompts}
    assert a == b and a != other and len(other) == 10


def test_the_sample_is_drawn_after_skips_and_duplicates(tmp_path):
    path = write_prompts(tmp_path / "p.jsonl", [*TEXTS, "", TEXTS[15], "   "])
    loaded = load_prompts(path, limit=10, sample="seeded", seed=0)
    assert [p.text for p in loaded.prompts] == [TEXTS[i] for i in SEED0]
    assert len(loaded.skipped) == 3  # two empty rows and one duplicate, counted not sampled
    assert len(load_prompts(path, limit=100, sample="seeded").prompts) == 40


def test_seeded_sample_helper_keeps_order_and_size():
    from udasa.records import Prompt

    prompts = [Prompt(t, "test") for t in TEXTS]
    assert seeded_sample(prompts, 0, 0) == []
    assert seeded_sample(prompts, 99, 0) == prompts
    ranked = sorted(TEXTS, key=lambda t: content_key("data.sample", "0", t))[:10]
    assert [p.text for p in seeded_sample(prompts, 10, 0)] == [t for t in TEXTS if t in ranked]


def test_config_field_keys_the_run_but_not_the_replies():
    first = load_config(None, ["data.limit=5"])
    seeded = load_config(None, ["data.limit=5", "data.sample=seeded"])
    assert run_id_of(seeded) != run_id_of(first)
    assert gen_key_of(seeded) == gen_key_of(first)  # replies are keyed per prompt
    with pytest.raises(Exception, match="data.sample: 'random' is not one of"):
        load_config(None, ["data.sample=random"])


def test_alpaca_sample_of_the_medium_experiment_is_stable():
    if not (data_dir() / "alpaca" / "alpaca_data_52k_corrected.json.gz").is_file():
        pytest.skip(f"the Alpaca mirror file is not under {data_dir()} (set UDASA_DATA_DIR)")
    cfg = load_config(REPO / "configs" / "medium" / "udasa.yaml")
    d = cfg.data
    got = load_prompts(d.source, limit=d.limit, sample=d.sample, seed=cfg.seed).prompts
    first = load_prompts(d.source, limit=d.limit).prompts
    assert len(got) == 1000 and got != first
    rows = [int(p.origin.rsplit("row ", 1)[1]) for p in got]
    assert rows == sorted(rows) and rows[-1] > 45_000  # drawn from the whole file, in order
    # the same 1,000 prompts on every machine: a digest of their ids
    assert content_key(*[p.id for p in got]) == "f5a62a6da11cc0b3"
