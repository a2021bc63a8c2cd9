"""The README and the guides in docs/ point at things that exist, and the README's command
examples are accepted by their commands' parsers (nothing is run)."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
REPO_PATH = re.compile(r"(?<![\w/.<>-])((?:configs|docs|bench)/[\w./*<>{},-]*)")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.DOTALL | re.MULTILINE)
PROGRAMS = ("udasa", "udasa-eval", "udasa-app")
SHELL_STOP = {">", ">>", "<", "|", "&&", "||", ";", "&"}
# Files a guide tells the reader to write, named where they will live.
TO_BE_WRITTEN = {"configs/baselines/longest.yaml"}  # docs/extending.md: a method's config


def _rel(page: Path) -> str:
    return str(page.relative_to(ROOT))


def _without_code_blocks(text: str) -> str:
    """The page's prose: links in code blocks are code, not links."""
    return FENCE.sub("", text)


def _trim(path: str) -> str:
    """A path as named in running text: without the punctuation after it."""
    while path and (path[-1] in ".,;:)]" or (path[-1] == "}" and
                                               path.count("}") > path.count("{"))):
        path = path[:-1]
    return path


def _exists(pattern: str) -> bool:
    """Whether a path, possibly with `*`, `<placeholder>` or `{a,b}` parts, names a file."""
    pattern = re.sub(r"<[^>]*>", "*", pattern)
    alternatives = [pattern]
    while any("{" in p for p in alternatives):
        expanded = []
        for p in alternatives:
            m = re.search(r"\{([^{}]*)\}", p)
            if not m:
                expanded.append(p.replace("{", "").replace("}", ""))
                continue
            expanded += [p[:m.start()] + part + p[m.end():] for part in m.group(1).split(",")]
        alternatives = expanded
    return any(any(ROOT.glob(p)) if "*" in p else (ROOT / p).exists() for p in alternatives)


def test_the_readme_is_a_short_front_page():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    lines = len(text.splitlines())
    assert lines <= 160, f"README.md has {lines} lines; move detail into docs/"
    first = FENCE.search(text).group(2).splitlines()  # the two set-up commands come first
    assert first[0].startswith("make demo") and first[1].startswith("make test")


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_every_relative_link_exists(page):
    missing = []
    for target in LINK.findall(_without_code_blocks(page.read_text(encoding="utf-8"))):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # a URL or an anchor on the same page
        path = (page.parent / target.split("#", 1)[0]).resolve()
        if not path.exists():
            missing.append(target)
    assert not missing, f"{_rel(page)}: links to missing files: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_every_named_repository_path_exists(page):
    missing = []
    for raw in REPO_PATH.findall(page.read_text(encoding="utf-8")):
        path = _trim(raw)
        if path not in TO_BE_WRITTEN and not _exists(path):
            missing.append(path)
    assert not missing, f"{_rel(page)}: names paths that do not exist: {sorted(set(missing))}"


def command_lines(text: str) -> list[list[str]]:
    """Every `udasa`, `udasa-eval` or `udasa-app` command in the page's shell code blocks, as
    argv (comments, continuation lines and shell redirections handled)."""
    commands = []
    for lang, body in FENCE.findall(text):
        if lang not in ("", "bash", "sh", "shell", "console"):
            continue
        for line in body.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if not words or words[0] not in PROGRAMS:
                continue
            for i, word in enumerate(words):
                if word in SHELL_STOP or word.startswith((">", "2>")):
                    words = words[:i]
                    break
            commands.append(words)
    return commands


def _parser(program: str) -> argparse.ArgumentParser:
    from udasa.cli_common import add_plugin_option

    if program == "udasa":
        from udasa.cli import build_parser
    elif program == "udasa-eval":
        from evals.cli import build_parser
    else:
        from app.cli import build_parser
    parser = build_parser()
    add_plugin_option(parser)
    return parser


class _Rejected(Exception):
    pass


def _reject(message: str):
    raise _Rejected(message)


def parse_error(argv: list[str]) -> str | None:
    """None when the command's own parser accepts `argv`, else argparse's message."""
    from udasa.cli_common import split_plugins

    parser = _parser(argv[0])
    parsers = [parser] + [sub for action in parser._actions
                          if isinstance(action, argparse._SubParsersAction)
                          for sub in action.choices.values()]
    for p in parsers:  # report instead of printing usage and exiting
        p.error = _reject
    _, rest = split_plugins(argv[1:])
    try:
        parser.parse_args(rest)
    except _Rejected as exc:
        return str(exc)
    return None


README_COMMANDS = command_lines((ROOT / "README.md").read_text(encoding="utf-8"))


def test_the_readme_shows_each_of_the_three_jobs():
    programs = {argv[0] for argv in README_COMMANDS}
    assert programs == set(PROGRAMS)
    assert any(argv[:2] == ["udasa-eval", "run"] and "--experiment" in argv
               for argv in README_COMMANDS)


@pytest.mark.parametrize("argv", README_COMMANDS, ids=lambda argv: " ".join(argv)[:60])
def test_readme_command_parses(argv):
    assert parse_error(argv) is None, f"`{' '.join(argv)}`: {parse_error(argv)}"


def test_guide_commands_parse():
    """The guides' shell examples too: a renamed flag breaks them all the same."""
    bad = []
    for page in PAGES[1:]:
        for argv in command_lines(page.read_text(encoding="utf-8")):
            if (message := parse_error(argv)) is not None:
                bad.append(f"{_rel(page)}: `{' '.join(argv)}`: {message}")
    assert not bad, "\n".join(bad)


def test_the_checks_catch_what_they_should():
    """A misspelt flag, an unknown subcommand and a missing path are reported."""
    assert parse_error(["udasa", "run", "--worksapce", "ws"]) is not None
    assert parse_error(["udasa-eval", "runn"]) is not None
    assert parse_error(["udasa-app", "--port", "x"]) is not None
    assert parse_error(["udasa-eval", "run", "--experiment", "f.yaml", "--plugin", "m.py"]) is None
    assert command_lines("```bash\nudasa-app hash-password > a.hash   # note\n"
                         "udasa run \\\n  --set a=1\n```\n") == [
        ["udasa-app", "hash-password"], ["udasa", "run", "--set", "a=1"]]
    assert _exists("configs/experiments/*.yaml") and _exists("bench/results/<name>.md")
    assert _exists("configs/{cpu-demo,paper}.yaml")
    assert not _exists("configs/experiments/nope.yaml")
    assert _trim("configs/cpu-demo.yaml},") == "configs/cpu-demo.yaml"
    assert _trim("configs/{cpu-demo,paper}.yaml.") == "configs/{cpu-demo,paper}.yaml"
