"""No import cycles among the project's modules (udasa, evals, attacks, app).

The graph is read from the source with `ast`: each module's imports at module level (inside
`try` / `if` blocks too), leaving out imports inside functions and `if TYPE_CHECKING:` blocks,
which run later or never. Extensions find each other through `udasa.registry`, never by
importing one another in a loop.
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("udasa", "evals", "attacks", "app")


def project_modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the project's packages."""
    out = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _is_type_checking(node: ast.If) -> bool:
    return "TYPE_CHECKING" in ast.unparse(node.test)


def _imported(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> set[str]:
    """The dotted names an import statement may load (a `from X import y` may load X.y)."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names}
    base = node.module or ""
    if node.level:
        here = module.split(".") if is_package else module.split(".")[:-1]
        here = here[:len(here) - (node.level - 1)]
        base = ".".join([*here, *([node.module] if node.module else [])])
    return {base, *(f"{base}.{alias.name}" for alias in node.names)}


def module_level_imports(module: str, path: Path) -> set[str]:
    found: set[str] = set()
    is_package = path.name == "__init__.py"

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                continue  # runs later, when called
            if isinstance(child, ast.If) and _is_type_checking(child):
                continue  # never runs
            if isinstance(child, ast.Import | ast.ImportFrom):
                found.update(_imported(child, module, is_package))
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8"), str(path)))
    return found


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: {m for m in module_level_imports(name, path) if m in modules and m != name}
            for name, path in modules.items()}


def test_the_graph_sees_the_imports():
    graph = import_graph()
    assert "udasa.registry" in graph["udasa.scorers.base"]
    assert "evals.judges.base" in graph["evals.judges.hf_backend"]
    assert "evals.tasks.robustness" not in graph["evals.runner"]  # found through the registry


def test_no_import_cycles():
    try:
        order = list(graphlib.TopologicalSorter(import_graph()).static_order())
    except graphlib.CycleError as exc:
        raise AssertionError(f"import cycle: {' -> '.join(exc.args[1])}") from None
    assert set(order) == set(project_modules())


def test_judges_base_imports_no_backend():
    """The judge backends register themselves: the judge interface imports none of them, even
    inside a function."""
    text = (REPO / "evals" / "judges" / "base.py").read_text(encoding="utf-8")
    assert "_backend import" not in text and "learned.backend" not in text
