"""PlugzHook over a faked HTTP boundary (requests_mock): request shape, every error, every bad body."""

from __future__ import annotations

import inspect
import json
import ssl
from typing import TYPE_CHECKING, Any

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
from airflow_provider_plugz.transports.failures import TransportFailure, classify
from airflow_provider_plugz.transports.sync_requests import REQUESTS_FAILURES
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


# --- the transport tables: every exception class each library defines has its row ---------------

F = TransportFailure


def _exception_classes(*modules: Any) -> set[type[BaseException]]:
    found: set[type[BaseException]] = set()
    for module in modules:
        for _, value in inspect.getmembers(module, inspect.isclass):
            own = value.__module__.split(".")[0] == module.__name__.split(".")[0]
            if own and issubclass(value, BaseException) and not issubclass(value, Warning):
                found.add(value)
    return found


def _instance(cls: type[BaseException]) -> BaseException:
    """An instance whatever the class's own __init__ wants (only its type matters here)."""
    exc = cls.__new__(cls)
    BaseException.__init__(exc, "boom")
    return exc


# What each class the sync transport can raise must map to (requests, urllib3, http.client).
REQUESTS_EXPECTED: dict[str, TransportFailure] = {
    "requests.exceptions.ConnectTimeout": F.CONNECT_TIMEOUT,
    "requests.exceptions.ReadTimeout": F.READ_TIMEOUT,
    "requests.exceptions.Timeout": F.READ_TIMEOUT,
    "requests.exceptions.SSLError": F.TLS,
    "requests.exceptions.InvalidURL": F.INVALID_REQUEST,
    "requests.exceptions.InvalidSchema": F.INVALID_REQUEST,
    "requests.exceptions.MissingSchema": F.INVALID_REQUEST,
    "requests.exceptions.URLRequired": F.INVALID_REQUEST,
    "requests.exceptions.InvalidProxyURL": F.INVALID_REQUEST,
    "urllib3.exceptions.NewConnectionError": F.CONNECT,
    "urllib3.exceptions.NameResolutionError": F.CONNECT,
    "urllib3.exceptions.ConnectTimeoutError": F.CONNECT_TIMEOUT,
    "urllib3.exceptions.SSLError": F.TLS,
    "urllib3.exceptions.TimeoutError": F.READ_TIMEOUT,
    "urllib3.exceptions.ReadTimeoutError": F.READ_TIMEOUT,
    "urllib3.exceptions.LocationValueError": F.INVALID_REQUEST,
    "urllib3.exceptions.LocationParseError": F.INVALID_REQUEST,
    "urllib3.exceptions.URLSchemeUnknown": F.INVALID_REQUEST,
    "urllib3.exceptions.ProxySchemeUnknown": F.INVALID_REQUEST,
    "urllib3.exceptions.ProxySchemeUnsupported": F.INVALID_REQUEST,
}
HTTPX_EXPECTED: dict[str, TransportFailure] = {
    "httpx.ConnectTimeout": F.CONNECT_TIMEOUT,
    "httpx.ReadTimeout": F.READ_TIMEOUT,
    "httpx.WriteTimeout": F.READ_TIMEOUT,
    "httpx.PoolTimeout": F.READ_TIMEOUT,
    "httpx.TimeoutException": F.READ_TIMEOUT,
    "httpx.ConnectError": F.CONNECT,
    "httpx.UnsupportedProtocol": F.INVALID_REQUEST,
    "httpx.LocalProtocolError": F.INVALID_REQUEST,
    "httpx.InvalidURL": F.INVALID_REQUEST,
}


def _name(cls: type[BaseException]) -> str:
    module = cls.__module__.replace("httpx._exceptions", "httpx")
    return f"{module}.{cls.__qualname__}"


def test_every_requests_urllib3_and_http_client_exception_is_mapped() -> None:
    import http.client

    import urllib3

    classes = _exception_classes(requests.exceptions, urllib3.exceptions, http.client)
    assert len(classes) > 40  # the enumeration found the libraries' classes
    for cls in classes:
        assert any(issubclass(cls, row) for row, _ in REQUESTS_FAILURES), f"{_name(cls)} has no row"
        expected = REQUESTS_EXPECTED.get(_name(cls), F.NETWORK)
        assert classify(REQUESTS_FAILURES, _instance(cls)) is expected, _name(cls)
    assert set(REQUESTS_EXPECTED) <= {_name(cls) for cls in classes}  # no stale expectation


def test_every_httpx_exception_is_mapped() -> None:
    import httpx

    from airflow_provider_plugz.transports.async_httpx import httpx_failures

    table = httpx_failures()
    classes = {
        cls
        for cls in _exception_classes(httpx)
        if issubclass(cls, (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError))
    }
    assert len(classes) > 20
    for cls in classes:
        expected = HTTPX_EXPECTED.get(_name(cls), F.NETWORK)
        assert classify(table, _instance(cls)) is expected, _name(cls)
    assert set(HTTPX_EXPECTED) <= {_name(cls) for cls in classes}


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        # requests wraps urllib3's reason: the reason decides whether the request left.
        pytest.param(
            lambda: requests.ConnectionError(_max_retry(urllib3_error("NewConnectionError"))),
            F.CONNECT,
            id="requests-refused",
        ),
        pytest.param(
            lambda: requests.ConnectionError(_max_retry(urllib3_error("NameResolutionError"))),
            F.CONNECT,
            id="requests-dns",
        ),
        pytest.param(
            lambda: requests.ConnectionError(_max_retry(urllib3_error("ProtocolError"))),
            F.NETWORK,
            id="requests-dropped",
        ),
        pytest.param(
            lambda: requests.ConnectTimeout(_max_retry(urllib3_error("ConnectTimeoutError"))),
            F.CONNECT_TIMEOUT,
            id="requests-connect-timeout",
        ),
        # TLS by the cause chain, never by the message text.
        pytest.param(
            lambda: _caused_by(requests.ConnectionError("no 'SSL' here"), ssl.SSLError()),
            F.TLS,
            id="tls-cause",
        ),
        pytest.param(
            lambda: requests.ConnectionError("[SSL: CERTIFICATE_VERIFY_FAILED]"),
            F.NETWORK,
            id="ssl-text-is-not-tls",
        ),
    ],
)
def test_requests_wrappers_and_tls_by_cause(make: Any, expected: TransportFailure) -> None:
    assert classify(REQUESTS_FAILURES, make()) is expected


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        pytest.param(
            lambda: _caused_by(_httpx("ConnectError"), ssl.SSLCertVerificationError()), F.TLS, id="tls"
        ),
        pytest.param(
            lambda: _httpx("ConnectError", "[SSL] in the text only"), F.CONNECT, id="ssl-text-is-not-tls"
        ),
    ],
)
def test_httpx_tls_by_cause(make: Any, expected: TransportFailure) -> None:
    from airflow_provider_plugz.transports.async_httpx import httpx_failures

    assert classify(httpx_failures(), make()) is expected


def urllib3_error(name: str) -> BaseException:
    import urllib3

    return _instance(getattr(urllib3.exceptions, name))


def _max_retry(reason: BaseException) -> BaseException:
    import urllib3

    return urllib3.exceptions.MaxRetryError(None, "/x", reason)  # type: ignore[arg-type]


def _httpx(name: str, text: str = "boom") -> BaseException:
    import httpx

    return getattr(httpx, name)(text)  # type: ignore[no-any-return]


def _caused_by(exc: BaseException, cause: BaseException) -> BaseException:
    exc.__cause__ = cause
    return exc
