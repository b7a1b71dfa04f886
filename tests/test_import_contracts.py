"""The import rules: imports flow one way without circles (counting imports inside
functions too), the app starts without torch, and only reader_app imports Qt."""

from __future__ import annotations

import ast
import functools
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Modules that the app or studies import at start-up: numpy/scipy/nibabel/pydicom only.
LIGHT_CORE = ["diffusion_core", "diffusion_core.io", "diffusion_core.presets",
              "diffusion_core.preprocess", "diffusion_core.cli.common"]
PACKAGES = ("diffusion_core", "studies", "reader_app", "evaluation")
# The packages each package may import: reader_app -> studies -> diffusion_core,
# evaluation -> studies, diffusion_core; diffusion_core imports none of the others.
MAY_IMPORT: dict[str, set[str]] = {
    "diffusion_core": set(),
    "studies": {"diffusion_core"},
    "reader_app": {"studies", "diffusion_core"},
    "evaluation": {"studies", "diffusion_core"},
}
# Entry points whose `--help` must answer at once: no torch, pandas, matplotlib or Qt at import.
COMMANDS = ["diffusion_core.cli.prepare", "studies.cli.study", "evaluation.cli.eval",
            "reader_app.cli.reader"]


def _modules(package: str) -> list[str]:
    """Every module of a top-level package of this repository."""
    found = [package]
    for info in pkgutil.walk_packages([str(ROOT / package)], prefix=package + "."):
        found.append(info.name)
    return found


def _imported_after(modules: list[str]) -> set[str]:
    """Top-level names in sys.modules after importing `modules` in a fresh interpreter."""
    code = (
        "import importlib, json, sys\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module(m)\n"
        "print(json.dumps(sorted({k.split('.')[0] for k in sys.modules})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    return set(json.loads(out.stdout))


def test_app_side_imports_no_torch_or_monai():
    """reader_app, studies and the light diffusion_core modules never pull in torch or MONAI."""
    light = [m for m in LIGHT_CORE if (ROOT / (m.replace(".", "/") + ".py")).exists()
             or (ROOT / m.replace(".", "/")).is_dir()]
    modules = light + _modules("studies") + _modules("reader_app")
    heavy = _imported_after(modules) & {"torch", "monai", "torchmetrics"}
    assert not heavy, f"importing {modules} pulled in {sorted(heavy)}"


@pytest.mark.parametrize("package", ["diffusion_core", "studies", "evaluation"])
def test_only_reader_app_imports_qt(package):
    """No package but reader_app imports Qt or pyqtgraph."""
    qt = _imported_after(_modules(package)) & {"PySide6", "pyqtgraph", "shiboken6"}
    assert not qt, f"{package} imports {sorted(qt)}"


# ------------------------------------------------------------------------ the import graph (ast)


def _module_files() -> dict[str, Path]:
    """Module name -> file, for every module of the four packages."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    """`if TYPE_CHECKING:` or `if typing.TYPE_CHECKING:`, whose imports never run."""
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(body: list[ast.stmt]) -> list[ast.Import | ast.ImportFrom]:
    """The imports that run when the module is imported (not those inside functions)."""
    nodes: list[ast.Import | ast.ImportFrom] = []
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            nodes.append(node)
        elif isinstance(node, ast.If):
            nodes += _import_nodes(node.orelse if _is_type_checking(node.test)
                                   else node.body + node.orelse)
        elif isinstance(node, ast.Try):
            nodes += _import_nodes(node.body + node.orelse + node.finalbody
                                   + [s for h in node.handlers for s in h.body])
        elif isinstance(node, ast.With | ast.ClassDef):
            nodes += _import_nodes(node.body)
    return nodes


def _resolve(name: str, known: set[str]) -> str | None:
    """The known module `name` is, or the nearest known package above it; None outside."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def _every_import_node(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import that can run, wherever it stands: in functions, methods, branches, handlers.

    Only `if TYPE_CHECKING:` bodies are left out: they never run, and naming a type for an
    annotation is no dependency of the code (as import-linter's exclude_type_checking_imports).
    """
    nodes: list[ast.Import | ast.ImportFrom] = []
    todo = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            nodes.append(node)
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            todo.extend(node.orelse)
        else:
            todo.extend(ast.iter_child_nodes(node))
    return nodes


def imported_names(source: str, module: str, is_package: bool, *,
                   everywhere: bool = False) -> set[str]:
    """Every dotted name `module` (given by its source) imports at module level, made absolute;
    with `everywhere`, also those imported inside functions (`_every_import_node`).

    `from pkg import name` gives pkg.name: the submodule when there is one (see `imports_of`).
    """
    names: set[str] = set()
    tree = ast.parse(source)
    for node in _every_import_node(tree) if everywhere else _import_nodes(tree.body):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
            continue
        base = node.module or ""
        if node.level:
            package = module if is_package else module.rpartition(".")[0]
            for _ in range(node.level - 1):
                package = package.rpartition(".")[0]
            base = f"{package}.{base}" if base else package
        names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def imports_of(source: str, module: str, is_package: bool, known: set[str], *,
               everywhere: bool = False) -> set[str]:
    """The known modules that `module` imports at module level (`everywhere`: anywhere)."""
    resolved = (_resolve(name, known)
                for name in imported_names(source, module, is_package, everywhere=everywhere))
    return {target for target in resolved if target and target != module}


@functools.cache
def _parsed() -> dict[str, tuple[set[str], set[str], set[str]]]:
    """Module -> (modules of the four packages it imports at load, other top-level packages it
    imports at load, modules of the four packages it imports anywhere)."""
    files = _module_files()
    known = set(files)
    found = {}
    for module, path in files.items():
        source, is_package = path.read_text(encoding="utf-8"), path.name == "__init__.py"
        names = imported_names(source, module, is_package)
        found[module] = (imports_of(source, module, is_package, known),
                         {n.split(".")[0] for n in names} - set(PACKAGES),
                         imports_of(source, module, is_package, known, everywhere=True))
    return found


def import_graph(*, everywhere: bool = False) -> dict[str, set[str]]:
    """Module -> the modules of the four packages it imports at module level; with `everywhere`,
    also inside functions (the drawing of who depends on whom)."""
    return {module: set(anywhere if everywhere else internal)
            for module, (internal, _, anywhere) in _parsed().items()}


def loaded_at_import(modules: list[str]) -> set[str]:
    """Other top-level packages that importing `modules` loads through our module-level imports."""
    graph, parsed = import_graph(), _parsed()
    seen, todo = set(), list(modules)
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(graph[module])
    return set().union(*(parsed[m][1] for m in seen))


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One circle per group of modules that import each other (strongly connected components of
    more than one module), each as [a, b, ..., a]; [] when the graph has none."""
    groups = _strongly_connected(graph)
    return [find_cycle({m: graph.get(m, set()) & group for m in group}) for group in groups]


def _strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """The groups of more than one module that reach each other (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, targets = work[-1]
            target = next(targets, None)
            if target is not None:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(graph.get(target, ())))))
                elif target in on_stack:
                    low[node] = min(low[node], index[target])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.add(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(group)
    return groups


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as [a, b, ..., a], or None when the graph has none."""
    state: dict[str, str] = {}  # "open" while on the current path, "done" once fully explored
    for start in sorted(graph):
        if start in state:
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
        state[start] = "open"
        while stack:
            target = next(stack[-1], None)
            if target is None:
                state[path.pop()] = "done"
                stack.pop()
            elif state.get(target) == "open":
                return path[path.index(target):] + [target]
            elif target not in state:
                state[target] = "open"
                path.append(target)
                stack.append(iter(sorted(graph.get(target, ()))))
    return None


def direction_violations(graph: dict[str, set[str]]) -> list[str]:
    """Every import from one package into another that MAY_IMPORT does not allow."""
    bad = []
    for module, targets in sorted(graph.items()):
        package = module.split(".")[0]
        for target in sorted(targets):
            other = target.split(".")[0]
            if other != package and other not in MAY_IMPORT[package]:
                bad.append(f"{module} -> {target}")
    return bad


def test_the_graph_sees_the_real_imports():
    """A parser that found nothing would pass the checks below; it finds known edges."""
    graph = import_graph()
    assert {"studies.case_file", "diffusion_core.io"} <= graph["studies.staging"]
    assert {"studies.staging", "studies.placement"} <= graph["studies.create"]
    assert "diffusion_core.cli.common" in graph["evaluation.cli.eval"]
    assert "evaluation.cli.msssim" in graph["evaluation.cli.eval"]


def test_no_module_imports_itself_in_a_circle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_no_circles_counting_imports_inside_functions():
    """A late import inside a function only hides a circle; the drawing of who depends on whom
    has none (io is files only; sources sits above io, prepared and samples)."""
    cycles = find_cycles(import_graph(everywhere=True))
    assert cycles == [], "import circles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_full_graph_sees_imports_inside_functions():
    """Imports in function bodies are edges of the full drawing."""
    graph = import_graph(everywhere=True)
    assert "studies.create" in graph["reader_app.demo"]  # imported inside the demo's function
    assert "studies.create" not in import_graph()["reader_app.demo"]


def test_imports_flow_one_way_between_packages():
    assert direction_violations(import_graph()) == []


def test_the_checks_catch_a_circle_and_a_wrong_direction():
    """The checkers on made-up graphs and sources, so that the two tests above can fail."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None
    assert direction_violations({"diffusion_core.io": {"studies.study"},
                                 "studies.study": {"diffusion_core.io"},
                                 "studies.x": {"reader_app.y", "evaluation.z"}}) == [
        "diffusion_core.io -> studies.study", "studies.x -> evaluation.z",
        "studies.x -> reader_app.y"]
    known = {"p", "p.a", "p.b", "p.sub", "p.sub.c", "q"}
    source = (
        "import q\n"
        "from . import a\n"
        "from .sub import c as c_module\n"
        "from p.b import SOMETHING\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from p.sub import c\n"
        "def f():\n"
        "    import p.b\n"
        "    if TYPE_CHECKING:\n"
        "        import p.sub\n"
    )
    assert imports_of(source, "p.b", False, known) == {"q", "p.a", "p.sub.c"}
    assert imports_of(source, "p.b", False, known, everywhere=True) == {"q", "p.a", "p.sub.c"}
    assert imports_of(source, "p.a", False, known, everywhere=True) == {"q", "p.b", "p.sub.c"}
    assert find_cycles({"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"e"}, "e": {"c"},
                        "f": {"a"}}) == [["a", "b", "a"], ["c", "d", "e", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []
    assert imports_of("from .. import a", "p.sub.c", False, known) == {"p.a"}
    assert imports_of("from . import c", "p.sub", True, known) == {"p.sub.c"}
    assert imported_names("import numpy as np\nfrom scipy import ndimage\n", "p", True) == {
        "numpy", "scipy.ndimage"}


def test_commands_answer_help_without_heavy_imports():
    """`mdiff-prepare`, `mdiff-study` and `mdiff-eval` import their libraries in `run`."""
    loaded = loaded_at_import(COMMANDS)
    assert "numpy" in loaded  # the walk reaches the libraries (diffusion_core.io needs numpy)
    heavy = loaded & {"torch", "monai", "pandas", "matplotlib", "PySide6", "statsmodels",
                      "sklearn"}
    assert not heavy, f"importing {COMMANDS} pulls in {sorted(heavy)}"
