"""The structure docs/architecture.md promises: one package per stage, imports that only run down the
layers and never in a circle (imports inside functions and through importlib included), modules,
classes and functions short enough to read, a registry that names every target's family and role,
and no module outside ``zoolite/targets/`` that tells runtimes apart by a file suffix, a dtype or a
variant name."""

from __future__ import annotations

import ast
import re
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
    ("zoolite.runs.stages", "zoolite.targets.keras"): "a run saves and reloads its trained Keras models (resume)",
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


# zoolite's layers, lowest first: a module imports modules of its own layer or of lower ones only. The
# stages follow the data, dataset -> model -> variants -> measurements -> results -> report, driven by runs
# and used by the apps; below them sit what every stage shares: tools, statistics, the registries of
# backbones and targets, the options and the run folder's layout, and the typed results.
LAYERS = (
    ("zoolite.errors", "zoolite.progress", "zoolite.storage", "zoolite.constraints"),
    ("zoolite.measure.intervals", "zoolite.measure.stats"),
    ("zoolite.model.layers", "zoolite.model.backbones", "zoolite.targets"),
    ("zoolite.config", "zoolite.runs.layout"),
    ("zoolite.results",),
    ("zoolite.dataset",),
    ("zoolite.model",),
    ("zoolite.measure",),
    ("zoolite.results.recommend", "zoolite.report"),
    ("zoolite.runs",),
    ("zoolite.apps",),
    ("zoolite.cli", "zoolite"),
)


def layer_of(module: str) -> int:
    """The layer of the longest entry of LAYERS that is ``module`` or a package holding it."""
    matches = [(len(entry), layer) for layer, entries in enumerate(LAYERS) for entry in entries
               if module == entry or (entry != "zoolite" and module.startswith(entry + "."))]
    assert matches, f"{module} is in no layer: add it to LAYERS"
    return max(matches)[1]


def imports_running_up(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{module} -> {imported}" for module, imports in graph.items() for imported in imports
                  if layer_of(imported) > layer_of(module))


def test_imports_run_down_the_layers_only():
    assert imports_running_up(import_graph()) == []


def test_the_layer_check_finds_an_import_running_up():
    assert layer_of("zoolite.results.recommend") > layer_of("zoolite.results") > layer_of("zoolite.config")
    assert imports_running_up({"zoolite.dataset.scan": {"zoolite.model.training", "zoolite.config"}}) == \
        ["zoolite.dataset.scan -> zoolite.model.training"]


# What a reader can hold at once (issue #26): lines of a module, of a class and of a function.
MAX_LINES = {"module": 400, "class": 150, "function": 60}


def too_long(path: Path) -> list[str]:
    source = path.read_text(encoding="utf-8")
    found = [f"{path.name}: {len(source.splitlines())} lines"] \
        if len(source.splitlines()) > MAX_LINES["module"] else []
    for node in ast.walk(ast.parse(source)):
        kind = "class" if isinstance(node, ast.ClassDef) else \
            "function" if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) else None
        if kind and node.end_lineno - node.lineno + 1 > MAX_LINES[kind]:
            found.append(f"{path.name}: {kind} {node.name}, {node.end_lineno - node.lineno + 1} lines")
    return found


def test_no_module_class_or_function_is_too_long():
    assert [found for path in sorted(PACKAGE.rglob("*.py")) for found in too_long(path)] == []


def test_the_length_check_finds_a_long_function(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_LINES["function"]))
    (tmp_path / "long.py").write_text(f"def long():\n{body}\n")
    assert too_long(tmp_path / "long.py") == [f"long.py: function long, {MAX_LINES['function'] + 1} lines"]


def test_the_checker_finds_a_circle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_every_target_has_a_family_module_and_one_reference():
    assert [t.name for t in TARGETS.values() if not t.shippable] == ["keras"]
    for target in TARGETS.values():
        assert FAMILIES[target.family.name] is target.family and SUFFIXES[target.family.suffix] is target.family
        assert hasattr(target.family.implementation(), "open")
        if target.shippable:
            assert hasattr(target.family.implementation(), "Converter")


# Strings outside targets/ that name a runtime, a mode or an integer dtype, one line each with its reason:
# (module, the string's first 40 characters) -> why.
RUNTIME_NAMES_BY_DESIGN = {
    ("zoolite.model.features", ".tflite"): "the features stage runs the frozen backbone as a LiteRT file",
    ("zoolite.model.features", "float32"): "... in float32",
    ("zoolite.runs.layout", "classifier.keras"): "a run saves its trained classifier as Keras, to resume",
    ("zoolite.apps.serve", ".tflite"): "the web page fetches a LiteRT file: served with its MIME type",
    ("zoolite.apps.web", "float32"): "the tensor types LiteRT.js feeds",
    ("zoolite.apps.web", "uint8"): "the tensor types LiteRT.js feeds",
    ("zoolite.apps.web", "; export a float32 or uint8 LiteRT varia"): "what the page can run",
    ("zoolite.config", "comma-separated runtimes whose files are"): "--runtimes help: examples",
    ("zoolite.config", "comma-separated modes (how the weights a"): "--modes help: examples",
    ("zoolite.results.records", "keras"): "zoolite 0.2's results.json named the Keras package's version so",
    ("zoolite.results.upgrades", "keras"): "zoolite 0.1's results.json had Keras and LiteRT files only",
    ("zoolite.results.upgrades", "litert"): "zoolite 0.1's results.json had Keras and LiteRT files only",
    ("zoolite.results.upgrades", "float32"): "zoolite 0.1's results.json had Keras and LiteRT files only",
}


def runtime_names(path: Path) -> set[str]:
    """The strings in ``path`` (not its docstrings; their first 40 characters) that name a family, a shippable
    target or an integer dtype as a word, or a file by a family's suffix."""
    words = set(FAMILIES) | {"int8", "uint8"} | {t.name for t in TARGETS.values() if t.shippable}
    word = "|".join(sorted(map(re.escape, words), key=len, reverse=True))
    suffix = "|".join(map(re.escape, SUFFIXES))
    pattern = re.compile(rf"(?<![\w.-])({word})(?![\w.-])|({suffix})\b")
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr)}
    return {node.value[:40] for node in ast.walk(tree) if isinstance(node, ast.Constant)
            and isinstance(node.value, str) and id(node) not in docstrings and pattern.search(node.value)}


def test_only_the_targets_package_tells_runtimes_apart():
    """A new family must not need edits elsewhere: no other module names a suffix, a family, an integer
    dtype or a shippable variant, in a string of any kind (an f-string's parts included), unless named
    above; an exemption that no longer happens fails too."""
    found = {(module, name) for module, path in ((_module_name(p), p) for p in PACKAGE.rglob("*.py"))
             if not module.startswith("zoolite.targets") for name in runtime_names(path)}
    assert found == set(RUNTIME_NAMES_BY_DESIGN)


def test_the_runtime_name_check_finds_names_in_file_names_and_f_strings(tmp_path):
    source = 'def f(run):\n    """int8 in a docstring is fine."""\n    return run / f"{run}_uint8.tflite", "openvino"\n'
    (tmp_path / "m.py").write_text(source)
    assert runtime_names(tmp_path / "m.py") == {"_uint8.tflite", "openvino"}


def test_the_folder_listing_is_the_map_one_package_per_stage():
    """Only the CLI, the options and their constraint engine, errors, progress and file writing sit at the
    top; the rest lives in the package of its stage."""
    assert sorted(p.stem for p in PACKAGE.glob("*.py")) == ["__init__", "cli", "config", "constraints", "errors",
                                                            "progress", "storage"]
    stages = {"dataset", "model", "targets", "measure", "results", "report", "runs", "apps"}
    assert stages <= {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
