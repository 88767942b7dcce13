"""The sandbox as a package: its public API, lazy exports and fixtures (what importing it loads,
and that it needs none of the client code it tests: tests/test_import_cost.py)."""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import airflow_provider_plugz.testing.sandbox as sandbox_package
from tests.support.sandbox import pin_url

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
