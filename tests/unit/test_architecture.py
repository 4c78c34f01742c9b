"""The layout's promises, checked from the source alone (an AST scan, so imports inside
functions count too): no import cycle between modules or between subpackages, no module over
400 lines, the engine never imports the report layer, plugins see one stable surface, and the
docs describe the tree that is there."""
from __future__ import annotations

import ast
import graphlib
import re
from pathlib import Path

import pytest

import benchmark.api

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("benchmark", "leaderboard", "tasks", "baselines")
MAX_LINES = 400


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for package in PACKAGES for p in sorted((REPO / package).rglob("*.py"))}


def _imports(path: Path, name: str, known: set[str]) -> set[str]:
    """Every first-party module ``path`` imports, at any depth of the file (functions too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            while target and target not in known:  # `from a.b import name`: the module is a.b
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, name, set(modules)) for name, path in modules.items()}


def _unit(module: str) -> str:
    """The subpackage a module belongs to: benchmark.<x> for the engine, the top package otherwise."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "benchmark" and len(parts) > 1 else parts[0]


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        return exc.args[1]
    return None


def test_no_module_imports_itself_back_through_others():
    graph = _graph()
    # A package's __init__ re-exporting its children is not a cycle between modules of different jobs.
    edges = {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in graph.items()}
    assert _cycle(edges) is None


def test_no_engine_subpackage_imports_another_that_imports_it_back():
    units: dict[str, set[str]] = {}
    for module, deps in _graph().items():
        units.setdefault(_unit(module), set()).update(_unit(d) for d in deps if _unit(d) != _unit(module))
    units = {u: deps - {"benchmark"} for u, deps in units.items() if u != "benchmark"}  # the root only holds __version__
    assert _cycle({u: d for u, d in units.items() if u.startswith("benchmark.")}) is None


def test_the_engine_never_imports_the_report_layer():
    offenders = {m: sorted(d for d in deps if d.startswith("leaderboard")) for m, deps in _graph().items()
                 if m.startswith("benchmark.") and not m.startswith("benchmark.cli")}
    assert {m: d for m, d in offenders.items() if d} == {}


def test_the_checker_sees_imports_inside_functions(tmp_path):
    """The scan must not be fooled by the old trick of hiding a cycle in a function body."""
    path = tmp_path / "mod.py"
    path.write_text("def f():\n    from benchmark.core import errors\n    from . import hashing\n")
    assert _imports(path, "benchmark.core.mod", {"benchmark.core.errors", "benchmark.core.hashing"}) == {
        "benchmark.core.errors", "benchmark.core.hashing"}


@pytest.mark.parametrize("root", ["benchmark", "leaderboard", "tasks", "baselines", "tests", "examples"])
def test_no_module_is_over_400_lines(root):
    long = {str(p.relative_to(REPO)): n for p in (REPO / root).rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


PLUGIN_SURFACE = {
    "Case", "ConfigError", "CTBenchError", "DataError", "IMAGE_SUFFIXES", "Preprocessing", "Task", "TaskSpec",
    "TrainingRecipe", "Volume", "Window", "axial_image", "iter_dicom_files", "read_ct_slice", "read_header",
    "read_index", "read_labelled_pair", "read_rgb", "read_volume", "require_foreground", "study_recipe",
}


def test_the_plugin_surface_keeps_its_names():
    """Removing a name from benchmark.api breaks third-party plugins: it needs a deprecation, not an edit."""
    assert PLUGIN_SURFACE <= set(benchmark.api.__all__)
    assert all(getattr(benchmark.api, name) is not None for name in benchmark.api.__all__)


def test_the_example_plugin_imports_only_the_public_surface():
    plugin = REPO / "examples" / "ctbench-example-plugin" / "src" / "ctbench_example_plugin" / "tasks.py"
    used = {node.module for node in ast.walk(ast.parse(plugin.read_text()))
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PACKAGES}
    assert used <= {"benchmark.api"}


def _subpackages() -> list[str]:
    return sorted(p.parent.name for p in (REPO / "benchmark").glob("*/__init__.py"))


def test_readme_layout_and_architecture_doc_name_every_subpackage():
    readme = (REPO / "README.md").read_text().split("## Layout", 1)[1]
    architecture = (REPO / "docs" / "architecture.md").read_text()
    for name in _subpackages():
        assert re.search(rf"^\s+{name}/", readme, re.M), f"README Layout lacks benchmark/{name}/"
        assert f"benchmark/{name}/" in architecture, f"docs/architecture.md lacks benchmark/{name}/"


def test_every_module_the_architecture_doc_names_exists():
    named = set(re.findall(r"`((?:benchmark|leaderboard|tasks|baselines)/[\w/]+\.py)`",
                           (REPO / "docs" / "architecture.md").read_text()))
    assert named and {n for n in named if not (REPO / n).is_file()} == set()
