"""The package's import graph, read from the source with :mod:`ast` (nothing is imported).

- No import cycle anywhere in the package: each module can be read without another one half
  loaded (today's failure mode was ``triggers.plugz`` and ``sensors.plugz`` importing each other).
- The trigger path is light: Airflow's triggerer imports a trigger's module on its event loop, so
  importing any of our trigger modules must load no sensor or operator module (and no HTTP client
  or Sentry: the hook and its transports are imported off the loop, when a trigger runs).

An edge is an import that runs when the module is imported: at module level, in a class body, in
an ``if``/``try``/``with`` block at module level - but not under ``if TYPE_CHECKING:`` and not
inside a function (those run later, or never).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

PACKAGE = "airflow_provider_plugz"
PACKAGE_DIR = Path(__file__).resolve().parent.parent / PACKAGE


# --- reading the graph -------------------------------------------------------------------------


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def module_level_imports(
    body: Sequence[ast.stmt], *, lazy: bool = False
) -> Iterator[ast.Import | ast.ImportFrom]:
    """The import statements that run when a module with this ``body`` is imported; with
    ``lazy``, also those inside its functions (that run when they are called)."""
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if lazy:
                yield from module_level_imports(node.body, lazy=lazy)
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                yield from module_level_imports(node.body, lazy=lazy)
            yield from module_level_imports(node.orelse, lazy=lazy)
        elif isinstance(node, (ast.Try, getattr(ast, "TryStar", ast.Try))):  # TryStar: Python 3.11+
            yield from module_level_imports(node.body, lazy=lazy)
            for handler in node.handlers:
                yield from module_level_imports(handler.body, lazy=lazy)
            yield from module_level_imports(node.orelse, lazy=lazy)
            yield from module_level_imports(node.finalbody, lazy=lazy)
        elif isinstance(node, (ast.ClassDef, ast.With, ast.AsyncWith, ast.For, ast.AsyncFor, ast.While)):
            yield from module_level_imports(node.body, lazy=lazy)
            yield from module_level_imports(getattr(node, "orelse", []), lazy=lazy)
        elif isinstance(node, ast.Match):
            for case in node.cases:
                yield from module_level_imports(case.body, lazy=lazy)


def module_name(path: Path, root: Path = PACKAGE_DIR) -> str:
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imports_of(
    source: str,
    module: str,
    known: set[str],
    *,
    is_package: bool = False,
    package: str = PACKAGE,
    lazy: bool = False,
) -> tuple[set[str], set[str]]:
    """``(package modules, top-level external names)`` imported when ``module`` is imported (with
    ``lazy``, or when any of its functions runs)."""
    ours: set[str] = set()
    external: set[str] = set()
    for node in module_level_imports(ast.parse(source).body, lazy=lazy):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            base = _absolute(node, module, is_package)
            # ``from pkg import sub`` imports the submodule ``pkg.sub``; ``from mod import name`` mod.
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        for name in names:
            if name == package or name.startswith(package + "."):
                ours.add(name)
            else:
                external.add(name.split(".")[0])
    return ours, external


def read_graph(
    root: Path = PACKAGE_DIR, *, lazy: bool = False
) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Every module of the package under ``root``: the package modules and the external top-level
    packages it imports at module level (with ``lazy``, anywhere but under ``TYPE_CHECKING``)."""
    paths = {module_name(path, root): path for path in sorted(root.rglob("*.py"))}
    known = set(paths)
    graph: dict[str, set[str]] = {}
    external: dict[str, set[str]] = {}
    for module, path in paths.items():
        ours, theirs = imports_of(
            path.read_text(encoding="utf-8"), module, known, is_package=path.name == "__init__.py", lazy=lazy
        )
        graph[module] = {name for name in ours if name != module}
        external[module] = theirs
    return graph, external


def ancestors(module: str) -> list[str]:
    """The packages whose ``__init__`` runs before ``module`` (``a.b.c`` -> ``a``, ``a.b``)."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def loaded_by(module: str, graph: dict[str, set[str]]) -> set[str]:
    """Every package module that importing ``module`` loads (itself and its packages included)."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        todo.extend(name for name in [*ancestors(current), *graph.get(current, ())] if name not in seen)
    return seen


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of ``graph`` as ``[a, b, ..., a]``, or None when it is acyclic."""
    done: set[str] = set()
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        path.append(node)
        for child in sorted(graph.get(node, ())):
            if child in path:
                return [*path[path.index(child) :], child]
            if child not in done and (cycle := visit(child)) is not None:
                return cycle
        path.pop()
        done.add(node)
        return None

    for start in sorted(graph):
        if start not in done and (cycle := visit(start)) is not None:
            return cycle
    return None


GRAPH, EXTERNAL = read_graph()
#: Imports inside functions too: two modules that need each other, even one of them lazily, are
#: one module cut in two (a lazy import breaks the cycle at import time, not in the design).
ANY_IMPORT_GRAPH, _ = read_graph(lazy=True)
TRIGGER_MODULES = sorted(m for m in GRAPH if m.startswith(f"{PACKAGE}.triggers."))


# --- the reader reads what Python runs --------------------------------------------------------

KNOWN = {"pkg", "pkg.a", "pkg.b", "pkg.sub", "pkg.sub.c"}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        pytest.param("import pkg.a", {"pkg.a"}, id="import"),
        pytest.param("from pkg import a, b", {"pkg.a", "pkg.b"}, id="from-package-import-modules"),
        pytest.param("from pkg.a import name", {"pkg.a"}, id="from-module-import-name"),
        pytest.param("from pkg import name", {"pkg"}, id="from-package-import-name"),
        pytest.param("from . import a", {"pkg.a"}, id="relative"),
        pytest.param("from .sub.c import name", {"pkg.sub.c"}, id="relative-submodule"),
        pytest.param(
            "try:\n    import pkg.a\nexcept ImportError:\n    import pkg.b", {"pkg.a", "pkg.b"}, id="try"
        ),
        pytest.param("if X:\n    import pkg.a\nelse:\n    import pkg.b", {"pkg.a", "pkg.b"}, id="if-else"),
        pytest.param("class C:\n    import pkg.a", {"pkg.a"}, id="class-body"),
        pytest.param("with x:\n    import pkg.a", {"pkg.a"}, id="with"),
        pytest.param("if TYPE_CHECKING:\n    import pkg.a", set(), id="type-checking"),
        pytest.param(
            "if typing.TYPE_CHECKING:\n    import pkg.a\nelse:\n    import pkg.b",
            {"pkg.b"},
            id="type-checking-else",
        ),
        pytest.param("def f():\n    import pkg.a", set(), id="function"),
        pytest.param("async def f():\n    import pkg.a", set(), id="async-function"),
        pytest.param("class C:\n    def f(self):\n        import pkg.a", set(), id="method"),
        pytest.param("import json\nfrom requests import Session", set(), id="external-only"),
    ],
)
def test_the_reader_finds_the_imports_that_run_at_import_time(source: str, expected: set[str]) -> None:
    ours, _ = imports_of(source, "pkg.b", KNOWN, package="pkg")
    assert ours == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        pytest.param("def f():\n    import pkg.a", {"pkg.a"}, id="function"),
        pytest.param("class C:\n    async def f(self):\n        from pkg import a", {"pkg.a"}, id="method"),
        pytest.param("def f():\n    if TYPE_CHECKING:\n        import pkg.a", set(), id="type-checking"),
    ],
)
def test_the_lazy_reader_also_finds_imports_in_functions(source: str, expected: set[str]) -> None:
    ours, _ = imports_of(source, "pkg.b", KNOWN, package="pkg", lazy=True)
    assert ours == expected


def test_the_reader_names_external_packages() -> None:
    source = "import httpx\nfrom requests.adapters import HTTPAdapter\nimport pkg.a"
    _, external = imports_of(source, "pkg.b", KNOWN, package="pkg")
    assert external == {"httpx", "requests"}


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        pytest.param({"a": {"b"}, "b": {"c"}, "c": set()}, None, id="chain"),
        pytest.param({"a": {"b", "c"}, "b": {"c"}, "c": set()}, None, id="diamond"),
        pytest.param({"a": {"b"}, "b": {"a"}}, ["a", "b", "a"], id="two"),
        pytest.param({"a": {"b"}, "b": {"c"}, "c": {"b"}}, ["b", "c", "b"], id="three-with-tail"),
    ],
)
def test_find_cycle(graph: dict[str, set[str]], expected: list[str] | None) -> None:
    assert find_cycle(graph) == expected


def test_the_package_graph_is_read() -> None:
    # A walker that found nothing would pass every check below.
    assert f"{PACKAGE}.triggers.plugz" in TRIGGER_MODULES
    assert f"{PACKAGE}.triggers.events" in TRIGGER_MODULES
    assert f"{PACKAGE}.triggers.plugz" in GRAPH[f"{PACKAGE}.triggers.events"]
    assert "airflow" in EXTERNAL[f"{PACKAGE}.triggers.plugz"]


# --- the package -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "graph",
    [
        pytest.param(GRAPH, id="module-level"),
        pytest.param(ANY_IMPORT_GRAPH, id="any-import-even-lazy"),
    ],
)
def test_the_package_has_no_import_cycle(graph: dict[str, set[str]]) -> None:
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


@pytest.mark.parametrize(
    ("forbidden", "why"),
    [
        pytest.param(f"{PACKAGE}.sensors", "a sensor module", id="sensors"),
        pytest.param(f"{PACKAGE}.operators", "an operator module", id="operators"),
        pytest.param(f"{PACKAGE}.hooks", "the hook (imported off the loop when a trigger runs)", id="hooks"),
    ],
)
@pytest.mark.parametrize("trigger_module", TRIGGER_MODULES)
def test_importing_a_trigger_module_loads_no_sensor_operator_or_hook(
    trigger_module: str, forbidden: str, why: str
) -> None:
    loaded = loaded_by(trigger_module, GRAPH)
    found = sorted(m for m in loaded if m == forbidden or m.startswith(forbidden + "."))
    assert not found, f"importing {trigger_module} loads {why}: {found}"


def test_the_vocabulary_imports_only_the_standard_library() -> None:
    """Sensors, triggers, operators, the notifier, the audit and the endpoints all import it: it
    must cost them nothing (no Airflow, no protocol, no HTTP client), even lazily but to say no."""
    vocabulary = f"{PACKAGE}._vocabulary"
    assert GRAPH[vocabulary] == set()
    assert ANY_IMPORT_GRAPH[vocabulary] <= {f"{PACKAGE}.exceptions"}  # raised for a bad condition
    assert EXTERNAL[vocabulary] <= set(sys.stdlib_module_names)


@pytest.mark.parametrize("library", ["requests", "httpx", "sentry_sdk", "urllib3"])
@pytest.mark.parametrize("trigger_module", TRIGGER_MODULES)
def test_importing_a_trigger_module_loads_no_http_client_or_sentry(trigger_module: str, library: str) -> None:
    found = sorted(m for m in loaded_by(trigger_module, GRAPH) if library in EXTERNAL.get(m, set()))
    assert not found, f"importing {trigger_module} imports {library} at module level through {found}"
