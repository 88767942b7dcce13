"""PlugzPinStatusTrigger in an event loop against the sandbox: one event, secret-free
serialization; and both sensor triggers through every way their connection can fail to be read
and through unexpected exceptions: nothing but their documented events leaves ``run()``."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_plugz.exceptions import PlugzConfigurationError, PlugzError
from airflow_provider_plugz.testing import Fault
from airflow_provider_plugz.triggers.plugz import PlugzPinStatusTrigger
from tests.conftest import CLIENT_TOKEN, INSTANCE_ID, assert_no_secrets, trigger_events

if TYPE_CHECKING:
    from airflow_provider_plugz.testing import PlugzSandbox
    from tests.triggers.conftest import UnreadableConnection


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


def test_the_waiting_line_is_info_when_first_seen_or_changed_else_debug(
    sandbox: PlugzSandbox, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A line per poll of 1,000 triggers would be most of a triggerer's log: only news is INFO."""
    from airflow_provider_plugz.triggers.plugz import PlugzInstanceStatusTrigger, PlugzPollingTrigger

    logger = logging.getLogger("tests.trigger_log")
    monkeypatch.setattr(PlugzPollingTrigger, "log", property(lambda self: logger))
    caplog.set_level(logging.DEBUG, logger=logger.name)
    sandbox.set_state(INSTANCE_ID, "disconnected")
    trigger = PlugzInstanceStatusTrigger("plugz_default", expected={"state": "connected"}, poll_interval=0.01)

    async def scenario() -> list[dict[str, Any]]:
        waiting = asyncio.ensure_future(trigger_events(trigger))
        while sandbox.request_count < 4:
            await asyncio.sleep(0.005)
        sandbox.set_state(INSTANCE_ID, "session-lost")
        before = sandbox.request_count
        while sandbox.request_count < before + 4:
            await asyncio.sleep(0.005)
        sandbox.set_state(INSTANCE_ID, "connected")
        return await waiting

    (event,) = asyncio.run(scenario())
    assert event["status"] == "success"
    waiting_lines = [(r.levelno, r.getMessage()) for r in caplog.records if "waiting for" in r.getMessage()]
    infos = [message for level, message in waiting_lines if level == logging.INFO]
    assert len(infos) == 2, infos  # disconnected, then session lost
    assert "disconnected" in infos[0].lower()
    assert "session lost" in infos[1].lower()
    assert len(waiting_lines) - len(infos) >= 4  # the unchanged polls, at DEBUG


# --- nothing but the documented events leaves run() ---------------------------------------------

SENSORS = [
    pytest.param("PlugzPinStatusSensor", id="pin-status-trigger"),
    pytest.param("PlugzInstanceStatusSensor", id="instance-status-trigger"),
]


def deferred_trigger(sensor_class: str) -> tuple[Any, Any]:
    """A sensor and the trigger it defers to, rebuilt from its kwargs as the triggerer does."""
    from airflow_provider_plugz.sensors import plugz as sensors

    sensor = getattr(sensors, sensor_class)(task_id="wait", deferrable=True, poke_interval=0.01, timeout=60)
    trigger = sensor._trigger(poll_interval=0.01, deadline=time.time() + 60)
    _path, kwargs = trigger.serialize()
    return sensor, type(trigger)(**json.loads(json.dumps(kwargs)))


@pytest.mark.parametrize("sensor_class", SENSORS)
def test_a_connection_that_cannot_be_read_is_one_error_that_fails_the_task_saying_what_to_fix(
    sandbox: PlugzSandbox, unreadable_connection: UnreadableConnection, sensor_class: str
) -> None:
    sensor, trigger = deferred_trigger(sensor_class)
    with unreadable_connection:
        (event,) = asyncio.run(trigger_events(trigger))
    assert event["status"] == "error"
    assert event["error_class"] == "PlugzConfigurationError"
    unreadable_connection.check(event["message"])
    assert sandbox.request_count == 0
    with pytest.raises(PlugzConfigurationError) as info:
        sensor.execute_complete({}, event)
    unreadable_connection.check(str(info.value))


@pytest.mark.parametrize("sensor_class", SENSORS)
@pytest.mark.parametrize(
    "where",
    [
        pytest.param("observe", id="reading-an-answer"),
        pytest.param("matches", id="checking-the-condition"),
        pytest.param("hook", id="in-the-hook"),
    ],
)
def test_an_unexpected_exception_is_one_error_event_named_by_its_class(
    sandbox: PlugzSandbox, monkeypatch: pytest.MonkeyPatch, sensor_class: str, where: str
) -> None:
    """A bug fails the task with a PlugzError that says so; its text (here a secret) is left out."""
    from airflow_provider_plugz.hooks.plugz import PlugzHook
    from airflow_provider_plugz.triggers.plugz import PlugzPollingTrigger

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise KeyError(CLIENT_TOKEN)

    async def aboom(*args: Any, **kwargs: Any) -> Any:
        boom()

    if where == "hook":
        monkeypatch.setattr(PlugzHook, "acall", aboom)
    else:
        monkeypatch.setattr(PlugzPollingTrigger, where, boom)
    sensor, trigger = deferred_trigger(sensor_class)
    (event,) = asyncio.run(trigger_events(trigger))
    assert event["status"] == "error"
    assert event["error_class"] == "KeyError"
    assert "bug" in event["message"]
    assert_no_secrets(json.dumps(event))
    with pytest.raises(PlugzError, match="bug") as info:
        sensor.execute_complete({}, event)
    assert type(info.value) is PlugzError
    assert_no_secrets(str(info.value))


@pytest.mark.parametrize("sensor_class", SENSORS)
def test_cancelling_a_wait_still_ends_it_at_once(sandbox: PlugzSandbox, sensor_class: str) -> None:
    """The triggerer cancels a trigger (task cleared, triggerer stopping): that is not an error."""
    _sensor, trigger = deferred_trigger(sensor_class)
    sandbox.set_state(INSTANCE_ID, "disconnected")

    async def scenario() -> list[Any]:
        task = asyncio.ensure_future(trigger_events(trigger))
        while sandbox.request_count < 2:
            await asyncio.sleep(0.01)
        task.cancel()
        return await asyncio.wait_for(task, timeout=5)

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(scenario())
