"""Instance health: ``PlugzInstanceStatusOperator`` (its XCom per connection state, its errors,
its cheap import) and what ``PlugzHook.test_connection()`` (the UI's Test button) now reports
about the number's connection state, against the sandbox."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_plugz.exceptions import (
    PlugzAuthenticationError,
    PlugzMalformedResponseError,
    PlugzNotFoundError,
    PlugzServerError,
)
from airflow_provider_plugz.hooks.plugz import PlugzHook
from airflow_provider_plugz.operators.plugz import PlugzInstanceStatusOperator
from airflow_provider_plugz.sensors.plugz import PlugzInstanceStatusSensor
from airflow_provider_plugz.testing import Fault
from tests.conftest import (
    CLIENT_TOKEN,
    INSTANCE_ID,
    INSTANCE_TOKEN,
    PHONE_ECHOES,
    assert_no_phone,
    assert_no_secrets,
    task_context,
)

if TYPE_CHECKING:
    from airflow_provider_plugz.testing import PlugzSandbox

# The operator's XCom for each sandbox state: the documented contract, JSON-safe.
STATUS_XCOM: dict[str, dict[str, Any]] = {
    "connected": {"connected": True, "session": True, "smartphone_connected": True, "error": None},
    "disconnected": {
        "connected": False,
        "session": False,
        "smartphone_connected": False,
        "error": "You are not connected.",
    },
    "session-lost": {
        "connected": False,
        "session": False,
        "smartphone_connected": True,
        "error": "You need to restore the session.",
    },
    "phone-offline": {
        "connected": True,
        "session": True,
        "smartphone_connected": False,
        "error": "You are not connected.",
    },
}


@pytest.fixture
def task_log(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """The operator's task log as plain log records (Airflow 3 renders its own through structlog)."""
    logger = logging.getLogger("tests.instance_status.task_log")
    monkeypatch.setattr(PlugzInstanceStatusOperator, "log", property(lambda self: logger))
    caplog.set_level(logging.INFO, logger=logger.name)
    return caplog


# --- the operator ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "task",
    [
        pytest.param(
            lambda: PlugzInstanceStatusOperator(task_id="t", plugz_conn_id="{{ params.c }}"), id="operator"
        ),
        pytest.param(
            lambda: PlugzInstanceStatusSensor(task_id="t", plugz_conn_id="{{ params.c }}"), id="sensor"
        ),
        pytest.param(
            lambda: PlugzInstanceStatusSensor(
                task_id="t", plugz_conn_id="{{ params.c }}", state="disconnected"
            ),
            id="sensor-with-state",
        ),
    ],
)
def test_init_does_no_io_and_conn_id_is_templated(task: Any) -> None:
    operator = task()  # no such connection anywhere: it must not be looked up
    assert "plugz_conn_id" in operator.template_fields
    assert "hook" not in operator.__dict__


@pytest.mark.parametrize(
    ("state", "level"),
    [
        pytest.param("connected", logging.INFO, id="connected"),
        pytest.param("disconnected", logging.WARNING, id="disconnected"),
        pytest.param("session-lost", logging.WARNING, id="session-lost"),
        pytest.param("phone-offline", logging.WARNING, id="phone-offline"),
    ],
)
def test_operator_returns_the_status_as_json_safe_xcom(
    sandbox: PlugzSandbox, task_log: pytest.LogCaptureFixture, state: str, level: int
) -> None:
    sandbox.set_state(INSTANCE_ID, state)  # type: ignore[arg-type]
    result = PlugzInstanceStatusOperator(task_id="health").execute(task_context())
    assert result == STATUS_XCOM[state]
    assert json.loads(json.dumps(result)) == result
    (record,) = [r for r in task_log.records if "Plugz connection" in r.getMessage()]
    assert record.levelno == level  # a number that is not connected is state, not a failure
    if state != "connected":
        assert str(STATUS_XCOM[state]["error"]) in record.getMessage()
    assert sandbox.request_count == 1


@pytest.mark.parametrize(
    ("fault", "error_class"),
    [
        pytest.param(
            Fault.status(403, body={"error": f"Client-Token {CLIENT_TOKEN} not allowed"}),
            PlugzAuthenticationError,
            id="403",
        ),
        pytest.param(Fault.status(404, body={"error": "Instance not found"}), PlugzNotFoundError, id="404"),
        pytest.param(
            Fault.status(200, body={"error": "null not allowed"}), PlugzAuthenticationError, id="200-error"
        ),
        pytest.param(
            Fault.status(200, body={"session": True}), PlugzMalformedResponseError, id="no-connected"
        ),
        pytest.param(Fault.malformed(), PlugzMalformedResponseError, id="malformed"),
    ],
)
def test_operator_fails_with_the_plugz_error(
    sandbox: PlugzSandbox, fault: Fault, error_class: type[Exception]
) -> None:
    sandbox.inject(fault)
    with pytest.raises(error_class) as info:
        PlugzInstanceStatusOperator(task_id="health").execute(task_context())
    assert "instance status check" in str(info.value)
    assert_no_secrets(str(info.value))


def test_operator_conn_id_is_rendered_before_the_hook_is_built(
    sandbox: PlugzSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_PLUGZ_OTHER", sandbox.connection_json(INSTANCE_ID))
    operator = PlugzInstanceStatusOperator(task_id="health", plugz_conn_id="{{ params.number }}")
    operator.plugz_conn_id = "plugz_other"  # what template rendering does before execute
    assert operator.execute(task_context()) == STATUS_XCOM["connected"]
    assert operator.hook.plugz_conn_id == "plugz_other"


# --- PlugzHook.test_connection(): the UI's Test button ------------------------------------------

OK_STATUS = {"connected": True, "session": True, "smartphoneConnected": True}


@pytest.mark.parametrize(
    ("state", "has_code", "facts"),
    [
        pytest.param(
            "connected",
            True,
            "the number is connected (phone online); the WhatsApp account has a PIN set.",
            id="connected-pin",
        ),
        pytest.param(
            "connected",
            False,
            "the number is connected (phone online); the WhatsApp account has NO PIN set.",
            id="connected-no-pin",
        ),
        pytest.param(
            "disconnected",
            True,
            "the number is NOT connected (You are not connected.); the WhatsApp account has a PIN set.",
            id="disconnected",
        ),
        pytest.param(
            "session-lost",
            False,
            "the number is NOT connected: its WhatsApp session was lost, restore it (You need to restore "
            "the session.); the WhatsApp account has NO PIN set.",
            id="session-lost",
        ),
        pytest.param(
            "phone-offline",
            True,
            "the number is connected but its phone is OFFLINE (You are not connected.); the WhatsApp "
            "account has a PIN set.",
            id="phone-offline",
        ),
    ],
)
def test_test_connection_reports_connection_state_and_pin(
    sandbox: PlugzSandbox, state: str, has_code: bool, facts: str
) -> None:
    sandbox.set_state(INSTANCE_ID, state)  # type: ignore[arg-type]
    sandbox.set_has_code(INSTANCE_ID, has_code)
    ok, message = PlugzHook().test_connection()
    # A number that is not connected is reported, not a failure: the credentials work.
    assert (ok, message) == (True, f"Connected to Plugz at {sandbox.base_url}; {facts}")
    # One call per fact, in this order.
    assert [r.path.rsplit("/", 1)[-1] for r in sandbox.requests] == ["status", "two-fa-code"]


def test_test_connection_of_a_web_instance_has_no_pin_state(sandbox: PlugzSandbox) -> None:
    sandbox.remove_instance(INSTANCE_ID)
    sandbox.add_instance(INSTANCE_ID, INSTANCE_TOKEN, kind="web")
    ok, message = PlugzHook().test_connection()
    assert ok is True
    assert message == (
        f"Connected to Plugz at {sandbox.base_url}; the number is connected (phone online); it is a web "
        "(QR-code) instance, so it has no PIN status (mobile-only)."
    )


@pytest.mark.parametrize(
    ("faults", "fragments", "requests"),
    [
        # The status call fails for good: the PIN call would fail the same way, so it is not made.
        pytest.param(
            [Fault.status(403, body={"error": f"Client-Token {CLIENT_TOKEN} not allowed"})],
            ["PlugzAuthenticationError: Plugz instance status check failed: HTTP 403", "Client-Token ***"],
            1,
            id="status-403",
        ),
        pytest.param(
            [Fault.status(404, body={"error": "Instance not found"})],
            ["PlugzNotFoundError: Plugz instance status check failed", "Instance ID"],
            1,
            id="status-404",
        ),
        pytest.param(
            [Fault.status(503)] * 4,
            ["PlugzServerError: Plugz instance status check failed: HTTP 503", "try again later"],
            4,
            id="status-503-after-retries",
        ),
        # An unusable status answer: the PIN is still read, and the message says which check failed.
        pytest.param(
            [Fault.malformed()],
            [
                "PlugzMalformedResponseError: Plugz instance status check: HTTP 200 answer is malformed",
                "The PIN status check worked: Connected to Plugz at {base_url}; the WhatsApp account has NO "
                "PIN set.",
            ],
            2,
            id="status-malformed-pin-ok",
        ),
        pytest.param(
            [Fault.malformed(), Fault.status(403, body={"error": "Client-Token x not allowed"})],
            ["PlugzMalformedResponseError: Plugz instance status check"],
            2,
            id="status-malformed-pin-403",
        ),
        # The status call works, the PIN call does not: both are said.
        pytest.param(
            [Fault.status(200, body=OK_STATUS), Fault.status(400, body={"error": "You are not connected."})],
            [
                "PlugzBadRequestError: Plugz PIN status check failed: HTTP 400: You are not connected.",
                "The instance status check worked: the number is connected (phone online).",
            ],
            2,
            id="status-ok-pin-400",
        ),
    ],
)
def test_test_connection_failures_say_which_check_failed(
    sandbox: PlugzSandbox, faults: list[Fault], fragments: list[str], requests: int
) -> None:
    for fault in faults:
        sandbox.inject(fault)
    ok, message = PlugzHook().test_connection()
    assert ok is False
    for fragment in fragments:
        assert fragment.format(base_url=sandbox.base_url) in message
    # The UI tests a copy of the connection under a random id: the message does not name it.
    assert "plugz_default" not in message
    assert_no_secrets(message)
    assert sandbox.request_count == requests


def test_test_connection_status_error_is_the_one_raised_by_the_hook(sandbox: PlugzSandbox) -> None:
    """The Test button shows the same error a task would raise, only without the connection id."""
    sandbox.inject(Fault.status(503), times=8)
    with pytest.raises(PlugzServerError) as info:
        PlugzHook().get_instance_status()
    ok, message = PlugzHook().test_connection()
    assert ok is False
    assert message == "PlugzServerError: " + str(info.value).replace(" for connection 'plugz_default'", "")


# --- a phone number the status answer echoes: masked wherever the reason lands ---------------


def echoed_status(echo: str) -> Fault:
    """A disconnected number's ``/status`` answer whose reason quotes the number."""
    return Fault.status(200, body={"connected": False, "smartphoneConnected": False, "error": echo})


@pytest.mark.parametrize(("echo", "shown"), PHONE_ECHOES)
def test_operator_masks_a_phone_the_status_reason_echoes(
    sandbox: PlugzSandbox, task_log: pytest.LogCaptureFixture, echo: str, shown: str
) -> None:
    sandbox.inject(echoed_status(echo))
    result = PlugzInstanceStatusOperator(task_id="health").execute(task_context())
    assert result == {"connected": False, "session": None, "smartphone_connected": False, "error": shown}
    (record,) = [r for r in task_log.records if "Plugz connection" in r.getMessage()]
    assert record.levelno == logging.WARNING
    assert record.getMessage().endswith(f"({shown})")
    assert_no_phone(record.getMessage(), json.dumps(result))


@pytest.mark.parametrize(("echo", "shown"), PHONE_ECHOES)
def test_sensor_masks_a_phone_the_status_reason_echoes(sandbox: PlugzSandbox, echo: str, shown: str) -> None:
    sandbox.inject(echoed_status(echo))
    done = PlugzInstanceStatusSensor(task_id="wait", state="disconnected").poke(task_context())
    assert done.is_done is True
    assert done.xcom_value["error"] == shown
    assert_no_phone(json.dumps(done.xcom_value))


@pytest.mark.parametrize(("echo", "shown"), PHONE_ECHOES)
def test_test_connection_masks_a_phone_the_status_reason_echoes(
    sandbox: PlugzSandbox, echo: str, shown: str
) -> None:
    sandbox.inject(echoed_status(echo))
    ok, message = PlugzHook().test_connection()
    assert ok is True
    assert f"the number is NOT connected ({shown});" in message
    assert_no_phone(message)
