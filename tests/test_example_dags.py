"""The example DAGs: they import cleanly and cheaply, and run end to end in real Airflow
(``dag.test()`` on SQLite) against the sandbox."""

from __future__ import annotations

import json
import re
import threading
import time
import warnings
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_plugz.testing.dag_run import run_dag
from tests.conftest import ALERTS_INSTANCE_ID, EXAMPLE_DAGS, INSTANCE_ID, ONCALL_PHONE, ROOT

if TYPE_CHECKING:
    from airflow_provider_plugz.testing import PlugzSandbox


def test_example_dags_import_without_errors_or_warnings() -> None:
    from tests.airflow_compat import DagBag

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bag = DagBag(dag_folder=str(EXAMPLE_DAGS))
    assert bag.import_errors == {}
    assert bag.captured_warnings == {}
    assert [str(w.message) for w in caught if "example_dags" in str(w.filename)] == []
    assert sorted(bag.dag_ids) == [
        "plugz_fleet_audit",
        "plugz_onboarding",
        "plugz_security_check",
        "plugz_security_events",
    ]
    for dag in bag.dags.values():
        assert "plugz_default" in (dag.doc_md or "")


# plugz_alerts: a second number of the sandbox, the one alerts go out from; and the on-call phone.
def calls_to(sandbox: PlugzSandbox, instance_id: str = INSTANCE_ID) -> int:
    """API requests ``instance_id`` received (the checked number's, not the alerting one's)."""
    return sum(1 for r in sandbox.requests if r.instance_id == instance_id)


def alerts_sent(sandbox: PlugzSandbox) -> list[str]:
    """The texts the outbox holds, each checked to have gone from plugz_alerts to the on-call phone."""
    assert all((m.instance_id, m.phone) == (ALERTS_INSTANCE_ID, ONCALL_PHONE) for m in sandbox.messages)
    return [m.message for m in sandbox.messages]


CHECKED = {"check_pin": "success", "check_connection": "success", "route": "success"}
SKIPPED_REMEDIATION = {"remediation_enabled": "skipped", "set_pin": "skipped", "confirm_pin": "skipped"}
ALERTED = CHECKED | {"alert": "success", "ok": "skipped", "remediation_enabled": "success"}
NOT_REMEDIATED = ALERTED | {"set_pin": "skipped", "confirm_pin": "skipped"}
PIN_OK = CHECKED | {"alert": "skipped", "ok": "success"} | SKIPPED_REMEDIATION
NO_PIN = "has NO two-step-verification PIN"


@pytest.mark.parametrize(
    ("has_code", "state", "states", "problems"),
    [
        pytest.param(False, "connected", NOT_REMEDIATED, [NO_PIN], id="no-pin-alerts-remediation-off"),
        pytest.param(True, "connected", PIN_OK, [], id="pin-ok"),
        pytest.param(
            True,
            "disconnected",
            NOT_REMEDIATED,
            ["is disconnected (You are not connected.)"],
            id="disconnected",
        ),
        pytest.param(
            False,
            "session-lost",
            NOT_REMEDIATED,
            [NO_PIN, "has lost its WhatsApp session (You need to restore the session.)"],
            id="no-pin-and-session-lost",
        ),
        pytest.param(True, "phone-offline", NOT_REMEDIATED, ["has its phone offline"], id="phone-offline"),
    ],
)
def test_security_check_alerts_the_oncall_phone_when_the_pin_is_missing_or_the_number_is_down(
    example_dags: Any,
    alerts: PlugzSandbox,
    has_code: bool,
    state: Any,
    states: dict[str, str],
    problems: list[str],
) -> None:
    alerts.set_has_code(INSTANCE_ID, has_code)
    alerts.set_state(INSTANCE_ID, state)
    report = run_dag(example_dags.get_dag("plugz_security_check"))
    assert report.state == "success"
    assert report.task_states == states
    assert report.xcom_value("check_pin") is has_code
    assert report.xcom_value("check_connection")["connected"] is (state in ("connected", "phone-offline"))
    sent = alerts_sent(alerts)
    if problems:
        assert sent == [report.xcom_value("alert")]  # ONE message, the text the task returned
        assert sent[0].startswith("*Plugz security check*\nThe WhatsApp number of connection plugz_default ")
        assert [problem in sent[0] for problem in problems] == [True] * len(problems)
        assert (NO_PIN in sent[0]) is not has_code
    else:
        assert sent == []
        assert isinstance(report.xcom_value("ok"), str)
    assert calls_to(alerts) == 2  # check_pin, check_connection
    assert calls_to(alerts, ALERTS_INSTANCE_ID) == (2 if problems else 0)  # the send; the sender's check
    assert alerts.instance(INSTANCE_ID).has_code is has_code  # nothing was changed


@pytest.mark.parametrize(
    ("has_code", "state", "states", "requests"),
    [
        pytest.param(
            False,
            "connected",
            ALERTED | {"set_pin": "success", "confirm_pin": "success"},
            6,  # check_pin, check_connection; set_pin's own check, the POST, its confirmation; confirm_pin
            id="no-pin-remediated",
        ),
        pytest.param(True, "connected", PIN_OK, 2, id="pin-ok"),
        pytest.param(True, "disconnected", NOT_REMEDIATED, 2, id="disconnected-nothing-to-remediate"),
    ],
)
def test_security_check_remediates_when_asked(
    example_dags: Any,
    alerts: PlugzSandbox,
    monkeypatch: pytest.MonkeyPatch,
    has_code: bool,
    state: Any,
    states: dict[str, str],
    requests: int,
) -> None:
    conn = json.loads(alerts.connection_json(INSTANCE_ID))
    conn["extra"]["pin_secret"] = "482913"  # the documented place: a JSON string under a hidden name
    monkeypatch.setenv("AIRFLOW_CONN_PLUGZ_DEFAULT", json.dumps(conn))
    alerts.set_has_code(INSTANCE_ID, has_code)
    alerts.set_state(INSTANCE_ID, state)
    report = run_dag(example_dags.get_dag("plugz_security_check"), run_conf={"remediate": True})
    assert report.state == "success"
    assert report.task_states == states
    assert alerts.instance(INSTANCE_ID).has_code is True
    if not has_code:
        assert report.xcom_value("set_pin") == {"changed": True, "has_code": True}
        assert report.xcom_value("confirm_pin") is True
        posts = [r for r in alerts.requests if r.method == "POST" and r.instance_id == INSTANCE_ID]
        assert [p.json() for p in posts] == [{"code": "482913"}]
    assert calls_to(alerts) == requests


def test_security_check_fails_clearly_on_bad_credentials_and_alerts_each_failed_task(
    example_dags: Any, alerts: PlugzSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_plugz.exceptions import PlugzAuthenticationError

    conn = json.loads(alerts.connection_json(INSTANCE_ID))
    conn["extra"]["client_token"] = "REVOKED-CLIENT-TOKEN-0001"
    monkeypatch.setenv("AIRFLOW_CONN_PLUGZ_DEFAULT", json.dumps(conn))
    report = run_dag(example_dags.get_dag("plugz_security_check"))
    assert report.state == "failed"
    assert {t: report.task_states[t] for t in ("check_pin", "check_connection")} == {
        "check_pin": "failed",
        "check_connection": "failed",
    }
    assert report.task_states["route"] == "upstream_failed"
    for task_id in ("check_pin", "check_connection"):
        error = report.errors[task_id]
        assert isinstance(error, PlugzAuthenticationError)
        assert "REVOKED-CLIENT-TOKEN-0001" not in str(error)
        assert "Client-Token" in str(error)
    # The DAG's on_failure_callback (default_args): one WhatsApp alert per failed task.
    sent = sorted(alerts_sent(alerts))
    assert len(sent) == 2
    for text, task_id in zip(sent, ("check_connection", "check_pin"), strict=True):
        assert text.startswith("*Airflow: task failed*\nDAG: plugz_security_check\n")
        assert f"Task: {task_id}\n" in text
        assert "Error: PlugzAuthenticationError" in text
        assert "REVOKED-CLIENT-TOKEN-0001" not in text


@pytest.mark.parametrize(
    ("unset", "error_says"),
    [
        pytest.param(
            "AIRFLOW_CONN_PLUGZ_ALERTS", "the connection 'plugz_alerts' is not defined", id="no-conn"
        ),
        pytest.param("AIRFLOW_VAR_PLUGZ_ONCALL_PHONE", "the Variable 'plugz_oncall_phone'", id="no-variable"),
    ],
)
@pytest.mark.parametrize("dag_id", [pytest.param("plugz_security_check"), pytest.param("plugz_fleet_audit")])
def test_an_alert_that_cannot_be_sent_fails_its_task_saying_what_to_set(
    example_dags: Any,
    alerts: PlugzSandbox,
    monkeypatch: pytest.MonkeyPatch,
    dag_id: str,
    unset: str,
    error_says: str,
) -> None:
    from airflow_provider_plugz.exceptions import PlugzConfigurationError

    monkeypatch.delenv(unset)
    alerts.set_has_code(INSTANCE_ID, False)
    report = run_dag(example_dags.get_dag(dag_id))
    assert report.state == "failed"
    assert report.task_states["alert"] == "failed"
    error = report.errors["alert"]
    assert isinstance(error, PlugzConfigurationError)
    assert error_says in str(error)
    assert unset in str(error)  # how to set it
    assert ONCALL_PHONE not in str(error)
    assert alerts.messages == []


def test_fleet_audit_sends_one_summary_of_the_numbers_that_need_attention(
    example_dags: Any, alerts: PlugzSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    healthy, down = "HEA17HY1NSTANCE00000000000001", "D0WN1NSTANCE000000000000000001"
    alerts.add_instance(healthy, "HEA17HYT0KEN000000000000001", has_code=True)
    alerts.add_instance(down, "D0WNT0KEN00000000000000000001", has_code=True, state="session-lost")
    monkeypatch.setenv("AIRFLOW_CONN_PLUGZ_HEALTHY", alerts.connection_json(healthy))
    monkeypatch.setenv("AIRFLOW_CONN_PLUGZ_DOWN", alerts.connection_json(down))
    ids = ["plugz_default", "plugz_healthy", "plugz_down"]  # plugz_default: no PIN
    report = run_dag(example_dags.get_dag("plugz_fleet_audit"), run_conf={"plugz_conn_ids": ids})
    assert report.state == "success"
    assert report.task_states == {
        "fleet_chunks": "success",
        "audit_pins": "success",
        "merge_reports": "success",
        "route": "success",
        "alert": "success",
        "all_good": "skipped",
    }
    assert alerts_sent(alerts) == [report.xcom_value("alert")]
    lines = alerts.messages[0].message.splitlines()
    assert lines[0] == "2 of 3 WhatsApp number(s) need attention:"
    assert lines[1].startswith("- plugz_default: NO two-step-verification PIN")
    assert lines[2].startswith("- plugz_down: session lost (You need to restore the session.)")
    assert len(lines) == 3


def test_fleet_audit_sends_nothing_when_all_is_well(example_dags: Any, alerts: PlugzSandbox) -> None:
    alerts.set_has_code(INSTANCE_ID, True)
    report = run_dag(example_dags.get_dag("plugz_fleet_audit"))
    assert report.task_states["all_good"] == "success"
    assert report.task_states["alert"] == "skipped"
    assert alerts.messages == []


SENSORS = ("wait_for_connection", "wait_for_pin")
ONBOARDED = {"wait_for_connection": "success", "wait_for_pin": "success", "announce_ready": "success"}


def fast_onboarding(example_dags: Any) -> Any:
    """The onboarding DAG with poll intervals and timeouts fit for a test."""
    dag = example_dags.get_dag("plugz_onboarding")
    for task_id in SENSORS:
        sensor = dag.get_task(task_id)
        sensor.poke_interval = 0.05
        sensor.timeout = 30
    return dag


def flip_when(sandbox: PlugzSandbox, calls: int, change: Any) -> threading.Thread:
    """Run ``change()`` once the checked number has had ``calls`` requests (a sensor is waiting)."""

    def wait_then_change() -> None:
        deadline = time.monotonic() + 30
        while calls_to(sandbox) < calls and time.monotonic() < deadline:
            time.sleep(0.01)
        change()

    flipper = threading.Thread(target=wait_then_change, daemon=True)
    flipper.start()
    return flipper


def test_onboarding_poll_interval_is_a_param_with_a_production_default(example_dags: Any) -> None:
    dag = example_dags.get_dag("plugz_onboarding")
    assert dag.params["poll_interval"] == 300
    for task_id in SENSORS:
        assert dag.get_task(task_id).poke_interval == "{{ params.poll_interval }}"
        assert dag.get_task(task_id).deferrable is True
    assert dag.get_task("wait_for_connection").downstream_task_ids == {"wait_for_pin"}


@pytest.mark.parametrize(
    "how", [pytest.param("param", id="run-conf-param"), pytest.param("attribute", id="task")]
)
def test_onboarding_deferred_sensor_completes_when_pin_is_set_mid_wait(
    example_dags: Any, sandbox: PlugzSandbox, how: str
) -> None:
    # The connection check, 1 PIN check in the worker, then the trigger's polls: 5 calls mean
    # it has been waiting a while.
    flipper = flip_when(sandbox, 5, lambda: sandbox.set_has_code(INSTANCE_ID, True))
    if how == "param":  # as a user trying the DAG out would: no copy, only the run's conf
        report = run_dag(example_dags.get_dag("plugz_onboarding"), run_conf={"poll_interval": 0.05})
    else:
        report = run_dag(fast_onboarding(example_dags))
    flipper.join(5)
    assert report.state == "success"
    assert report.task_states == ONBOARDED
    assert report.xcom_value("wait_for_pin") is True
    assert "PIN set = True" in report.xcom_value("announce_ready")
    assert calls_to(sandbox) >= 6  # it really waited in the trigger, then saw the PIN


@pytest.mark.parametrize(
    "state", [pytest.param(s, id=s) for s in ("disconnected", "session-lost", "phone-offline")]
)
def test_onboarding_waits_for_the_number_to_connect_before_its_pin(
    example_dags: Any, sandbox: PlugzSandbox, state: Any
) -> None:
    sandbox.set_has_code(INSTANCE_ID, True)
    sandbox.set_state(INSTANCE_ID, state)
    # 1 status check in the worker, then the trigger's: 3 calls mean it has been waiting.
    flipper = flip_when(sandbox, 3, lambda: sandbox.set_state(INSTANCE_ID, "connected"))
    report = run_dag(fast_onboarding(example_dags))
    flipper.join(5)
    assert report.state == "success"
    assert report.task_states == ONBOARDED
    assert report.xcom_value("wait_for_connection") == {
        "connected": True,
        "session": True,
        "smartphone_connected": True,
        "error": None,
    }
    paths = [r.path.rsplit("/", 1)[-1] for r in sandbox.requests]
    assert paths.count("status") >= 3
    assert "two-fa-code" in paths
    assert "status" not in paths[paths.index("two-fa-code") :]  # the PIN is checked once connected


def test_onboarding_does_not_defer_when_connected_with_the_pin_already_set(
    example_dags: Any, sandbox: PlugzSandbox
) -> None:
    sandbox.set_has_code(INSTANCE_ID, True)
    report = run_dag(fast_onboarding(example_dags))
    assert report.state == "success"
    assert report.xcom_value("wait_for_pin") is True
    assert calls_to(sandbox) == 2  # one status check, one PIN check


def test_onboarding_fails_at_once_for_an_unknown_instance(example_dags: Any, sandbox: PlugzSandbox) -> None:
    from airflow_provider_plugz.exceptions import PlugzNotFoundError

    sandbox.remove_instance(INSTANCE_ID)
    report = run_dag(fast_onboarding(example_dags))
    assert report.state == "failed"
    assert report.task_states == {
        "wait_for_connection": "failed",
        "wait_for_pin": "upstream_failed",
        "announce_ready": "upstream_failed",
    }
    assert isinstance(report.errors["wait_for_connection"], PlugzNotFoundError)
    assert sandbox.request_count == 1


@pytest.mark.parametrize(
    ("mode", "deferrable"),
    [pytest.param("poke", False, id="poke"), pytest.param("reschedule", False, id="reschedule")],
)
def test_onboarding_sensors_in_worker_modes_wait_for_connection_then_pin(
    example_dags: Any, sandbox: PlugzSandbox, mode: str, deferrable: bool
) -> None:
    dag = fast_onboarding(example_dags)
    for task_id in SENSORS:
        sensor = dag.get_task(task_id)
        sensor.mode, sensor.deferrable = mode, deferrable
    sandbox.set_state(INSTANCE_ID, "disconnected")

    def connect_then_set_pin() -> None:
        sandbox.set_state(INSTANCE_ID, "connected")
        flip_when(sandbox, calls_to(sandbox) + 2, lambda: sandbox.set_has_code(INSTANCE_ID, True))

    flipper = flip_when(sandbox, 2, connect_then_set_pin)
    report = run_dag(dag)
    flipper.join(5)
    assert report.state == "success"
    assert report.task_states == ONBOARDED
    assert report.xcom_value("wait_for_pin") is True
    assert calls_to(sandbox) >= 5  # 2+ status checks, then 2+ PIN checks


@pytest.mark.parametrize(
    ("soft_fail", "sensor_state", "next_state"),
    [
        pytest.param(False, "failed", "upstream_failed", id="timeout-fails"),
        pytest.param(True, "skipped", "skipped", id="timeout-soft-fail-skips"),
    ],
)
@pytest.mark.parametrize(
    "mode", [pytest.param("deferrable", id="deferrable"), pytest.param("poke", id="poke")]
)
@pytest.mark.parametrize("waiting", [pytest.param(s, id=s) for s in SENSORS])
def test_onboarding_sensor_timeout_and_soft_fail(
    example_dags: Any,
    sandbox: PlugzSandbox,
    waiting: str,
    mode: str,
    soft_fail: bool,
    sensor_state: str,
    next_state: str,
) -> None:
    from airflow_provider_plugz._compat import AirflowSensorTimeout

    if waiting == "wait_for_connection":
        sandbox.set_state(INSTANCE_ID, "disconnected")
    dag = fast_onboarding(example_dags)
    sensor = dag.get_task(waiting)
    sensor.timeout, sensor.soft_fail, sensor.deferrable = 0.3, soft_fail, mode == "deferrable"
    report = run_dag(dag)
    expected = dict.fromkeys(ONBOARDED, next_state) | {waiting: sensor_state}
    if waiting == "wait_for_pin":
        expected["wait_for_connection"] = "success"
    assert report.task_states == expected
    if not soft_fail:
        assert isinstance(report.errors[waiting], AirflowSensorTimeout)


def test_the_readme_lists_every_example_dag(example_dags: Any) -> None:
    readme = (ROOT / "README.md").read_text()
    listed = readme.split("example DAGs live in `example_dags/`:", 1)[1].split("\n\n", 2)[1]
    assert sorted(example_dags.dag_ids) == sorted(re.findall(r"^- `(plugz_\w+)`", listed, re.MULTILINE))
    assert "Four example DAGs" in readme
    assert len(example_dags.dag_ids) == 4


def test_dag_docs_name_only_params_the_dags_have(example_dags: Any) -> None:
    for dag_id in example_dags.dag_ids:
        dag = example_dags.get_dag(dag_id)
        for param in re.findall(r"`(\w+)` param", dag.doc_md or ""):
            assert param in dag.params, f"{dag_id}'s doc names a param it does not have: {param}"
    onboarding = example_dags.get_dag("plugz_onboarding")
    assert "poll_interval" in onboarding.doc_md
    assert "poll_interval" in onboarding.params


# --- plugz_security_events: the event-driven DAG -----------------------------------------------


def test_security_events_is_scheduled_on_an_asset_its_watcher_fires_or_says_why_not(
    example_dags: Any,
) -> None:
    from airflow_provider_plugz._compat import has_event_triggers

    dag = example_dags.get_dag("plugz_security_events")
    if not has_event_triggers():  # Airflow 2: imports cleanly, runs by hand only, and says so
        assert dag.schedule_interval is None
        assert "need Airflow 3.0+" in dag.description
        assert "need Airflow 3.0+" in dag.doc_md
        return
    (asset,) = dag.timetable.asset_condition.objects
    assert asset.name == "plugz_security_plugz_default"
    (watcher,) = asset.watchers
    trigger = watcher.trigger
    assert trigger.serialize() == (
        "airflow_provider_plugz.triggers.events.PlugzSecurityEventTrigger",
        {
            "plugz_conn_id": "plugz_default",
            "watch": ["pin", "connection"],
            "poll_interval": 60.0,
            "fire_on_bad_baseline": False,
        },
    )
    assert "need Airflow 3.0+" not in (dag.doc_md or "")


def event(change: str, old: Any, new: Any, watch: str = "pin") -> dict[str, Any]:
    """A change event as PlugzSecurityEventTrigger fires it."""
    return {
        "status": "change",
        "plugz_conn_id": "plugz_default",
        "watch": watch,
        "change": change,
        "old": old,
        "new": new,
        "observed_at": "2026-12-02T01:02:03.456+00:00",
    }


PIN_REMOVED = event("pin_removed", True, False)
AUTH_ERROR = {
    "status": "error",
    "plugz_conn_id": "plugz_default",
    "error_class": "PlugzAuthenticationError",
    "message": "Plugz PIN status check failed: Client-Token *** not allowed.",
    "observed_at": "2026-12-02T01:02:03.456+00:00",
}
EVENTS_ALERTED = {
    "collect": "success",
    "route": "success",
    "alert": "success",
    "nothing_to_report": "skipped",
}
EVENTS_NOT_REMEDIATED = EVENTS_ALERTED | {
    "remediation_enabled": "success",
    "set_pin": "skipped",
    "confirm_pin": "skipped",
}


@pytest.mark.parametrize(
    ("events", "says"),
    [
        pytest.param([PIN_REMOVED], ["LOST its two-step-verification PIN"], id="pin-removed"),
        pytest.param(
            [event("pin_set", False, True)], ["has its two-step-verification PIN again"], id="pin-set"
        ),
        pytest.param(
            [event("disconnected", "connected", "session_lost", "connection")],
            ["has lost its WhatsApp session: reconnect it in the Plugz panel"],
            id="disconnected",
        ),
        pytest.param(
            [event("reconnected", "disconnected", "connected", "connection")],
            ["is connected again"],
            id="reconnected",
        ),
        pytest.param(
            [{**event("no_pin", None, False), "status": "baseline"}],
            ["has NO two-step-verification PIN (found when the watcher started)"],
            id="bad-baseline",
        ),
        pytest.param(
            [AUTH_ERROR],
            ["cannot be checked: PlugzAuthenticationError: Plugz PIN status check failed"],
            id="error",
        ),
        pytest.param(
            [
                {
                    **event("flapping", "connected", "connected", "connection"),
                    "status": "flapping",
                    "values": ["connected", "disconnected"],
                    "changes": 2,
                    "polls": 3,
                }
            ],
            ["keeps changing connection state (connected, disconnected)"],
            id="flapping",
        ),
        pytest.param(
            [PIN_REMOVED, event("disconnected", "connected", "phone_offline", "connection")],
            ["LOST its two-step-verification PIN", "has its phone offline"],
            id="two-events-one-message",
        ),
    ],
)
def test_security_events_alerts_each_event_once_and_remediates_only_when_asked(
    example_dags: Any, alerts: PlugzSandbox, events: list[dict[str, Any]], says: list[str]
) -> None:
    alerts.set_has_code(INSTANCE_ID, False)
    report = run_dag(example_dags.get_dag("plugz_security_events"), run_conf={"events": events})
    assert report.state == "success"
    assert report.task_states == EVENTS_NOT_REMEDIATED
    assert report.xcom_value("collect") == events
    sent = alerts_sent(alerts)
    assert sent == [report.xcom_value("alert")]  # ONE message for the run
    assert sent[0].startswith("*Plugz security events*\nThe WhatsApp number of connection plugz_default:\n- ")
    assert [phrase in sent[0] for phrase in says] == [True] * len(says)
    assert len(sent[0].splitlines()) == 2 + len(events)
    assert calls_to(alerts) == 0  # the run only reports: the watcher did the checking
    assert alerts.instance(INSTANCE_ID).has_code is False


def test_security_events_remediates_a_removed_pin_when_enabled(
    example_dags: Any, alerts: PlugzSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = json.loads(alerts.connection_json(INSTANCE_ID))
    conn["extra"]["pin_secret"] = "482913"
    monkeypatch.setenv("AIRFLOW_CONN_PLUGZ_DEFAULT", json.dumps(conn))
    alerts.set_has_code(INSTANCE_ID, False)
    dag = example_dags.get_dag("plugz_security_events")
    report = run_dag(dag, run_conf={"events": [PIN_REMOVED], "remediate": True})
    assert report.state == "success"
    assert report.task_states == EVENTS_ALERTED | {
        "remediation_enabled": "success",
        "set_pin": "success",
        "confirm_pin": "success",
    }
    assert report.xcom_value("confirm_pin") is True
    assert alerts.instance(INSTANCE_ID).has_code is True
    posts = [r for r in alerts.requests if r.method == "POST" and r.instance_id == INSTANCE_ID]
    assert [p.json() for p in posts] == [{"code": "482913"}]


def test_security_events_run_without_events_reports_nothing(example_dags: Any, alerts: PlugzSandbox) -> None:
    report = run_dag(example_dags.get_dag("plugz_security_events"))
    assert report.state == "success"
    assert report.task_states == {
        "collect": "success",
        "route": "success",
        "alert": "skipped",
        "nothing_to_report": "success",
        "remediation_enabled": "skipped",
        "set_pin": "skipped",
        "confirm_pin": "skipped",
    }
    assert alerts.messages == []
    assert alerts.request_count == 0


# ==================================================================================================
# plugz_fleet_audit in chunks (issue 16): the `chunk_size` param, mapped audit_pins, merge_reports.
# ==================================================================================================


def add_fleet(sandbox: PlugzSandbox, monkeypatch: pytest.MonkeyPatch, count: int) -> list[str]:
    """``count`` more sandbox numbers, ``plugz_fleet_<n>``: every third without PIN, every fifth
    with its session lost, the others healthy."""
    conn_ids = []
    for n in range(count):
        instance, token = f"FLEETCHUNK{n:03d}INSTANCE000000", f"FLEETCHUNK{n:03d}T0KEN000000000"
        state = "session-lost" if n % 5 == 4 else "connected"
        sandbox.add_instance(instance, token, has_code=n % 3 != 2, state=state)
        monkeypatch.setenv(f"AIRFLOW_CONN_PLUGZ_FLEET_{n}", sandbox.connection_json(instance))
        conn_ids.append(f"plugz_fleet_{n}")
    return conn_ids


def map_indexes(report: Any, task_id: str) -> list[int]:
    """The map indexes of ``task_id``'s task instances in the run (``run_dag`` keeps one per task)."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return sorted(
            session.scalars(
                select(TaskInstance.map_index).where(
                    TaskInstance.dag_id == report.dag_id,
                    TaskInstance.run_id == report.run_id,
                    TaskInstance.task_id == task_id,
                )
            )
        )


CHUNKED = {"fleet_chunks": "success", "audit_pins": "success", "merge_reports": "success", "route": "success"}


def test_fleet_audit_has_a_chunk_size_param_and_maps_audit_pins_over_the_chunks(example_dags: Any) -> None:
    from airflow_provider_plugz.operators.audit import DEFAULT_CHUNK_SIZE

    dag = example_dags.get_dag("plugz_fleet_audit")
    assert dag.params["chunk_size"] == DEFAULT_CHUNK_SIZE
    assert "chunk_size" in (dag.doc_md or "")
    audit = dag.get_task("audit_pins")
    assert type(audit).__name__ == "MappedOperator"  # Airflow's own dynamic task mapping
    assert audit.upstream_task_ids == {"fleet_chunks"}
    assert dag.get_task("merge_reports").upstream_task_ids == {"audit_pins", "fleet_chunks"}
    assert str(dag.get_task("merge_reports").trigger_rule).endswith(("all_done", "ALL_DONE"))
    assert dag.get_task("route").upstream_task_ids == {"merge_reports"}


@pytest.mark.parametrize(
    ("chunk_size", "chunks"),
    [
        pytest.param(3, [3, 3, 2], id="mapped-chunks"),
        pytest.param(8, [8], id="up-to-chunk-size-one-task"),
        pytest.param(1, [1] * 8, id="chunks-of-one"),
    ],
)
def test_fleet_audit_in_chunks_merges_one_exact_report_and_sends_one_summary(
    example_dags: Any,
    alerts: PlugzSandbox,
    monkeypatch: pytest.MonkeyPatch,
    chunk_size: int,
    chunks: list[int],
) -> None:
    ids = add_fleet(alerts, monkeypatch, 8)
    report = run_dag(
        example_dags.get_dag("plugz_fleet_audit"), run_conf={"plugz_conn_ids": ids, "chunk_size": chunk_size}
    )
    assert report.state == "success"
    assert report.task_states == CHUNKED | {"alert": "success", "all_good": "skipped"}
    assert [len(chunk) for chunk in report.xcom_value("fleet_chunks")] == chunks
    assert map_indexes(report, "audit_pins") == list(range(len(chunks)))
    merged = report.xcom_value("merge_reports")
    assert merged == report.xcom_value("merge_reports", "report")
    assert list(merged["results"]) == ids  # every number once, in the order given
    no_pin = [c for n, c in enumerate(ids) if n % 3 == 2]  # plugz_fleet_2, _5
    lost = [c for n, c in enumerate(ids) if n % 5 == 4]  # plugz_fleet_4
    assert (merged["total"], merged["with_pin"], merged["without_pin"], merged["errors"]) == (8, 6, 2, 0)
    assert (merged["connected"], merged["session_lost"], merged["status_errors"]) == (7, 1, 0)
    assert [c for c, r in merged["results"].items() if r["has_code"] is False] == no_pin
    assert [c for c, r in merged["results"].items() if r["status"]["state"] == "session_lost"] == lost
    # Each number was asked exactly once for its PIN and once for its status, whatever the chunks.
    assert sum(1 for r in alerts.requests if "FLEETCHUNK" in (r.instance_id or "")) == 2 * len(ids)
    sent = alerts_sent(alerts)
    assert sent == [report.xcom_value("alert")]  # ONE summary for the whole fleet
    assert sent[0].splitlines()[0] == "3 of 8 WhatsApp number(s) need attention:"


@pytest.mark.parametrize(
    ("option", "says"),
    [
        pytest.param("fail_if_missing_pin", "2 WhatsApp number(s) have NO PIN", id="fail-if-missing-pin"),
        pytest.param(
            "fail_if_disconnected", "1 WhatsApp number(s) are not connected", id="fail-if-disconnected"
        ),
    ],
)
def test_fleet_audit_fail_options_on_merge_reports_fail_it_for_a_finding_in_any_chunk(
    example_dags: Any, alerts: PlugzSandbox, monkeypatch: pytest.MonkeyPatch, option: str, says: str
) -> None:
    from airflow_provider_plugz.exceptions import PlugzAuditError

    ids = add_fleet(alerts, monkeypatch, 8)
    dag = example_dags.get_dag("plugz_fleet_audit")
    setattr(dag.get_task("merge_reports"), option, True)
    report = run_dag(dag, run_conf={"plugz_conn_ids": ids, "chunk_size": 3})
    assert report.state == "failed"
    assert report.task_states["audit_pins"] == "success"  # the chunks never fail on findings
    assert report.task_states["merge_reports"] == "failed"
    assert {report.task_states[t] for t in ("route", "alert", "all_good")} == {"upstream_failed"}
    error = report.errors["merge_reports"]
    assert isinstance(error, PlugzAuditError)
    assert f"Plugz PIN audit of {len(ids)} connection(s) failed: {says}" in str(error)
    assert report.xcom_value("merge_reports", "report")["total"] == len(ids)  # pushed before failing
    assert alerts.messages == []


def test_fleet_audit_a_failing_chunk_is_still_merged_and_alerted(
    example_dags: Any, alerts: PlugzSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fail_* set on the chunks anyway: a chunk fails, but merge_reports (all_done) still merges its
    report, pushed before it failed, and the summary goes out."""
    ids = add_fleet(alerts, monkeypatch, 8)
    dag = example_dags.get_dag("plugz_fleet_audit")
    dag.get_task("audit_pins").partial_kwargs["fail_if_missing_pin"] = True
    report = run_dag(dag, run_conf={"plugz_conn_ids": ids, "chunk_size": 3})
    assert report.task_states["merge_reports"] == "success"
    assert report.task_states["alert"] == "success"
    merged = report.xcom_value("merge_reports")
    assert (merged["total"], merged["without_pin"], merged["errors"]) == (8, 2, 0)
    assert len(alerts_sent(alerts)) == 1
