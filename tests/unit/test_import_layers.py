"""The import graph of fi_spark has no cycle: between modules, and between its packages (issue #21).

Every import counts -- at module level, inside functions (lazy) and under TYPE_CHECKING -- because a cycle
hidden by a lazy import is still two parts of the code that cannot be understood (or moved) one without the
other. Packages are the folders directly under fi_spark/ (a top-level module is its own unit): a stage
family may import the shared machinery below it, never the other way round, and no two families import each
other both ways.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

PACKAGE = REPO / "fi_spark"


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> dict[str, set[str]]:
    """module -> the fi_spark modules it imports (every import statement anywhere in the file)."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    edges: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            for target in targets:
                while target and target not in modules:  # fi_spark.config.Config -> fi_spark.config
                    target = target.rpartition(".")[0]
                if target.startswith("fi_spark") and target != name:
                    edges[name].add(target)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in list(edges):
        if v not in index:
            visit(v)
    return found


def unit(module: str) -> str:
    """fi_spark.ingest.warc -> fi_spark.ingest (a package under fi_spark/); fi_spark.cli stays itself."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 2 or (PACKAGE / parts[-1]).is_dir() else module


def test_no_module_imports_another_that_imports_it_back() -> None:
    assert cycles(imports()) == []


def test_no_package_imports_another_that_imports_it_back() -> None:
    between: dict[str, set[str]] = {}
    for source, targets in imports().items():
        between.setdefault(unit(source), set()).update(unit(t) for t in targets if unit(t) != unit(source))
    assert cycles(between) == []


def test_the_checks_see_a_lazy_cycle(tmp_path: Path) -> None:
    """The graph reads imports inside functions: a cycle hidden by a lazy import is found."""
    edges = {"fi_spark.a": {"fi_spark.b"}, "fi_spark.b": {"fi_spark.a"}, "fi_spark.c": {"fi_spark.a"}}
    assert cycles(edges) == [["fi_spark.a", "fi_spark.b"]]
    source = "def f():\n    from fi_spark.cli import main\n"
    node = ast.parse(source)
    assert [n.module for n in ast.walk(node) if isinstance(n, ast.ImportFrom)] == ["fi_spark.cli"]


def test_the_registry_imports_no_stage() -> None:
    """The registry is read by the CLI (no pyspark) and the loop; it names stage modules, never imports them."""
    assert imports()["fi_spark.stages.registry"] == set()


def test_the_report_is_handed_its_inputs() -> None:
    """The report and the export never read the registry or the loop: the loop hands them a PipelineLayout."""
    edges = imports()
    for module in (m for m in edges if m.startswith(("fi_spark.report", "fi_spark.export"))):
        assert not {t for t in edges[module] if t.startswith(("fi_spark.run", "fi_spark.stages.registry"))}, module
