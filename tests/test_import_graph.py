"""The product's modules import one another without a cycle: a cycle means two modules
each need the other, so neither can be understood, tested or moved alone. Imports
inside functions and under TYPE_CHECKING count: deferring an import hides a cycle
without removing it."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "envs", "runtime", "storage", "learners", "goals", "distributed", "testing")


def modules() -> dict[str, Path]:
    """Every product module by dotted name (a package by its own name)."""
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            parts = parts[:-1] if parts[-1] == "__init__" else parts
            found[".".join(("autotelic", *parts))] = path
    return found


def imported(node: ast.AST, package: str) -> list[str]:
    """The dotted names an import statement may bind (module and module.name)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = node.module or ""
    if node.level:
        parts = package.split(".")[: len(package.split(".")) - node.level + 1]
        base = ".".join([*parts, base] if base else parts)
    return [base, *(f"{base}.{a.name}" for a in node.names)]


def import_graph() -> dict[str, set[str]]:
    mods = modules()

    def resolve(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        is_package = path.name == "__init__.py"
        package = name if is_package else name.rpartition(".")[0]
        edges = graph.setdefault(name, set())
        for node in ast.walk(ast.parse(path.read_text())):
            for target in imported(node, package):
                found = resolve(target) if target.startswith("autotelic.") else None
                # a package's face re-exporting its own children is not a dependency
                if found and found != name and not (is_package and found.startswith(name + ".")):
                    edges.add(found)
    return graph


def test_the_import_graph_of_the_product_is_acyclic() -> None:
    graph = import_graph()
    assert len(graph) > 100
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as err:
        raise AssertionError("import cycle: " + " -> ".join(err.args[1])) from None
