"""(c') on the real CeleryExecutor deployment: ``plugz_fleet_audit`` over a fleet of 10,000
numbers, the sandbox adding 50 ms to every answer, in chunks of 500 and of 1,000 (mapped
``audit_pins`` task instances on two Celery workers), and the same at 1,000 numbers, so the
growth of the cost per number from 1,000 to 10,000 shows; ``--executor local`` runs the same on
LocalExecutor (the scheduler runs 2 tasks at a time, as the 2 Celery slots do).

The deployment is the one of ``tests/distributed`` (its functions, reused): Redis as broker,
PostgreSQL as metadata database and result backend, api-server, scheduler, dag-processor and two
``airflow celery worker`` processes of concurrency 1 each (2 task slots), the built wheel in a
fresh virtualenv; here the sandbox runs with ``--latency``.

Where the connections are (``--secrets``):

- ``workers`` (default): a secrets backend the task processes read themselves (``[workers]
  secrets_backend``), one JSON file per connection read on lookup - a per-key store like Vault's
  KV or AWS Secrets Manager, without their network round trip. The api-server serves no
  connection.
- ``metastore``: Airflow's metadata database, COPYed in by psql (the REST bulk create takes
  minutes per 1,000 once thousands exist: the api-server masks every password it sees, O(n^2));
  a task reads them through the Execution API - and the api-server masks each password it loads
  (``Connection.on_db_load``) in one long-lived process, quadratic in every connection it has
  ever served, which is why its CPU is a column.

Reported per run, from the REST API: the DAG run's wall time (its ``start_date`` to
``end_date``), the sum and the longest of the ``audit_pins`` task instances' durations, and the
CPU the two Celery workers spent (utime+stime of every process in each worker's process group,
plus what the children they reaped spent - the forked task processes - read from /proc before
and after the run), per number; and the CPU of the whole deployment (every process group: the
scheduler, api-server, PostgreSQL, Redis and the sandbox too). Worker CPU includes the
run's small tasks (fleet_chunks, merge_reports, route, all_good), which are the same for every
layout.

The one-task layout (``chunk_size`` = the fleet) runs only up to ``--one-task-max`` numbers
(default 2,000): one task of 10,000 takes over an hour (Airflow's secrets masker is quadratic in
the connections one process reads).

    .venv/bin/python benchmarks/bench_chunked_celery.py                       # the full run
    .venv/bin/python benchmarks/bench_chunked_celery.py --executor local      # the comparison
    .venv/bin/python benchmarks/bench_chunked_celery.py --sizes 100,300 --chunk-sizes 100,50
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import functools
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))  # the deployment's functions live in tests/

from _common import load_average, machine, table  # noqa: E402

from tests.deployment import stack  # noqa: E402
from tests.deployment.stack import RestClient, Service, venv_env, wait_for  # noqa: E402
from tests.distributed import conftest as dist  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.deployment.stack import DeploymentVenv

DAG_ID = "plugz_fleet_audit"
CLIENT_TOKEN = "BENCHC1E7T0KEN5ECRET000000001"
CLK_TCK = os.sysconf("SC_CLK_TCK")
EXECUTORS = {"celery": "CeleryExecutor", "local": "LocalExecutor"}
BACKEND_MODULE = "plugz_bench_secrets"
# The worker-side secrets backend of ``--secrets workers``: written into the deployment's home.
BACKEND_SOURCE = '''"""One JSON file per connection, read when looked up: a stand-in for a per-key store."""

from __future__ import annotations

from pathlib import Path

from airflow.secrets import BaseSecretsBackend


class OneFilePerConnection(BaseSecretsBackend):
    def __init__(self, directory: str, **kwargs):
        super().__init__(**kwargs)
        self.directory = Path(directory)

    def get_conn_value(self, conn_id, team_name=None):
        if not conn_id.replace("_", "").isalnum():
            return None
        try:
            return (self.directory / f"{conn_id}.json").read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
'''


def instance_id(n: int) -> str:
    return f"BENCHF1EET{n:05d}NSTANCE00000001"


def token(n: int) -> str:
    return f"BENCHF1EET{n:05d}T0KEN5ECRET0001"


def conn_id(n: int) -> str:
    return f"plugz_fleet_{n:05d}"


# --------------------------------------------------------------------------- CPU from /proc


def group_cpu(pgids: dict[str, int]) -> dict[str, float]:
    """CPU seconds per service: utime+stime+cutime+cstime of every process in the service's
    process group or descending from one that is (a task process starts a session of its own),
    zombies included. A reaped child's time is in its parent's cutime/cstime, an unreaped one
    (a finished task the worker has not waited for yet) is still its own: each counted once."""
    by_pgid = {pgid: name for name, pgid in pgids.items()}
    parents: dict[int, int] = {}
    groups: dict[int, int] = {}
    seconds: dict[int, float] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", encoding="ascii", errors="replace") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # After the command: state ppid pgrp session ... utime(14) stime cutime cstime (1-based).
        pid = int(entry.name)
        parents[pid], groups[pid] = int(fields[1]), int(fields[2])
        seconds[pid] = sum(int(x) for x in fields[11:15]) / CLK_TCK

    @functools.cache
    def service(pid: int) -> str | None:
        if pid not in groups:
            return None
        return by_pgid.get(groups[pid]) or (service(parents[pid]) if parents[pid] > 1 else None)

    totals = dict.fromkeys(pgids, 0.0)
    for pid, cpu in seconds.items():
        name = service(pid)
        if name is not None:
            totals[name] += cpu
    return totals


# --------------------------------------------------------------------------- the deployment


@contextlib.contextmanager
def deployment_venv(binaries: dist.Binaries) -> Iterator[DeploymentVenv]:
    """The distributed test's session fixture, driven by hand."""
    with contextlib.contextmanager(dist.distributed_venv.__wrapped__)(binaries) as venv:  # type: ignore[attr-defined]
        yield venv


def secrets_dir(deployment: dist.CeleryDeployment) -> Path:
    return deployment.home / "bench-secrets"


@contextlib.contextmanager
def celery_deployment(latency: float, executor: str, secrets: str) -> Iterator[dist.CeleryDeployment]:
    """As ``tests/distributed/conftest.py``'s ``celery_deployment``, with a sandbox of ``latency`` s,
    ``executor`` (a key of EXECUTORS) and, for ``secrets="workers"``, the worker-side backend."""
    binaries = dist._find_binaries()
    with deployment_venv(binaries) as venv:
        home = Path(tempfile.mkdtemp(prefix="plugz-bench-celery-"))
        pg_dir = Path(tempfile.mkdtemp(prefix="plugz-bench-celery-pg-"))
        (home / "dags").mkdir()
        (home / "logs" / "processes").mkdir(parents=True)
        settings: dict[str, str] = {}
        if secrets == "workers":
            (home / "bench-secrets").mkdir()
            (home / "bench-path").mkdir()
            (home / "bench-path" / f"{BACKEND_MODULE}.py").write_text(BACKEND_SOURCE, encoding="utf-8")
            settings = {
                "PYTHONPATH": str(home / "bench-path"),
                "AIRFLOW__WORKERS__SECRETS_BACKEND": f"{BACKEND_MODULE}.OneFilePerConnection",
                "AIRFLOW__WORKERS__SECRETS_BACKEND_KWARGS": json.dumps(
                    {"directory": str(home / "bench-secrets")}
                ),
            }
        shutil.copy2(dist.EXAMPLE_DAGS / f"{DAG_ID}.py", home / "dags")
        servers: list[Service] = []
        history: list[Service] = []
        sandbox = Service(
            name="sandbox",
            argv=[
                str(venv.python),
                *("-m", "airflow_provider_plugz.testing.sandbox", "--port", "0"),
                *("--client-token", CLIENT_TOKEN, "--latency", str(latency)),
                *("--instance", f"{instance_id(99999)}:{token(99999)}"),
            ],
            env=venv_env(venv, os.environ),
            cwd=home,
            log_path=home / "sandbox.log",
        )
        try:
            redis_port = dist.start_redis(binaries, home, servers)
            database = dist.start_postgres(binaries, home, pg_dir, servers)
            history.append(sandbox.start())
            exports = wait_for(
                "the sandbox to print its connection",
                functools.partial(stack.sandbox_exports, sandbox),
                timeout=dist.SERVER_START_TIMEOUT,
                services=[sandbox],
            )
            services, env, api = dist._start_airflow(
                home,
                venv,
                database,
                f"redis://127.0.0.1:{redis_port}/0",
                history,
                executor=EXECUTORS[executor],
                settings=settings,
            )
            deployment = dist.CeleryDeployment(
                home=home,
                env=env,
                api=api,
                sandbox_api=RestClient(exports["PLUGZ_SANDBOX_URL"]),
                sandbox_connection=json.loads(exports["AIRFLOW_CONN_PLUGZ_DEFAULT"]),
                services={**services, "sandbox": sandbox},
                history=[*servers, sandbox, *services.values()],
            )
            dist._wait_for_dag(deployment, DAG_ID)
            yield deployment
        finally:
            stack.stop_all(history)
            stack.stop_all(servers)
            if os.environ.get("BENCH_KEEP_LOGS"):
                print(f"logs kept in {home}", file=sys.stderr)
            else:
                shutil.rmtree(home, ignore_errors=True)
            shutil.rmtree(pg_dir, ignore_errors=True)


def add_fleet(deployment: dist.CeleryDeployment, count: int, secrets: str) -> list[str]:
    """``count`` numbers (a PIN each, connected) in the sandbox, their connections where ``secrets`` says."""
    host = deployment.sandbox_connection["host"]
    extra = json.dumps(deployment.sandbox_connection["extra"])

    def add(n: int) -> None:
        body = {"instance_id": instance_id(n), "token": token(n), "has_code": True}
        deployment.sandbox_api.call("POST", "_sandbox/instances", body)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(add, range(count)))
    if secrets == "workers":
        for n in range(count):
            connection = {
                "conn_type": "plugz",
                "host": host,
                "login": instance_id(n),
                "password": token(n),
                "extra": deployment.sandbox_connection["extra"],
            }
            (secrets_dir(deployment) / f"{conn_id(n)}.json").write_text(json.dumps(connection), "utf-8")
        return [conn_id(n) for n in range(count)]
    # Straight into the metadata database (unencrypted rows, which Airflow reads as they are): the
    # REST bulk create masks every password in the api-server, O(n^2) there (see the report).
    rows = io.StringIO()
    writer = csv.writer(rows)
    for n in range(count):
        writer.writerow([conn_id(n), "plugz", host, instance_id(n), token(n), extra, "f", "f"])
    url = urlsplit(deployment.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    columns = "conn_id, conn_type, host, login, password, extra, is_encrypted, is_extra_encrypted"
    subprocess.run(
        [
            dist._find_binaries().pg("psql"),
            *("-h", str(url.hostname), "-p", str(url.port), "-U", "airflow", "-d", "airflow"),
            *(
                "-v",
                "ON_ERROR_STOP=1",
                "-q",
                "-c",
                f"COPY connection ({columns}) FROM STDIN WITH (FORMAT csv)",
            ),
        ],
        input=rows.getvalue(),
        text=True,
        check=True,
        timeout=300,
    )
    total = deployment.api.get("api/v2/connections?limit=1")["total_entries"]
    if total < count:
        raise RuntimeError(f"{total} connections in the database, expected {count}")
    return [conn_id(n) for n in range(count)]


def _seconds(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def run_layout(
    deployment: dist.CeleryDeployment,
    conn_ids: list[str],
    chunk_size: int,
    timeout: float,
    task_groups: tuple[str, ...],
) -> dict[str, Any]:
    """One DAG run over ``conn_ids`` in chunks of ``chunk_size``; its figures from the REST API and /proc."""
    pgids = {name: service.pid for name, service in deployment.services.items()}
    pgids.update({s.name: s.pid for s in deployment.history if s.name not in pgids})
    cpu_before = group_cpu(pgids)
    run_id = deployment.trigger(DAG_ID, {"plugz_conn_ids": conn_ids, "chunk_size": chunk_size})

    def finished() -> dict[str, Any] | None:
        run = deployment.api.get_or_none(deployment.run_path(DAG_ID, run_id))
        return run if run is not None and run["state"] in ("success", "failed") else None

    run = deployment.wait(
        f"the end of {DAG_ID} run {run_id}",
        finished,
        timeout=timeout,
        interval=1.0,
        last_seen=lambda: deployment.describe(DAG_ID, run_id),
    )
    cpu_after = group_cpu(pgids)
    tis = deployment.task_instances(DAG_ID, run_id)
    audits = [ti for ti in tis if ti["task_id"] == "audit_pins"]
    merged = deployment.xcom(DAG_ID, run_id, "merge_reports", "report")
    if run["state"] != "success" or merged["total"] != len(conn_ids) or merged["errors"]:
        raise RuntimeError(
            f"run {run['state']}: total {merged.get('total')}, errors {merged.get('errors')}; "
            + deployment.describe(DAG_ID, run_id)
        )
    cpu = {name: cpu_after[name] - cpu_before[name] for name in pgids}
    durations = [float(ti["duration"]) for ti in audits]
    return {
        "tasks": len(audits),
        "wall": _seconds(run["start_date"], run["end_date"]),
        "queued": _seconds(run["queued_at"], run["start_date"]),
        "audit_sum": sum(durations),
        "audit_max": max(durations),
        "hosts": sorted({ti["hostname"] for ti in audits}),
        "worker_cpu": sum(cpu[name] for name in task_groups),
        "all_cpu": sum(cpu.values()),
        "cpu": cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1000,2000,10000", help="fleet sizes (default: %(default)s)")
    parser.add_argument("--chunk-sizes", default="500,1000", help="comma-separated (default: %(default)s)")
    parser.add_argument(
        "--latency", type=float, default=0.05, help="sandbox latency, s (default: %(default)s)"
    )
    parser.add_argument(
        "--one-task-max", type=int, default=2000, help="one-task layout up to this many numbers"
    )
    parser.add_argument(
        "--run-timeout", type=float, default=900.0, help="per DAG run, s (default: %(default)s)"
    )
    parser.add_argument("--executor", choices=sorted(EXECUTORS), default="celery")
    parser.add_argument(
        "--warmup", type=int, default=50, help="numbers of the unreported first run (default: %(default)s)"
    )
    parser.add_argument(
        "--secrets",
        choices=("workers", "metastore"),
        default="workers",
        help="where the connections are (default: %(default)s; see above)",
    )
    args = parser.parse_args()
    # Stopped by a signal, still stop the deployment (the finally blocks); a background job
    # starts with SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    # The processes the tasks run in: the two workers, or LocalExecutor's scheduler (its own CPU included).
    task_groups = dist.WORKERS if args.executor == "celery" else ("scheduler",)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    chunk_sizes = [int(s) for s in args.chunk_sizes.split(",") if s]

    t0 = time.monotonic()
    with celery_deployment(args.latency, args.executor, args.secrets) as deployment:
        print(f"  deployment up in {time.monotonic() - t0:.0f} s", file=sys.stderr, flush=True)
        t1 = time.monotonic()
        all_ids = add_fleet(deployment, max(sizes), args.secrets)
        print(f"  {len(all_ids)} numbers added in {time.monotonic() - t1:.0f} s", file=sys.stderr, flush=True)
        # Not reported: the first run pays what every later one finds done (first imports in the
        # workers, the api-server's first answers, the DAG's first serialization).
        run_layout(deployment, all_ids[: args.warmup], args.warmup, args.run_timeout, task_groups)
        load_before = load_average()
        rows: list[list[Any]] = []
        # layout ("one task" or the chunk size) -> worker CPU per number at the smallest fleet
        per_number: dict[str, float] = {}
        cpu_detail = []
        for size in sizes:
            layouts = [c for c in chunk_sizes if c < size]
            if size <= args.one_task_max:
                layouts.append(size)
            for chunk in layouts:
                result = run_layout(deployment, all_ids[:size], chunk, args.run_timeout, task_groups)
                cpu_ms = result["worker_cpu"] / size * 1000
                layout = "one task" if result["tasks"] == 1 else f"chunks of {chunk:,}"
                per_number.setdefault(layout, cpu_ms)
                task_ms = result["audit_sum"] / size * 1000
                rows.append(
                    [
                        f"{size:,}",
                        layout,
                        result["tasks"],
                        f"{result['wall']:.1f}",
                        f"{result['audit_sum']:.1f}",
                        f"{result['audit_max']:.1f}",
                        f"{task_ms:.2f}",
                        f"{result['worker_cpu']:.1f}",
                        f"{cpu_ms:.2f}",
                        f"{cpu_ms / per_number[layout]:.2f}x",
                        f"{result['cpu']['api-server']:.1f}",
                        f"{result['all_cpu'] / size * 1000:.2f}",
                        ",".join(result["hosts"]),
                    ]
                )
                cpu_detail.append(
                    f"{size} / {chunk}: "
                    + ", ".join(f"{k} {v:.1f}" for k, v in sorted(result["cpu"].items()))
                    + f"; queued->start {result['queued']:.1f} s"
                )
                print(f"  done: {rows[-1]} | {cpu_detail[-1]}", file=sys.stderr, flush=True)
        load_after = load_average()

    print(
        "# (c') plugz_fleet_audit on "
        + (
            "CeleryExecutor (2 workers x concurrency 1 = 2 slots, Redis, PostgreSQL)"
            if args.executor == "celery"
            else "LocalExecutor (parallelism 2, PostgreSQL; 'worker CPU' is the scheduler's, tasks included)"
        )
        + f", connections in {args.secrets} secrets, {args.latency * 1000:.0f} ms sandbox latency, "
        f"check_status=True, max_concurrency=32 per task; {machine()}"
    )
    print(
        table(
            [
                "numbers",
                "layout",
                "audit_pins tasks",
                "DAG run wall (s)",
                "sum audit_pins (s)",
                "longest audit_pins (s)",
                "audit_pins s per number (ms)",
                "worker CPU (s)",
                "worker CPU per number (ms)",
                "vs smallest fleet",
                "api-server CPU (s)",
                "deployment CPU per number (ms)",
                "workers",
            ],
            rows,
        )
    )
    print("CPU seconds per process group:\n  " + "\n  ".join(cpu_detail))
    print(f"load average before/after: {load_before} / {load_after}")


if __name__ == "__main__":
    main()
