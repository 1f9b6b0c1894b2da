"""The package's shape: no import circles, imports flow down the layers, no module over 400 lines.

Everything is read with ``ast``; the package is never imported, so a circle or a heavy
import cannot break these tests themselves.

Import edges, as Python runs them:

* ``import a.b`` and ``from a.b import c`` are edges to ``a.b.c`` when that is a module of the
  package (a submodule), else to ``a.b``, the module or the package's ``__init__``.
* Relative imports resolve against the importing module's package.
* Function-level imports count: they run the first time the function does.
* Imports under ``if TYPE_CHECKING:`` never run, so they cannot close an import circle; they
  are left out of the circle test but kept in the layering test (a type from a higher layer
  is still a dependency on it).
* The parent packages an import initializes on the way (``a`` for ``import a.b``) are not
  edges: Python initializes a parent before its child, so that never closes a circle by
  itself; an explicit ``from a import x`` is an edge to ``a`` and does.
* ``importlib.import_module("...")`` calls are not seen (the CLI loads its sub-commands so).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "mccom_core"
MAX_LINES = 400

# Which layers a module's layer may import from. lm < retrieval < cascade < lab < cli is a
# line; ladder is a side branch above lm and below lab.
LAYERS = ("base", "lm", "retrieval", "ladder", "cascade", "lab", "cli")
ALLOWED = {
    "base": {"base"},
    "lm": {"base", "lm"},
    "retrieval": {"base", "lm", "retrieval"},
    "cascade": {"base", "lm", "retrieval", "cascade"},
    "ladder": {"base", "lm", "ladder"},
    "lab": {"base", "lm", "retrieval", "cascade", "ladder", "lab"},
    "cli": set(LAYERS),
}
BASE_MODULES = {"errors", "paths", "jsonl", "provenance", "papers"}


def module_files(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every .py under ``root/package`` (``__init__`` names the package)."""
    modules = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, type_checking: bool):
    """Yield every Import/ImportFrom node, at any depth, optionally skipping ``if TYPE_CHECKING:`` bodies."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test) and not type_checking:
            yield from (imp for child in node.orelse for imp in _imports(child, type_checking))
            continue
        yield from _imports(node, type_checking)


def import_targets(module: str, path: Path, modules: dict[str, Path], type_checking: bool = False) -> set[str]:
    """The package's modules that ``module`` (in file ``path``) imports, by the rules in the module docstring."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    targets = set()
    for node in _imports(ast.parse(path.read_text(encoding="utf-8")), type_checking):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:  # `from . import x` is relative to the package, each extra dot one up
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{node.module}" if node.module else anchor
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                     for alias in node.names]
        for name in names:
            while name and name not in modules:  # `import a.b.c` of a non-module c: its owner
                name = name.rpartition(".")[0]
            if name:
                targets.add(name)
    targets.discard(module)
    return targets


def import_graph(root: Path, package: str, type_checking: bool = False) -> dict[str, set[str]]:
    modules = module_files(root, package)
    return {name: import_targets(name, path, modules, type_checking) for name, path in modules.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One circle (``[a, b, ..., a]``) for every back edge a depth-first walk of ``graph`` meets."""
    cycles, state, stack = [], {}, []  # state: 1 = on the current path, 2 = done

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return cycles


def layer_of(module: str) -> str:
    parts = module.split(".")
    if module == PACKAGE or (len(parts) == 2 and parts[1] in BASE_MODULES):
        return "base"
    if module == f"{PACKAGE}.__main__":
        return "cli"  # `python -m mccom_core` is the command line
    if len(parts) >= 2 and parts[1] in LAYERS:
        return parts[1]
    raise AssertionError(f"{module} is in no layer: add it to BASE_MODULES or a subpackage in test_layout.py")


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    """Every edge from a module to a layer its own layer may not import."""
    return [f"{src} ({layer_of(src)}) imports {dst} ({layer_of(dst)})"
            for src, targets in sorted(graph.items()) for dst in sorted(targets)
            if layer_of(dst) not in ALLOWED[layer_of(src)]]


# --- the package -------------------------------------------------------------------------


def test_no_import_cycles_including_function_level_imports():
    cycles = find_cycles(import_graph(ROOT, PACKAGE))
    assert not cycles, "import circles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_imports_flow_down_the_layers():
    bad = layer_violations(import_graph(ROOT, PACKAGE, type_checking=True))
    assert not bad, "imports against the layer order:\n" + "\n".join(bad)


def test_only_main_imports_the_cli():
    graph = import_graph(ROOT, PACKAGE, type_checking=True)
    bad = [f"{src} imports {dst}" for src, targets in sorted(graph.items()) for dst in sorted(targets)
           if layer_of(dst) == "cli" and layer_of(src) != "cli"]
    assert not bad, "\n".join(bad)
    assert graph[f"{PACKAGE}.__main__"] == {f"{PACKAGE}.cli"}


def test_no_module_exceeds_400_lines():
    sizes = {path.relative_to(ROOT).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
             for path in module_files(ROOT, PACKAGE).values()}
    over = [f"{name}: {n} lines" for name, n in sorted(sizes.items()) if n > MAX_LINES]
    assert not over, f"modules over {MAX_LINES} lines (two concepts? split them):\n" + "\n".join(over)


# --- the detector itself, on tiny synthetic packages -------------------------------------


def shadowed_submodules(root: Path, package: str) -> list[str]:
    """Names a package ``__init__`` binds that are also its submodules' names.

    ``from pkg import sub`` (and ``import pkg.sub as x``) then gives the bound object, not the
    module: a package exporting the function ``replay`` hides its module ``replay``.
    """
    modules = module_files(root, package)
    found = []
    for name, path in modules.items():
        if path.name != "__init__.py":
            continue
        subs = {m.rpartition(".")[2] for m in modules if m.rpartition(".")[0] == name}
        tree = ast.parse(path.read_text(encoding="utf-8"))
        bound = {alias.asname or alias.name for node in tree.body if isinstance(node, ast.ImportFrom)
                 for alias in node.names}
        bound |= {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
        found += [f"{name}.{sub}" for sub in sorted(bound & subs)
                  if not any(a.name == sub and (node.module or "") == name for node in tree.body
                             if isinstance(node, ast.ImportFrom) for a in node.names)]
    return found


def test_no_package_export_hides_a_submodule():
    assert shadowed_submodules(ROOT, PACKAGE) == []


def test_shadowing_detector(tmp_path):
    root = write_package(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/sub/__init__.py": "from pkg.sub.replay import replay\nfrom pkg.sub.data import Data\n",
        "pkg/sub/replay.py": "def replay():\n    pass\n",
        "pkg/sub/data.py": "class Data:\n    pass\n",
    })
    assert shadowed_submodules(root, "pkg") == ["pkg.sub.replay"]


def write_package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return root


def test_detector_finds_a_function_level_cycle(tmp_path):
    root = write_package(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "def f():\n    from pkg.b import g\n    return g()\n",
        "pkg/b.py": "def g():\n    if True:\n        from . import a\n    return a\n",
    })
    graph = import_graph(root, "pkg")
    assert graph == {"pkg": set(), "pkg.a": {"pkg.b"}, "pkg.b": {"pkg.a"}}
    assert find_cycles(graph) == [["pkg.a", "pkg.b", "pkg.a"]]


def test_detector_sees_a_submodule_importing_its_own_package_init(tmp_path):
    root = write_package(tmp_path, {
        "pkg/__init__.py": "from pkg.sub import thing\n",
        "pkg/sub/__init__.py": "from .mod import thing\n",
        "pkg/sub/mod.py": "from pkg.sub import other\nthing = 1\n",
        "pkg/sub/other.py": "import pkg.sub.mod\nimport os\n",
    })
    graph = import_graph(root, "pkg")
    assert graph == {
        "pkg": {"pkg.sub"}, "pkg.sub": {"pkg.sub.mod"}, "pkg.sub.mod": {"pkg.sub.other"},
        "pkg.sub.other": {"pkg.sub.mod"},
    }
    assert find_cycles(graph) == [["pkg.sub.mod", "pkg.sub.other", "pkg.sub.mod"]]
    # Importing a name (not a submodule) from the package is an edge to its __init__.
    (root / "pkg/sub/other.py").write_text("from pkg.sub import thing\n", encoding="utf-8")
    (root / "pkg/sub/mod.py").write_text("def f():\n    from ..sub import other\n", encoding="utf-8")
    assert find_cycles(import_graph(root, "pkg")) == [
        ["pkg.sub", "pkg.sub.mod", "pkg.sub.other", "pkg.sub"],
    ]


def test_type_checking_imports_are_out_of_the_cycle_graph_only(tmp_path):
    root = write_package(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "from pkg import b\n",
        "pkg/b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import X\nelse:\n    import json\n",
    })
    assert find_cycles(import_graph(root, "pkg")) == []
    assert find_cycles(import_graph(root, "pkg", type_checking=True)) == [["pkg.a", "pkg.b", "pkg.a"]]


@pytest.mark.parametrize("module, layer", [
    ("mccom_core", "base"), ("mccom_core.errors", "base"), ("mccom_core.__main__", "cli"),
    ("mccom_core.lm.models", "lm"), ("mccom_core.ladder", "ladder"), ("mccom_core.cli.bench", "cli"),
])
def test_layer_of(module, layer):
    assert layer_of(module) == layer


def test_layer_violations_name_the_offending_edge():
    graph = {
        "mccom_core.lm.models": {"mccom_core.errors", "mccom_core.retrieval.index"},
        "mccom_core.ladder.live": {"mccom_core.lm.models", "mccom_core.cascade.engine"},
        "mccom_core.lab.study": {"mccom_core.ladder.replay", "mccom_core.cli"},
        "mccom_core.__main__": {"mccom_core.cli"},
    }
    assert layer_violations(graph) == [
        "mccom_core.lab.study (lab) imports mccom_core.cli (cli)",
        "mccom_core.ladder.live (ladder) imports mccom_core.cascade.engine (cascade)",
        "mccom_core.lm.models (lm) imports mccom_core.retrieval.index (retrieval)",
    ]


def test_layer_of_an_unplaced_module_fails():
    with pytest.raises(AssertionError, match="in no layer"):
        layer_of("mccom_core.stray")
