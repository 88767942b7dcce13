"""plugz_security_events in a real deployment: the watcher runs in an ``airflow triggerer`` process
of the installed wheel, and one PIN flip in the sandbox makes exactly one asset event and one DAG
run, whose alert reaches the sandbox's outbox.

It runs last on the folder's shared deployment (its watcher then keeps polling), with this DAG
alone unpaused and its watcher polling every second (``DEPLOYMENT_DAGS``, ``DEPLOYMENT_ENV``): the
flip is seen within a second, and the DAG run takes the rest of the wait.
"""

from __future__ import annotations

import json
from importlib.metadata import version
from typing import Any

import pytest

from tests.deployment.conftest import DAG_RUN_TIMEOUT, SECRETS, Deployment, add_alerting
from tests.deployment.stack import DeploymentError

pytestmark = pytest.mark.deployment

if int(version("apache-airflow").split(".")[0]) < 3:
    pytest.skip(
        "event-driven scheduling (AssetWatcher) and the REST API v2 are Airflow 3's", allow_module_level=True
    )

DAG_ID = "plugz_security_events"
ASSET_NAME = "plugz_security_plugz_default"
POLL_INTERVAL = "1"
# This module's deployment (see tests/deployment/conftest.py): this DAG alone unpaused (no other
# DAG's runs or alerts mix in), the scheduler creating DAG runs from asset events
# (``use_job_schedule``, which the other modules leave off so that no @daily DAG runs by itself),
# and the watcher polling every second (read by the dag-processor when it parses the file).
DEPLOYMENT_DAGS = ("plugz_security_events",)
DEPLOYMENT_ENV = {
    "scheduler": {"AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "True"},
    "dag-processor": {"PLUGZ_SECURITY_EVENTS_POLL_INTERVAL": POLL_INTERVAL},
}
BASELINE = "Plugz watcher of plugz_default: baseline"
ALERTS_INSTANCE_ID = "DEP10YEDEVA1ER75NSTANCE000001"
ALERTS_TOKEN = "DEP10YEDEVA1ER75T0KEN5ECRET01"
ONCALL_PHONE = "5511987650789"


@pytest.fixture(scope="module")
def events_deployment(deployment: Deployment) -> Deployment:
    """The deployment, with ``plugz_alerts``, the on-call Variable and the DAG parsed."""
    add_alerting(deployment, ALERTS_INSTANCE_ID, ALERTS_TOKEN, ONCALL_PHONE)
    try:
        deployment.wait(
            f"the dag-processor to parse {DAG_ID}",
            lambda: deployment.api.get_or_none(f"api/v2/dags/{DAG_ID}"),
            timeout=DAG_RUN_TIMEOUT,
        )
    except DeploymentError as exc:
        pytest.fail(str(exc), pytrace=False)
    return deployment


def triggerer_log(deployment: Deployment) -> str:
    """Every triggerer process's output (a watcher has no task: its lines go there)."""
    return "".join(
        path.read_text(encoding="utf-8", errors="replace")
        for path in sorted((deployment.logs / "processes").glob("triggerer*.log"))
    )


def asset_events(deployment: Deployment) -> list[dict[str, Any]]:
    answer = deployment.api.get("api/v2/assets/events?limit=100")
    return [e for e in answer["asset_events"] if e.get("name") == ASSET_NAME]


def dag_runs(deployment: Deployment) -> list[dict[str, Any]]:
    return list(deployment.api.get(f"api/v2/dags/{DAG_ID}/dagRuns?limit=100")["dag_runs"])


def finished_run(deployment: Deployment) -> dict[str, Any] | None:
    runs = dag_runs(deployment)
    return runs[0] if runs and all(run["state"] in ("success", "failed") for run in runs) else None


def test_one_pin_flip_is_one_asset_event_and_one_dag_run(events_deployment: Deployment) -> None:
    deployment = events_deployment
    try:
        # The sandbox's number starts with no PIN and connected: a good state to leave alone, a
        # bad one not worth a run (fire_on_bad_baseline is off). Flip only once the watcher knows it.
        deployment.wait(
            "the watcher's baseline in the triggerer",
            lambda: True if BASELINE in triggerer_log(deployment) else None,
            timeout=DAG_RUN_TIMEOUT,
            last_seen=lambda: triggerer_log(deployment)[-2000:],
        )
        assert asset_events(deployment) == []
        assert dag_runs(deployment) == []
        deployment.set_pin(True)
        run = deployment.wait(
            f"the {DAG_ID} run the flip caused to end",
            lambda: finished_run(deployment),
            timeout=DAG_RUN_TIMEOUT,
            last_seen=lambda: f"runs: {dag_runs(deployment)}; events: {asset_events(deployment)}",
        )
    except DeploymentError as exc:
        pytest.fail(str(exc), pytrace=False)

    # Dozens of polls happened while the run was queued and ran: the steady state fired nothing.
    (event,) = asset_events(deployment)
    assert [r["dag_run_id"] for r in dag_runs(deployment)] == [run["dag_run_id"]]
    assert run["run_type"] == "asset_triggered", run
    assert run["state"] == "success", deployment.describe(DAG_ID, run["dag_run_id"])
    assert event["extra"]["from_trigger"] is True
    payload = event["extra"]["payload"]
    assert {k: payload[k] for k in ("status", "plugz_conn_id", "watch", "change", "old", "new")} == {
        "status": "change",
        "plugz_conn_id": "plugz_default",
        "watch": "pin",
        "change": "pin_set",
        "old": False,
        "new": True,
    }
    assert payload["observed_at"].endswith("+00:00")
    assert [d["run_id"] for d in event["created_dagruns"]] == [run["dag_run_id"]]

    outcome = deployment.wait_for_run_end(DAG_ID, run["dag_run_id"])
    assert outcome.task_states == {
        "collect": "success",
        "route": "success",
        "alert": "success",
        "nothing_to_report": "skipped",
        "remediation_enabled": "success",
        "set_pin": "skipped",
        "confirm_pin": "skipped",
    }
    assert outcome.xcom_value("collect") == [payload]
    outbox = deployment.sandbox_api.get("_sandbox/messages")
    assert [(m["instance_id"], m["phone"]) for m in outbox] == [(ALERTS_INSTANCE_ID, ONCALL_PHONE)], outbox
    assert outbox[0]["message"] == outcome.xcom_value("alert")
    assert "has its two-step-verification PIN again" in outbox[0]["message"]

    logged = triggerer_log(deployment)
    assert logged.count("Plugz watcher of plugz_default fired") == 1
    secrets = {**SECRETS, "alerting instance token": ALERTS_TOKEN, "on-call phone": ONCALL_PHONE}
    texts = {
        "triggerer logs": logged,
        "asset event": json.dumps(event),
        "REST answers": json.dumps(outcome.raw),
    }
    leaks = [
        f"{name}: the {what}" for name, text in texts.items() for what, s in secrets.items() if s in text
    ]
    assert not leaks, leaks
