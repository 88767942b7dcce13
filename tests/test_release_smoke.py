"""scripts/release_smoke.py: the release workflow's smoke test of the built wheel must pass on a
good install and fail, saying why, on a wrong one."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_plugz._compat import AIRFLOW_V3
from tests.conftest import ROOT
from tests.support.modules import load_file

if TYPE_CHECKING:
    from pathlib import Path
    from types import ModuleType

SCRIPT = ROOT / "scripts" / "release_smoke.py"


@pytest.fixture(scope="module")
def smoke() -> ModuleType:
    return load_file(SCRIPT, "release_smoke")


GOOD_INFO = {"package-name": "airflow-provider-plugz", "versions": ["1.0.0"]}


@pytest.mark.parametrize(
    ("expected", "module_version", "info", "problems"),
    [
        pytest.param("1.0.0", "1.0.0", GOOD_INFO, [], id="released-version-everywhere"),
        pytest.param(None, "0.0.1.dev3", GOOD_INFO, [], id="no-version-asked"),
        pytest.param(
            "1.0.1",
            "1.0.0",
            GOOD_INFO,
            [
                "__version__ is '1.0.0', the release is '1.0.1'",
                "get_provider_info()['versions'] is ['1.0.0'], without '1.0.1'",
            ],
            id="wrong-build",
        ),
        pytest.param(
            "1.0.0",
            "1.0.0",
            {"package-name": "airflow-provider-plugz", "versions": ["0.1.0"]},
            ["get_provider_info()['versions'] is ['0.1.0'], without '1.0.0'"],
            id="provider-info-lags",
        ),
        pytest.param(
            None,
            "1.0.0",
            {"package-name": "other"},
            ["get_provider_info() names package 'other', not 'airflow-provider-plugz'"],
            id="wrong-package-name",
        ),
    ],
)
def test_version_problems(
    smoke: ModuleType, expected: str | None, module_version: str, info: dict[str, Any], problems: list[str]
) -> None:
    assert smoke.version_problems(expected, module_version, info) == problems


@pytest.mark.parametrize(
    ("lines", "env"),
    [
        pytest.param(
            [
                "# Plugz sandbox listening on http://127.0.0.1:5000 (Ctrl-C to stop)",
                "export PLUGZ_SANDBOX_URL=http://127.0.0.1:5000",
                """export AIRFLOW_CONN_PLUGZ_DEFAULT='{"conn_type":"plugz","host":"h"}'""",
            ],
            {"AIRFLOW_CONN_PLUGZ_DEFAULT": '{"conn_type":"plugz","host":"h"}'},
            id="one-instance",
        ),
        pytest.param(
            ["export AIRFLOW_CONN_A='{}'", 'export AIRFLOW_CONN_B=\'{"x": "it\'"\'"\'s"}\''],
            {"AIRFLOW_CONN_A": "{}", "AIRFLOW_CONN_B": '{"x": "it\'s"}'},
            id="shell-quoting",
        ),
        pytest.param(["# nothing yet"], {}, id="no-connection"),
    ],
)
def test_connection_env(smoke: ModuleType, lines: list[str], env: dict[str, str]) -> None:
    assert smoke.connection_env(lines) == env


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "airflow")}
    env.pop("AIRFLOW_CONN_PLUGZ_DEFAULT", None)
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


@pytest.mark.skipif(not AIRFLOW_V3, reason="the release smoke runs on the newest Airflow 3: run once, there")
def test_the_smoke_test_passes_on_this_install(tmp_path: Path) -> None:
    result = run(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert [line.split(":")[1].strip() for line in lines[:3]] == ["package", "providers", "sandbox"]
    assert "ProvidersManager lists airflow-provider-plugz " in lines[1]
    assert (
        "the sandbox CLI answered the hook's connection test (Connected to Plugz at http://127.0.0.1:"
        in lines[2]
    )
    assert lines[2].endswith("and stopped cleanly")
    assert lines[3:] == ["smoke: all checks passed"]
    assert "sandbox-token" not in result.stdout + result.stderr


def test_the_smoke_test_fails_on_the_wrong_version(tmp_path: Path) -> None:
    result = run(tmp_path, "--version", "v999.0.0")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("smoke: package: FAILED: __version__ is ")
    assert "the release is '999.0.0'" in result.stderr
