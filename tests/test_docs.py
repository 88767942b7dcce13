"""The documentation (docs/, README.md): every code sample is included from code this suite runs,
and those samples work.

Docs pages hold no hand-written Python: each sample is a ``literalinclude`` of the lines between
``[START name]`` / ``[END name]`` markers in an example DAG (run by test_example_dags.py and the
demo) or in a snippet file under docs/snippets/ (run or parsed here). The README's one example is
an excerpt of an example DAG, checked to be identical.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.support.modules import load_file

if TYPE_CHECKING:
    from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SNIPPETS = DOCS / "snippets"
PAGES = sorted([*DOCS.glob("*.md"), *DOCS.glob("*.rst")])
#: Where an included sample may come from: code this suite runs.
RUN_SOURCES = (ROOT / "example_dags", SNIPPETS)
README_EXAMPLE = ("example_dags/plugz_onboarding.py", "howto_sensor_plugz_onboarding")

# --- the checks, as pure functions over text -----------------------------------------------------

#: A Python code block written into a page: a Markdown fence or an rST directive naming Python.
_INLINE_PYTHON = re.compile(
    r"^\s*(?:"
    r"(?:```|~~~|:::)\s*(?:\{(?:code-block|code|sourcecode)\}\s*)?(?:python3?|py|pycon|ipython3?)\b"
    r"|\.\.\s+(?:code-block|code|sourcecode|ipython)::\s*(?:python3?|py|pycon|ipython3?)\b"
    r")",
    re.IGNORECASE | re.MULTILINE,
)
#: A Markdown (MyST) literalinclude and its options, up to the closing fence.
_MD_INCLUDE = re.compile(r"^```\{literalinclude\}\s+(\S+)\n(.*?)^```", re.MULTILINE | re.DOTALL)
#: An rST literalinclude and its indented options.
_RST_INCLUDE = re.compile(r"^\.\.\s+literalinclude::\s+(\S+)\n((?:[ \t]+:.*\n?)*)", re.MULTILINE)
_OPTION = re.compile(r"^\s*:([\w-]+):\s*(.*?)\s*$", re.MULTILINE)


def inline_python_blocks(page: str) -> list[str]:
    """The lines of ``page`` that open a hand-written Python code block."""
    return [match.group(0).strip() for match in _INLINE_PYTHON.finditer(page)]


def literalincludes(page: str) -> list[tuple[str, dict[str, str]]]:
    """Each ``literalinclude`` of ``page`` (MyST or rST): its path and options, quotes removed."""
    found = [*_MD_INCLUDE.finditer(page), *_RST_INCLUDE.finditer(page)]
    return [
        (match.group(1), {key: value.strip("\"'") for key, value in _OPTION.findall(match.group(2))})
        for match in found
    ]


def excerpt(source: str, marker: str) -> str:
    """The lines strictly between the lines holding ``[START marker]`` and ``[END marker]``,
    dedented, as literalinclude's ``:start-after:``/``:end-before:``/``:dedent:`` show them."""
    lines = source.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if f"[START {marker}]" in line]
    ends = [i for i, line in enumerate(lines) if f"[END {marker}]" in line]
    if len(starts) != 1 or len(ends) != 1 or ends[0] <= starts[0] + 1:
        raise LookupError(
            f"marker {marker!r}: {len(starts)} START, {len(ends)} END line(s), or nothing between"
        )
    return textwrap.dedent("".join(lines[starts[0] + 1 : ends[0]]))


def marker_of(options: dict[str, str]) -> str:
    """The marker name a literalinclude's ``:start-after:``/``:end-before:`` agree on."""
    start = re.fullmatch(r"\[START (\w+)\]", options.get("start-after", ""))
    end = re.fullmatch(r"\[END (\w+)\]", options.get("end-before", ""))
    if not start or not end or start.group(1) != end.group(1):
        raise LookupError(f"not a [START x]/[END x] pair: {options}")
    return start.group(1)


@pytest.mark.parametrize(
    ("page", "found"),
    [
        pytest.param("```python\nx = 1\n```\n", ["```python"], id="md-fence"),
        pytest.param("  ```py\nx\n```\n", ["```py"], id="md-fence-py-indented"),
        pytest.param("```{code-block} python\nx\n```\n", ["```{code-block} python"], id="myst-code-block"),
        pytest.param(":::{code} python3\nx\n:::\n", [":::{code} python3"], id="myst-colon-fence"),
        pytest.param(".. code-block:: python\n\n   x = 1\n", [".. code-block:: python"], id="rst-code-block"),
        pytest.param(".. code:: pycon\n\n   >>> 1\n", [".. code:: pycon"], id="rst-code-pycon"),
        pytest.param("```bash\nmake test\n```\n```json\n{}\n```\n", [], id="shell-and-json-are-fine"),
        pytest.param("```{literalinclude} snippets/hook.py\n:language: python\n```\n", [], id="an-include"),
        pytest.param("Use ```python``` fences.\n", [], id="mid-line-is-prose"),
    ],
)
def test_the_inline_python_check_sees_code_blocks(page: str, found: list[str]) -> None:
    assert inline_python_blocks(page) == found


@pytest.mark.parametrize(
    ("page", "includes"),
    [
        pytest.param(
            '```{literalinclude} snippets/a.py\n:language: python\n:start-after: "[START x]"\n'
            ':end-before: "[END x]"\n:dedent:\n```\n',
            [
                (
                    "snippets/a.py",
                    {"language": "python", "start-after": "[START x]", "end-before": "[END x]", "dedent": ""},
                )
            ],
            id="myst",
        ),
        pytest.param(
            ".. literalinclude:: ../example_dags/b.py\n"
            "    :start-after: [START y]\n    :end-before: [END y]\n\nText\n",
            [("../example_dags/b.py", {"start-after": "[START y]", "end-before": "[END y]"})],
            id="rst",
        ),
    ],
)
def test_the_include_parser_reads_path_and_options(page: str, includes: list[Any]) -> None:
    assert literalincludes(page) == includes


@pytest.mark.parametrize(
    ("source", "marker", "expected"),
    [
        pytest.param(
            "a\n    # [START m]\n    x = 1\n\n    y = 2\n    # [END m]\nb\n",
            "m",
            "x = 1\n\ny = 2\n",
            id="dedented",
        ),
        pytest.param("# [START m]\n# [END m]\n", "m", None, id="empty"),
        pytest.param("# [START m]\nx\n", "m", None, id="no-end"),
        pytest.param("# [START m]\nx\n# [END m]\n# [START m]\n# [END m]\n", "m", None, id="twice"),
        pytest.param("# [START mm]\nx\n# [END mm]\n", "m", None, id="another-marker"),
    ],
)
def test_excerpt_takes_exactly_one_marked_region(source: str, marker: str, expected: str | None) -> None:
    if expected is None:
        with pytest.raises(LookupError):
            excerpt(source, marker)
    else:
        assert excerpt(source, marker) == expected


# --- the pages -------------------------------------------------------------------------------------


def test_the_docs_are_found() -> None:
    names = {page.name for page in PAGES}
    assert {"index.md", "connections.md", "hook.md", "operators.md", "sensors.md", "api.rst"} <= names
    assert (DOCS / "conf.py").is_file()


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_no_page_has_hand_written_python(page: Path) -> None:
    assert inline_python_blocks(page.read_text(encoding="utf-8")) == []


def _all_includes() -> list[Any]:
    return [
        pytest.param(page, path, options, id=f"{page.name}:{options.get('start-after', path)}")
        for page in PAGES
        for path, options in literalincludes(page.read_text(encoding="utf-8"))
    ]


INCLUDES = _all_includes()


def test_the_pages_include_samples() -> None:
    assert len(INCLUDES) >= 20


@pytest.mark.parametrize(("page", "path", "options"), INCLUDES)
def test_every_include_is_a_marked_excerpt_of_code_the_suite_runs(
    page: Path, path: str, options: dict[str, str]
) -> None:
    source = (page.parent / path).resolve()
    assert source.is_file(), f"{page.name} includes a missing file {path}"
    assert source.parent in RUN_SOURCES, f"{page.name} includes {path}, which no test runs"
    assert excerpt(source.read_text(encoding="utf-8"), marker_of(options)).strip()


def test_every_snippet_file_is_run_here() -> None:
    """A new snippet file needs a test below (and a sample in a page)."""
    assert {path.stem for path in SNIPPETS.glob("*.py")} == set(SNIPPET_TESTS)


# --- the README ------------------------------------------------------------------------------------

README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_readme_is_a_first_visit() -> None:
    assert len(README.splitlines()) <= 200
    for command in ("make demo", "make test", "pip install airflow-provider-plugz"):
        assert command in README


def test_the_readme_example_is_an_example_dag_excerpt() -> None:
    blocks = re.findall(r"^```python\n(.*?)^```", README, re.MULTILINE | re.DOTALL)
    path, marker = README_EXAMPLE
    assert blocks == [excerpt((ROOT / path).read_text(encoding="utf-8"), marker)]


def test_the_readme_links_into_docs_that_exist() -> None:
    links = re.findall(r"\]\((docs/[^)#\s]+)(?:#[^)]*)?\)", README)
    assert {"docs/index.md", "docs/installation.md", "docs/connections.md"} <= set(links)
    assert [link for link in links if not (ROOT / link).is_file()] == []


# --- the snippets work -----------------------------------------------------------------------------


def load_snippet(name: str) -> ModuleType:
    """docs/snippets/<name>.py as a fresh module (not on sys.path: it is documentation)."""
    return load_file(SNIPPETS / f"{name}.py", f"plugz_docs_snippet_{name}")


def _hook(plugz_connection: Any) -> None:
    hook = load_snippet("hook")
    plugz_connection.set_has_code("sandbox-instance", True)
    described = hook.describe_number()
    assert described.startswith("PIN set; connected: True; test: True (")
    assert hook.with_fewer_retries() is True
    plugz_connection.set_has_code("sandbox-instance", False)
    assert hook.describe_number().startswith("no PIN;")


def _operators(plugz_connection: Any) -> None:
    from airflow_provider_plugz.operators.audit import PlugzPinAuditOperator
    from airflow_provider_plugz.operators.messages import PlugzSendMessageOperator
    from airflow_provider_plugz.operators.plugz import PlugzPinBranchOperator, PlugzSetPinOperator
    from airflow_provider_plugz.sensors.plugz import PlugzInstanceStatusSensor, PlugzPinStatusSensor

    dag = load_snippet("operators").dag
    tasks = {task.task_id: task for task in dag.tasks}
    assert isinstance(tasks["branch_on_pin"], PlugzPinBranchOperator)
    assert tasks["branch_on_pin"].downstream_task_ids == {"ok", "alert", "open_ticket"}
    waits = {task_id: tasks[task_id] for task_id in ("wait_poke", "wait_reschedule", "wait_deferred")}
    assert all(isinstance(wait, PlugzPinStatusSensor) for wait in waits.values())
    assert [wait.mode for wait in waits.values()][:2] == ["poke", "reschedule"]
    assert waits["wait_deferred"].deferrable is True
    assert {tasks[t].__class__ for t in ("set_pin", "set_pin_from_variable")} == {PlugzSetPinOperator}
    assert isinstance(tasks["wait_for_outage"], PlugzInstanceStatusSensor)
    assert isinstance(tasks["audit_pins"], PlugzPinAuditOperator)
    assert isinstance(tasks["tell_oncall"], PlugzSendMessageOperator)
    assert len(tasks) == 17


def _notifications(plugz_connection: Any) -> None:
    from airflow_provider_plugz.notifications.plugz import PlugzNotifier

    module = load_snippet("notifications")
    assert isinstance(module.alert, PlugzNotifier)
    assert module.dag.dag_id == "nightly_sync"
    callback = module.dag.default_args["on_failure_callback"]  # Airflow 2 keeps a copy
    assert isinstance(callback, PlugzNotifier)
    assert callback.phone == module.alert.phone == "{{ var.value.plugz_oncall_phone }}"


def _deadline_alert(plugz_connection: Any) -> None:
    sdk = pytest.importorskip("airflow.sdk")
    if not hasattr(sdk, "DeadlineAlert"):
        pytest.skip("Deadline Alerts need Airflow 3.1+")
    (alert,) = load_snippet("deadline_alert").dag.deadline
    assert "PlugzNotifier" in str(alert.callback.path)


def _sandbox(plugz_connection: Any) -> None:
    seen = load_snippet("sandbox").try_the_sandbox()
    assert seen["base_url"].startswith("http://127.0.0.1:")
    assert seen["faults"] == ["PlugzServerError", "PlugzServerError"]
    assert seen["has_code"] is True
    assert (seen["queued"], seen["delivered"], seen["after_clear"]) == ([False], [True], [])
    assert seen["two_connected"] is False


def _testing(plugz_connection: Any) -> None:
    load_snippet("testing").test_my_dag_sees_no_pin(plugz_connection)
    plugz_connection.set_has_code("sandbox-instance", True)
    with pytest.raises(AssertionError):
        load_snippet("testing").test_my_dag_sees_no_pin(plugz_connection)


SNIPPET_TESTS = {
    "hook": _hook,
    "operators": _operators,
    "notifications": _notifications,
    "deadline_alert": _deadline_alert,
    "sandbox": _sandbox,
    "testing": _testing,
}


@pytest.mark.parametrize("name", sorted(SNIPPET_TESTS))
def test_the_snippet_works(name: str, plugz_connection: Any) -> None:
    SNIPPET_TESTS[name](plugz_connection)
