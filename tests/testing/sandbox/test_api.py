"""The fake Plugz API over real loopback HTTP: every answer the route table gives, and its order of checks."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

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


QUEUE_KEYS = {
    "_id", "DelayMessage", "Message", "IsTrial", "InstanceId", "Phone", "ZaapId", "DelayTyping", "MessageId",
    "Created",
}  # fmt: skip
SENDS = [
    ("5511988887777", "disk full on db-1"),
    ("5521977776666", "*db-1* still full\nack?"),
    ("5511988887777", "⚠ 3rd"),
]


def _send(
    sb: PlugzSandbox,
    http: requests.Session,
    phone: str,
    message: str,
    instance: str = "inst-1",
    token: str = "tok-1",
) -> dict[str, str]:
    url = pin_url(sb, instance, token, "send-text")
    body = {"phone": phone, "message": message}
    response = http.post(url, headers={**AUTH, "Content-Type": "application/json"}, json=body)
    assert response.status_code == 200
    answer: dict[str, str] = response.json()
    return answer


def _queue(sb: PlugzSandbox, http: requests.Session, instance: str = "inst-1", token: str = "tok-1") -> Any:
    response = http.get(pin_url(sb, instance, token, "queue"), headers=AUTH)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == JSON_CT
    return response.json()


@pytest.mark.parametrize(
    "state",
    [
        pytest.param("connected", id="connected"),
        pytest.param("disconnected", id="disconnected"),
        pytest.param("phone-offline", id="phone-offline"),
    ],
)
def test_queue_is_empty_without_texts_of_its_own(
    sb: PlugzSandbox, http: requests.Session, state: InstanceState
) -> None:
    sb.set_state("inst-1", state)
    assert _queue(sb, http) == []
    _send(sb, http, *SENDS[0], instance="inst-2", token="tok-2")  # another instance's text
    assert _queue(sb, http) == []


@pytest.mark.parametrize(
    "state",
    [
        pytest.param("disconnected", id="disconnected"),
        pytest.param("session-lost", id="session-lost"),
        pytest.param("phone-offline", id="phone-offline"),
    ],
)
def test_queue_lists_what_waits_oldest_first_until_the_instance_connects(
    sb: PlugzSandbox, http: requests.Session, state: InstanceState
) -> None:
    """Plugz's layout, ``Created`` in epoch ms; per instance; connecting sends (and empties) it."""
    sb.set_state("inst-1", state)
    sb.set_state("inst-2", "disconnected")
    start = time.time_ns() // 1_000_000 - 1  # - 1: the sandbox reads the clock as a float
    answers = [_send(sb, http, phone, message) for phone, message in SENDS]
    other = _send(sb, http, *SENDS[0], instance="inst-2", token="tok-2")
    end = -(-time.time_ns() // 1_000_000)

    queue = _queue(sb, http)
    assert isinstance(queue, list)
    assert [set(item) for item in queue] == [QUEUE_KEYS] * len(SENDS)
    assert [(m["Phone"], m["Message"], m["ZaapId"], m["MessageId"]) for m in queue] == [
        (phone, message, a["zaapId"], a["messageId"])
        for (phone, message), a in zip(SENDS, answers, strict=True)
    ]
    assert {m["InstanceId"] for m in queue} == {"inst-1"}
    assert len({m["_id"] for m in queue}) == len(SENDS)
    created = [m["Created"] for m in queue]
    assert all(type(ms) is int for ms in created)
    assert created == sorted(created)
    assert start <= created[0]
    assert created[-1] <= end
    assert [m["ZaapId"] for m in _queue(sb, http, "inst-2", "tok-2")] == [other["zaapId"]]

    sb.set_state("inst-1", "connected")
    assert _queue(sb, http) == []
    assert [m.delivered for m in sb.messages] == [True] * len(SENDS) + [False]
    assert len(_queue(sb, http, "inst-2", "tok-2")) == 1  # inst-2 is still away


def test_connecting_a_re_added_instance_empties_its_queue(sb: PlugzSandbox, http: requests.Session) -> None:
    sb.set_state("inst-1", "disconnected")
    _send(sb, http, *SENDS[0])
    sb.remove_instance("inst-1")
    sb.add_instance("inst-1", "tok-1", state="disconnected")
    sb.set_state("inst-1", "connected")
    assert _queue(sb, http) == []


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
    pytest.param("POST", "inst-1", "tok-1", "queue", AUTH, None, 405, NOT_FOUND, "GET", id="post-queue"),
    pytest.param("PUT", "inst-1", "tok-1", "", {}, None, 405, NOT_FOUND, GP, id="405-before-token"),
    pytest.param("GET", "inst-1", "tok-1", "", {}, None, 400, NULL, None, id="no-client-token"),
    pytest.param("GET", "inst-1", "tok-1", "", {"Client-Token": ""}, None, 400, NULL, None, id="empty-ct"),
    pytest.param("GET", "inst-1", "tok-1", "", {"client-token": "wrong-ct"}, None, 403, WRONG_CT, None,
                 id="wrong-ct-echoed"),
    pytest.param("GET", "ghost", "tok-1", "", {"Client-Token": "wrong-ct"}, None, 403, WRONG_CT, None,
                 id="403-before-instance"),
    pytest.param("GET", "inst-1", "tok-1", "queue", {}, None, 400, NULL, None, id="queue-no-client-token"),
    pytest.param("GET", "inst-1", "tok-1", "queue", {"client-token": "wrong-ct"}, None, 403, WRONG_CT, None,
                 id="queue-wrong-ct-echoed"),
    pytest.param("GET", "ghost", "tok-1", "queue", {"Client-Token": "wrong-ct"}, None, 403, WRONG_CT, None,
                 id="queue-403-before-instance"),
    pytest.param("GET", "ghost", "tok-1", "", AUTH, None, 404, NO_INSTANCE, None, id="no-instance"),
    pytest.param("GET", "ghost", "tok-1", "queue", AUTH, None, 404, NO_INSTANCE, None,
                 id="queue-no-instance"),
    pytest.param("GET", "inst-1", "tok-2", "queue", AUTH, None, 404, NO_INSTANCE, None, id="queue-bad-token"),
    pytest.param("GET", "inst-1", "tok-2", "", AUTH, None, 404, NO_INSTANCE, None, id="bad-token"),
    pytest.param("GET", "old", "tok-old", "", AUTH, None, 400, EXPIRED, None, id="expired"),
    pytest.param("GET", "old", "tok-old", "status", AUTH, None, 400, EXPIRED, None, id="expired-status"),
    pytest.param("GET", "old", "tok-old", "queue", AUTH, None, 400, EXPIRED, None, id="expired-queue"),
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


def test_messages_the_outbox_bounds_drop_leave_the_queue_too(http: requests.Session) -> None:
    """An instance queues at most 1,000 messages: those the outbox's bounds dropped no longer
    count, so it takes more (it refused them while the count still held them)."""
    with PlugzSandbox(outbox_limit=5) as sandbox:
        sandbox.add_instance("inst-1", "tok-1", state="disconnected")
        for n in range(1001):
            _send(sandbox, http, "5511988887777", f"alert {n}")  # asserts a 200: never "queue full"
        assert len(_queue(sandbox, http)) == 5
        assert sandbox.messages_dropped == 996
