"""Bad input gets a clear error naming file and row, and never touches the store."""

from __future__ import annotations

import json

import pytest
from conftest import REPO, small_overrides
from openai_server import FakeOpenAIServer
from test_pipeline import dump

from udasa.cli import main
from udasa.store import Store

CONFIG = REPO / "configs" / "cpu-demo.yaml"


def run_cli(step: str, workspace, source, *extra: str) -> int:
    args = [step, "--config", str(CONFIG), "--workspace", str(workspace),
            "--set", f"data.source={source}"]
    for item in small_overrides(limit=2) + list(extra):
        args += ["--set", item]
    return main(args)


@pytest.fixture(scope="module")
def populated(tmp_path_factory):
    """A workspace holding one finished small run, to prove failed steps leave it intact."""
    ws = tmp_path_factory.mktemp("populated")
    assert run_cli("run", ws, "builtin") == 0
    return ws


def _bad_files(tmp):
    bad = {
        "malformed.jsonl": (b'{"prompt": "ok"}\n{"prompt": "broken"\n', "line 2"),
        "empty.jsonl": (b"", "empty"),
        "missing_column.csv": (b"title,year\nJaws,1975\n", "title"),
        "latin1.csv": ('prompt\nok\ncaf\xe9 au lait\n'.encode("latin-1"), "line 3"),
        "list_of_numbers.json": (b"[1, 2, 3]", "list_of_numbers.json"),
    }
    out = {}
    for name, (data, needle) in bad.items():
        path = tmp / name
        path.write_bytes(data)
        out[name] = (path, needle)
    return out


@pytest.mark.parametrize("name", ["malformed.jsonl", "empty.jsonl", "missing_column.csv",
                                  "latin1.csv", "list_of_numbers.json"])
def test_bad_dataset_file_is_a_clear_error_and_the_store_is_untouched(
        name, populated, tmp_path, capsys):
    path, needle = _bad_files(tmp_path)[name]
    before = dump(populated / Store.FILENAME)
    assert run_cli("generate", populated, path) == 2
    out = capsys.readouterr().out
    assert "error:" in out and name in out and needle in out
    assert dump(populated / Store.FILENAME) == before


def test_missing_file_names_the_path(tmp_path, capsys):
    assert run_cli("generate", tmp_path / "ws", tmp_path / "nope.jsonl") == 2
    assert "nope.jsonl" in capsys.readouterr().out


@pytest.mark.slow
def test_blank_prompts_are_skipped_with_the_row_named(tmp_path, capsys):
    data = tmp_path / "prompts.jsonl"
    data.write_text("\n".join(json.dumps({"prompt": p}) for p in
                              ["Name a colour.", "   ", "", "Name a fruit."]) + "\n")
    assert run_cli("generate", tmp_path / "ws", data) == 0
    out = capsys.readouterr().out
    assert "prompts.jsonl:line 2: empty prompt" in out
    store = Store(tmp_path / "ws")
    assert {p["text"] for p in store.run_prompts(store.latest_run()["id"])} == {
        "Name a colour.", "Name a fruit."}


@pytest.mark.slow
def test_prompt_longer_than_the_context_is_skipped_and_recorded(tmp_path):
    data = tmp_path / "prompts.jsonl"
    data.write_text(json.dumps({"prompt": "Name a colour."}) + "\n"
                    + json.dumps({"prompt": "word " * 9000}) + "\n")
    assert run_cli("run", tmp_path / "ws", data) == 0
    store = Store(tmp_path / "ws")
    (event,) = list(store.db["prompt_events"].rows)
    assert event["kind"] == "skip" and "context" in event["reason"]
    assert store.db["responses"].count == 5  # the good prompt went through


def test_unparseable_list_output_is_an_error_recorded_on_the_prompt(tmp_path):
    with FakeOpenAIServer(lambda body: "I cannot think of several answers.") as server:
        assert run_cli("generate", tmp_path, "builtin", "generation.backend=openai",
                       "generation.model=m", "generation.mode=list",
                       f"generation.base_url={server.base_url}") == 0
    store = Store(tmp_path)
    events = list(store.db["prompt_events"].rows)
    assert len(events) == 2 and {e["kind"] for e in events} == {"error"}
    assert all("expected 5" in e["reason"] for e in events)
    assert store.db["responses"].count == 0


def test_api_key_never_reaches_the_store(tmp_path, monkeypatch):
    secret = "sk-UDASA-secret-0123456789"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    with FakeOpenAIServer(lambda body: f"reply {body['_choice_index']} about tea") as server:
        assert run_cli("run", tmp_path, "builtin", "generation.backend=openai",
                       "generation.model=m", f"generation.base_url={server.base_url}") == 0
        assert server.requests[0]["headers"]["authorization"] == f"Bearer {secret}"
    store = Store(tmp_path)
    assert store.db["responses"].count == 10
    store.db.execute("PRAGMA wal_checkpoint(FULL)")
    for f in tmp_path.rglob("*"):
        if f.is_file():
            assert secret.encode() not in f.read_bytes(), f


def test_training_an_api_policy_needs_a_local_model(tmp_path, capsys):
    with FakeOpenAIServer() as server:
        assert run_cli("run", tmp_path, "builtin", "generation.backend=openai",
                       "generation.model=m", f"generation.base_url={server.base_url}",
                       "training.enabled=true") == 2
    assert "training.model" in capsys.readouterr().out
