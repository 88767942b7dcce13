"""What importing our modules (and parsing the example DAG files) loads, measured in ONE interpreter.

DAG files import our operators, sensors, triggers and notifier on every parse; Airflow's config
imports ``airflow_provider_plugz.sentry``; test code imports ``airflow_provider_plugz.testing``.
Each must load only what it needs. One fresh interpreter (``DRIVER``) takes the steps below in
order; every step runs in a fork of the interpreter's state at that point, so it starts exactly as
it would in a fresh interpreter of its own (nothing another step loaded leaks into it) while
Airflow is imported once, not once per step:

1. from a bare interpreter: the sandbox behind an import blocker, ``airflow_provider_plugz.testing``
   and ``airflow_provider_plugz.sentry``;
2. after ``import airflow_provider_plugz._compat`` (Airflow's base classes, which every DAG file
   loads anyway): the audit operators, the health tasks, the notifier and the example DAG files.

Each step reports the modules loaded after it (``loaded``), those it added (``added``) and the
facts it checked itself (``facts``); a param per former test asserts what that test asserted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from tests.conftest import EXAMPLE_DAGS, ROOT

# The whole module shares one interpreter's answers: tests/conftest.py keeps it on one xdist worker.

DRIVER = """
import json, os, sys, traceback

EXAMPLE_DAGS = sys.argv[1]
results = {}


def step(name, body):
    '''Run ``body`` in a fork of this interpreter as it is now; keep its facts and module deltas.'''
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(read)
        before = set(sys.modules)
        try:
            facts = body()
            loaded = set(sys.modules)
            answer = {"facts": facts, "added": sorted(loaded - before), "loaded": sorted(loaded)}
        except BaseException:
            answer = {"error": traceback.format_exc()}
        with os.fdopen(write, "w") as out:
            json.dump(answer, out)
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as answer:
        text = answer.read()
    os.waitpid(pid, 0)
    results[name] = json.loads(text) if text else {"error": f"step {name} wrote nothing"}


def sandbox_alone():
    '''It cannot share a bug with the client it tests: no Airflow, no HTTP client, none of our
    client modules (a meta-path hook refuses them), and it still serves.'''
    import importlib.abc, urllib.request

    blocked = ("airflow", "requests", "urllib3", "httpx", "httpcore", "anyio")
    ours = ("_protocol", "_compat", "_redaction", "connection", "exceptions", "hooks", "retry", "sentry",
            "operators", "sensors", "triggers")

    class Blocker(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            top, _, rest = name.partition(".")
            if top in blocked or (top == "airflow_provider_plugz" and rest.split(".")[0] in ours):
                raise ImportError(f"the sandbox must not import {name}")
            return None

    sys.meta_path.insert(0, Blocker())
    before = set(sys.modules)
    from airflow_provider_plugz.testing.sandbox import PlugzSandbox

    with PlugzSandbox() as sandbox:
        sandbox.add_instance("i", "t")
        request = urllib.request.Request(
            sandbox.base_url + "/instances/i/token/t/security/two-fa-code",
            headers={"Client-Token": "sandbox-client-token"},
        )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=10) as response:
            answer = json.loads(response.read())
    added = {m.split(".")[0] for m in set(sys.modules) - before}
    third_party = sorted(added - set(sys.stdlib_module_names) - {"airflow_provider_plugz", "h11"})
    return {"answer": answer, "third_party": third_party}


def testing_package():
    import airflow_provider_plugz.testing as t

    facts = {
        "asyncio_on_import": "asyncio" in sys.modules,
        "sandbox_on_import": "airflow_provider_plugz.testing.sandbox" in sys.modules,
    }
    facts["exports"] = bool(t.PlugzSandbox and t.Fault and t.SandboxInstance and t.SentText)
    tops = {m.split(".")[0] for m in sys.modules}
    facts["heavy"] = sorted(tops & {"airflow", "requests", "urllib3", "httpx"})
    return facts


def sentry():
    import airflow_provider_plugz.sentry


def endpoints():
    import airflow_provider_plugz.endpoints as e

    return {"facts": sorted(e.FACTS)}


def audit():
    import airflow_provider_plugz.operators.audit


def health_tasks():
    from airflow_provider_plugz.operators.plugz import PlugzInstanceStatusOperator
    from airflow_provider_plugz.sensors.plugz import PlugzInstanceStatusSensor

    PlugzInstanceStatusOperator(task_id="a")
    PlugzInstanceStatusSensor(task_id="b", state=["disconnected", "session-lost"], deferrable=True)
    PlugzInstanceStatusSensor(task_id="c", connected=True, smartphone_connected=False)


def notifier():
    import airflow_provider_plugz.notifications.plugz


def dag_files(*names):
    def parse():
        import runpy

        for name in names:
            runpy.run_path(os.path.join(EXAMPLE_DAGS, name))

    return parse


# 1. a bare interpreter
step("sandbox_alone", sandbox_alone)
step("testing_package", testing_package)
step("sentry", sentry)
step("endpoints", endpoints)
# 2. Airflow's base classes loaded, as in any DAG file
import airflow_provider_plugz._compat

step("audit", audit)
step("health_tasks", health_tasks)
step("notifier", notifier)
step("security_check_and_onboarding_dags", dag_files("plugz_security_check.py", "plugz_onboarding.py"))
step("security_events_dag", dag_files("plugz_security_events.py"))
print(json.dumps(results))
"""

SANDBOX = "airflow_provider_plugz.testing.sandbox"
HOOK = "airflow_provider_plugz.hooks.plugz"
# The transports import requests or httpx: named too, since Airflow 3 may have loaded httpx already.
TRANSPORTS = [
    "airflow_provider_plugz.transports.sync_requests",
    "airflow_provider_plugz.transports.async_httpx",
]


@pytest.fixture(scope="module")
def import_steps() -> dict[str, Any]:
    """The driver's answers, per step (one interpreter for the whole module)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", DRIVER, str(EXAMPLE_DAGS)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env=env,
        timeout=300,
    )
    steps: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return steps


# Per former test: its step, then what it asserted. ``absent`` (not loaded at all after the step,
# as in a fresh interpreter), ``not_added`` (not loaded by the step beyond Airflow's base classes),
# ``added`` (loaded by the step), ``facts`` (what the step checked itself, exactly).
CASES = [
    pytest.param(
        "sandbox_alone",
        {"facts": {"answer": {"success": True, "hasCode": False}, "third_party": []}},
        id="test_the_sandbox_needs_only_the_standard_library_and_h11",
    ),
    pytest.param(
        "testing_package",
        {
            "facts": {
                "asyncio_on_import": False,
                "sandbox_on_import": False,
                "exports": True,
                "heavy": [],
            }
        },
        id="test_importing_the_package_starts_nothing",
    ),
    pytest.param(
        "sentry",
        {"absent": ["sentry_sdk", "airflow", "requests", "httpx"]},
        id="test_importing_the_module_is_cheap",
    ),
    pytest.param(
        "endpoints",
        {
            "absent": [
                "airflow",
                "airflow_provider_plugz._protocol",
                "airflow_provider_plugz._redaction",
                "airflow_provider_plugz._answer_texts",
                "airflow_provider_plugz.transports",
                HOOK,
                "requests",
                "httpx",
                "asyncio",
            ],
            "facts": {"facts": ["connection", "pin", "queue"]},
        },
        id="test_the_declarations_are_light_the_audit_and_the_watcher_read_them_at_parse_time",
    ),
    pytest.param(
        "audit",
        {
            "not_added": [
                HOOK,
                *TRANSPORTS,
                "airflow_provider_plugz.hooks.fleet",
                "airflow_provider_plugz.audit.fanout",
                "asyncio",
                "httpx",
                "requests",
                SANDBOX,
            ]
        },
        id="test_importing_the_operator_loads_no_hook_or_http_client",
    ),
    pytest.param(
        "health_tasks",
        {
            "not_added": [
                HOOK,
                *TRANSPORTS,
                "airflow_provider_plugz.endpoints",
                "airflow_provider_plugz.triggers.plugz",
                "requests",
                "httpx",
            ]
        },
        id="test_importing_and_building_the_health_tasks_loads_no_hook_endpoints_or_trigger",
    ),
    pytest.param(
        "notifier",
        {"not_added": [HOOK, *TRANSPORTS, "requests", "httpx", "airflow_provider_plugz.endpoints"]},
        id="test_importing_the_notifier_loads_no_hook_or_http_client",
    ),
    pytest.param(
        "security_check_and_onboarding_dags",
        {
            "absent": [HOOK, "airflow_provider_plugz.triggers.plugz", SANDBOX],
            "added": ["airflow_provider_plugz.operators.plugz", "airflow_provider_plugz.sensors.plugz"],
        },
        id="test_parsing_a_dag_file_loads_no_hook_http_client_or_sandbox",
    ),
    pytest.param(
        "security_events_dag",
        {"absent": [HOOK, SANDBOX], "added": ["airflow_provider_plugz.triggers.events"]},
        id="test_parsing_the_security_events_dag_loads_no_hook_or_sandbox",
    ),
]


@pytest.mark.parametrize(("step", "expected"), CASES)
def test_import_cost(import_steps: dict[str, Any], step: str, expected: dict[str, Any]) -> None:
    answer = import_steps[step]
    assert "error" not in answer, answer.get("error")
    loaded, added = set(answer["loaded"]), set(answer["added"])
    assert sorted(m for m in expected.get("absent", ()) if m in loaded) == []
    assert sorted(m for m in expected.get("not_added", ()) if m in added) == []
    assert sorted(m for m in expected.get("added", ()) if m not in added) == []
    if "facts" in expected:
        assert answer["facts"] == expected["facts"]


def test_every_step_is_checked() -> None:
    """A step the driver takes but no param reads would check nothing."""
    taken = {line.split('"')[1] for line in DRIVER.splitlines() if line.startswith("step(")}
    assert taken == {case.values[0] for case in CASES}
