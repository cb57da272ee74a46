"""The structure the README promises: no import circle between zoolite's modules (imports inside
functions included), and a registry that names every target's family and role."""

from __future__ import annotations

import ast
from pathlib import Path

import zoolite
from zoolite.targets import FAMILIES, TARGETS

PACKAGE = Path(zoolite.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """zoolite module -> the zoolite modules it imports anywhere in its file."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        imported = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("zoolite"):
                # `from zoolite import storage` imports the module zoolite.storage
                imported |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                             for a in node.names}
            elif isinstance(node, ast.Import):
                imported |= {a.name for a in node.names if a.name.startswith("zoolite")}
        graph[name] = {m for m in imported if m in modules and m != name}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path + [node, nxt]
            if nxt not in state and (found := visit(nxt, path + [node])):
                return found
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start, [])):
            return found
    return None


def test_no_module_imports_a_module_that_imports_it():
    graph = import_graph()
    assert "zoolite.reporting" in graph and "zoolite.html_report" in graph["zoolite.reporting"]
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_the_checker_finds_a_circle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_every_target_has_a_family_module_and_one_reference():
    assert [t.name for t in TARGETS.values() if not t.shippable] == ["keras"]
    for target in TARGETS.values():
        assert FAMILIES[target.family.suffix] is target.family
        assert hasattr(target.family.implementation(), "open")
        if target.shippable:
            assert hasattr(target.family.implementation(), "Converter")
