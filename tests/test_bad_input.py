"""Bad input gets a clear error naming file and row, and never touches the store."""

from __future__ import annotations

import json
from contextlib import closing
from pathlib import Path

import pytest
from conftest import REPO, small_overrides
from openai_server import FakeOpenAIServer

from udasa.cli import main
from udasa.integrity import read_only
from udasa.store import Store

CONFIG = REPO / "configs" / "cpu-demo.yaml"


def run_cli(step: str, workspace, source, *extra: str) -> int:
    args = [step, "--config", str(CONFIG), "--workspace", str(workspace),
            "--set", f"data.source={source}"]
    for item in small_overrides(limit=2) + list(extra):
        args += ["--set", item]
    return main(args)


# name -> content, written as `input<suffix>`: nothing in the file's name can stand in for
# the reason the error gives
BAD_DATASETS = {
    "malformed.jsonl": b'{"prompt": "ok"}\n{"prompt": "broken"\n',
    "empty.jsonl": b"",
    "missing_column.csv": b"title,year\nJaws,1975\n",
    "latin1.csv": 'prompt\nok\ncaf\xe9 au lait\n'.encode("latin-1"),
    "list_of_numbers.json": b"[1, 2, 3]",
}


@pytest.mark.parametrize("name", list(BAD_DATASETS))
def test_bad_dataset_file_is_a_clear_error_and_the_store_is_untouched(
        name, frozen, tmp_path, capsys, tiny_policy):
    data = BAD_DATASETS[name]
    path = tmp_path / ("input" + Path(name).suffix)
    path.write_bytes(data)
    before = frozen[1]()
    code = run_cli("generate", frozen[0], path, f"generation.model={tiny_policy}")
    assert_refused(code, capsys, path, expect("dataset", name), frozen, before)


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
    assert {p.text for p in store.run_prompts(store.latest_run().id)} == {
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


# --- the malformed-input corpus: every command that reads a file ---------------------------
HUGE = 100 * 1024 * 1024  # a 100 MB line


def _write_huge(path, head: bytes, tail: bytes) -> None:
    """`head` + 100 MB of "a" + `tail`, on one line, written in chunks."""
    chunk = b"a" * (1 << 20)
    with open(path, "wb") as f:
        f.write(head)
        f.writelines(chunk for _ in range(HUGE // len(chunk)))
        f.write(tail)


# kind -> (file suffix, content; None = the 100 MB line), per file family
SETTINGS = {  # YAML settings files (run, judge, GCG, robustness, baseline configs, users)
    "bad-yaml": (".yaml", b"a: [1, 2\nb: {c\n"),
    "empty": (".yaml", b""),
    "non-utf8": (".yaml", b"name: caf\xe9\n"),
    "top-level-list": (".yaml", b"- 1\n- 2\n"),
    "100MB-line": (".yaml", None),
}
DATA = {  # prompt files (udasa run data.source, udasa-eval --data)
    "bad-json": (".json", b'[{"prompt": "a"}, {"prompt": }]'),
    "bad-jsonl": (".jsonl", b'{"prompt": "a"}\n{"prompt": "b"\n'),
    "bad-csv": (".csv", b'prompt\n"ok"\n"nul \x00 inside"\n'),
    "wrong-type": (".jsonl", b'{"prompt": 5}\n{"prompt": [1, 2]}\n'),
    "empty": (".jsonl", b""),
    "non-utf8": (".csv", b"prompt\nfine\ncaf\xe9\n"),
    "missing-column": (".csv", b"title,year\nJaws,1975\n"),
    "100MB-line": (".jsonl", None),
    "100MB-csv-field": (".csv", None),
}


def corpus_file(tmp_path, family: dict, kind: str):
    suffix, content = family[kind]
    path = tmp_path / f"input{suffix}"
    if content is not None:
        path.write_bytes(content)
    elif suffix == ".yaml":
        _write_huge(path, b"name: ", b"\n")
    elif suffix == ".csv":
        _write_huge(path, b"prompt\n", b"\n")
    else:
        _write_huge(path, b'{"prompt": "', b'"}\n')
    return path


@pytest.fixture(scope="module")
def frozen(tmp_path_factory, tiny_policy):
    """A workspace holding a finished small run (tiny policy), its WAL folded in, and a
    fingerprint of every byte of it."""
    import hashlib
    import sqlite3

    populated = tmp_path_factory.mktemp("frozen")
    assert run_cli("run", populated, "builtin", f"generation.model={tiny_policy}") == 0
    import attacks.store_tables  # noqa: F401  (the tables every `udasa-eval` use sets up first,
    import evals.store_tables  # noqa: F401   empty, whatever its input: in place before)

    Store(populated).close()
    with sqlite3.connect(populated / Store.FILENAME) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def fingerprint():
        """Every row of the store, read through SQLite (what is in its WAL included), and
        every other file's bytes."""
        files = {str(p.relative_to(populated)): hashlib.sha256(p.read_bytes()).hexdigest()
                 for p in sorted(populated.rglob("*"))
                 if p.is_file() and not p.name.startswith(Store.FILENAME)}
        with closing(read_only(populated / Store.FILENAME)) as conn:
            tables = [r[0] for r in conn.execute("select name from sqlite_master "
                                                 "where type = 'table' order by name")]
            rows = {t: sorted(map(repr, conn.execute(f"select * from {t}"))) for t in tables}
        return files, rows
    return populated, fingerprint


def assert_refused(code: int, capsys, path, reason: str, frozen_ws=None, before=None) -> None:
    """Exit 2, one `error:` line naming `path` and giving `reason`, no traceback; with
    `frozen_ws`, the workspace exactly as it was (`before`)."""
    out, err = capsys.readouterr()
    assert code == 2, out + err
    assert "Traceback" not in out + err
    lines = [line for line in (out + err).splitlines() if line.startswith("error:")]
    assert len(lines) == 1, out + err
    assert str(path) in lines[0], lines[0]
    assert reason in lines[0], (reason, lines[0])
    if frozen_ws is not None:
        assert frozen_ws[1]() == before


# (family, kind) -> the reason the one error line must give, word for word (the files are
# named neutrally: input.csv, settings.yaml, ...). "settings" holds what every settings file
# shares; a family's own entry wins.
TOO_BIG = "is 104,857,607 bytes; at most 1,000,000 are read"
DATA_REASONS = {
    "bad-json": "invalid JSON at line 1 column 30", "bad-jsonl": "line 2: invalid JSON",
    "bad-csv": "line 3: NUL byte at offset 17", "wrong-type": "line 1: non-string value (int)",
    "empty": "file is empty", "non-utf8": "line 3: not valid UTF-8",
    "missing-column": "missing text column (one of prompt, text, question",
    "100MB-line": "line 1: prompt is 104,857,600 characters; at most 1,000,000 are accepted",
    "100MB-csv-field": "line 1: malformed CSV (field larger than field limit"}
REASONS: dict[tuple[str, str], str] = {
    ("settings", "bad-yaml"): "line 2 column 2: invalid YAML",
    ("settings", "non-utf8"): "line 1: not valid UTF-8",
    ("settings", "top-level-list"): "expected a mapping of fields at the top level, got list",
    **{(family, kind): f"{what} {'is empty' if kind == 'empty' else TOO_BIG}"
       for family, what in (("run-config", "config file"), ("judge-config", "judge config"),
                            ("gcg-config", "GCG config"),
                            ("robustness-config", "robustness config"),
                            ("baseline-config", "method config"),
                            ("experiment", "experiment file"), ("users", "users file"))
       for kind in ("empty", "100MB-line")},
    ("dataset", "malformed.jsonl"): "line 2: invalid JSON",
    ("dataset", "empty.jsonl"): "file is empty",
    ("dataset", "missing_column.csv"): "missing text column (one of prompt",
    ("dataset", "latin1.csv"): "line 3: not valid UTF-8",
    ("dataset", "list_of_numbers.json"): "columns present: none",
    **{(family, kind): reason for family in ("data", "eval-data-harmlessness",
                                             "eval-data-sentiment", "eval-data-truthfulness")
       for kind, reason in DATA_REASONS.items()},
    ("run-config", "wrong-type"): "generation.n: expected int, got 'three'",
    ("run-config", "unknown-field"): "generation.nn: unknown field",
    ("behaviours", "bad-csv"): "line 2: NUL byte at offset 14",
    ("behaviours", "empty"): "file is empty",
    ("behaviours", "non-utf8"): "line 3: not valid UTF-8",
    ("behaviours", "missing-column"): "missing column(s) ['target']",
    ("behaviours", "missing-field"): "line 2: empty goal or target",
    ("behaviours", "100MB-csv-field"): "line 1: malformed CSV (field larger than field limit",
    ("truthfulqa-mc", "bad-json"): "line 1 column 20: invalid JSON",
    ("truthfulqa-mc", "empty"): "file is empty",
    ("truthfulqa-mc", "non-utf8"): "line 1: not valid UTF-8",
    ("truthfulqa-mc", "wrong-type"): "expected a non-empty JSON list of TruthfulQA MC rows",
    ("truthfulqa-mc", "missing-field"): "row 1: missing field(s) ['mc1_targets', 'mc2_targets']",
    ("judge-config", "wrong-type"): "max_retries: expected int, got 'many'",
    ("judge-config", "unknown-field"): "retries: unknown field",
    ("judge-config", "missing-field"): "model: missing (a required field)",
    ("judge-config", "bad-scale"): "templates.harmless.scale: '1-5' is not one of",
    ("judge-config", "missing-prompt-file"): "nowhere.txt: prompt file of template 'harmless'",
    ("gcg-config", "wrong-type"): "num_steps: expected int, got 'ten'",
    ("gcg-config", "unknown-field"): "num_stepz: unknown field",
    ("robustness-config", "wrong-type"): "n_train: expected int, got 'five'",
    ("robustness-config", "unknown-field"): "modes: unknown field",
    ("baseline-config", "wrong-type-training"): "training.epochs: expected float, got 'lots'",
    ("baseline-config", "unknown-field"): "temprature: unknown field",
    ("experiment", "wrong-type"): "seed: expected int, got 'zero'",
    ("experiment", "unknown-field"): "nmae: unknown field",
    ("experiment", "missing-field"): "needs at least one method and one task",
    ("users", "top-level-list"): "expected `users: {NAME: {password_hash: ...}}`",
    ("users", "wrong-type"): "users.bob: password_hash of 'bob' is not a bcrypt hash",
    ("users", "missing-field"): "users.bob: password_hash of 'bob' is not a bcrypt hash",
    ("users", "unknown-field"): "users.bob: unknown field(s) ['role']",
}


def expect(family: str, kind: str) -> str:
    return REASONS.get((family, kind)) or REASONS[("settings", kind)]


RUN_CONFIG_CASES = [*SETTINGS, "wrong-type", "unknown-field"]


@pytest.mark.parametrize("kind", RUN_CONFIG_CASES)
def test_udasa_run_config_corpus(kind, frozen, tmp_path, capsys):
    if kind == "wrong-type":
        path = tmp_path / "settings.yaml"
        path.write_text("generation:\n  n: three\n")
    elif kind == "unknown-field":
        path = tmp_path / "settings.yaml"
        path.write_text("generation:\n  nn: 3\n")
    else:
        path = corpus_file(tmp_path, SETTINGS, kind)
    before = frozen[1]()
    code = main(["run", "--config", str(path), "--workspace", str(frozen[0])])
    assert_refused(code, capsys, path, expect("run-config", kind), frozen, before)


@pytest.mark.parametrize("kind", list(DATA))
def test_udasa_run_data_corpus(kind, frozen, tmp_path, capsys, tiny_policy):
    path = corpus_file(tmp_path, DATA, kind)
    before = frozen[1]()
    code = run_cli("run", frozen[0], path, f"generation.model={tiny_policy}")
    assert_refused(code, capsys, path, expect("data", kind), frozen, before)


def eval_main(args):
    from evals.cli import main as eval_cli

    return eval_cli(["run", "--models", "base", "--limit", "2", *args])


@pytest.mark.parametrize("task", ["harmlessness", "sentiment", "truthfulness"])
@pytest.mark.parametrize("kind", list(DATA))
def test_udasa_eval_data_corpus(task, kind, frozen, tmp_path, capsys):
    path = corpus_file(tmp_path, DATA, kind)
    good = tmp_path / "good.jsonl"  # a task listed first, with a good file: it must not run
    good.write_text('{"prompt": "Name a colour."}\n')
    before = frozen[1]()
    code = eval_main(["--tasks", "helpfulness", task, "--data", f"{task}={path}",
                      "--data", f"helpfulness={good}", "--workspace", str(frozen[0])])
    assert_refused(code, capsys, path, expect(f"eval-data-{task}", kind), frozen, before)


BEHAVIOURS = {  # robustness CSV (goal, target)
    "bad-csv": (".csv", b'goal,target\n"a\x00b",c\n'),
    "empty": (".csv", b""),
    "non-utf8": (".csv", b"goal,target\nok,Sure\ncaf\xe9,Sure\n"),
    "missing-column": (".csv", b"goal,answer\nx,y\n"),
    "missing-field": (".csv", b"goal,target\nx,\n"),
    "100MB-csv-field": (".csv", None),
}


@pytest.mark.parametrize("kind", list(BEHAVIOURS))
def test_robustness_behaviours_corpus(kind, frozen, tmp_path, capsys):
    suffix, content = BEHAVIOURS[kind]
    path = tmp_path / f"input{suffix}"
    if content is None:
        _write_huge(path, b"goal,target\n", b",Sure\n")
    else:
        path.write_bytes(content)
    before = frozen[1]()
    code = eval_main(["--tasks", "robustness", "--data", f"robustness={path}",
                      "--workspace", str(frozen[0])])
    assert_refused(code, capsys, path, expect("behaviours", kind), frozen, before)


MC = {  # truthfulqa_mc's mc_task.json
    "bad-json": (".json", b'[{"question": "q", '),
    "empty": (".json", b""),
    "non-utf8": (".json", b'[{"question": "caf\xe9"}]'),
    "wrong-type": (".json", b'{"question": "q"}'),
    "missing-field": (".json", b'[{"question": "q"}]'),
}


@pytest.mark.parametrize("kind", list(MC))
def test_truthfulqa_mc_data_corpus(kind, frozen, tmp_path, capsys):
    suffix, content = MC[kind]
    path = tmp_path / f"input{suffix}"
    path.write_bytes(content)
    before = frozen[1]()
    code = eval_main(["--tasks", "truthfulqa_mc", "--data", f"truthfulqa_mc={path}",
                      "--workspace", str(frozen[0])])
    assert_refused(code, capsys, path, expect("truthfulqa-mc", kind), frozen, before)


def _settings_case(tmp_path, kind: str, specials: dict[str, str]):
    """A settings-file corpus case: the shared ones, or a file-specific one (`specials`)."""
    if kind in specials:
        path = tmp_path / "settings.yaml"
        path.write_text(specials[kind])
        return path
    return corpus_file(tmp_path, SETTINGS, kind)


JUDGE_SPECIALS = {
    "wrong-type": "name: j\nbackend: hf\nmodel: embedded\nlabel: j\nmax_retries: many\n",
    "unknown-field": "name: j\nbackend: hf\nmodel: embedded\nlabel: j\nretries: 3\n",
    "missing-field": "name: j\nbackend: hf\nlabel: j\n",
    "bad-scale": ("name: j\nbackend: hf\nmodel: embedded\nlabel: j\n"
                  "templates: {harmless: {file: p.txt, scale: 1-5}}\n"),
    "missing-prompt-file": ("name: j\nbackend: hf\nmodel: embedded\nlabel: j\n"
                            "templates: {harmless: {file: nowhere.txt, scale: 1-10}}\n"),
}


@pytest.mark.parametrize("kind", [*SETTINGS, *JUDGE_SPECIALS])
def test_judge_config_corpus(kind, frozen, tmp_path, capsys):
    path = _settings_case(tmp_path, kind, JUDGE_SPECIALS)
    before = frozen[1]()
    good = tmp_path / "good.jsonl"
    good.write_text('{"prompt": "Name a colour."}\n')
    code = eval_main(["--tasks", "harmlessness", "--judge", str(path), "--data",
                      f"harmlessness={good}", "--workspace", str(frozen[0])])
    assert_refused(code, capsys, path, expect("judge-config", kind), frozen, before)


GCG_SPECIALS = {"wrong-type": "num_steps: ten\n", "unknown-field": "num_stepz: 3\n"}


@pytest.mark.parametrize("kind", [*SETTINGS, *GCG_SPECIALS])
def test_gcg_config_corpus(kind, tmp_path, capsys):
    from attacks.cli import main as attack_main

    path = _settings_case(tmp_path, kind, GCG_SPECIALS)
    code = attack_main(["--config", str(path), "--out", str(tmp_path / "out")])
    assert_refused(code, capsys, path, expect("gcg-config", kind))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind", [*SETTINGS, *GCG_SPECIALS])
def test_gcg_config_named_by_a_robustness_config(kind, frozen, tmp_path, capsys):
    gcg = _settings_case(tmp_path, kind, GCG_SPECIALS)
    task = tmp_path / "task.yaml"
    task.write_text(f"mode: white-box\ngcg: {gcg}\n")
    before = frozen[1]()
    code = eval_main(["--tasks", "robustness", "--data", f"robustness={task}",
                      "--workspace", str(frozen[0])])
    assert_refused(code, capsys, gcg, expect("gcg-config", kind), frozen, before)


ROBUSTNESS_SPECIALS = {"wrong-type": "n_train: five\n", "unknown-field": "modes: white-box\n"}


@pytest.mark.parametrize("kind", [*SETTINGS, *ROBUSTNESS_SPECIALS])
def test_robustness_config_corpus(kind, frozen, tmp_path, capsys):
    path = _settings_case(tmp_path, kind, ROBUSTNESS_SPECIALS)
    before = frozen[1]()
    code = eval_main(["--tasks", "robustness", "--data", f"robustness={path}",
                      "--workspace", str(frozen[0])])
    assert_refused(code, capsys, path, expect("robustness-config", kind), frozen, before)


def experiment(tmp_path, methods: str) -> str:
    path = tmp_path / "experiment.yaml"
    path.write_text(f"name: x\npolicy: embedded\nmethods: {methods}\n"
                    "tasks: [{name: harmlessness, limit: 1}]\n")
    return str(path)


@pytest.mark.parametrize("kind", [*SETTINGS, "wrong-type-training", "unknown-field"])
def test_baseline_config_corpus(kind, frozen, tmp_path, capsys):
    """A method's config named by an experiment file: checked before any method is built."""
    from evals.cli import main as eval_cli

    if kind == "wrong-type-training":
        path = tmp_path / "settings.yaml"
        path.write_text("method: rlaif\ntraining:\n  epochs: lots\n")
        methods = f"[{{name: base, kind: base}}, {{name: R, kind: rlaif, config: {path}}}]"
    elif kind == "unknown-field":
        path = tmp_path / "settings.yaml"
        path.write_text("method: rlcd\ntemprature: 0.7\n")
        methods = f"[{{name: R, kind: rlcd, config: {path}}}]"
    else:
        path = corpus_file(tmp_path, SETTINGS, kind)
        methods = f"[{{name: base, kind: base}}, {{name: v, kind: vanilla, config: {path}}}]"
    before = frozen[1]()
    code = eval_cli(["run", "--experiment", experiment(tmp_path, methods),
                     "--workspace", str(frozen[0])])
    assert_refused(code, capsys, path, expect("baseline-config", kind), frozen, before)


EXPERIMENT_SPECIALS = {"wrong-type": "name: x\nseed: zero\n", "unknown-field": "nmae: x\n",
                       "missing-field": "name: x\nmethods: []\ntasks: []\n"}


@pytest.mark.parametrize("kind", [*SETTINGS, *EXPERIMENT_SPECIALS])
def test_experiment_file_corpus(kind, frozen, tmp_path, capsys):
    from evals.cli import main as eval_cli

    path = _settings_case(tmp_path, kind, EXPERIMENT_SPECIALS)
    before = frozen[1]()
    code = eval_cli(["run", "--experiment", str(path), "--workspace", str(frozen[0])])
    assert_refused(code, capsys, path, expect("experiment", kind), frozen, before)


USERS_SPECIALS = {
    "wrong-type": "users:\n  bob: {password_hash: 12, admin: maybe}\n",
    "missing-field": "users:\n  bob: {admin: true}\n",
    "unknown-field": "users:\n  bob: {password_hash: x, role: admin}\n",
}


@pytest.mark.parametrize("kind", [*SETTINGS, *USERS_SPECIALS])
def test_app_users_file_corpus(kind, frozen, tmp_path, capsys):
    from app.cli import main as app_main

    path = _settings_case(tmp_path, kind, USERS_SPECIALS)
    before = frozen[1]()
    code = app_main(["--workspace", str(frozen[0]), "--users", str(path), "--port", "1"])
    assert_refused(code, capsys, path, expect("users", kind), frozen, before)
