"""Building blocks of the deployment test: a wheel in a fresh virtualenv, processes, the REST API.

Nothing here imports Airflow or this provider: the processes under test run from their own
virtualenv, and this module only starts them, talks to them over loopback and stops them.

- :func:`build_deployment_venv` builds this project's wheel and installs it, with Airflow, into a
  new virtualenv with uv (never the editable working tree).
- :class:`Service` is one long-running process (``airflow scheduler``, the sandbox, ...) in its own
  process group, its stdout and stderr in one log file; :meth:`Service.stop` ends it by its pid.
- :func:`wait_for` polls with a deadline and gives up early when a service it relies on died.
- :class:`RestClient` calls a JSON API on loopback, never through a proxy from the environment.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import shlex
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence
    from pathlib import Path

T = TypeVar("T")

# A graceful stop of an Airflow process takes 1-5 s here; after this it is killed.
STOP_TIMEOUT = 20.0
UV_TIMEOUT = 900.0  # a cold uv cache downloads Airflow and ~200 dependencies
SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
# Variables of the test process that must not leak into the deployment: they would point it at
# another Airflow, or at the working tree instead of the installed wheel. Its processes write
# bytecode beside the virtualenv's files (deleted with it), not into the repository's cache.
_DROPPED_ENV = (
    "PYTHONPATH",
    "PYTHONHOME",
    "VIRTUAL_ENV",
    "PYTHONDONTWRITEBYTECODE",
    "PYTHONPYCACHEPREFIX",
    "PYTHONSTARTUP",
)


class DeploymentError(Exception):
    """A step of the deployment did not happen; the message says which and where its log is."""


# --------------------------------------------------------------------------- the virtualenv


@dataclass(frozen=True)
class DeploymentVenv:
    """A virtualenv holding the built wheel and Airflow; ``python`` is its interpreter."""

    root: Path
    wheel: Path
    airflow_version: str

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    @property
    def python(self) -> Path:
        return self.bin / "python"


def _run_logged(argv: list[str], log: Path, *, cwd: Path, env: Mapping[str, str], timeout: float) -> None:
    """Run one command, appending its output to ``log``; DeploymentError if it fails."""
    with log.open("ab") as out:
        out.write(f"\n$ {shlex.join(argv)}\n".encode())
        out.flush()
        try:
            done = subprocess.run(
                argv,
                cwd=cwd,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise DeploymentError(
                f"`{shlex.join(argv[:3])} ...` took over {timeout:.0f} s; see {log}"
            ) from None
    if done.returncode != 0:
        tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-15:]
        raise DeploymentError(
            f"`{shlex.join(argv[:3])} ...` exited with {done.returncode}; see {log}:\n" + "\n".join(tail)
        )


def build_deployment_venv(
    *,
    uv: str,
    project: Path,
    python: str,
    airflow_version: str,
    workdir: Path,
    extra_requirements: Sequence[str] = (),
) -> DeploymentVenv:
    """Build the project's wheel and install it with ``apache-airflow==airflow_version`` into a new venv.

    ``python`` picks the interpreter (the running one, so versions match); ``extra_requirements``
    are installed with them, in the same resolution (e.g. a provider of another executor); the
    log of every step is ``workdir/uv.log``.
    """
    log = workdir / "uv.log"
    dist = workdir / "dist"
    venv = workdir / "venv"
    env = {key: value for key, value in os.environ.items() if key not in _DROPPED_ENV}
    _run_logged(
        [uv, "build", "--wheel", "--out-dir", str(dist), str(project)],
        log,
        cwd=project,
        env=env,
        timeout=UV_TIMEOUT,
    )
    wheels = sorted(dist.glob("*.whl"))
    if len(wheels) != 1:
        raise DeploymentError(f"expected one wheel in {dist}, found {[w.name for w in wheels]}; see {log}")
    # cwd=workdir: uv must not read the project's pyproject.toml for the venv or the install.
    _run_logged([uv, "venv", "--python", python, str(venv)], log, cwd=workdir, env=env, timeout=UV_TIMEOUT)
    _run_logged(
        [
            uv,
            "pip",
            "install",
            "--python",
            str(venv / "bin" / "python"),
            str(wheels[0]),
            f"apache-airflow=={airflow_version}",
            *extra_requirements,
        ],
        log,
        cwd=workdir,
        env=env,
        timeout=UV_TIMEOUT,
    )
    return DeploymentVenv(root=venv, wheel=wheels[0], airflow_version=airflow_version)


# --------------------------------------------------------------------------- processes


@dataclass
class Service:
    """One long-running process of the deployment, in its own process group.

    stdout and stderr go to ``log_path`` (appended, so a restarted service keeps one history).
    ``user`` runs it as that user (the test must run as root), e.g. a database server that
    refuses to run as root.
    """

    name: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    log_path: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    # Set by stop() when the process ignored SIGTERM for its whole timeout.
    killed: bool = False
    user: str | None = None

    def start(self) -> Service:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"=== {time.strftime('%H:%M:%S')} $ {shlex.join(self.argv)}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: its children are stopped with it
                user=self.user,
            )
        return self

    @property
    def pid(self) -> int:
        if self.process is None:
            raise DeploymentError(f"{self.name} was never started")
        return self.process.pid

    def exit_code(self) -> int | None:
        """None while it runs (or before it started), else its exit status."""
        return None if self.process is None else self.process.poll()

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM its pid (the graceful stop Airflow handles), then SIGKILL what is left.

        The process gets ``timeout`` seconds to exit (else ``killed`` is set); then its whole
        process group is killed, which also ends any child it left behind (task runners, uvicorn
        workers).
        """
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            try:
                os.kill(process.pid, signal.SIGTERM)
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.killed = True
                with self.log_path.open("ab") as log:
                    log.write(f"=== not stopped {timeout:.0f} s after SIGTERM: SIGKILL\n".encode())
            except ProcessLookupError:
                pass
        # The leader is gone or late; its group id stays reserved while any member lives.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(
    what: str,
    probe: Callable[[], T | None],
    *,
    timeout: float,
    services: Iterable[Service] = (),
    interval: float = 0.5,
    last_seen: Callable[[], str] | None = None,
) -> T:
    """Call ``probe`` until it returns something other than None, for at most ``timeout`` seconds.

    Stops early with a DeploymentError when one of ``services`` exits; ``last_seen`` adds the
    state it last saw to the timeout message.
    """
    watched = list(services)
    deadline = time.monotonic() + timeout
    while True:
        for service in watched:
            code = service.exit_code()
            if code is not None:
                raise DeploymentError(
                    f"{service.name} exited with {code} while waiting for {what}; see {service.log_path}"
                )
        value = probe()
        if value is not None:
            return value
        if time.monotonic() >= deadline:
            seen = f" (last seen: {last_seen()})" if last_seen is not None else ""
            raise DeploymentError(f"{what} did not happen within {timeout:.0f} s{seen}")
        time.sleep(interval)


def shell_exports(text: str) -> dict[str, str]:
    """``NAME -> value`` of every complete ``export NAME=value`` line (the sandbox CLI prints them)."""
    exports: dict[str, str] = {}
    for line in text.splitlines(keepends=True):
        if not line.startswith("export ") or not line.endswith("\n"):
            continue
        words = shlex.split(line[len("export ") :])
        if len(words) == 1 and "=" in words[0]:
            name, value = words[0].split("=", 1)
            exports[name] = value
    return exports


# --------------------------------------------------------------------------- HTTP on loopback


class RestClient:
    """JSON over HTTP to one loopback base URL (no auth: the deployment lets everyone in)."""

    _opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")

    def call(self, method: str, path: str, body: Any = None, *, timeout: float = 30.0) -> Any:
        """The decoded JSON answer (None for an empty one); HTTPError for a non-2xx status."""
        request = urllib.request.Request(
            f"{self.base_url}/{path.lstrip('/')}",
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        with self._opener.open(request, timeout=timeout) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def get(self, path: str) -> Any:
        return self.call("GET", path)

    def get_or_none(self, path: str) -> Any:
        """GET, or None while the server is not answering (yet) or answers 4xx/5xx."""
        try:
            return self.get(path)
        except (OSError, ValueError):  # URLError, HTTPError and refused connections are OSErrors
            return None


def venv_env(venv: DeploymentVenv, base: Mapping[str, str]) -> dict[str, str]:
    """``base`` without Airflow settings or anything that would put the working tree on ``sys.path``,
    with the virtualenv first on PATH, as if it were activated."""
    env = {
        key: value for key, value in base.items() if not key.startswith("AIRFLOW") and key not in _DROPPED_ENV
    }
    env["PATH"] = f"{venv.bin}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv.root)
    return env


def airflow_env(
    *,
    venv: DeploymentVenv,
    home: Path,
    api_url: str,
    connections: Mapping[str, str],
    base: Mapping[str, str],
    executor: str = "LocalExecutor",
    sql_alchemy_conn: str | None = None,
    settings: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment of every Airflow process: a throwaway SQLite home, LocalExecutor, loopback.

    ``base`` is the test process's environment (see :func:`venv_env`); ``connections`` maps
    ``AIRFLOW_CONN_*`` names to their values. One Fernet key and one JWT secret are shared by all
    processes, as in a real deployment (the scheduler signs the tokens the API server checks).
    ``executor`` and ``sql_alchemy_conn`` (default: SQLite in ``home``) pick another executor
    and metadata database; ``settings`` (``AIRFLOW__SECTION__KEY`` names) are added last, so
    they win.
    """
    env = venv_env(venv, base)
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sql_alchemy_conn or f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            # Airflow 3 runs LocalExecutor on SQLite (`airflow standalone` does too); 2 cores here.
            "AIRFLOW__CORE__EXECUTOR": executor,
            "AIRFLOW__CORE__PARALLELISM": "2",
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            # Only the runs the test triggers: no scheduled run of the @daily example DAGs.
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            "AIRFLOW__CORE__DEFAULT_TASK_RETRIES": "0",
            "AIRFLOW__API__BASE_URL": api_url,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api_url}/execution/",
            "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__FERNET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
        }
    )
    env.update(connections)
    env.update(settings or {})
    return env


# --------------------------------------------------------------------------- shared by the conftests


def in_ci() -> bool:
    """Whether ``CI`` is set: then a test that needs a missing tool fails instead of skipping."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def health_text(api: RestClient) -> str:
    """The API server's health answer, for a wait's "last seen"."""
    return str(api.get_or_none("api/v2/monitor/health"))


def sandbox_exports(sandbox: Service) -> dict[str, str] | None:
    """The sandbox CLI's ``export`` lines, once it printed both its URL and the connection."""
    exports = shell_exports(sandbox.log())
    return exports if {"PLUGZ_SANDBOX_URL", "AIRFLOW_CONN_PLUGZ_DEFAULT"} <= exports.keys() else None


def stop_all(services: Iterable[Service]) -> None:
    """Stop every service at once (each by its pid); one slow stop does not delay the others."""
    stopping = list(services)
    with ThreadPoolExecutor(max_workers=max(1, len(stopping))) as pool:
        list(pool.map(Service.stop, stopping))
