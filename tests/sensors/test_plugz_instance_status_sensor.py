"""PlugzInstanceStatusSensor in poke, reschedule and deferrable modes against the sandbox: its
conditions (named states, fields with "don't care"), transient and permanent errors, the
trigger it defers to, and the validation of that trigger's event."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_plugz._compat import AIRFLOW_V3, AirflowSensorTimeout, TaskDeferred
from airflow_provider_plugz.exceptions import (
    PlugzAuthenticationError,
    PlugzConfigurationError,
    PlugzError,
    PlugzMalformedResponseError,
    PlugzNotFoundError,
)
from airflow_provider_plugz.operators.plugz import PlugzInstanceStatusOperator
from airflow_provider_plugz.sensors.plugz import PlugzInstanceStatusSensor
from airflow_provider_plugz.testing import Fault
from tests.airflow_compat import AirflowRescheduleException, AirflowSkipException
from tests.conftest import CLIENT_TOKEN, INSTANCE_ID, assert_no_secrets, task_context, trigger_events

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_provider_plugz.testing import PlugzSandbox

STATES = ("connected", "disconnected", "session-lost", "phone-offline")


def status_xcom(sandbox: PlugzSandbox) -> Any:
    """What PlugzInstanceStatusOperator pushes for the sandbox's current state: the sensor's
    XCom is documented to be the same."""
    return PlugzInstanceStatusOperator(task_id="health").execute(task_context())


@pytest.fixture
def flip_state(sandbox: PlugzSandbox) -> Iterator[Any]:
    """``flip(state, after=n)``: set the instance's state once the sandbox has answered ``n``
    requests, from a thread (for waits that run in the test's own thread)."""
    threads: list[threading.Thread] = []

    def flip(state: str, after: int) -> None:
        def run() -> None:
            deadline = time.monotonic() + 10
            while sandbox.request_count < after and time.monotonic() < deadline:
                time.sleep(0.005)
            sandbox.set_state(INSTANCE_ID, state)  # type: ignore[arg-type]

        threads.append(threading.Thread(target=run, daemon=True))
        threads[-1].start()

    yield flip
    for thread in threads:
        thread.join(timeout=10)


# --- conditions --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "done_in"),
    [
        pytest.param({}, {"connected"}, id="default-connected"),
        pytest.param({"state": "connected"}, {"connected"}, id="state-connected"),
        pytest.param({"state": "disconnected"}, {"disconnected"}, id="state-disconnected"),
        pytest.param({"state": "session_lost"}, {"session-lost"}, id="state-session-lost"),
        pytest.param({"state": "session-lost"}, {"session-lost"}, id="state-hyphen-alias"),
        pytest.param({"state": "phone_offline"}, {"phone-offline"}, id="state-phone-offline"),
        pytest.param(
            {"state": ["disconnected", "session_lost"]}, {"disconnected", "session-lost"}, id="any-of-states"
        ),
        pytest.param({"connected": True}, {"connected", "phone-offline"}, id="connected-phone-dont-care"),
        pytest.param({"connected": False}, {"disconnected", "session-lost"}, id="not-connected"),
        pytest.param(
            {"smartphone_connected": False}, {"disconnected", "phone-offline"}, id="phone-offline-field"
        ),
        pytest.param(
            {"connected": False, "smartphone_connected": True},
            {"session-lost"},
            id="not-connected-phone-online",
        ),
        pytest.param({"session": True}, {"connected", "phone-offline"}, id="session-held"),
    ],
)
@pytest.mark.parametrize("state", STATES)
def test_poke_is_done_exactly_in_the_wanted_states(
    sandbox: PlugzSandbox, condition: dict[str, Any], done_in: set[str], state: str
) -> None:
    sandbox.set_state(INSTANCE_ID, state)  # type: ignore[arg-type]
    result = PlugzInstanceStatusSensor(task_id="wait", **condition).poke(task_context())
    assert result.is_done is (state in done_in)
    assert result.xcom_value == status_xcom(sandbox)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        pytest.param({"state": "online"}, "state must be one of connected, disconnected", id="unknown-state"),
        pytest.param({"state": []}, "state must be one of", id="empty-list"),
        pytest.param({"state": ["connected", 1]}, "state must be one of", id="not-a-text"),
        pytest.param({"state": "connected", "connected": True}, "not both", id="state-and-field"),
        pytest.param({"connected": "yes"}, "connected must be True, False or None", id="field-not-bool"),
        pytest.param({"smartphone_connected": 1}, "smartphone_connected must be True, False", id="field-int"),
    ],
)
def test_bad_condition_is_refused_when_the_dag_is_parsed(kwargs: dict[str, Any], fragment: str) -> None:
    with pytest.raises(PlugzConfigurationError, match=fragment):
        PlugzInstanceStatusSensor(task_id="wait", **kwargs)


# --- poke and reschedule -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(Fault.status(503), id="503"),
        pytest.param(Fault.status(429), id="429"),
        pytest.param(Fault.drop(), id="dropped"),
        pytest.param(Fault.html(502), id="gateway-html"),
    ],
)
def test_poke_keeps_waiting_on_transient_errors(sandbox: PlugzSandbox, fault: Fault) -> None:
    sandbox.inject(fault, times=4)  # outlasts the hook's retries
    sensor = PlugzInstanceStatusSensor(task_id="wait")
    assert sensor.poke(task_context()).is_done is False
    assert sensor.poke(task_context()).is_done is True


@pytest.mark.parametrize(
    ("fault", "error_class"),
    [
        pytest.param(
            Fault.status(403, body={"error": f"Client-Token {CLIENT_TOKEN} not allowed"}),
            PlugzAuthenticationError,
            id="403",
        ),
        pytest.param(Fault.status(404, body={"error": "Instance not found"}), PlugzNotFoundError, id="404"),
        pytest.param(Fault.status(405), PlugzError, id="405"),
        pytest.param(Fault.malformed(), PlugzMalformedResponseError, id="malformed"),
    ],
)
def test_poke_fails_at_once_on_permanent_errors(
    sandbox: PlugzSandbox, fault: Fault, error_class: type[Exception]
) -> None:
    sandbox.inject(fault)
    with pytest.raises(error_class) as info:
        PlugzInstanceStatusSensor(task_id="wait").poke(task_context())
    assert_no_secrets(str(info.value))


@pytest.mark.parametrize(
    ("start", "condition", "end"),
    [
        pytest.param("disconnected", {}, "connected", id="until-connected"),
        pytest.param("connected", {"state": "disconnected"}, "disconnected", id="until-disconnected"),
        pytest.param("phone-offline", {"smartphone_connected": True}, "connected", id="until-phone-online"),
    ],
)
def test_poke_mode_waits_until_the_state_flips(
    sandbox: PlugzSandbox, flip_state: Any, start: str, condition: dict[str, Any], end: str
) -> None:
    sandbox.set_state(INSTANCE_ID, start)  # type: ignore[arg-type]
    flip_state(end, after=3)
    sensor = PlugzInstanceStatusSensor(
        task_id="wait", poke_interval=0.01, timeout=10, mode="poke", **condition
    )
    result = sensor.execute(task_context())
    assert sandbox.request_count >= 3  # it was not done before the flip
    assert result == status_xcom(sandbox)


def test_reschedule_mode_frees_the_slot_until_done(
    sandbox: PlugzSandbox, request: pytest.FixtureRequest
) -> None:
    if not AIRFLOW_V3:
        request.getfixturevalue("airflow_db")  # Airflow 2 looks up earlier reschedules in the DB
    sandbox.set_state(INSTANCE_ID, "session-lost")
    sensor = PlugzInstanceStatusSensor(task_id="wait", mode="reschedule", poke_interval=60, timeout=600)
    with pytest.raises(AirflowRescheduleException):
        sensor.execute(task_context())
    sandbox.set_state(INSTANCE_ID, "connected")
    assert sensor.execute(task_context()) == status_xcom(sandbox)


def test_poke_mode_timeout_and_soft_fail(sandbox: PlugzSandbox) -> None:
    sandbox.set_state(INSTANCE_ID, "disconnected")
    with pytest.raises(AirflowSensorTimeout):
        PlugzInstanceStatusSensor(task_id="wait", poke_interval=0.01, timeout=0.05).execute(task_context())
    with pytest.raises(AirflowSkipException):
        PlugzInstanceStatusSensor(task_id="wait", poke_interval=0.01, timeout=0.05, soft_fail=True).execute(
            task_context()
        )


def test_poke_interval_may_be_a_template(sandbox: PlugzSandbox) -> None:
    sensor = PlugzInstanceStatusSensor(task_id="wait", poke_interval="{{ params.every }}", timeout=5)
    assert "poke_interval" in sensor.template_fields
    sensor.poke_interval = "0.5"  # type: ignore[assignment]  # what rendering does before execute
    assert sensor.execute(task_context()) == status_xcom(sandbox)
    assert sensor.poke_interval == 0.5
    sensor.poke_interval = "soon"  # type: ignore[assignment]
    with pytest.raises(PlugzConfigurationError, match="poke_interval must be a number of seconds"):
        sensor.execute(task_context())


# --- deferrable --------------------------------------------------------------------------------


def test_deferrable_returns_at_once_when_already_done(sandbox: PlugzSandbox) -> None:
    result = PlugzInstanceStatusSensor(task_id="wait", deferrable=True).execute(task_context())
    assert result == {"connected": True, "session": True, "smartphone_connected": True, "error": None}
    assert sandbox.request_count == 1


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        pytest.param({}, {"state": ["connected"]}, id="default"),
        pytest.param(
            {"state": ["connected", "phone-offline"]}, {"state": ["connected", "phone_offline"]}, id="states"
        ),
        pytest.param(
            {"connected": True, "smartphone_connected": True},
            {"connected": True, "smartphone_connected": True},
            id="fields",
        ),
    ],
)
def test_deferrable_defers_with_a_secret_free_trigger(
    sandbox: PlugzSandbox, condition: dict[str, Any], expected: dict[str, Any]
) -> None:
    sandbox.set_state(INSTANCE_ID, "disconnected")
    sensor = PlugzInstanceStatusSensor(
        task_id="wait", deferrable=True, poke_interval=30, timeout=600, **condition
    )
    before = time.time()
    with pytest.raises(TaskDeferred) as info:
        sensor.execute(task_context())
    deferred = info.value
    assert deferred.method_name == "execute_complete"
    assert deferred.timeout is not None
    assert deferred.timeout.total_seconds() == 600
    path, kwargs = deferred.trigger.serialize()
    assert path == "airflow_provider_plugz.triggers.plugz.PlugzInstanceStatusTrigger"
    assert kwargs.pop("deadline") == pytest.approx(before + 600, abs=5)
    assert kwargs == {"plugz_conn_id": "plugz_default", "expected": expected, "poll_interval": 30.0}
    assert_no_secrets(json.dumps(kwargs), repr(deferred.trigger))


def test_deferred_wait_completes_when_the_number_reconnects(sandbox: PlugzSandbox) -> None:
    """Worker check, defer, the trigger polls through a flip of state, execute_complete."""
    sandbox.set_state(INSTANCE_ID, "session-lost")
    sensor = PlugzInstanceStatusSensor(task_id="wait", deferrable=True, poke_interval=0.01, timeout=60)
    with pytest.raises(TaskDeferred) as info:
        sensor.execute(task_context())

    async def scenario() -> list[dict[str, Any]]:
        waiting = asyncio.ensure_future(trigger_events(info.value.trigger))
        while sandbox.request_count < 3:
            await asyncio.sleep(0.01)
        assert not waiting.done()
        sandbox.set_state(INSTANCE_ID, "connected")
        return await waiting

    (event,) = asyncio.run(scenario())
    assert sensor.execute_complete(task_context(), event) == status_xcom(sandbox)


CONNECTED = {"connected": True, "session": True, "smartphone_connected": True, "error": None}
OFFLINE = {
    "connected": True,
    "session": True,
    "smartphone_connected": False,
    "error": "You are not connected.",
}


@pytest.mark.parametrize(
    ("event", "outcome"),
    [
        pytest.param({"status": "success", "observation": CONNECTED}, CONNECTED, id="success"),
        pytest.param({"status": "success", "observation": OFFLINE}, PlugzError, id="success-but-wrong-state"),
        pytest.param(
            {"status": "success", "observation": {**CONNECTED, "connected": "true"}},
            PlugzError,
            id="string-bool",
        ),
        pytest.param(
            {"status": "success", "observation": {**CONNECTED, "connected": 1}}, PlugzError, id="int-bool"
        ),
        pytest.param(
            {"status": "success", "observation": {"connected": True, "smartphone_connected": True}},
            PlugzError,
            id="missing-fields",
        ),
        pytest.param(
            {"status": "success", "observation": {**CONNECTED, "extra": 1}}, PlugzError, id="unknown-field"
        ),
        pytest.param({"status": "success", "has_code": True}, PlugzError, id="a-pin-event"),
        pytest.param(
            {"status": "error", "error_class": "PlugzNotFoundError", "message": "gone"},
            PlugzNotFoundError,
            id="error",
        ),
        pytest.param(
            {"status": "error", "error_class": "ValueError", "message": "x"}, PlugzError, id="foreign-class"
        ),
        pytest.param({"status": "timeout", "message": "late"}, AirflowSensorTimeout, id="timeout"),
        pytest.param({"status": "weird"}, PlugzError, id="unknown-status"),
        pytest.param(None, PlugzError, id="none"),
    ],
)
def test_execute_complete_validates_the_event(event: Any, outcome: Any) -> None:
    sensor = PlugzInstanceStatusSensor(task_id="wait")
    if isinstance(outcome, dict):
        assert sensor.execute_complete(task_context(), event) == outcome
        return
    with pytest.raises(outcome) as info:
        sensor.execute_complete(task_context(), event)
    assert type(info.value) is outcome
    if outcome is PlugzNotFoundError:
        assert str(info.value) == "gone"
