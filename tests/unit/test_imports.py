"""The walls between the layers: no import cycle in the package (not even one dodged by an import inside a
function), the package never imports the flows or the stages above it, no module imports a level above its
own, and no function runs past 60 lines."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.unit.import_graph import PACKAGE, PROJECT_ROOT, find_cycle, import_graph, imported_modules


def test_the_package_has_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle in the package: " + " → ".join(cycle or [])


def test_the_cycle_finder_names_the_modules_along_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_imports_inside_functions_and_submodules_named_by_from_count(tmp_path: Path):
    source = tmp_path / "mod.py"
    source.write_text(
        "import json\n"
        "from rezero.external import tracking\n"
        "from rezero.retrieval import Hit\n"
        "def late():\n"
        "    from rezero.training.checkpoints import RUN_FILE\n"
    )
    assert imported_modules(source) == {
        "rezero.external.tracking",
        "rezero.retrieval",
        "rezero.training.checkpoints",
    }


def test_the_package_never_imports_flows_or_stages():
    above = []
    for path in sorted((PROJECT_ROOT / PACKAGE).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            above += [
                f"{path.relative_to(PROJECT_ROOT)}: {n}"
                for n in names
                if n.split(".")[0] in {"flows", "stages"}
            ]
    assert not above, f"the package imports the layers above it: {above}"


# The package's levels, lowest first (README, Layout): a module imports its own level and those below only.
LEVELS = ["core", "external", "data", "retrieval", "synthesis", "episode", "training", "evaluation", "cli"]


def level(module: str) -> int:
    parts = module.split(".")
    return LEVELS.index(parts[1]) if len(parts) > 1 else -1  # `rezero` itself: the package's docstring


def test_each_module_imports_only_its_own_level_and_those_below():
    upward = [
        f"{module} → {imported}"
        for module, imports in import_graph().items()
        for imported in imports
        if level(imported) > level(module)
    ]
    assert not upward, f"imports that go up a level: {upward}"
    assert {module.split(".")[1] for module in import_graph() if "." in module} == set(LEVELS)


def test_no_function_is_longer_than_60_lines():
    folders = (PACKAGE, "stages", "flows", "benchmarks")
    long = [
        f"{path.relative_to(PROJECT_ROOT)}: {node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for folder in folders
        for path in sorted((PROJECT_ROOT / folder).rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno >= 60
    ]
    assert not long, f"functions over 60 lines (split them where a step of the story ends): {long}"
