"""POST .../send-text and the outbox: what is accepted, what is refused, queueing by instance state."""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING, Any

import pytest
import requests

from airflow_provider_plugz.testing import Fault, PlugzSandbox, SentText
from tests.support.sandbox import AUTH, JSON_CT, WRITE, pin_url, send_texts

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_provider_plugz.testing.sandbox import InstanceState

SEND = {**AUTH, "Content-Type": "application/json"}
TEXT = {"phone": "5511988887777", "message": "*disk* full on db-1\nack?"}
QUEUE_FULL = {"error": "The message queue is full"}


def send(
    sb: PlugzSandbox,
    http: requests.Session,
    body: object = TEXT,
    instance: str = "inst-1",
    token: str = "tok-1",
) -> requests.Response:
    return http.post(pin_url(sb, instance, token, "send-text"), headers=SEND, json=body)


def test_a_sent_message_is_answered_with_its_ids_and_lands_in_the_outbox(
    sb: PlugzSandbox, http: requests.Session
) -> None:
    response = send(sb, http)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == JSON_CT
    answer = response.json()
    assert set(answer) == {"zaapId", "messageId", "id"}
    assert answer["id"] == answer["messageId"]
    assert re.fullmatch(r"[0-9A-F]{32}", answer["zaapId"])
    assert re.fullmatch(r"3EB0[0-9A-F]{16}", answer["messageId"])
    assert sb.messages == [
        SentText("inst-1", TEXT["phone"], TEXT["message"], answer["zaapId"], answer["messageId"], True)
    ]


def test_every_message_gets_its_own_ids(sb: PlugzSandbox, http: requests.Session) -> None:
    answers = [send(sb, http).json() for _ in range(3)]
    assert len({a["zaapId"] for a in answers}) == 3
    assert len({a["messageId"] for a in answers}) == 3
    assert [(m.zaap_id, m.message_id) for m in sb.messages] == [
        (a["zaapId"], a["messageId"]) for a in answers
    ]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({**TEXT, "messageId": "3EB0AAAA"}, id="reply"),
        pytest.param({**TEXT, "delayMessage": 1, "delayTyping": 15}, id="delays-at-the-bounds"),
        pytest.param({**TEXT, "delayMessage": 2.5}, id="delay-fraction"),
        pytest.param({"phone": "120363019502650977-group", "message": "x"}, id="group-id"),
        pytest.param({**TEXT, "unknown": [1]}, id="extra-key-ignored"),
    ],
)
def test_optional_fields_are_accepted(sb: PlugzSandbox, http: requests.Session, body: dict[str, Any]) -> None:
    assert send(sb, http, body).status_code == 200
    assert [(m.phone, m.message) for m in sb.messages] == [(body["phone"], body["message"])]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        pytest.param({"message": "x"}, "phone is missing: send phone as a non-empty string", id="no-phone"),
        pytest.param({"phone": "5511988887777"}, "message is missing: send message as a non-empty string",
                     id="no-message"),
        pytest.param({"phone": 5511988887777, "message": "x"}, "phone is not a string", id="phone-number"),
        pytest.param({"phone": "5511988887777", "message": None}, "message is missing", id="message-null"),
        pytest.param({"phone": "5511988887777", "message": ["x"]}, "message is not a string", id="list"),
        pytest.param({"phone": "", "message": "x"}, "phone is empty", id="phone-empty"),
        pytest.param({"phone": "5511988887777", "message": " \n"}, "message is empty", id="message-blank"),
        pytest.param({**TEXT, "messageId": 7}, "messageId must be the id", id="message-id-int"),
        pytest.param({**TEXT, "messageId": ""}, "messageId must be the id", id="message-id-empty"),
        pytest.param({**TEXT, "delayMessage": 0}, "delayMessage must be a number of seconds from 1 to 15",
                     id="delay-zero"),
        pytest.param({**TEXT, "delayTyping": 16}, "delayTyping must be a number of seconds from 1 to 15",
                     id="typing-16"),
        pytest.param({**TEXT, "delayMessage": "2"}, "delayMessage must be", id="delay-str"),
        pytest.param({**TEXT, "delayTyping": True}, "delayTyping must be", id="typing-bool"),
        pytest.param(["5511988887777", "x"], "The body must be a JSON object", id="array"),
    ],
)  # fmt: skip
def test_bad_bodies_are_refused(sb: PlugzSandbox, http: requests.Session, body: object, error: str) -> None:
    response = send(sb, http, body)
    assert response.status_code == 400
    assert response.json()["error"].startswith(error)
    assert sb.messages == []


@pytest.mark.parametrize(
    ("headers", "data", "status", "expected"),
    [
        pytest.param(AUTH, b'{"phone": "1", "message": "x"}', 415,
                     {"error": "Unsupported Media Type", "message": "Content-Type must be application/json"},
                     id="no-content-type"),
        pytest.param({**AUTH, "Content-Type": "text/plain"}, b"{}", 415,
                     {"error": "Unsupported Media Type", "message": "Content-Type must be application/json"},
                     id="text-plain"),
        pytest.param(SEND, b'{"phone": "55', 400, {"error": "Invalid JSON body"}, id="broken-json"),
        pytest.param(SEND, b"", 400, {"error": "Invalid JSON body"}, id="empty"),
        pytest.param(SEND, b"null", 400, {"error": "The body must be a JSON object"}, id="null"),
        pytest.param(SEND, b"\xff", 400, {"error": "Invalid JSON body"}, id="not-utf8"),
        pytest.param({"Content-Type": "application/json"}, b"{}", 400, {"error": "null not allowed"},
                     id="client-token-first"),
    ],
)  # fmt: skip
def test_bad_requests_are_refused(
    sb: PlugzSandbox,
    http: requests.Session,
    headers: dict[str, str],
    data: bytes,
    status: int,
    expected: dict[str, str],
) -> None:
    response = http.post(pin_url(sb, endpoint="send-text"), headers=headers, data=data)
    assert (response.status_code, response.json()) == (status, expected)
    assert sb.messages == []


@pytest.mark.parametrize(
    ("state", "delivered"),
    [
        pytest.param("connected", True, id="connected"),
        pytest.param("disconnected", False, id="disconnected"),
        pytest.param("session-lost", False, id="session-lost"),
        pytest.param("phone-offline", False, id="phone-offline"),
    ],
)
def test_only_a_connected_instance_delivers(
    sb: PlugzSandbox, http: requests.Session, state: InstanceState, delivered: bool
) -> None:
    """A 200 means queued: a message sent while the phone is away waits for it."""
    sb.set_state("inst-1", state)
    assert send(sb, http).status_code == 200
    assert [m.delivered for m in sb.messages] == [delivered]


def test_connecting_delivers_the_queue_of_that_instance_only(
    sb: PlugzSandbox, http: requests.Session
) -> None:
    sb.set_state("inst-1", "disconnected")
    sb.set_state("inst-2", "phone-offline")
    send(sb, http)
    send(sb, http, instance="inst-2", token="tok-2")
    sb.set_state("inst-1", "session-lost")  # still not connected: still queued
    assert [m.delivered for m in sb.messages] == [False, False]
    sb.set_state("inst-1", "connected")
    send(sb, http)
    assert [(m.instance_id, m.delivered) for m in sb.messages] == [
        ("inst-1", True),
        ("inst-2", False),
        ("inst-1", True),
    ]


def test_replacing_an_instance_with_a_connected_one_delivers_its_queue(
    sb: PlugzSandbox, http: requests.Session
) -> None:
    sb.set_state("inst-1", "disconnected")
    send(sb, http)
    sb.add_instance("inst-1", "tok-1")
    assert [m.delivered for m in sb.messages] == [True]


def _connect(sb: PlugzSandbox, http: requests.Session) -> None:
    response = http.put(f"{sb.base_url}/_sandbox/instances/inst-1/state", json={"state": "connected"})
    assert response.status_code == 200


def _clear_over_http(sb: PlugzSandbox, http: requests.Session) -> None:
    assert http.delete(f"{sb.base_url}/_sandbox/messages", headers=WRITE).status_code == 204


def _re_add_disconnected(sb: PlugzSandbox, http: requests.Session) -> None:
    sb.remove_instance("inst-1")
    sb.add_instance("inst-1", "tok-1", state="disconnected")


@pytest.mark.parametrize(
    ("free", "delivered"),
    [
        pytest.param(lambda sb, http: sb.set_state("inst-1", "connected"), True, id="set-state-connected"),
        pytest.param(_connect, True, id="control-api-connect"),
        pytest.param(lambda sb, http: sb.clear_messages(), False, id="clear-messages"),
        pytest.param(_clear_over_http, False, id="control-api-clear"),
        pytest.param(_re_add_disconnected, False, id="instance-removed"),
    ],
)
def test_a_disconnected_instance_queues_at_most_1000_messages(
    sb: PlugzSandbox,
    http: requests.Session,
    free: Callable[[PlugzSandbox, requests.Session], None],
    delivered: bool,
) -> None:
    """Then it refuses more (400), other instances still queue, and the queue empties on
    reconnect or when cleared."""
    sb.set_state("inst-1", "disconnected")
    sb.set_state("inst-2", "disconnected")
    assert send_texts(sb, 1001) == [200] * 1000 + [400]
    assert (send(sb, http).status_code, send(sb, http).json()) == (400, QUEUE_FULL)
    assert send_texts(sb, 1, "inst-2", "tok-2") == [200]  # per instance
    assert len(sb.messages) == 1001
    free(sb, http)
    response = send(sb, http)
    assert response.status_code == 200
    assert sb.messages[-1].delivered is delivered


def test_a_connected_instance_has_no_queue_limit(sb: PlugzSandbox) -> None:
    assert send_texts(sb, 1001) == [200] * 1001


def test_the_outbox_keeps_the_last_outbox_limit_messages(http: requests.Session) -> None:
    with PlugzSandbox(outbox_limit=3) as sandbox:
        sandbox.add_instance("inst-1", "tok-1")
        for i in range(5):
            send(sandbox, http, {"phone": "5511988887777", "message": f"m{i}"})
        assert [m.message for m in sandbox.messages] == ["m2", "m3", "m4"]


@pytest.mark.parametrize("limit", [pytest.param(-1, id="negative"), pytest.param(1.5, id="float")])
def test_bad_outbox_limits_are_refused(limit: Any) -> None:
    with pytest.raises(ValueError, match="outbox_limit must be an int >= 0"):
        PlugzSandbox(outbox_limit=limit)


@pytest.mark.parametrize(
    "forget",
    [
        pytest.param(PlugzSandbox.clear_messages, id="clear-messages"),
        pytest.param(PlugzSandbox.reset, id="reset"),
    ],
)
def test_clearing_empties_the_outbox(
    sb: PlugzSandbox, http: requests.Session, forget: Callable[[PlugzSandbox], None]
) -> None:
    send(sb, http)
    forget(sb)
    assert sb.messages == []


def test_the_outbox_keeps_what_a_removed_instance_sent(sb: PlugzSandbox, http: requests.Session) -> None:
    send(sb, http)
    sb.remove_instance("inst-1")
    assert [m.instance_id for m in sb.messages] == ["inst-1"]


@pytest.mark.parametrize(
    ("fault", "status", "kept"),
    [
        pytest.param(Fault.status(503), 503, 0, id="status"),
        pytest.param(Fault.html(502), 502, 0, id="html"),
        pytest.param(Fault.slow(0.01), 200, 1, id="slow"),
        pytest.param(Fault.drip(0.0001), 200, 1, id="drip"),
        pytest.param(Fault.drop(), None, 0, id="drop"),
    ],
)
def test_faults_play_on_send_text(
    sb: PlugzSandbox, http: requests.Session, fault: Fault, status: int | None, kept: int
) -> None:
    """A fault that replaces the answer stands for a server that did not act on the request."""
    sb.inject(fault, instance_id="inst-1")
    if status is None:
        with pytest.raises(requests.ConnectionError):
            send(sb, http)
    else:
        assert send(sb, http).status_code == status
    assert len(sb.messages) == kept
    assert sb.requests[-1].json() == TEXT  # recorded either way


def test_send_text_is_post_only_and_checks_the_instance(sb: PlugzSandbox, http: requests.Session) -> None:
    response = http.get(pin_url(sb, endpoint="send-text"), headers=AUTH)
    assert (response.status_code, response.headers["Allow"]) == (405, "POST")
    assert send(sb, http, token="tok-2").json() == {"error": "Instance not found"}
    assert send(sb, http, instance="old", token="tok-old").json() == {
        "error": "To continue sending a message, you must subscribe to this instance again"
    }
    assert send(sb, http, instance="web", token="tok-web").status_code == 200  # not mobile-only
    assert [m.instance_id for m in sb.messages] == ["web"]


def test_a_sent_text_keeps_personal_data_out_of_its_repr(sb: PlugzSandbox, http: requests.Session) -> None:
    send(sb, http)
    (sent,) = sb.messages
    assert "5511988887777" not in repr(sent)
    assert "disk" not in repr(sent)
    assert sent.zaap_id in repr(sent)
    with pytest.raises(dataclasses.FrozenInstanceError):
        sent.delivered = False  # type: ignore[misc]
