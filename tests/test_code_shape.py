"""Functions short enough to read at once: none over 60 lines in the project's packages."""

from __future__ import annotations

import ast

from test_imports import project_modules

MAX_LINES = 60


def long_functions(max_lines: int = MAX_LINES) -> list[str]:
    """`path:line name (n lines)` for every function or method longer than `max_lines`."""
    found = []
    for path in project_modules().values():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > max_lines:
                    found.append(f"{path.name}:{node.lineno} {node.name} ({n} lines)")
    return found


def test_no_function_is_over_60_lines():
    assert long_functions() == []


def test_the_check_sees_a_long_function(tmp_path, monkeypatch):
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_LINES))
    (tmp_path / "long.py").write_text(f"def too_long():\n{body}\n", encoding="utf-8")
    monkeypatch.setattr("test_code_shape.project_modules", lambda: {"long": tmp_path / "long.py"})
    assert long_functions() == ["long.py:1 too_long (61 lines)"]
