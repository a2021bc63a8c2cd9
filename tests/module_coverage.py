"""A pytest plugin that lists the modules of udasa/, evals/, attacks/ and app/ that a test run
never ran a function of (importing a module does not count; code run in subprocesses is not
seen). Used to check that the fast suite still touches every module:

    PYTHONPATH=.:tests .venv/bin/python -m pytest -p module_coverage -q

It records the file of every Python function call (`sys.settrace` 'call' events, no line
tracing), so a run is somewhat slower than without it.
"""

from __future__ import annotations

import ast
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("udasa", "evals", "attacks", "app")
CO_OPTIMIZED = 0x1  # set on function code objects, not on module or class bodies
_called: set[str] = set()


def _trace(frame, event, arg):
    if frame.f_code.co_flags & CO_OPTIMIZED:
        _called.add(frame.f_code.co_filename)


def _has_functions(path: Path) -> bool:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return any(isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) for n in ast.walk(tree))


def idle_modules() -> list[str]:
    """Modules (with at least one function) none of whose functions ran."""
    files = sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))
    return [str(p.relative_to(ROOT)) for p in files
            if str(p) not in _called and _has_functions(p)]


def pytest_configure(config) -> None:
    sys.settrace(_trace)
    threading.settrace(_trace)


def pytest_terminal_summary(terminalreporter) -> None:
    sys.settrace(None)
    threading.settrace(None)
    idle = idle_modules()
    total = sum(1 for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py") if _has_functions(p))
    terminalreporter.write_line(f"module_coverage: {total - len(idle)} of {total} modules ran "
                                f"a function; none ran in: {', '.join(idle) or '(none)'}")
