"""PlugzHook over a faked HTTP boundary (requests_mock): request shape, every error, every bad body."""

from __future__ import annotations

import inspect
import json
import ssl
from typing import TYPE_CHECKING, Any

import pytest
import requests
import requests_mock as rm

from airflow_provider_plugz._protocol import TransportFailure
from airflow_provider_plugz.exceptions import (
    PlugzAuthenticationError,
    PlugzBadRequestError,
    PlugzConfigurationError,
    PlugzConnectionError,
    PlugzConnectTimeoutError,
    PlugzError,
    PlugzInstanceNotSupportedError,
    PlugzMalformedResponseError,
    PlugzMethodNotAllowedError,
    PlugzNotFoundError,
    PlugzRateLimitedError,
    PlugzReadTimeoutError,
    PlugzRedirectError,
    PlugzServerError,
    PlugzSubscriptionError,
    PlugzTLSError,
    PlugzTransientError,
    PlugzUnsupportedMediaTypeError,
)
from airflow_provider_plugz.hooks.plugz import REQUESTS_FAILURES, PinStatus, PlugzHook, classify
from tests.conftest import CLIENT_TOKEN, INSTANCE_ID, INSTANCE_TOKEN, SECRETS

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
    for secret in (*SECRETS, INSTANCE_ID, URL):
        assert secret not in text


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


STATUS_CASES = [
    pytest.param(
        400, {"error": "null not allowed"}, PlugzAuthenticationError, "null not allowed", id="400-no-ct"
    ),
    pytest.param(
        400, {"error": "your client-token is not configured"}, PlugzAuthenticationError, "", id="400-ct-unset"
    ),
    pytest.param(
        403,
        {"error": f"Client-Token {CLIENT_TOKEN} not allowed"},
        PlugzAuthenticationError,
        "",
        id="403-echo",
    ),
    pytest.param(
        403, {"error": "203.0.113.9 not allowed"}, PlugzAuthenticationError, "not allowed", id="403-ip"
    ),
    pytest.param(401, None, PlugzAuthenticationError, "HTTP 401", id="401-empty"),
    pytest.param(404, {"error": "Instance not found"}, PlugzNotFoundError, "Instance not found", id="404"),
    pytest.param(400, {"error": "Instance not found"}, PlugzNotFoundError, "Instance ID", id="400-not-found"),
    pytest.param(
        400,
        {"error": "To continue sending a message, you must subscribe to this instance again"},
        PlugzSubscriptionError,
        "Renew",
        id="400-expired",
    ),
    pytest.param(
        400,
        {"error": "This feature is only available for mobile instances"},
        PlugzInstanceNotSupportedError,
        "mobile",
        id="400-web-instance",
    ),
    pytest.param(400, {"error": "bad data"}, PlugzBadRequestError, "bad data", id="400-plain"),
    pytest.param(
        405,
        {"error": "NOT_FOUND", "message": "Unable to find matching target resource method"},
        PlugzMethodNotAllowedError,
        "GET",
        id="405",
    ),
    pytest.param(415, {"message": "Unsupported Media Type"}, PlugzUnsupportedMediaTypeError, "415", id="415"),
    pytest.param(418, {"error": "teapot"}, PlugzBadRequestError, "teapot", id="418-other-4xx"),
    pytest.param(408, None, PlugzServerError, "408", id="408"),
    pytest.param(429, {"error": "slow down"}, PlugzRateLimitedError, "slow down", id="429"),
    pytest.param(500, {"error": "boom"}, PlugzServerError, "boom", id="500"),
    pytest.param(502, "<html><h1>502 Bad Gateway</h1></html>", PlugzServerError, "HTTP 502", id="502-html"),
    pytest.param(503, None, PlugzServerError, "503", id="503-empty"),
    pytest.param(504, {"message": "upstream timeout"}, PlugzServerError, "upstream timeout", id="504"),
    pytest.param(
        200,
        {"error": "NOT_FOUND", "message": "Unable to find matching target resource method"},
        PlugzNotFoundError,
        "NOT_FOUND",
        id="200-not-found-body",
    ),
    pytest.param(200, {"error": "null not allowed"}, PlugzAuthenticationError, "null", id="200-no-ct"),
    pytest.param(200, {"error": "something odd"}, PlugzBadRequestError, "something odd", id="200-error"),
    pytest.param(302, None, PlugzRedirectError, "Redirects are not followed", id="302"),
    pytest.param(
        301,
        {"error": f"moved /instances/{INSTANCE_ID}/token/{INSTANCE_TOKEN}/x"},
        PlugzRedirectError,
        "",
        id="301",
    ),
]


@pytest.mark.parametrize(("status", "body", "error_class", "fragment"), STATUS_CASES)
def test_error_statuses(
    mock: rm.Mocker, status: int, body: Any, error_class: type[PlugzError], fragment: str
) -> None:
    kwargs: dict[str, Any] = {"status_code": status}
    if isinstance(body, dict):
        kwargs["json"] = body
    elif isinstance(body, str):
        kwargs.update(text=body, headers={"Content-Type": "text/html"})
    if 300 <= status < 400:
        kwargs.setdefault("headers", {})["Location"] = f"https://elsewhere.example/{INSTANCE_TOKEN}"
    mock.get(URL, **kwargs)
    with pytest.raises(error_class) as info:
        PlugzHook().get_pin_status()
    assert type(info.value) is error_class
    message = str(info.value)
    assert f"HTTP {status}" in message
    assert fragment in message
    assert "'plugz_default'" in message
    assert info.value.http_status == status
    assert_no_secret(message)
    assert_no_secret(repr(info.value))
    assert_no_secret(str(info.value.server_message))
    # Redirects are never followed; only 429/502/503/504 are retried (4 attempts by default).
    retried = status in (429, 502, 503, 504)
    assert mock.call_count == (4 if retried else 1)
    assert info.value.attempts == mock.call_count
    assert ("gave up after 4 attempt(s): no attempts left" in message) is retried


def test_echoed_client_token_is_redacted(mock: rm.Mocker) -> None:
    mock.get(URL, status_code=403, json={"error": f"Client-Token {CLIENT_TOKEN} not allowed"})
    with pytest.raises(PlugzAuthenticationError) as info:
        PlugzHook().get_pin_status()
    assert info.value.server_message == "Client-Token *** not allowed"


def test_echo_of_a_different_token_is_redacted_too(mock: rm.Mocker) -> None:
    mock.get(URL, status_code=403, json={"error": "Client-Token SOMEOTHERTOKEN123 not allowed"})
    with pytest.raises(PlugzAuthenticationError) as info:
        PlugzHook().get_pin_status()
    assert "SOMEOTHERTOKEN123" not in str(info.value)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param({"Retry-After": "7"}, 7.0, id="seconds"),
        pytest.param({}, None, id="absent"),
        pytest.param({"Retry-After": "soon"}, None, id="garbage"),
    ],
)
def test_rate_limit_retry_after(mock: rm.Mocker, headers: dict[str, str], expected: float | None) -> None:
    mock.get(URL, status_code=429, headers=headers)
    with pytest.raises(PlugzRateLimitedError) as info:
        PlugzHook().get_pin_status()
    assert info.value.retry_after == expected
    assert isinstance(info.value, PlugzTransientError)


BODY_CASES = [
    pytest.param(b"", "empty", id="empty"),
    pytest.param(b"   ", "empty", id="blank"),
    pytest.param(b"<!DOCTYPE html><html>login</html>", "HTML", id="html"),
    pytest.param(b'{"success": true, "hasCo', "not valid JSON", id="truncated-json"),
    pytest.param(b"not json at all", "not valid JSON", id="text"),
    pytest.param(b"[true]", "not an object", id="array"),
    pytest.param(b'"true"', "not an object", id="string"),
    pytest.param(b"null", "not an object", id="null"),
    pytest.param(b'{"success": true}', "no 'hasCode'", id="missing-hasCode"),
    pytest.param(b'{"success": true, "hasCode": "true"}', "not a boolean", id="string-hasCode"),
    pytest.param(b'{"success": true, "hasCode": 1}', "not a boolean", id="int-hasCode"),
    pytest.param(b'{"success": true, "hasCode": null}', "not a boolean", id="null-hasCode"),
    pytest.param(b'{"success": false}', "'success' is false, not true", id="success-false"),
    pytest.param(b'{"success": false, "hasCode": true}', "'success' is false", id="success-false-with-code"),
    pytest.param(b"\xff\xfe\x00garbage", "not valid JSON", id="binary"),
    pytest.param(b"[" * 100_000, "not valid JSON", id="deeply-nested"),
]


@pytest.mark.parametrize(("body", "fragment"), BODY_CASES)
def test_malformed_bodies(mock: rm.Mocker, body: bytes, fragment: str) -> None:
    mock.get(URL, status_code=200, content=body)
    with pytest.raises(PlugzMalformedResponseError) as info:
        PlugzHook().get_pin_status()
    assert fragment in str(info.value)
    assert_no_secret(str(info.value))


def test_oversized_body(mock: rm.Mocker) -> None:
    padding = "x" * (1024 * 1024)
    mock.get(URL, status_code=200, text=json.dumps({"success": True, "hasCode": True, "pad": padding}))
    with pytest.raises(PlugzMalformedResponseError, match="larger than 1048576 bytes"):
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


def test_test_connection_success(mock: rm.Mocker) -> None:
    mock.get(URL, json={"success": True, "hasCode": False})
    ok, message = PlugzHook().test_connection()
    assert ok is True
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
    mock.get(URL, status_code=status, json=body)
    ok, message = PlugzHook().test_connection()
    assert ok is False
    assert fragment in message
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

    from airflow_provider_plugz.hooks.plugz import _httpx_failures

    table = _httpx_failures()
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
    from airflow_provider_plugz.hooks.plugz import _httpx_failures

    assert classify(_httpx_failures(), make()) is expected


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
