"""Fixtures of the deployment test: the built wheel, installed, running in real Airflow processes.

- ``deployment_venv`` (session): ``uv build --wheel`` of this project, installed with the running
  Airflow's version into a fresh virtualenv (``uv venv``, ``uv pip install``) in a temp dir.
- ``airflow_deployment`` (session): a throwaway ``AIRFLOW_HOME`` (SQLite) whose DAGs folder holds
  copies of the example DAGs; the sandbox CLI from that venv; ``airflow db migrate``; then
  ``airflow api-server``, ``scheduler``, ``dag-processor`` and ``triggerer``, each its own process
  (group) on 127.0.0.1, with ``AIRFLOW_CONN_PLUGZ_DEFAULT`` pointing at the sandbox. It waits
  (always with a deadline) until the health endpoint reports every component healthy and the
  example DAGs are parsed, and stops each process by its pid at teardown. Starting one costs
  ~45 s of CPU here, so the folder's modules share it.
- ``deployment`` (module): that deployment as the test module declares it (:meth:`Deployment.enter`):
  no run of the module before still running, the module's DAGs deployed and the others paused,
  its environment in the processes named, the sandbox's outbox, faults and PIN as at the start.
  Modules run in :data:`MODULE_ORDER`.

Every process writes its stdout and stderr into ``$AIRFLOW_HOME/logs/processes/``, beside the
task and trigger logs; the sandbox (which prints its credentials by design) writes elsewhere.
When a test failed, the logs are copied to ``test-artifacts/deployment/``.

Without uv the test is skipped, except where ``CI`` is set: there it fails (``make install``
puts uv into the virtualenv).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pytest

from tests.deployment.stack import (
    STOP_TIMEOUT,
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
ARTIFACTS = ROOT / "test-artifacts" / "deployment"
EXAMPLE_DAGS = ROOT / "example_dags"

# Distinctive, realistic-length credentials of the sandbox's one instance, easy to grep for.
INSTANCE_ID = "DEP10YED1NSTANCE00000000000001"
INSTANCE_TOKEN = "DEP10YEDT0KEN5ECRET0000000001"
CLIENT_TOKEN = "DEP10YEDC11E7T0KEN5ECRET00001"
SECRETS = {"instance id": INSTANCE_ID, "instance token": INSTANCE_TOKEN, "Client-Token": CLIENT_TOKEN}

EXAMPLE_DAG_IDS = ("plugz_security_check", "plugz_onboarding", "plugz_fleet_audit")
# The modules share one deployment, in this order: a module may leave something running for good
# (plugz_security_events' watcher keeps polling the sandbox), so that one comes last.
MODULE_ORDER = ("test_deployment.py", "test_triggerer_loop.py", "test_security_events.py")

# Measured here on 2 shared cores: sandbox, `db migrate`, every component healthy and the DAGs
# parsed in 16-30 s. The bounds leave room for a slower or busier CI machine.
MIGRATE_TIMEOUT = 240.0
START_TIMEOUT = 240.0
SANDBOX_START_TIMEOUT = 60.0
DAG_RUN_TIMEOUT = 180.0
API_START_ATTEMPTS = 3
KEEP_LOGS_ENV = "PLUGZ_DEPLOYMENT_KEEP_LOGS"


def _keep_logs_asked() -> bool:
    """``PLUGZ_DEPLOYMENT_KEEP_LOGS=1`` keeps the logs in test-artifacts/deployment/ after a pass too."""
    return os.environ.get(KEEP_LOGS_ENV, "").strip().lower() not in ("", "0", "false", "no")


def _find_uv() -> str:
    """uv beside the running interpreter (``make install`` puts it there), else on PATH."""
    beside = Path(sys.executable).with_name("uv")
    if os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("uv")
    if found:
        return found
    reason = f"uv is needed to build and install the wheel; it is neither beside {sys.executable} nor on PATH"
    if in_ci():
        pytest.fail(f"{reason}; CI is set, so the test may not be skipped (make install)", pytrace=False)
    pytest.skip(f"{reason} (make install puts it into .venv)")
    raise AssertionError("unreachable")


def _redacted(text: str) -> str:
    for name, value in SECRETS.items():
        text = re.sub(re.escape(value), f"<{name}>", text, flags=re.IGNORECASE)
    return text


def _keep_artifacts(*, logs: Path | None = None, extra: tuple[Path, ...] = ()) -> None:
    """Copy the deployment's logs to test-artifacts/deployment/ (the sandbox's with secrets masked)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    if logs is not None and logs.is_dir():
        shutil.copytree(logs, ARTIFACTS / "logs", dirs_exist_ok=True)
    for path in extra:
        if path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace")
            (ARTIFACTS / path.name).write_text(_redacted(text), encoding="utf-8")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """This folder's tests in :data:`MODULE_ORDER`, in the places they were collected in."""
    here = Path(__file__).parent
    places = [i for i, item in enumerate(items) if item.path.parent == here]
    ordered = sorted(
        (items[i] for i in places),
        key=lambda item: MODULE_ORDER.index(item.path.name) if item.path.name in MODULE_ORDER else -1,
    )
    for i, item in zip(places, ordered, strict=True):
        items[i] = item


# --------------------------------------------------------------------------- the virtualenv


@pytest.fixture(scope="session")
def deployment_venv() -> Iterator[DeploymentVenv]:
    """The wheel of this project and the running Airflow's version, in a new virtualenv."""
    uv = _find_uv()
    workdir = Path(tempfile.mkdtemp(prefix="plugz-deployment-venv-"))
    started = time.monotonic()
    try:
        try:
            venv = build_deployment_venv(
                uv=uv,
                project=ROOT,
                python=sys.executable,
                airflow_version=version("apache-airflow"),
                workdir=workdir,
            )
        except DeploymentError as exc:
            _keep_artifacts(extra=(workdir / "uv.log",))
            pytest.fail(f"{exc} (kept in {ARTIFACTS})", pytrace=False)
        log.info(
            "wheel %s installed into %s in %.1f s", venv.wheel.name, venv.root, time.monotonic() - started
        )
        yield venv
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


# --------------------------------------------------------------------------- the deployment


@dataclass
class DagRunOutcome:
    """What the REST API says about one finished DAG run, raw answers included (for the secret scan)."""

    dag_id: str
    run_id: str
    state: str
    task_states: dict[str, str | None]
    xcom: dict[str, dict[str, Any]]
    raw: list[Any] = field(default_factory=list)

    def xcom_value(self, task_id: str, key: str = "return_value") -> Any:
        return self.xcom.get(task_id, {}).get(key)


@dataclass
class Deployment:
    """The running processes of one throwaway Airflow deployment, and ways to drive it."""

    home: Path
    venv: DeploymentVenv
    env: dict[str, str]
    api: RestClient
    sandbox_api: RestClient
    sandbox: Service
    services: dict[str, Service]
    # Every Airflow process ever started, restarted ones included (for logs and teardown).
    history: list[Service] = field(default_factory=list)
    # The DAG ids whose files are in the DAGs folder.
    dag_ids: set[str] = field(default_factory=set)

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    def wait(self, what: str, probe: Callable[[], Any], *, timeout: float, **kwargs: Any) -> Any:
        """:func:`wait_for` watching every running process: a crash ends the wait at once."""
        return wait_for(
            what, probe, timeout=timeout, services=[*self.services.values(), self.sandbox], **kwargs
        )

    # ---- the sandbox

    def set_pin(self, has_code: bool) -> None:
        """Flip the instance's PIN through the sandbox's control API."""
        answer = self.sandbox_api.call("PUT", f"_sandbox/instances/{INSTANCE_ID}/pin", {"has_code": has_code})
        assert answer["has_code"] is has_code, answer

    # ---- processes

    def restart(
        self, name: str, *, stop_timeout: float = STOP_TIMEOUT, env: dict[str, str] | None = None
    ) -> Service:
        """Stop a service by its pid and start the same command again as a new process (with
        ``env`` instead of its environment, if given)."""
        old = self.services[name]
        old.stop(stop_timeout)
        generation = len({s.log_path for s in self.history if s.name == name}) + 1
        new = Service(
            name=name,
            argv=old.argv,
            env=old.env if env is None else env,
            cwd=old.cwd,
            log_path=old.log_path.with_name(f"{name}-{generation}.log"),
        ).start()
        self.services[name] = new
        self.history.append(new)
        return new

    # ---- one test module's deployment

    def enter(
        self,
        dag_ids: tuple[str, ...],
        extra_dags: Mapping[str, str],
        service_env: Mapping[str, Mapping[str, str]],
    ) -> None:
        """Make the shared deployment what a test module declares, nothing of the one before left.

        Every run still going is marked failed (and waited out: no task deferred or running); the
        module's DAG files are added; every other DAG is paused; each process whose environment
        is not :attr:`env` plus ``service_env[its name]`` is restarted with it (and the
        dag-processor, to find new files at once); then the sandbox's outbox and faults are
        emptied and its number has no PIN, as at the start.
        """
        self._end_runs()
        wanted = {*dag_ids, *extra_dags}
        added = sorted(wanted - self.dag_ids)
        for dag_id in added:
            source = extra_dags.get(dag_id)
            if source is None:
                shutil.copy2(EXAMPLE_DAGS / f"{dag_id}.py", self.home / "dags" / f"{dag_id}.py")
            else:
                (self.home / "dags" / f"{dag_id}.py").write_text(source, encoding="utf-8")
        for dag_id in sorted(self.dag_ids - wanted):  # before a scheduler that schedules starts
            self.api.call("PATCH", f"api/v2/dags/{dag_id}", {"is_paused": True})
        self.dag_ids |= wanted
        for name in list(self.services):
            env = {**self.env, **service_env.get(name, {})}
            if env != self.services[name].env or (added and name == "dag-processor"):
                self.restart(name, env=env)
        _wait_for_dags(self, tuple(sorted(wanted)))
        for dag_id in sorted(wanted):
            self.api.call("PATCH", f"api/v2/dags/{dag_id}", {"is_paused": False})
        self.sandbox_api.call("DELETE", "_sandbox/messages")
        self.sandbox_api.call("DELETE", "_sandbox/faults")
        self.set_pin(False)

    def _end_runs(self) -> None:
        for state in ("queued", "running"):
            runs = self.api.get(f"api/v2/dags/~/dagRuns?state={state}&limit=100")["dag_runs"]
            for run in runs:
                self.api.call(
                    "PATCH",
                    f"api/v2/dags/{run['dag_id']}/dagRuns/{quote(run['dag_run_id'], safe='')}",
                    {"state": "failed"},
                )

        def settled() -> bool | None:
            busy = self.api.get_or_none(
                "api/v2/dags/~/dagRuns/~/taskInstances?state=deferred&state=running&state=queued&limit=1"
            )
            return True if busy is not None and busy["total_entries"] == 0 else None

        self.wait("no task of an earlier module deferred or running", settled, timeout=DAG_RUN_TIMEOUT)

    def python_output(self, code: str) -> str:
        """What the deployment's interpreter prints for ``code``, run as the services run."""
        done = subprocess.run(
            [str(self.venv.python), "-c", code],
            cwd=self.home,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    # ---- the REST API

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        run = self.api.call(
            "POST", f"api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf or {}}
        )
        return str(run["dag_run_id"])

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return dict(self.api.get(f"api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}"))

    def task_instances(self, dag_id: str, run_id: str) -> dict[str, dict[str, Any]]:
        answer = self.api.get(f"api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances")
        return {ti["task_id"]: ti for ti in answer["task_instances"]}

    def task_instance(self, dag_id: str, run_id: str, task_id: str) -> dict[str, Any] | None:
        """One task instance (its ``trigger`` included), or None while the API does not answer."""
        answer = self.api.get_or_none(
            f"api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}"
        )
        return None if answer is None else dict(answer)

    def describe(self, dag_id: str, run_id: str) -> str:
        """``run state; task: state, ...`` for timeout messages."""
        try:
            run = self.dag_run(dag_id, run_id)
            tis = self.task_instances(dag_id, run_id)
        except (OSError, ValueError) as exc:
            return f"REST API not answering: {type(exc).__name__}"
        tasks = ", ".join(f"{task}: {ti['state']}" for task, ti in sorted(tis.items()))
        return f"run {run['state']}; {tasks}"

    def wait_for_run_end(
        self, dag_id: str, run_id: str, *, timeout: float = DAG_RUN_TIMEOUT
    ) -> DagRunOutcome:
        """Poll the run until it succeeded or failed; then read its task states and XComs."""

        def finished() -> dict[str, Any] | None:
            run = self.api.get_or_none(f"api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}")
            return run if run is not None and run["state"] in ("success", "failed") else None

        run = self.wait(
            f"the end of {dag_id} run {run_id}",
            finished,
            timeout=timeout,
            last_seen=lambda: self.describe(dag_id, run_id),
        )
        tis = self.task_instances(dag_id, run_id)
        xcoms = self.api.get(
            f"api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/~/xcomEntries"
        )
        values: dict[str, dict[str, Any]] = {}
        raw: list[Any] = [run, tis, xcoms]
        for entry in xcoms["xcom_entries"]:
            task_id, key = entry["task_id"], entry["key"]
            item = self.api.get(
                f"api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}"
                f"/xcomEntries/{quote(key, safe='')}?deserialize=true"
            )
            raw.append(item)
            values.setdefault(task_id, {})[key] = item["value"]
        return DagRunOutcome(
            dag_id=dag_id,
            run_id=run_id,
            state=run["state"],
            task_states={task: ti["state"] for task, ti in tis.items()},
            xcom=values,
            raw=raw,
        )


def _airflow_service(
    name: str, args: list[str], *, venv: DeploymentVenv, env: dict[str, str], home: Path
) -> Service:
    return Service(
        name=name,
        argv=[str(venv.bin / "airflow"), *args],
        env=env,
        cwd=home,  # never the repository: its working tree must not shadow the installed wheel
        log_path=home / "logs" / "processes" / f"{name}.log",
    )


def _healthy(api: RestClient) -> dict[str, Any] | None:
    health = api.get_or_none("api/v2/monitor/health")
    if not health:
        return None
    parts = ("metadatabase", "scheduler", "triggerer", "dag_processor")
    return health if all((health.get(part) or {}).get("status") == "healthy" for part in parts) else None


def _start_airflow(
    home: Path,
    venv: DeploymentVenv,
    connection: str,
    history: list[Service],
) -> tuple[dict[str, Service], dict[str, str], RestClient]:
    """``db migrate``, then the four components; wait until the health endpoint says all are healthy.

    A port picked free can be taken before the API server binds it: then all four start again
    on another port (the others must know the API server's URL when they start).
    """
    for attempt in range(1, API_START_ATTEMPTS + 1):
        port = free_port()
        api_url = f"http://127.0.0.1:{port}"
        env = airflow_env(
            venv=venv,
            home=home,
            api_url=api_url,
            connections={"AIRFLOW_CONN_PLUGZ_DEFAULT": connection},
            base=os.environ,
        )
        if attempt == 1:
            migrate = _airflow_service("db-migrate", ["db", "migrate"], venv=venv, env=env, home=home).start()
            history.append(migrate)
            wait_for("airflow db migrate", migrate.exit_code, timeout=MIGRATE_TIMEOUT)
            if migrate.exit_code() != 0:
                raise DeploymentError(
                    f"airflow db migrate exited with {migrate.exit_code()}; see {migrate.log_path}"
                )
        services = {
            "api-server": _airflow_service(
                "api-server",
                ["api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                venv=venv,
                env=env,
                home=home,
            ),
            # Task and trigger logs are read from the shared log folder: no log servers to listen.
            "scheduler": _airflow_service(
                "scheduler", ["scheduler", "--skip-serve-logs"], venv=venv, env=env, home=home
            ),
            "dag-processor": _airflow_service(
                "dag-processor", ["dag-processor"], venv=venv, env=env, home=home
            ),
            "triggerer": _airflow_service(
                "triggerer",
                ["triggerer", "--skip-serve-logs"],
                venv=venv,
                env=env,
                home=home,
            ),
        }
        for service in services.values():
            history.append(service.start())
        api = RestClient(api_url)
        try:
            wait_for(
                "every Airflow component healthy",
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
        return services, env, api
    raise DeploymentError(f"no free port for airflow api-server in {API_START_ATTEMPTS} attempts")


def _wait_for_dags(deployment: Deployment, dag_ids: tuple[str, ...]) -> None:
    """Wait until the dag-processor has serialized ``dag_ids``; fail at once on an import error."""

    def parsed() -> bool | None:
        errors = deployment.api.get_or_none("api/v2/importErrors")
        if errors and errors.get("total_entries"):
            files = [error.get("filename") for error in errors["import_errors"]]
            raise DeploymentError(
                f"the example DAGs failed to import in the deployment: {files}; see the dag-processor logs"
            )
        found = [deployment.api.get_or_none(f"api/v2/dags/{dag_id}") for dag_id in dag_ids]
        return True if all(found) else None

    deployment.wait(f"the dag-processor to parse {', '.join(dag_ids)}", parsed, timeout=START_TIMEOUT)


@pytest.fixture(scope="session")
def airflow_deployment(
    deployment_venv: DeploymentVenv, request: pytest.FixtureRequest
) -> Iterator[Deployment]:
    """The example DAGs in a running Airflow deployment of the installed wheel, on loopback."""
    shutil.rmtree(ARTIFACTS, ignore_errors=True)  # a previous run's leftovers would mislead
    home = Path(tempfile.mkdtemp(prefix="plugz-deployment-airflow-"))
    (home / "dags").mkdir()
    (home / "logs" / "processes").mkdir(parents=True)
    for dag_id in EXAMPLE_DAG_IDS:
        shutil.copy2(EXAMPLE_DAGS / f"{dag_id}.py", home / "dags" / f"{dag_id}.py")
    failures_before = request.session.testsfailed
    history: list[Service] = []
    # The sandbox prints its connection (credentials included): its output stays out of logs/.
    sandbox = Service(
        name="sandbox",
        argv=[
            str(deployment_venv.python),
            "-m",
            "airflow_provider_plugz.testing.sandbox",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--client-token",
            CLIENT_TOKEN,
            "--instance",
            f"{INSTANCE_ID}:{INSTANCE_TOKEN}",
        ],
        env=venv_env(deployment_venv, os.environ),
        cwd=home,
        log_path=home / "sandbox.log",
    )
    setup_failed = True
    try:
        started = time.monotonic()
        sandbox.start()
        exports = wait_for(
            "the sandbox to print its connection",
            functools.partial(sandbox_exports, sandbox),
            timeout=SANDBOX_START_TIMEOUT,
            services=[sandbox],
        )
        services, env, api = _start_airflow(
            home, deployment_venv, exports["AIRFLOW_CONN_PLUGZ_DEFAULT"], history
        )
        running = Deployment(
            home=home,
            venv=deployment_venv,
            env=env,
            api=api,
            sandbox_api=RestClient(exports["PLUGZ_SANDBOX_URL"]),
            sandbox=sandbox,
            services=services,
            history=history,
            dag_ids=set(EXAMPLE_DAG_IDS),
        )
        _wait_for_dags(running, EXAMPLE_DAG_IDS)
        log.info("deployment up in %.1f s: %s", time.monotonic() - started, api.base_url)
        setup_failed = False
        yield running
    except DeploymentError as exc:
        pytest.fail(f"{exc} (logs kept in {ARTIFACTS})", pytrace=False)
    finally:
        stop_all([*history, sandbox])
        if setup_failed or request.session.testsfailed > failures_before or _keep_logs_asked():
            _keep_artifacts(logs=home / "logs", extra=(sandbox.log_path,))
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def deployment(airflow_deployment: Deployment, request: pytest.FixtureRequest) -> Deployment:
    """The shared deployment as this test module declares it, with module globals (see
    :meth:`Deployment.enter`): ``DEPLOYMENT_DAGS`` (example DAG ids; default
    :data:`EXAMPLE_DAG_IDS`), ``DEPLOYMENT_EXTRA_DAGS`` (``{dag_id: source}`` of more DAG files)
    and ``DEPLOYMENT_ENV`` (``{process name: {variable: value}}``, e.g. ``{"triggerer": {...}}``).
    """
    try:
        airflow_deployment.enter(
            getattr(request.module, "DEPLOYMENT_DAGS", EXAMPLE_DAG_IDS),
            getattr(request.module, "DEPLOYMENT_EXTRA_DAGS", {}),
            getattr(request.module, "DEPLOYMENT_ENV", {}),
        )
    except DeploymentError as exc:
        pytest.fail(f"{exc} (logs kept in {ARTIFACTS})", pytrace=False)
    return airflow_deployment


def add_alerting(deployment: Deployment, instance_id: str, token: str, oncall_phone: str) -> None:
    """``plugz_alerts`` on a second sandbox instance and the Variable ``plugz_oncall_phone``, kept
    in Airflow's database through its REST API (as an admin would, in Admin > Connections); an
    earlier module's are replaced."""
    sandbox_conn = json.loads(deployment.env["AIRFLOW_CONN_PLUGZ_DEFAULT"])
    deployment.sandbox_api.call("POST", "_sandbox/instances", {"instance_id": instance_id, "token": token})
    for path in ("api/v2/connections/plugz_alerts", "api/v2/variables/plugz_oncall_phone"):
        try:
            deployment.api.call("DELETE", path)
        except urllib.error.HTTPError as exc:
            if exc.code != 404:
                raise
    deployment.api.call(
        "POST",
        "api/v2/connections",
        {
            "connection_id": "plugz_alerts",
            "conn_type": "plugz",
            "host": sandbox_conn["host"],
            "login": instance_id,
            "password": token,
            "extra": json.dumps(sandbox_conn["extra"]),
        },
    )
    deployment.api.call("POST", "api/v2/variables", {"key": "plugz_oncall_phone", "value": oncall_phone})
