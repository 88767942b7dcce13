"""Faults over real loopback HTTP: each kind's answer on the wire, delays, queueing, the JSON form."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import logging
import socket
import struct
import threading
import time
from http import HTTPStatus
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_plugz.testing import Fault, PlugzSandbox
from tests.support.sandbox import (
    AUTH,
    JSON_CT,
    NO_PIN,
    PIN_PATH,
    concurrent_gets,
    exchange_until_close,
    pin_url,
    raw_request,
    read_raw_answer,
    read_response,
    wait_until,
)

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
    wait_until(lambda: sb.open_connections == 0, "the dripping connection to end")  # no leaked task
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
    wait_until(lambda: sb.open_connections == 0, "the drip to end", timeout=interval / 2)
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
        assert stream.readline() == f"HTTP/1.1 {fault.code} {HTTPStatus(fault.code).phrase}\r\n".encode()
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
    statuses = asyncio.run(concurrent_gets(sb, clients, rounds=1))
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
def test_fault_json_form_builds_what_the_classmethod_builds(
    sb: PlugzSandbox, http: requests.Session, payload: dict[str, Any], fault: Fault
) -> None:
    """The control API's fault JSON (also the CLI's --fault) queues the very Fault the classmethod builds."""
    response = http.post(f"{sb.base_url}/_sandbox/faults", json=payload)
    assert response.status_code == 201, response.text
    assert sb.pending_faults == [(fault, payload.get("times", 1), None)]


def test_fault_json_form_names_unknown_keys(sb: PlugzSandbox, http: requests.Session) -> None:
    response = http.post(f"{sb.base_url}/_sandbox/faults", json={"kind": "drip", "intervall": 1})
    assert response.status_code == 400
    assert response.json()["error"] == (
        "unknown key(s) intervall for a drip fault; it takes delay, head, instance_id, interval, times"
    )
