"""The PlugzSandbox facade: state, recording and its bounds, Airflow connection helpers, lifecycle."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import socket
from typing import TYPE_CHECKING, Any

import pytest
import requests

from airflow_provider_plugz.testing import Fault, PlugzSandbox
from airflow_provider_plugz.testing.sandbox import Headers, SandboxUsage
from tests.support.sandbox import AUTH, CT, PIN_PATH, pin_url, raw_request, read_response

if TYPE_CHECKING:
    from collections.abc import Callable


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


def test_recorded_requests_are_bounded_in_number(http: requests.Session) -> None:
    with PlugzSandbox(record_limit=3) as sandbox:
        for i in range(5):
            http.get(f"{sandbox.base_url}/instances/i{i}/token/t/status")
        assert [r.instance_id for r in sandbox.requests] == ["i2", "i3", "i4"]
        assert sandbox.request_count == 5


@pytest.mark.parametrize(
    ("record_bytes", "bodies", "kept"),
    [
        # Bodies plus heads (~200 bytes here): three of 4,000 exceed 10,000 bytes, two fit.
        pytest.param(10_000, [4_000, 4_000, 4_000], ["b1", "b2"], id="oldest-dropped"),
        pytest.param(10_000, [1_000, 9_990], [], id="larger-than-the-budget-left-out"),
        pytest.param(10_000, [9_000, 100], ["b0", "b1"], id="both-fit"),
        pytest.param(0, [0, 0], [], id="zero-keeps-nothing"),
    ],
)
def test_recorded_requests_are_bounded_in_bytes(
    http: requests.Session, record_bytes: int, bodies: list[int], kept: list[str]
) -> None:
    """A sandbox left running cannot grow without bound: the bytes it keeps are capped too."""
    with PlugzSandbox(record_bytes=record_bytes) as sandbox:
        for i, size in enumerate(bodies):
            http.post(f"{sandbox.base_url}/instances/b{i}/token/t/status", data=b"x" * size)
        assert [r.instance_id for r in sandbox.requests] == kept
        assert sandbox.request_count == len(bodies)  # every request still counts


def test_default_recording_bounds(sb: PlugzSandbox, http: requests.Session) -> None:
    """10,000 requests and 16 MiB by default: 1 MiB bodies keep only the last sixteen or fewer."""
    body = b"x" * (1024 * 1024 - 100)
    for _ in range(17):
        assert http.post(pin_url(sb), headers=AUTH, data=body).status_code == 415
    assert 1 <= len(sb.requests) <= 16
    assert sum(len(r.body) for r in sb.requests) <= 16 * 1024 * 1024
    assert sb.request_count == 17


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"record_limit": -1}, "record_limit must be an int >= 0", id="record-limit"),
        pytest.param({"record_bytes": -1}, "record_bytes must be an int >= 0", id="record-bytes"),
        pytest.param({"record_bytes": 1.5}, "record_bytes must be an int >= 0", id="record-bytes-float"),
        pytest.param({"outbox_bytes": -1}, "outbox_bytes must be an int >= 0", id="outbox-bytes"),
        pytest.param({"outbox_bytes": True}, "outbox_bytes must be an int >= 0", id="outbox-bytes-bool"),
        pytest.param({"idle_timeout": 0}, "idle_timeout must be a number of seconds > 0", id="idle-zero"),
        pytest.param({"idle_timeout": float("inf")}, "idle_timeout must be a finite", id="idle-infinite"),
        pytest.param({"max_connections": 0}, "max_connections must be an int >= 1", id="max-connections"),
        pytest.param(
            {"max_connections": True}, "max_connections must be an int >= 1", id="max-connections-bool"
        ),
        pytest.param({"latency": -1}, "latency must be a finite number", id="latency"),
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PlugzSandbox(**kwargs)


def test_bounds_are_visible() -> None:
    sandbox = PlugzSandbox(idle_timeout=2.5, max_connections=7)
    assert (sandbox.idle_timeout, sandbox.max_connections) == (2.5, 7)
    assert PlugzSandbox().idle_timeout == 30.0
    assert 1 <= PlugzSandbox().max_connections <= 1024


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
    sb.set_state("inst-1", "disconnected")
    send_body = {"phone": "5511988887777", "message": "x"}
    assert http.post(pin_url(sb, endpoint="send-text"), headers=AUTH, json=send_body).status_code == 200
    sb.inject(Fault.drop())
    sb.inject(Fault.status(500))
    with pytest.raises(requests.ConnectionError):
        http.get(pin_url(sb), headers=AUTH)
    sb.reset()
    assert (sb.requests, sb.request_count, sb.pending_faults, sb.instances) == ([], 0, [], [])
    assert sb.messages == []
    assert sb.usage == SandboxUsage(*[0] * len(dataclasses.fields(SandboxUsage)))  # bytes too
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


STATES = ("connected", "disconnected", "session-lost", "phone-offline")


def test_set_state_returns_the_new_snapshot(sb: PlugzSandbox) -> None:
    before = sb.instance("inst-2")
    after = sb.set_state("inst-2", "session-lost")
    assert (after.state, after.has_code, after.phone) == ("session-lost", True, before.phone)
    assert before.state == "connected"  # snapshots do not change
    assert sb.instance("inst-2") == after


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        pytest.param(lambda sb: sb.set_state("inst-1", "offline"), ValueError,
                     f"state must be one of {', '.join(STATES)}; got 'offline'",
                     id="unknown-state"),
        pytest.param(lambda sb: sb.set_state("inst-1", None), ValueError, "state must be one of", id="none"),
        pytest.param(lambda sb: sb.set_state("ghost", "connected"), KeyError, "ghost", id="unknown-instance"),
        pytest.param(lambda sb: sb.add_instance("x", "y", state="Connected"), ValueError,
                     "state must be one of", id="add-state-case"),
        pytest.param(lambda sb: sb.add_instance("x", "y", phone="+5511988887777"), ValueError,
                     "phone must be 8 to 15 digits", id="add-phone-plus"),
        pytest.param(lambda sb: sb.add_instance("x", "y", phone="55 11 98888"), ValueError,
                     "phone must be 8 to 15 digits", id="add-phone-spaces"),
        pytest.param(lambda sb: sb.add_instance("x", "y", phone="1234567"), ValueError,
                     "phone must be 8 to 15 digits", id="add-phone-short"),
        pytest.param(lambda sb: sb.add_instance("x", "y", phone="٥٥١١٩٨٨٨٨٧٧٧٧"), ValueError,
                     "phone must be 8 to 15 digits", id="add-phone-non-ascii-digits"),
        pytest.param(lambda sb: sb.add_instance("x", "y", phone=""), ValueError,
                     "phone must be 8 to 15 digits", id="add-phone-empty"),
    ],
)  # fmt: skip
def test_bad_states_and_phones_are_refused(
    sb: PlugzSandbox, call: Callable[[PlugzSandbox], object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=re.escape(message)):
        call(sb)
    assert sb.instance("inst-1").state == "connected"
    assert "x" not in {i.instance_id for i in sb.instances}


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
        sock.sendall(raw_request(PIN_PATH))
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
