"""The sandbox's wire: HTTP/1.1 framing, keep-alive, one write per answer, malformed requests,
idle timeout, the connection cap, many clients at once."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import time
from typing import TYPE_CHECKING

import pytest

from airflow_provider_plugz.testing import Fault, PlugzSandbox
from tests.support.sandbox import (
    AUTH,
    JSON_CT,
    NO_PIN,
    PIN_PATH,
    WRITE,
    concurrent_gets,
    exchange_until_close,
    pin_url,
    raw_request,
    read_response,
    wait_until,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    import requests

DATE = re.compile(rb"Date: (Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT")


def test_an_answer_on_the_wire(sb: PlugzSandbox) -> None:
    """Status line, our Server and Date, type and length, then the body: nothing else."""
    with socket.create_connection((sb.host, sb.port), timeout=5) as sock, sock.makefile("rb") as stream:
        sock.sendall(raw_request(PIN_PATH))
        lines = [stream.readline() for _ in range(6)]
        assert lines[0] == b"HTTP/1.1 200 OK\r\n"
        assert lines[1] == b"Server: plugz-sandbox\r\n"
        assert DATE.fullmatch(lines[2].removesuffix(b"\r\n"))
        assert lines[3:] == [
            b"Content-Type: " + JSON_CT.encode() + b"\r\n",
            b"Content-Length: 32\r\n",
            b"\r\n",
        ]
        assert stream.read(32) == NO_PIN


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
    data = exchange_until_close(sb, raw_request(PIN_PATH, version="HTTP/1.0"))
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\nConnection: close\r\n" in data
    assert data.endswith(NO_PIN)


def test_every_response_is_one_write(sb: PlugzSandbox, http: requests.Session) -> None:
    """Two writes per answer would stall every keep-alive request ~40 ms (Nagle meets delayed ACK)."""
    sb.inject(Fault.html())
    sb.inject(Fault.slow(0.001))
    http.get(pin_url(sb), headers=AUTH)
    http.get(pin_url(sb), headers=AUTH)
    http.get(pin_url(sb, endpoint="status"), headers=AUTH)
    http.put(pin_url(sb), headers=AUTH)
    http.post(pin_url(sb), headers=AUTH, json={"code": "123456"})
    http.get(f"{sb.base_url}/_sandbox/instances")
    http.delete(f"{sb.base_url}/_sandbox/faults", headers=WRITE)
    http.head(pin_url(sb), headers=AUTH)
    exchange_until_close(sb, b"BROKEN\r\n\r\n")
    assert sb.responses == 9
    assert sb.writes == sb.responses


def test_sequential_requests_on_one_raw_socket(sb: PlugzSandbox) -> None:
    with socket.create_connection((sb.host, sb.port), timeout=5) as sock, sock.makefile("rb") as stream:
        for _ in range(20):
            sock.sendall(raw_request(PIN_PATH))
            status, headers, body = read_response(stream)
            assert (status, body) == (200, NO_PIN)
            assert headers["content-type"] == JSON_CT
        # HEAD: head only, yet the next answer on the same connection still parses.
        sock.sendall(raw_request(PIN_PATH, method="HEAD"))
        status, headers, _ = read_response(stream, head_only=True)
        assert (status, headers["allow"], headers["content-length"]) == (405, "GET, POST", "80")
        sock.sendall(b"\r\n" + raw_request("http://sandbox" + PIN_PATH))  # stray CRLF, absolute-form target
        assert read_response(stream)[0] == 200
        # Expect: 100-continue gets an interim answer before the final one.
        body = b'{"code": "654321"}'
        extra = f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nExpect: 100-continue\r\n"
        sock.sendall(raw_request(PIN_PATH, method="POST", extra=extra))
        assert read_response(stream)[0] == 100
        sock.sendall(body)
        assert read_response(stream)[:3:2] == (200, b'{"success":true}')
    assert sb.connections_accepted == 1


def test_pipelined_requests_are_answered_in_order(sb: PlugzSandbox) -> None:
    status_path = "/instances/inst-2/token/tok-2/status"
    with socket.create_connection((sb.host, sb.port), timeout=5) as sock, sock.makefile("rb") as stream:
        sock.sendall(raw_request(PIN_PATH) + raw_request(status_path) + raw_request(PIN_PATH))
        answers = [read_response(stream)[::2] for _ in range(3)]
    connected = b'{"connected":true,"session":true,"smartphoneConnected":true}'
    assert answers == [(200, NO_PIN), (200, connected), (200, NO_PIN)]
    assert [r.path for r in sb.requests] == [PIN_PATH, status_path, PIN_PATH]


def test_request_heads_as_recorded(sb: PlugzSandbox) -> None:
    """Repeated names are joined, a repeated equal Content-Length is one, an obsolete line fold
    is unfolded, and ``Connection: Close`` ends the connection after the answer."""
    data = raw_request(
        "/instances/inst-1/token/tok-1/status",
        method="POST",
        extra="X-A: 1\r\nx-a: 2\r\nX-Folded: a\r\n b\r\nContent-Length: 3, 3\r\nConnection: Close\r\n",
    )
    answer = exchange_until_close(sb, data + b"abc")
    assert answer.startswith(b"HTTP/1.1 405 ")
    (recorded,) = sb.requests
    assert (recorded.headers["x-a"], recorded.headers["x-folded"], recorded.body) == ("1, 2", "a b", b"abc")


def test_chunked_request_bodies_are_read(sb: PlugzSandbox) -> None:
    body = b'{"code": "123456"}'
    chunked = b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (5, body[:5], len(body) - 5, body[5:])
    extra = "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
    with socket.create_connection((sb.host, sb.port), timeout=5) as sock, sock.makefile("rb") as stream:
        sock.sendall(raw_request(PIN_PATH, method="POST", extra=extra) + chunked)
        assert read_response(stream)[::2] == (200, b'{"success":true}')
    assert sb.requests[0].body == body
    assert sb.instance("inst-1").has_code is True


HOST = b"Host: 127.0.0.1\r\n"
POST = b"POST /x HTTP/1.1\r\n" + HOST
PROTOCOL_ERRORS = [
    pytest.param(POST + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello",
                 400, id="chunked-and-length"),
    pytest.param(POST + b"Transfer-Encoding: gzip\r\n\r\n", 501, id="unknown-coding"),
    pytest.param(b"HELLO\r\n\r\n", 400, id="bad-request-line"),
    pytest.param(b"GET /x HTTP/2.0\r\n" + HOST + b"\r\n", 505, id="http-2"),
    pytest.param(b"GET /x FTP/1.0\r\n\r\n", 400, id="not-http"),
    pytest.param(b"G=T /x HTTP/1.1\r\n" + HOST + b"\r\n", 400, id="bad-method"),
    pytest.param("GET /ä HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode(), 400, id="non-ascii-target"),
    pytest.param(b"GET /x HTTP/1.1\r\n\r\n", 400, id="http-1.1-without-host"),
    pytest.param(b"GET /x HTTP/1.1\r\n" + HOST + b"NoColon\r\n\r\n", 400, id="header-without-colon"),
    pytest.param(b"GET /x HTTP/1.1\r\n" + HOST + b"Bad Name: 1\r\n\r\n", 400, id="header-name-space"),
    pytest.param(b"GET /x HTTP/1.1\r\n" + HOST + b": empty-name\r\n\r\n", 400, id="empty-header-name"),
    pytest.param(POST + b"Content-Length: abc\r\n\r\n", 400, id="length-not-number"),
    pytest.param(POST + b"Content-Length: 1\r\nContent-Length: 2\r\n\r\n", 400,
                 id="conflicting-lengths"),
    pytest.param(POST + b"Content-Length: 9999999\r\n\r\n", 413, id="body-too-large"),
    pytest.param(POST + b"Transfer-Encoding: chunked\r\n\r\n100001\r\n"
                 + b"x" * 0x100001 + b"\r\n0\r\n\r\n", 413, id="chunked-body-too-large"),
    pytest.param(b"GET /x HTTP/1.1\r\n" + HOST + b"X: " + b"a" * 200_000 + b"\r\n\r\n", 431,
                 id="head-too-large"),
    pytest.param(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(32) + b"\r\n\r\n", 400,
                 id="tls-client-hello"),
]  # fmt: skip


@pytest.mark.parametrize(("data", "status"), PROTOCOL_ERRORS)
def test_protocol_errors_answer_and_close(
    sb: PlugzSandbox, caplog: pytest.LogCaptureFixture, data: bytes, status: int
) -> None:
    """Whatever h11 refuses gets a JSON answer and a close; nothing is logged, nothing recorded."""
    caplog.set_level(logging.DEBUG)
    response = exchange_until_close(sb, data)
    assert response.startswith(f"HTTP/1.1 {status} ".encode())
    assert b"\r\nConnection: close\r\n" in response
    assert b"\r\nContent-Type: application/json; charset=utf-8\r\n" in response
    assert b'"message":"' in response
    assert sb.request_count == 0
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_protocol_error_answers_never_echo_the_request(sb: PlugzSandbox) -> None:
    """h11 quotes the bad line in its reason; the answer leaves it out (a URL can hold a token)."""
    response = exchange_until_close(sb, b"GET /instances/i/token/SECRET-TOKEN/status HTTP/9\r\n\r\n")
    assert response.startswith(b"HTTP/1.1 400 ")
    assert b"SECRET-TOKEN" not in response


def test_client_disconnecting_mid_body_is_harmless(
    sb: PlugzSandbox, http: requests.Session, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with socket.create_connection((sb.host, sb.port), timeout=5) as sock:
        sock.sendall(b"POST /x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\n\r\nabc")
    wait_until(lambda: sb.open_connections == 0, "the half-sent request's connection to end")
    assert http.get(pin_url(sb), headers=AUTH).status_code == 200
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


# --------------------------------------------------------------------------- bounds


IDLE = 0.3


@pytest.fixture
def short_idle() -> Iterator[PlugzSandbox]:
    with PlugzSandbox(idle_timeout=IDLE) as sandbox:
        sandbox.add_instance("inst-1", "tok-1")
        yield sandbox


@pytest.mark.parametrize(
    ("first", "answer"),
    [
        pytest.param(b"", b"", id="never-sends-a-byte"),
        pytest.param(raw_request(PIN_PATH), b"HTTP/1.1 200 OK\r\n", id="idle-after-an-answer"),
        pytest.param(raw_request(PIN_PATH)[:20], b"HTTP/1.1 408 Request Timeout\r\n", id="half-a-head"),
        pytest.param(raw_request(PIN_PATH, method="POST", extra="Content-Length: 10\r\n") + b"abc",
                     b"HTTP/1.1 408 Request Timeout\r\n", id="half-a-body"),
    ],
)  # fmt: skip
def test_idle_connections_are_closed(short_idle: PlugzSandbox, first: bytes, answer: bytes) -> None:
    """A connection waiting on its client is closed after the idle timeout (with a 408 if it had
    begun a request), so abandoned or half-open sockets cannot pile up."""
    with socket.create_connection((short_idle.host, short_idle.port), timeout=IDLE * 20) as sock:
        started = time.monotonic()
        sock.sendall(first)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        waited = time.monotonic() - started
    assert received.startswith(answer)
    assert IDLE * 0.9 <= waited < IDLE * 10
    if answer.endswith(b"Timeout\r\n"):
        assert b"\r\nConnection: close\r\n" in received
        assert b'"message":"no complete request within 0.3 s"' in received
    wait_until(lambda: short_idle.open_connections == 0, "the connection to be forgotten")


def test_a_slow_answer_or_a_latency_is_not_idleness(short_idle: PlugzSandbox, http: requests.Session) -> None:
    short_idle.latency = IDLE * 2  # the sandbox, not the client, is the one taking its time
    assert http.get(pin_url(short_idle), headers=AUTH).status_code == 200


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(Fault.slow(0.3), id="slow"),
        pytest.param(Fault.drip(0.05), id="drip"),
        pytest.param(Fault.drop(delay=0.3), id="drop-late"),
    ],
)
def test_requests_in_progress_counts_requests_not_connections(sb: PlugzSandbox, fault: Fault) -> None:
    """A request is in progress from its last byte read to its answer's last byte (or the drop);
    an idle keep-alive connection is not one."""
    with socket.create_connection((sb.host, sb.port), timeout=5) as idle:
        idle.sendall(raw_request(PIN_PATH))
        with idle.makefile("rb") as stream:
            assert read_response(stream)[0] == 200
        wait_until(lambda: sb.requests_in_progress == 0, "the answer to be written")
        sb.inject(fault)
        with socket.create_connection((sb.host, sb.port), timeout=5) as busy:
            busy.sendall(raw_request(PIN_PATH))
            wait_until(lambda: sb.requests_in_progress == 1, "the faulty request to be taken")
            wait_until(lambda: sb.requests_in_progress == 0, "the faulty request to be done", 5)
        wait_until(lambda: sb.open_connections == 1, "the busy connection to end")
        assert sb.requests_in_progress == 0  # the idle one is still open, and not counted


def test_a_client_that_does_not_read_is_cut_off(short_idle: PlugzSandbox) -> None:
    short_idle.inject(Fault.raw(b"x" * (32 * 1024 * 1024)))  # more than the socket buffers hold
    with socket.create_connection((short_idle.host, short_idle.port), timeout=5) as sock:
        sock.sendall(raw_request(PIN_PATH))
        wait_until(lambda: short_idle.open_connections == 0, "the stalled connection to be aborted", 5)


def test_connections_over_the_cap_get_a_503(http: requests.Session) -> None:
    with PlugzSandbox(max_connections=2) as sandbox:
        sandbox.add_instance("inst-1", "tok-1")
        held = [socket.create_connection((sandbox.host, sandbox.port), timeout=5) for _ in range(2)]
        try:
            wait_until(lambda: sandbox.open_connections == 2, "two connections to be served")
            refused = exchange_until_close(sandbox, b"")
            assert refused.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
            assert b"\r\nRetry-After: 1\r\n" in refused
            assert b"serves at most 2 connections at once" in refused
            with held[0].makefile("rb") as stream:  # the served ones still work
                held[0].sendall(raw_request(PIN_PATH))
                assert read_response(stream)[0] == 200
        finally:
            for sock in held:
                sock.close()
        wait_until(lambda: sandbox.open_connections == 0, "the held connections to end")
        assert http.get(pin_url(sandbox), headers=AUTH).status_code == 200  # room again
        assert sandbox.connections_accepted == 4
        assert sandbox.writes == sandbox.responses


def test_an_http_client_reads_the_503(http: requests.Session) -> None:
    with PlugzSandbox(max_connections=1) as sandbox, socket.create_connection((sandbox.host, sandbox.port)):
        wait_until(lambda: sandbox.open_connections == 1, "the first connection to be served")
        response = http.get(pin_url(sandbox))
        assert (response.status_code, response.headers["Retry-After"]) == (503, "1")


def test_many_concurrent_keep_alive_connections(sb: PlugzSandbox) -> None:
    statuses = asyncio.run(concurrent_gets(sb, clients=200, rounds=3))
    assert statuses == [200] * 600
    assert sb.connections_accepted == 200
    assert sb.request_count == 600
