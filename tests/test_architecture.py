"""The structure docs/architecture.md promises: one package per stage, no import circle between zoolite's modules (imports inside
functions and through importlib included), a registry that names every target's family and role,
and no module outside ``zoolite/targets/`` that tells runtimes apart by a file suffix, a dtype or a
variant name."""

from __future__ import annotations

import ast
from pathlib import Path

import zoolite
from zoolite.targets import FAMILIES, SUFFIXES, TARGETS

PACKAGE = Path(zoolite.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """zoolite module -> the zoolite modules it imports anywhere in its file, by an import statement
    or by naming it in a string (what ``importlib.import_module`` is given)."""
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
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and "." in node.value \
                    and node.value in modules:  # "zoolite" alone is the distribution's name, not an import
                imported.add(node.value)
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
    assert "zoolite.report.reporting" in graph and "zoolite.report.html_report" in graph["zoolite.report.reporting"]
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_the_import_graph_sees_the_family_modules_named_in_the_registry():
    graph = import_graph()
    assert {family.module for family in FAMILIES.values()} <= graph["zoolite.targets"]
    for family in FAMILIES.values():
        assert "zoolite.targets" not in graph[family.module], f"{family.module} imports the registry back"


# Modules outside targets/ that import a family module, one line each with its reason.
FAMILY_IMPORTS_BY_DESIGN = {
    ("zoolite.model.features", "zoolite.targets.litert"): "the features stage runs the frozen backbone as a LiteRT file",
    ("zoolite.runs.pipeline", "zoolite.targets.keras"): "a run saves and reloads its trained Keras models (resume)",
}


def test_no_module_outside_targets_imports_a_family_module_unless_named():
    """Everything else reaches a runtime through the registry (``open_model``, ``Family.implementation``):
    a family module imported elsewhere (by an import or an ``importlib`` string) fails, and so does an
    exemption that no longer happens."""
    graph = import_graph()
    families = {family.module for family in FAMILIES.values()}
    found = {(module, imported) for module, imports in graph.items() if not module.startswith("zoolite.targets")
             for imported in imports & families}
    assert found == set(FAMILY_IMPORTS_BY_DESIGN)


def test_the_checker_finds_a_circle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_every_target_has_a_family_module_and_one_reference():
    assert [t.name for t in TARGETS.values() if not t.shippable] == ["keras"]
    for target in TARGETS.values():
        assert FAMILIES[target.family.name] is target.family and SUFFIXES[target.family.suffix] is target.family
        assert hasattr(target.family.implementation(), "open")
        if target.shippable:
            assert hasattr(target.family.implementation(), "Converter")


# The LiteRT-only places: the features stage runs the backbone as a .tflite file, and the web page
# (served by zoolite serve) runs LiteRT.js; results.py upgrades zoolite 0.1 files, which had LiteRT only.
LITERT_BY_DESIGN = {"zoolite.model.features", "zoolite.apps.web", "zoolite.apps.serve", "zoolite.results"}


def test_only_the_targets_package_tells_runtimes_apart():
    """A new family must not need edits elsewhere: no other module names a suffix, a family, an integer
    dtype or a shippable variant."""
    forbidden = set(SUFFIXES) | set(FAMILIES) | {"int8", "uint8"} | {t.name for t in TARGETS.values() if t.shippable}
    found = []
    for path in PACKAGE.rglob("*.py"):
        module = _module_name(path)
        if module.startswith("zoolite.targets") or module in LITERT_BY_DESIGN:
            continue
        found += [f"{module}:{node.lineno} {node.value!r}" for node in ast.walk(ast.parse(path.read_text()))
                  if isinstance(node, ast.Constant) and node.value in forbidden]
    assert not found, found


def test_the_folder_listing_is_the_map_one_package_per_stage():
    """Only the CLI, the options, errors, progress and file writing sit at the top; the rest lives in
    the package of its stage."""
    assert sorted(p.stem for p in PACKAGE.glob("*.py")) == ["__init__", "cli", "config", "errors", "progress",
                                                            "storage"]
    stages = {"dataset", "model", "targets", "measure", "results", "report", "runs", "apps"}
    assert stages <= {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
