"""The Plugz sandbox over real loopback HTTP: API answers, faults, control endpoints, wire format."""

from __future__ import annotations

import ast
import asyncio
import base64
import contextlib
import gzip
import json
import logging
import os
import queue
import shlex
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_plugz.testing import Fault, PlugzSandbox
from airflow_provider_plugz.testing.sandbox import (
    Headers,
    _fault_from_json,
    _parse_head,
    _ProtocolError,
    _reason,
    _render_response,
    main,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import BinaryIO

CT = "sandbox-client-token"
AUTH = {"Client-Token": CT}
ROOT = Path(__file__).resolve().parents[1]
NOT_FOUND = {"error": "NOT_FOUND", "message": "Unable to find matching target resource method"}
PIN_PATH = "/instances/inst-1/token/tok-1/security/two-fa-code"
NO_PIN = b'{"success":true,"hasCode":false}'


@pytest.fixture
def sb() -> Iterator[PlugzSandbox]:
    with PlugzSandbox(client_token=CT) as sandbox:
        sandbox.add_instance("inst-1", "tok-1")
        sandbox.add_instance("inst-2", "tok-2", has_code=True)
        sandbox.add_instance("old", "tok-old", expired=True)
        sandbox.add_instance("web", "tok-web", kind="web")
        yield sandbox


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.trust_env = False  # no proxies from the environment for loopback
        yield session


def pin_url(sb: PlugzSandbox, instance: str = "inst-1", token: str = "tok-1", endpoint: str = "") -> str:
    endpoint = endpoint or "security/two-fa-code"
    return f"{sb.base_url}/instances/{quote(instance, safe='')}/token/{quote(token, safe='')}/{endpoint}"


def raw_request(path: str, *, method: str = "GET", extra: str = "", version: str = "HTTP/1.1") -> bytes:
    return f"{method} {path} {version}\r\nHost: sandbox\r\nClient-Token: {CT}\r\n{extra}\r\n".encode()


def read_response(stream: BinaryIO) -> tuple[int, dict[str, str], bytes]:
    status_line = stream.readline()
    if not status_line:
        raise EOFError("connection closed")
    headers: dict[str, str] = {}
    while (line := stream.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    status = int(status_line.split()[1])
    return status, headers, stream.read(int(headers.get("content-length", "0")))


def exchange_until_close(sb: PlugzSandbox, data: bytes) -> bytes:
    """Send ``data`` and read until the server closes the connection."""
    with socket.create_connection((sb.host, sb.port), timeout=5) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def read_raw_answer(sock: socket.socket) -> bytes:
    """The bytes of one whole answer (head, then its Content-Length of body), as they trickle in."""
    data = b""
    while True:
        head, blank, body = data.partition(b"\r\n\r\n")
        if blank:
            fields = dict(line.lower().split(b": ", 1) for line in head.split(b"\r\n")[1:])
            if len(body) >= int(fields.get(b"content-length", b"0")):
                return data
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError(f"connection closed after {data!r}")
        data += chunk


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    """Poll the sandbox's state until ``condition`` holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.005)


# --------------------------------------------------------------------------- the API


@pytest.mark.parametrize(
    ("instance", "token", "has_code"),
    [
        pytest.param("inst-1", "tok-1", False, id="no-pin"),
        pytest.param("inst-2", "tok-2", True, id="pin"),
    ],
)
def test_get_answers_pin_state(
    sb: PlugzSandbox, http: requests.Session, instance: str, token: str, has_code: bool
) -> None:
    response = http.get(pin_url(sb, instance, token), headers=AUTH)
    assert response.status_code == 200
    assert response.json() == {"success": True, "hasCode": has_code}
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert response.headers["Content-Length"] == str(len(response.content))


def test_pin_flip_is_visible_to_a_polling_client(sb: PlugzSandbox, http: requests.Session) -> None:
    assert http.get(pin_url(sb), headers=AUTH).json()["hasCode"] is False
    assert sb.set_has_code("inst-1", True).has_code is True
    assert http.get(pin_url(sb), headers=AUTH).json()["hasCode"] is True
    assert sb.instance("inst-1").has_code is True
    sb.set_has_code("inst-1", False)
    assert http.get(pin_url(sb), headers=AUTH).json()["hasCode"] is False


def test_status_endpoint(sb: PlugzSandbox, http: requests.Session) -> None:
    response = http.get(pin_url(sb, endpoint="status"), headers=AUTH)
    assert (response.status_code, response.json()) == (200, {"connected": True, "smartphoneConnected": True})


@pytest.mark.parametrize(
    ("content_type", "code"),
    [
        pytest.param("application/json", "123456", id="json"),
        pytest.param("Application/JSON; charset=utf-8", "000000", id="json-with-charset"),
    ],
)
def test_post_registers_a_pin(sb: PlugzSandbox, http: requests.Session, content_type: str, code: str) -> None:
    body = json.dumps({"code": code})
    response = http.post(pin_url(sb), headers={**AUTH, "Content-Type": content_type}, data=body)
    assert (response.status_code, response.json()) == (200, {"success": True})
    assert sb.instance("inst-1").has_code is True
    assert http.get(pin_url(sb), headers=AUTH).json() == {"success": True, "hasCode": True}


NULL = {"error": "null not allowed"}
WRONG_CT = {"error": "Client-Token wrong-ct not allowed"}
NO_INSTANCE = {"error": "Instance not found"}
EXPIRED = {"error": "To continue sending a message, you must subscribe to this instance again"}
MOBILE_ONLY = {"error": "This feature is only available for mobile instances"}
MEDIA = {"error": "Unsupported Media Type", "message": "Content-Type must be application/json"}
GP = "GET, POST"
PIN = b'{"code": "123456"}'
TEXT = {**AUTH, "Content-Type": "text/plain"}

API_ERRORS = [
    # (method, instance, token, endpoint, headers, body, status, json body, Allow)
    pytest.param("GET", "inst-1", "tok-1", "security/nope", AUTH, None, 404, NOT_FOUND, None, id="bad-path"),
    pytest.param("GET", "inst-1", "tok-1", "security/two-fa-code/", AUTH, None, 404, NOT_FOUND, None, id="/"),
    pytest.param("GET", "inst-1", "tok-1", "me", AUTH, None, 404, NOT_FOUND, None, id="unknown-endpoint"),
    pytest.param("PUT", "inst-1", "tok-1", "", AUTH, None, 405, NOT_FOUND, GP, id="put"),
    pytest.param("DELETE", "inst-1", "tok-1", "", AUTH, None, 405, NOT_FOUND, GP, id="delete"),
    pytest.param("PATCH", "inst-1", "tok-1", "", AUTH, None, 405, NOT_FOUND, GP, id="patch"),
    pytest.param("POST", "inst-1", "tok-1", "status", AUTH, None, 405, NOT_FOUND, "GET", id="post-status"),
    pytest.param("PUT", "inst-1", "tok-1", "", {}, None, 405, NOT_FOUND, GP, id="405-before-token"),
    pytest.param("GET", "inst-1", "tok-1", "", {}, None, 400, NULL, None, id="no-client-token"),
    pytest.param("GET", "inst-1", "tok-1", "", {"Client-Token": ""}, None, 400, NULL, None, id="empty-ct"),
    pytest.param("GET", "inst-1", "tok-1", "", {"client-token": "wrong-ct"}, None, 403, WRONG_CT, None,
                 id="wrong-ct-echoed"),
    pytest.param("GET", "ghost", "tok-1", "", {"Client-Token": "wrong-ct"}, None, 403, WRONG_CT, None,
                 id="403-before-instance"),
    pytest.param("GET", "ghost", "tok-1", "", AUTH, None, 404, NO_INSTANCE, None, id="no-instance"),
    pytest.param("GET", "inst-1", "tok-2", "", AUTH, None, 404, NO_INSTANCE, None, id="bad-token"),
    pytest.param("GET", "old", "tok-old", "", AUTH, None, 400, EXPIRED, None, id="expired"),
    pytest.param("GET", "old", "tok-old", "status", AUTH, None, 400, EXPIRED, None, id="expired-status"),
    pytest.param("GET", "web", "tok-web", "", AUTH, None, 400, MOBILE_ONLY, None, id="web"),
    pytest.param("POST", "web", "tok-web", "", AUTH, PIN, 400, MOBILE_ONLY, None, id="web-before-415"),
    pytest.param("POST", "old", "tok-old", "", AUTH, b"x", 400, EXPIRED, None, id="expired-before-415"),
    pytest.param("POST", "inst-1", "tok-1", "", AUTH, PIN, 415, MEDIA, None, id="415-no-content-type"),
    pytest.param("POST", "inst-1", "tok-1", "", TEXT, PIN, 415, MEDIA, None, id="415-text-plain"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("method", "instance", "token", "endpoint", "headers", "body", "status", "expected", "allow"), API_ERRORS
)
def test_api_errors(
    sb: PlugzSandbox,
    http: requests.Session,
    method: str,
    instance: str,
    token: str,
    endpoint: str,
    headers: dict[str, str],
    body: bytes | None,
    status: int,
    expected: dict[str, str],
    allow: str | None,
) -> None:
    response = http.request(method, pin_url(sb, instance, token, endpoint), headers=headers, data=body)
    assert response.status_code == status
    assert response.json() == expected
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert response.headers.get("Allow") == allow
    assert sb.instance("inst-1").has_code is False


@pytest.mark.parametrize(
    ("body", "error"),
    [
        pytest.param(b'{"code": "12345"}', "code must be a string of exactly 6 digits", id="five-digits"),
        pytest.param(b'{"code": "1234567"}', "code must be a string of exactly 6 digits", id="seven-digits"),
        pytest.param(b'{"code": "12a456"}', "code must be a string of exactly 6 digits", id="letter"),
        pytest.param(b'{"code": " 12345"}', "code must be a string of exactly 6 digits", id="space"),
        pytest.param(
            '{"code": "١٢٣٤٥٦"}'.encode(), "code must be a string of exactly 6 digits", id="non-ascii-digits"
        ),
        pytest.param(b'{"code": 123456}', "code must be a string of exactly 6 digits", id="number"),
        pytest.param(b'{"pin": "123456"}', "code must be a string of exactly 6 digits", id="no-code"),
        pytest.param(b'["123456"]', "code must be a string of exactly 6 digits", id="array"),
        pytest.param(b'{"code": "1234', "Invalid JSON body", id="broken-json"),
        pytest.param(b"", "Invalid JSON body", id="empty"),
        pytest.param(b"\xff\xfe", "Invalid JSON body", id="not-utf8"),
    ],
)
def test_post_rejects_bad_codes(sb: PlugzSandbox, http: requests.Session, body: bytes, error: str) -> None:
    response = http.post(pin_url(sb), headers={**AUTH, "Content-Type": "application/json"}, data=body)
    assert (response.status_code, response.json()) == (400, {"error": error})
    assert sb.instance("inst-1").has_code is False


def test_path_segments_are_percent_decoded(sb: PlugzSandbox, http: requests.Session) -> None:
    sb.add_instance("inst/ä 1", "tok?&/#")
    response = http.get(pin_url(sb, "inst/ä 1", "tok?&/#"), headers=AUTH)
    assert (response.status_code, response.json()) == (200, {"success": True, "hasCode": False})


def test_account_without_client_token(http: requests.Session) -> None:
    with PlugzSandbox(client_token=None) as sandbox:
        sandbox.add_instance("inst-1", "tok-1")
        assert http.get(pin_url(sandbox)).status_code == 200
        assert http.get(pin_url(sandbox), headers={"Client-Token": "anything"}).status_code == 200


# --------------------------------------------------------------------------- faults

JSON_CT = "application/json; charset=utf-8"
HTML_CT = "text/html; charset=utf-8"
ELSEWHERE = "https://plugz.invalid/elsewhere"

FAULTS = [
    # (fault, status, content type, body or None to skip, extra headers expected)
    pytest.param(Fault.status(503), 503, JSON_CT, b'{"error":"Service Unavailable"}', {}, id="status"),
    pytest.param(Fault.status(429, headers={"Retry-After": "3"}), 429, JSON_CT,
                 b'{"error":"Too Many Requests"}', {"Retry-After": "3"}, id="status-retry-after"),
    pytest.param(Fault.status(200, {"success": False, "message": "busy"}), 200, JSON_CT,
                 b'{"success":false,"message":"busy"}', {}, id="status-dict-body"),
    pytest.param(Fault.status(400, b'{"error":1}'), 400, JSON_CT, b'{"error":1}', {}, id="status-bytes"),
    pytest.param(Fault.status(500, "oops"), 500, "text/plain; charset=utf-8", b"oops", {}, id="status-text"),
    pytest.param(Fault.status(502, "<h1>bad</h1>", headers={"content-type": "text/html"}), 502, "text/html",
                 b"<h1>bad</h1>", {}, id="status-own-content-type"),
    pytest.param(Fault.html(), 502, HTML_CT, None, {}, id="html"),
    pytest.param(Fault.html(504), 504, HTML_CT, None, {}, id="html-504"),
    pytest.param(Fault.malformed(), 200, JSON_CT, b'{"success": true, "hasCo', {}, id="malformed"),
    pytest.param(Fault.malformed(500, b"<not json"), 500, JSON_CT, b"<not json", {}, id="malformed-500"),
    pytest.param(Fault.redirect(ELSEWHERE), 302, HTML_CT, None, {"Location": ELSEWHERE}, id="redirect"),
    pytest.param(Fault.redirect("/x", 308), 308, HTML_CT, None, {"Location": "/x"}, id="redirect-308"),
]  # fmt: skip


@pytest.mark.parametrize(("fault", "status", "content_type", "body", "headers"), FAULTS)
def test_fault_answers(
    sb: PlugzSandbox,
    http: requests.Session,
    fault: Fault,
    status: int,
    content_type: str,
    body: bytes | None,
    headers: dict[str, str],
) -> None:
    sb.inject(fault)
    response = http.get(pin_url(sb), headers=AUTH, allow_redirects=False)
    assert response.status_code == status
    assert response.headers["Content-Type"] == content_type
    assert response.headers["Content-Length"] == str(len(response.content))
    if body is not None:
        assert response.content == body
    for name, value in headers.items():
        assert response.headers[name] == value
    if fault.kind == "html":
        assert f"{status} ".encode() in response.content
    # Consumed: the next call is normal.
    assert http.get(pin_url(sb), headers=AUTH).status_code == 200
    assert sb.pending_faults == []


def test_malformed_body_is_not_json(sb: PlugzSandbox, http: requests.Session) -> None:
    sb.inject(Fault.malformed())
    with pytest.raises(requests.JSONDecodeError):
        http.get(pin_url(sb), headers=AUTH).json()


def test_redirect_can_be_followed_back_to_the_sandbox(sb: PlugzSandbox, http: requests.Session) -> None:
    sb.inject(Fault.redirect(pin_url(sb, "inst-2", "tok-2")))
    response = http.get(pin_url(sb), headers=AUTH)
    assert [r.status_code for r in response.history] == [302]
    assert response.json() == {"success": True, "hasCode": True}


def test_drop_closes_without_answering(sb: PlugzSandbox, http: requests.Session) -> None:
    assert http.get(pin_url(sb), headers=AUTH).status_code == 200
    sb.inject(Fault.drop())
    with pytest.raises(requests.ConnectionError):
        http.get(pin_url(sb), headers=AUTH)
    assert http.get(pin_url(sb), headers=AUTH).status_code == 200
    assert sb.connections_accepted == 2  # the dropped connection was replaced
    assert sb.request_count == 3  # the dropped request was read and recorded


def test_drop_on_a_raw_socket_sends_nothing(sb: PlugzSandbox) -> None:
    sb.inject(Fault.drop())
    assert exchange_until_close(sb, raw_request("/instances/inst-1/token/tok-1/security/two-fa-code")) == b""


@pytest.mark.parametrize(
    ("body", "expect_continue"),
    [
        pytest.param(b'{"code": "123456"}', False, id="small"),
        pytest.param(bytes(range(256)) * 1200, False, id="300-kib"),
        pytest.param(b'{"code": "654321"}', True, id="expect-100-continue"),
    ],
)
def test_drop_reads_the_whole_request_body_first(
    sb: PlugzSandbox, body: bytes, expect_continue: bool
) -> None:
    sb.inject(Fault.drop())
    extra = f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    if expect_continue:
        extra += "Expect: 100-continue\r\n"
    with socket.create_connection((sb.host, sb.port), timeout=5) as sock:
        sock.sendall(raw_request(PIN_PATH, method="POST", extra=extra))
        if expect_continue:
            assert sock.recv(65536) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(body[:1])  # the body in two writes: the sandbox must wait for all of it
        sock.sendall(body[1:])
        # A clean close (no reset, which unread bytes would cause), and no answer.
        assert sock.recv(65536) == b""
    (recorded,) = sb.requests
    assert (recorded.method, recorded.path, recorded.body) == ("POST", PIN_PATH, body)
    assert sb.request_count == 1


@pytest.mark.parametrize(
    ("head", "interval"),
    [
        pytest.param(False, 0.01, id="body-drips"),
        pytest.param(True, 0.003, id="head-drips-too"),
    ],
)
def test_drip_sends_the_normal_answer_a_byte_at_a_time(sb: PlugzSandbox, head: bool, interval: float) -> None:
    sb.inject(Fault.drip(interval, head=head))
    writes = sb.writes
    with socket.create_connection((sb.host, sb.port), timeout=5) as sock:
        started = time.perf_counter()
        sock.sendall(raw_request(PIN_PATH))
        data = read_raw_answer(sock)
        elapsed = time.perf_counter() - started
        head_bytes, _, body = data.partition(b"\r\n\r\n")
        assert head_bytes.startswith(b"HTTP/1.1 200 OK\r\n")
        assert f"\r\nContent-Length: {len(NO_PIN)}\r\n".encode() in head_bytes + b"\r\n"
        assert body == NO_PIN
        dripped = len(data) if head else len(body)
        assert sb.writes - writes == dripped + (0 if head else 1)  # one write per byte (+ the head)
        assert elapsed >= dripped * interval * 0.5
        # The answer was complete and valid: the connection carries the next request as usual.
        sock.sendall(raw_request(PIN_PATH))
        assert read_raw_answer(sock).endswith(b"\r\n\r\n" + NO_PIN)
    assert sb.request_count == 2
    assert sb.connections_accepted == 1


@pytest.mark.parametrize(
    ("head", "reset"),
    [
        pytest.param(True, False, id="head-drip-close"),
        pytest.param(True, True, id="head-drip-reset"),
        pytest.param(False, False, id="body-drip-close"),
    ],
)
def test_drip_stops_when_the_client_closes(
    sb: PlugzSandbox, http: requests.Session, caplog: pytest.LogCaptureFixture, head: bool, reset: bool
) -> None:
    caplog.set_level(logging.WARNING)
    interval = 0.05
    sb.inject(Fault.drip(interval, head=head))
    sock = socket.create_connection((sb.host, sb.port), timeout=5)
    sock.sendall(raw_request(PIN_PATH))
    assert sock.recv(65536).startswith(b"H")  # the drip has begun
    if reset:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
    wait_until(lambda: not sb._connection_tasks, "the dripping connection to end")  # no leaked task
    writes = sb.writes
    time.sleep(interval * 4)
    assert sb.writes == writes  # nothing more was written
    assert writes < 40  # far fewer than the answer's ~150 bytes
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert http.get(pin_url(sb), headers=AUTH).status_code == 200  # and it still serves


@pytest.mark.parametrize("reset", [pytest.param(False, id="close"), pytest.param(True, id="reset")])
def test_drip_notices_a_gone_client_before_its_next_byte(sb: PlugzSandbox, reset: bool) -> None:
    interval = 3.0
    sb.inject(Fault.drip(interval))
    sock = socket.create_connection((sb.host, sb.port), timeout=5)
    sock.sendall(raw_request(PIN_PATH))
    assert sock.recv(65536).endswith(b"\r\n\r\n")  # the head at once; the body's first byte is 3 s away
    if reset:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
    # Not a tight bound: it takes ~50 ms; waiting out the interval (or a failed write) takes 3 s.
    wait_until(lambda: not sb._connection_tasks, "the drip to end", timeout=interval / 2)
    assert sb.writes == 1


@pytest.mark.parametrize("head", [pytest.param(False, id="body-drips"), pytest.param(True, id="head-drips")])
def test_stop_returns_promptly_while_a_drip_runs(caplog: pytest.LogCaptureFixture, head: bool) -> None:
    caplog.set_level(logging.WARNING)
    sandbox = PlugzSandbox(client_token=None).start()
    sandbox.add_instance("inst-1", "tok-1")
    sandbox.inject(Fault.drip(60, head=head))  # the answer would take hours
    with socket.create_connection((sandbox.host, sandbox.port), timeout=5) as sock:
        sock.sendall(raw_request(PIN_PATH))
        wait_until(lambda: sandbox.request_count == 1, "the drip to start")
        stopper = threading.Thread(target=sandbox.stop, daemon=True)
        stopper.start()
        stopper.join(timeout=5)
        assert not stopper.is_alive(), "stop() hung on a dripping connection"
        assert not sandbox.running
        with contextlib.suppress(ConnectionResetError):  # an abort (RST) is as good as a FIN
            while sock.recv(65536):  # the connection was closed (a hang would time out here)
                pass
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


RAW_ANSWERS = [
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", id="valid-http"),
    pytest.param(b"", id="empty"),
    pytest.param(b"\x00\xff\xfe garbage \r\n\r\n\x80", id="binary-garbage"),
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n", id="head-never-ends"),
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{}", id="body-shorter-than-announced"),
    pytest.param(b"HTTP/1.1 999 Nonsense\nX: \xff\n\n", id="bare-lf-and-bad-status"),
    pytest.param(bytes(range(256)) * 512, id="128-kib"),
]


@pytest.mark.parametrize("data", RAW_ANSWERS)
def test_raw_sends_exactly_its_bytes_then_closes(sb: PlugzSandbox, data: bytes) -> None:
    sb.inject(Fault.raw(data))
    # A keep-alive request, yet the sandbox closes: exchange_until_close would time out otherwise.
    assert exchange_until_close(sb, raw_request(PIN_PATH)) == data
    assert [(r.method, r.path) for r in sb.requests] == [("GET", PIN_PATH)]
    assert sb.request_count == 1


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=4096))
def test_raw_sends_any_bytes_verbatim(sb: PlugzSandbox, data: bytes) -> None:
    sb.inject(Fault.raw(data))
    assert exchange_until_close(sb, raw_request(PIN_PATH)) == data


def test_raw_answer_reaches_an_http_client(sb: PlugzSandbox, http: requests.Session) -> None:
    sb.inject(Fault.raw(b"HTTP/1.1 418 I'm a Teapot\r\nContent-Length: 5\r\nX-Raw: yes\r\n\r\nshort"))
    response = http.get(pin_url(sb), headers=AUTH)
    assert (response.status_code, response.headers["X-Raw"], response.content) == (418, "yes", b"short")


TOO_MANY = b'{"error":"Too Many Requests"}'
DEFAULT_TYPE = b"Content-Type: application/json; charset=utf-8"
GZ_TWICE = gzip.compress(gzip.compress(b'{"success":true,"hasCode":true}', mtime=0), mtime=0)
JSON_ONLY = "application/json"
CHUNKED = b"%x\r\n%s\r\n0\r\n\r\n" % (len(NO_PIN), NO_PIN)

HOSTILE_HEADERS = [
    # (fault, header lines after Server and Date, body, whether the connection stays usable)
    pytest.param(Fault.status(429, headers={"Retry-After": "²"}),
                 [DEFAULT_TYPE, b"Content-Length: 29", b"Retry-After: \xb2"], TOO_MANY, True,
                 id="retry-after-superscript-as-latin-1"),
    pytest.param(Fault.status(429, headers={"Retry-After": "²".encode()}),
                 [DEFAULT_TYPE, b"Content-Length: 29", b"Retry-After: \xc2\xb2"], TOO_MANY, True,
                 id="retry-after-utf-8-bytes"),
    pytest.param(Fault.status(429, headers={"Retry-After": "5€"}),
                 [DEFAULT_TYPE, b"Content-Length: 29", b"Retry-After: 5\xe2\x82\xac"], TOO_MANY, True,
                 id="non-latin-1-text-as-utf-8"),
    pytest.param(Fault.status(200, GZ_TWICE, {"Content-Type": JSON_ONLY, "Content-Encoding": "gzip, gzip"}),
                 [b"Content-Length: %d" % len(GZ_TWICE), b"Content-Type: application/json",
                  b"Content-Encoding: gzip, gzip"], GZ_TWICE, True, id="gzip-gzip-binary-body"),
    pytest.param(Fault.status(200, NO_PIN, {"Content-Length": "32"}),
                 [DEFAULT_TYPE, b"Content-Length: 32"], NO_PIN, True, id="own-content-length-once"),
    pytest.param(Fault.status(200, NO_PIN, {"content-length": "999"}),
                 [DEFAULT_TYPE, b"content-length: 999"], NO_PIN, False, id="lying-content-length"),
    pytest.param(Fault.status(200, NO_PIN, [("Content-Length", "32"), ("Content-Length", "5")]),
                 [DEFAULT_TYPE, b"Content-Length: 32", b"Content-Length: 5"], NO_PIN, False,
                 id="conflicting-content-lengths"),
    pytest.param(Fault.status(200, CHUNKED, {"Content-Type": JSON_ONLY, "Transfer-Encoding": "chunked"}),
                 [b"Content-Type: application/json", b"Transfer-Encoding: chunked"], CHUNKED, False,
                 id="chunked-without-content-length"),
    pytest.param(Fault.status(200, NO_PIN, {"Connection": "close"}),
                 [DEFAULT_TYPE, b"Content-Length: 32", b"Connection: close"], NO_PIN, False,
                 id="own-connection-close-once-and-kept"),
    pytest.param(Fault.status(200, NO_PIN, [("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")]),
                 [DEFAULT_TYPE, b"Content-Length: 32", b"Set-Cookie: a=1", b"Set-Cookie: b=2"], NO_PIN, True,
                 id="repeated-names"),
    pytest.param(Fault.status(200, NO_PIN, {"X-Odd": "\x00\x7f\t\xff"}),
                 [DEFAULT_TYPE, b"Content-Length: 32", b"X-Odd: \x00\x7f\t\xff"], NO_PIN, True,
                 id="control-characters"),
]  # fmt: skip


@pytest.mark.parametrize(("fault", "lines", "body", "reusable"), HOSTILE_HEADERS)
def test_status_sends_hostile_headers_verbatim(
    sb: PlugzSandbox, fault: Fault, lines: list[bytes], body: bytes, reusable: bool
) -> None:
    sb.inject(fault)
    with socket.create_connection((sb.host, sb.port), timeout=5) as sock, sock.makefile("rb") as stream:
        sock.sendall(raw_request(PIN_PATH))
        assert (
            stream.readline() == f"HTTP/1.1 {fault.code} ".encode() + _reason(fault.code).encode() + b"\r\n"
        )
        received = []
        while (line := stream.readline()) != b"\r\n":
            received.append(line.removesuffix(b"\r\n"))
        assert received[:2] == [b"Server: plugz-sandbox", received[1]]
        assert received[1].startswith(b"Date: ")
        assert received[2:] == lines
        assert stream.read(len(body)) == body
        if reusable:
            sock.sendall(raw_request(PIN_PATH))
            assert read_response(stream)[::2] == (200, NO_PIN)
        else:  # its framing is not ours: nothing more, and the connection is closed
            assert stream.read() == b""


@pytest.mark.parametrize(
    ("fault", "latency", "minimum", "status"),
    [
        pytest.param(Fault.slow(0.05), 0.0, 0.05, 200, id="slow"),
        pytest.param(Fault.status(503, delay=0.03), 0.0, 0.03, 503, id="status-with-delay"),
        pytest.param(None, 0.03, 0.03, 200, id="latency"),
        pytest.param(Fault.slow(0.02), 0.02, 0.04, 200, id="slow-plus-latency"),
        pytest.param(Fault.drip(0.001, delay=0.03), 0.0, 0.03, 200, id="drip-with-delay"),
        pytest.param(Fault.raw(b"HTTP/1.1 204 No Content\r\n\r\n", delay=0.03), 0.0, 0.03, 204,
                     id="raw-with-delay"),
    ],
)  # fmt: skip
def test_delays(
    sb: PlugzSandbox, http: requests.Session, fault: Fault | None, latency: float, minimum: float, status: int
) -> None:
    http.get(pin_url(sb), headers=AUTH)  # connect first, so only the answer is timed
    sb.latency = latency
    if fault is not None:
        sb.inject(fault)
    started = time.perf_counter()
    response = http.get(pin_url(sb), headers=AUTH)
    assert time.perf_counter() - started >= minimum * 0.95
    assert response.status_code == status


def test_latency_does_not_block_other_connections(sb: PlugzSandbox) -> None:
    sb.latency = 0.05
    clients = 40
    statuses = asyncio.run(_concurrent_gets(sb, clients, rounds=1))
    assert statuses == [200] * clients
    # Served one after another, no two answers would ever wait at the same time.
    assert sb.max_in_flight > clients // 2


def test_times_counts_calls(sb: PlugzSandbox, http: requests.Session) -> None:
    sb.inject(Fault.status(503), times=2)
    assert [http.get(pin_url(sb), headers=AUTH).status_code for _ in range(3)] == [503, 503, 200]


def test_faults_are_consumed_in_fifo_order(sb: PlugzSandbox, http: requests.Session) -> None:
    sb.inject(Fault.status(500))
    sb.inject(Fault.status(502), times=2)
    sb.inject(Fault.html(504))
    codes = [http.get(pin_url(sb), headers=AUTH).status_code for _ in range(5)]
    assert codes == [500, 502, 502, 504, 200]


def test_faults_scoped_to_an_instance(sb: PlugzSandbox, http: requests.Session) -> None:
    sb.inject(Fault.status(503), instance_id="inst-2")
    sb.inject(Fault.status(500))
    assert http.get(pin_url(sb), headers=AUTH).status_code == 500  # skips inst-2's fault
    assert http.get(pin_url(sb), headers=AUTH).status_code == 200
    assert http.get(pin_url(sb, "inst-2", "tok-2"), headers=AUTH).status_code == 503
    assert http.get(pin_url(sb, "inst-2", "tok-2"), headers=AUTH).status_code == 200


def test_faults_apply_to_unknown_paths_but_not_control_endpoints(
    sb: PlugzSandbox, http: requests.Session
) -> None:
    sb.inject(Fault.status(503), times=2)
    assert http.get(f"{sb.base_url}/_sandbox/instances").status_code == 200
    assert http.get(f"{sb.base_url}/nope").status_code == 503
    assert sb.pending_faults == [(Fault.status(503), 1, None)]


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda: Fault.status(99), id="status-too-low"),
        pytest.param(lambda: Fault.status(600), id="status-too-high"),
        pytest.param(lambda: Fault.status(True), id="status-bool"),
        pytest.param(lambda: Fault.html(100), id="html-1xx"),
        pytest.param(lambda: Fault.redirect("/x", 200), id="redirect-not-3xx"),
        pytest.param(lambda: Fault.redirect("/x\r\nSet-Cookie: a=b"), id="header-injection"),
        pytest.param(lambda: Fault.status(500, headers={"Bad Name": "x"}), id="bad-header-name"),
        pytest.param(lambda: Fault.slow(-1), id="negative-seconds"),
        pytest.param(lambda: Fault.drop(delay=float("nan")), id="nan-delay"),
        pytest.param(lambda: Fault.status(500, headers={"X": b"a\r\nB: c"}), id="bytes-header-injection"),
        pytest.param(lambda: Fault.status(500, headers=[("X", 1)]), id="header-value-not-text"),
        pytest.param(lambda: Fault.drip(0), id="drip-zero-interval"),
        pytest.param(lambda: Fault.drip(-0.1), id="drip-negative-interval"),
        pytest.param(lambda: Fault.drip(float("inf")), id="drip-infinite-interval"),
        pytest.param(lambda: Fault.drip(0.1, head="yes"), id="drip-head-not-bool"),
        pytest.param(lambda: Fault.raw("HTTP/1.1 200 OK\r\n\r\n"), id="raw-text"),
    ],
)
def test_invalid_faults_are_refused(build: Any) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the message varies per argument
        build()


@pytest.mark.parametrize(
    ("times", "error"),
    [pytest.param(0, ValueError, id="zero"), pytest.param(True, ValueError, id="bool")],
)
def test_inject_refuses_bad_times(sb: PlugzSandbox, times: int, error: type[Exception]) -> None:
    with pytest.raises(error):
        sb.inject(Fault.drop(), times=times)


def test_inject_refuses_non_faults(sb: PlugzSandbox) -> None:
    with pytest.raises(TypeError):
        sb.inject("drop")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- control endpoints


def test_control_lists_instances_without_tokens(sb: PlugzSandbox, http: requests.Session) -> None:
    response = http.get(f"{sb.base_url}/_sandbox/instances")
    assert response.status_code == 200
    assert response.json() == [
        {"instance_id": "inst-1", "has_code": False, "kind": "mobile", "expired": False},
        {"instance_id": "inst-2", "has_code": True, "kind": "mobile", "expired": False},
        {"instance_id": "old", "has_code": False, "kind": "mobile", "expired": True},
        {"instance_id": "web", "has_code": False, "kind": "web", "expired": False},
    ]
    assert b"tok-" not in response.content


def test_control_adds_an_instance(sb: PlugzSandbox, http: requests.Session) -> None:
    body = {"instance_id": "new", "token": "tok-new", "has_code": True}
    response = http.post(f"{sb.base_url}/_sandbox/instances", json=body)
    assert response.status_code == 201
    assert response.json() == {"instance_id": "new", "has_code": True, "kind": "mobile", "expired": False}
    assert http.get(pin_url(sb, "new", "tok-new"), headers=AUTH).json()["hasCode"] is True


def test_control_sets_a_pin(sb: PlugzSandbox, http: requests.Session) -> None:
    response = http.put(f"{sb.base_url}/_sandbox/instances/inst-1/pin", json={"has_code": True})
    assert response.status_code == 200
    assert response.json()["has_code"] is True
    assert sb.instance("inst-1").has_code is True


@pytest.mark.parametrize(
    ("body", "kind", "status"),
    [
        pytest.param({"kind": "status", "status": 503, "times": 2}, "status", 503, id="status"),
        pytest.param(
            {"kind": "status", "status": 200, "body": {"error": "x"}}, "status", 200, id="status-body"
        ),
        pytest.param({"kind": "html"}, "html", 502, id="html"),
        pytest.param({"kind": "malformed"}, "malformed", 200, id="malformed"),
        pytest.param({"kind": "redirect", "location": "/x"}, "redirect", 302, id="redirect"),
        pytest.param({"kind": "slow", "seconds": 0.01}, "slow", 200, id="slow"),
        pytest.param({"kind": "status", "instance_id": "inst-1"}, "status", 500, id="scoped"),
        pytest.param({"kind": "drip", "interval": 0.001}, "drip", 200, id="drip"),
        pytest.param(
            {"kind": "raw", "data": "HTTP/1.1 418 I'm a Teapot\r\nContent-Length: 0\r\n\r\n"},
            "raw",
            418,
            id="raw",
        ),
        pytest.param(
            {"kind": "status", "status": 429, "headers": {"Retry-After": "1"}},
            "status",
            429,
            id="status-headers",
        ),
    ],
)
def test_control_injects_faults(
    sb: PlugzSandbox, http: requests.Session, body: dict[str, Any], kind: str, status: int
) -> None:
    response = http.post(f"{sb.base_url}/_sandbox/faults", json=body)
    assert response.status_code == 201
    assert response.json() == {
        "kind": kind,
        "times": body.get("times", 1),
        "instance_id": body.get("instance_id"),
    }
    assert http.get(pin_url(sb), headers=AUTH, allow_redirects=False).status_code == status


GZ_BODY = gzip.compress(b'{"success":true,"hasCode":true}', mtime=0)


@pytest.mark.parametrize(
    ("payload", "fault"),
    [
        pytest.param({"kind": "drip"}, Fault.drip(), id="drip-defaults"),
        pytest.param({"kind": "drip", "interval": 0.1, "head": True, "delay": 0.2},
                     Fault.drip(0.1, head=True, delay=0.2), id="drip"),
        pytest.param({"kind": "raw", "data": "HTTP/1.1 200 OK\r\n\r\nü"},
                     Fault.raw("HTTP/1.1 200 OK\r\n\r\nü".encode()), id="raw-text-as-utf-8"),
        pytest.param({"kind": "raw", "data_base64": "AP8="}, Fault.raw(b"\x00\xff"), id="raw-base64"),
        pytest.param({"kind": "status", "status": 429, "headers": {"Retry-After": "²"}},
                     Fault.status(429, headers={"Retry-After": "²"}), id="status-headers"),
        pytest.param({"kind": "status", "status": 200, "body_base64": base64.b64encode(GZ_BODY).decode(),
                      "headers": [["Content-Type", "application/json"], ["Content-Encoding", "gzip"]]},
                     Fault.status(200, GZ_BODY, [("Content-Type", JSON_ONLY), ("Content-Encoding", "gzip")]),
                     id="status-binary-body-and-header-pairs"),
        pytest.param({"kind": "status", "body": {"error": "x"}}, Fault.status(500, {"error": "x"}),
                     id="status"),
        pytest.param({"kind": "drop", "delay": 0.5, "times": 2}, Fault.drop(delay=0.5), id="drop"),
    ],
)  # fmt: skip
def test_fault_json_form_builds_what_the_classmethod_builds(payload: dict[str, Any], fault: Fault) -> None:
    assert _fault_from_json(payload) == fault


def test_fault_json_form_names_unknown_keys() -> None:
    with pytest.raises(ValueError, match=r"unknown key.* intervall for a drip fault; it takes .*interval"):
        _fault_from_json({"kind": "drip", "intervall": 1})


def test_control_drop_fault(sb: PlugzSandbox, http: requests.Session) -> None:
    assert http.post(f"{sb.base_url}/_sandbox/faults", json={"kind": "drop"}).status_code == 201
    with pytest.raises(requests.ConnectionError):
        http.get(pin_url(sb), headers=AUTH)


def test_control_clears_faults(sb: PlugzSandbox, http: requests.Session) -> None:
    sb.inject(Fault.drop(), times=5)
    response = http.delete(f"{sb.base_url}/_sandbox/faults")
    assert (response.status_code, response.content) == (204, b"")
    assert "Content-Length" not in response.headers  # RFC 9110 forbids it on 204
    assert sb.pending_faults == []
    assert http.get(pin_url(sb), headers=AUTH).status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        pytest.param("POST", "instances", b'{"instance_id": "x"}', 400, id="instance-without-token"),
        pytest.param("POST", "instances", b'{"instance_id": "x", "token": "t", "kind": 1}', 400, id="kind"),
        pytest.param("POST", "instances", b'{"instance_id": "x", "token": "t", "expired": 0}', 400, id="b"),
        pytest.param("POST", "instances", b"not json", 400, id="instance-not-json"),
        pytest.param("PUT", "instances/inst-1/pin", b'{"has_code": 1}', 400, id="pin-not-bool"),
        pytest.param("PUT", "instances/ghost/pin", b'{"has_code": true}', 404, id="pin-unknown"),
        pytest.param("POST", "faults", b'{"kind": "explode"}', 400, id="fault-kind"),
        pytest.param("POST", "faults", b'{"kind": "slow"}', 400, id="slow-without-seconds"),
        pytest.param("POST", "faults", b'{"kind": "redirect"}', 400, id="redirect-without-location"),
        pytest.param("POST", "faults", b'{"kind": "status", "status": 42}', 400, id="status-out-of-range"),
        pytest.param("POST", "faults", b'{"kind": "drop", "times": 0}', 400, id="times-zero"),
        pytest.param("POST", "faults", b'{"kind": "drop", "times": "2"}', 400, id="times-str"),
        pytest.param("POST", "faults", b'{"kind": "drop", "instance_id": 7}', 400, id="instance-id-int"),
        pytest.param("POST", "faults", b"[]", 400, id="fault-not-object"),
        pytest.param("POST", "faults", b'{"kind": "drip", "intervall": 1}', 400, id="unknown-key"),
        pytest.param("POST", "faults", b'{"kind": "drip", "interval": 0}', 400, id="drip-interval-zero"),
        pytest.param("POST", "faults", b'{"kind": "drip", "interval": "1"}', 400, id="drip-interval-str"),
        pytest.param("POST", "faults", b'{"kind": "drip", "head": "yes"}', 400, id="drip-head-not-bool"),
        pytest.param("POST", "faults", b'{"kind": "raw"}', 400, id="raw-without-data"),
        pytest.param("POST", "faults", b'{"kind": "raw", "data": 1}', 400, id="raw-data-not-text"),
        pytest.param("POST", "faults", b'{"kind": "raw", "data_base64": "!!"}', 400, id="raw-bad-base64"),
        pytest.param("POST", "faults", b'{"kind": "raw", "data_base64": 7}', 400, id="raw-base64-not-text"),
        pytest.param("POST", "faults", b'{"kind": "raw", "data": "a", "data_base64": "YQ=="}', 400,
                     id="raw-data-twice"),
        pytest.param("POST", "faults", b'{"kind": "status", "body": "a", "body_base64": "YQ=="}', 400,
                     id="status-body-twice"),
        pytest.param("POST", "faults", b'{"kind": "status", "headers": {"X": 1}}', 400, id="header-not-text"),
        pytest.param("POST", "faults", b'{"kind": "status", "headers": [["X"]]}', 400, id="header-pair"),
        pytest.param("POST", "faults", b'{"kind": "status", "headers": "X: 1"}', 400, id="headers-str"),
        pytest.param("POST", "faults", b'{"kind": "status", "headers": {"X": "a\\r\\nB: c"}}', 400,
                     id="header-injection"),
        pytest.param("GET", "nothing", None, 404, id="unknown"),
        pytest.param("DELETE", "instances", None, 405, id="instances-delete"),
        pytest.param("GET", "faults", None, 405, id="faults-get"),
        pytest.param("POST", "instances/inst-1/pin", b"{}", 405, id="pin-post"),
    ],
)  # fmt: skip
def test_control_errors(
    sb: PlugzSandbox, http: requests.Session, method: str, path: str, body: bytes | None, status: int
) -> None:
    response = http.request(method, f"{sb.base_url}/_sandbox/{path}", data=body)
    assert response.status_code == status
    assert "error" in response.json()
    assert sb.pending_faults == []
    if status == 405:
        assert response.headers["Allow"]


def test_control_endpoints_are_not_recorded_or_delayed_by_faults(
    sb: PlugzSandbox, http: requests.Session
) -> None:
    sb.inject(Fault.drop())
    assert http.get(f"{sb.base_url}/_sandbox/instances").status_code == 200
    assert sb.requests == []
    assert sb.request_count == 0


# --------------------------------------------------------------------------- state and helpers


def test_requests_are_recorded(sb: PlugzSandbox, http: requests.Session) -> None:
    http.post(pin_url(sb) + "?x=1", headers={**AUTH, "X-Trace": "abc"}, json={"code": "123456"})
    http.get(pin_url(sb, "inst-2", "tok-2"), headers=AUTH)
    first, second = sb.requests
    assert (first.method, first.path, first.instance_id) == (
        "POST",
        "/instances/inst-1/token/tok-1/security/two-fa-code?x=1",
        "inst-1",
    )
    assert first.headers["Client-Token"] == CT
    assert first.headers["client-token"] == CT
    assert first.headers.get("X-TRACE") == "abc"
    assert "Content-Type" in first.headers
    assert "x-trace" in dict(first.headers)  # stored lower-cased
    assert first.json() == {"code": "123456"}
    assert (second.method, second.body, second.instance_id) == ("GET", b"", "inst-2")
    assert sb.request_count == 2


def test_recorded_requests_are_bounded(http: requests.Session) -> None:
    with PlugzSandbox(record_limit=3) as sandbox:
        for i in range(5):
            http.get(f"{sandbox.base_url}/instances/i{i}/token/t/status")
        assert [r.instance_id for r in sandbox.requests] == ["i2", "i3", "i4"]
        assert sandbox.request_count == 5


def test_headers_lookup_ignores_case() -> None:
    headers = Headers({"content-type": "a"})
    assert (headers["Content-Type"], headers.get("CONTENT-TYPE"), headers.get("missing", "d")) == (
        "a",
        "a",
        "d",
    )
    assert "Content-type" in headers
    assert None not in headers


def test_reset_forgets_everything(sb: PlugzSandbox, http: requests.Session) -> None:
    sb.inject(Fault.drop())
    sb.inject(Fault.status(500))
    with pytest.raises(requests.ConnectionError):
        http.get(pin_url(sb), headers=AUTH)
    sb.reset()
    assert (sb.requests, sb.request_count, sb.pending_faults, sb.instances) == ([], 0, [], [])
    assert http.get(pin_url(sb), headers=AUTH).json() == {"error": "Instance not found"}
    with pytest.raises(KeyError):
        sb.instance("inst-1")


def test_instance_state_helpers(sb: PlugzSandbox) -> None:
    added = sb.add_instance("x", "y", has_code=True, kind="web", expired=True)
    assert (added.has_code, added.kind, added.expired) == (True, "web", True)
    assert "y" not in repr(added)
    assert sb.set_expired("x", False).expired is False
    sb.remove_instance("x")
    with pytest.raises(KeyError):
        sb.set_has_code("x", True)
    with pytest.raises(ValueError):  # noqa: PT011
        sb.add_instance("x", "y", kind="desktop")  # type: ignore[arg-type]
    with pytest.raises(ValueError):  # noqa: PT011
        sb.add_instance("", "y")
    with pytest.raises(ValueError):  # noqa: PT011
        sb.latency = -1


@pytest.mark.parametrize(
    ("client_token", "instance", "token", "uri_tail"),
    [
        pytest.param(
            CT, "inst-1", "tok-1", "inst-1:tok-1@{netloc}?client_token=sandbox-client-token", id="plain"
        ),
        pytest.param(
            "c/t&=", "i d", "t@k:/", "i%20d:t%40k%3A%2F@{netloc}?client_token=c%2Ft%26%3D", id="encoded"
        ),
        pytest.param(None, "inst-1", "tok-1", "inst-1:tok-1@{netloc}", id="no-client-token"),
    ],
)
def test_connection_helpers(client_token: str | None, instance: str, token: str, uri_tail: str) -> None:
    with PlugzSandbox(client_token=client_token) as sandbox:
        sandbox.add_instance(instance, token)
        netloc = f"127.0.0.1:{sandbox.port}"
        assert sandbox.connection_uri(instance) == "plugz://" + uri_tail.format(netloc=netloc)
        assert sandbox.connection_uri(instance, conn_type="http").startswith("http://")
        assert json.loads(sandbox.connection_json(instance)) == {
            "conn_type": "plugz",
            "host": f"http://{netloc}",
            "login": instance,
            "password": token,
            "extra": {} if client_token is None else {"client_token": client_token},
        }
        with pytest.raises(KeyError):
            sandbox.connection_json("ghost")


# --------------------------------------------------------------------------- lifecycle


def test_lifecycle() -> None:
    sandbox = PlugzSandbox()
    with pytest.raises(RuntimeError):
        _ = sandbox.base_url
    sandbox.stop()  # before start: a no-op
    assert sandbox.start() is sandbox.start()  # idempotent
    assert sandbox.running
    assert sandbox.base_url in repr(sandbox)
    sandbox.stop()
    sandbox.stop()
    assert not sandbox.running
    with sandbox:  # restartable
        assert sandbox.running
    assert "stopped" in repr(sandbox)


def test_stop_closes_open_keep_alive_connections(sb: PlugzSandbox) -> None:
    with socket.create_connection((sb.host, sb.port), timeout=5) as sock, sock.makefile("rb") as stream:
        sock.sendall(raw_request("/instances/inst-1/token/tok-1/security/two-fa-code"))
        assert read_response(stream)[0] == 200
        sb.stop()
        with contextlib.suppress(ConnectionResetError):  # an abort (RST) is as good as a FIN
            assert sock.recv(1) == b""


def test_port_in_use_fails_start(sb: PlugzSandbox) -> None:
    with pytest.raises(OSError):  # noqa: PT011
        PlugzSandbox(port=sb.port).start()


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "::", "example.com"])
def test_refuses_non_loopback_hosts(host: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        PlugzSandbox(host=host)


def test_localhost_binds_ipv4_loopback() -> None:
    with PlugzSandbox(host="localhost") as sandbox:
        assert sandbox.base_url.startswith("http://127.0.0.1:")


@pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6")
def test_ipv6_loopback(http: requests.Session) -> None:
    try:
        sandbox = PlugzSandbox(host="::1").start()
    except OSError:
        pytest.skip("::1 cannot be bound here")
    with sandbox:
        sandbox.add_instance("i", "t")
        assert sandbox.base_url == f"http://[::1]:{sandbox.port}"
        assert "@[::1]:" in sandbox.connection_uri("i")
        assert http.get(pin_url(sandbox, "i", "t"), headers=AUTH).status_code == 200


# --------------------------------------------------------------------------- wire format


def test_keep_alive_reuses_one_connection(sb: PlugzSandbox, http: requests.Session) -> None:
    for _ in range(5):
        assert http.get(pin_url(sb), headers=AUTH).status_code == 200
    assert "Connection" not in http.get(pin_url(sb), headers=AUTH).headers
    assert sb.connections_accepted == 1


def test_connection_close_is_honoured(sb: PlugzSandbox, http: requests.Session) -> None:
    for _ in range(3):
        response = http.get(pin_url(sb), headers={**AUTH, "Connection": "close"})
        assert response.headers["Connection"] == "close"
    assert sb.connections_accepted == 3


def test_http_1_0_closes_after_the_answer(sb: PlugzSandbox) -> None:
    data = exchange_until_close(
        sb, raw_request("/instances/inst-1/token/tok-1/security/two-fa-code", version="HTTP/1.0")
    )
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\nConnection: close\r\n" in data
    assert data.endswith(b'{"success":true,"hasCode":false}')


def test_every_response_is_one_write(sb: PlugzSandbox, http: requests.Session) -> None:
    sb.inject(Fault.html())
    sb.inject(Fault.slow(0.001))
    http.get(pin_url(sb), headers=AUTH)
    http.get(pin_url(sb), headers=AUTH)
    http.get(pin_url(sb, endpoint="status"), headers=AUTH)
    http.put(pin_url(sb), headers=AUTH)
    http.post(pin_url(sb), headers=AUTH, json={"code": "123456"})
    http.get(f"{sb.base_url}/_sandbox/instances")
    http.delete(f"{sb.base_url}/_sandbox/faults")
    http.head(pin_url(sb), headers=AUTH)
    exchange_until_close(sb, b"BROKEN\r\n\r\n")
    assert sb.responses == 9
    assert sb.writes == sb.responses


def test_render_response_builds_one_complete_message() -> None:
    body = b'{"success":true}'
    data = _render_response(200, body, headers=[("X-A", "1")])
    assert isinstance(data, bytes)
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 200 OK"
    assert "Content-Type: application/json; charset=utf-8" in lines
    assert f"Content-Length: {len(body)}" in lines
    assert "X-A: 1" in lines
    assert any(line.startswith("Date: ") and line.endswith(" GMT") for line in lines)
    assert rest == body
    closing = _render_response(404, b"x", "text/plain", keep_alive=False, head_only=True)
    assert closing.endswith(b"Content-Length: 1\r\nConnection: close\r\n\r\n")
    assert _render_response(204, b"ignored").endswith(b"GMT\r\n\r\n")


def test_sequential_requests_on_one_raw_socket(sb: PlugzSandbox) -> None:
    path = "/instances/inst-1/token/tok-1/security/two-fa-code"
    with socket.create_connection((sb.host, sb.port), timeout=5) as sock, sock.makefile("rb") as stream:
        for _ in range(20):
            sock.sendall(raw_request(path))
            status, headers, body = read_response(stream)
            assert (status, body) == (200, b'{"success":true,"hasCode":false}')
            assert headers["content-type"] == "application/json; charset=utf-8"
        # HEAD: head only, yet the next answer on the same connection still parses.
        sock.sendall(raw_request(path, method="HEAD"))
        status, headers, _ = read_response_head_only(stream)
        assert (status, headers["allow"]) == (405, "GET, POST")
        sock.sendall(b"\r\n" + raw_request("http://sandbox" + path))  # stray CRLF, absolute-form target
        assert read_response(stream)[0] == 200
        # Expect: 100-continue gets an interim answer before the final one.
        body = b'{"code": "654321"}'
        extra = f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nExpect: 100-continue\r\n"
        sock.sendall(raw_request(path, method="POST", extra=extra))
        assert read_response(stream)[0] == 100
        sock.sendall(body)
        assert read_response(stream)[:3:2] == (200, b'{"success":true}')
    assert sb.connections_accepted == 1


def read_response_head_only(stream: BinaryIO) -> tuple[int, dict[str, str], bytes]:
    status_line = stream.readline()
    headers: dict[str, str] = {}
    while (line := stream.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, b""


@pytest.mark.parametrize(
    ("data", "status"),
    [
        pytest.param(b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 411,
                     id="chunked"),
        pytest.param(b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello", 400,
                     id="chunked-and-length"),
        pytest.param(b"HELLO\r\n\r\n", 400, id="bad-request-line"),
        pytest.param(b"GET /x HTTP/2.0\r\n\r\n", 505, id="http-2"),
        pytest.param(b"GET /x FTP/1.0\r\n\r\n", 400, id="not-http"),
        pytest.param(b"G=T /x HTTP/1.1\r\n\r\n", 400, id="bad-method"),
        pytest.param(b"GET /x HTTP/1.1\r\nNoColon\r\n\r\n", 400, id="header-without-colon"),
        pytest.param(b"GET /x HTTP/1.1\r\nBad Name: 1\r\n\r\n", 400, id="header-name-space"),
        pytest.param(b"GET /x HTTP/1.1\r\nA: 1\r\n folded\r\n\r\n", 400, id="obs-fold"),
        pytest.param(b"POST /x HTTP/1.1\r\nContent-Length: abc\r\n\r\n", 400, id="length-not-number"),
        pytest.param(b"POST /x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400,
                     id="conflicting-lengths"),
        pytest.param(b"POST /x HTTP/1.1\r\nContent-Length: 9999999\r\n\r\n", 413, id="body-too-large"),
        pytest.param(b"GET /x HTTP/1.1\r\nX: " + b"a" * 70_000 + b"\r\n\r\n", 431, id="head-too-large"),
    ],
)  # fmt: skip
def test_protocol_errors_answer_and_close(sb: PlugzSandbox, data: bytes, status: int) -> None:
    response = exchange_until_close(sb, data)
    assert response.startswith(f"HTTP/1.1 {status} ".encode())
    assert b"\r\nConnection: close\r\n" in response
    assert b"\r\nContent-Type: application/json; charset=utf-8\r\n" in response
    assert sb.request_count == 0


def test_parse_head_joins_repeated_headers() -> None:
    request = _parse_head(b"GET /x HTTP/1.1\r\nX-A: 1\r\nx-a: 2\r\nContent-Length: 3, 3\r\nConnection: Close")
    assert (request.headers["x-a"], request.content_length, request.keep_alive) == ("1, 2", 3, False)
    with pytest.raises(_ProtocolError):
        _parse_head(b"GET /x HTTP/1.1\r\n: empty-name")


def test_client_disconnecting_mid_body_is_harmless(sb: PlugzSandbox, http: requests.Session) -> None:
    with socket.create_connection((sb.host, sb.port), timeout=5) as sock:
        sock.sendall(b"POST /x HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc")
    assert http.get(pin_url(sb), headers=AUTH).status_code == 200


async def _concurrent_gets(sb: PlugzSandbox, clients: int, rounds: int) -> list[int]:
    """Open ``clients`` connections at once; each sends ``rounds`` keep-alive GETs."""
    request = raw_request("/instances/inst-1/token/tok-1/security/two-fa-code")

    async def client() -> list[int]:
        reader, writer = await asyncio.open_connection(sb.host, sb.port)
        statuses = []
        try:
            for _ in range(rounds):
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
                statuses.append(int(head.split()[1]))
        finally:
            writer.close()
            await writer.wait_closed()
        return statuses

    results = await asyncio.wait_for(asyncio.gather(*(client() for _ in range(clients))), 30)
    return [status for statuses in results for status in statuses]


def test_many_concurrent_keep_alive_connections(sb: PlugzSandbox) -> None:
    statuses = asyncio.run(_concurrent_gets(sb, clients=200, rounds=3))
    assert statuses == [200] * 600
    assert sb.connections_accepted == 200
    assert sb.request_count == 600


# --------------------------------------------------------------------------- command line


def _read_lines(proc: subprocess.Popen[str], count: int, timeout: float = 15) -> list[str]:
    """``count`` stdout lines, without hanging the suite if the child never prints them."""
    assert proc.stdout is not None
    stdout = proc.stdout
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    try:
        return [lines.get(timeout=timeout) for _ in range(count)]
    except queue.Empty:
        raise TimeoutError("the sandbox did not print its banner") from None


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_command_line_serves_until_signalled(http: requests.Session, stop_signal: signal.Signals) -> None:
    argv = [sys.executable, "-m", "airflow_provider_plugz.testing.sandbox", "--port", "0"]
    argv += ["--instance", "pin-1:tok-a:pin", "--instance", "web.2:tok-b:web"]
    argv += ["--fault", '{"kind": "status", "status": 503, "instance_id": "web.2"}']
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as proc:
        try:
            lines = _read_lines(proc, 5)
            assert lines[0].startswith("# Plugz sandbox listening on http://127.0.0.1:")
            exports = dict(shlex.split(line)[1].split("=", 1) for line in lines[1:4])
            assert lines[4] == "# queued a status fault for the next 1 call(s) on web.2\n"
            base_url = exports["PLUGZ_SANDBOX_URL"]
            default = json.loads(exports["AIRFLOW_CONN_PLUGZ_DEFAULT"])
            assert default == {
                "conn_type": "plugz",
                "host": base_url,
                "login": "pin-1",
                "password": "tok-a",
                "extra": {"client_token": CT},
            }
            assert json.loads(exports["AIRFLOW_CONN_PLUGZ_WEB_2"])["login"] == "web.2"
            url = f"{base_url}/instances/pin-1/token/tok-a/security/two-fa-code"
            assert http.get(url, headers=AUTH).json() == {"success": True, "hasCode": True}
            web_url = f"{base_url}/instances/web.2/token/tok-b/security/two-fa-code"
            assert http.get(web_url, headers=AUTH).status_code == 503  # the --fault
            assert http.get(web_url, headers=AUTH).status_code == 400
        finally:
            proc.send_signal(stop_signal)
        assert proc.wait(timeout=15) == 0
        assert proc.stderr is not None
        assert "stopped" in proc.stderr.read()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(["--host", "0.0.0.0"], "refusing to listen on 0.0.0.0", id="non-loopback"),
        pytest.param(["--instance", "only-id"], "ID:TOKEN", id="bad-instance"),
        pytest.param(["--instance", "a:b:gold"], "unknown instance flag", id="bad-flag"),
        pytest.param(["--latency", "-1"], "--latency", id="negative-latency"),
        pytest.param(["--fault", "drop"], "expected a JSON object", id="fault-not-json"),
        pytest.param(
            ["--fault", '{"kind": "explode"}'],
            "kind must be one of status, html, malformed, drop, slow, redirect, drip, raw",
            id="fault-kind",
        ),
        pytest.param(
            ["--fault", '{"kind": "drip", "interval": 0}'], "interval must be", id="fault-bad-interval"
        ),
        pytest.param(
            ["--fault", '{"kind": "drop", "times": 0}'],
            "times must be an integer >= 1",
            id="fault-times-zero",
        ),
    ],
)
def test_command_line_refuses_bad_options(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as excinfo:
        main(argv)
    assert excinfo.value.code == 2
    assert message in capsys.readouterr().err


def test_command_line_reports_a_busy_port(sb: PlugzSandbox, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--port", str(sb.port)]) == 1
    assert f"cannot listen on 127.0.0.1 port {sb.port}" in capsys.readouterr().err


# --------------------------------------------------------------------------- packaging and fixtures


def test_importing_the_package_starts_nothing() -> None:
    code = (
        "import sys\n"
        "import airflow_provider_plugz.testing as t\n"
        "assert 'asyncio' not in sys.modules, 'asyncio imported eagerly'\n"
        "assert 'airflow_provider_plugz.testing.sandbox' not in sys.modules\n"
        "assert t.PlugzSandbox and t.Fault and t.SandboxInstance\n"
        "heavy = {m.split('.')[0] for m in sys.modules} & {'airflow', 'requests', 'urllib3', 'httpx'}\n"
        "assert not heavy, heavy\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 0, result.stderr


def test_pytest_plugin_imports_only_pytest_and_typing_at_top_level() -> None:
    import airflow_provider_plugz.testing.pytest_plugin as plugin

    tree = ast.parse(Path(plugin.__file__).read_text())
    imported = set()
    for node in tree.body:  # the top level only; TYPE_CHECKING blocks are ast.If and skipped
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module or "")
    assert imported == {"__future__", "typing", "pytest"}


def test_lazy_exports_reject_unknown_names() -> None:
    import airflow_provider_plugz.testing as testing

    with pytest.raises(AttributeError):
        _ = testing.Nothing
    assert {"Fault", "PlugzSandbox", "SandboxInstance"} <= set(dir(testing))


def test_plugz_sandbox_fixture(plugz_sandbox: PlugzSandbox, http: requests.Session) -> None:
    url = pin_url(plugz_sandbox, "sandbox-instance", "sandbox-token")
    assert http.get(url, headers={"Client-Token": "sandbox-client-token"}).json() == {
        "success": True,
        "hasCode": False,
    }
    assert http.get(url).status_code == 400
    assert plugz_sandbox.instance("sandbox-instance").kind == "mobile"


def test_plugz_connection_fixture(plugz_connection: PlugzSandbox, http: requests.Session) -> None:
    conn = json.loads(os.environ["AIRFLOW_CONN_PLUGZ_DEFAULT"])
    assert conn["host"] == plugz_connection.base_url
    url = f"{conn['host']}/instances/{conn['login']}/token/{conn['password']}/security/two-fa-code"
    response = http.get(url, headers={"Client-Token": conn["extra"]["client_token"]})
    assert response.json() == {"success": True, "hasCode": False}
