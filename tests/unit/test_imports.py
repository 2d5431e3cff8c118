"""The walls between the layers: no import cycle in the package (not even one dodged by an import inside a
function), and the package never imports the flows or the stages above it."""

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
        "from rezero import tracking\n"
        "from rezero.retrieval import Hit\n"
        "def late():\n"
        "    from rezero.checkpoints import RUN_FILE\n"
    )
    assert imported_modules(source) == {"rezero.tracking", "rezero.retrieval", "rezero.checkpoints"}


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
