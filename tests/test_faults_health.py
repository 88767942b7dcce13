"""The fault matrix for the status, device, queue and send-text endpoints over real HTTP (the sandbox).

Reuses the rows (:class:`Case`), setup and assertions of tests/support/faults.py. ``has_code``
is unused here: a succeeding row has ``has_code=True`` and its result is checked per runner.

- Each endpoint gets its own rows plus ``wire_rows``, the faults every endpoint shares (odd 200
  bodies, encodings and bombs, a dripping server), and ``status_rows``: a few rows of the status
  table (tests/support/statuses.py; all of it is asserted per endpoint in tests/test_protocol.py,
  and over HTTP for the PIN read in tests/test_faults.py) through every runner.
- Status rows run through every runner: hook, async hook, operator, and the sensor's poke,
  reschedule and deferrable modes. A deferral is then carried through the trigger to its one
  event and ``execute_complete``, and permanent rows also appear while the trigger waits.
- :func:`test_connection_state` walks every connection state as a sensor's target and as
  "not yet" for a sensor waiting for ``connected``.
- Queue rows run with a message queued for a disconnected number: its recipient and text are
  personal data no exception, log line (stderr or logging), repr or XCom may hold.
- Send-text rows prove the send-once rule: after a request may have reached Plugz it is never
  repeated, whatever the fault; phone and text are personal data and no output may hold them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_plugz._redaction import WITHHELD
from airflow_provider_plugz.endpoints import QUEUE, DeviceInfo, QueueInfo
from airflow_provider_plugz.exceptions import (
    PlugzBadRequestError,
    PlugzConnectError,
    PlugzConnectionError,
    PlugzMalformedResponseError,
    PlugzOutcomeUnknownError,
    PlugzQueueFullError,
    PlugzRateLimitedError,
    PlugzReadTimeoutError,
)
from airflow_provider_plugz.hooks.plugz import PlugzHook
from airflow_provider_plugz.operators.messages import PlugzSendMessageOperator
from airflow_provider_plugz.operators.plugz import PlugzInstanceStatusOperator, PlugzQueueOperator
from airflow_provider_plugz.retry import may_have_been_applied
from airflow_provider_plugz.sensors.plugz import PlugzInstanceStatusSensor
from airflow_provider_plugz.testing import Fault
from tests.conftest import (
    INSTANCE_ID,
    INSTANCE_TOKEN,
    task_context,
    trigger_events,
    zapi_device_answer,
    zapi_device_examples,
)
from tests.support.faults import (
    MALFORMED,
    OK,
    WAITS_ON_TRANSIENT,
    Case,
    Observed,
    assert_clean,
    assert_error,
    body,
    break_things,
    echo_rows,
    fault,
    heal,
    observe,
    run_trigger,
    sandbox,
    server,
    status_rows,
    wire_rows,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_provider_plugz.testing import PlugzSandbox

__all__ = ["sandbox", "server"]  # the sandbox fixtures of tests/support/faults.py

PHONE = "5511987654321"
TEXT = "Disk 93% full on db-7; page Marina"
DEVICE_PHONE = "5521912345678"  # personal data, like PHONE: no output may hold it
STATUS_JSON = json.dumps({"connected": True, "session": True, "smartphoneConnected": True, "error": None})
DEVICE_JSON = json.dumps({"phone": DEVICE_PHONE, "waVersion": "2.24.1", "model": "Pixel 8"})
SEND_JSON = json.dumps({"zaapId": "Z1", "messageId": "M1", "id": "M1"})


STATUS_CASES = [
    pytest.param(Case(has_code=OK, requests=1), id="status-connected"),
    pytest.param(Case(faults=fault(Fault.drop()), has_code=OK, requests=2), id="status-drop-then-200"),
    pytest.param(Case(faults=fault(Fault.status(503)), has_code=OK, requests=2), id="status-503-then-200"),
    pytest.param(
        Case(
            faults=body(200, {"connected": "yes", "smartphoneConnected": True}),
            error=PlugzMalformedResponseError,
            match="'connected' is not a boolean",
            requests=1,
        ),
        id="status-200-connected-string",
    ),
    *echo_rows("status", "5511987650001"),
    *status_rows("status", "503", "404-instance-not-found", "200-null-not-allowed", "301-echoes-the-path"),
    *wire_rows("status", STATUS_JSON),
]

DEVICE = {"instance": {"phone": DEVICE_PHONE}, "hidden": (DEVICE_PHONE,)}
# Z-API's current /device page, with our number: device_model is the session software.
ZAPI_DEVICE = zapi_device_answer(DEVICE_PHONE)
DEVICE_CASES = [
    pytest.param(Case(has_code=OK, requests=1, **DEVICE), id="device-ok"),
    pytest.param(
        Case(faults=fault(Fault.drop()), has_code=OK, requests=2, **DEVICE), id="device-drop-then-200"
    ),
    pytest.param(
        Case(
            faults=body(200, {"phone": 5521912345678}),
            error=PlugzMalformedResponseError,
            match="'phone'",
            requests=1,
            **DEVICE,
        ),
        id="device-200-phone-a-number",
    ),
    pytest.param(
        Case(
            faults=body(200, {**ZAPI_DEVICE, "sessionId": "175"}),
            error=PlugzMalformedResponseError,
            match="'sessionId' is not a whole number",
            requests=1,
            **DEVICE,
        ),
        id="device-200-z-api-session-id-a-text",
    ),
    pytest.param(
        Case(
            faults=body(200, {**ZAPI_DEVICE, "isBusiness": "no"}),
            error=PlugzMalformedResponseError,
            match="'isBusiness' is not a boolean",
            requests=1,
            **DEVICE,
        ),
        id="device-200-z-api-is-business-a-text",
    ),
    *echo_rows("device", DEVICE_PHONE, **DEVICE),
    *status_rows("device", "503", "404-instance-not-found", "301-echoes-the-path", **DEVICE),
    *wire_rows("device", DEVICE_JSON, **DEVICE),
]

# A message waiting in the queue of a disconnected number: who it is for and what it says are
# personal data, in no output (the sandbox's own answer holds them too: see test_queue_fault).
QUEUE_PHONE = "5531976543210"
QUEUE_TEXT = "Backup of db-7 failed twice; call Joana"
CREATED = 1765152000000  # Plugz's ``Created``: epoch milliseconds
OLDEST = "2025-12-08T00:00:00+00:00"


def queued(created: Any = CREATED, **fields: Any) -> dict[str, Any]:
    """One queued message in Plugz's layout (``created=None`` leaves ``Created`` out)."""
    message = {
        "_id": "z1",
        "DelayMessage": 1,
        "Message": QUEUE_TEXT,
        "IsTrial": False,
        "InstanceId": INSTANCE_ID,
        "Phone": QUEUE_PHONE,
        "ZaapId": "Z1",
        "DelayTyping": 0,
        "MessageId": "M1",
        **fields,
    }
    if created is not None:
        message["Created"] = created
    return message


QUEUE_JSON = json.dumps({"messages": [queued()]})
QUEUED: dict[str, Any] = {"instance": {"state": "disconnected"}, "hidden": (QUEUE_PHONE, QUEUE_TEXT)}
NOT_A_LIST = f"{MALFORMED}: it is neither a list of messages nor an object with a 'messages' list"
NOT_AN_ITEM = f"{MALFORMED}: an item of its 'messages' is not an object"


def _bad_queue(answer: Any, match: str) -> Case:
    return Case(
        faults=body(200, answer), error=PlugzMalformedResponseError, match=match, requests=1, **QUEUED
    )


QUEUE_CASES = [
    pytest.param(Case(has_code=OK, requests=1, **QUEUED), id="queue-ok"),
    pytest.param(
        Case(faults=fault(Fault.drop()), has_code=OK, requests=2, **QUEUED), id="queue-drop-then-200"
    ),
    pytest.param(
        Case(faults=fault(Fault.status(503)), has_code=OK, requests=2, **QUEUED), id="queue-503-then-200"
    ),
    pytest.param(_bad_queue({}, NOT_A_LIST), id="queue-200-empty-object"),
    pytest.param(_bad_queue({"messages": 3}, NOT_A_LIST), id="queue-200-messages-a-number"),
    pytest.param(_bad_queue({"messages": None}, NOT_A_LIST), id="queue-200-messages-null"),
    pytest.param(_bad_queue({"messages": queued()}, NOT_A_LIST), id="queue-200-messages-one-object"),
    pytest.param(_bad_queue({"message": [queued()]}, NOT_A_LIST), id="queue-200-message-key-singular"),
    pytest.param(_bad_queue([1, 2], NOT_AN_ITEM), id="queue-200-array-of-numbers"),
    pytest.param(_bad_queue([[queued()]], NOT_AN_ITEM), id="queue-200-array-of-arrays"),
    pytest.param(
        _bad_queue([queued(), f"{QUEUE_PHONE}: {QUEUE_TEXT}"], NOT_AN_ITEM), id="queue-200-item-a-text"
    ),
    *echo_rows("queue", QUEUE_PHONE, **QUEUED),
    *status_rows(
        "queue",
        "503",
        "429",
        "404-instance-not-found",
        "405-not-found-body",
        "301-echoes-the-path",
        "200-null-not-allowed",
        **QUEUED,
    ),
    *wire_rows("queue", QUEUE_JSON, arrays=True, max_body=QUEUE.max_body, **QUEUED),
]

SEND_CASES = [
    pytest.param(Case(has_code=OK, requests=1), id="send-ok"),
    pytest.param(
        Case(faults=fault(Fault.drop(), 4), error=PlugzConnectionError, match="message sending", requests=1),
        id="send-dropped-after-body-once",
    ),
    pytest.param(
        Case(
            extra={"read_timeout": 0.2},
            faults=fault(Fault.slow(0.5), 4),
            error=PlugzReadTimeoutError,
            match="message sending",
            requests=1,
        ),
        id="send-read-timeout-once",
    ),
    pytest.param(
        Case(
            faults=fault(Fault.status(429, headers={"Retry-After": "1"}), 4),
            error=PlugzRateLimitedError,
            match="HTTP 429",
            requests=1,
        ),
        id="send-429-once",
    ),
    pytest.param(
        Case(
            conn={"host": "http://127.0.0.1:1"},
            error=PlugzConnectError,
            match="could not connect",
            attempts=4,
        ),
        id="send-refused-connect-retried",
    ),
    pytest.param(
        Case(
            faults=body(400, {"error": f"phone {PHONE} with text {TEXT} refused"}),
            error=PlugzBadRequestError,
            match=f"HTTP 400: {WITHHELD}.",
            requests=1,
        ),
        id="send-400-echo-withheld",
    ),
    pytest.param(
        Case(
            faults=body(400, {"error": "The message queue is full"}),
            error=PlugzQueueFullError,
            match="message queue is full",
            requests=1,
        ),
        id="send-400-queue-full",
    ),
    *status_rows("send", "503", "301-echoes-the-path", sent_once=True),
    *wire_rows("send", SEND_JSON, sent_once=True),
]


def _hook_call(name: str, *args: Any) -> Observed:
    hook = PlugzHook()
    try:
        return observe(lambda: getattr(hook, name)(*args))
    finally:
        hook.close()


def _async_hook_call(name: str, *args: Any) -> Observed:
    async def run() -> Any:
        hook = PlugzHook()
        try:
            return await getattr(hook, name)(*args)
        finally:
            await hook.aclose()

    return observe(lambda: asyncio.run(run()))


def _task_call(task: Any, call: Callable[[], Any]) -> Observed:
    try:
        return observe(call)
    finally:
        task.hook.close()


def _operate(operator: Any) -> Observed:
    return _task_call(operator, lambda: operator.execute(task_context()))


def _sensor(**kwargs: Any) -> PlugzInstanceStatusSensor:
    return PlugzInstanceStatusSensor(task_id="wait", poke_interval=0.01, timeout=30, **kwargs)


def _poke() -> Observed:
    sensor = _sensor(mode="poke")
    kind, value = _task_call(sensor, lambda: sensor.poke(task_context()))
    if kind == "returns":
        return ("returns" if value.is_done else "keeps poking"), value.xcom_value
    return kind, value


def _execute(**kwargs: Any) -> Callable[[], Observed]:
    def run() -> Observed:
        sensor = _sensor(**kwargs)
        return _task_call(sensor, lambda: sensor.execute(task_context()))

    return run


STATUS = {"connected": True, "session": True, "smartphone_connected": True, "error": None}
STATUS_RUNNERS: dict[str, Callable[[], Observed]] = {
    "hook": lambda: _hook_call("get_instance_status"),
    "async-hook": lambda: _async_hook_call("aget_instance_status"),
    "operator": lambda: _operate(PlugzInstanceStatusOperator(task_id="status")),
    "poke": _poke,
    "reschedule": _execute(mode="reschedule"),
    "deferrable": _execute(deferrable=True),
}
SEND_RUNNERS: dict[str, Callable[[], Observed]] = {
    "hook": lambda: _hook_call("send_text", PHONE, TEXT),
    "async-hook": lambda: _async_hook_call("asend_text", PHONE, TEXT),
    "operator": lambda: _operate(PlugzSendMessageOperator(task_id="send", phone=PHONE, message=TEXT)),
}


DEVICE_RUNNERS: dict[str, Callable[[], Observed]] = {
    "hook": lambda: _hook_call("get_device"),
    "async-hook": lambda: _async_hook_call("aget_device"),
}
QUEUE_RUNNERS: dict[str, Callable[[], Observed]] = {
    "hook": lambda: _hook_call("get_queue"),
    "async-hook": lambda: _async_hook_call("aget_queue"),
    "operator": lambda: _operate(PlugzQueueOperator(task_id="queue")),
}


def _check(
    case: Case,
    runner: str,
    observed: Observed,
    sb: PlugzSandbox,
    retry_sleeps: list[float],
    *,
    before: int = 0,
) -> None:
    """The row's outcome; ``before``: the requests the sandbox served before the runner ran."""
    kind, value = observed
    if case.error is None:
        assert kind == "returns", f"{runner}: {kind} {value!r}"
    elif case.transient and runner in WAITS_ON_TRANSIENT:
        assert kind == WAITS_ON_TRANSIENT[runner], f"{runner}: {kind} {value!r}"
    else:
        assert kind == "raises", f"{runner}: {kind} {value!r}"
        assert_error(case, value)
    assert sb.request_count - before == case.requests
    assert len(retry_sleeps) == max(case.tries - 1, 0)


def _settle(sb: PlugzSandbox, timeout: float = 5.0) -> None:
    """Wait (bounded) until the sandbox has served every request it was sent."""
    import time

    give_up = time.monotonic() + timeout
    while sb.requests_in_progress and time.monotonic() < give_up:
        time.sleep(0.01)
    assert not sb.requests_in_progress, "the sandbox is still serving a request"


def _as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else dataclasses.asdict(value)


def _complete(case: Case, sensor: PlugzInstanceStatusSensor, event: dict[str, Any]) -> Any:
    assert_clean(case, json.dumps(event))
    return sensor.execute_complete(task_context(), event)


def _transient_in_triggerer(
    case: Case, sb: PlugzSandbox, monkeypatch: pytest.MonkeyPatch, deferred: Any
) -> None:
    """The worker's check failed transiently and deferred: the trigger meets the same faults,
    keeps polling, and fires one success event once they are used up."""
    _path, kwargs = deferred.trigger.serialize()
    assert_clean(case, json.dumps(kwargs))
    break_things(monkeypatch, sb, case)
    before = sb.request_count
    event = run_trigger(deferred.trigger)
    assert sb.request_count - before > case.requests  # it checked again after the faults
    assert event["status"] == "success", event
    assert _complete(case, _sensor(deferrable=True), event) == STATUS


def _permanent_in_triggerer(case: Case, sb: PlugzSandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same permanent fault, appearing while the sensor waits in the triggerer (the number
    is disconnected), ends the wait with an error event ``execute_complete`` raises as the same class."""
    assert case.error is not None
    heal(monkeypatch, sb, has_code=False)
    sb.set_state(INSTANCE_ID, "disconnected")
    sensor = _sensor(deferrable=True)
    kind, deferred = _task_call(sensor, lambda: sensor.execute(task_context()))
    assert kind == "defers"
    break_things(monkeypatch, sb, case)
    before = sb.request_count
    event = run_trigger(deferred.trigger)
    assert sb.request_count - before == case.requests
    assert (event["status"], event["error_class"]) == ("error", case.error.__name__), event
    assert case.match in event["message"]
    with pytest.raises(case.error) as info:
        _complete(case, sensor, event)
    assert str(info.value) == event["message"]


@pytest.mark.parametrize("runner", list(STATUS_RUNNERS))
@pytest.mark.parametrize("case", STATUS_CASES)
def test_status_fault(
    case: Case,
    runner: str,
    sandbox: PlugzSandbox,
    monkeypatch: pytest.MonkeyPatch,
    retry_sleeps: list[float],
    capfd: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
) -> None:
    from airflow_provider_plugz._compat import AIRFLOW_V3

    if runner == "reschedule" and not AIRFLOW_V3:
        request.getfixturevalue("airflow_db")
    break_things(monkeypatch, sandbox, case)
    kind, value = STATUS_RUNNERS[runner]()
    _check(case, runner, (kind, value), sandbox, retry_sleeps)
    if kind == "returns":
        result = _as_dict(value)
        assert {k: result[k] for k in STATUS} == STATUS
    elif runner == "deferrable" and kind == "defers":
        _transient_in_triggerer(case, sandbox, monkeypatch, value)
    elif runner == "deferrable":
        _permanent_in_triggerer(case, sandbox, monkeypatch)
    assert_clean(case, *capfd.readouterr())


@pytest.mark.parametrize("runner", list(DEVICE_RUNNERS))
@pytest.mark.parametrize("case", DEVICE_CASES)
def test_device_fault(
    case: Case,
    runner: str,
    sandbox: PlugzSandbox,
    monkeypatch: pytest.MonkeyPatch,
    retry_sleeps: list[float],
    capfd: pytest.CaptureFixture[str],
) -> None:
    break_things(monkeypatch, sandbox, case)
    kind, value = DEVICE_RUNNERS[runner]()
    _check(case, runner, (kind, value), sandbox, retry_sleeps)
    if kind == "returns":
        assert value.phone == DEVICE_PHONE
        assert DEVICE_PHONE not in repr(value)
    assert_clean(case, *capfd.readouterr())


DEVICE_LAYOUTS = [
    *zapi_device_examples(DEVICE_PHONE),
    pytest.param(
        {
            "phone": "",
            "imgUrl": None,
            "device": {"device_model": "SM-N975F", "platform": "smba", "mcc": "724"},
        },
        DeviceInfo(phone=None, platform="smba", model="SM-N975F", mcc="724"),
        id="plugz-not-paired",
    ),
]


@pytest.mark.parametrize("runner", list(DEVICE_RUNNERS))
@pytest.mark.parametrize(("answer", "expected"), DEVICE_LAYOUTS)
def test_device_layouts_over_http(
    answer: dict[str, Any],
    expected: DeviceInfo,
    runner: str,
    sandbox: PlugzSandbox,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """Both references' layouts, over real HTTP: read alike by both transports, no phone model
    made up from Z-API's session software, the profile's name and status text in no repr."""
    case = Case(faults=body(200, answer), has_code=OK, requests=1, **DEVICE)
    break_things(monkeypatch, sandbox, case)
    kind, value = DEVICE_RUNNERS[runner]()
    assert (kind, value) == ("returns", expected)
    assert value.model != "Z-API"
    assert_clean(case, repr(value), *capfd.readouterr())
    for private in ("Nome do Perfil", "Recado", "foto-perfil"):
        assert private not in repr(value)


def _queue_a_message(sb: PlugzSandbox) -> None:
    """Send QUEUE_TEXT to QUEUE_PHONE from a disconnected number: the sandbox queues it, so its own
    queue answer holds them."""
    sb.add_instance(INSTANCE_ID, INSTANCE_TOKEN, state="disconnected")
    hook = PlugzHook()
    try:
        hook.send_text(QUEUE_PHONE, QUEUE_TEXT)
    finally:
        hook.close()
    assert [m.delivered for m in sb.messages] == [False]


def _queue_outputs(
    value: Any, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> list[str]:
    """Every text a queue read may show: the result's repr (and XCom), stdout, stderr, log records."""
    xcom = json.dumps(value) if isinstance(value, dict) else ""
    return [repr(value), xcom, *capfd.readouterr(), caplog.text]


@pytest.mark.parametrize("runner", list(QUEUE_RUNNERS))
@pytest.mark.parametrize("case", QUEUE_CASES)
def test_queue_fault(
    case: Case,
    runner: str,
    sandbox: PlugzSandbox,
    monkeypatch: pytest.MonkeyPatch,
    retry_sleeps: list[float],
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    _queue_a_message(sandbox)
    before = sandbox.request_count
    break_things(monkeypatch, sandbox, case)
    kind, value = QUEUE_RUNNERS[runner]()
    _check(case, runner, (kind, value), sandbox, retry_sleeps, before=before)
    if kind == "returns":  # the sandbox's queue, or QUEUE_JSON: one message either way
        count = value["count"] if isinstance(value, dict) else value.count
        assert count == 1, value
    assert_clean(case, *_queue_outputs(value, capfd, caplog))


QUEUE_LAYOUTS = [
    pytest.param(
        [queued(CREATED + 5000), queued(CREATED)], QueueInfo(2, OLDEST), id="plugz-array-oldest-last"
    ),
    pytest.param([], QueueInfo(0), id="plugz-array-empty"),
    pytest.param({"messages": [queued()]}, QueueInfo(1, OLDEST), id="object-with-messages"),
    pytest.param({"messages": []}, QueueInfo(0), id="object-with-no-messages"),
    pytest.param(
        {"messages": [queued()], "pagingState": "p2", "hasMore": True},
        QueueInfo(1, OLDEST, complete=False),
        id="z-api-page-has-more",
    ),
    pytest.param(
        {"messages": [queued()], "pagingState": None, "hasMore": False},
        QueueInfo(1, OLDEST),
        id="z-api-last-page",
    ),
    pytest.param([queued(None), queued(None)], QueueInfo(2), id="no-created"),
    pytest.param([queued(None), queued(CREATED)], QueueInfo(2, OLDEST), id="created-on-some"),
    pytest.param(
        [queued("2025-12-08T00:00:00Z"), queued(True), queued(None, Created=None)],
        QueueInfo(3),
        id="created-not-epoch-ms",
    ),
]


@pytest.mark.parametrize("runner", ["hook", "async-hook"])
@pytest.mark.parametrize(("answer", "expected"), QUEUE_LAYOUTS)
def test_queue_layouts_over_http(
    answer: Any,
    expected: QueueInfo,
    runner: str,
    sandbox: PlugzSandbox,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Plugz's bare array and the object forms, over real HTTP: counted alike by both transports,
    the oldest ``Created`` found wherever it is, recipients and texts kept nowhere."""
    caplog.set_level(logging.DEBUG)
    case = Case(faults=body(200, answer), has_code=OK, requests=1, **QUEUED)
    break_things(monkeypatch, sandbox, case)
    kind, value = QUEUE_RUNNERS[runner]()
    assert (kind, value) == ("returns", expected)
    assert_clean(case, *_queue_outputs(value, capfd, caplog))


@pytest.mark.parametrize("runner", ["hook", "async-hook"])
def test_a_full_queue_of_long_texts_is_counted(
    runner: str, sandbox: PlugzSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Plugz queues up to 1,000 texts of up to 4,096 characters while a phone is away: 1,000 alerts
    of 1,000 characters (~1.3 MB in Plugz's layout) must still be counted."""
    alert = QUEUE_TEXT + "." * (1000 - len(QUEUE_TEXT))
    case = Case(faults=body(200, [queued(Message=alert)] * 1000), has_code=OK, requests=1, **QUEUED)
    break_things(monkeypatch, sandbox, case)
    assert QUEUE_RUNNERS[runner]() == ("returns", QueueInfo(1000, OLDEST))


# Every connection state, as the sandbox names it, and as a sensor's ``state``.
STATES = [
    pytest.param("connected", "connected", id="connected"),
    pytest.param("phone-offline", "phone_offline", id="phone-offline"),
    pytest.param("session-lost", "session_lost", id="session-lost"),
    pytest.param("disconnected", "disconnected", id="disconnected"),
]
SENSOR_MODES = {
    "poke": {"mode": "poke"},
    "reschedule": {"mode": "reschedule"},
    "deferrable": {"deferrable": True},
}


def _sensor_run(mode: str, **kwargs: Any) -> tuple[Observed, PlugzInstanceStatusSensor]:
    sensor = _sensor(**SENSOR_MODES[mode], **kwargs)
    if mode == "poke":
        kind, value = _task_call(sensor, lambda: sensor.poke(task_context()))
        if kind == "returns":
            return (("returns" if value.is_done else "keeps poking"), value.xcom_value), sensor
        return (kind, value), sensor
    return _task_call(sensor, lambda: sensor.execute(task_context())), sensor


@pytest.mark.parametrize("mode", list(SENSOR_MODES))
@pytest.mark.parametrize(("sandbox_state", "state"), STATES)
def test_connection_state(
    sandbox_state: str,
    state: str,
    mode: str,
    sandbox: PlugzSandbox,
    request: pytest.FixtureRequest,
) -> None:
    """Each state is read alike by the hook, the operator and the sensors: a sensor whose target
    it is finishes at once; one waiting for ``connected`` waits (in the triggerer too) until the
    number connects."""
    from airflow_provider_plugz._compat import AIRFLOW_V3

    if mode == "reschedule" and not AIRFLOW_V3:
        request.getfixturevalue("airflow_db")
    sandbox.set_state(INSTANCE_ID, sandbox_state)
    hook = PlugzHook()
    try:
        assert hook.get_instance_status().state == state
    finally:
        hook.close()
    seen = _operate(PlugzInstanceStatusOperator(task_id="status"))
    assert seen[0] == "returns"

    (kind, value), _ = _sensor_run(mode, state=state.replace("_", "-"))  # "-" stands for "_"
    assert kind == "returns", f"{mode}: {kind} {value!r}"
    if mode != "reschedule":  # reschedule mode's execute() returns nothing; its XCom is pushed
        assert _as_dict(value) == seen[1]

    (kind, value), sensor = _sensor_run(mode)  # waits for "connected"
    if state == "connected":
        assert kind == "returns", f"{mode}: {kind} {value!r}"
        return
    assert kind == WAITS_ON_TRANSIENT[mode], f"{mode}: {kind} {value!r}"
    if mode == "deferrable":
        before = sandbox.request_count

        async def connect_later() -> list[dict[str, Any]]:
            waiting = asyncio.ensure_future(trigger_events(value.trigger))
            while sandbox.request_count - before < 2:  # it saw the state at least twice
                assert not waiting.done(), "the trigger ended while the number was not connected"
                await asyncio.sleep(0.001)
            sandbox.set_state(INSTANCE_ID, "connected")
            return await waiting

        (event,) = asyncio.run(asyncio.wait_for(connect_later(), timeout=10))
        assert sensor.execute_complete(task_context(), event) == STATUS


@pytest.mark.parametrize("runner", list(SEND_RUNNERS))
@pytest.mark.parametrize("case", SEND_CASES)
def test_send_text_fault(
    case: Case,
    runner: str,
    sandbox: PlugzSandbox,
    monkeypatch: pytest.MonkeyPatch,
    retry_sleeps: list[float],
    capfd: pytest.CaptureFixture[str],
) -> None:
    private = Case(**{**case.__dict__, "hidden": (*case.hidden, PHONE, TEXT)})
    if runner == "operator" and case.error is not None and may_have_been_applied(case.error("probe")):
        # The operator fails such a try without an Airflow retry, the hook's text kept.
        private = Case(**{**private.__dict__, "error": PlugzOutcomeUnknownError})
    break_things(monkeypatch, sandbox, case)
    kind, value = SEND_RUNNERS[runner]()
    _check(private, runner, (kind, value), sandbox, retry_sleeps)
    if kind == "returns":
        (sent,) = sandbox.messages
        zaap_id = value["zaap_id"] if isinstance(value, dict) else value.zaap_id
        assert (sent.phone, sent.message, sent.zaap_id) == (PHONE, TEXT, zaap_id)
    else:
        _settle(sandbox)  # a slow server may carry the request out after we gave up on it
        assert len(sandbox.messages) <= 1  # but never twice
    out, err = capfd.readouterr()
    assert_clean(private, out, err)
