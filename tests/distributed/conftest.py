"""Fixtures of the distributed test: the built wheel on a real CeleryExecutor deployment, on loopback.

- ``distributed_venv`` (session): ``uv build --wheel`` of this project, installed with the running
  Airflow's version, the Celery provider and psycopg2 into a fresh virtualenv
  (:func:`tests.deployment.stack.build_deployment_venv`).
- ``celery_deployment`` (module): in a throwaway directory, Debian's ``redis-server`` (the Celery
  broker) and PostgreSQL (``initdb`` + ``postgres``: the metadata database and the Celery result
  backend), each on a free 127.0.0.1 port; the sandbox; ``airflow db migrate``; then ``airflow
  api-server``, ``scheduler``, ``dag-processor`` and two ``airflow celery worker`` processes
  (concurrency 1 each), every one its own process (group). The workers get distinct names,
  ``worker-a`` and ``worker-b``, through Airflow's ``[core] hostname_callable`` (both run on this
  one machine, where the default, the FQDN, is the same for both): that is the ``hostname``
  Airflow records on each task instance they run. It waits (always with a deadline) until the
  health endpoint reports the components healthy, both workers are ready and the example DAGs
  are parsed, and stops each process by its pid at teardown, the servers last.

PostgreSQL refuses to run as root: as root, ``initdb`` and ``postgres`` run as the ``postgres``
user Debian's package creates (else ``nobody``), their directory handed to that user.

Without ``redis-server`` or PostgreSQL's binaries (``bash .ci/distributed-deps.sh`` installs
Debian's) or uv the test is skipped, except where ``CI`` is set: there it fails. Every process
writes into ``$AIRFLOW_HOME/logs/processes/``; after a failure the logs are copied to
``test-artifacts/distributed/``.
"""

from __future__ import annotations

import functools
import glob
import logging
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pytest

from tests.deployment.stack import (
    DeploymentError,
    DeploymentVenv,
    RestClient,
    Service,
    airflow_env,
    build_deployment_venv,
    free_port,
    health_text,
    in_ci,
    sandbox_exports,
    stop_all,
    venv_env,
    wait_for,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "distributed"
EXAMPLE_DAGS = ROOT / "example_dags"
DEPS_HINT = "bash .ci/distributed-deps.sh installs Debian's redis-server and postgresql"

# Into the deployment's own virtualenv, never the project's dependencies. Pinned: reproducible.
# psycopg2 for Airflow's (and Celery's result backend's) database sessions, asyncpg for the
# async ones Airflow 3 opens on the same database.
CELERY_REQUIREMENTS = (
    "apache-airflow-providers-celery==3.26.0",
    # The provider imports celery.backends.database.retry, which Celery 5.6 removed.
    "celery[redis]==5.5.3",
    "psycopg2-binary==2.9.13",
    "asyncpg==0.32.0",
)
WORKERS = ("worker-a", "worker-b")
# The module on the workers' PYTHONPATH that gives each its name (see the module docstring).
HOSTNAME_MODULE = "plugz_worker_name"

# Distinctive credentials of the sandbox's first instance, easy to grep for.
INSTANCE_ID = "D15TR1BVTED1NSTANCE0000000001"
INSTANCE_TOKEN = "D15TR1BVTEDT0KEN5ECRET000001"
CLIENT_TOKEN = "D15TR1BVTEDC11E7T0KEN5ECRET01"

SERVER_START_TIMEOUT = 60.0
MIGRATE_TIMEOUT = 240.0
START_TIMEOUT = 240.0
DAG_RUN_TIMEOUT = 300.0
API_START_ATTEMPTS = 3


def _skip_or_fail(reason: str) -> None:
    """Skip on a developer's machine; fail in CI, where the distributed test must run."""
    if in_ci():
        pytest.fail(
            f"{reason}; CI is set, so the distributed test may not be skipped ({DEPS_HINT})", pytrace=False
        )
    pytest.skip(f"{reason} ({DEPS_HINT})")


# --------------------------------------------------------------------------- the system's servers


@dataclass(frozen=True)
class Binaries:
    """Where the servers' programs are: ``redis-server`` and PostgreSQL's ``bin`` directory."""

    redis_server: str
    postgres_bin: Path

    def pg(self, name: str) -> str:
        return str(self.postgres_bin / name)


def _find_binaries() -> Binaries:
    redis = shutil.which("redis-server")
    # Debian keeps initdb, postgres and pg_ctl under /usr/lib/postgresql/<version>/bin.
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    initdb = found[-1] if found else shutil.which("initdb")
    missing = [name for name, path in (("redis-server", redis), ("PostgreSQL's initdb", initdb)) if not path]
    if missing or redis is None or initdb is None:
        _skip_or_fail(f"{' and '.join(missing)} not found")
        raise AssertionError("unreachable")
    bin_dir = Path(initdb).resolve().parent
    absent = [name for name in ("postgres", "pg_isready", "createdb") if not (bin_dir / name).exists()]
    if absent:
        _skip_or_fail(f"{', '.join(absent)} missing beside {initdb}")
    return Binaries(redis_server=redis, postgres_bin=bin_dir)


def _find_uv() -> str:
    beside = Path(sys.executable).with_name("uv")
    if os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("uv")
    if found:
        return found
    _skip_or_fail(
        f"uv is needed to build and install the wheel; it is neither beside {sys.executable} nor on PATH"
    )
    raise AssertionError("unreachable")


def _database_user() -> str | None:
    """Who runs PostgreSQL: None (this user) unless this is root, which initdb refuses."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    pytest.fail("running as root, and neither a 'postgres' nor a 'nobody' user to run PostgreSQL as")
    raise AssertionError("unreachable")


def _redis_pong(port: int) -> bool | None:
    """True once Redis answers PING on 127.0.0.1:``port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.sendall(b"PING\r\n")
            return True if sock.recv(64).startswith(b"+PONG") else None
    except OSError:
        return None


def start_redis(binaries: Binaries, workdir: Path, history: list[Service]) -> int:
    """``redis-server`` on a free loopback port, nothing persisted; its port once it answers PING."""
    port = free_port()
    redis = Service(
        name="redis",
        argv=[
            binaries.redis_server,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        env=dict(os.environ),
        cwd=workdir,
        log_path=workdir / "logs" / "processes" / "redis.log",
    )
    history.append(redis.start())
    wait_for(
        "redis-server to answer PING",
        lambda: _redis_pong(port),
        timeout=SERVER_START_TIMEOUT,
        services=[redis],
    )
    return port


def _run(argv: list[str], *, user: str | None, log_path: Path, timeout: float = 120.0) -> None:
    with log_path.open("ab") as out:
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
            user=user,
        )
    if done.returncode != 0:
        raise DeploymentError(f"`{' '.join(argv[:2])} ...` exited with {done.returncode}; see {log_path}")


def start_postgres(binaries: Binaries, workdir: Path, pg_dir: Path, history: list[Service]) -> str:
    """A new PostgreSQL cluster in ``pg_dir`` (an empty directory of its own: as root it is handed
    to the database's user) on a free loopback port, its unix socket in there too, with a
    database ``airflow`` owned by the superuser ``airflow`` (trust auth: loopback only); its
    SQLAlchemy URL without the driver, ``postgresql://airflow@127.0.0.1:<port>/airflow``."""
    user = _database_user()
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(pg_dir, entry.pw_uid, entry.pw_gid)
    log_path = workdir / "logs" / "processes" / "postgres.log"
    data = pg_dir / "data"
    _run(
        [binaries.pg("initdb"), "-D", str(data), "-U", "airflow", "--auth=trust", "-E", "UTF8", "--no-sync"],
        user=user,
        log_path=log_path,
    )
    port = free_port()
    postgres = Service(
        name="postgres",
        argv=[
            binaries.pg("postgres"),
            "-D",
            str(data),
            "-p",
            str(port),
            "-k",
            str(pg_dir),
            "-c",
            "listen_addresses=127.0.0.1",
            # A throwaway database: durability costs time and buys nothing.
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
        ],
        env=dict(os.environ),
        cwd=pg_dir,
        log_path=log_path,
        user=user,
    )
    history.append(postgres.start())

    def ready() -> bool | None:
        probe = subprocess.run(
            [binaries.pg("pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-U", "airflow"],
            capture_output=True,
            timeout=10,
            check=False,
        )
        return True if probe.returncode == 0 else None

    wait_for("PostgreSQL to accept connections", ready, timeout=SERVER_START_TIMEOUT, services=[postgres])
    _run(
        [binaries.pg("createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "airflow", "airflow"],
        user=None,
        log_path=log_path,
    )
    return f"postgresql://airflow@127.0.0.1:{port}/airflow"


# --------------------------------------------------------------------------- the virtualenv


@pytest.fixture(scope="session")
def binaries() -> Binaries:
    return _find_binaries()


@pytest.fixture(scope="session")
def distributed_venv(binaries: Binaries) -> Iterator[DeploymentVenv]:
    """The wheel, the running Airflow's version and the Celery provider, in a new virtualenv."""
    uv = _find_uv()
    workdir = Path(tempfile.mkdtemp(prefix="plugz-distributed-venv-"))
    started = time.monotonic()
    try:
        try:
            venv = build_deployment_venv(
                uv=uv,
                project=ROOT,
                python=sys.executable,
                airflow_version=version("apache-airflow"),
                workdir=workdir,
                extra_requirements=CELERY_REQUIREMENTS,
            )
        except DeploymentError as exc:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            shutil.copy2(workdir / "uv.log", ARTIFACTS / "uv.log")
            pytest.fail(f"{exc} (kept in {ARTIFACTS})", pytrace=False)
        log.info("distributed venv %s in %.1f s", venv.root, time.monotonic() - started)
        yield venv
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


# --------------------------------------------------------------------------- the deployment


@dataclass
class CeleryDeployment:
    """The running processes of one throwaway CeleryExecutor deployment, and ways to drive it."""

    home: Path
    env: dict[str, str]
    api: RestClient
    sandbox_api: RestClient
    sandbox_connection: dict[str, Any]
    services: dict[str, Service]
    history: list[Service] = field(default_factory=list)

    def wait(self, what: str, probe: Callable[[], Any], *, timeout: float, **kwargs: Any) -> Any:
        """:func:`wait_for` watching every process: a crash ends the wait at once."""
        return wait_for(what, probe, timeout=timeout, services=self.history, **kwargs)

    def run_path(self, dag_id: str, run_id: str) -> str:
        return f"api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}"

    def trigger(self, dag_id: str, conf: dict[str, Any]) -> str:
        run = self.api.call("POST", f"api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf})
        return str(run["dag_run_id"])

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """Every task instance of the run, each mapped one included (with its ``map_index``)."""
        answer = self.api.get(f"{self.run_path(dag_id, run_id)}/taskInstances?limit=1000")
        return list(answer["task_instances"])

    def describe(self, dag_id: str, run_id: str) -> str:
        try:
            run = self.api.get(self.run_path(dag_id, run_id))
            tis = self.task_instances(dag_id, run_id)
        except (OSError, ValueError) as exc:
            return f"REST API not answering: {type(exc).__name__}"
        states = ", ".join(f"{ti['task_id']}{_index(ti['map_index'])}: {ti['state']}" for ti in tis)
        return f"run {run['state']}; {states}"

    def wait_for_run_end(self, dag_id: str, run_id: str) -> dict[str, Any]:
        def finished() -> dict[str, Any] | None:
            run = self.api.get_or_none(self.run_path(dag_id, run_id))
            return run if run is not None and run["state"] in ("success", "failed") else None

        return dict(
            self.wait(
                f"the end of {dag_id} run {run_id}",
                finished,
                timeout=DAG_RUN_TIMEOUT,
                last_seen=lambda: self.describe(dag_id, run_id),
            )
        )

    def xcom(
        self, dag_id: str, run_id: str, task_id: str, key: str = "return_value", map_index: int = -1
    ) -> Any:
        answer = self.api.get(
            f"{self.run_path(dag_id, run_id)}/taskInstances/{task_id}/xcomEntries/{quote(key, safe='')}"
            f"?deserialize=true&map_index={map_index}"
        )
        return answer["value"]


def _index(map_index: int) -> str:
    return "" if map_index < 0 else f"[{map_index}]"


def _airflow(name: str, args: list[str], *, venv: DeploymentVenv, env: dict[str, str], home: Path) -> Service:
    return Service(
        name=name,
        argv=[str(venv.bin / "airflow"), *args],
        env=env,
        cwd=home,  # never the repository: its working tree must not shadow the installed wheel
        log_path=home / "logs" / "processes" / f"{name}.log",
    )


def _healthy(api: RestClient) -> dict[str, Any] | None:
    """The health answer once the database, scheduler and dag-processor are healthy (no triggerer here)."""
    health = api.get_or_none("api/v2/monitor/health")
    if not health:
        return None
    parts = ("metadatabase", "scheduler", "dag_processor")
    return health if all((health.get(part) or {}).get("status") == "healthy" for part in parts) else None


def _worker_ready(worker: Service) -> bool | None:
    """True once Celery logged that the worker is ready (connected to the broker, consuming)."""
    return True if re.search(r"\S+@\S+ ready\.", worker.log()) else None


def _hostname_module(directory: Path) -> None:
    """``plugz_worker_name.hostname()``: the worker's name from its environment, for
    ``[core] hostname_callable`` (Airflow calls it in the worker when a task starts)."""
    directory.mkdir()
    (directory / f"{HOSTNAME_MODULE}.py").write_text(
        "import os\nimport socket\n\n\n"
        "def hostname() -> str:\n"
        '    return os.environ.get("PLUGZ_WORKER_NAME") or socket.getfqdn()\n',
        encoding="utf-8",
    )


def _start_airflow(
    home: Path,
    venv: DeploymentVenv,
    database: str,
    broker: str,
    history: list[Service],
    *,
    executor: str = "CeleryExecutor",
    settings: Mapping[str, str] | None = None,
) -> tuple[dict[str, Service], dict[str, str], RestClient]:
    """``db migrate``, then the api-server, scheduler, dag-processor and two Celery workers.

    ``executor="LocalExecutor"`` starts no workers (the scheduler runs 2 tasks at a time, as the
    2 Celery slots do); ``settings`` go into every process's environment (the benchmarks use it).
    """
    celery = executor == "CeleryExecutor"
    _hostname_module(home / "worker-path")
    # psycopg2, named: for the result backend SQLAlchemy would otherwise pick psycopg (3).
    sql_alchemy_conn = database.replace("postgresql://", "postgresql+psycopg2://", 1)
    for attempt in range(1, API_START_ATTEMPTS + 1):
        port = free_port()
        api_url = f"http://127.0.0.1:{port}"
        env = airflow_env(
            venv=venv,
            home=home,
            api_url=api_url,
            connections={},
            base=os.environ,
            executor=executor,
            sql_alchemy_conn=sql_alchemy_conn,
            settings={
                "AIRFLOW__CELERY__BROKER_URL": broker,
                "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + sql_alchemy_conn,
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": "1",
                # Two workers with one slot each: the scheduler may queue one task per slot.
                # LocalExecutor: its parallelism is its slots.
                "AIRFLOW__CORE__PARALLELISM": "4" if celery else "2",
                **(settings or {}),
            },
        )
        if attempt == 1:
            migrate = _airflow("db-migrate", ["db", "migrate"], venv=venv, env=env, home=home).start()
            history.append(migrate)
            wait_for("airflow db migrate", migrate.exit_code, timeout=MIGRATE_TIMEOUT)
            if migrate.exit_code() != 0:
                raise DeploymentError(
                    f"airflow db migrate exited with {migrate.exit_code()}; see {migrate.log_path}"
                )
        services = {
            "api-server": _airflow(
                "api-server",
                ["api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                venv=venv,
                env=env,
                home=home,
            ),
            "scheduler": _airflow(
                "scheduler", ["scheduler", "--skip-serve-logs"], venv=venv, env=env, home=home
            ),
            "dag-processor": _airflow("dag-processor", ["dag-processor"], venv=venv, env=env, home=home),
        }
        for name in WORKERS if celery else ():
            worker_env = {
                **env,
                "PYTHONPATH": os.pathsep.join(
                    filter(None, [str(home / "worker-path"), env.get("PYTHONPATH")])
                ),
                "AIRFLOW__CORE__HOSTNAME_CALLABLE": f"{HOSTNAME_MODULE}.hostname",
                "PLUGZ_WORKER_NAME": name,
            }
            services[name] = _airflow(
                name,
                [
                    "celery",
                    "worker",
                    "--concurrency",
                    "1",
                    "--celery-hostname",
                    f"{name}@%h",
                    "--skip-serve-logs",
                ],
                venv=venv,
                env=worker_env,
                home=home,
            )
        for service in services.values():
            history.append(service.start())
        api = RestClient(api_url)
        try:
            wait_for(
                "the metadatabase, scheduler and dag-processor healthy",
                functools.partial(_healthy, api),
                timeout=START_TIMEOUT,
                services=services.values(),
                last_seen=functools.partial(health_text, api),
            )
        except DeploymentError:
            server = services["api-server"]
            if server.exit_code() is None or "address already in use" not in server.log().lower():
                raise
            log.warning("port %d was taken before the API server bound it; starting again", port)
            stop_all(list(services.values()))
            continue
        for name in WORKERS if celery else ():
            wait_for(
                f"Celery {name} ready",
                functools.partial(_worker_ready, services[name]),
                timeout=START_TIMEOUT,
                services=services.values(),
            )
        return services, env, api
    raise DeploymentError(f"no free port for airflow api-server in {API_START_ATTEMPTS} attempts")


def _wait_for_dag(deployment: CeleryDeployment, dag_id: str) -> None:
    def parsed() -> bool | None:
        errors = deployment.api.get_or_none("api/v2/importErrors")
        if errors and errors.get("total_entries"):
            files = [error.get("filename") for error in errors["import_errors"]]
            raise DeploymentError(f"example DAGs failed to import: {files}; see the dag-processor log")
        return True if deployment.api.get_or_none(f"api/v2/dags/{dag_id}") else None

    deployment.wait(f"the dag-processor to parse {dag_id}", parsed, timeout=START_TIMEOUT)


def _keep_artifacts(home: Path) -> None:
    """The process and task logs, with the sandbox's credentials redacted, in test-artifacts/."""
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for path in (home / "logs").rglob("*"):
        if path.is_file():
            target = ARTIFACTS / path.relative_to(home / "logs")
            target.parent.mkdir(parents=True, exist_ok=True)
            text = path.read_text(encoding="utf-8", errors="replace")
            for secret in (INSTANCE_TOKEN, CLIENT_TOKEN):
                text = text.replace(secret, "<secret>")
            target.write_text(text, encoding="utf-8")


@pytest.fixture(scope="module")
def celery_deployment(
    binaries: Binaries, distributed_venv: DeploymentVenv, request: pytest.FixtureRequest
) -> Iterator[CeleryDeployment]:
    """plugz_fleet_audit (and the other example DAGs) on a running CeleryExecutor deployment."""
    home = Path(tempfile.mkdtemp(prefix="plugz-distributed-"))
    # Beside, not inside, the home (0700, root's): the database's own user must reach it.
    pg_dir = Path(tempfile.mkdtemp(prefix="plugz-distributed-pg-"))
    (home / "dags").mkdir()
    (home / "logs" / "processes").mkdir(parents=True)
    for dag_file in sorted(EXAMPLE_DAGS.glob("*.py")):
        shutil.copy2(dag_file, home / "dags" / dag_file.name)
    failures_before = request.session.testsfailed
    servers: list[Service] = []  # Redis and PostgreSQL: stopped after everything that uses them
    history: list[Service] = []
    sandbox = Service(
        name="sandbox",
        argv=[
            str(distributed_venv.python),
            "-m",
            "airflow_provider_plugz.testing.sandbox",
            "--port",
            "0",
            "--client-token",
            CLIENT_TOKEN,
            "--instance",
            f"{INSTANCE_ID}:{INSTANCE_TOKEN}",
        ],
        env=venv_env(distributed_venv, os.environ),
        cwd=home,
        log_path=home / "sandbox.log",  # it prints its credentials by design: not under logs/
    )
    setup_failed = True
    try:
        started = time.monotonic()
        redis_port = start_redis(binaries, home, servers)
        database = start_postgres(binaries, home, pg_dir, servers)
        history.append(sandbox.start())
        exports = wait_for(
            "the sandbox to print its connection",
            functools.partial(sandbox_exports, sandbox),
            timeout=SERVER_START_TIMEOUT,
            services=[sandbox],
        )
        services, env, api = _start_airflow(
            home, distributed_venv, database, f"redis://127.0.0.1:{redis_port}/0", history
        )
        import json

        deployment = CeleryDeployment(
            home=home,
            env=env,
            api=api,
            sandbox_api=RestClient(exports["PLUGZ_SANDBOX_URL"]),
            sandbox_connection=json.loads(exports["AIRFLOW_CONN_PLUGZ_DEFAULT"]),
            services=services,
            history=[*servers, sandbox, *services.values()],  # what must keep running
        )
        _wait_for_dag(deployment, "plugz_fleet_audit")
        log.info("CeleryExecutor deployment up in %.1f s: %s", time.monotonic() - started, api.base_url)
        setup_failed = False
        yield deployment
    except DeploymentError as exc:
        pytest.fail(f"{exc} (logs kept in {ARTIFACTS})", pytrace=False)
    finally:
        stop_all(history)
        stop_all(servers)
        if setup_failed or request.session.testsfailed > failures_before:
            _keep_artifacts(home)
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(pg_dir, ignore_errors=True)
