"""The fault suite: one table of bad inputs and faults, run through every way the PIN is read.

Each row (:class:`Case`) says how to break things (connection fields, sandbox faults, instance
state) and the one outcome the hook must produce: ``has_code`` after so many server requests,
or the exact ``PlugzError`` subclass with a message fragment. :func:`expected_outcome` derives
what each runner must do from that single outcome:

- ``hook`` / ``async-hook`` / ``operator``: return ``has_code`` or raise the exact class;
- ``poke``: one ``poke()``; a transient error is "not done yet", a permanent one raises;
- ``reschedule``: ``execute()``; a transient error reschedules the task;
- ``deferrable``: ``execute()`` returns at once, raises, or defers; a deferral is then run
  through the trigger to its single event and ``execute_complete``. Permanent rows also go
  through the trigger (the fault appears after the deferral) and must end in the same class.

Any other exception is a crash and fails the row. Rows the code gets wrong today carry a
``bug`` and run as strict xfails, so they start failing the day the bug is fixed.

Secrets are the distinctive values of ``tests/conftest.py``; no error text, traceback, trigger
event, serialized trigger or captured output may contain them.
"""

from __future__ import annotations

import asyncio
import json
import zlib
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_plugz._compat import AIRFLOW_V3
from airflow_provider_plugz._redaction import WITHHELD
from airflow_provider_plugz.exceptions import (
    PlugzAuthenticationError,
    PlugzBadRequestError,
    PlugzConfigurationError,
    PlugzConnectError,
    PlugzConnectionError,
    PlugzInstanceNotSupportedError,
    PlugzMalformedResponseError,
    PlugzMethodNotAllowedError,
    PlugzNotFoundError,
    PlugzRateLimitedError,
    PlugzReadTimeoutError,
    PlugzRedirectError,
    PlugzRefusedError,
    PlugzServerError,
    PlugzSubscriptionError,
    PlugzUnsupportedMediaTypeError,
)
from airflow_provider_plugz.hooks.plugz import PlugzHook
from airflow_provider_plugz.operators.plugz import PlugzPinStatusOperator
from airflow_provider_plugz.sensors.plugz import PlugzPinStatusSensor
from airflow_provider_plugz.testing import Fault
from tests.conftest import CLIENT_TOKEN, INSTANCE_ID, INSTANCE_TOKEN, task_context, trigger_events
from tests.support.faults import (
    FAR_FUTURE,
    GAVE_UP_4,
    PIN,
    PIN_JSON,
    STACKED_BOMB,
    UNKNOWN_INSTANCE_ID,
    WAITS_ON_TRANSIENT,
    WRONG_CLIENT_TOKEN,
    WRONG_INSTANCE_TOKEN,
    Case,
    Observed,
    _one_tls_context,
    assert_clean,
    assert_error,
    body,
    break_things,
    config_error,
    encoded,
    fault,
    heal,
    observe,
    run_trigger,
    sandbox,
    server,
    status_rows,
    tls_context,
    wire_rows,
)
from tests.support.statuses import NOT_FOUND_TEXT

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_provider_plugz.testing import PlugzSandbox

# the sandbox fixtures of tests/support/faults.py, used here by name
__all__ = ["_one_tls_context", "sandbox", "server", "tls_context"]

# Bugs found by this table (see each row's ``bug``); the rows say what should happen.
SYNC_RUNNERS = ("hook", "operator", "poke", "reschedule", "deferrable")


CASES = [
    # --- connection fields ------------------------------------------------------------------
    pytest.param(config_error("login (Instance ID) is empty", conn={"login": None}), id="conn-login-missing"),
    pytest.param(
        config_error("password (Instance token) is empty", conn={"password": " "}), id="conn-password-blank"
    ),
    pytest.param(
        config_error("extra 'client_token' (Client-Token) is missing", extra={"client_token": None}),
        id="conn-client-token-missing",
    ),
    pytest.param(
        config_error("login (Instance ID) contains", conn={"login": "inst/../other"}), id="conn-login-slash"
    ),
    pytest.param(
        config_error(
            "password (Instance token) contains", conn={"password": "tok3n?x=1"}, hidden=("tok3n?x=1",)
        ),
        id="conn-password-query",
    ),
    pytest.param(
        config_error(
            "password (Instance token) contains",
            conn={"password": "T0KEN%2F5ECRET"},
            hidden=("T0KEN%2F5ECRET",),
        ),
        id="conn-password-percent",
    ),
    pytest.param(
        config_error(
            "extra 'client_token' (Client-Token) is blank or contains",
            extra={"client_token": CLIENT_TOKEN + "\r\nX-Evil: 1"},
        ),
        id="conn-client-token-crlf",
    ),
    pytest.param(
        config_error(
            "extra 'client_token' (Client-Token) is blank or contains",
            extra={"client_token": "t\u00f8ken-F1C11E7"},
            hidden=("t\u00f8ken-F1C11E7",),
        ),
        id="conn-client-token-non-ascii",
    ),
    pytest.param(
        config_error(
            "extra 'client_token' (Client-Token) must be a string", extra={"client_token": 123456789}
        ),
        id="conn-client-token-number",
    ),
    pytest.param(
        config_error("extra 'read_timeout' must be a number of seconds", extra={"read_timeout": "soon"}),
        id="conn-read-timeout-text",
    ),
    pytest.param(
        config_error(
            "extra 'read_timeout' must be a number of seconds, greater than 0", extra={"read_timeout": 0}
        ),
        id="conn-read-timeout-zero",
    ),
    pytest.param(
        config_error(
            "extra 'connect_timeout' must be a number of seconds, greater than 0",
            extra={"connect_timeout": "nan"},
        ),
        id="conn-connect-timeout-nan",
    ),
    pytest.param(
        config_error("extra 'connect_timeout' must be a number of seconds", extra={"connect_timeout": True}),
        id="conn-connect-timeout-bool",
    ),
    pytest.param(
        config_error("extra 'max_attempts' must be a whole number, at least 1", extra={"max_attempts": 0}),
        id="conn-max-attempts-zero",
    ),
    pytest.param(
        config_error("extra 'max_attempts' must be a whole number", extra={"max_attempts": 2.5}),
        id="conn-max-attempts-fraction",
    ),
    # Refused before any network access (the conftest guard would turn a connect into a
    # PlugzConnectionError, so the exact class proves no socket was opened).
    pytest.param(
        config_error("host uses plain http://", conn={"host": "http://203.0.113.1"}),
        id="conn-plain-http-public-host",
    ),
    pytest.param(
        config_error(
            "host uses plain http://",
            conn={"host": "http://203.0.113.1:8080/api"},
            extra={"allow_insecure_http": "false"},
        ),
        id="conn-plain-http-insecure-false",
    ),
    pytest.param(
        config_error(
            "extra 'allow_insecure_http' must be true or false", extra={"allow_insecure_http": "yes"}
        ),
        id="conn-allow-insecure-not-bool",
    ),
    pytest.param(
        Case(
            conn={"host": "http://localhost:{port}"},
            extra={"allow_insecure_http": True},
            instance=PIN,
            has_code=True,
            requests=1,
        ),
        id="conn-allow-insecure-true-localhost",
    ),
    pytest.param(
        config_error("host must be an http(s) URL", conn={"host": "ftp://127.0.0.1:{port}"}),
        id="conn-host-ftp",
    ),
    pytest.param(
        config_error("host is not a valid URL", conn={"host": "http://127.0.0.1:99999"}),
        id="conn-host-port-in-url-out-of-range",
    ),
    pytest.param(
        config_error(
            "host must not contain credentials",
            conn={"host": f"http://user:{INSTANCE_TOKEN}@127.0.0.1:{{port}}"},
        ),
        id="conn-host-with-credentials",
    ),
    pytest.param(
        config_error("host must not contain credentials, '?' or '#'", conn={"host": "{base}?debug=1"}),
        id="conn-host-with-query",
    ),
    pytest.param(
        Case(
            conn={"host": "{base}/v1"},
            error=PlugzNotFoundError,
            match=f"HTTP 404: {NOT_FOUND_TEXT}",
            requests=1,
        ),
        id="conn-host-wrong-path",
    ),
    pytest.param(
        Case(
            conn={"host": "http://127.0.0.1:1"},
            error=PlugzConnectError,
            match="could not connect",
            requests=0,
            attempts=4,
        ),
        id="conn-host-refused",
    ),
    pytest.param(
        config_error("port", conn={"host": "127.0.0.1", "port": 99999}),
        id="conn-port-field-out-of-range",
    ),
    pytest.param(
        config_error("extra", conn={"extra": ["client_token", CLIENT_TOKEN]}),
        id="conn-extra-not-an-object",
    ),
    pytest.param(
        Case(
            extra={"ca_bundle": "/nonexistent/ca.pem"},
            error=PlugzConfigurationError,
            match="extra 'ca_bundle' is not a readable PEM CA bundle",
            requests=0,
            attempts=1,
        ),
        id="conn-ca-bundle-missing",
    ),
    pytest.param(
        Case(
            extra={"ca_bundle": __file__},
            error=PlugzConfigurationError,
            match="extra 'ca_bundle'",
            requests=0,
            attempts=1,
        ),
        id="conn-ca-bundle-not-pem",
    ),
    pytest.param(
        Case(
            extra={"client_token": WRONG_CLIENT_TOKEN},
            error=PlugzAuthenticationError,
            match="HTTP 403: Client-Token *** not allowed",
            requests=1,
            hidden=(WRONG_CLIENT_TOKEN,),
        ),
        id="conn-wrong-client-token",
    ),
    pytest.param(
        Case(
            conn={"login": UNKNOWN_INSTANCE_ID},
            error=PlugzNotFoundError,
            match="HTTP 404: Instance not found",
            requests=1,
            hidden=(UNKNOWN_INSTANCE_ID,),
        ),
        id="conn-unknown-instance",
    ),
    pytest.param(
        Case(
            conn={"password": WRONG_INSTANCE_TOKEN},
            error=PlugzNotFoundError,
            match="HTTP 404: Instance not found",
            requests=1,
            hidden=(WRONG_INSTANCE_TOKEN,),
        ),
        id="conn-token-mismatch",
    ),
    pytest.param(
        Case(conn={"login": f"  {INSTANCE_ID}  "}, instance=PIN, has_code=True, requests=1),
        id="conn-login-padded-is-stripped",
    ),
    pytest.param(
        Case(
            extra={"max_attempts": 1},
            faults=fault(Fault.status(503)),
            error=PlugzServerError,
            match="HTTP 503: Service Unavailable. The Plugz service or a gateway in front of it "
            "failed; try again later. (gave up after 1 attempt(s): no attempts left)",
            requests=1,
        ),
        id="conn-max-attempts-1-no-retry",
    ),
    pytest.param(
        Case(
            extra={"max_attempts": "2"},
            faults=fault(Fault.status(503), 2),
            error=PlugzServerError,
            match="gave up after 2 attempt(s): no attempts left",
            requests=2,
        ),
        id="conn-max-attempts-2-as-text",
    ),
    pytest.param(
        Case(
            extra={"retry_budget": 0},
            faults=fault(Fault.status(503)),
            error=PlugzServerError,
            match="gave up after 1 attempt(s): the 0 s retry budget is used up",
            requests=1,
        ),
        id="conn-retry-budget-zero",
    ),
    # --- instance state (the sandbox answers like the real API) -------------------------------
    pytest.param(
        Case(
            instance={"expired": True},
            error=PlugzSubscriptionError,
            match="HTTP 400: To continue sending a message, you must subscribe",
            requests=1,
        ),
        id="state-subscription-expired",
    ),
    pytest.param(
        Case(
            instance={"kind": "web"},
            error=PlugzInstanceNotSupportedError,
            match="HTTP 400: This feature is only available for mobile instances",
            requests=1,
        ),
        id="state-web-instance",
    ),
    # --- the faults every endpoint meets (tests/support/faults.py), here for the PIN read ---------
    *wire_rows("pin", PIN_JSON.decode(), instance=PIN),
    # --- every status and error body (tests/support/statuses.py), here for the PIN read ------------
    *status_rows("http"),
    # --- what the retry policy makes of a 429's Retry-After; a 503's text redacted -------------
    pytest.param(
        Case(
            faults=fault(Fault.status(429, headers={"Retry-After": "2"}), 4),
            error=PlugzRateLimitedError,
            match=GAVE_UP_4,
            requests=4,
            waits=(2.0, 2.0, 2.0),
        ),
        id="http-429-retry-after-2",
    ),
    pytest.param(
        Case(
            faults=fault(Fault.status(429, headers={"Retry-After": "120"})),
            error=PlugzRateLimitedError,
            match="(gave up after 1 attempt(s): Retry-After of 120 s is over the 30 s cap)",
            requests=1,
        ),
        id="http-429-retry-after-over-cap",
    ),
    pytest.param(
        Case(
            faults=body(503, {"error": f"Client-Token {CLIENT_TOKEN} not allowed"}),
            error=PlugzServerError,
            match="HTTP 503: Client-Token *** not allowed",
            requests=1,
            extra={"max_attempts": 1},
        ),
        id="http-503-echoed-token-redacted",
    ),
    # --- bodies of a 200 ------------------------------------------------------------------------
    pytest.param(
        Case(
            faults=body(200, {"success": True, "hasCode": "true"}),
            error=PlugzMalformedResponseError,
            match="'hasCode' is not a boolean",
            requests=1,
        ),
        id="body-200-hascode-string",
    ),
    pytest.param(
        Case(
            faults=body(200, {"success": True, "hasCode": None}),
            error=PlugzMalformedResponseError,
            match="'hasCode' is not a boolean",
            requests=1,
        ),
        id="body-200-hascode-null",
    ),
    pytest.param(
        Case(
            faults=body(200, {"success": True}),
            error=PlugzMalformedResponseError,
            match="it has no 'hasCode' field",
            requests=1,
        ),
        id="body-200-hascode-missing",
    ),
    pytest.param(
        Case(
            faults=body(200, {"success": False, "hasCode": True}),
            error=PlugzRefusedError,
            match="HTTP 200, success: false (the API gave no reason).",
            requests=1,
        ),
        id="body-200-success-false",
    ),
    pytest.param(
        Case(
            faults=body(
                200, {"success": False, "message": f"no PIN data for {CLIENT_TOKEN} / 5521912345678"}
            ),
            error=PlugzRefusedError,
            match=f"HTTP 200, success: false: {WITHHELD}. The Plugz API refused",
            requests=1,
            hidden=("5521912345678",),
        ),
        id="body-200-success-false-message-echoes-token-and-phone",
    ),
    pytest.param(
        Case(
            faults=body(
                200, {"success": False, "message": "This feature is only available for mobile instances"}
            ),
            error=PlugzInstanceNotSupportedError,
            match="success: false: This feature is only available for mobile instances",
            requests=1,
        ),
        id="body-200-success-false-web-instance",
    ),
    pytest.param(
        Case(
            faults=body(200, {"success": True, "hasCode": True, "error": "something broke"}),
            error=PlugzBadRequestError,
            match="HTTP 200: something broke",
            requests=1,
        ),
        id="body-200-with-error-key",
    ),
    pytest.param(
        Case(
            faults=body(200, {"success": True, "hasCode": False, "message": "ok", "error": None}),
            has_code=False,
            requests=1,
        ),
        id="body-200-message-and-null-error-is-success",
    ),
    pytest.param(
        Case(
            faults=fault(Fault.malformed(200, b"[" * 100_000 + b"]" * 100_000)),
            error=PlugzMalformedResponseError,
            match="the body is not valid JSON",
            requests=1,
        ),
        id="body-200-nested-too-deep",
    ),
    pytest.param(
        Case(
            faults=body(204, b""),
            error=PlugzMalformedResponseError,
            match="HTTP 204 answer is malformed: the body is empty",
            requests=1,
        ),
        id="body-204-no-content",
    ),
    pytest.param(
        Case(
            faults=body(200, {"success": True, "hasCode": True}, headers={"Content-Length": "999"}),
            instance=PIN,
            has_code=True,
            requests=2,
        ),
        id="body-200-conflicting-content-length-then-200",
    ),
    # --- timeouts and dropped connections -------------------------------------------------------
    pytest.param(
        Case(
            extra={"read_timeout": 0.05, "max_attempts": 2},
            faults=fault(Fault.slow(0.5), 2),
            error=PlugzReadTimeoutError,
            match="timed out while waiting for the answer",
            requests=2,
        ),
        id="read-timeout-x2-gives-up",
    ),
    pytest.param(
        Case(
            extra={"read_timeout": 0.05, "max_attempts": 2},
            faults=fault(Fault.slow(0.5)),
            instance=PIN,
            has_code=True,
            requests=2,
        ),
        id="read-timeout-then-200",
    ),
    pytest.param(
        Case(
            faults=fault(Fault.drop(), 4),
            error=PlugzConnectionError,
            match="got no usable answer",
            requests=4,
        ),
        id="dropped-x4-gives-up",
    ),
    # --- a slow server: every attempt has a wall-clock deadline -----------------------------------
    # --- encoded bodies: one layer of gzip/deflate, decoded within the limit ---------------------
    pytest.param(
        Case(faults=encoded(zlib.compress(PIN_JSON), "deflate"), has_code=True, requests=1), id="deflate-body"
    ),
    pytest.param(
        Case(faults=encoded(zlib.compress(PIN_JSON)[2:-4], "Deflate"), has_code=True, requests=1),
        id="deflate-raw-body",
    ),
    pytest.param(
        Case(faults=encoded(PIN_JSON, "identity"), has_code=True, requests=1), id="identity-encoding"
    ),
    pytest.param(
        Case(
            faults=encoded(b"\x1f\x8b\x08\x00garbage", "gzip"),
            error=PlugzMalformedResponseError,
            match="its encoded body is truncated",
            requests=1,
        ),
        id="gzip-header-only",
    ),
    pytest.param(
        Case(
            extra={"max_attempts": 1},
            faults=encoded(STACKED_BOMB, "gzip, gzip", status=503),
            error=PlugzServerError,
            match="HTTP 503. The Plugz service",
            requests=1,
        ),
        id="gzip-stacked-503-is-still-a-503",
    ),
    # --- headers a hostile server sends ----------------------------------------------------------
    pytest.param(
        Case(
            faults=fault(Fault.status(429, headers={"Retry-After": "\u00b2"}), 4),
            error=PlugzRateLimitedError,
            match=GAVE_UP_4,
            requests=4,
        ),
        id="retry-after-superscript-two",
    ),
    pytest.param(
        Case(
            faults=fault(Fault.status(429, headers={"Retry-After": FAR_FUTURE})),
            error=PlugzRateLimitedError,
            match="is over the 30 s cap",
            requests=1,
        ),
        id="retry-after-year-9999",
    ),
    pytest.param(
        Case(
            faults=fault(Fault.status(429, headers={"Retry-After": "9" * 5000})),
            error=PlugzRateLimitedError,
            match="Retry-After of inf s is over the 30 s cap",
            requests=1,
        ),
        id="retry-after-5000-digits",
    ),
    pytest.param(
        Case(
            faults=fault(Fault.status(429, headers={"Retry-After": "Mon, 99 Foo 1 25:61:61 GMT"}), 4),
            error=PlugzRateLimitedError,
            match=GAVE_UP_4,
            requests=4,
        ),
        id="retry-after-broken-date",
    ),
    # --- server texts: one printable line; one that repeats a secret, in any shape, is withheld -----
    pytest.param(
        Case(
            # JSON escapes, as a server sends them: a lone surrogate cannot even be encoded as UTF-8.
            faults=body(400, rb'{"error": "bad\n2026-12-01 [INFO] forged line\u001b[31m\u0000\ud800 end"}'),
            error=PlugzBadRequestError,
            match="HTTP 400: bad 2026-12-01 [INFO] forged line?[31m?? end.",
            requests=1,
        ),
        id="text-control-characters",
    ),
    pytest.param(
        Case(
            faults=body(400, {"error": "x" * 5000}),
            error=PlugzBadRequestError,
            match="x" * 300 + "...",
            requests=1,
        ),
        id="text-bounded",
    ),
    pytest.param(
        Case(
            faults=body(400, {"error": f"bad token {CLIENT_TOKEN.lower()} here"}),
            error=PlugzBadRequestError,
            match=f"HTTP 400: {WITHHELD}.",
            requests=1,
            hidden=(CLIENT_TOKEN.lower(),),
        ),
        id="text-echo-lower-cased",
    ),
    pytest.param(
        Case(
            faults=body(404, {"error": f"no instance {INSTANCE_ID[:9]} for {INSTANCE_TOKEN[3:14]}"}),
            error=PlugzNotFoundError,
            match=f"HTTP 404: {WITHHELD}.",
            requests=1,
            hidden=(INSTANCE_ID[:9], INSTANCE_TOKEN[3:14]),
        ),
        id="text-echo-cut-short",
    ),
    pytest.param(
        Case(
            faults=body(400, {"error": f"token {CLIENT_TOKEN[:12]}\n{CLIENT_TOKEN[12:]} refused"}),
            error=PlugzBadRequestError,
            match=f"HTTP 400: {WITHHELD}.",
            requests=1,
            hidden=(CLIENT_TOKEN[:12], CLIENT_TOKEN[12:]),
        ),
        id="text-echo-split-by-newline",
    ),
    pytest.param(
        Case(
            faults=body(200, {"success": CLIENT_TOKEN, "hasCode": True}),
            error=PlugzMalformedResponseError,
            match="its 'success' is string, not a boolean",
            requests=1,
            hidden=(CLIENT_TOKEN[:8],),
        ),
        id="body-200-token-in-success",
    ),
    # --- flapping -------------------------------------------------------------------------------
    pytest.param(
        Case(faults=fault(Fault.status(503)), instance=PIN, has_code=True, requests=2), id="flap-503-then-200"
    ),
    pytest.param(Case(faults=fault(Fault.drop()), has_code=False, requests=2), id="flap-drop-then-200"),
    pytest.param(
        Case(
            faults=fault(Fault.status(429, headers={"Retry-After": "1"})),
            instance=PIN,
            has_code=True,
            requests=2,
            waits=(1.0,),
        ),
        id="flap-429-retry-after-1-then-200",
    ),
    pytest.param(
        Case(faults=fault(Fault.status(503), 3), instance=PIN, has_code=True, requests=4),
        id="flap-503-x3-then-200",
    ),
    pytest.param(
        Case(
            faults=(*fault(Fault.status(504)), *fault(Fault.drop()), *fault(Fault.html(502))),
            has_code=False,
            requests=4,
        ),
        id="flap-504-drop-502-then-200",
    ),
    pytest.param(
        Case(
            faults=(*fault(Fault.status(503)), *body(404, {"error": "Instance not found"})),
            error=PlugzNotFoundError,
            match="check the host too. (on attempt 2)",
            requests=2,
        ),
        id="flap-503-then-404",
    ),
]


# --- setting a row up ---------------------------------------------------------------------------


def sensor_for(case: Case, **kwargs: Any) -> PlugzPinStatusSensor:
    """A sensor that succeeds on the row's ``has_code`` (a failing row waits for a PIN)."""
    expected = True if case.has_code is None else case.has_code
    return PlugzPinStatusSensor(task_id="wait", expected=expected, poke_interval=0.01, timeout=30, **kwargs)


def run_hook(case: Case) -> tuple[Observed, Any]:
    hook = PlugzHook()
    try:
        return observe(lambda: hook.get_pin_status().has_code), None
    finally:
        hook.close()


def run_async_hook(case: Case) -> tuple[Observed, Any]:
    async def pin() -> bool:
        hook = PlugzHook()
        try:
            return (await hook.aget_pin_status()).has_code
        finally:
            await hook.aclose()

    return observe(lambda: asyncio.run(pin())), None


def run_operator(case: Case) -> tuple[Observed, Any]:
    operator = PlugzPinStatusOperator(task_id="check")
    try:
        return observe(lambda: operator.execute(task_context())), operator
    finally:
        operator.hook.close()


def run_poke(case: Case) -> tuple[Observed, Any]:
    sensor = sensor_for(case, mode="poke")
    try:
        kind, value = observe(lambda: sensor.poke(task_context()))
    finally:
        sensor.hook.close()
    if kind == "returns":
        return ("returns" if value.is_done else "keeps poking", value.xcom_value), sensor
    return (kind, value), sensor


def run_reschedule(case: Case) -> tuple[Observed, Any]:
    sensor = sensor_for(case, mode="reschedule")
    try:
        return observe(lambda: sensor.execute(task_context())), sensor
    finally:
        sensor.hook.close()


def run_deferrable(case: Case) -> tuple[Observed, Any]:
    sensor = sensor_for(case, deferrable=True)
    try:
        return observe(lambda: sensor.execute(task_context())), sensor
    finally:
        sensor.hook.close()


RUNNERS: dict[str, Callable[[Case], tuple[Observed, Any]]] = {
    "hook": run_hook,
    "async-hook": run_async_hook,
    "operator": run_operator,
    "poke": run_poke,
    "reschedule": run_reschedule,
    "deferrable": run_deferrable,
}
# What a sensor does instead of failing when the hook's error is transient.


def expected_outcome(case: Case, runner: str) -> Observed:
    """Each runner's outcome, derived from the row's single one."""
    if case.error is None:
        return "returns", case.has_code
    if case.transient and runner in WAITS_ON_TRANSIENT:
        return WAITS_ON_TRANSIENT[runner], None
    return "raises", case.error


def wait_out_transient_in_triggerer(
    case: Case, sb: PlugzSandbox, monkeypatch: pytest.MonkeyPatch, sensor: Any, deferred: Any
) -> None:
    """The worker's check failed transiently and deferred: the trigger polls through the same
    fault, and fires one success event once the fault is gone and the PIN is set."""
    _path, kwargs = deferred.trigger.serialize()
    assert_clean(case, json.dumps(kwargs))
    if not case.faults:
        # The connection itself is at fault (e.g. nothing listens): fix it before the
        # triggerer reads it, as a user would.
        heal(monkeypatch, sb, has_code=True)
        event = run_trigger(deferred.trigger)
    else:
        break_things(monkeypatch, sb, case)  # the same faults again, now for the trigger
        before = sb.request_count

        async def scenario() -> list[dict[str, Any]]:
            waiting = asyncio.ensure_future(trigger_events(deferred.trigger))
            while sb.request_count - before < case.requests:  # one full check's worth of faults
                assert not waiting.done(), "the trigger ended on a transient error"
                await asyncio.sleep(0.001)
            sb.clear_faults()
            sb.set_has_code(INSTANCE_ID, True)
            return await waiting

        (event,) = asyncio.run(asyncio.wait_for(scenario(), timeout=10))
        assert sb.request_count - before > case.requests  # it checked again after the fault
    assert event == {"status": "success", "has_code": True}
    assert sensor.execute_complete(task_context(), event) is True


def permanent_error_in_triggerer(case: Case, sb: PlugzSandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same permanent fault, appearing while the sensor waits in the triggerer, ends the wait
    with an error event that ``execute_complete`` turns into the same class."""
    assert case.error is not None
    heal(monkeypatch, sb, has_code=False)
    sensor = sensor_for(case, deferrable=True)
    try:
        kind, deferred = observe(lambda: sensor.execute(task_context()))
    finally:
        sensor.hook.close()
    assert kind == "defers"
    break_things(monkeypatch, sb, case)
    before = sb.request_count
    event = run_trigger(deferred.trigger)
    assert sb.request_count - before == case.requests
    assert (event["status"], event["error_class"]) == ("error", case.error.__name__), event
    assert case.match in event["message"]
    assert_clean(case, json.dumps(event))
    with pytest.raises(case.error) as info:
        sensor.execute_complete(task_context(), event)
    assert type(info.value) is case.error
    assert str(info.value) == event["message"]


# --- the suite ----------------------------------------------------------------------------------


def test_the_table_is_big_and_covers_every_outcome() -> None:
    cases: list[Case] = [param.values[0] for param in CASES]
    assert len(cases) >= 30
    assert {case.error for case in cases} >= {
        PlugzConfigurationError,
        PlugzAuthenticationError,
        PlugzNotFoundError,
        PlugzSubscriptionError,
        PlugzRedirectError,
        PlugzBadRequestError,
        PlugzMethodNotAllowedError,
        PlugzUnsupportedMediaTypeError,
        PlugzInstanceNotSupportedError,
        PlugzConnectionError,
        PlugzConnectError,
        PlugzReadTimeoutError,
        PlugzRateLimitedError,
        PlugzServerError,
        PlugzMalformedResponseError,
        PlugzRefusedError,
    }
    assert any(case.has_code is True for case in cases)
    assert any(case.has_code is False for case in cases)


@pytest.mark.parametrize("runner", list(RUNNERS))
@pytest.mark.parametrize("case", CASES)
def test_fault(
    case: Case,
    runner: str,
    sandbox: PlugzSandbox,
    monkeypatch: pytest.MonkeyPatch,
    retry_sleeps: list[float],
    capfd: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
) -> None:
    if case.bug and (not case.bug_in or runner in case.bug_in):
        request.applymarker(pytest.mark.xfail(strict=True, reason=case.bug))
    if runner == "reschedule" and not AIRFLOW_V3:
        request.getfixturevalue("airflow_db")  # Airflow 2 looks up earlier reschedules in the DB
    break_things(monkeypatch, sandbox, case)

    (kind, value), task = RUNNERS[runner](case)

    expected_kind, expected_value = expected_outcome(case, runner)
    assert kind == expected_kind, f"{runner}: {kind} {value!r}"
    if kind == "raises":
        assert_error(case, value)
    else:
        assert value is expected_value or kind == "defers"
    assert sandbox.request_count == case.requests
    assert len(retry_sleeps) == max(case.tries - 1, 0)
    if case.waits is not None:
        assert retry_sleeps == list(case.waits)

    if runner == "deferrable" and kind == "defers":
        wait_out_transient_in_triggerer(case, sandbox, monkeypatch, task, value)
    elif runner == "deferrable" and kind == "raises":
        permanent_error_in_triggerer(case, sandbox, monkeypatch)

    out, err = capfd.readouterr()
    assert_clean(case, out, err)


def test_sandbox_serves_a_deeply_nested_body() -> None:
    nested = b"[" * 100_000 + b"]" * 100_000
    assert Fault.status(200, body=nested).body == nested
