"""The package's shape: files of one concept (at most 500 lines), no import circle between
metaloss modules, a light ``import metaloss``, no ``matplotlib.use``, run-directory file
names only in :mod:`metaloss.rundir`.

The checks read the source with :mod:`ast` (no import), except the import-weight check,
which needs a fresh interpreter.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

# the repository root: the first folder above this file that holds the package
ROOT = next(p for p in Path(__file__).resolve().parents if (p / "metaloss/__init__.py").is_file())
PACKAGE = ROOT / "metaloss"
MAX_LINES = 500

#: Files over the limit whose split belongs to another open change (remove an entry when it
#: is done: the test fails while an entry is no longer needed).
LONG_PENDING: set[str] = set()
#: Files that still spell a run-directory file name (same rule as LONG_PENDING).
NAMES_PENDING: set[str] = set()


def _sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


# --------------------------------------------------------------------------------------------
# File length
# --------------------------------------------------------------------------------------------


def test_no_file_over_500_lines():
    lines = {_rel(p): len(p.read_text().splitlines()) for p in _sources()}
    long = {name for name, n in lines.items() if n > MAX_LINES}
    assert long - LONG_PENDING == set(), {n: lines[n] for n in long - LONG_PENDING}
    assert long >= LONG_PENDING, f"now short enough, drop from LONG_PENDING: {LONG_PENDING - long}"


# --------------------------------------------------------------------------------------------
# Import circles (module-level imports only: an import inside a function runs at call time)
# --------------------------------------------------------------------------------------------


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_time_imports(body: list[ast.stmt]) -> list[ast.Import | ast.ImportFrom]:
    """The import statements that run when the module is imported (not in a function or
    class body that is not executed, not under ``if TYPE_CHECKING``)."""
    found: list[ast.Import | ast.ImportFrom] = []
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                found += _import_time_imports(node.body)
            found += _import_time_imports(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                found += _import_time_imports(block)
        elif isinstance(node, ast.With | ast.ClassDef):
            found += _import_time_imports(node.body)
    return found


def import_graph(root: Path = ROOT, package: str = "metaloss") -> dict[str, set[str]]:
    """Module -> the package modules it imports at import time (``from a import b`` counts
    as an import of ``a.b`` when that is a module, else of ``a``)."""
    files = {_module_of(p, root): p for p in sorted((root / package).rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        here = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps: set[str] = set()
        for node in _import_time_imports(ast.parse(path.read_text()).body):
            if isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name in files}
                continue
            if node.level:
                base = here.split(".")[: len(here.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source in files:
                for alias in node.names:
                    sub = f"{source}.{alias.name}"
                    deps.add(sub if sub in files else source)
        graph[name] = deps - {name}
    return graph


def _module_of(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles: strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_cycle_finder_on_a_small_package(tmp_path):
    """The oracle: a hand-made package with one circle (a -> b -> c -> a at import time),
    a function-level import (d -> a) and a TYPE_CHECKING import (a -> d) that make none."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from .c import f\n")
    (pkg / "a.py").write_text(
        "from typing import TYPE_CHECKING\nfrom pkg import b\nif TYPE_CHECKING:\n"
        "    from pkg import d\n"
    )
    (pkg / "b.py").write_text("import pkg.sub.c\n")
    (pkg / "sub" / "c.py").write_text("from .. import a\ndef f():\n    pass\n")
    (pkg / "d.py").write_text("def g():\n    from pkg import a\n")
    graph = import_graph(tmp_path, "pkg")
    assert graph["pkg.a"] == {"pkg.b"} and graph["pkg.d"] == set()
    assert graph["pkg.sub"] == {"pkg.sub.c"} and graph["pkg.sub.c"] == {"pkg.a"}
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.sub.c"]]


def test_no_import_circle_in_metaloss():
    graph = import_graph()
    assert len(graph) == len(_sources()) and graph["metaloss.io"] >= {"metaloss.rundir"}
    assert cycles(graph) == []


# --------------------------------------------------------------------------------------------
# What ``import metaloss`` costs, and matplotlib left to the user
# --------------------------------------------------------------------------------------------

HEAVY = ("matplotlib", "sklearn", "ray", "cma")


def test_import_metaloss_imports_no_plotting_or_search_library():
    """``import metaloss``, then every public name but ``plots`` (whose job is matplotlib):
    none imports matplotlib, scikit-learn, ray or cma (they load when a feature needs them)."""
    code = (
        "import sys, metaloss\n"
        f"bare = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "for name in metaloss.__all__:\n"
        "    if name != 'plots': getattr(metaloss, name)\n"
        f"print(bare, [m for m in {HEAVY!r} if m in sys.modules], 'metaloss.api' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "[] [] True"


def _matplotlib_use_calls(tree: ast.AST) -> list[int]:
    """Lines calling ``matplotlib.use`` (under any alias, or imported as ``use``)."""
    aliases, direct = {"matplotlib"}, set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            aliases |= {a.asname or a.name for a in node.names if a.name == "matplotlib"}
        elif isinstance(node, ast.ImportFrom) and node.module == "matplotlib":
            direct |= {a.asname or a.name for a in node.names if a.name == "use"}
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            attr = isinstance(f, ast.Attribute) and f.attr == "use"
            if (attr and isinstance(f.value, ast.Name) and f.value.id in aliases) or (
                isinstance(f, ast.Name) and f.id in direct
            ):
                lines.append(node.lineno)
    return lines


@pytest.mark.parametrize(
    "source,found",
    [
        ("import matplotlib\nmatplotlib.use('Agg')\n", [2]),
        ("import matplotlib as mpl\ndef f():\n    mpl.use('Agg')\n", [3]),
        ("from matplotlib import use\nuse('Agg')\n", [2]),
        ("import matplotlib.pyplot as plt\nplt.plot([1])\nx.use('y')\n", []),
    ],
)
def test_matplotlib_use_finder(source, found):
    assert _matplotlib_use_calls(ast.parse(source)) == found


def test_no_matplotlib_use_in_metaloss():
    calls = {_rel(p): _matplotlib_use_calls(ast.parse(p.read_text())) for p in _sources()}
    assert {name: lines for name, lines in calls.items() if lines} == {}


# --------------------------------------------------------------------------------------------
# Run-directory file names
# --------------------------------------------------------------------------------------------


def test_run_file_names_are_spelt_only_in_rundir():
    from metaloss import rundir

    names = {v for k, v in vars(rundir).items() if k.isupper() and isinstance(v, str)}
    assert {"spec.json", "checkpoint.json", "generations.jsonl", "loss.png"} <= names
    spelt: dict[str, list[str]] = {}
    for path in _sources():
        if path.name == "rundir.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in names:
                spelt.setdefault(_rel(path), []).append(f"{node.lineno}: {node.value}")
    assert {k: v for k, v in spelt.items() if k not in NAMES_PENDING} == {}
    assert set(spelt) >= NAMES_PENDING, f"drop from NAMES_PENDING: {NAMES_PENDING - set(spelt)}"


# --------------------------------------------------------------------------------------------
# docs/layout.md names files and registries that exist
# --------------------------------------------------------------------------------------------


def test_layout_doc_names_real_files_and_registries():
    import importlib
    import re

    text = (ROOT / "docs" / "layout.md").read_text()
    tokens = {t for t in re.findall(r"`([^`\s]+)`", text) if "<" not in t}  # no templates
    files = {p.name for p in [*PACKAGE.rglob("*.py"), *(ROOT / "tests").rglob("*.py")]}
    missing = [t for t in tokens if t.endswith(".py") and Path(t).name not in files]
    missing += [
        t for t in tokens if t.startswith(("metaloss/", "tests/")) and not (ROOT / t).exists()
    ]
    checked = 0
    for token in tokens:  # dotted names such as `api.METHODS`, `rl.task.SOURCES`
        module, _, attr = token.rpartition(".")
        if not re.fullmatch(r"[a-z_]+(\.[a-z_]+)*", module) or not attr[:1].isupper():
            continue
        try:
            mod = importlib.import_module(f"metaloss.{module}")
        except ImportError:
            continue
        checked += 1
        if not hasattr(mod, attr):
            missing.append(token)
    assert sorted(missing) == [] and checked >= 5
