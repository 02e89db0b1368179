"""The house keeps its shape: no import circle, imports run one way (``checks`` and
``ticketing`` never import ``monitor``; ``web`` never imports the agent), and no module in
``monitor/`` grows past about 400 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("monitor", "checks", "ticketing")
MAX_LINES = 420


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {
        module_name(path): path for package in PACKAGES for path in (ROOT / package).rglob("*.py")
    }


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The project's modules ``path`` imports, wherever the import stands (inside functions
    too): ``from a.b import c`` counts as ``a.b.c`` when that is a module, else ``a.b``."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [
                f"{node.module}.{alias.name}"
                if f"{node.module}.{alias.name}" in known
                else node.module
                for alias in node.names
            ]
        else:
            continue
        found |= {name for name in names if name in known}
    return found


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: imports_of(path, known) - {name} for name, path in found.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for child in edges.get(node, ()):
            if child not in index:
                visit(child)
                low[node] = min(low[node], low[child])
            elif child in on_stack:
                low[node] = min(low[node], index[child])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_no_import_circle() -> None:
    assert cycles(graph()) == []


def test_the_checker_finds_a_circle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("package", ["checks", "ticketing"])
def test_probes_and_integrations_never_import_the_agent(package: str) -> None:
    upward = {
        name: sorted(i for i in imported if i.startswith("monitor"))
        for name, imported in graph().items()
        if name.startswith(package)
    }
    assert {name: found for name, found in upward.items() if found} == {}


def test_the_web_room_reads_the_agent_through_a_view_only() -> None:
    edges = graph()
    web = {name: imported for name, imported in edges.items() if name.startswith("monitor.web")}
    assert all("monitor.agent" not in imported for imported in web.values())


def test_no_module_in_monitor_grows_past_about_400_lines() -> None:
    long = {
        name: count
        for name, path in modules().items()
        if name.startswith("monitor") and (count := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}
