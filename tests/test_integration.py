"""PlugzHook over real HTTP against the sandbox, through both transports (requests and httpx)."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_plugz.exceptions import (
    PlugzAuthenticationError,
    PlugzConnectionError,
    PlugzError,
    PlugzInstanceNotSupportedError,
    PlugzMalformedResponseError,
    PlugzNotFoundError,
    PlugzRateLimitedError,
    PlugzRedirectError,
    PlugzServerError,
    PlugzSubscriptionError,
    PlugzTimeoutError,
)
from airflow_provider_plugz.hooks.plugz import PinStatus, PlugzHook
from airflow_provider_plugz.testing import Fault
from tests.conftest import CLIENT_TOKEN, INSTANCE_ID, INSTANCE_TOKEN

if TYPE_CHECKING:
    from airflow_provider_plugz.testing import PlugzSandbox


def set_connection(monkeypatch: pytest.MonkeyPatch, sb: PlugzSandbox, **changes: Any) -> None:
    conn = json.loads(sb.connection_json(INSTANCE_ID))
    extra = changes.pop("extra", {})
    conn.update(changes)
    conn["extra"].update(extra)
    monkeypatch.setenv("AIRFLOW_CONN_PLUGZ_DEFAULT", json.dumps(conn))


def pin_status(transport: str, hook: PlugzHook | None = None) -> PinStatus:
    hook = hook or PlugzHook()
    if transport == "sync":
        return hook.get_pin_status()

    async def run() -> PinStatus:
        try:
            return await hook.aget_pin_status()
        finally:
            await hook.aclose()

    return asyncio.run(run())


TRANSPORTS = [pytest.param("sync", id="requests"), pytest.param("async", id="httpx")]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_pin_state_follows_the_server(sandbox: PlugzSandbox, transport: str) -> None:
    assert pin_status(transport) == PinStatus(has_code=False)
    sandbox.set_has_code(INSTANCE_ID, True)
    assert pin_status(transport) == PinStatus(has_code=True)
    request = sandbox.requests[-1]
    assert request.method == "GET"
    assert request.body == b""
    assert request.headers["client-token"] == CLIENT_TOKEN
    assert request.path == f"/instances/{INSTANCE_ID}/token/{INSTANCE_TOKEN}/security/two-fa-code"


def test_sync_hook_reuses_one_connection(sandbox: PlugzSandbox) -> None:
    hook = PlugzHook()
    for _ in range(5):
        hook.get_pin_status()
    assert sandbox.request_count == 5
    assert sandbox.connections_accepted == 1


def test_async_hook_reuses_one_connection(sandbox: PlugzSandbox) -> None:
    async def run() -> None:
        hook = PlugzHook()
        try:
            for _ in range(5):
                await hook.aget_pin_status()
        finally:
            await hook.aclose()

    asyncio.run(run())
    assert sandbox.connections_accepted == 1


FAULTS = [
    pytest.param(Fault.status(503), PlugzServerError, id="503"),
    pytest.param(Fault.status(500, body={"error": "internal"}), PlugzServerError, id="500"),
    pytest.param(Fault.html(502), PlugzServerError, id="502-html"),
    pytest.param(Fault.status(429, headers={"Retry-After": "3"}), PlugzRateLimitedError, id="429"),
    pytest.param(Fault.malformed(), PlugzMalformedResponseError, id="truncated-json"),
    pytest.param(Fault.html(200), PlugzMalformedResponseError, id="200-html"),
    pytest.param(
        Fault.status(200, body={"success": True, "hasCode": "true"}),
        PlugzMalformedResponseError,
        id="str-bool",
    ),
    pytest.param(
        Fault.status(200, body={"error": "null not allowed"}), PlugzAuthenticationError, id="200-error"
    ),
    pytest.param(Fault.drop(), PlugzConnectionError, id="dropped"),
    pytest.param(Fault.redirect("http://127.0.0.2:1/elsewhere"), PlugzRedirectError, id="redirect"),
]


RETRIED = (PlugzServerError, PlugzRateLimitedError, PlugzConnectionError)


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(("fault", "error_class"), FAULTS)
def test_faults(
    sandbox: PlugzSandbox,
    transport: str,
    fault: Fault,
    error_class: type[PlugzError],
    retry_sleeps: list[float],
) -> None:
    sandbox.inject(fault, times=4)  # as often as the default policy tries
    with pytest.raises(error_class) as info:
        pin_status(transport)
    assert type(info.value) is error_class
    for secret in (INSTANCE_TOKEN, CLIENT_TOKEN, INSTANCE_ID):
        assert secret not in str(info.value)
    retried = error_class in RETRIED and fault.code != 500  # 500 is transient but not retried
    assert sandbox.request_count == (4 if retried else 1)  # redirects are never followed
    assert len(retry_sleeps) == (3 if retried else 0)
    if error_class is PlugzRateLimitedError:
        assert info.value.retry_after == 3.0  # type: ignore[attr-defined]
        assert retry_sleeps == [3.0, 3.0, 3.0]  # Retry-After honoured


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_one_fault_is_retried_away(sandbox: PlugzSandbox, transport: str) -> None:
    sandbox.inject(Fault.status(503))
    sandbox.inject(Fault.drop())
    sandbox.set_has_code(INSTANCE_ID, True)
    assert pin_status(transport) == PinStatus(has_code=True)
    assert sandbox.request_count == 3


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_read_timeout(sandbox: PlugzSandbox, monkeypatch: pytest.MonkeyPatch, transport: str) -> None:
    set_connection(monkeypatch, sandbox, extra={"read_timeout": 0.05, "max_attempts": 2})
    sandbox.inject(Fault.slow(0.3), times=2)
    with pytest.raises(PlugzTimeoutError, match="waiting for the answer"):
        pin_status(transport)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_connection_refused(sandbox: PlugzSandbox, monkeypatch: pytest.MonkeyPatch, transport: str) -> None:
    set_connection(monkeypatch, sandbox, host="http://127.0.0.1:1")
    with pytest.raises(PlugzConnectionError) as info:
        pin_status(transport)
    assert "no usable answer" in str(info.value)
    assert INSTANCE_TOKEN not in str(info.value)


SERVER_SIDE = [
    pytest.param(
        {"extra": {"client_token": "WRONG-CLIENT-TOKEN-1234"}}, None, PlugzAuthenticationError, id="wrong-ct"
    ),
    pytest.param({"login": "UNKNOWN-INSTANCE-0001"}, None, PlugzNotFoundError, id="unknown-instance"),
    pytest.param({"password": "WRONG-TOKEN-00000001"}, None, PlugzNotFoundError, id="token-mismatch"),
    pytest.param({}, {"expired": True}, PlugzSubscriptionError, id="expired"),
    pytest.param({}, {"kind": "web"}, PlugzInstanceNotSupportedError, id="web-instance"),
]


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(("conn_changes", "instance", "error_class"), SERVER_SIDE)
def test_server_side_refusals(
    sandbox: PlugzSandbox,
    monkeypatch: pytest.MonkeyPatch,
    transport: str,
    conn_changes: dict[str, Any],
    instance: dict[str, Any] | None,
    error_class: type[PlugzError],
) -> None:
    if instance is not None:
        sandbox.remove_instance(INSTANCE_ID)
        sandbox.add_instance(INSTANCE_ID, INSTANCE_TOKEN, **instance)
    set_connection(monkeypatch, sandbox, **conn_changes)
    with pytest.raises(error_class) as info:
        pin_status(transport)
    assert type(info.value) is error_class
    text = str(info.value)
    for secret in (INSTANCE_TOKEN, CLIENT_TOKEN, "WRONG-CLIENT-TOKEN-1234", "WRONG-TOKEN-00000001"):
        assert secret not in text


def test_fixtures_point_plugz_default_at_the_sandbox(plugz_connection: PlugzSandbox) -> None:
    assert PlugzHook().get_pin_status().has_code is False
    assert PlugzHook().test_connection()[0] is True
    assert plugz_connection.request_count == 2


def test_uri_connection_reaches_the_sandbox(sandbox: PlugzSandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_PLUGZ_URI", sandbox.connection_uri(INSTANCE_ID))
    assert PlugzHook("plugz_uri").get_pin_status().has_code is False


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_http_client_logs_hold_no_credentials(
    sandbox: PlugzSandbox, transport: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # httpx logs every request URL at INFO and urllib3 at DEBUG; the token is in that URL.
    # Whatever a deployment's logging config says, let them speak here.
    for name in ("httpx", "urllib3.connectionpool"):
        monkeypatch.setattr(logging.getLogger(name), "propagate", True)
        monkeypatch.setattr(logging.getLogger(name), "disabled", False)
        caplog.set_level(logging.DEBUG, logger=name)
    caplog.set_level(logging.DEBUG)
    pin_status(transport)
    assert "/token/***/security/two-fa-code" in caplog.text  # the client did log the request
    assert INSTANCE_TOKEN not in caplog.text
    assert INSTANCE_ID not in caplog.text
