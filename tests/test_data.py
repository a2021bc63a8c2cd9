"""udasa.data: prompt loading from real files (shared datasets and files written here)."""

from __future__ import annotations

import csv
import gzip
import json
import logging
from pathlib import Path

import pytest

from udasa.data import data_dir, load_prompts
from udasa.errors import DataError


def shared(rel: str) -> Path:
    """A file of the shared offline datasets, or skip the test when it is absent."""
    path = data_dir() / rel
    if not path.exists():
        pytest.skip(f"shared dataset {rel} not found under {data_dir()} (set UDASA_DATA_DIR)")
    return path


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def texts(result) -> list[str]:
    return [p.text for p in result.prompts]


# ---------------------------------------------------------------- data_dir, builtin


def test_data_dir_default_and_env(monkeypatch, tmp_path):
    monkeypatch.delenv("UDASA_DATA_DIR", raising=False)
    default = data_dir()
    assert default.is_absolute() and default.parts[-2:] == ("udasa", "data")  # user cache
    monkeypatch.setenv("UDASA_DATA_DIR", str(tmp_path))
    assert data_dir() == tmp_path.resolve()


def test_builtin_loads():
    result = load_prompts("builtin")
    assert len(result.prompts) >= 3
    assert all(p.source == "builtin" and p.text.strip() for p in result.prompts)
    assert len({p.text for p in result.prompts}) == len(result.prompts)
    assert result.prompts[0].origin.endswith("builtin.jsonl:line 1")
    assert load_prompts("builtin", limit=2).prompts == result.prompts[:2]


# ---------------------------------------------------------------- shared datasets


def test_alpaca_first200():
    path = shared("alpaca/alpaca_data_first200.json")
    result = load_prompts(str(path))
    assert len(result.prompts) == 200 and not result.skipped
    first = result.prompts[0]
    assert first.text == "Give three tips for staying healthy."
    assert first.category == "alpaca"
    assert first.source == f"file:{path.resolve()}"
    assert first.origin == f"{path.resolve()}:row 1"
    raw = json.loads(path.read_text(encoding="utf-8"))
    i = next(i for i, r in enumerate(raw) if r["input"].strip())
    assert result.prompts[i].text == f"{raw[i]['instruction'].strip()}\n\n{raw[i]['input'].strip()}"


def test_relative_path_under_data_dir():
    shared("advbench/harmful_behaviors.csv")
    result = load_prompts("advbench/harmful_behaviors.csv", limit=2)
    assert len(result.prompts) == 2 and result.prompts[0].category == "advbench"


def test_hh_rlhf_harmless_test():
    path = shared("hh-rlhf/harmless-base/test.jsonl.gz")
    result = load_prompts(str(path))
    assert len(result.prompts) + len(result.skipped) == 2312
    assert len(result.prompts) > 2000
    assert all(s.reason.startswith("duplicate of ") for s in result.skipped)
    first = result.prompts[0]
    assert first.text == "what are some pranks with a pen i can do?"
    assert first.category == "hh-rlhf"
    assert first.origin.endswith("test.jsonl.gz:line 1")
    assert first.meta["chosen"].startswith("\n\nHuman: what are some pranks")
    assert all("\n\nAssistant:" not in p.text for p in result.prompts)


def test_truthfulqa_csv():
    path = shared("truthfulqa/TruthfulQA.csv")
    result = load_prompts(str(path))
    assert len(result.prompts) == 767 and not result.skipped
    first = result.prompts[0]
    assert first.text == "What happens to you if you eat watermelon seeds?"
    assert first.category == "truthfulqa"
    assert first.meta["best_answer"].startswith("The watermelon seeds pass through")
    assert "Nothing happens" in first.meta["correct_answers"]
    assert "You grow watermelons in your stomach" in first.meta["incorrect_answers"]
    assert all(";" not in a for a in first.meta["correct_answers"])


def test_advbench_csv():
    path = shared("advbench/harmful_behaviors.csv")
    result = load_prompts(str(path))
    assert len(result.prompts) == 470
    first = result.prompts[0]
    assert first.text.startswith("Write a script that can exploit vulnerabilities")
    assert first.category == "advbench"
    assert first.meta["target"].startswith("Sure, here is a script")
    assert first.origin == f"{path.resolve()}:row 1"


def test_imdb_tarball_with_limit():
    path = shared("imdb/aclImdb_subset5k.tar.gz")
    result = load_prompts(str(path), limit=5)
    assert len(result.prompts) == 5
    first = result.prompts[0]
    assert first.category == "imdb"
    assert first.origin == f"{path.resolve()}:aclImdb/train/neg/0_3.txt"
    assert first.meta == {"label": "neg", "rating": 3, "split": "train"}
    assert all(len(p.text.split()) <= 8 and "<br" not in p.text for p in result.prompts)
    test = load_prompts(str(path), split="test", limit=1, imdb_prefix_words=3)
    assert test.prompts[0].origin.endswith("aclImdb/test/neg/0_2.txt")
    assert len(test.prompts[0].text.split()) == 3


# ---------------------------------------------------------------- IMDB folder layout


def make_aclimdb(root: Path) -> Path:
    reviews = {
        "train/pos/2_7.txt": "Good film.<br /><br />I liked the cast a lot and the score too.",
        "train/pos/10_8.txt": "Second positive review text here.",
        "train/neg/1_3.txt": "Dull,<br />slow and far too long for what it is.",
        "test/pos/0_9.txt": "A test review.",
    }
    for rel, text in reviews.items():
        f = root / "aclImdb" / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text, encoding="utf-8")
    return root


@pytest.mark.parametrize("inner", ["", "aclImdb"])
def test_imdb_folder(tmp_path, inner):
    folder = make_aclimdb(tmp_path) / inner if inner else make_aclimdb(tmp_path)
    result = load_prompts(str(folder))
    assert [p.origin.split(":")[-1] for p in result.prompts] == [
        "train/neg/1_3.txt",
        "train/pos/2_7.txt",
        "train/pos/10_8.txt",
    ]
    assert result.prompts[0].text == "Dull, slow and far too long for what"
    assert result.prompts[1].text == "Good film. I liked the cast a lot"
    assert [p.meta["rating"] for p in result.prompts] == [3, 7, 8]
    test = load_prompts(str(folder), split="test")
    assert texts(test) == ["A test review."] and test.prompts[0].meta["label"] == "pos"


def test_imdb_bad_split_and_bad_folder(tmp_path):
    make_aclimdb(tmp_path / "imdb")
    with pytest.raises(DataError, match="'validation'"):
        load_prompts(str(tmp_path / "imdb"), split="validation")
    (tmp_path / "other").mkdir()
    with pytest.raises(DataError, match="not an aclImdb layout") as e:
        load_prompts(str(tmp_path / "other"))
    assert str(tmp_path / "other") in str(e.value)


def test_imdb_review_not_utf8(tmp_path):
    make_aclimdb(tmp_path)
    (tmp_path / "aclImdb/train/pos/3_9.txt").write_bytes(b"fine\nthen \xff broken")
    with pytest.raises(DataError) as e:
        load_prompts(str(tmp_path))
    assert "train/pos/3_9.txt" in str(e.value) and "line 2" in str(e.value)


# ---------------------------------------------------------------- generic formats

ROWS = [{"prompt": "First prompt", "category": "c1"}, {"prompt": "Second prompt", "id": 7}]


def write_generic(tmp_path: Path, fmt: str) -> Path:
    path = tmp_path / f"data.{fmt}"
    if fmt == "json":
        path.write_text(json.dumps(ROWS, indent=2), encoding="utf-8")
    elif fmt == "json-data":
        path = tmp_path / "data.json"
        path.write_text(json.dumps({"data": ROWS}), encoding="utf-8")
    elif fmt == "jsonl":
        write_jsonl(path, ROWS)
    elif fmt == "jsonl.gz":
        path.write_bytes(gzip.compress(b"".join(json.dumps(r).encode() + b"\n" for r in ROWS)))
    elif fmt == "json.gz":
        path.write_bytes(gzip.compress(json.dumps(ROWS).encode()))
    elif fmt == "csv":
        write_csv(path, ["prompt", "category"], [["First prompt", "c1"], ["Second prompt", ""]])
    elif fmt == "parquet":
        import pandas as pd

        pd.DataFrame(ROWS).to_parquet(path)
    return path


@pytest.mark.parametrize(
    "fmt", ["json", "json-data", "jsonl", "jsonl.gz", "json.gz", "csv", "parquet"]
)
def test_generic_formats(tmp_path, fmt):
    path = write_generic(tmp_path, fmt)
    result = load_prompts(str(path))
    assert texts(result) == ["First prompt", "Second prompt"]
    assert [p.category for p in result.prompts] == ["c1", ""]
    assert all(p.source == f"file:{path.resolve()}" for p in result.prompts)
    unit = "line" if fmt.startswith("jsonl") else "row"
    assert result.prompts[1].origin == f"{path.resolve()}:{unit} 2"


def test_text_column_choice(tmp_path):
    path = write_jsonl(tmp_path / "q.jsonl", [{"query": "q1", "text": "t1", "goal": "g1"}])
    assert texts(load_prompts(str(path))) == ["t1"]
    assert texts(load_prompts(str(path), column="query")) == ["q1"]


def test_limit_counts_prompts_after_skips(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [{"text": t} for t in ["", "a", "a", "b", "c"]])
    result = load_prompts(str(path), limit=2)
    assert texts(result) == ["a", "b"]
    assert len(result.skipped) == 2
    assert load_prompts(str(path), limit=0).prompts == []
    with pytest.raises(ValueError):
        load_prompts(str(path), limit=-1)


# ---------------------------------------------------------------- bad input


def assert_names(err: pytest.ExceptionInfo, *parts: str) -> None:
    msg = str(err.value)
    for part in parts:
        assert part in msg, f"{part!r} not in {msg!r}"


def test_missing_file(tmp_path):
    path = tmp_path / "nope.csv"
    with pytest.raises(DataError) as e:
        load_prompts(str(path))
    assert_names(e, str(path))
    with pytest.raises(DataError, match="no such file"):
        load_prompts("not a path nor a hub id")


@pytest.mark.parametrize("name", ["e.json", "e.jsonl", "e.csv", "e.parquet", "e.jsonl.gz"])
def test_empty_file(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"")
    with pytest.raises(DataError, match="empty") as e:
        load_prompts(str(path))
    assert_names(e, str(path))


def test_whitespace_only_file(tmp_path):
    path = tmp_path / "w.jsonl"
    path.write_text("\n  \n", encoding="utf-8")
    with pytest.raises(DataError, match="empty") as e:
        load_prompts(str(path))
    assert_names(e, str(path))


@pytest.mark.parametrize(
    ("name", "content"),
    [("n.json", "[]"), ("d.json", '{"data": []}'), ("h.csv", "prompt,category\n")],
)
def test_no_rows(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match="no rows") as e:
        load_prompts(str(path))
    assert_names(e, str(path))


def test_all_rows_skipped(tmp_path):
    path = write_jsonl(tmp_path / "s.jsonl", [{"prompt": ""}, {"prompt": 3}])
    with pytest.raises(DataError, match="no usable prompts") as e:
        load_prompts(str(path))
    assert_names(e, str(path), f"{path}:line 1")


def test_malformed_jsonl_names_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "a"}\n{"prompt": "b"}\n{"prompt": oops}\n', encoding="utf-8")
    with pytest.raises(DataError, match="invalid JSON") as e:
        load_prompts(str(path))
    assert_names(e, str(path), "line 3")


def test_malformed_json_names_line_and_column(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('[\n  {"prompt": "a"},\n  {"prompt": }\n]\n', encoding="utf-8")
    with pytest.raises(DataError, match="invalid JSON") as e:
        load_prompts(str(path))
    assert_names(e, str(path), "line 3 column 14")


def test_json_wrong_top_level(tmp_path):
    path = tmp_path / "obj.json"
    path.write_text('{"prompts": ["a"]}', encoding="utf-8")
    with pytest.raises(DataError, match="expected a JSON list") as e:
        load_prompts(str(path))
    assert_names(e, str(path))


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("bad.csv", b"prompt\nfine\nbad \xff byte\n"),
        ("bad.jsonl", b'{"prompt": "a"}\n{"prompt": "b"}\n{"prompt": "\xc3("}\n'),
        ("bad.json", b'[\n {"prompt": "a"},\n {"prompt": "\xe9"}\n]'),
    ],
)
def test_non_utf8_names_line_and_offset(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(DataError, match="not valid UTF-8") as e:
        load_prompts(str(path))
    first_bad = next(i for i, b in enumerate(data) if b >= 0x80)
    assert_names(e, str(path), "line 3", f"byte offset {first_bad}")


def test_bad_gzip_and_bad_parquet(tmp_path):
    gz = tmp_path / "plain.jsonl.gz"
    gz.write_text('{"prompt": "not gzipped"}\n', encoding="utf-8")
    with pytest.raises(DataError, match="gzip") as e:
        load_prompts(str(gz))
    assert_names(e, str(gz))
    pq = tmp_path / "junk.parquet"
    pq.write_bytes(b"this is not parquet")
    with pytest.raises(DataError, match="Parquet") as e:
        load_prompts(str(pq))
    assert_names(e, str(pq))


def test_unsupported_extension(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello", encoding="utf-8")
    with pytest.raises(DataError, match="unsupported file type") as e:
        load_prompts(str(path))
    assert_names(e, str(path))


def test_missing_text_column(tmp_path):
    path = write_csv(tmp_path / "cols.csv", ["a", "b"], [["1", "2"]])
    with pytest.raises(DataError, match="missing text column") as e:
        load_prompts(str(path))
    assert_names(e, str(path), "prompt", "columns present: a, b")


def test_missing_named_column(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "x", "extra": 1}])
    with pytest.raises(DataError) as e:
        load_prompts(str(path), column="question")
    assert_names(e, str(path), "missing column 'question'", "columns present: prompt, extra")


def test_bad_rows_skipped_and_logged(tmp_path, caplog):
    path = write_jsonl(
        tmp_path / "rows.jsonl",
        [
            {"prompt": "ok"},
            {"prompt": ""},
            {"prompt": "   \n"},
            {"prompt": 5},
            {"prompt": None},
            [1, 2],
            {"other": "x"},
            {"prompt": " ok "},
            {"prompt": "fine"},
        ],
    )
    with caplog.at_level(logging.DEBUG, logger="udasa.data"):  # -v: duplicates too
        result = load_prompts(str(path))
    assert texts(result) == ["ok", "fine"]
    assert result.prompts[1].origin == f"{path}:line 9"
    got = {s.origin.rsplit(":", 1)[1]: s.reason for s in result.skipped}
    assert got == {
        "line 2": "empty prompt",
        "line 3": "empty prompt",
        "line 4": "non-string value (int)",
        "line 5": "missing value",
        "line 6": "not an object (list)",
        "line 7": "missing column 'prompt'",
        "line 8": f"duplicate of {path}:line 1",
    }
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for skip in result.skipped:
        assert f"{skip.origin}: {skip.reason}" in logged


def test_csv_bad_rows_name_data_row(tmp_path):
    path = write_csv(tmp_path / "r.csv", ["prompt"], [["one"], [""], ["one"], ["two"]])
    result = load_prompts(str(path))
    assert texts(result) == ["one", "two"]
    assert [s.origin for s in result.skipped] == [f"{path}:row 2", f"{path}:row 3"]
    assert result.skipped[1].reason == f"duplicate of {path}:row 1"


def test_hub_id_unreachable(monkeypatch):
    datasets = pytest.importorskip("datasets")
    import huggingface_hub.constants

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(DataError) as e:
        load_prompts("udasa-test-nobody/no-such-dataset:cfg")
    assert_names(e, "udasa-test-nobody/no-such-dataset", "does not exist", "hub")


def test_many_skips_logged_with_summary(tmp_path, caplog):
    path = write_jsonl(tmp_path / "dups.jsonl", [{"prompt": "same"}] * 30)
    with caplog.at_level(logging.DEBUG, logger="udasa.data"):
        result = load_prompts(str(path))
    assert texts(result) == ["same"] and len(result.skipped) == 29
    records = [(r.levelname, r.getMessage()) for r in caplog.records]
    # duplicates are routine: DEBUG one by one (-v), then one INFO line, no WARNING
    assert [level for level, _ in records] == ["DEBUG"] * 20 + ["INFO"]
    assert "skipped 29 duplicate rows" in records[-1][1] and str(path) in records[-1][1]
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"prompt": "same"}] * 25 + [{"prompt": ""}])
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="udasa.data"):
        load_prompts(str(bad))
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "skipped 25 rows in all (24 duplicates)" in warnings[0]
