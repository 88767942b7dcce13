"""Response checking as one pure table: status, headers and body in, a result or the exact
error class out, with the advice and redaction each message carries. No HTTP here: the fault
matrix (test_faults.py) runs the same rules over real connections, through every runner."""

from __future__ import annotations

import json
from typing import Any

import pytest
from requests.structures import CaseInsensitiveDict

from airflow_provider_plugz._protocol import MAX_BODY_BYTES, PlugzRequest, read_answer
from airflow_provider_plugz.connection import PlugzConfig
from airflow_provider_plugz.endpoints import PIN_STATUS, PinStatus
from airflow_provider_plugz.exceptions import (
    PlugzAuthenticationError,
    PlugzBadRequestError,
    PlugzError,
    PlugzInstanceNotSupportedError,
    PlugzMalformedResponseError,
    PlugzMethodNotAllowedError,
    PlugzNotFoundError,
    PlugzRateLimitedError,
    PlugzRedirectError,
    PlugzServerError,
    PlugzSubscriptionError,
    PlugzUnsupportedMediaTypeError,
)
from tests.conftest import CLIENT_TOKEN, INSTANCE_ID, INSTANCE_TOKEN, SECRETS, assert_no_secrets

CONFIG = PlugzConfig(
    conn_id="plugz_default",
    base_url="https://api.plugzapi.com.br",
    instance_id=INSTANCE_ID,
    instance_token=INSTANCE_TOKEN,
    client_token=CLIENT_TOKEN,
)
URL = f"https://api.plugzapi.com.br/instances/{INSTANCE_ID}/token/{INSTANCE_TOKEN}/security/two-fa-code"
REQUEST = PlugzRequest(endpoint=PIN_STATUS, url=URL, headers={})


def answer(status: int, body: Any = None, headers: dict[str, str] | None = None) -> PinStatus:
    """What the hook does with a transport's answer, without the transport."""
    all_headers = CaseInsensitiveDict(headers or {})
    if isinstance(body, (dict, list)):
        raw = json.dumps(body).encode()
        all_headers.setdefault("Content-Type", "application/json")
    elif isinstance(body, str):
        raw = body.encode()
        all_headers.setdefault("Content-Type", "text/html")
    else:
        raw = body or b""
    result: PinStatus = read_answer(CONFIG, REQUEST, (status, all_headers, raw, None))
    return result


def assert_no_secret(text: str) -> None:
    assert_no_secrets(text, secrets=(*SECRETS, INSTANCE_ID, URL))


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


@pytest.mark.parametrize(("status", "body", "error_class", "fragment"), STATUS_CASES)
def test_error_statuses(status: int, body: Any, error_class: type[PlugzError], fragment: str) -> None:
    headers = {"Location": f"https://elsewhere.example/{INSTANCE_TOKEN}"} if 300 <= status < 400 else None
    with pytest.raises(error_class) as info:
        answer(status, body, headers)
    assert type(info.value) is error_class
    message = str(info.value)
    assert f"HTTP {status}" in message
    assert fragment in message
    assert "'plugz_default'" in message
    assert message.endswith(error_class.advice)  # every message ends with its class's advice
    assert info.value.http_status == status
    assert_no_secret(message)
    assert_no_secret(repr(info.value))
    assert_no_secret(str(info.value.server_message))


@pytest.mark.parametrize(
    ("body", "echoed"),
    [
        pytest.param({"error": f"Client-Token {CLIENT_TOKEN} not allowed"}, CLIENT_TOKEN, id="ours"),
        pytest.param(
            {"error": "Client-Token SOMEOTHERTOKEN123 not allowed"}, "SOMEOTHERTOKEN123", id="another"
        ),
    ],
)
def test_an_echoed_client_token_is_redacted(body: dict[str, str], echoed: str) -> None:
    with pytest.raises(PlugzAuthenticationError) as info:
        answer(403, body)
    assert info.value.server_message == "Client-Token *** not allowed"
    assert echoed not in str(info.value)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param({"Retry-After": "7"}, 7.0, id="seconds"),
        pytest.param({}, None, id="absent"),
        pytest.param({"Retry-After": "soon"}, None, id="garbage"),
        pytest.param({"Retry-After": "\u00b2"}, None, id="superscript-two"),
    ],
)
def test_rate_limit_retry_after(headers: dict[str, str], expected: float | None) -> None:
    with pytest.raises(PlugzRateLimitedError) as info:
        answer(429, None, headers)
    assert info.value.retry_after == expected


@pytest.mark.parametrize(("body", "fragment"), BODY_CASES)
def test_malformed_bodies(body: bytes, fragment: str) -> None:
    with pytest.raises(PlugzMalformedResponseError) as info:
        answer(200, body)
    assert fragment in str(info.value)
    assert str(info.value).endswith(PlugzMalformedResponseError.advice)
    assert_no_secret(str(info.value))


@pytest.mark.parametrize(
    ("body", "has_code"),
    [
        pytest.param({"success": True, "hasCode": True}, True, id="pin"),
        pytest.param({"hasCode": False}, False, id="no-success-key"),
        pytest.param(
            {"success": True, "hasCode": False, "message": "ok", "error": None}, False, id="null-error"
        ),
    ],
)
def test_successes(body: dict[str, Any], has_code: bool) -> None:
    assert answer(200, body) == PinStatus(has_code=has_code)


def test_oversized_body() -> None:
    body = json.dumps({"success": True, "hasCode": True, "pad": "x" * MAX_BODY_BYTES}).encode()
    with pytest.raises(PlugzMalformedResponseError, match="larger than 1048576 bytes"):
        answer(200, body)
