"""PlugzInstanceStatusTrigger in an event loop against the sandbox (one event, secret-free
serialization, states flipped mid-wait), and both Plugz triggers loaded the way Airflow's
triggerer loads them: by classpath and stored kwargs, as written by an earlier release."""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_plugz.exceptions import PlugzConfigurationError
from airflow_provider_plugz.testing import Fault
from airflow_provider_plugz.triggers.plugz import PlugzInstanceStatusTrigger
from tests.conftest import (
    CLIENT_TOKEN,
    INSTANCE_ID,
    PHONE_ECHOES,
    assert_no_phone,
    assert_no_secrets,
    trigger_events,
)

if TYPE_CHECKING:
    from airflow_provider_plugz.testing import PlugzSandbox

CLASSPATH = "airflow_provider_plugz.triggers.plugz.PlugzInstanceStatusTrigger"


def test_trigger_serialize_exactly() -> None:
    trigger = PlugzInstanceStatusTrigger(
        plugz_conn_id="plugz_x",
        expected={"state": ["disconnected", "session-lost"]},
        poll_interval=2.5,
        deadline=1800000000.0,
    )
    assert trigger.serialize() == (
        CLASSPATH,
        {
            "plugz_conn_id": "plugz_x",
            "expected": {"state": ["disconnected", "session_lost"]},
            "poll_interval": 2.5,
            "deadline": 1800000000.0,
        },
    )
    _path, kwargs = trigger.serialize()
    assert json.loads(json.dumps(kwargs)) == kwargs  # JSON-safe
    assert PlugzInstanceStatusTrigger(**kwargs).serialize() == trigger.serialize()
    assert PlugzInstanceStatusTrigger("plugz_x").serialize()[1]["expected"] == {"state": ["connected"]}


@pytest.mark.parametrize(
    "expected",
    [
        pytest.param({}, id="empty"),
        pytest.param({"state": ["online"]}, id="unknown-state"),
        pytest.param({"phone": True}, id="unknown-field"),
        pytest.param({"state": ["connected"], "connected": True}, id="both"),
        pytest.param({"connected": "true"}, id="string-bool"),
        pytest.param(["connected"], id="not-a-mapping"),
    ],
)
def test_trigger_refuses_a_bad_condition(expected: Any) -> None:
    with pytest.raises(PlugzConfigurationError) as info:
        PlugzInstanceStatusTrigger("plugz_default", expected=expected)
    assert isinstance(info.value, TypeError)  # the triggerer then fails this trigger only


@pytest.mark.parametrize(
    ("start", "expected", "end", "observation"),
    [
        pytest.param(
            "disconnected",
            None,
            "connected",
            {"connected": True, "session": True, "smartphone_connected": True, "error": None},
            id="until-connected",
        ),
        pytest.param(
            "connected",
            {"state": ["disconnected", "session_lost"]},
            "session-lost",
            {
                "connected": False,
                "session": False,
                "smartphone_connected": True,
                "error": "You need to restore the session.",
            },
            id="until-down",
        ),
        pytest.param(
            "connected",
            {"connected": True, "smartphone_connected": False},
            "phone-offline",
            {
                "connected": True,
                "session": True,
                "smartphone_connected": False,
                "error": "You are not connected.",
            },
            id="until-phone-offline",
        ),
    ],
)
def test_trigger_fires_once_after_the_state_flips_mid_wait(
    sandbox: PlugzSandbox, start: str, expected: dict[str, Any] | None, end: str, observation: dict[str, Any]
) -> None:
    sandbox.set_state(INSTANCE_ID, start)  # type: ignore[arg-type]
    sandbox.inject(Fault.status(503))  # a transient error on the way is only logged

    async def scenario() -> list[Any]:
        trigger = PlugzInstanceStatusTrigger("plugz_default", expected=expected, poll_interval=0.01)
        task = asyncio.ensure_future(trigger_events(trigger))
        while sandbox.request_count < 3:
            await asyncio.sleep(0.01)
        assert not task.done()
        sandbox.set_state(INSTANCE_ID, end)  # type: ignore[arg-type]
        return await asyncio.wait_for(task, timeout=10)

    assert asyncio.run(scenario()) == [{"status": "success", "observation": observation}]


def test_trigger_stops_on_a_permanent_error(sandbox: PlugzSandbox) -> None:
    sandbox.set_state(INSTANCE_ID, "disconnected")
    sandbox.inject(Fault.status(403, body={"error": f"Client-Token {CLIENT_TOKEN} not allowed"}))
    (event,) = asyncio.run(trigger_events(PlugzInstanceStatusTrigger("plugz_default", poll_interval=0.01)))
    assert event["status"] == "error"
    assert event["error_class"] == "PlugzAuthenticationError"
    assert "instance status check" in event["message"]
    assert "Client-Token *** not allowed" in event["message"]
    assert_no_secrets(json.dumps(event))


def test_trigger_times_out_at_the_deadline(sandbox: PlugzSandbox) -> None:
    sandbox.set_state(INSTANCE_ID, "phone-offline")
    trigger = PlugzInstanceStatusTrigger("plugz_default", poll_interval=0.01, deadline=time.time() + 0.3)
    (event,) = asyncio.run(trigger_events(trigger))
    assert event == {"status": "timeout", "message": "the number did not reach state connected in time"}
    assert sandbox.request_count >= 2


def test_trigger_transient_errors_keep_polling(sandbox: PlugzSandbox) -> None:
    sandbox.inject(Fault.status(503), times=2)
    sandbox.inject(Fault.drop())
    events = asyncio.run(trigger_events(PlugzInstanceStatusTrigger("plugz_default", poll_interval=0.01)))
    assert [event["status"] for event in events] == ["success"]
    assert sandbox.request_count == 4


# --- loading a stored trigger, as the triggerer does ------------------------------------------


def load_stored(classpath: str, kwargs: dict[str, Any]) -> Any:
    """Store a trigger row the way Airflow does when a task defers, then build the trigger from it
    the way the triggerer does (import the classpath, call it with the decrypted kwargs)."""
    from airflow.models.trigger import Trigger

    try:  # Airflow 3
        from airflow._shared.module_loading import import_string
    except ImportError:  # Airflow 2
        from airflow.utils.module_loading import import_string  # type: ignore[import-not-found,no-redef]

    row = Trigger(classpath=classpath, kwargs=kwargs)
    return import_string(row.classpath)(**row.kwargs)


@pytest.mark.parametrize(
    ("classpath", "kwargs", "event"),
    [
        # Exactly what releases before the shared trigger machinery stored for a deferred PIN sensor.
        pytest.param(
            "airflow_provider_plugz.triggers.plugz.PlugzPinStatusTrigger",
            {"plugz_conn_id": "plugz_default", "expected": True, "poll_interval": 0.01, "deadline": None},
            {"status": "success", "has_code": True},
            id="pin-trigger-of-an-earlier-release",
        ),
        pytest.param(
            CLASSPATH,
            {
                "plugz_conn_id": "plugz_default",
                "expected": {"state": ["connected", "phone_offline"]},
                "poll_interval": 0.01,
                "deadline": None,
            },
            {
                "status": "success",
                "observation": {
                    "connected": True,
                    "session": True,
                    "smartphone_connected": True,
                    "error": None,
                },
            },
            id="instance-status-trigger",
        ),
    ],
)
def test_a_stored_trigger_loads_and_fires_its_event(
    sandbox: PlugzSandbox, classpath: str, kwargs: dict[str, Any], event: dict[str, Any]
) -> None:
    sandbox.set_has_code(INSTANCE_ID, True)
    trigger = load_stored(classpath, kwargs)
    assert trigger.serialize() == (classpath, kwargs)
    assert asyncio.run(trigger_events(trigger)) == [event]


@pytest.mark.parametrize(("echo", "shown"), PHONE_ECHOES)
def test_the_event_masks_a_phone_the_status_reason_echoes(
    sandbox: PlugzSandbox, echo: str, shown: str
) -> None:
    sandbox.inject(Fault.status(200, body={"connected": False, "smartphoneConnected": False, "error": echo}))
    trigger = PlugzInstanceStatusTrigger(
        "plugz_default", expected={"state": ["disconnected"]}, poll_interval=0.01
    )
    (event,) = asyncio.run(trigger_events(trigger))
    assert event == {
        "status": "success",
        "observation": {"connected": False, "session": None, "smartphone_connected": False, "error": shown},
    }
    assert_no_phone(json.dumps(event))
