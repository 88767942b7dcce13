"""The fake Plugz API over real loopback HTTP: every answer the route table gives, and its order of checks."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from airflow_provider_plugz.testing import PlugzSandbox
from tests.support.sandbox import AUTH, JSON_CT, NOT_FOUND, pin_url

if TYPE_CHECKING:
    import requests

    from airflow_provider_plugz.testing.sandbox import InstanceState


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
    assert response.headers["Content-Type"] == JSON_CT
    assert response.headers["Content-Length"] == str(len(response.content))


def test_pin_flip_is_visible_to_a_polling_client(sb: PlugzSandbox, http: requests.Session) -> None:
    assert http.get(pin_url(sb), headers=AUTH).json()["hasCode"] is False
    assert sb.set_has_code("inst-1", True).has_code is True
    assert http.get(pin_url(sb), headers=AUTH).json()["hasCode"] is True
    assert sb.instance("inst-1").has_code is True
    sb.set_has_code("inst-1", False)
    assert http.get(pin_url(sb), headers=AUTH).json()["hasCode"] is False


NOT_CONNECTED = "You are not connected."
OFF = {"connected": False, "session": False}


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        pytest.param("connected", {"connected": True, "session": True, "smartphoneConnected": True},
                     id="connected"),
        pytest.param("disconnected",
                     {**OFF, "smartphoneConnected": False, "error": NOT_CONNECTED},
                     id="disconnected"),
        pytest.param("session-lost",
                     {**OFF, "smartphoneConnected": True, "error": "You need to restore the session."},
                     id="session-lost"),
        pytest.param("phone-offline",
                     {"connected": True, "session": True, "smartphoneConnected": False,
                      "error": NOT_CONNECTED},
                     id="phone-offline"),
    ],
)  # fmt: skip
def test_status_answers_the_instance_state(
    sb: PlugzSandbox, http: requests.Session, state: InstanceState, expected: dict[str, object]
) -> None:
    """The same state set at creation or changed later; the PIN endpoints answer in every state."""
    sb.add_instance("born", "tok-born", state=state)
    sb.set_state("inst-1", state)
    for instance, token in (("born", "tok-born"), ("inst-1", "tok-1")):
        response = http.get(pin_url(sb, instance, token, "status"), headers=AUTH)
        assert (response.status_code, response.json()) == (200, expected)
        assert http.get(pin_url(sb, instance, token), headers=AUTH).json()["hasCode"] is False
    assert sb.instance("inst-1").state == state


def test_status_follows_state_changes(sb: PlugzSandbox, http: requests.Session) -> None:
    url = pin_url(sb, endpoint="status")
    assert http.get(url, headers=AUTH).json()["connected"] is True
    sb.set_state("inst-1", "disconnected")
    assert http.get(url, headers=AUTH).json()["connected"] is False
    sb.set_state("inst-1", "connected")
    assert "error" not in http.get(url, headers=AUTH).json()


DEVICE = {
    "wa_version": "2.24.1.6",
    "mcc": "724",
    "mnc": "05",
    "os_version": "14",
    "device_manufacturer": "Sandbox",
    "device_model": "Plugz Sandbox Phone",
    "osbuildnumber": "UP1A.231005.007",
    "platform": "android",
}


@pytest.mark.parametrize(
    ("instance_id", "phone", "expected"),
    [
        pytest.param("inst-9", None, "5511000505657", id="made-up-from-the-id"),
        pytest.param("a-much-longer-instance-id", None, "5511567091550", id="last-nine-digits"),
        pytest.param("inst-9", "5521987654321", "5521987654321", id="given"),
    ],
)
def test_device_answers_the_instance_phone(
    sb: PlugzSandbox, http: requests.Session, instance_id: str, phone: str | None, expected: str
) -> None:
    instance = sb.add_instance(instance_id, "tok", phone=phone)
    assert instance.phone == expected
    response = http.get(pin_url(sb, instance_id, "tok", "device"), headers=AUTH)
    assert (response.status_code, response.json()) == (
        200,
        {"phone": expected, "imgUrl": None, "device": DEVICE},
    )
    assert expected not in repr(instance)


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
    assert response.headers["Content-Type"] == JSON_CT
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
