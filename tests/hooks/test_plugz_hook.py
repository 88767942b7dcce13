"""PlugzHook over a faked HTTP boundary (requests_mock): request shape, every error, every bad body."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
import requests
import requests_mock as rm

from airflow_provider_plugz.exceptions import (
    PlugzAuthenticationError,
    PlugzConfigurationError,
    PlugzConnectionError,
    PlugzConnectTimeoutError,
    PlugzError,
    PlugzMalformedResponseError,
    PlugzReadTimeoutError,
    PlugzTLSError,
)
from airflow_provider_plugz.hooks.plugz import PinStatus, PlugzHook
from tests.conftest import CLIENT_TOKEN, INSTANCE_ID, INSTANCE_TOKEN, SECRETS, assert_no_secrets

if TYPE_CHECKING:
    from collections.abc import Iterator

URL = f"https://api.plugzapi.com.br/instances/{INSTANCE_ID}/token/{INSTANCE_TOKEN}/security/two-fa-code"
CONN = {
    "conn_type": "plugz",
    "login": INSTANCE_ID,
    "password": INSTANCE_TOKEN,
    "extra": {"client_token": CLIENT_TOKEN},
}


@pytest.fixture(autouse=True)
def _plugz_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_PLUGZ_DEFAULT", json.dumps(CONN))


@pytest.fixture
def mock() -> Iterator[rm.Mocker]:
    with rm.Mocker() as mocker:
        yield mocker


def assert_no_secret(text: str) -> None:
    assert_no_secrets(text, secrets=(*SECRETS, INSTANCE_ID, URL))


@pytest.mark.parametrize("has_code", [pytest.param(True, id="pin-set"), pytest.param(False, id="no-pin")])
def test_get_pin_status(mock: rm.Mocker, has_code: bool) -> None:
    mock.get(URL, json={"success": True, "hasCode": has_code})
    assert PlugzHook().get_pin_status() == PinStatus(has_code=has_code)


def test_request_shape(mock: rm.Mocker) -> None:
    mock.get(URL, json={"success": True, "hasCode": True})
    PlugzHook().get_pin_status()
    request = mock.last_request
    assert request.method == "GET"
    assert request.url == URL
    assert request.headers["Client-Token"] == CLIENT_TOKEN
    assert request.headers["User-Agent"].startswith("airflow-provider-plugz/")
    assert request.body is None
    assert "Content-Type" not in request.headers
    assert request.timeout == (5.0, 30.0)


def test_timeouts_from_connection(mock: rm.Mocker, monkeypatch: pytest.MonkeyPatch) -> None:
    extra = {"client_token": CLIENT_TOKEN, "connect_timeout": 1.5, "read_timeout": "4"}
    monkeypatch.setenv("AIRFLOW_CONN_PLUGZ_DEFAULT", json.dumps({**CONN, "extra": extra}))
    mock.get(URL, json={"success": True, "hasCode": True})
    PlugzHook().get_pin_status()
    assert mock.last_request.timeout == (1.5, 4.0)


def test_credentials_in_path_verbatim(mock: rm.Mocker, monkeypatch: pytest.MonkeyPatch) -> None:
    # Only URL-unreserved characters are accepted, so the path holds them as they are.
    monkeypatch.setenv(
        "AIRFLOW_CONN_PLUGZ_DEFAULT", json.dumps({**CONN, "login": "inst.1_x~Y-z", "password": "T0k~en.1_-"})
    )
    url = "https://api.plugzapi.com.br/instances/inst.1_x~Y-z/token/T0k~en.1_-/security/two-fa-code"
    mock.get(url, json={"success": True, "hasCode": False})
    assert PlugzHook().get_pin_status().has_code is False
    assert mock.last_request.url == url


def test_one_session_reused_and_connection_read_once(mock: rm.Mocker) -> None:
    mock.get(URL, json={"success": True, "hasCode": True})
    hook = PlugzHook()
    session = hook.get_conn()
    hook.get_pin_status()
    hook.get_pin_status()
    assert hook.get_conn() is session
    assert mock.call_count == 2


def test_hook_init_reads_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_PLUGZ_DEFAULT")
    hook = PlugzHook("no_such_connection")  # building it must not look the connection up
    assert repr(hook) == "PlugzHook(plugz_conn_id='no_such_connection')"


def test_answers_go_through_the_response_checks(mock: rm.Mocker) -> None:
    """The whole table of answers lives in test_protocol.py (no HTTP); here, that the hook uses it."""
    mock.get(URL, status_code=403, json={"error": f"Client-Token {CLIENT_TOKEN} not allowed"})
    with pytest.raises(PlugzAuthenticationError) as info:
        PlugzHook().get_pin_status()
    assert info.value.server_message == "Client-Token *** not allowed"
    assert info.value.attempts == 1
    assert mock.call_count == 1
    mock.get(URL, status_code=200, content=b"<!DOCTYPE html><html>login</html>")
    with pytest.raises(PlugzMalformedResponseError, match="it is an HTML page"):
        PlugzHook().get_pin_status()


TRANSPORT_CASES = [
    pytest.param(requests.ConnectTimeout, PlugzConnectTimeoutError, "connecting", id="connect-timeout"),
    pytest.param(requests.ReadTimeout, PlugzReadTimeoutError, "waiting for the answer", id="read-timeout"),
    pytest.param(requests.ConnectionError, PlugzConnectionError, "no usable answer", id="connection-error"),
    pytest.param(requests.exceptions.SSLError, PlugzTLSError, "TLS", id="ssl"),
    pytest.param(requests.exceptions.ChunkedEncodingError, PlugzConnectionError, "no usable", id="chunked"),
    pytest.param(requests.exceptions.InvalidURL, PlugzConfigurationError, "cannot form", id="invalid-url"),
    # Our own headers are validated before sending: an invalid header is the answer's.
    pytest.param(
        requests.exceptions.InvalidHeader, PlugzConnectionError, "no usable", id="bad-answer-header"
    ),
]


@pytest.mark.parametrize(("raised", "error_class", "fragment"), TRANSPORT_CASES)
def test_transport_errors_are_wrapped_without_the_url(
    mock: rm.Mocker, raised: type[Exception], error_class: type[PlugzError], fragment: str
) -> None:
    # requests' own texts quote the URL, which holds the instance token.
    mock.get(
        URL, exc=raised(f"HTTPSConnectionPool: Max retries exceeded with url: {URL} ([Errno 111] refused)")
    )
    with pytest.raises(error_class) as info:
        PlugzHook().get_pin_status()
    assert type(info.value) is error_class
    message = str(info.value)
    assert fragment in message
    assert raised.__name__ in message
    assert_no_secret(message)
    # The URL-bearing original must not ride along to be printed in a traceback.
    assert info.value.__cause__ is None
    assert info.value.__context__ is None


STATUS_URL = URL.replace("/security/two-fa-code", "/status")


def test_test_connection_success(mock: rm.Mocker) -> None:
    mock.get(STATUS_URL, json={"connected": True, "session": True, "smartphoneConnected": True})
    mock.get(URL, json={"success": True, "hasCode": False})
    ok, message = PlugzHook().test_connection()
    assert ok is True
    assert "the number is connected (phone online)" in message
    assert "has NO PIN set" in message
    assert "https://api.plugzapi.com.br" in message


@pytest.mark.parametrize(
    ("status", "body", "fragment"),
    [
        pytest.param(403, {"error": f"Client-Token {CLIENT_TOKEN} not allowed"}, "Client-Token", id="auth"),
        pytest.param(404, {"error": "Instance not found"}, "Instance ID", id="not-found"),
        pytest.param(503, None, "try again later", id="unavailable"),
    ],
)
def test_test_connection_failure_says_what_to_do(
    mock: rm.Mocker, status: int, body: dict[str, str] | None, fragment: str
) -> None:
    mock.get(STATUS_URL, status_code=status, json=body)  # the first call the test makes
    ok, message = PlugzHook().test_connection()
    assert ok is False
    assert fragment in message
    assert "instance status check" in message
    assert_no_secret(message)


def test_test_connection_bad_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_PLUGZ_DEFAULT", json.dumps({**CONN, "extra": {}}))
    ok, message = PlugzHook().test_connection()
    assert ok is False
    assert message.startswith("PlugzConfigurationError:")
    assert "client_token" in message
