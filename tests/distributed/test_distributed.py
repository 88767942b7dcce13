"""The chunked fleet audit on a real CeleryExecutor deployment: chunks spread over two workers.

``plugz_fleet_audit`` audits a few hundred sandbox numbers with a ``chunk_size`` that makes
several mapped ``audit_pins`` task instances; the deployment (see conftest.py) runs them on two
separate ``airflow celery worker`` processes, Redis as broker, PostgreSQL as metadata database
and result backend. The test checks that the chunks ran on both workers (the ``hostname`` Airflow
recorded on each task instance), that the merged report is exact, number by number, and that one
summary went out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

import pytest

from tests.deployment.stack import DeploymentError
from tests.distributed.conftest import (
    CLIENT_TOKEN,
    INSTANCE_TOKEN,
    WORKERS,
    CeleryDeployment,
)

if int(version("apache-airflow").split(".")[0]) < 3:
    pytest.skip(
        "the distributed test runs Airflow 3's api-server, dag-processor and REST API v2",
        allow_module_level=True,
    )

DAG_ID = "plugz_fleet_audit"
NUMBERS = 240
CHUNK_SIZE = 60  # four mapped chunks: more than the two workers' one slot each
ALERTS_INSTANCE_ID = "D15TA1ER75NSTANCE00000000001"
ALERTS_TOKEN = "D15TA1ER75T0KEN5ECRET0000001"
ONCALL_PHONE = "5511987650789"


def conn_id(n: int) -> str:
    return f"plugz_fleet_{n:03d}"


def instance_id(n: int) -> str:
    return f"D15TF1EET{n:03d}NSTANCE000000001"


def token(n: int) -> str:
    return f"D15TF1EET{n:03d}T0KEN5ECRET00001"


def has_pin(n: int) -> bool:
    return n % 4 != 1


def sandbox_state(n: int) -> str:
    return {7: "disconnected", 3: "session-lost"}.get(n % 10, "connected")


REPORTED_STATE = {"connected": "connected", "disconnected": "disconnected", "session-lost": "session_lost"}


@dataclass(frozen=True)
class FleetRun:
    """One finished run of plugz_fleet_audit over the fleet, as the REST API reports it."""

    run: dict[str, Any]
    task_instances: list[dict[str, Any]]
    chunks: list[list[str]]
    merged: dict[str, Any]
    alert: str | None
    outbox: list[dict[str, Any]]

    def states(self, task_id: str) -> list[str]:
        return [ti["state"] for ti in self.task_instances if ti["task_id"] == task_id]


def _add_fleet(deployment: CeleryDeployment) -> list[str]:
    """The numbers in the sandbox (its control API) and their connections in Airflow's database
    (one bulk REST call, as an admin's tooling would), plus plugz_alerts and the on-call phone."""
    host, extra = deployment.sandbox_connection["host"], json.dumps(deployment.sandbox_connection["extra"])
    entities = []
    for n in range(NUMBERS):
        deployment.sandbox_api.call(
            "POST",
            "_sandbox/instances",
            {
                "instance_id": instance_id(n),
                "token": token(n),
                "has_code": has_pin(n),
                "state": sandbox_state(n),
            },
        )
        entities.append(
            {
                "connection_id": conn_id(n),
                "conn_type": "plugz",
                "host": host,
                "login": instance_id(n),
                "password": token(n),
                "extra": extra,
            }
        )
    deployment.sandbox_api.call(
        "POST", "_sandbox/instances", {"instance_id": ALERTS_INSTANCE_ID, "token": ALERTS_TOKEN}
    )
    entities.append(
        {
            "connection_id": "plugz_alerts",
            "conn_type": "plugz",
            "host": host,
            "login": ALERTS_INSTANCE_ID,
            "password": ALERTS_TOKEN,
            "extra": extra,
        }
    )
    answer = deployment.api.call(
        "PATCH", "api/v2/connections", {"actions": [{"action": "create", "entities": entities}]}
    )
    created = answer["create"]
    assert len(created["success"]) == NUMBERS + 1, answer
    assert not created["errors"], answer
    deployment.api.call("POST", "api/v2/variables", {"key": "plugz_oncall_phone", "value": ONCALL_PHONE})
    return [conn_id(n) for n in range(NUMBERS)]


@pytest.fixture(scope="module")
def fleet_run(celery_deployment: CeleryDeployment) -> FleetRun:
    deployment = celery_deployment
    try:
        ids = _add_fleet(deployment)
        run_id = deployment.trigger(DAG_ID, {"plugz_conn_ids": ids, "chunk_size": CHUNK_SIZE})
        run = deployment.wait_for_run_end(DAG_ID, run_id)
        tis = deployment.task_instances(DAG_ID, run_id)
        chunks = deployment.xcom(DAG_ID, run_id, "fleet_chunks")
        merged = deployment.xcom(DAG_ID, run_id, "merge_reports", "report")
        try:
            alert = deployment.xcom(DAG_ID, run_id, "alert")
        except OSError:
            alert = None
    except DeploymentError as exc:
        pytest.fail(str(exc), pytrace=False)
    return FleetRun(
        run=run,
        task_instances=tis,
        chunks=chunks,
        merged=merged,
        alert=alert,
        outbox=deployment.sandbox_api.get("_sandbox/messages"),
    )


def test_the_run_succeeds_with_every_chunk_mapped(fleet_run: FleetRun) -> None:
    described = [(ti["task_id"], ti["map_index"], ti["state"]) for ti in fleet_run.task_instances]
    assert fleet_run.run["state"] == "success", described
    assert [len(chunk) for chunk in fleet_run.chunks] == [CHUNK_SIZE] * (NUMBERS // CHUNK_SIZE)
    assert fleet_run.states("audit_pins") == ["success"] * (NUMBERS // CHUNK_SIZE), described
    for task_id, state in (
        ("fleet_chunks", "success"),
        ("merge_reports", "success"),
        ("route", "success"),
        ("alert", "success"),
        ("all_good", "skipped"),
    ):
        assert fleet_run.states(task_id) == [state], described


def test_chunks_ran_on_both_celery_workers(fleet_run: FleetRun) -> None:
    """The hostname Airflow recorded on each chunk's task instance: both workers took chunks."""
    chunks = [ti for ti in fleet_run.task_instances if ti["task_id"] == "audit_pins"]
    assert sorted(ti["map_index"] for ti in chunks) == list(range(NUMBERS // CHUNK_SIZE))
    hosts = {ti["map_index"]: ti["hostname"] for ti in chunks}
    assert set(hosts.values()) == set(WORKERS), hosts
    # Every other task ran on one of them too: nothing ran outside the Celery workers.
    assert {ti["hostname"] for ti in fleet_run.task_instances if ti["state"] == "success"} <= set(WORKERS)


def test_the_merged_report_is_exact(fleet_run: FleetRun) -> None:
    merged = fleet_run.merged
    assert list(merged["results"]) == [conn_id(n) for n in range(NUMBERS)]  # every number, in order
    for n in range(NUMBERS):
        entry = merged["results"][conn_id(n)]
        assert entry["has_code"] is has_pin(n), (conn_id(n), entry)
        assert entry["status"]["state"] == REPORTED_STATE[sandbox_state(n)], (conn_id(n), entry)
    states = [sandbox_state(n) for n in range(NUMBERS)]
    without_pin = sum(1 for n in range(NUMBERS) if not has_pin(n))
    assert {name: merged[name] for name in merged if name != "results"} == {
        "total": NUMBERS,
        "with_pin": NUMBERS - without_pin,
        "without_pin": without_pin,
        "errors": 0,
        "timed_out": 0,
        "connected": states.count("connected"),
        "disconnected": states.count("disconnected"),
        "session_lost": states.count("session-lost"),
        "phone_offline": 0,
        "status_errors": 0,
    }


def test_one_summary_names_every_number_that_needs_attention(fleet_run: FleetRun) -> None:
    """One message for the whole fleet; its text (XCom) names every number needing attention, in
    order. Sent, it is cut to WhatsApp's length limit by the notifier (the full list stays in XCom)."""
    from airflow_provider_plugz.endpoints import MAX_MESSAGE

    assert [(m["instance_id"], m["phone"]) for m in fleet_run.outbox] == [(ALERTS_INSTANCE_ID, ONCALL_PHONE)]
    attention = [conn_id(n) for n in range(NUMBERS) if not has_pin(n) or sandbox_state(n) != "connected"]
    alert = str(fleet_run.alert)
    lines = alert.splitlines()
    assert lines[0] == f"{len(attention)} of {NUMBERS} WhatsApp number(s) need attention:"
    assert [line.split(":")[0].removeprefix("- ") for line in lines[1:]] == attention
    sent = fleet_run.outbox[0]["message"]
    if len(alert) <= MAX_MESSAGE:
        assert sent == alert
    else:
        assert len(sent) == MAX_MESSAGE
        assert sent.endswith("\n[...] (truncated)")
        assert alert.startswith(sent.removesuffix("\n[...] (truncated)"))


def test_no_secret_in_the_logs(celery_deployment: CeleryDeployment, fleet_run: FleetRun) -> None:
    """No instance token or Client-Token in any log of the deployment (process and task logs)."""
    logs = celery_deployment.home / "logs"
    texts = {str(p.relative_to(logs)): p.read_text(errors="replace") for p in logs.rglob("*") if p.is_file()}
    assert any("task_id=audit_pins" in name for name in texts), sorted(texts)
    secrets = [INSTANCE_TOKEN, CLIENT_TOKEN, ALERTS_TOKEN, *(token(n) for n in range(NUMBERS))]
    leaks = [name for name, text in texts.items() if any(secret in text for secret in secrets)]
    assert not leaks, leaks
