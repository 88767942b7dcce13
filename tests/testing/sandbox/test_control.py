"""The control API under /_sandbox/: what it changes, what it refuses, and that it refuses cross-site use."""

from __future__ import annotations

import socket
from typing import Any

import pytest
import requests

from airflow_provider_plugz.testing import Fault, PlugzSandbox
from tests.support.sandbox import AUTH, WRITE, pin_url, read_response


def _listed(instance_id: str, phone: str, **changes: object) -> dict[str, object]:
    base = {"instance_id": instance_id, "has_code": False, "kind": "mobile", "expired": False}
    return {**base, "state": "connected", "phone": phone, **changes}


def test_control_lists_instances_without_tokens(sb: PlugzSandbox, http: requests.Session) -> None:
    """Phones are masked to their last 4 digits, as anything listing personal data should."""
    sb.set_state("web", "phone-offline")
    response = http.get(f"{sb.base_url}/_sandbox/instances")
    assert response.status_code == 200
    assert response.json() == [
        _listed("inst-1", "•••5659"),
        _listed("inst-2", "•••5650", has_code=True),
        _listed("old", "•••0180", expired=True),
        _listed("web", "•••0918", kind="web", state="phone-offline"),
    ]
    assert b"tok-" not in response.content
    assert sb.instance("inst-1").phone.encode() not in response.content


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param({"has_code": True}, _listed("new", "•••0019", has_code=True), id="pin"),
        pytest.param({"state": "session-lost"}, _listed("new", "•••0019", state="session-lost"), id="state"),
        pytest.param({"phone": "5521987654321"}, _listed("new", "•••4321"), id="phone"),
        pytest.param({"phone": None}, _listed("new", "•••0019"), id="phone-null-is-made-up"),
    ],
)  # fmt: skip
def test_control_adds_an_instance(
    sb: PlugzSandbox, http: requests.Session, body: dict[str, Any], expected: dict[str, object]
) -> None:
    response = http.post(
        f"{sb.base_url}/_sandbox/instances", json={"instance_id": "new", "token": "tok-new", **body}
    )
    assert response.status_code == 201
    assert response.json() == expected
    assert sb.instance("new").state == expected["state"]
    assert http.get(pin_url(sb, "new", "tok-new"), headers=AUTH).json()["hasCode"] is expected["has_code"]
    device = http.get(pin_url(sb, "new", "tok-new", "device"), headers=AUTH).json()
    assert device["phone"] == (body.get("phone") or "5511000000019")


@pytest.mark.parametrize("state", ["disconnected", "session-lost", "phone-offline", "connected"])
def test_control_sets_a_state(sb: PlugzSandbox, http: requests.Session, state: str) -> None:
    response = http.put(f"{sb.base_url}/_sandbox/instances/inst-1/state", json={"state": state})
    assert (response.status_code, response.json()) == (200, _listed("inst-1", "•••5659", state=state))
    assert sb.instance("inst-1").state == state


def test_control_lists_and_clears_messages(sb: PlugzSandbox, http: requests.Session) -> None:
    """The tester's view: every field in clear (loopback only, and the data is the test's own)."""
    sb.set_state("inst-2", "disconnected")
    sent = [
        http.post(pin_url(sb, i, t, "send-text"), headers={**AUTH, **WRITE}, json={"phone": p, "message": m})
        for i, t, p, m in (
            ("inst-1", "tok-1", "5511988887777", "one"),
            ("inst-2", "tok-2", "5511911112222", "two"),
        )
    ]
    ids = [r.json() for r in sent]
    response = http.get(f"{sb.base_url}/_sandbox/messages")
    assert response.status_code == 200
    assert response.json() == [
        {"instance_id": "inst-1", "phone": "5511988887777", "message": "one", "zaap_id": ids[0]["zaapId"],
         "message_id": ids[0]["messageId"], "delivered": True, "seq": 1},
        {"instance_id": "inst-2", "phone": "5511911112222", "message": "two", "zaap_id": ids[1]["zaapId"],
         "message_id": ids[1]["messageId"], "delivered": False, "seq": 2},
    ]  # fmt: skip
    assert (response.headers["X-Sandbox-Kept"], response.headers["X-Sandbox-Dropped"]) == ("2", "0")
    assert "Link" not in response.headers  # one page holds them all
    http.put(f"{sb.base_url}/_sandbox/instances/inst-2/state", json={"state": "connected"})
    assert [m["delivered"] for m in http.get(f"{sb.base_url}/_sandbox/messages").json()] == [True, True]
    response = http.delete(f"{sb.base_url}/_sandbox/messages", headers=WRITE)
    assert (response.status_code, response.content) == (204, b"")
    assert http.get(f"{sb.base_url}/_sandbox/messages").json() == []
    assert sb.messages == []


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


def test_control_drop_fault(sb: PlugzSandbox, http: requests.Session) -> None:
    assert http.post(f"{sb.base_url}/_sandbox/faults", json={"kind": "drop"}).status_code == 201
    with pytest.raises(requests.ConnectionError):
        http.get(pin_url(sb), headers=AUTH)


def test_control_clears_faults(sb: PlugzSandbox, http: requests.Session) -> None:
    sb.inject(Fault.drop(), times=5)
    response = http.delete(f"{sb.base_url}/_sandbox/faults", headers=WRITE)
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
        pytest.param("POST", "instances", b'{"instance_id": "x", "token": "t", "state": "asleep"}', 400,
                     id="instance-state"),
        pytest.param("POST", "instances", b'{"instance_id": "x", "token": "t", "state": 1}', 400,
                     id="instance-state-int"),
        pytest.param("POST", "instances", b'{"instance_id": "x", "token": "t", "phone": "+5511988887777"}',
                     400, id="instance-phone-plus"),
        pytest.param("POST", "instances", b'{"instance_id": "x", "token": "t", "phone": 5511988887777}', 400,
                     id="instance-phone-int"),
        pytest.param("PUT", "instances/inst-1/state", b'{"state": "offline"}', 400, id="state-unknown"),
        pytest.param("PUT", "instances/inst-1/state", b'{"state": null}', 400, id="state-null"),
        pytest.param("PUT", "instances/inst-1/state", b"{}", 400, id="state-missing"),
        pytest.param("PUT", "instances/inst-1/state", b'"connected"', 400, id="state-not-object"),
        pytest.param("PUT", "instances/ghost/state", b'{"state": "connected"}', 404, id="state-ghost"),
        pytest.param("POST", "messages", b"{}", 405, id="messages-post"),
        pytest.param("GET", "instances/inst-1/state", None, 405, id="state-get"),
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
    response = http.request(method, f"{sb.base_url}/_sandbox/{path}", data=body, headers=WRITE)
    assert response.status_code == status
    assert "error" in response.json()
    assert sb.pending_faults == []
    assert [i.instance_id for i in sb.instances] == ["inst-1", "inst-2", "old", "web"]
    assert sb.instance("inst-1").state == "connected"
    if status == 405:
        assert response.headers["Allow"]


def test_control_endpoints_are_not_recorded_or_delayed_by_faults(
    sb: PlugzSandbox, http: requests.Session
) -> None:
    sb.inject(Fault.drop())
    assert http.get(f"{sb.base_url}/_sandbox/instances").status_code == 200
    assert sb.requests == []
    assert sb.request_count == 0


# --------------------------------------------------------------------------- cross-site requests

FOREIGN_HOST = "the control API answers only requests addressed to a loopback host"
FOREIGN_ORIGIN = "cross-site request refused: Origin"
NEEDS_JSON = "needs the header Content-Type: application/json"
FAULT = b'{"kind": "drop"}'

CROSS_SITE = [
    # (method, path, headers, body, status, start of the error text or None for "accepted")
    pytest.param("GET", "instances", {"Host": "evil.example"}, None, 403, FOREIGN_HOST, id="foreign-host"),
    pytest.param("POST", "faults", {**WRITE, "Host": "evil.example:80"}, FAULT, 403, FOREIGN_HOST,
                 id="dns-rebinding-write"),
    pytest.param("GET", "instances", {"Host": "127.0.0.1.evil.example"}, None, 403, FOREIGN_HOST,
                 id="host-with-loopback-prefix"),
    pytest.param("GET", "instances", {"Host": "localhost.evil.example:8765"}, None, 403, FOREIGN_HOST,
                 id="localhost-subdomain"),
    pytest.param("GET", "instances", {"Host": "127.0.0.1:x"}, None, 403, FOREIGN_HOST, id="bad-port"),
    pytest.param("GET", "instances", {"Host": "::1"}, None, 403, FOREIGN_HOST, id="ipv6-without-brackets"),
    pytest.param("GET", "instances", {"Host": "localhost:8765"}, None, 200, None, id="localhost"),
    pytest.param("GET", "instances", {"Host": "LOCALHOST"}, None, 200, None, id="localhost-upper-case"),
    pytest.param("GET", "instances", {"Host": "[::1]:8765"}, None, 200, None, id="ipv6-loopback"),
    pytest.param("GET", "instances", {"Host": "127.0.0.2"}, None, 200, None, id="any-127-address"),
    pytest.param("POST", "faults", {**WRITE, "Origin": "https://evil.example"}, FAULT, 403, FOREIGN_ORIGIN,
                 id="foreign-origin"),
    pytest.param("GET", "instances", {"Origin": "https://evil.example"}, None, 403, FOREIGN_ORIGIN,
                 id="foreign-origin-read"),
    pytest.param("POST", "faults", {**WRITE, "Origin": "null"}, FAULT, 403, FOREIGN_ORIGIN,
                 id="opaque-origin-of-a-sandboxed-frame"),
    pytest.param("POST", "faults", {**WRITE, "Origin": "http://localhost.evil.example"}, FAULT, 403,
                 FOREIGN_ORIGIN, id="origin-localhost-subdomain"),
    pytest.param("POST", "faults", {**WRITE, "Origin": "file://"}, FAULT, 403, FOREIGN_ORIGIN,
                 id="file-origin"),
    pytest.param("POST", "faults", {**WRITE, "Origin": "http://localhost:3000"}, FAULT, 201, None,
                 id="loopback-page"),
    pytest.param("POST", "faults", {**WRITE, "Origin": "https://127.0.0.1"}, FAULT, 201, None,
                 id="loopback-page-https"),
    pytest.param("POST", "faults", {**WRITE, "Origin": "http://[::1]:8080"}, FAULT, 201, None,
                 id="loopback-page-ipv6"),
    pytest.param("POST", "faults", {}, FAULT, 415, "POST /_sandbox/faults " + NEEDS_JSON,
                 id="no-content-type"),
    pytest.param("POST", "faults", {"Content-Type": "text/plain"}, FAULT, 415, "POST", id="form-text-plain"),
    pytest.param("POST", "faults", {"Content-Type": "application/x-www-form-urlencoded"}, FAULT, 415, "POST",
                 id="form-urlencoded"),
    pytest.param("POST", "faults", {"Content-Type": "multipart/form-data; boundary=x"}, FAULT, 415, "POST",
                 id="form-multipart"),
    pytest.param("POST", "faults", {"Content-Type": "application/jsonp"}, FAULT, 415, "POST",
                 id="json-lookalike"),
    pytest.param("PUT", "instances/inst-1/pin", {"Content-Type": "text/plain"}, b'{"has_code": true}', 415,
                 "PUT /_sandbox/instances/inst-1/pin " + NEEDS_JSON, id="put-text-plain"),
    pytest.param("DELETE", "faults", {}, None, 415, "DELETE /_sandbox/faults " + NEEDS_JSON,
                 id="delete-without-content-type"),
    pytest.param("PUT", "instances/inst-1/state", {"Content-Type": "text/plain"},
                 b'{"state": "session-lost"}', 415, "PUT /_sandbox/instances/inst-1/state " + NEEDS_JSON,
                 id="state-text-plain"),
    pytest.param("PUT", "instances/inst-1/state", {**WRITE, "Origin": "https://evil.example"},
                 b'{"state": "disconnected"}', 403, FOREIGN_ORIGIN, id="state-foreign-origin"),
    pytest.param("DELETE", "messages", {}, None, 415, "DELETE /_sandbox/messages " + NEEDS_JSON,
                 id="delete-messages-without-content-type"),
    pytest.param("DELETE", "messages", {**WRITE, "Host": "evil.example"}, None, 403, FOREIGN_HOST,
                 id="delete-messages-rebinding"),
    pytest.param("GET", "messages", {"Origin": "https://evil.example"}, None, 403, FOREIGN_ORIGIN,
                 id="messages-foreign-origin-read"),
    pytest.param("POST", "faults", {"Content-Type": "Application/JSON; charset=utf-8"}, FAULT, 201, None,
                 id="json-with-charset"),
]  # fmt: skip


@pytest.mark.parametrize(("method", "path", "headers", "body", "status", "error"), CROSS_SITE)
def test_control_api_refuses_cross_site_requests(
    sb: PlugzSandbox,
    http: requests.Session,
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes | None,
    status: int,
    error: str | None,
) -> None:
    """A page in a browser can reach 127.0.0.1 but cannot forge a loopback Host (DNS rebinding
    shows its own), hide its Origin, or send application/json cross-site without a preflight."""
    sb.set_state("inst-2", "disconnected")
    assert http.post(pin_url(sb, "inst-2", "tok-2", "send-text"), headers={**AUTH, **WRITE},
                     json={"phone": "5511988887777", "message": "queued"}).status_code == 200  # fmt: skip
    sb.inject(Fault.status(503))  # a queued fault, which a write would add to or clear
    response = http.request(method, f"{sb.base_url}/_sandbox/{path}", headers=headers, data=body)
    assert response.status_code == status, response.text
    if error is None:
        return
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert response.json()["error"].startswith(error)
    assert sb.pending_faults == [(Fault.status(503), 1, None)]  # nothing changed
    assert sb.instance("inst-1").has_code is False
    assert sb.instance("inst-1").state == "connected"
    assert [m.message for m in sb.messages] == ["queued"]
    if method == "GET":
        assert b"queued" not in response.content


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        pytest.param(b"GET /_sandbox/instances HTTP/1.0\r\n\r\n", 403, id="http-1.0-without-host"),
        pytest.param(b"GET http://evil.example/_sandbox/instances HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 403,
                     id="absolute-form-to-a-foreign-host"),
        pytest.param(b"GET http://localhost:1/_sandbox/instances HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 200,
                     id="absolute-form-to-loopback"),
    ],
)  # fmt: skip
def test_control_api_needs_a_loopback_authority(sb: PlugzSandbox, request_bytes: bytes, status: int) -> None:
    with socket.create_connection((sb.host, sb.port), timeout=5) as sock, sock.makefile("rb") as stream:
        sock.sendall(request_bytes)
        assert read_response(stream)[0] == status


def test_the_plugz_api_itself_is_not_restricted(sb: PlugzSandbox, http: requests.Session) -> None:
    """Only the control API is: the fake Plugz API answers like the real one, from anywhere."""
    headers = {**AUTH, "Host": "api.plugzapi.com.br", "Origin": "https://evil.example"}
    assert http.get(pin_url(sb), headers=headers).json() == {"success": True, "hasCode": False}
