"""Property-based tests of answers: any status, headers and body in, a PinStatus or a PlugzError out.

First the transport-free response checking, then whole hostile answers (odd status lines,
headers, encodings, framing) written by the sandbox and read by both transports.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import re
import zlib
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from requests.structures import CaseInsensitiveDict

from airflow_provider_plugz._protocol import Answer, Malformed, check_response
from airflow_provider_plugz.connection import PlugzConfig
from airflow_provider_plugz.endpoints import DEVICE, PIN_STATUS, DeviceInfo, PinStatus
from airflow_provider_plugz.exceptions import PlugzAPIError, PlugzError, PlugzMalformedResponseError
from airflow_provider_plugz.hooks.plugz import PlugzHook
from airflow_provider_plugz.testing import Fault
from tests.conftest import CLIENT_TOKEN, INSTANCE_ID, INSTANCE_TOKEN

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_provider_plugz.testing import PlugzSandbox

CONFIG = PlugzConfig(
    conn_id="plugz_default",
    base_url="https://api.plugzapi.com.br",
    instance_id=INSTANCE_ID,
    instance_token=INSTANCE_TOKEN,
    client_token=CLIENT_TOKEN,
)

statuses = st.integers(min_value=100, max_value=599)
content_types = st.sampled_from(
    ["application/json", "text/html", "text/plain", "", "application/json; charset=utf-8"]
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
# Bodies shaped like the API's, with any value under its keys, secrets sprinkled in.
secrets = st.sampled_from([INSTANCE_TOKEN, CLIENT_TOKEN, f"Client-Token {CLIENT_TOKEN} not allowed"])
api_like = st.fixed_dictionaries(
    {},
    optional={
        "success": json_values,
        "hasCode": json_values,
        "error": json_values | secrets,
        "message": json_values | secrets,
    },
)


def parse(config: PlugzConfig, payload: dict[str, Any]) -> PinStatus:
    try:
        return PIN_STATUS.parse(Answer(payload, config.secrets))
    except Malformed as err:
        raise PlugzMalformedResponseError(str(err)) from None


def outcome(status: int, content_type: str, body: bytes) -> PinStatus | PlugzError:
    headers = CaseInsensitiveDict({"Content-Type": content_type})
    try:
        return parse(CONFIG, check_response(CONFIG, PIN_STATUS, status, headers, body))
    except PlugzError as err:
        return err


def assert_safe(result: PinStatus | PlugzError) -> None:
    assert isinstance(result, (PinStatus, PlugzError))
    if isinstance(result, PlugzError):
        for text in (str(result), repr(result), str(result.server_message)):
            assert INSTANCE_TOKEN not in text
            assert CLIENT_TOKEN not in text


@settings(max_examples=200, deadline=None)
@given(status=statuses, content_type=content_types, body=st.binary(max_size=512))
def test_any_bytes(status: int, content_type: str, body: bytes) -> None:
    assert_safe(outcome(status, content_type, body))


@settings(max_examples=200, deadline=None)
@given(status=statuses, body=json_values)
def test_any_json(status: int, body: Any) -> None:
    assert_safe(outcome(status, "application/json", json.dumps(body).encode()))


@settings(max_examples=200, deadline=None)
@given(status=statuses, body=api_like)
def test_api_shaped_json(status: int, body: dict[str, Any]) -> None:
    result = outcome(status, "application/json", json.dumps(body).encode())
    assert_safe(result)
    # Success only for a 2xx with a real boolean hasCode, no error text and success not false.
    if isinstance(result, PinStatus):
        assert 200 <= status < 300
        assert result.has_code is body["hasCode"]
        assert body.get("error") in (None, False, "")
        assert body.get("success") is not False


@settings(max_examples=200, deadline=None)
@given(has_code=json_values.filter(lambda v: not isinstance(v, bool)))
def test_has_code_must_be_a_real_boolean(has_code: Any) -> None:
    body = json.dumps({"success": True, "hasCode": has_code}).encode()
    assert isinstance(outcome(200, "application/json", body), PlugzMalformedResponseError)


# --- hostile headers and whole hostile answers ---------------------------------------------------

header_text = st.text(max_size=40) | st.sampled_from(
    ["\u00b2", "\u0663", "9" * 5000, "Fri, 31 Dec 9999 23:59:59 GMT", "gzip, gzip", "br", "deflate", "x-gzip"]
)
hostile_headers = st.fixed_dictionaries(
    {},
    optional={
        "Retry-After": header_text,
        "Content-Type": header_text,
        "Content-Encoding": header_text,
        "Location": header_text,
    },
)


@settings(max_examples=300, deadline=None)
@given(status=statuses | st.sampled_from([429, 503, 301]), headers=hostile_headers, body=api_like)
def test_any_headers(status: int, headers: dict[str, str], body: dict[str, Any]) -> None:
    try:
        result: PinStatus | PlugzError = parse(
            CONFIG,
            check_response(
                CONFIG, PIN_STATUS, status, CaseInsensitiveDict(headers), json.dumps(body).encode()
            ),
        )
    except PlugzError as err:
        result = err
    assert_safe(result)


def _status_line(status: int, reason: str) -> bytes:
    return f"HTTP/1.1 {status} {reason}\r\n".encode("latin-1", "replace")


@st.composite
def raw_answers(draw: st.DrawFn) -> bytes:
    """Whole answers as a hostile server writes them: odd status lines, headers, encodings, bodies."""
    status = draw(st.integers(min_value=0, max_value=1000) | st.sampled_from([200, 200, 429, 503, 301]))
    head = draw(
        st.sampled_from(
            [_status_line(status, "OK"), b"HTTP/1.0 200 OK\r\n", b"HTTP/2 200\r\n", b"garbage\r\n"]
        )
    )
    payload = draw(api_like.map(lambda value: json.dumps(value).encode()) | st.binary(max_size=200))
    encoding = draw(st.sampled_from([None, "gzip", "deflate", "gzip, gzip", "br", "identity", "\u00b2"]))
    if encoding in ("gzip", "gzip, gzip"):
        payload = gzip.compress(payload)
    elif encoding == "deflate":
        payload = zlib.compress(payload)
    headers = [("Content-Type", draw(st.sampled_from(["application/json", "text/html", ""])))]
    if encoding is not None:
        headers.append(("Content-Encoding", encoding))
    for name, value in draw(hostile_headers).items():
        headers.append((name, value))
    framing = draw(st.sampled_from(["length", "wrong-length", "chunked", "close"]))
    if framing == "length":
        headers.append(("Content-Length", str(len(payload))))
    elif framing == "wrong-length":
        headers.append(("Content-Length", str(len(payload) + draw(st.integers(-5, 5)))))
    elif framing == "chunked":
        headers.append(("Transfer-Encoding", "chunked"))
        payload = f"{len(payload):x}\r\n".encode() + payload + b"\r\n0\r\n\r\n" if payload else b"0\r\n\r\n"
    lines = b"".join(f"{name}: {value}\r\n".encode("utf-8", "surrogatepass") for name, value in headers)
    return head + lines + b"\r\n" + payload


@pytest.fixture(scope="module")
def hostile_server() -> Iterator[PlugzSandbox]:
    """One sandbox for every example, with plugz_default at it and no retries (one answer, one call)."""
    from airflow_provider_plugz.testing import PlugzSandbox

    with PlugzSandbox(client_token=CLIENT_TOKEN) as sb, pytest.MonkeyPatch.context() as patch:
        sb.add_instance(INSTANCE_ID, INSTANCE_TOKEN)
        conn = json.loads(sb.connection_json(INSTANCE_ID))
        conn["extra"].update({"max_attempts": 1, "read_timeout": 2})
        patch.setenv("AIRFLOW_CONN_PLUGZ_DEFAULT", json.dumps(conn))
        yield sb


async def _async_pin_status() -> PinStatus:
    hook = PlugzHook()
    try:
        return await hook.aget_pin_status()
    finally:
        await hook.aclose()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(answer=raw_answers())
def test_both_transports_raise_only_plugz_errors(hostile_server: PlugzSandbox, answer: bytes) -> None:
    for transport in ("requests", "httpx"):
        hostile_server.inject(Fault.raw(answer))
        try:
            if transport == "requests":
                hook = PlugzHook()
                try:
                    result: PinStatus | PlugzError = hook.get_pin_status()
                finally:
                    hook.close()
            else:
                result = asyncio.run(_async_pin_status())
        except PlugzError as err:
            result = err
        assert_safe(result)
        if isinstance(result, PlugzError):
            assert str(result).isprintable()


# --- success: false and /device, over any values -------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(status=st.integers(min_value=200, max_value=299), body=api_like)
def test_success_false_is_always_a_refusal(status: int, body: dict[str, Any]) -> None:
    """Whatever else the body holds, a 2xx saying success: false is the API's refusal: never a
    result, never "malformed", and its redacted reason is one bounded line."""
    body = {**body, "success": False}
    result = outcome(status, "application/json", json.dumps(body).encode())
    assert_safe(result)
    assert isinstance(result, PlugzAPIError), repr(result)
    if body.get("error") in (None, False, ""):
        assert f"HTTP {status}, success: false" in str(result)
    assert len(result.server_message or "") <= 303
    assert str(result).isprintable()


PHONES = st.sampled_from(["", "5511987654321", "+55 (11) 98765-4321", None])
# Mostly values of the documented types (so that most answers parse), any JSON value now and then.
texts = st.text(max_size=20) | PHONES | json_values
device_like = st.fixed_dictionaries(
    {"phone": PHONES | json_values},
    optional={
        **dict.fromkeys(("imgUrl", "name", "about", "originalDevice"), texts),
        "isBusiness": st.booleans() | json_values,
        "sessionId": st.integers(min_value=0, max_value=10**6) | json_values,
        "device": st.fixed_dictionaries(
            {},
            optional=dict.fromkeys(
                ("sessionName", "device_model", "platform", "wa_version", "osbuildnumber"), texts
            ),
        )
        | json_values,
    },
)


@settings(max_examples=300, deadline=None)
@given(body=device_like)
def test_device_answers_parse_or_are_malformed(body: dict[str, Any]) -> None:
    """Any /device answer is a DeviceInfo or a PlugzMalformedResponseError; Z-API's layout never
    yields a phone model, and no repr holds a phone number."""
    try:
        result = DEVICE.parse(
            Answer(check_response(CONFIG, DEVICE, 200, CaseInsensitiveDict(), json.dumps(body).encode()))
        )
    except Malformed:
        return
    except PlugzError as err:
        assert_safe(err)
        return
    assert isinstance(result, DeviceInfo)
    device = body.get("device")
    if (isinstance(device, dict) and "sessionName" in device) or {
        "originalDevice",
        "sessionId",
        "isBusiness",
    } & set(body):
        assert result.model is None
    assert result.phone is None or result.phone == body["phone"].strip()
    shown = repr(result)
    assert "98765" not in shown
    assert re.search("[0-9]{8}", shown.replace(f"session_id={result.session_id}", "")) is None
