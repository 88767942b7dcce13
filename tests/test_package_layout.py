"""Small rooms with names that say what they hold (issue 23): no source module over 500 lines and
no two classes of the same name anywhere in the package, read from the source with :mod:`ast`."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parent.parent / "airflow_provider_plugz"
MAX_LINES = 500
SOURCES = sorted(PACKAGE_DIR.rglob("*.py"))


def too_long(sources: dict[str, str], limit: int = MAX_LINES) -> dict[str, int]:
    """The modules of ``sources`` (name -> text) with more than ``limit`` lines, and their lengths."""
    lengths = {name: len(text.splitlines()) for name, text in sources.items()}
    return {name: length for name, length in lengths.items() if length > limit}


def same_named_classes(sources: dict[str, str]) -> dict[str, list[str]]:
    """Class names defined at module level in more than one module of ``sources``, and where."""
    where: defaultdict[str, list[str]] = defaultdict(list)
    for name, text in sources.items():
        for node in ast.parse(text).body:
            if isinstance(node, ast.ClassDef):
                where[node.name].append(name)
    return {cls: modules for cls, modules in where.items() if len(modules) > 1}


@pytest.fixture(scope="module")
def package_sources() -> dict[str, str]:
    return {str(path.relative_to(PACKAGE_DIR)): path.read_text(encoding="utf-8") for path in SOURCES}


def test_the_package_is_read(package_sources: dict[str, str]) -> None:
    assert len(package_sources) > 40
    assert "hooks/plugz.py" in package_sources


def test_no_source_module_is_over_500_lines(package_sources: dict[str, str]) -> None:
    assert too_long(package_sources) == {}


def test_no_two_classes_share_a_name(package_sources: dict[str, str]) -> None:
    assert same_named_classes(package_sources) == {}


@pytest.mark.parametrize(
    ("sources", "long", "twins"),
    [
        pytest.param({"a.py": "x = 1\n" * 501}, {"a.py": 501}, {}, id="501-lines"),
        pytest.param({"a.py": "x = 1\n" * 500}, {}, {}, id="500-lines"),
        pytest.param(
            {"a.py": "class Answer: ...\n", "b/c.py": "class Answer(tuple): ...\n"},
            {},
            {"Answer": ["a.py", "b/c.py"]},
            id="two-answers",
        ),
        pytest.param(
            {"a.py": "class Answer: ...\n", "b.py": "def Answer(): ...\nclass Reply: ...\n"},
            {},
            {},
            id="a-function-is-not-a-class",
        ),
    ],
)
def test_the_checks_see_what_they_look_for(
    sources: dict[str, str], long: dict[str, int], twins: dict[str, list[str]]
) -> None:
    assert too_long(sources) == long
    assert same_named_classes(sources) == twins


TESTS_DIR = Path(__file__).resolve().parent


def modules_imported(source: str) -> set[str]:
    """The modules (and ``module.name`` of from-imports) one file imports, as written."""
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
            imported.update(f"{node.module}.{alias.name}" for alias in node.names)
    return imported


def imports_of_test_modules(sources: dict[str, str]) -> dict[str, list[str]]:
    """Each file that imports a ``test_*`` module, with those modules: helpers live in tests/support."""
    found = {
        name: sorted(m for m in modules_imported(text) if m.rsplit(".", 1)[-1].startswith("test_"))
        for name, text in sources.items()
    }
    return {name: modules for name, modules in found.items() if modules}


@pytest.mark.parametrize(
    ("source", "found"),
    [
        pytest.param("from tests.test_faults import Case\n", ["tests.test_faults"], id="from-a-test-module"),
        pytest.param(
            "from tests.operators import test_audit\n", ["tests.operators.test_audit"], id="a-test-module"
        ),
        pytest.param(
            "import tests.hooks.test_plugz_hook_http\n", ["tests.hooks.test_plugz_hook_http"], id="import"
        ),
        pytest.param("from tests.support.faults import Case\nimport pytest\n", [], id="support-is-fine"),
    ],
)
def test_the_import_check_sees_test_modules(source: str, found: list[str]) -> None:
    assert imports_of_test_modules({"x.py": source}).get("x.py", []) == found


def test_no_test_module_imports_another() -> None:
    sources = {
        str(path.relative_to(TESTS_DIR)): path.read_text(encoding="utf-8")
        for path in sorted(TESTS_DIR.rglob("*.py"))
    }
    assert "test_faults_health.py" in sources
    assert imports_of_test_modules(sources) == {}
