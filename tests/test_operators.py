"""Operator, branch operator, sensor and trigger, each against the sandbox over real HTTP."""

from __future__ import annotations

import asyncio
import json
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
from airflow_provider_plugz.operators.plugz import PlugzPinBranchOperator, PlugzPinStatusOperator
from airflow_provider_plugz.sensors.plugz import PlugzPinStatusSensor
from airflow_provider_plugz.testing import Fault
from airflow_provider_plugz.triggers.plugz import PlugzPinStatusTrigger
from tests.conftest import CLIENT_TOKEN, INSTANCE_ID, FakeTaskInstance, trigger_events

if TYPE_CHECKING:
    from airflow_provider_plugz.testing import PlugzSandbox


@pytest.mark.parametrize(
    "operator_class",
    [
        pytest.param(PlugzPinStatusOperator, id="operator"),
        pytest.param(PlugzPinStatusSensor, id="sensor"),
        pytest.param(PlugzPinBranchOperator, id="branch"),
    ],
)
def test_init_does_no_io_and_conn_id_is_templated(operator_class: type[Any]) -> None:
    kwargs: dict[str, Any] = {"task_id": "t", "plugz_conn_id": "{{ params.conn }}"}
    if operator_class is PlugzPinBranchOperator:
        kwargs.update(if_pin_set="a", if_pin_missing="b")
    operator = operator_class(**kwargs)  # no such connection anywhere: must not be looked up
    assert "plugz_conn_id" in operator.template_fields
    assert "hook" not in operator.__dict__


@pytest.mark.parametrize("has_code", [pytest.param(True, id="pin"), pytest.param(False, id="no-pin")])
def test_operator_returns_has_code(sandbox: PlugzSandbox, has_code: bool) -> None:
    sandbox.set_has_code(INSTANCE_ID, has_code)
    assert PlugzPinStatusOperator(task_id="check").execute({}) is has_code  # type: ignore[arg-type]


def test_operator_fails_with_the_plugz_error(sandbox: PlugzSandbox) -> None:
    sandbox.inject(Fault.status(404, body={"error": "Instance not found"}))
    with pytest.raises(PlugzNotFoundError):
        PlugzPinStatusOperator(task_id="check").execute({})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("has_code", "chosen"),
    [pytest.param(True, ["ok"], id="pin-set"), pytest.param(False, ["alert", "page"], id="pin-missing")],
)
def test_branch_chooses_and_pushes_has_code(sandbox: PlugzSandbox, has_code: bool, chosen: list[str]) -> None:
    sandbox.set_has_code(INSTANCE_ID, has_code)
    ti = FakeTaskInstance()
    branch = PlugzPinBranchOperator(task_id="check", if_pin_set="ok", if_pin_missing=["alert", "page"])
    assert branch.choose_branch({"ti": ti}) == chosen  # type: ignore[arg-type]
    assert ti.pushed == {"has_code": has_code}


@pytest.mark.parametrize(
    ("if_pin_set", "if_pin_missing"),
    [
        pytest.param([], "b", id="empty-list"),
        pytest.param("a", [""], id="empty-id"),
        pytest.param("a", [1], id="int"),
    ],
)
def test_branch_rejects_bad_task_ids(if_pin_set: Any, if_pin_missing: Any) -> None:
    with pytest.raises(ValueError, match="task id"):
        PlugzPinBranchOperator(task_id="check", if_pin_set=if_pin_set, if_pin_missing=if_pin_missing)


# --- sensor: poke ------------------------------------------------------------------------------


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


def test_trigger_serialize_exactly() -> None:
    trigger = PlugzPinStatusTrigger(
        plugz_conn_id="plugz_x", expected=False, poll_interval=2.5, deadline=1800000000.0
    )
    assert trigger.serialize() == (
        "airflow_provider_plugz.triggers.plugz.PlugzPinStatusTrigger",
        {"plugz_conn_id": "plugz_x", "expected": False, "poll_interval": 2.5, "deadline": 1800000000.0},
    )
    _path, kwargs = trigger.serialize()
    json.dumps(kwargs)  # JSON-safe
    assert PlugzPinStatusTrigger(**kwargs).serialize() == trigger.serialize()


def test_trigger_fires_once_after_the_pin_is_set_mid_wait(sandbox: PlugzSandbox) -> None:
    sandbox.inject(Fault.status(503))  # a transient error on the way is only logged

    async def scenario() -> list[Any]:
        task = asyncio.ensure_future(
            trigger_events(PlugzPinStatusTrigger("plugz_default", poll_interval=0.01))
        )
        while sandbox.request_count < 3:
            await asyncio.sleep(0.01)
        assert not task.done()
        sandbox.set_has_code(INSTANCE_ID, True)
        return await asyncio.wait_for(task, timeout=10)

    assert asyncio.run(scenario()) == [{"status": "success", "has_code": True}]


def test_trigger_waits_for_removal(sandbox: PlugzSandbox) -> None:
    events = asyncio.run(
        trigger_events(PlugzPinStatusTrigger("plugz_default", expected=False, poll_interval=0.01))
    )
    assert events == [{"status": "success", "has_code": False}]


def test_trigger_stops_on_a_permanent_error(sandbox: PlugzSandbox) -> None:
    sandbox.inject(Fault.status(403, body={"error": f"Client-Token {CLIENT_TOKEN} not allowed"}))
    (event,) = asyncio.run(trigger_events(PlugzPinStatusTrigger("plugz_default", poll_interval=0.01)))
    assert event["status"] == "error"
    assert event["error_class"] == "PlugzAuthenticationError"
    assert CLIENT_TOKEN not in event["message"]
    assert "Client-Token *** not allowed" in event["message"]


def test_trigger_times_out_at_the_deadline(sandbox: PlugzSandbox) -> None:
    trigger = PlugzPinStatusTrigger("plugz_default", poll_interval=0.01, deadline=time.time() + 0.3)
    (event,) = asyncio.run(trigger_events(trigger))
    assert event["status"] == "timeout"
    assert sandbox.request_count >= 1
    assert sandbox.instance(INSTANCE_ID).has_code is False


def test_trigger_bad_connection_is_an_error_event(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_PLUGZ_DEFAULT", json.dumps({"conn_type": "plugz", "login": "x"}))
    (event,) = asyncio.run(trigger_events(PlugzPinStatusTrigger("plugz_default", poll_interval=0.01)))
    assert event["status"] == "error"
    assert event["error_class"] == "PlugzConfigurationError"


def test_trigger_transient_errors_keep_polling(sandbox: PlugzSandbox) -> None:
    sandbox.set_has_code(INSTANCE_ID, True)
    sandbox.inject(Fault.status(503), times=2)
    sandbox.inject(Fault.drop())
    events = asyncio.run(trigger_events(PlugzPinStatusTrigger("plugz_default", poll_interval=0.01)))
    assert events == [{"status": "success", "has_code": True}]
    assert sandbox.request_count == 4


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
