"""Secret hygiene, proven: run the example DAGs and their failure paths in real Airflow with
distinctive secrets, capture everything a person or system could see, and look for them."""

from __future__ import annotations

import json
import re
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_plugz.testing import Fault
from airflow_provider_plugz.testing.dag_run import run_dag
from tests.conftest import ALERTS_TOKEN, CLIENT_TOKEN, INSTANCE_ID, INSTANCE_TOKEN, ONCALL_PHONE

if TYPE_CHECKING:
    from airflow_provider_plugz.testing import PlugzSandbox
    from airflow_provider_plugz.testing.dag_run import DagRunReport

# Wrong credentials are secrets too (a revoked token is still someone's token), and the API
# echoes a wrong Client-Token back in its error text.
WRONG_CLIENT_TOKEN = "WR0NGC11ENT70KEN5ECRET0000001"
WRONG_INSTANCE_TOKEN = "WR0NG1NS7ANCE70KEN5ECRET00001"
PIN = "482913"
SECRETS = {
    "instance token": INSTANCE_TOKEN,
    "Client-Token": CLIENT_TOKEN,
    "wrong Client-Token": WRONG_CLIENT_TOKEN,
    "wrong instance token": WRONG_INSTANCE_TOKEN,
    "PIN": PIN,
    "alerting instance token": ALERTS_TOKEN,
}
# A six-digit PIN could turn up by chance inside a timestamp's microseconds or a UUID.
_NOISE = re.compile(
    r"\d{2}:\d{2}:\d{2}[.,]\d{6}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
)


def everything_visible(report: DagRunReport, logs: str) -> dict[str, str]:
    """The places a secret could surface, by name."""
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.models.trigger import Trigger
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rendered = session.scalars(
            select(RenderedTaskInstanceFields).where(RenderedTaskInstanceFields.run_id == report.run_id)
        ).all()
        triggers = session.scalars(select(Trigger)).all()
        places = {
            "task logs": logs,
            "exception texts": "\n".join(f"{err!s} {err!r}" for err in report.errors.values()),
            "XCom": json.dumps(report.xcom, default=repr),
            "rendered template fields": json.dumps([row.rendered_fields for row in rendered], default=repr),
            "serialized triggers": json.dumps([(t.classpath, t.kwargs) for t in triggers], default=repr),
        }
    assert rendered, "no rendered template fields were stored: the check would prove nothing"
    return places


def assert_no_secret(places: dict[str, str]) -> None:
    leaks = [
        f"{name} in {place}"
        for place, text in places.items()
        for name, value in SECRETS.items()
        if value in text
    ]
    assert leaks == []


def assert_no_personal_data(places: dict[str, str], sandbox: PlugzSandbox) -> None:
    """The on-call phone appears nowhere; the alerts' texts in no log or exception (the masker
    may have replaced them: the check is for the clear text)."""
    assert [place for place, text in places.items() if ONCALL_PHONE in text] == []
    texts = [m.message for m in sandbox.messages]
    for place in ("task logs", "exception texts"):
        assert [text for text in texts if text in places[place]] == [], place


def onboarding(example_dags: Any) -> Any:
    dag = example_dags.get_dag("plugz_onboarding")
    for task_id in ("wait_for_connection", "wait_for_pin"):
        dag.get_task(task_id).poke_interval = 0.05
        dag.get_task(task_id).timeout = 30
    return dag


SCENARIOS = [
    pytest.param("plugz_security_check", "remediate", None, "success", id="remediation-sets-pin"),
    pytest.param("plugz_security_check", "remediate-bad-pin", None, "failed", id="remediation-bad-pin"),
    pytest.param("plugz_security_check", None, None, "success", id="check-no-pin"),
    pytest.param("plugz_security_check", {"has_code": True}, None, "success", id="check-pin"),
    pytest.param("plugz_security_check", "disconnected", None, "success", id="check-disconnected"),
    pytest.param("plugz_fleet_audit", "disconnected", None, "success", id="fleet-audit-alert"),
    pytest.param("plugz_onboarding", "connect", None, "success", id="onboarding-waits-for-connection"),
    pytest.param("plugz_onboarding", "flip", None, "success", id="onboarding-deferred"),
    pytest.param(
        "plugz_security_check", None, {"extra": {"client_token": "WRONG"}}, "failed", id="wrong-client-token"
    ),
    pytest.param(
        "plugz_onboarding", None, {"extra": {"client_token": "WRONG"}}, "failed", id="onboarding-wrong-ct"
    ),
    pytest.param("plugz_security_check", None, {"password": "WRONG"}, "failed", id="token-mismatch"),
    pytest.param("plugz_security_check", Fault.status(503), None, "failed", id="503-exhausted"),
    pytest.param("plugz_security_check", Fault.malformed(), None, "failed", id="malformed"),
    pytest.param("plugz_security_check", Fault.drop(), None, "failed", id="dropped"),
    pytest.param(
        "plugz_security_check", None, {"host": "http://198.51.100.7"}, "failed", id="plain-http-refused"
    ),
    pytest.param("plugz_security_check", None, {"login": "a/b"}, "failed", id="bad-instance-id"),
]


@pytest.mark.usefixtures("alerts")
@pytest.mark.parametrize(("dag_id", "server", "conn_changes", "state"), SCENARIOS)
def test_no_secret_reaches_logs_errors_xcom_rendered_fields_or_triggers(
    example_dags: Any,
    sandbox: PlugzSandbox,
    monkeypatch: pytest.MonkeyPatch,
    captured_logs: Any,
    dag_id: str,
    server: Any,
    conn_changes: dict[str, Any] | None,
    state: str,
) -> None:
    if conn_changes is not None:
        conn = {**json.loads(sandbox.connection_json(INSTANCE_ID)), **conn_changes}
        monkeypatch.setenv("AIRFLOW_CONN_PLUGZ_DEFAULT", json.dumps(conn))
    if isinstance(server, Fault):
        sandbox.inject(server, times=10, instance_id=INSTANCE_ID)
    elif server == {"has_code": True}:
        sandbox.set_has_code(INSTANCE_ID, True)
    elif server == "flip":
        threading.Thread(target=_set_pin_after_polls, args=(sandbox,), daemon=True).start()
    elif server == "disconnected":
        sandbox.set_state(INSTANCE_ID, "disconnected")
    elif server == "connect":
        sandbox.set_has_code(INSTANCE_ID, True)
        sandbox.set_state(INSTANCE_ID, "session-lost")
        threading.Thread(target=_connect_after_polls, args=(sandbox,), daemon=True).start()
    run_conf = None
    if server in ("remediate", "remediate-bad-pin"):
        # The PIN where the example DAG documents it: a string extra Airflow hides by name.
        # A malformed PIN must not be echoed either: make it distinctive too.
        conn = json.loads(sandbox.connection_json(INSTANCE_ID))
        conn["extra"]["pin_secret"] = PIN if server == "remediate" else f"{PIN}0"
        monkeypatch.setenv("AIRFLOW_CONN_PLUGZ_DEFAULT", json.dumps(conn))
        run_conf = {"remediate": True}

    dag = onboarding(example_dags) if dag_id == "plugz_onboarding" else example_dags.get_dag(dag_id)
    report = run_dag(dag, run_conf=run_conf)
    if server == "remediate":
        assert sandbox.instance(INSTANCE_ID).has_code is True
        assert report.task_states["set_pin"] == "success"

    assert report.state == state
    places = everything_visible(report, captured_logs())
    places["DAG run conf"] = json.dumps(run_conf)
    assert "Plugz" in places["task logs"]  # the capture really saw our tasks' logs
    if state == "failed":
        assert report.errors, "a failed run must have left an exception to inspect"
        assert all("Plugz" in str(err) for err in report.errors.values())
    assert_no_secret(places)
    assert_no_personal_data(places, sandbox)
    # The on-call phone is alerted on a missing PIN, a disconnected number or a failed task.
    alerted = dag_id != "plugz_onboarding" and (
        state == "failed" or server in ("disconnected", "remediate", None)
    )
    assert bool(sandbox.messages) is alerted  # the alerts checked were really sent
    assert all(m.phone == ONCALL_PHONE for m in sandbox.messages)


def _connect_after_polls(sandbox: PlugzSandbox) -> None:
    deadline = time.monotonic() + 30
    while sandbox.request_count < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    sandbox.set_state(INSTANCE_ID, "connected")


def _set_pin_after_polls(sandbox: PlugzSandbox) -> None:
    deadline = time.monotonic() + 30
    while sandbox.request_count < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    sandbox.set_has_code(INSTANCE_ID, True)


def test_reprs_and_trigger_serialization_hold_no_secret(sandbox: PlugzSandbox) -> None:
    from airflow_provider_plugz._protocol import build_request
    from airflow_provider_plugz.endpoints import PIN_STATUS
    from airflow_provider_plugz.hooks.plugz import PlugzHook
    from airflow_provider_plugz.operators.plugz import PlugzPinBranchOperator, PlugzPinStatusOperator
    from airflow_provider_plugz.sensors.plugz import PlugzPinStatusSensor
    from airflow_provider_plugz.triggers.plugz import PlugzPinStatusTrigger

    hook = PlugzHook()
    hook.get_pin_status()
    texts = [
        repr(hook),
        repr(hook.config),
        str(hook.config),
        repr(build_request(hook.config, PIN_STATUS)),
        repr(PlugzPinStatusOperator(task_id="a")),
        repr(PlugzPinStatusSensor(task_id="b")),
        repr(PlugzPinBranchOperator(task_id="c", if_pin_set="x", if_pin_missing="y")),
        json.dumps(PlugzPinStatusTrigger("plugz_default").serialize()),
        repr(PlugzPinStatusTrigger("plugz_default")),
    ]
    assert_no_secret({"reprs": "\n".join(texts)})


def test_secrets_are_registered_with_the_masker_when_the_connection_is_read(sandbox: PlugzSandbox) -> None:
    from airflow_provider_plugz.hooks.plugz import PlugzHook
    from tests.airflow_compat import redact

    PlugzHook().config  # noqa: B018 - reading the connection is the point
    masked = redact(f"token={INSTANCE_TOKEN} client={CLIENT_TOKEN}")
    assert INSTANCE_TOKEN not in masked
    assert CLIENT_TOKEN not in masked
