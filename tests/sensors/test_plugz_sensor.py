"""PlugzPinStatusSensor in poke, reschedule and deferrable modes against the sandbox."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_plugz.exceptions import (
    PlugzAuthenticationError,
    PlugzConfigurationError,
    PlugzError,
    PlugzNotFoundError,
)
from airflow_provider_plugz.sensors.plugz import PlugzPinStatusSensor
from airflow_provider_plugz.testing import Fault
from tests.conftest import INSTANCE_ID

if TYPE_CHECKING:
    from airflow_provider_plugz.testing import PlugzSandbox


@pytest.mark.parametrize(
    ("has_code", "expected", "done"),
    [
        pytest.param(True, True, True, id="wants-pin-has-pin"),
        pytest.param(False, True, False, id="wants-pin-no-pin"),
        pytest.param(False, False, True, id="wants-removal-removed"),
        pytest.param(True, False, False, id="wants-removal-still-set"),
    ],
)
def test_poke(sandbox: PlugzSandbox, has_code: bool, expected: bool, done: bool) -> None:
    sandbox.set_has_code(INSTANCE_ID, has_code)
    result = PlugzPinStatusSensor(task_id="wait", expected=expected).poke({})  # type: ignore[arg-type]
    assert (result.is_done, result.xcom_value) == (done, has_code)


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(Fault.status(503), id="503"),
        pytest.param(Fault.status(429), id="429"),
        pytest.param(Fault.drop(), id="dropped"),
        pytest.param(Fault.html(502), id="gateway-html"),
    ],
)
def test_poke_keeps_waiting_on_transient_errors(
    sandbox: PlugzSandbox, fault: Fault, caplog: pytest.LogCaptureFixture
) -> None:
    sandbox.set_has_code(INSTANCE_ID, True)
    sandbox.inject(fault, times=4)  # outlasts the hook's retries
    sensor = PlugzPinStatusSensor(task_id="wait")
    assert sensor.poke({}).is_done is False  # type: ignore[arg-type]
    assert sensor.poke({}).is_done is True  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fault", "error_class"),
    [
        pytest.param(
            Fault.status(403, body={"error": "Client-Token x not allowed"}),
            PlugzAuthenticationError,
            id="403",
        ),
        pytest.param(Fault.status(404, body={"error": "Instance not found"}), PlugzNotFoundError, id="404"),
        pytest.param(Fault.status(405), PlugzError, id="405"),
        pytest.param(Fault.status(415), PlugzError, id="415"),
        pytest.param(Fault.malformed(), PlugzError, id="malformed"),
    ],
)
def test_poke_fails_at_once_on_permanent_errors(
    sandbox: PlugzSandbox, fault: Fault, error_class: type[Exception]
) -> None:
    sandbox.inject(fault)
    with pytest.raises(error_class):
        PlugzPinStatusSensor(task_id="wait").poke({})  # type: ignore[arg-type]


def test_poke_mode_execute_waits_through_transient_errors(sandbox: PlugzSandbox) -> None:
    sandbox.set_has_code(INSTANCE_ID, True)
    sandbox.inject(Fault.status(503), times=6)  # the first poke's 4 attempts, 2 of the second's
    sensor = PlugzPinStatusSensor(task_id="wait", poke_interval=0.01, timeout=10, mode="poke")
    assert sensor.execute({}) is True  # type: ignore[arg-type]
    assert sandbox.request_count == 7


def test_poke_mode_timeout_and_soft_fail(sandbox: PlugzSandbox) -> None:
    from airflow_provider_plugz._compat import AirflowSensorTimeout
    from tests.airflow_compat import AirflowSkipException

    with pytest.raises(AirflowSensorTimeout):
        PlugzPinStatusSensor(task_id="wait", poke_interval=0.01, timeout=0.05).execute({})  # type: ignore[arg-type]
    with pytest.raises(AirflowSkipException):
        PlugzPinStatusSensor(task_id="wait", poke_interval=0.01, timeout=0.05, soft_fail=True).execute({})  # type: ignore[arg-type]


# --- sensor: deferrable ------------------------------------------------------------------------


def test_deferrable_default_comes_from_airflow_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "True")
    assert PlugzPinStatusSensor(task_id="wait").deferrable is True
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "False")
    assert PlugzPinStatusSensor(task_id="wait").deferrable is False
    assert PlugzPinStatusSensor(task_id="wait", deferrable=True).deferrable is True


def test_deferrable_returns_at_once_when_already_done(sandbox: PlugzSandbox) -> None:
    sandbox.set_has_code(INSTANCE_ID, True)
    assert PlugzPinStatusSensor(task_id="wait", deferrable=True).execute({}) is True  # type: ignore[arg-type]
    assert sandbox.request_count == 1


def test_deferrable_defers_with_a_secret_free_trigger(sandbox: PlugzSandbox) -> None:
    from airflow_provider_plugz._compat import TaskDeferred

    sensor = PlugzPinStatusSensor(task_id="wait", deferrable=True, poke_interval=30, timeout=600)
    before = time.time()
    with pytest.raises(TaskDeferred) as info:
        sensor.execute({})  # type: ignore[arg-type]
    deferred = info.value
    assert deferred.method_name == "execute_complete"
    assert deferred.timeout is not None
    assert deferred.timeout.total_seconds() == 600
    path, kwargs = deferred.trigger.serialize()
    assert path == "airflow_provider_plugz.triggers.plugz.PlugzPinStatusTrigger"
    assert kwargs.pop("deadline") == pytest.approx(before + 600, abs=5)
    assert kwargs == {"plugz_conn_id": "plugz_default", "expected": True, "poll_interval": 30.0}


@pytest.mark.parametrize(
    ("event", "outcome"),
    [
        pytest.param({"status": "success", "has_code": True}, True, id="success"),
        pytest.param({"status": "success", "has_code": False}, PlugzError, id="success-but-wrong-state"),
        pytest.param({"status": "success", "has_code": "true"}, PlugzError, id="success-string-bool"),
        pytest.param(
            {"status": "error", "error_class": "PlugzNotFoundError", "message": "gone"},
            PlugzNotFoundError,
            id="error",
        ),
        pytest.param(
            {"status": "error", "error_class": "ValueError", "message": "x"}, PlugzError, id="foreign-class"
        ),
        pytest.param(
            {"status": "error", "error_class": "__class__", "message": "x"}, PlugzError, id="dunder-class"
        ),
        pytest.param({"status": "timeout", "message": "late"}, "timeout", id="timeout"),
        pytest.param({"status": "weird"}, PlugzError, id="unknown-status"),
        pytest.param(None, PlugzError, id="none"),
        pytest.param(["success"], PlugzError, id="not-a-dict"),
    ],
)
def test_execute_complete_validates_the_event(event: Any, outcome: Any) -> None:
    from airflow_provider_plugz._compat import AirflowSensorTimeout

    sensor = PlugzPinStatusSensor(task_id="wait", expected=True)
    if outcome is True:
        assert sensor.execute_complete({}, event) is True  # type: ignore[arg-type]
        return
    expected_error = AirflowSensorTimeout if outcome == "timeout" else outcome
    with pytest.raises(expected_error) as info:
        sensor.execute_complete({}, event)  # type: ignore[arg-type]
    if outcome is PlugzNotFoundError:
        assert str(info.value) == "gone"


# --- trigger -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rendered", "seconds"),
    [
        pytest.param("0.5", 0.5, id="text"),
        pytest.param(2, 2.0, id="int"),
        pytest.param(timedelta(minutes=1), 60.0, id="timedelta"),
    ],
)
def test_sensor_poke_interval_may_be_rendered(sandbox: PlugzSandbox, rendered: Any, seconds: float) -> None:
    sandbox.set_has_code(INSTANCE_ID, True)
    sensor = PlugzPinStatusSensor(task_id="wait", poke_interval="{{ params.every }}", timeout=5)
    assert sensor.poke_interval == "{{ params.every }}"
    sensor.poke_interval = rendered  # what template rendering does before execute
    assert sensor.execute({"ti": None}) is True  # type: ignore[arg-type]
    assert sensor.poke_interval == seconds


@pytest.mark.parametrize(
    "rendered",
    [
        pytest.param("soon", id="text"),
        pytest.param("-1", id="negative"),
        pytest.param("nan", id="nan"),
        pytest.param("1e9", id="over-a-day"),
        pytest.param(True, id="bool"),
    ],
)
def test_sensor_bad_rendered_poke_interval_is_a_clear_error(rendered: Any) -> None:
    sensor = PlugzPinStatusSensor(task_id="wait", poke_interval="{{ params.every }}")
    sensor.poke_interval = rendered
    with pytest.raises(PlugzConfigurationError, match="poke_interval must be a number of seconds"):
        sensor.execute({"ti": None})  # type: ignore[arg-type]


# --- a connection that cannot be read ------------------------------------------------------------


@pytest.mark.parametrize(
    ("conn", "says"),
    [
        pytest.param(None, "does not exist", id="missing"),
        pytest.param("plugz://::::@@@[[[", "does not exist", id="neither-json-nor-uri"),
        pytest.param(
            {
                "conn_type": "http",
                "login": INSTANCE_ID,
                "password": "T0KEN5ECRETX",
                "extra": {"client_token": "C1"},
            },
            "has type 'http', not 'plugz'",
            id="wrong-conn-type",
        ),
        pytest.param(RuntimeError, "could not be read (RuntimeError)", id="secrets-backend-fails"),
    ],
)
@pytest.mark.parametrize(
    "mode",
    [
        pytest.param({"mode": "poke"}, id="poke"),
        pytest.param({"mode": "reschedule"}, id="reschedule"),
        pytest.param({"deferrable": True}, id="deferrable"),
    ],
)
def test_a_connection_that_cannot_be_read_fails_the_task_saying_what_to_fix(
    sandbox: PlugzSandbox, monkeypatch: pytest.MonkeyPatch, conn: Any, says: str, mode: dict[str, Any]
) -> None:
    import json

    from airflow_provider_plugz.hooks.plugz import PlugzHook
    from tests.conftest import CLIENT_TOKEN, assert_no_secrets

    if conn is None:
        monkeypatch.delenv("AIRFLOW_CONN_PLUGZ_DEFAULT")
    elif conn is RuntimeError:

        def fail(cls: Any, conn_id: str) -> Any:
            raise RuntimeError(f"secrets backend down; its token is {CLIENT_TOKEN}")

        monkeypatch.setattr(PlugzHook, "get_connection", classmethod(fail))
    else:
        monkeypatch.setenv("AIRFLOW_CONN_PLUGZ_DEFAULT", conn if isinstance(conn, str) else json.dumps(conn))
    sensor = PlugzPinStatusSensor(task_id="wait", poke_interval=0.01, timeout=5, **mode)
    with pytest.raises(PlugzConfigurationError) as info:
        sensor.execute({"ti": None})  # type: ignore[arg-type]
    message = str(info.value)
    assert says in message
    assert "plugz_default" in message
    assert_no_secrets(message, secrets=(CLIENT_TOKEN, "T0KEN5ECRETX"))
    assert sandbox.request_count == 0
