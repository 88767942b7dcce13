"""The fault matrix for the status and send-text endpoints over real HTTP (the sandbox).

Reuses test_faults.py's rows (:class:`Case`), setup and assertions. ``has_code`` is unused
here: a succeeding row has ``has_code=True`` and its result is checked per runner. Send-text
rows prove the send-once rule: after a request may have reached Plugz it is never repeated.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_plugz.exceptions import (
    PlugzAuthenticationError,
    PlugzBadRequestError,
    PlugzConnectError,
    PlugzConnectionError,
    PlugzMalformedResponseError,
    PlugzNotFoundError,
    PlugzRateLimitedError,
    PlugzReadTimeoutError,
    PlugzServerError,
)
from airflow_provider_plugz.hooks.plugz import PlugzHook
from airflow_provider_plugz.operators.messages import PlugzSendMessageOperator
from airflow_provider_plugz.operators.plugz import PlugzInstanceStatusOperator
from airflow_provider_plugz.sensors.plugz import PlugzInstanceStatusSensor
from airflow_provider_plugz.testing import Fault
from tests.conftest import task_context
from tests.test_faults import (
    WRONG_CLIENT_TOKEN,
    Case,
    Observed,
    assert_clean,
    assert_error,
    body,
    break_things,
    fault,
    observe,
    sandbox,
    server,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_provider_plugz.testing import PlugzSandbox

__all__ = ["sandbox", "server"]  # the module-scoped sandbox fixtures of test_faults.py

PHONE = "5511987654321"
TEXT = "Disk 93% full on db-7; page Marina"
OK = True  # a succeeding row (Case needs has_code xor error)

STATUS_CASES = [
    pytest.param(Case(has_code=OK, requests=1), id="status-connected"),
    pytest.param(Case(faults=fault(Fault.drop()), has_code=OK, requests=2), id="status-drop-then-200"),
    pytest.param(Case(faults=fault(Fault.status(503)), has_code=OK, requests=2), id="status-503-then-200"),
    pytest.param(
        Case(faults=fault(Fault.status(503), 4), error=PlugzServerError, match="HTTP 503", requests=4),
        id="status-503-x4",
    ),
    pytest.param(
        Case(
            faults=body(404, {"error": "Instance not found"}),
            error=PlugzNotFoundError,
            match="HTTP 404",
            requests=1,
        ),
        id="status-404",
    ),
    pytest.param(
        Case(
            faults=body(200, {"error": "null not allowed"}),
            error=PlugzAuthenticationError,
            match="HTTP 200: null not allowed",
            requests=1,
        ),
        id="status-200-error-without-connected",
    ),
    pytest.param(
        Case(
            faults=body(200, {"connected": "yes", "smartphoneConnected": True}),
            error=PlugzMalformedResponseError,
            match="'connected' is not a boolean",
            requests=1,
        ),
        id="status-200-connected-string",
    ),
    pytest.param(
        Case(
            extra={"client_token": WRONG_CLIENT_TOKEN},
            error=PlugzAuthenticationError,
            match="Client-Token *** not allowed",
            requests=1,
            hidden=(WRONG_CLIENT_TOKEN,),
        ),
        id="status-wrong-client-token",
    ),
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
            faults=fault(Fault.slow(2), 4),
            error=PlugzReadTimeoutError,
            match="message sending",
            requests=1,
        ),
        id="send-read-timeout-once",
    ),
    pytest.param(
        Case(faults=fault(Fault.status(503), 4), error=PlugzServerError, match="HTTP 503", requests=1),
        id="send-503-once",
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
            match="phone *** with text *** refused",
            requests=1,
        ),
        id="send-400-echo-redacted",
    ),
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
    return PlugzInstanceStatusSensor(task_id="wait", poke_interval=0, timeout=30, **kwargs)


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
WAITS_ON_TRANSIENT = {"poke": "keeps poking", "reschedule": "reschedules", "deferrable": "defers"}


def _check(case: Case, runner: str, observed: Observed, sb: PlugzSandbox, retry_sleeps: list[float]) -> None:
    kind, value = observed
    if case.error is None:
        assert kind == "returns", f"{runner}: {kind} {value!r}"
    elif case.transient and runner in WAITS_ON_TRANSIENT:
        assert kind == WAITS_ON_TRANSIENT[runner], f"{runner}: {kind} {value!r}"
    else:
        assert kind == "raises", f"{runner}: {kind} {value!r}"
        assert_error(case, value)
    assert sb.request_count == case.requests
    assert len(retry_sleeps) == max(case.tries - 1, 0)


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
        result = value if isinstance(value, dict) else dataclasses_asdict(value)
        assert {k: result[k] for k in STATUS} == STATUS
    assert_clean(case, *capfd.readouterr())


def dataclasses_asdict(value: Any) -> dict[str, Any]:
    import dataclasses

    return dataclasses.asdict(value)


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
    break_things(monkeypatch, sandbox, case)
    kind, value = SEND_RUNNERS[runner]()
    _check(private, runner, (kind, value), sandbox, retry_sleeps)
    if kind == "returns":
        (sent,) = sandbox.messages
        zaap_id = value["zaap_id"] if isinstance(value, dict) else value.zaap_id
        assert (sent.phone, sent.message, sent.zaap_id) == (PHONE, TEXT, zaap_id)
    else:
        assert len(sandbox.messages) <= 1  # never a duplicate
    out, err = capfd.readouterr()
    assert_clean(private, out, err)
