"""The project's import graph, read from the source with `ast`: every `import` and `from ... import`
statement counts, those inside functions included (they run when the function does). Walked by
tests/unit/test_imports.py (no cycles) and tests/unit/test_stage_dependencies.py (dvc.yaml deps)."""

from __future__ import annotations

import ast
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "rezero"


def module_file(name: str) -> Path | None:
    """`rezero.a.b` → rezero/a/b.py or rezero/a/b/__init__.py; None for anything outside the package."""
    parts = name.split(".")
    if parts[0] != PACKAGE:
        return None
    base = PROJECT_ROOT.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def module_name(path: Path) -> str:
    parts = list(path.resolve().relative_to(PROJECT_ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _from_base(node: ast.ImportFrom, path: Path) -> str:
    """The module a `from X import ...` names, relative imports resolved against `path`'s package."""
    if not node.level:
        return node.module or ""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    package = package[: len(package) - (node.level - 1)]
    return ".".join([*package, *([node.module] if node.module else [])])


def imported_modules(path: Path) -> set[str]:
    """The package's modules that the import statements of `path` name: for `from X import a`, the module
    X.a when there is one, else X. A statement naming a package module that does not exist fails."""
    named: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            named |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = _from_base(node, path)
            for alias in node.names:
                named.add(f"{base}.{alias.name}" if module_file(f"{base}.{alias.name}") else base)
    ours = {name for name in named if name.split(".")[0] == PACKAGE}
    unknown = sorted(name for name in ours if module_file(name) is None)
    assert not unknown, f"{path}: imports {unknown}, which are not modules of {PACKAGE}/"
    return ours


def import_graph() -> dict[str, set[str]]:
    """Each module of the package → the package's modules it imports (itself left out)."""
    graph = {}
    for path in sorted((PROJECT_ROOT / PACKAGE).rglob("*.py")):
        name = module_name(path)
        graph[name] = imported_modules(path) - {name}
    return graph


def parents(name: str) -> list[str]:
    """The packages whose __init__.py runs before `name` does: `a.b.c` → `a`, `a.b`."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def reached_files(script: Path) -> set[Path]:
    """The package's files that running `script` may import: its imports, theirs, and so on, with every
    package __init__.py on the way (importing rezero.retrieval.base runs rezero/retrieval/__init__.py)."""
    graph = import_graph()
    todo = list(imported_modules(script))
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo += [*graph[name], *parents(name)]
    return {module_file(name) for name in seen}  # type: ignore[misc]


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as the modules along it (`[a, b, a]`), or None."""
    state: dict[str, str] = {}  # "open" while on the current path, "done" after

    def visit(name: str, path: list[str]) -> list[str] | None:
        state[name] = "open"
        for target in sorted(graph.get(name, ())):
            if state.get(target) == "open":
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := visit(target, [*path, target])):
                return cycle
        state[name] = "done"
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start, [start])):
            return cycle
    return None
