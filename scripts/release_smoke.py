"""The release workflow's smoke test of a built wheel, run in a fresh virtualenv with Airflow.

    python scripts/release_smoke.py --version 1.0.0

It checks what a user's first minutes touch: the package imports and says its version;
``get_provider_info()`` describes it with that version; Airflow's ProvidersManager finds it
through the entry point; and the sandbox command line starts, prints the connection to use,
answers the hook's Test-button check over loopback, and stops cleanly on SIGTERM. Each check
prints one line; the first failure ends the run with status 1. Nothing secret is printed.
Run it from outside the source tree (the workflow does), so the installed wheel is what imports.
"""

from __future__ import annotations

import argparse
import os
import queue
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

PACKAGE_NAME = "airflow-provider-plugz"
#: How long the sandbox may take to print its connection line (it binds a loopback port).
SANDBOX_START_TIMEOUT = 60.0


class SmokeError(Exception):
    """One check of the smoke test failed; the message says which and why."""


def version_problems(expected: str | None, module_version: str, info: dict[str, Any]) -> list[str]:
    """What is wrong with the package's name and versions, given the version being released."""
    problems: list[str] = []
    if info.get("package-name") != PACKAGE_NAME:
        problems.append(
            f"get_provider_info() names package {info.get('package-name')!r}, not {PACKAGE_NAME!r}"
        )
    if expected is None:
        return problems
    if module_version != expected:
        problems.append(f"__version__ is {module_version!r}, the release is {expected!r}")
    if expected not in info.get("versions", []):
        problems.append(f"get_provider_info()['versions'] is {info.get('versions')!r}, without {expected!r}")
    return problems


def connection_env(lines: list[str]) -> dict[str, str]:
    """The ``export AIRFLOW_CONN_...=...`` lines the sandbox prints, as environment variables."""
    env: dict[str, str] = {}
    for line in lines:
        if line.startswith("export AIRFLOW_CONN_"):
            name, _, value = line.removeprefix("export ").partition("=")
            (env[name],) = shlex.split(value)
    return env


def check_package(expected: str | None) -> str:
    import airflow_provider_plugz
    from airflow_provider_plugz.get_provider_info import get_provider_info

    problems = version_problems(expected, airflow_provider_plugz.__version__, get_provider_info())
    if problems:
        raise SmokeError("; ".join(problems))
    return f"imports as {airflow_provider_plugz.__version__} from {airflow_provider_plugz.__file__}"


def check_providers_manager(expected: str | None) -> str:
    from airflow.providers_manager import ProvidersManager

    providers = ProvidersManager().providers
    if PACKAGE_NAME not in providers:
        raise SmokeError(f"Airflow's ProvidersManager does not list {PACKAGE_NAME}")
    found = providers[PACKAGE_NAME].version
    if expected is not None and found != expected:
        raise SmokeError(f"ProvidersManager lists {PACKAGE_NAME} {found}, the release is {expected}")
    return f"ProvidersManager lists {PACKAGE_NAME} {found}"


def read_until_connection(process: subprocess.Popen[str], timeout: float) -> list[str]:
    """The sandbox's stdout lines up to its first connection line, or SmokeError after ``timeout``."""
    assert process.stdout is not None
    stdout = process.stdout
    lines: queue.Queue[str] = queue.Queue()
    # A thread, not select(): a text stream buffers lines that select() no longer sees.
    threading.Thread(target=lambda: [lines.put(line) for line in stdout], daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while not any(line.startswith("export AIRFLOW_CONN_") for line in seen):
        try:
            seen.append(lines.get(timeout=max(deadline - time.monotonic(), 0.01)).rstrip("\n"))
        except queue.Empty:
            if process.poll() is not None:
                raise SmokeError(f"the sandbox exited early with status {process.returncode}") from None
            if time.monotonic() >= deadline:
                raise SmokeError(f"the sandbox printed no connection within {timeout:g} s") from None
    return seen


def check_sandbox() -> str:
    process = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_plugz.testing.sandbox"],
        stdout=subprocess.PIPE,
        text=True,  # its stderr is ours: what it says there shows in the workflow's log
    )
    try:
        env = connection_env(read_until_connection(process, SANDBOX_START_TIMEOUT))
        os.environ.update(env)
        from airflow_provider_plugz.hooks.plugz import PlugzHook

        ok, message = PlugzHook().test_connection()
        if not ok:
            raise SmokeError(f"the hook's connection test against the sandbox failed: {message}")
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise SmokeError("the sandbox did not stop within 30 s of SIGTERM") from None
    if code != 0:
        raise SmokeError(f"the sandbox exited with status {code} on SIGTERM")
    return f"the sandbox CLI answered the hook's connection test ({message}) and stopped cleanly"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python scripts/release_smoke.py", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--version", help="the version being released (a tag's name, with or without v)")
    args = parser.parse_args(argv)
    expected = args.version.removeprefix("v") if args.version else None
    # A throwaway AIRFLOW_HOME: Airflow writes its config there on first import.
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="plugz-smoke-airflow-"))
    for name, check in (
        ("package", lambda: check_package(expected)),
        ("providers", lambda: check_providers_manager(expected)),
        ("sandbox", check_sandbox),
    ):
        try:
            print(f"smoke: {name}: {check()}", flush=True)
        except SmokeError as exc:
            print(f"smoke: {name}: FAILED: {exc}", file=sys.stderr, flush=True)
            return 1
    print("smoke: all checks passed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
