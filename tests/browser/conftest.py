"""Fixtures for the browser tests: a real ``airflow api-server`` on loopback and headless Chromium.

- ``airflow_api_server`` runs ``airflow db migrate`` and then ``airflow api-server`` in a throwaway
  ``AIRFLOW_HOME`` (SQLite), on a free 127.0.0.1 port, with connection testing enabled and
  SimpleAuthManager letting everyone in as admin. It waits for ``/api/v2/monitor/health`` and
  kills the server's process group at teardown; the server log goes to
  ``test-artifacts/browser/api-server.log`` when a test of the module failed.
- ``page`` is a fresh tab of one headless Chromium (Debian's package, never a downloaded build)
  driven by Playwright. When a test fails, its last screen and HTML are saved beside the log.

Without Chromium or Playwright the tests are skipped, except where ``CI`` is set: there they fail,
so a CI machine that lacks them cannot pass silently. ``bash .ci/browser-deps.sh`` installs both.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

    from playwright.sync_api import BrowserContext, Page

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
# The Airflow CLI of the interpreter running the tests, so the server sees the same packages.
AIRFLOW = (sys.executable, "-m", "airflow")
# One worker is plenty for one browser; "core" is the REST API and the UI, without the execution API.
SERVER_OPTIONS = ("--workers", "1", "--apps", "core")

# `db migrate` plus the server's start take ~22 s here (~30 s with a cold bytecode cache).
SERVER_START_TIMEOUT = 150.0
# Without these flags Chromium stalls on a machine that reaches no internet; no proxy for loopback.
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-proxy-server",
)
CHROMIUM_ENV = "PLUGZ_CHROMIUM"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
DEPS_HINT = (
    "bash .ci/browser-deps.sh installs Debian's chromium and the 'browser' dependency group (playwright)"
)

_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _unavailable(reason: str) -> None:
    """Skip on a developer's machine; fail in CI, where the browser test must run."""
    if _in_ci():
        pytest.fail(
            f"{reason}; CI is set, so the browser test may not be skipped ({DEPS_HINT})", pytrace=False
        )
    pytest.skip(f"{reason} ({DEPS_HINT})")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[pytest.TestReport]:
    """Keep each phase's report on the item, so fixtures can tell whether their test failed."""
    report: pytest.TestReport = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report


def _failed(item: pytest.Item) -> bool:
    return any(report.failed for report in item.stash.get(_REPORTS, {}).values())


# --------------------------------------------------------------------------- the browser


@pytest.fixture(scope="module")
def chromium_executable() -> str:
    """Path of the system Chromium (``$PLUGZ_CHROMIUM`` overrides the search)."""
    configured = os.environ.get(CHROMIUM_ENV)
    if configured:
        if not os.access(configured, os.X_OK):
            pytest.fail(f"{CHROMIUM_ENV}={configured!r} is not an executable file", pytrace=False)
        return configured
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    _unavailable("Chromium is not installed")
    raise AssertionError("unreachable")


@pytest.fixture(scope="module")
def browser_context(
    chromium_executable: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BrowserContext]:
    """One headless Chromium with a fresh profile, English UI and UTC, for the whole module."""
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        _unavailable("Playwright is not installed")
        raise
    expect.set_options(timeout=20_000)
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=chromium_executable,
            headless=True,
            args=list(CHROMIUM_ARGS),
            # Airflow's UI follows the browser's language: pin it, or labels change with the machine.
            locale="en-US",
            timezone_id="UTC",
            viewport={"width": 1280, "height": 900},
        )
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser_context: BrowserContext, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A new tab; on failure its screen, HTML and JavaScript errors go to test-artifacts/browser/."""
    tab = browser_context.new_page()
    tab.set_default_timeout(20_000)
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    yield tab
    if _failed(request.node):
        stem = ARTIFACTS / f"FAILED-{re.sub(r'[^A-Za-z0-9_.-]+', '_', request.node.name)}"
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        try:
            tab.screenshot(path=f"{stem}.png", full_page=True)
            Path(f"{stem}.html").write_text(tab.content(), encoding="utf-8")
        except Exception as exc:  # the tab may be gone; keep the test's own error
            errors.append(f"could not capture the page: {exc!r}")
        if errors:
            Path(f"{stem}.errors.txt").write_text("\n".join(errors) + "\n", encoding="utf-8")
    tab.close()


# --------------------------------------------------------------------------- the API server


@dataclass(frozen=True)
class AirflowApiServer:
    """A running ``airflow api-server``; ``api()`` calls its REST API (no auth needed)."""

    base_url: str
    home: Path
    log_path: Path

    def api(self, method: str, path: str, body: Any = None) -> Any:
        """Call ``/api/v2/<path>`` and return the decoded JSON answer."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.base_url}/api/v2/{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        with _NO_PROXY.open(request, timeout=30) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


# Loopback only: never route our own calls through a proxy from the environment.
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _server_env(home: Path) -> dict[str, str]:
    """This process's environment without any Airflow setting, plus a throwaway SQLite home."""
    from cryptography.fernet import Fernet  # installed with Airflow

    env = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW")}
    dags = home / "dags"
    dags.mkdir(parents=True, exist_ok=True)
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            # The UI's Test button, off by default.
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            # SimpleAuthManager (Airflow 3's default) with no login: everyone is admin.
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            # Saved connection passwords and extras are encrypted, as in a real deployment.
            "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
            # Long enough that PyJWT does not warn about a weak HMAC key.
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
        }
    )
    # The bytecode cache tests/conftest.py set up comes with os.environ (PYTHONPYCACHEPREFIX).
    return env


def _wait_healthy(process: subprocess.Popen[bytes], base_url: str, deadline: float) -> str:
    """``healthy`` once the server answers its health check, else ``exited`` or ``timeout``."""
    url = f"{base_url}/api/v2/monitor/health"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return "exited"
        try:
            with _NO_PROXY.open(url, timeout=2) as response:
                health = json.loads(response.read())
            if health.get("metadatabase", {}).get("status") == "healthy":
                return "healthy"
        except (OSError, ValueError):
            pass
        time.sleep(0.2)
    return "timeout"


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group (uvicorn and its worker), SIGKILL if it lingers."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=15)
        except ProcessLookupError:
            pass
    process.wait()


def _keep_log(log_path: Path) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    kept = ARTIFACTS / "api-server.log"
    shutil.copyfile(log_path, kept)
    return kept


@pytest.fixture(scope="module")
def airflow_api_server(
    chromium_executable: str, request: pytest.FixtureRequest
) -> Iterator[AirflowApiServer]:
    """``airflow api-server`` with this provider installed, on a free loopback port.

    Depends on ``chromium_executable`` so that a machine without Chromium skips before paying
    for the server's start (~20 s).
    """
    home = Path(tempfile.mkdtemp(prefix="plugz-browser-airflow-"))
    log_path = home / "api-server.log"
    env = _server_env(home)
    failures_before = request.session.testsfailed
    process: subprocess.Popen[bytes] | None = None
    try:
        with log_path.open("ab") as log:
            migrate = subprocess.run(
                [*AIRFLOW, "db", "migrate"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=SERVER_START_TIMEOUT,
                check=False,
            )
        if migrate.returncode != 0:
            pytest.fail(f"airflow db migrate failed; see {_keep_log(log_path)}", pytrace=False)

        deadline = time.monotonic() + SERVER_START_TIMEOUT
        for _attempt in range(3):
            port = _free_port()
            base_url = f"http://127.0.0.1:{port}"
            with log_path.open("ab") as log:
                log.write(f"\n=== airflow api-server on {base_url}\n".encode())
                log.flush()
                process = subprocess.Popen(
                    [*AIRFLOW, "api-server", "--host", "127.0.0.1", "--port", str(port), *SERVER_OPTIONS],
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group, killed as a whole
                )
            state = _wait_healthy(process, base_url, deadline)
            if state == "healthy":
                break
            _stop(process)
            if state == "timeout":
                pytest.fail(
                    f"airflow api-server was not healthy within {SERVER_START_TIMEOUT:.0f} s; "
                    f"see {_keep_log(log_path)}",
                    pytrace=False,
                )
            if "address already in use" not in log_path.read_text(errors="replace").lower():
                pytest.fail(
                    f"airflow api-server exited with {process.returncode}; see {_keep_log(log_path)}",
                    pytrace=False,
                )
        else:
            pytest.fail(f"no free port for airflow api-server; see {_keep_log(log_path)}", pytrace=False)

        yield AirflowApiServer(base_url=base_url, home=home, log_path=log_path)
    finally:
        if process is not None:
            _stop(process)
        if request.session.testsfailed > failures_before and log_path.exists():
            _keep_log(log_path)
        shutil.rmtree(home, ignore_errors=True)
