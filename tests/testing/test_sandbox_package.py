"""The sandbox as a package: cheap to import, independent of the client code it tests, its fixtures."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import airflow_provider_plugz.testing.sandbox as sandbox_package
from tests.testing.conftest import pin_url

if TYPE_CHECKING:
    import requests

    from airflow_provider_plugz.testing import PlugzSandbox

ROOT = Path(__file__).resolve().parents[2]

PUBLIC = {
    "DEFAULT_CLIENT_TOKEN",
    "DEFAULT_INSTANCE_ID",
    "DEFAULT_INSTANCE_TOKEN",
    "Fault",
    "FaultKind",
    "Headers",
    "InstanceKind",
    "InstanceState",
    "PlugzSandbox",
    "RecordedRequest",
    "SandboxFullError",
    "SandboxInstance",
    "SandboxUsage",
    "SentText",
    "main",
}

# Run in a fresh interpreter that cannot import Airflow, HTTP clients or our client code.
INDEPENDENT = """
import importlib.abc, json, sys, urllib.request

BLOCKED = ("airflow", "requests", "urllib3", "httpx", "httpcore", "anyio")
OURS = ("_protocol", "_compat", "_redaction", "connection", "exceptions", "hooks", "retry", "sentry",
        "operators", "sensors", "triggers")

class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        top, _, rest = name.partition(".")
        if top in BLOCKED or (top == "airflow_provider_plugz" and rest.split(".")[0] in OURS):
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
print(json.dumps({"answer": answer, "third_party": third_party}))
"""


def test_importing_the_package_starts_nothing() -> None:
    code = (
        "import sys\n"
        "import airflow_provider_plugz.testing as t\n"
        "assert 'asyncio' not in sys.modules, 'asyncio imported eagerly'\n"
        "assert 'airflow_provider_plugz.testing.sandbox' not in sys.modules\n"
        "assert t.PlugzSandbox and t.Fault and t.SandboxInstance and t.SentText\n"
        "heavy = {m.split('.')[0] for m in sys.modules} & {'airflow', 'requests', 'urllib3', 'httpx'}\n"
        "assert not heavy, heavy\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 0, result.stderr


def test_pytest_plugin_imports_only_pytest_and_typing_at_top_level() -> None:
    import airflow_provider_plugz.testing.pytest_plugin as plugin

    tree = ast.parse(Path(plugin.__file__).read_text())
    imported = set()
    for node in tree.body:  # the top level only; TYPE_CHECKING blocks are ast.If and skipped
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module or "")
    assert imported == {"__future__", "typing", "pytest"}


def test_the_sandbox_needs_only_the_standard_library_and_h11() -> None:
    """It cannot share a bug with the client it tests: no Airflow, no HTTP client, none of our client
    modules (a meta-path hook refuses them), and it still serves."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", INDEPENDENT], capture_output=True, text=True, env=env, check=False, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"answer": {"success": True, "hasCode": False}, "third_party": []}


def test_public_api() -> None:
    assert set(sandbox_package.__all__) == PUBLIC
    assert all(getattr(sandbox_package, name) is not None for name in PUBLIC)


def test_lazy_exports_reject_unknown_names() -> None:
    import airflow_provider_plugz.testing as testing

    with pytest.raises(AttributeError):
        _ = testing.Nothing
    assert {"Fault", "PlugzSandbox", "SandboxInstance", "SentText"} <= set(dir(testing))
    assert testing.SentText is sandbox_package.SentText


def test_plugz_sandbox_fixture(plugz_sandbox: PlugzSandbox, http: requests.Session) -> None:
    url = pin_url(plugz_sandbox, "sandbox-instance", "sandbox-token")
    assert http.get(url, headers={"Client-Token": "sandbox-client-token"}).json() == {
        "success": True,
        "hasCode": False,
    }
    assert http.get(url).status_code == 400
    assert plugz_sandbox.instance("sandbox-instance").kind == "mobile"


def test_plugz_connection_fixture(plugz_connection: PlugzSandbox, http: requests.Session) -> None:
    conn = json.loads(os.environ["AIRFLOW_CONN_PLUGZ_DEFAULT"])
    assert conn["host"] == plugz_connection.base_url
    url = f"{conn['host']}/instances/{conn['login']}/token/{conn['password']}/security/two-fa-code"
    response = http.get(url, headers={"Client-Token": conn["extra"]["client_token"]})
    assert response.json() == {"success": True, "hasCode": False}
