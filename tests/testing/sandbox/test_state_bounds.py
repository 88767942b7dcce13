"""The sandbox is safe to leave running, in bytes too: every store is bounded in bytes (counted as
stored: UTF-8), listings are paged, and a request target it cannot parse gets a 400, not a
traceback. Bytes are measured with the sandbox's own accounting (``PlugzSandbox.usage``)."""

from __future__ import annotations

import itertools
import json
import logging
import socket
from typing import TYPE_CHECKING

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_plugz.testing.sandbox import Fault, PlugzSandbox, SandboxFullError, _state, _wire
from airflow_provider_plugz.testing.sandbox._control import MAX_PAGE_SIZE, PAGE_BYTES
from airflow_provider_plugz.testing.sandbox._http import MAX_TARGET, TargetError, parse_target
from tests.support.sandbox import (
    AUTH,
    CT,
    JSON_CT,
    NO_PIN,
    PIN_PATH,
    WRITE,
    exchange_until_close,
    pin_url,
    raw_request,
    read_response,
    send_texts,
    wait_until,
)

if TYPE_CHECKING:
    import requests

SEND = {**AUTH, "Content-Type": "application/json"}
PHONE = "5511988887777"
EMOJI = "\N{GRINNING FACE}"  # 1 character, 4 bytes of UTF-8 (and 4 bytes per character of a str)
SECRET = "tok-1"


def _send(sb: PlugzSandbox, http: requests.Session, message: str, phone: str = PHONE) -> int:
    response = http.post(
        pin_url(sb, endpoint="send-text"), headers=SEND, json={"phone": phone, "message": message}
    )
    return response.status_code


def _entry_bytes(instance_id: str, phone: str, message: str) -> int:
    """What the outbox counts for one message: its fields as UTF-8 (ids: 32 + 20 ASCII characters)."""
    return len(instance_id.encode()) + len(phone.encode()) + len(message.encode()) + 32 + 20


# --------------------------------------------------------------------------- request targets

_ABS = "http://127.0.0.1" + PIN_PATH
BAD_TARGETS = [
    pytest.param("http://[::1" + PIN_PATH, 400, id="absolute-unclosed-ipv6"),
    pytest.param("http://[::1/_sandbox/messages", 400, id="absolute-unclosed-ipv6-control"),
    pytest.param("http://[zz::1]" + PIN_PATH, 400, id="absolute-bad-ipv6"),
    pytest.param("http://[::1]x" + PIN_PATH, 400, id="absolute-junk-after-ipv6"),
    pytest.param("http://" + PIN_PATH, 400, id="absolute-without-host"),
    pytest.param("http://127.0.0.1:99999" + PIN_PATH, 400, id="absolute-port-too-large"),
    pytest.param("http://127.0.0.1:8o" + PIN_PATH, 400, id="absolute-port-not-number"),
    pytest.param("http://a:1:2" + PIN_PATH, 400, id="absolute-two-ports"),
    pytest.param("http://h<o>st" + PIN_PATH, 400, id="absolute-bad-host-chars"),
    pytest.param("http://user:pw@127.0.0.1" + PIN_PATH, 400, id="absolute-userinfo"),
    pytest.param("ftp://127.0.0.1" + PIN_PATH, 400, id="other-scheme"),
    pytest.param("http:" + PIN_PATH, 400, id="scheme-without-slashes"),
    pytest.param("*", 400, id="asterisk-form"),
    pytest.param("127.0.0.1:443", 400, id="authority-form"),
    pytest.param("instances/inst-1/token/tok-1/status", 400, id="relative"),
    pytest.param(PIN_PATH + "%", 400, id="percent-at-end"),
    pytest.param(PIN_PATH + "%2", 400, id="percent-one-digit"),
    pytest.param("/instances/inst-1/token/tok-1%zz/status", 400, id="percent-not-hex"),
    pytest.param("/instances/%ff%fe/token/tok-1/status", 400, id="percent-not-utf8"),
    pytest.param("/instances/%c0%af/token/tok-1/status", 400, id="percent-overlong-utf8"),
    pytest.param(PIN_PATH + "?a=%zz", 400, id="query-bad-percent"),
    pytest.param(PIN_PATH + "?a=%ff", 400, id="query-not-utf8"),
    pytest.param(_ABS + "%g0", 400, id="absolute-bad-percent"),
    pytest.param(PIN_PATH + "#frag", 400, id="fragment"),
    pytest.param("/" + "a" * MAX_TARGET, 414, id="too-long"),
    pytest.param(_ABS + "?" + "q" * MAX_TARGET, 414, id="absolute-too-long"),
    pytest.param("/" + "a" * 100_000, 414, id="longer-than-a-whole-head"),
]


@pytest.mark.parametrize("method", [pytest.param("GET", id="get"), pytest.param("OPTIONS", id="options")])
@pytest.mark.parametrize(("target", "status"), BAD_TARGETS)
def test_a_target_it_cannot_parse_gets_a_json_4xx_and_a_clean_close(
    sb: PlugzSandbox, caplog: pytest.LogCaptureFixture, method: str, target: str, status: int
) -> None:
    """Answered (400, or 414 when too long), not a traceback and a dropped connection; the answer
    never quotes the target (an API target carries the instance token); nothing is recorded."""
    caplog.set_level(logging.DEBUG)
    response = exchange_until_close(sb, raw_request(target, method=method))
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {status} ".encode())
    assert b"\r\nConnection: close" in head
    assert f"\r\nContent-Type: {JSON_CT}".encode() in head
    error = json.loads(body)
    assert set(error) == {"error", "message"}
    assert SECRET not in error["message"]
    assert sb.request_count == 0
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert [r for r in caplog.records if r.exc_info] == []
    with socket.create_connection((sb.host, sb.port), timeout=5) as sock, sock.makefile("rb") as stream:
        sock.sendall(raw_request(PIN_PATH))
        assert read_response(stream)[::2] == (200, NO_PIN)  # still serving


@pytest.mark.parametrize(
    ("target", "status"),
    [
        pytest.param(_ABS, 200, id="absolute-ipv4"),
        pytest.param("HTTP://LOCALHOST:1" + PIN_PATH, 200, id="absolute-upper-case-any-port"),
        pytest.param("http://[::1]:80" + PIN_PATH, 200, id="absolute-ipv6"),
        pytest.param("https://127.0.0.1" + PIN_PATH + "?x=1", 200, id="absolute-https-with-query"),
        pytest.param("http://127.0.0.1:" + PIN_PATH, 200, id="absolute-empty-port"),
        pytest.param("/instances/inst%2D1/token/tok%2d1/security/two-fa-code", 200, id="percent-encoded"),
        pytest.param(PIN_PATH + "?a=%C3%A9&b", 200, id="query-utf8"),
        pytest.param("http://127.0.0.1", 404, id="absolute-without-path"),
        pytest.param("http://127.0.0.1?x=1", 404, id="absolute-query-without-path"),
        pytest.param("/instances/%C3%A9/token/tok-1/status", 404, id="utf8-instance-id"),
        pytest.param("/" + "a" * (MAX_TARGET - 1), 404, id="longest"),
    ],
)
def test_targets_it_can_parse_are_served(sb: PlugzSandbox, target: str, status: int) -> None:
    with socket.create_connection((sb.host, sb.port), timeout=5) as sock, sock.makefile("rb") as stream:
        sock.sendall(raw_request(target) * 2)  # and the connection stays usable
        assert [read_response(stream)[0] for _ in range(2)] == [status, status]
    assert [r.path for r in sb.requests] == [target, target]


@settings(max_examples=300, deadline=None)
@given(
    st.text(st.characters(codec="ascii"), max_size=60)
    | st.from_regex(r"\A(https?://)?[\[\]:@/%?#*a-f0-9.]*\Z")
)
def test_parse_target_refuses_only_with_a_target_error(target: str) -> None:
    """Whatever the target, a parsed path (starting with /) or a TargetError with a 4xx: never
    another exception (which the wire would log as a traceback)."""
    try:
        parsed = parse_target(target)
    except TargetError as exc:
        refused: TargetError | None = exc
    else:
        refused = None
        assert parsed.path.startswith("/")
    assert refused is None or (refused.status in (400, 414) and refused.message)


# --------------------------------------------------------------------------- the outbox in bytes


@pytest.mark.parametrize(
    ("messages", "outbox_bytes", "kept", "dropped"),
    [
        # Four 1,000-emoji texts: 1,000 characters each but 4,000 bytes. A budget counted in
        # characters (len()) would keep all four.
        pytest.param([EMOJI * 1000] * 4, 10_000, 2, 2, id="emoji-counted-as-utf8"),
        pytest.param(["a" * 1000] * 4, 10_000, 4, 0, id="ascii-fits"),
        pytest.param(["a" * 5000, "b", "c"], 5000, 2, 1, id="oldest-go-first"),
        pytest.param(["a" * 6000, "b"], 5000, 1, 1, id="larger-than-the-budget-is-dropped-at-once"),
        pytest.param(["a", "b"], 0, 0, 2, id="zero-keeps-nothing"),
    ],
)
def test_the_outbox_is_bounded_in_utf8_bytes(
    http: requests.Session, messages: list[str], outbox_bytes: int, kept: int, dropped: int
) -> None:
    with PlugzSandbox(client_token=CT, outbox_bytes=outbox_bytes) as sb:
        sb.add_instance("inst-1", "tok-1")
        for message in messages:
            assert _send(sb, http, message) == 200
        assert [m.message for m in sb.messages] == messages[len(messages) - kept :]
        assert sb.messages_dropped == dropped
        usage = sb.usage
        assert (usage.messages, usage.messages_dropped) == (kept, dropped)
        assert usage.message_bytes == sum(
            _entry_bytes("inst-1", PHONE, m) for m in messages[len(messages) - kept :]
        )
        assert usage.message_bytes <= outbox_bytes


def test_megabyte_messages_with_an_emoji_stay_within_the_default_budget(http: requests.Session) -> None:
    """The issue's example, scaled by the sandbox's own count: 24 texts of 1 MB with one emoji."""
    message = EMOJI + "x" * 1_000_000
    with PlugzSandbox(client_token=CT) as sb:
        sb.add_instance("inst-1", "tok-1")
        for _ in range(24):
            assert _send(sb, http, message) == 200
        usage = sb.usage
        assert usage.message_bytes <= _state.DEFAULT_OUTBOX_BYTES
        assert usage.messages + usage.messages_dropped == 24
        assert usage.messages_dropped > 0
        assert usage.request_bytes <= _state.DEFAULT_RECORD_BYTES


def test_a_request_body_over_1_mib_is_refused_with_a_413(sb: PlugzSandbox, http: requests.Session) -> None:
    response = http.post(
        pin_url(sb, endpoint="send-text"), headers=SEND, json={"phone": PHONE, "message": "x" * (1024 * 1024)}
    )
    assert response.status_code == 413
    assert response.headers["Content-Type"] == JSON_CT
    assert response.json()["message"] == "request body larger than 1048576 bytes"
    assert sb.messages == []
    assert sb.request_count == 0


def test_clearing_zeroes_dropped_but_seq_goes_on(http: requests.Session) -> None:
    with PlugzSandbox(client_token=CT, outbox_limit=2) as sb:
        sb.add_instance("inst-1", "tok-1")
        for text in "abc":
            _send(sb, http, text)
        assert [(m.seq, m.message) for m in sb.messages] == [(2, "b"), (3, "c")]
        assert sb.messages_dropped == 1
        sb.clear_messages()
        assert (sb.messages, sb.messages_dropped, sb.usage.message_bytes) == ([], 0, 0)
        _send(sb, http, "d")
        assert [(m.seq, m.message) for m in sb.messages] == [(4, "d")]


def test_a_lone_surrogate_is_kept_and_listed(sb: PlugzSandbox, http: requests.Session) -> None:
    """JSON may carry a lone surrogate, which has no UTF-8 form: stored and listed all the same."""
    data = b'{"phone": "5511988887777", "message": "a\\ud800b"}'
    assert http.post(pin_url(sb, endpoint="send-text"), headers=SEND, data=data).status_code == 200
    assert [m.message for m in sb.messages] == ["a\ud800b"]
    response = http.get(f"{sb.base_url}/_sandbox/messages")
    assert response.status_code == 200
    assert [m["message"] for m in response.json()] == ["a\ud800b"]


# --------------------------------------------------------------------------- the listing in pages


def _pages(sb: PlugzSandbox, http: requests.Session, query: str = "") -> list[requests.Response]:
    """Every page of the listing, following its Link headers."""
    pages = [http.get(f"{sb.base_url}/_sandbox/messages{query}")]
    while "next" in pages[-1].links:
        assert len(pages) < 100
        pages.append(http.get(sb.base_url + pages[-1].links["next"]["url"]))
    return pages


@pytest.mark.parametrize(
    ("count", "size", "query", "lengths"),
    [
        pytest.param(3, 10, "", [3], id="one-page"),
        pytest.param(250, None, "", [100, 100, 50], id="default-page-size"),
        pytest.param(7, 10, "?limit=3", [3, 3, 1], id="limit"),
        pytest.param(7, 10, "?limit=", [7], id="empty-limit-is-the-default"),
        pytest.param(1200, None, "?limit=5000", [MAX_PAGE_SIZE, 200], id="limit-capped"),
        pytest.param(5, 300_000, "", [3, 2], id="byte-budget"),
        pytest.param(3, 1_000_000, "?limit=10", [1, 1, 1], id="a-large-message-gets-its-own-page"),
        pytest.param(0, 10, "", [0], id="empty"),
    ],
)
def test_the_listing_pages_through_everything_once(
    http: requests.Session, count: int, size: int | None, query: str, lengths: list[int]
) -> None:
    """``size`` None: many short texts, pipelined."""
    with PlugzSandbox(client_token=CT) as sb:
        sb.add_instance("inst-1", "tok-1")
        if size is None:
            assert send_texts(sb, count) == [200] * count
        for i in range(count if size else 0):
            assert _send(sb, http, f"{i:06d}".ljust(size, ".")) == 200
        pages = _pages(sb, http, query)
        assert [len(page.json()) for page in pages] == lengths
        listed = [m for page in pages for m in page.json()]
        assert [m["seq"] for m in listed] == list(range(1, count + 1))
        assert [m["message"] for m in listed] == [m.message for m in sb.messages]
        for page in pages:
            assert page.status_code == 200
            assert len(page.content) <= PAGE_BYTES or len(page.json()) == 1
            assert (page.headers["X-Sandbox-Kept"], page.headers["X-Sandbox-Dropped"]) == (str(count), "0")
        for page, following in itertools.pairwise(pages):
            assert page.headers["X-Sandbox-Next-After"] == str(following.json()[0]["seq"] - 1)
        assert "X-Sandbox-Next-After" not in pages[-1].headers


def test_the_listing_says_what_was_dropped(http: requests.Session) -> None:
    with PlugzSandbox(client_token=CT, outbox_limit=3) as sb:
        sb.add_instance("inst-1", "tok-1")
        for i in range(5):
            _send(sb, http, f"m{i}")
        response = http.get(f"{sb.base_url}/_sandbox/messages?after=1&limit=2")
        assert [(m["seq"], m["message"]) for m in response.json()] == [(3, "m2"), (4, "m3")]
        assert (response.headers["X-Sandbox-Kept"], response.headers["X-Sandbox-Dropped"]) == ("3", "2")
        assert response.links["next"]["url"] == "/_sandbox/messages?after=4&limit=2"
        assert http.get(f"{sb.base_url}/_sandbox/messages?after=5").json() == []


@pytest.mark.parametrize(
    ("query", "error"),
    [
        pytest.param("?limit=0", "limit must be an integer >= 1, got '0'", id="limit-zero"),
        pytest.param("?limit=-1", "limit must be an integer >= 1", id="limit-negative"),
        pytest.param("?limit=ten", "limit must be an integer >= 1", id="limit-word"),
        pytest.param("?limit=%C2%B2", "limit must be an integer >= 1", id="limit-superscript-digit"),
        pytest.param("?after=1.5", "after must be an integer >= 0", id="after-fraction"),
        pytest.param("?after=" + "9" * 40, "after must be an integer >= 0", id="after-huge"),
        pytest.param("?limt=5", "'limt' is not a parameter of this listing", id="unknown"),
        pytest.param("?limit=1&limit=2", "'limit' is given twice", id="twice"),
    ],
)
def test_bad_listing_queries_are_refused(
    sb: PlugzSandbox, http: requests.Session, query: str, error: str
) -> None:
    response = http.get(f"{sb.base_url}/_sandbox/messages{query}")
    assert response.status_code == 400
    assert response.json()["error"].startswith(error)


# --------------------------------------------------------------------------- the other stores


def test_usage_counts_every_store(sb: PlugzSandbox, http: requests.Session) -> None:
    before = sb.usage
    assert (before.instances, before.requests, before.faults, before.messages) == (4, 0, 0, 0)
    assert before.instance_bytes == sum(
        len(i.instance_id) + len(i.token) + len(i.phone) for i in sb.instances
    )
    sb.inject(Fault.status(503, "x" * 100, {"Retry-After": "1"}), times=3)
    assert (sb.usage.faults, sb.usage.fault_bytes) == (1, 100 + len("text/plain; charset=utf-8") + 12)
    assert http.get(pin_url(sb), headers=AUTH).status_code == 503
    for _ in range(2):
        http.get(pin_url(sb), headers=AUTH)
    assert (sb.usage.faults, sb.usage.fault_bytes) == (0, 0)  # played out: forgotten
    assert sb.usage.requests == 3
    assert sb.usage.request_bytes == sum(
        len(r.path) + len(r.body) + sum(len(k) + len(v) for k, v in r.headers.items()) for r in sb.requests
    )
    response = http.get(f"{sb.base_url}/_sandbox/usage")
    assert response.json() == {
        "messages": 0,
        "message_bytes": 0,
        "messages_dropped": 0,
        "requests": 3,
        "request_bytes": sb.usage.request_bytes,
        "faults": 0,
        "fault_bytes": 0,
        "instances": 4,
        "instance_bytes": before.instance_bytes,
    }


def test_instances_are_capped(http: requests.Session, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_state, "MAX_INSTANCES", 3)
    with PlugzSandbox(client_token=CT) as sb:
        for n in range(3):
            sb.add_instance(f"i{n}", "t")
        with pytest.raises(SandboxFullError, match="at most 3 instances"):
            sb.add_instance("i3", "t")
        response = http.post(f"{sb.base_url}/_sandbox/instances", json={"instance_id": "i3", "token": "t"})
        assert response.status_code == 507
        assert "at most 3 instances" in response.json()["error"]
        sb.add_instance("i0", "t2", has_code=True)  # replacing one still works
        sb.remove_instance("i1")
        sb.add_instance("i3", "t")  # and so does adding after a removal
        assert sorted(i.instance_id for i in sb.instances) == ["i0", "i2", "i3"]


@pytest.mark.parametrize(
    ("instance_id", "token"),
    [
        pytest.param("i" * 1025, "t", id="long-id"),
        pytest.param("i", "t" * 1025, id="long-token"),
        pytest.param(EMOJI * 257, "t", id="id-long-in-utf8"),
    ],
)
def test_instance_ids_and_tokens_are_at_most_1_kib(
    sb: PlugzSandbox, http: requests.Session, instance_id: str, token: str
) -> None:
    with pytest.raises(ValueError, match="at most 1024 bytes"):
        sb.add_instance(instance_id, token)
    response = http.post(
        f"{sb.base_url}/_sandbox/instances", json={"instance_id": instance_id, "token": token}
    )
    assert (response.status_code, len(sb.instances)) == (400, 4)
    sb.add_instance(EMOJI * 256, "t" * 1024)  # exactly 1 KiB each: accepted


def test_queued_faults_are_capped_in_count(
    sb: PlugzSandbox, http: requests.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_state, "MAX_FAULTS", 2)
    sb.inject(Fault.drop())
    sb.inject(Fault.drop(), times=1000)  # times costs nothing
    with pytest.raises(SandboxFullError, match="at most 2 faults"):
        sb.inject(Fault.drop())
    response = http.post(f"{sb.base_url}/_sandbox/faults", json={"kind": "drop"}, headers=WRITE)
    assert response.status_code == 507
    assert len(sb.pending_faults) == 2
    sb.clear_faults()
    sb.inject(Fault.drop())


def test_queued_faults_are_capped_in_bytes(sb: PlugzSandbox) -> None:
    body = b"x" * (40 * 1024 * 1024)  # one object: the test itself stays small
    sb.inject(Fault.raw(body))
    with pytest.raises(SandboxFullError, match="67108864 bytes"):
        sb.inject(Fault.raw(body))
    sb.inject(Fault.raw(body[: 24 * 1024 * 1024]))  # what still fits
    assert sb.usage.fault_bytes == 64 * 1024 * 1024


DEEP = b"[" * 100_000  # nested past the recursion limit: json.loads raises RecursionError


@pytest.mark.parametrize(
    ("path", "headers", "error"),
    [
        pytest.param("/instances/inst-1/token/tok-1/send-text", SEND, "Invalid JSON body", id="send-text"),
        pytest.param(PIN_PATH, SEND, "Invalid JSON body", id="set-pin"),
        pytest.param("/_sandbox/instances", WRITE, "body must be a JSON object", id="control-instances"),
        pytest.param("/_sandbox/faults", WRITE, "body must be a JSON object", id="control-faults"),
    ],
)
def test_a_body_nested_too_deep_is_a_400_not_a_traceback(
    sb: PlugzSandbox,
    http: requests.Session,
    caplog: pytest.LogCaptureFixture,
    path: str,
    headers: dict[str, str],
    error: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    response = http.post(sb.base_url + path, headers=headers, data=DEEP)
    assert (response.status_code, response.json()["error"]) == (400, error)
    assert [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info] == []


def test_bodies_held_at_once_are_capped(sb: PlugzSandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    """Many connections with a 1 MiB body each cannot pile up: past the budget, a 503."""
    monkeypatch.setattr(_wire, "MAX_BODIES", 1000)
    post = raw_request(
        PIN_PATH, method="POST", extra="Content-Type: application/json\r\nContent-Length: 900\r\n"
    )
    with socket.create_connection((sb.host, sb.port), timeout=5) as first, first.makefile("rb") as stream:
        first.sendall(post + b" " * 600)
        wait_until(lambda: sb.buffered_bytes == 600, "the first body to be held")
        second = exchange_until_close(sb, post + b" " * 900)
        assert second.startswith(b"HTTP/1.1 503 ")
        assert b"bytes of request bodies already" in second
        first.sendall(b" " * 300)
        assert read_response(stream)[0] == 400  # answered: blank is no JSON
    wait_until(lambda: sb.buffered_bytes == 0, "the bodies to be released")
    with socket.create_connection((sb.host, sb.port), timeout=5) as third, third.makefile("rb") as stream:
        third.sendall(post + b" " * 900)
        assert read_response(stream)[0] == 400
