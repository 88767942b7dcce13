"""The transports' exception tables and the one lookup (``transports/failures.py``): every
exception class requests, urllib3, http.client and httpx define maps to what went wrong, by type
and by cause chain, never by message text; and the texts :func:`transport_error` writes."""

from __future__ import annotations

import inspect
import ssl
from typing import Any

import pytest
import requests

from airflow_provider_plugz._protocol import PlugzRequest
from airflow_provider_plugz.connection import PlugzConfig
from airflow_provider_plugz.endpoints import PIN_STATUS
from airflow_provider_plugz.transports.failures import TransportFailure, classify, transport_error
from airflow_provider_plugz.transports.sync_requests import REQUESTS_FAILURES
from tests.conftest import CLIENT_TOKEN, INSTANCE_ID, INSTANCE_TOKEN

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


# --- the deadline's message -------------------------------------------------------------------

CONFIG = PlugzConfig(
    conn_id="plugz_default",
    base_url="https://api.plugzapi.com.br",
    instance_id=INSTANCE_ID,
    instance_token=INSTANCE_TOKEN,
    client_token=CLIENT_TOKEN,
    total_timeout=0.5,
)
REQUEST = PlugzRequest(endpoint=PIN_STATUS, url="https://api.plugzapi.com.br/", headers={})


@pytest.mark.parametrize(
    ("failure", "elapsed", "says"),
    [
        pytest.param(TransportFailure.DEADLINE, 0.5, "deadline, stopped after 0.50 s (", id="exact"),
        pytest.param(TransportFailure.DEADLINE, 0.5001, "deadline, stopped after 0.51 s (", id="rounded-up"),
        pytest.param(TransportFailure.DEADLINE, 9.1, "deadline, stopped after 9.10 s (", id="far-past"),
        pytest.param(
            TransportFailure.DEADLINE_CONNECTING,
            0.5049,
            "(total_timeout), stopped after 0.51 s; the request was not sent",
            id="before-sending",
        ),
    ],
)
def test_a_deadline_message_never_understates_the_time_taken(
    failure: TransportFailure, elapsed: float, says: str
) -> None:
    error = transport_error(CONFIG, REQUEST, failure, TimeoutError("deadline"), elapsed=elapsed)
    assert says in str(error)
    assert "within its 0.5 s deadline" in str(error)
